/* messages.h - tagged message queues shared by every interpreter.
 *
 * A process-global registry maps tags (byte strings, UTF-8 in practice) to
 * FIFO queues.  Any thread of any interpreter may send to a tag or receive
 * from a list of tags; the items are opaque pointers (the Python layer
 * stores transport payloads), so this file is plain C11 and knows nothing
 * about Python: the cmocka tests drive it directly.
 *
 * Locking: one registry mutex guards the tag table; each queue has its own
 * mutex guarding its items and its list of registered receivers; each
 * receiver has a mutex + condition variable it sleeps on.  The order is
 * registry -> queue -> receiver, never the reverse.  No lock is ever held
 * while calling back into the caller (items are freed after unlocking).
 */
#ifndef BOCPY_CORE_MESSAGES_H
#define BOCPY_CORE_MESSAGES_H

#include <stddef.h>
#include <stdint.h>

/* Default limits (see boc_msg_set_limits). */
#define BOC_MSG_MAX_TAGS 1024
#define BOC_MSG_MAX_PENDING 1000000

/* Results.  Errors are negative; BOC_MSG_TIMEOUT is a normal outcome. */
enum {
  BOC_MSG_OK = 0,
  BOC_MSG_TIMEOUT = 1,
  BOC_MSG_NOMEM = -1,
  BOC_MSG_TOO_MANY_TAGS = -2, /* a new tag would exceed the tag limit */
  BOC_MSG_FULL = -3,          /* the tag's queue holds the pending limit */
};

/* A tag: bytes, not NUL-terminated; the memory belongs to the caller. */
typedef struct boc_msg_tag {
  const char *data;
  size_t len;
} boc_msg_tag_t;

/* Frees an item the queues discard (drain, set_tags). */
typedef void (*boc_msg_free_fn)(void *item);

/* Appends item to tag's queue (creating the queue on first use) and wakes
 * the receivers waiting on it.  On success the queue owns item; on error
 * (NOMEM, TOO_MANY_TAGS, FULL) the caller still does. */
int boc_msg_send(const char *tag, size_t len, void *item);

/* Discards every pending item of tag (if the tag has a queue), calling
 * free_item on each outside every lock.  Returns the number discarded. */
size_t boc_msg_drain(const char *tag, size_t len, boc_msg_free_fn free_item);

/* Forgets every tag and discards every pending item (calling free_item),
 * then creates queues for tags[0..n).  Receivers waiting on a forgotten
 * queue move to the new queue of the same tag.  Returns OK, NOMEM, or
 * TOO_MANY_TAGS with *bad_index set to the first tag over the limit; on an
 * error nothing changed. */
int boc_msg_set_tags(const boc_msg_tag_t *tags, size_t n,
                     boc_msg_free_fn free_item, size_t *bad_index);

/* A receiver: a set of tags resolved to queues, plus what it sleeps on.
 * The tag memory must stay valid until boc_msg_receiver_close. */
typedef struct boc_msg_receiver boc_msg_receiver_t;

/* Resolves tags[0..n) (n >= 1), creating queues for unknown tags.  NULL
 * with *error = NOMEM or TOO_MANY_TAGS (*bad_index set) on failure. */
boc_msg_receiver_t *boc_msg_receiver_open(const boc_msg_tag_t *tags, size_t n,
                                          int *error, size_t *bad_index);
void boc_msg_receiver_close(boc_msg_receiver_t *r);

/* Takes the oldest item of the first tag (in the order given) that has one,
 * waiting up to timeout_ns (negative: forever; 0: poll).  Returns OK with
 * *which (the tag's index) and *item (now the caller's), TIMEOUT, or an
 * error of re-resolving after set_tags (NOMEM, TOO_MANY_TAGS: *which is the
 * tag's index).  Blocks: call it without holding any interpreter lock. */
int boc_msg_receive(boc_msg_receiver_t *r, int64_t timeout_ns, size_t *which,
                    void **item);

/* Pending items of tag (0 if it has no queue), and tags with a queue. */
size_t boc_msg_pending(const char *tag, size_t len);
size_t boc_msg_tag_count(void);
/* Every tag with a queue and its pending count, in a new array the caller
 * frees with free() (each entry's tag is a NUL-terminated copy inside the
 * same allocation).  *n is the number of entries; NULL with *n == 0 when
 * there are none or memory ran out. */
typedef struct boc_msg_count {
  const char *tag;
  size_t len;
  size_t pending;
} boc_msg_count_t;
boc_msg_count_t *boc_msg_counts(size_t *n);
/* The current tag limit. */
size_t boc_msg_max_tags(void);

/* Changes the limits (tests); values < 1 restore the defaults.  Applies
 * to later sends and tag creations. */
void boc_msg_set_limits(int64_t max_tags, int64_t max_pending);


#endif /* BOCPY_CORE_MESSAGES_H */
