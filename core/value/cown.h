/* cown.h - cown records: the process-global part of a cown.
 *
 * A record is raw-allocated (never with a per-interpreter allocator) and
 * reference counted atomically, so any thread of any interpreter may hold
 * one.  Its value is in one of two states:
 *   parked: owner == BOC_NO_OWNER, the value exists only as a payload;
 *   held:   owner == an interpreter id, `value` is a live object of that
 *           interpreter (the payload of the last release is kept beside it
 *           as the last good value until the next release succeeds).
 * A pinned cown is held by the main interpreter forever and has no payload.
 * A value may also *rest* in a worker interpreter (held, flagged
 * BOC_COWN_RESTING, no behavior holds it): it is serialised only when
 * another interpreter takes it, by the worker it rests in (see "homes"
 * below and docs/model.md).
 */
#ifndef BOCPY_CORE_COWN_H
#define BOCPY_CORE_COWN_H

#include <Python.h>

#include "engine/platform.h"
#include "engine/request.h"

struct boc_payload;

#define BOC_NO_OWNER ((int64_t)-2)

enum {
  BOC_COWN_EXCEPTION = 1u << 0, /* value is an exception from a behavior */
  BOC_COWN_PINNED = 1u << 1,    /* PinnedCown: value lives on main forever */
  BOC_COWN_REPORTED = 1u << 2,  /* unhandled exception already reported */
  BOC_COWN_TRACKED = 1u << 3,   /* held by the unhandled-exception list */
  BOC_COWN_CYCLE_TRACKED = 1u << 4, /* in the cycle collector's set (cown.c) */
  /* The result cown of a behavior that has not started yet (cleared when
   * it starts or is cancelled: exec/behavior.c). */
  BOC_COWN_PENDING = 1u << 5,
  BOC_COWN_CANCELLED = 1u << 6, /* its behavior was cancelled (scopes) */
  BOC_COWN_RESTING = 1u << 7, /* live in its owner, no behavior holds it */
  BOC_COWN_STUCK = 1u << 8,   /* its value could not leave its owner */
  BOC_COWN_EVICTING = 1u << 9, /* its resting value is being encoded */
};

struct boc_home;

typedef struct boc_cown {
  boc_slot_t slot;          /* MCS queue tail (request.h) */
  _Atomic int64_t owner;    /* interpreter id, or BOC_NO_OWNER */
  _Atomic intptr_t refs;    /* strong references */
  uint64_t id;              /* unique, increasing: the 2PL order */
  struct boc_payload *payload; /* last released value; NULL means None */
  PyObject *value;          /* live value, valid only in the owner */
  _Atomic uint32_t flags;
  /* Pinned cowns: 1 + the registry index of the value's pinned type (its
   * acquire/release/destroy hooks, transport.h), 0 for none.  Written and
   * read on the main interpreter with the value; read once more by
   * whichever thread frees the record. */
  int32_t pin_ntype;
  /* Values resting in a worker (cown.c, "homes").  home: the home listing
   * the cown while its value lives in that worker (written by the worker
   * under its GIL; read by takers, who hold the cown's 2PL lock).
   * home_slot: its index in the home's list (the worker only).
   * evict_next: link in the home's request stack (the requester writes it
   * before pushing).  evict: 0, or EVICT_FAILED set by the worker after
   * writing evict_msg (why the value could not leave). */
  _Atomic(struct boc_home *) home;
  uint32_t home_slot;
  /* Releases left that encode the value at once instead of leaving it
   * resting (cown.c, "values that travel").  Read and written only by the
   * cown's current owner (the 2PL hand-over orders the owners). */
  uint32_t eager_left;
  struct boc_cown *evict_next;
  char *evict_msg; /* why the value could not leave (BOC_COWN_STUCK) */
} boc_cown_t;

/* A new parked cown holding `value` (encoded now), refs = 1.  NULL with an
 * exception set on failure (the value is not transferable). */
boc_cown_t *boc_cown_new(PyObject *value);
/* A new pinned cown: held by the main interpreter forever.  Main only.
 * NULL with TypeError when value (of a registered pinned type) already is
 * the value of another PinnedCown. */
boc_cown_t *boc_cown_new_pinned(PyObject *value);

static inline void boc_cown_incref(boc_cown_t *c) {
  /* relaxed: taking another reference needs no ordering (the caller already
   * holds one). */
  atomic_fetch_add_explicit(&c->refs, 1, BOC_RELAXED);
}
/* Drops a reference; frees the record on the last one (see cown.c for what
 * happens to a live value then).  Safe from any thread; the GIL of the
 * current interpreter is needed only if it may own the live value. */
void boc_cown_decref(boc_cown_t *c);

static inline int boc_cown_is_pinned(const boc_cown_t *c) {
  return (atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_PINNED) != 0;
}
static inline int64_t boc_cown_owner(const boc_cown_t *c) {
  return atomic_load_explicit(&c->owner, BOC_ACQUIRE);
}

/* Takes ownership for the current interpreter (GIL held): parked -> held,
 * decoding the payload; already held here -> no-op.  Returns 0, or -1 with
 * RuntimeError (owned elsewhere) or the decoding error set; on error the
 * cown is unchanged. */
int boc_cown_acquire(boc_cown_t *c);
/* Gives ownership back (GIL held): held here -> parked, encoding the value.
 * Parked -> no-op.  Owned elsewhere -> -1 with RuntimeError.  If encoding
 * fails the cown still ends parked with its previous payload (the last good
 * value) and -1 is returned with the encoding error set. */
int boc_cown_release(boc_cown_t *c);
/* Like release, but the cown always ends parked: on an encoding error it
 * keeps its previous payload (the last good value) and the error is returned
 * (a new reference) in *error when error != NULL, else discarded. */
void boc_cown_release_or_replace(boc_cown_t *c, PyObject **error);

/* Like boc_cown_release_or_replace, for an argument cown of a behavior that
 * ran on a worker: a value that is not a cheap scalar is not encoded but
 * rests live in this worker's home (see "homes" below). */
void boc_cown_release_rest(boc_cown_t *c, PyObject **error);

/* Whether the current interpreter holds c (owner, and not merely resting
 * here): only then may its value be read or written. */
int boc_cown_held_here(const boc_cown_t *c);

/* Live value (borrowed) if the current interpreter holds the cown (and, for
 * a PinnedCown, this is the pinned thread); else NULL with RuntimeError. */
PyObject *boc_cown_value(boc_cown_t *c);
/* Replaces the live value (steals nothing; increfs v).  For a PinnedCown:
 * pinned thread only; TypeError when v (of a registered pinned type) is the
 * value of another PinnedCown; the old value's destroy hook runs. */
int boc_cown_set_value(boc_cown_t *c, PyObject *v);

/* Takes the value out of a cown the caller holds, leaving None (a new
 * reference; NULL with RuntimeError).  A pinned value's destroy hook does
 * not run: the caller owns the value now. */
PyObject *boc_cown_take_value(boc_cown_t *c);

/* Pinned cowns holding a value of a registered pinned type (tests). */
int64_t boc_pinned_live_count(void);
/* At exit, on the pinned thread: runs the destroy hook of every pinned
 * value still alive, exactly once (later deaths of those cowns run no
 * hook), and frees the pinned values orphaned by other threads. */
void boc_pinned_destroy_all(void);

/* Remembers a result cown into which a behavior stored an exception (takes
 * a reference, flags it BOC_COWN_TRACKED), so that it is reported if nobody
 * handles it: by boc_cown_decref as soon as only this list references it,
 * else at exit. */
void boc_cown_note_failed(boc_cown_t *c);
/* Reports every remembered cown whose exception is still unhandled (once
 * each, through bocpy._errors) and forgets them all.  Main, at exit. */
void boc_cown_report_unhandled_all(void);

/* ---- homes: values resting in a worker interpreter ------------------------
 * One per worker interpreter.  The list is touched only under that
 * interpreter's GIL (its worker's thread, or a taker that took the GIL on
 * a thread state of its own to encode a value there); any thread may push
 * an eviction request and poke.  A
 * home lives as long as the process (a small record per worker ever
 * created), so a stale pointer to one is never dangling. */
typedef struct boc_home boc_home_t;
typedef void (*boc_home_poke_fn)(void *arg);

/* A new home for worker index `worker`; poke(arg) must make that worker
 * call boc_home_serve soon (wake it if idle).  NULL on allocation failure. */
boc_home_t *boc_home_new(int worker, boc_home_poke_fn poke, void *arg);
/* This thread's interpreter is h's (NULL: none).  Worker threads bind
 * their home once their interpreter exists, and unbind before it ends. */
void boc_home_bind(boc_home_t *h);
/* The home's worker, around each behavior it runs: busy (1) or not (0).
 * A taker that finds the home busy encodes the value in the home's
 * interpreter itself at once instead of waiting for the body to end. */
void boc_home_set_busy(boc_home_t *h, int busy);
/* The worker index of the home c's value rests in, or -1 (a hint for
 * dispatch; the caller holds c's 2PL lock). */
int boc_cown_home_worker(const boc_cown_t *c);
/* The home's worker, GIL held, between behaviors: serve pending eviction
 * requests (cheap when there are none). */
void boc_home_serve(boc_home_t *h);
/* The home's worker, GIL held, when no behavior runs (the end of a run):
 * serve requests and move every resting value out (a value that cannot be
 * encoded stays, flagged stuck). */
void boc_home_flush(boc_home_t *h);
/* The home's worker, GIL held, before its interpreter ends: flush, then
 * replace each value that still cannot leave by a TypeError saying so
 * (flagged as the cown's exception), and drop stale requests. */
void boc_home_close(boc_home_t *h);
/* Any interpreter's thread, GIL held (released meanwhile): moves every
 * value resting in any worker out (encoded in its worker's interpreter),
 * so that the cown cycle collector sees all of them.  Never two GILs. */
void boc_homes_evict_all(void);
/* Values resting in h now (tests, stats). */
size_t boc_home_count(const boc_home_t *h);

/* Cown records currently alive in the process. */
int64_t boc_cown_live_count(void);

/* Called once per interpreter before it is destroyed, and by the main
 * interpreter at safe points: frees live values orphaned in this
 * interpreter by records that died elsewhere. */
void boc_cown_collect_orphans(void);

/* Reclaims cowns kept alive only by each other's payloads (reference
 * cycles through cown values).  Main interpreter, GIL held (reports of
 * unhandled exceptions run Python); safe while behaviors run (payload
 * writes of tracked cowns are made under the collector's lock).  A cown held by an interpreter (a live value) counts as
 * reachable.  Returns how many records were freed. */
int64_t boc_cown_collect_cycles(void);
/* Replaces the parked payload of a cown the caller owns (or that nobody
 * can hold yet) by p, freeing the old one; safe against a collection
 * running meanwhile. */
void boc_cown_set_payload(boc_cown_t *c, struct boc_payload *p);
/* Cowns in the collector's set (tests). */
int64_t boc_cown_tracked_count(void);

#endif /* BOCPY_CORE_COWN_H */
