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
};

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
