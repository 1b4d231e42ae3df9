/* messages.c - tagged message queues (see messages.h). */
#include "engine/messages.h"

#include <stdlib.h>
#include <string.h>

#include "engine/platform.h"

/* Open-addressing table of queues, never more than half full: tags are only
 * ever added (set_tags replaces the whole table), so no tombstones. */
#define TABLE_SIZE 2048
#if TABLE_SIZE < 2 * BOC_MSG_MAX_TAGS || (TABLE_SIZE & (TABLE_SIZE - 1)) != 0
#error "TABLE_SIZE must be a power of two at least twice BOC_MSG_MAX_TAGS"
#endif

typedef struct item_node {
  struct item_node *next;
  void *item;
} item_node_t;

/* One receiver's registration on one queue. */
typedef struct wlink {
  struct wlink *prev, *next;
  struct boc_msg_receiver *r;
  int linked; /* guarded by the mutex of the queue it is (or was) on */
} wlink_t;

typedef struct queue {
  _Atomic intptr_t refs;  /* the registry's + one per user in flight */
  boc_mutex_t mu;
  item_node_t *head, *tail; /* guarded by mu */
  size_t count;             /* guarded by mu */
  wlink_t *waiters;         /* guarded by mu: receivers to wake */
  int dead;                 /* guarded by mu: forgotten by set_tags */
  uint64_t hash;
  size_t len;
  char tag[];
} queue_t;

typedef struct table {
  size_t count;
  queue_t *slots[TABLE_SIZE];
} table_t;

struct boc_msg_receiver {
  boc_mutex_t mu;
  boc_cond_t cv;
  int ready; /* guarded by mu: a registered queue got an item (or died) */
  size_t n;
  boc_msg_tag_t *tags; /* copies of the caller's descriptors */
  queue_t **queues;    /* strong references */
  wlink_t *links;
};

/* The registry is process-global because messages cross interpreters: a
 * tag names the same queue in every interpreter and on every thread. */
static boc_mutex_t reg_mu;
static table_t *reg_table; /* guarded by reg_mu; allocated on first use */
static boc_once_t reg_once = BOC_ONCE_INIT;

/* Limits, process-global like the registry they bound.  relaxed: plain
 * settings, read once per operation; no other data depends on them. */
static _Atomic int64_t limit_tags = BOC_MSG_MAX_TAGS;
static _Atomic int64_t limit_pending = BOC_MSG_MAX_PENDING;

static void reg_init(void) { boc_mutex_init(&reg_mu); }

void boc_msg_set_limits(int64_t max_tags, int64_t max_pending) {
  if (max_tags < 1 || max_tags > BOC_MSG_MAX_TAGS) {
    max_tags = BOC_MSG_MAX_TAGS;
  }
  if (max_pending < 1) {
    max_pending = BOC_MSG_MAX_PENDING;
  }
  /* relaxed: see limit_tags */
  atomic_store_explicit(&limit_tags, max_tags, BOC_RELAXED);
  atomic_store_explicit(&limit_pending, max_pending, BOC_RELAXED);
}

size_t boc_msg_max_tags(void) {
  /* relaxed: see limit_tags */
  return (size_t)atomic_load_explicit(&limit_tags, BOC_RELAXED);
}

/* ---- queues --------------------------------------------------------------- */

static uint64_t tag_hash(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static queue_t *queue_new(const char *tag, size_t len, uint64_t hash) {
  queue_t *q = calloc(1, sizeof(*q) + len + 1);
  if (q == NULL) {
    return NULL;
  }
  if (boc_mutex_init(&q->mu) != 0) {
    free(q);
    return NULL;
  }
  atomic_init(&q->refs, 1);
  q->hash = hash;
  q->len = len;
  memcpy(q->tag, tag, len);
  return q;
}

static void queue_incref(queue_t *q) {
  /* relaxed: the caller already holds a reference (or the registry lock,
   * under which the registry's reference cannot go away). */
  atomic_fetch_add_explicit(&q->refs, 1, BOC_RELAXED);
}

static void queue_decref(queue_t *q) {
  /* acq_rel: the thread that frees must see every other holder's writes
   * to the queue done. */
  if (atomic_fetch_sub_explicit(&q->refs, 1, BOC_ACQ_REL) != 1) {
    return;
  }
  /* Only forgotten queues die, and set_tags emptied those; a queue that
   * was never published has no items either. */
  item_node_t *n = q->head;
  while (n != NULL) {
    item_node_t *next = n->next;
    free(n);
    n = next;
  }
  boc_mutex_destroy(&q->mu);
  free(q);
}

/* Wakes one receiver. */
static void wake(struct boc_msg_receiver *r) {
  boc_mutex_lock(&r->mu);
  r->ready = 1;
  boc_cond_signal(&r->cv);
  boc_mutex_unlock(&r->mu);
}

/* Wakes every receiver registered on q (q->mu held). */
static void wake_waiters(queue_t *q) {
  for (wlink_t *l = q->waiters; l != NULL; l = l->next) {
    wake(l->r);
  }
}

/* ---- the table ------------------------------------------------------------ */

/* The queue of tag in t, or NULL with *slot set to where it would go. */
static queue_t *table_find(table_t *t, const char *tag, size_t len,
                           uint64_t hash, size_t *slot) {
  size_t i = (size_t)hash & (TABLE_SIZE - 1);
  for (;;) {
    queue_t *q = t->slots[i];
    if (q == NULL) {
      *slot = i;
      return NULL;
    }
    if (q->hash == hash && q->len == len && memcmp(q->tag, tag, len) == 0) {
      return q;
    }
    i = (i + 1) & (TABLE_SIZE - 1);
  }
}

/* The queue of tag in t, created if needed; NULL with *error on failure.
 * The reference returned is t's (borrowed). */
static queue_t *table_get(table_t *t, const char *tag, size_t len,
                          int *error) {
  uint64_t hash = tag_hash(tag, len);
  size_t slot;
  queue_t *q = table_find(t, tag, len, hash, &slot);
  if (q != NULL) {
    return q;
  }
  /* relaxed: see limit_tags */
  if ((int64_t)t->count >= atomic_load_explicit(&limit_tags, BOC_RELAXED)) {
    *error = BOC_MSG_TOO_MANY_TAGS;
    return NULL;
  }
  q = queue_new(tag, len, hash);
  if (q == NULL) {
    *error = BOC_MSG_NOMEM;
    return NULL;
  }
  t->slots[slot] = q;
  t->count++;
  return q;
}

static void table_free(table_t *t) {
  for (size_t i = 0; i < TABLE_SIZE; i++) {
    if (t->slots[i] != NULL) {
      queue_decref(t->slots[i]);
    }
  }
  free(t);
}

/* A new reference to tag's queue; with create, the queue is made on first
 * use.  NULL with *error (or, without create, when the tag is unknown). */
static queue_t *lookup(const char *tag, size_t len, int create, int *error) {
  boc_once(&reg_once, reg_init);
  *error = BOC_MSG_OK;
  queue_t *q = NULL;
  boc_mutex_lock(&reg_mu);
  if (reg_table == NULL && create) {
    reg_table = calloc(1, sizeof(*reg_table));
  }
  if (reg_table == NULL) {
    *error = create ? BOC_MSG_NOMEM : BOC_MSG_OK;
  } else if (create) {
    q = table_get(reg_table, tag, len, error);
  } else {
    size_t slot;
    q = table_find(reg_table, tag, len, tag_hash(tag, len), &slot);
  }
  if (q != NULL) {
    queue_incref(q);
  }
  boc_mutex_unlock(&reg_mu);
  return q;
}

/* ---- send / drain / set_tags --------------------------------------------- */

int boc_msg_send(const char *tag, size_t len, void *item) {
  item_node_t *node = malloc(sizeof(*node));
  if (node == NULL) {
    return BOC_MSG_NOMEM;
  }
  node->next = NULL;
  node->item = item;
  for (;;) {
    int error;
    queue_t *q = lookup(tag, len, 1, &error);
    if (q == NULL) {
      free(node);
      return error;
    }
    boc_mutex_lock(&q->mu);
    if (q->dead) { /* set_tags replaced it meanwhile: use the new one */
      boc_mutex_unlock(&q->mu);
      queue_decref(q);
      continue;
    }
    /* relaxed: see limit_tags */
    if ((int64_t)q->count >=
        atomic_load_explicit(&limit_pending, BOC_RELAXED)) {
      boc_mutex_unlock(&q->mu);
      queue_decref(q);
      free(node);
      return BOC_MSG_FULL;
    }
    if (q->tail != NULL) {
      q->tail->next = node;
    } else {
      q->head = node;
    }
    q->tail = node;
    q->count++;
    wake_waiters(q);
    boc_mutex_unlock(&q->mu);
    queue_decref(q);
    return BOC_MSG_OK;
  }
}

static size_t free_items(item_node_t *n, boc_msg_free_fn free_item) {
  size_t count = 0;
  while (n != NULL) {
    item_node_t *next = n->next;
    if (free_item != NULL) {
      free_item(n->item);
    }
    free(n);
    n = next;
    count++;
  }
  return count;
}

size_t boc_msg_drain(const char *tag, size_t len, boc_msg_free_fn free_item) {
  int error;
  queue_t *q = lookup(tag, len, 0, &error);
  if (q == NULL) {
    return 0;
  }
  boc_mutex_lock(&q->mu);
  item_node_t *items = q->head;
  q->head = q->tail = NULL;
  q->count = 0;
  boc_mutex_unlock(&q->mu);
  queue_decref(q);
  return free_items(items, free_item);
}

int boc_msg_set_tags(const boc_msg_tag_t *tags, size_t n,
                     boc_msg_free_fn free_item, size_t *bad_index) {
  boc_once(&reg_once, reg_init);
  table_t *fresh = calloc(1, sizeof(*fresh));
  if (fresh == NULL) {
    return BOC_MSG_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    int error;
    if (table_get(fresh, tags[i].data, tags[i].len, &error) == NULL) {
      table_free(fresh);
      *bad_index = i;
      return error;
    }
  }
  boc_mutex_lock(&reg_mu);
  table_t *old = reg_table;
  reg_table = fresh;
  boc_mutex_unlock(&reg_mu);
  if (old == NULL) {
    return BOC_MSG_OK;
  }
  /* Retire the old queues: a sender or receiver still holding one sees it
   * dead under its mutex and looks the tag up again. */
  item_node_t *discard = NULL;
  for (size_t i = 0; i < TABLE_SIZE; i++) {
    queue_t *q = old->slots[i];
    if (q == NULL) {
      continue;
    }
    boc_mutex_lock(&q->mu);
    q->dead = 1;
    if (q->tail != NULL) {
      q->tail->next = discard;
      discard = q->head;
    }
    q->head = q->tail = NULL;
    q->count = 0;
    wake_waiters(q);
    boc_mutex_unlock(&q->mu);
  }
  table_free(old);
  free_items(discard, free_item);
  return BOC_MSG_OK;
}

size_t boc_msg_pending(const char *tag, size_t len) {
  int error;
  queue_t *q = lookup(tag, len, 0, &error);
  if (q == NULL) {
    return 0;
  }
  boc_mutex_lock(&q->mu);
  size_t count = q->count;
  boc_mutex_unlock(&q->mu);
  queue_decref(q);
  return count;
}

size_t boc_msg_tag_count(void) {
  boc_once(&reg_once, reg_init);
  boc_mutex_lock(&reg_mu);
  size_t count = reg_table != NULL ? reg_table->count : 0;
  boc_mutex_unlock(&reg_mu);
  return count;
}

boc_msg_count_t *boc_msg_counts(size_t *n) {
  *n = 0;
  boc_once(&reg_once, reg_init);
  boc_mutex_lock(&reg_mu);
  if (reg_table == NULL || reg_table->count == 0) {
    boc_mutex_unlock(&reg_mu);
    return NULL;
  }
  size_t bytes = reg_table->count * sizeof(boc_msg_count_t);
  for (size_t i = 0; i < TABLE_SIZE; i++) {
    if (reg_table->slots[i] != NULL) {
      bytes += reg_table->slots[i]->len + 1;
    }
  }
  boc_msg_count_t *out = malloc(bytes);
  if (out == NULL) {
    boc_mutex_unlock(&reg_mu);
    return NULL;
  }
  char *text = (char *)(out + reg_table->count);
  size_t k = 0;
  for (size_t i = 0; i < TABLE_SIZE && k < reg_table->count; i++) {
    queue_t *q = reg_table->slots[i];
    if (q == NULL) {
      continue;
    }
    boc_mutex_lock(&q->mu);
    out[k].pending = q->count;
    boc_mutex_unlock(&q->mu);
    memcpy(text, q->tag, q->len);
    text[q->len] = '\0';
    out[k].tag = text;
    out[k].len = q->len;
    text += q->len + 1;
    k++;
  }
  boc_mutex_unlock(&reg_mu);
  *n = k;
  return out;
}

/* ---- receivers ------------------------------------------------------------ */

boc_msg_receiver_t *boc_msg_receiver_open(const boc_msg_tag_t *tags, size_t n,
                                          int *error, size_t *bad_index) {
  *error = BOC_MSG_NOMEM;
  *bad_index = 0;
  if (n == 0 || n > SIZE_MAX / 4 / sizeof(wlink_t)) {
    return NULL;
  }
  boc_msg_receiver_t *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    return NULL;
  }
  r->tags = malloc(n * sizeof(*r->tags));
  r->queues = calloc(n, sizeof(*r->queues));
  r->links = calloc(n, sizeof(*r->links));
  if (r->tags == NULL || r->queues == NULL || r->links == NULL ||
      boc_mutex_init(&r->mu) != 0) {
    goto fail_alloc;
  }
  if (boc_cond_init(&r->cv) != 0) {
    boc_mutex_destroy(&r->mu);
    goto fail_alloc;
  }
  r->n = n;
  memcpy(r->tags, tags, n * sizeof(*tags));
  for (size_t i = 0; i < n; i++) {
    r->links[i].r = r;
    r->queues[i] = lookup(tags[i].data, tags[i].len, 1, error);
    if (r->queues[i] == NULL) {
      *bad_index = i;
      boc_msg_receiver_close(r);
      return NULL;
    }
  }
  *error = BOC_MSG_OK;
  return r;

fail_alloc:
  free(r->tags);
  free(r->queues);
  free(r->links);
  free(r);
  return NULL;
}

/* Removes r from every queue it is registered on. */
static void unregister_all(boc_msg_receiver_t *r) {
  for (size_t i = 0; i < r->n; i++) {
    wlink_t *l = &r->links[i];
    queue_t *q = r->queues[i];
    /* Only this thread sets or clears l->linked, so reading it unlocked is
     * reading our own write. */
    if (q == NULL || !l->linked) {
      continue;
    }
    boc_mutex_lock(&q->mu);
    {
      if (l->prev != NULL) {
        l->prev->next = l->next;
      } else {
        q->waiters = l->next;
      }
      if (l->next != NULL) {
        l->next->prev = l->prev;
      }
      l->prev = l->next = NULL;
      l->linked = 0;
    }
    boc_mutex_unlock(&q->mu);
  }
}

void boc_msg_receiver_close(boc_msg_receiver_t *r) {
  if (r == NULL) {
    return;
  }
  unregister_all(r);
  for (size_t i = 0; i < r->n; i++) {
    if (r->queues[i] != NULL) {
      queue_decref(r->queues[i]);
    }
  }
  boc_cond_destroy(&r->cv);
  boc_mutex_destroy(&r->mu);
  free(r->tags);
  free(r->queues);
  free(r->links);
  free(r);
}

/* After set_tags: swaps every forgotten queue for the tag's new one. */
static int reresolve(boc_msg_receiver_t *r, size_t *which) {
  for (size_t i = 0; i < r->n; i++) {
    queue_t *q = r->queues[i];
    boc_mutex_lock(&q->mu);
    int dead = q->dead;
    boc_mutex_unlock(&q->mu);
    if (!dead) {
      continue;
    }
    int error;
    queue_t *fresh = lookup(r->tags[i].data, r->tags[i].len, 1, &error);
    if (fresh == NULL) {
      *which = i;
      return error;
    }
    r->queues[i] = fresh;
    queue_decref(q);
  }
  return BOC_MSG_OK;
}

int boc_msg_receive(boc_msg_receiver_t *r, int64_t timeout_ns, size_t *which,
                    void **item) {
  int64_t deadline = -1;
  if (timeout_ns >= 0) {
    deadline = boc_now_ns() + timeout_ns;
    if (deadline < 0) { /* overflow: forever */
      deadline = -1;
    }
  }
  for (;;) {
    /* Clear the flag before looking: an item that arrives after we looked
     * at its queue finds us registered there and sets it again. */
    boc_mutex_lock(&r->mu);
    r->ready = 0;
    boc_mutex_unlock(&r->mu);
    int dead = 0;
    for (size_t i = 0; i < r->n && !dead; i++) {
      queue_t *q = r->queues[i];
      boc_mutex_lock(&q->mu);
      if (q->dead) {
        dead = 1;
      } else if (q->head != NULL) {
        item_node_t *node = q->head;
        q->head = node->next;
        if (q->head == NULL) {
          q->tail = NULL;
        }
        q->count--;
        boc_mutex_unlock(&q->mu);
        unregister_all(r);
        *which = i;
        *item = node->item;
        free(node);
        return BOC_MSG_OK;
      } else if (!r->links[i].linked) {
        wlink_t *l = &r->links[i];
        l->prev = NULL;
        l->next = q->waiters;
        if (q->waiters != NULL) {
          q->waiters->prev = l;
        }
        q->waiters = l;
        l->linked = 1;
      }
      boc_mutex_unlock(&q->mu);
    }
    if (dead) {
      unregister_all(r);
      int rc = reresolve(r, which);
      if (rc != BOC_MSG_OK) {
        return rc;
      }
      continue;
    }
    /* Spin briefly before sleeping: a reply often arrives within
     * microseconds, and a condition-variable sleep and wake-up (two futex
     * calls and a context switch) costs far more than that. */
    for (int spin = 0; spin < 256; spin++) {
      boc_mutex_lock(&r->mu);
      int arrived = r->ready;
      boc_mutex_unlock(&r->mu);
      if (arrived || (deadline >= 0 && boc_now_ns() >= deadline)) {
        break;
      }
      if (spin < 64) {
        boc_cpu_relax();
      } else {
        boc_thread_yield();
      }
    }
    boc_mutex_lock(&r->mu);
    while (!r->ready) {
      if (deadline < 0) {
        boc_cond_wait(&r->cv, &r->mu);
        continue;
      }
      int64_t left = deadline - boc_now_ns();
      if (left <= 0) {
        break;
      }
      boc_cond_timedwait(&r->cv, &r->mu, left);
    }
    int ready = r->ready;
    boc_mutex_unlock(&r->mu);
    if (!ready) {
      unregister_all(r);
      return BOC_MSG_TIMEOUT;
    }
  }
}
