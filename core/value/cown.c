/* cown.c - cown records: ownership, values, lifetime (see cown.h). */
#include "value/cown.h"

#include <stdio.h>
#include <stdlib.h>

#include "value/pycompat.h"
#include "value/transport.h"

/* Source of cown ids: process-wide and increasing, because the ids are the
 * global order in which behaviors lock cowns.  relaxed: uniqueness is all
 * that is needed. */
static _Atomic uint64_t next_cown_id = 1;

/* Records alive in the process (leak checks; relaxed: a statistic). */
static _Atomic int64_t live_cowns;

int64_t boc_cown_live_count(void) {
  return atomic_load_explicit(&live_cowns, BOC_RELAXED);
}

/* ---- cycle tracking ---------------------------------------------------------
 * Payloads hold strong references to the cowns they mention, so cowns whose
 * values mention each other in a cycle would keep each other alive forever.
 * Every cown that has ever stored a payload mentioning cowns is tracked in
 * a process-wide pointer set; boc_cown_collect_cycles() (called when nothing
 * runs) finds the tracked cowns reachable only from each other's payloads
 * and clears those payloads, which frees the whole cycle.  Only cowns whose
 * payload mentions cowns pay for this: one locked insert when first
 * tracked, one locked removal when freed. */
typedef struct track_set {
  boc_cown_t **slots; /* open addressing, linear probing; NULL = empty */
  size_t cap;         /* power of two, or 0 */
  size_t used;
} track_set_t;

/* Process-wide: cowns of every interpreter may form one cycle. */
static track_set_t tracked;     /* guarded by tracked_mu */
static boc_mutex_t tracked_mu;  /* initialised once by track_init */
static boc_once_t tracked_once = BOC_ONCE_INIT;

static void track_init(void) { boc_mutex_init(&tracked_mu); }

static size_t ptr_hash(const void *p, size_t cap) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x & (cap - 1);
}

/* Index of c in the set, or of the empty slot where it would go. */
static size_t set_find(const track_set_t *t, const boc_cown_t *c) {
  size_t i = ptr_hash(c, t->cap);
  while (t->slots[i] != NULL && t->slots[i] != c) {
    i = (i + 1) & (t->cap - 1);
  }
  return i;
}

static int set_grow(track_set_t *t) {
  size_t cap = t->cap ? t->cap * 2 : 64;
  boc_cown_t **slots = calloc(cap, sizeof(*slots));
  if (slots == NULL) {
    return -1;
  }
  track_set_t n = {slots, cap, 0};
  for (size_t i = 0; i < t->cap; i++) {
    if (t->slots[i] != NULL) {
      n.slots[set_find(&n, t->slots[i])] = t->slots[i];
      n.used++;
    }
  }
  free(t->slots);
  *t = n;
  return 0;
}

/* Removes slot i, shifting later entries of the probe run back. */
static void set_remove_at(track_set_t *t, size_t i) {
  size_t mask = t->cap - 1;
  t->slots[i] = NULL;
  t->used--;
  for (size_t j = (i + 1) & mask; t->slots[j] != NULL; j = (j + 1) & mask) {
    boc_cown_t *c = t->slots[j];
    size_t home = ptr_hash(c, t->cap);
    /* Move c back into the hole if the hole lies on its probe path. */
    if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
      t->slots[i] = c;
      t->slots[j] = NULL;
      i = j;
    }
  }
}

/* Tracks c once its payload mentions cowns (the owner, or its creator). */
static void track(boc_cown_t *c) {
  if (atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_TRACKED) {
    return;
  }
  boc_once(&tracked_once, track_init);
  boc_mutex_lock(&tracked_mu);
  if (atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_TRACKED) {
    /* tracked meanwhile (cannot happen for one owner; cheap to check) */
  } else if ((tracked.used + 1) * 2 <= tracked.cap || set_grow(&tracked) == 0) {
    tracked.slots[set_find(&tracked, c)] = c;
    tracked.used++;
    /* relaxed: the flag is read by the owner or under tracked_mu. */
    atomic_fetch_or_explicit(&c->flags, BOC_COWN_TRACKED, BOC_RELAXED);
  } /* out of memory: left untracked (a cycle through it is not collected) */
  boc_mutex_unlock(&tracked_mu);
}

static void untrack(boc_cown_t *c) {
  if (!(atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_TRACKED)) {
    return;
  }
  boc_mutex_lock(&tracked_mu);
  size_t i = set_find(&tracked, c);
  if (tracked.slots[i] == c) {
    set_remove_at(&tracked, i);
  }
  boc_mutex_unlock(&tracked_mu);
}

static inline void note_payload(boc_cown_t *c, const boc_payload_t *p) {
  if (p != NULL && p->ncowns > 0) {
    track(c);
  }
}

int64_t boc_cown_tracked_count(void) {
  boc_once(&tracked_once, track_init);
  boc_mutex_lock(&tracked_mu);
  int64_t n = (int64_t)tracked.used;
  boc_mutex_unlock(&tracked_mu);
  return n;
}

int64_t boc_cown_collect_cycles(void) {
  boc_once(&tracked_once, track_init);
  boc_mutex_lock(&tracked_mu);
  size_t n = tracked.used;
  if (n == 0) {
    boc_mutex_unlock(&tracked_mu);
    return 0;
  }
  /* Snapshot: the tracked cowns in a dense array, and for each its
   * "external" count gc = refs - references from tracked payloads. */
  boc_cown_t **set = malloc(n * sizeof(*set));
  int64_t *gc = malloc(n * sizeof(*gc));
  size_t *stack = malloc(n * sizeof(*stack));
  if (set == NULL || gc == NULL || stack == NULL) {
    boc_mutex_unlock(&tracked_mu);
    free(set);
    free(gc);
    free(stack);
    return 0;
  }
  /* A side index: the set's own table maps a cown to its slot; the dense
   * position is kept in a parallel array of the same shape. */
  size_t *pos = malloc(tracked.cap * sizeof(*pos));
  if (pos == NULL) {
    boc_mutex_unlock(&tracked_mu);
    free(set);
    free(gc);
    free(stack);
    return 0;
  }
  size_t k = 0;
  for (size_t i = 0; i < tracked.cap; i++) {
    if (tracked.slots[i] != NULL) {
      pos[i] = k;
      set[k] = tracked.slots[i];
      gc[k] = atomic_load_explicit(&set[k]->refs, BOC_ACQUIRE);
      k++;
    }
  }
#define DENSE(target, out)                                   \
  do {                                                       \
    size_t slot_ = set_find(&tracked, (target));             \
    (out) = tracked.slots[slot_] == (target) ? pos[slot_] : n; \
  } while (0)
  for (size_t i = 0; i < n; i++) {
    const boc_payload_t *p = set[i]->payload;
    for (uint32_t j = 0; p != NULL && j < p->ncowns; j++) {
      size_t t;
      DENSE(p->cowns[j], t);
      if (t < n) {
        gc[t]--;
      }
    }
  }
  /* Roots: referenced from outside the tracked payloads, or holding a live
   * value (whose references we cannot see).  Mark everything they reach
   * (gc = -1 means reachable). */
  size_t top = 0;
  for (size_t i = 0; i < n; i++) {
    if (gc[i] > 0 || atomic_load_explicit(&set[i]->owner, BOC_ACQUIRE) !=
                         BOC_NO_OWNER) {
      gc[i] = -1;
      stack[top++] = i;
    }
  }
  while (top > 0) {
    const boc_payload_t *p = set[stack[--top]]->payload;
    for (uint32_t j = 0; p != NULL && j < p->ncowns; j++) {
      size_t t;
      DENSE(p->cowns[j], t);
      if (t < n && gc[t] != -1) {
        gc[t] = -1;
        stack[top++] = t;
      }
    }
  }
#undef DENSE
  /* The rest is garbage: keep each record alive while its payload goes. */
  size_t ngarbage = 0;
  for (size_t i = 0; i < n; i++) {
    if (gc[i] != -1) {
      boc_cown_incref(set[i]);
      set[ngarbage++] = set[i];
    }
  }
  boc_mutex_unlock(&tracked_mu);
  free(gc);
  free(stack);
  free(pos);
  for (size_t i = 0; i < ngarbage; i++) {
    boc_payload_t *p = set[i]->payload;
    set[i]->payload = NULL;
    boc_payload_free(p); /* drops its cown references (none reach zero) */
  }
  for (size_t i = 0; i < ngarbage; i++) {
    boc_cown_decref(set[i]); /* now the last reference: freed */
  }
  free(set);
  return (int64_t)ngarbage;
}

static boc_cown_t *cown_alloc(void) {
  boc_cown_t *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&c->slot.last, NULL);
  atomic_init(&c->owner, BOC_NO_OWNER);
  atomic_init(&c->refs, 1); /* counted before anyone can see it */
  atomic_init(&c->flags, 0);
  c->id = atomic_fetch_add_explicit(&next_cown_id, 1, BOC_RELAXED);
  atomic_fetch_add_explicit(&live_cowns, 1, BOC_RELAXED);
  return c;
}

boc_cown_t *boc_cown_new(PyObject *value) {
  /* A NULL payload stands for None: result cowns start that way, and most
   * are created, filled and released without ever allocating one. */
  boc_payload_t *p = NULL;
  if (value != Py_None && (p = boc_payload_encode(value)) == NULL) {
    return NULL;
  }
  boc_cown_t *c = cown_alloc();
  if (c == NULL) {
    boc_payload_free(p);
    return NULL;
  }
  c->payload = p;
  note_payload(c, p);
  return c;
}

boc_cown_t *boc_cown_new_pinned(PyObject *value) {
  boc_cown_t *c = cown_alloc();
  if (c == NULL) {
    return NULL;
  }
  atomic_store_explicit(&c->flags, BOC_COWN_PINNED, BOC_RELAXED);
  atomic_store_explicit(&c->owner, boc_main_interp_id(), BOC_RELAXED);
  c->value = Py_NewRef(value);
  c->pin_ntype = boc_ntype_pinned_of(value);
  return c;
}

/* ---- orphaned live values ------------------------------------------------
 * A record can die on a thread that is not in the interpreter holding its
 * live value (e.g. main auto-acquired a cown, then the last reference went
 * away inside a payload freed on a worker).  The value is then queued here
 * and released by its own interpreter at its next safe point.  Process-wide
 * because any thread may produce an orphan for any interpreter. */
typedef struct orphan {
  struct orphan *next;
  int64_t owner;
  int32_t pin_ntype; /* the pinned cown's destroy hook runs first */
  PyObject *value;
} orphan_t;

static boc_mutex_t *orphans_mu(void) {
  /* Initialised once, on first use, by whoever gets here first. */
  static boc_mutex_t mu;
  static _Atomic int state; /* 0 new, 1 initialising, 2 ready */
  int s = atomic_load_explicit(&state, BOC_ACQUIRE);
  if (s != 2) {
    int expected = 0;
    if (atomic_compare_exchange_strong_explicit(&state, &expected, 1,
                                                BOC_ACQ_REL, BOC_ACQUIRE)) {
      boc_mutex_init(&mu);
      atomic_store_explicit(&state, 2, BOC_RELEASE);
    } else {
      while (atomic_load_explicit(&state, BOC_ACQUIRE) != 2) {
        boc_cpu_relax();
      }
    }
  }
  return &mu;
}
static orphan_t *orphans; /* guarded by orphans_mu() */

static int current_interp_is(int64_t id) {
  PyThreadState *ts = boc_thread_state_unchecked();
  return ts != NULL &&
         PyInterpreterState_GetID(PyThreadState_GetInterpreter(ts)) == id;
}

static void free_live_value(boc_cown_t *c) {
  PyObject *v = c->value;
  c->value = NULL;
  if (v == NULL) {
    return;
  }
  int64_t owner = atomic_load_explicit(&c->owner, BOC_ACQUIRE);
  if (current_interp_is(owner)) {
    boc_ntype_pinned_destroy(c->pin_ntype, v);
    Py_DECREF(v);
    return;
  }
  orphan_t *o = malloc(sizeof(*o));
  if (o == NULL) {
    return; /* cannot queue it: leak rather than free it in the wrong place */
  }
  o->owner = owner;
  o->pin_ntype = c->pin_ntype;
  o->value = v;
  boc_mutex_lock(orphans_mu());
  o->next = orphans;
  orphans = o;
  boc_mutex_unlock(orphans_mu());
}

void boc_cown_collect_orphans(void) {
  if (orphans == NULL) { /* racy peek: a miss is collected next time */
    return;
  }
  int64_t me = boc_current_interp_id();
  orphan_t *mine = NULL;
  boc_mutex_lock(orphans_mu());
  orphan_t **link = &orphans;
  while (*link != NULL) {
    orphan_t *o = *link;
    if (o->owner == me) {
      *link = o->next;
      o->next = mine;
      mine = o;
    } else {
      link = &o->next;
    }
  }
  boc_mutex_unlock(orphans_mu());
  while (mine != NULL) {
    orphan_t *o = mine;
    mine = o->next;
    boc_ntype_pinned_destroy(o->pin_ntype, o->value);
    Py_DECREF(o->value);
    free(o);
  }
}

/* Prints the one-line report for a cown dying with an exception nobody
 * looked at (neither read its value nor cleared its flag).  Only where this
 * thread runs Python: the report needs the exception's repr. */
static void report_unhandled(boc_cown_t *c) {
  uint32_t flags = atomic_load_explicit(&c->flags, BOC_RELAXED);
  if (!(flags & BOC_COWN_EXCEPTION) || (flags & BOC_COWN_REPORTED) ||
      boc_thread_state_unchecked() == NULL) {
    return;
  }
  PyObject *exc = PyErr_GetRaisedException();
  PyObject *value = NULL;
  int64_t owner = atomic_load_explicit(&c->owner, BOC_ACQUIRE);
  if (owner == boc_current_interp_id() && c->value != NULL) {
    value = Py_NewRef(c->value);
  } else if (owner == BOC_NO_OWNER && c->payload != NULL) {
    value = boc_payload_decode(c->payload);
  }
  PyObject *r = value != NULL ? PyObject_Repr(value) : NULL;
  const char *text = r != NULL ? PyUnicode_AsUTF8(r) : NULL;
  fprintf(stderr, "Cown(#%llu) contains an unhandled exception: %s\n",
          (unsigned long long)c->id, text != NULL ? text : "<unprintable>");
  PyErr_Clear();
  Py_XDECREF(r);
  Py_XDECREF(value);
  PyErr_SetRaisedException(exc);
}

void boc_cown_decref(boc_cown_t *c) {
  /* acq_rel: the thread that frees must see every other holder's writes. */
  if (atomic_fetch_sub_explicit(&c->refs, 1, BOC_ACQ_REL) != 1) {
    return;
  }
  untrack(c);
  report_unhandled(c);
  /* A live value (a pinned one included) is only ever released in its own
   * interpreter: elsewhere it is queued for that interpreter. */
  free_live_value(c);
  boc_payload_free(c->payload);
  free(c);
  atomic_fetch_sub_explicit(&live_cowns, 1, BOC_RELAXED);
}

/* ---- ownership ------------------------------------------------------------ */

static int not_owner_error(void) {
  PyErr_SetString(PyExc_RuntimeError,
                  "The current interpreter does not own this cown");
  return -1;
}

int boc_cown_acquire(boc_cown_t *c) {
  int64_t me = boc_current_interp_id();
  if (boc_cown_is_pinned(c)) {
    /* Held by main forever: only a registered type's acquire hook runs. */
    return atomic_load_explicit(&c->owner, BOC_RELAXED) == me
               ? boc_ntype_pinned_acquire(c->pin_ntype, c->value)
               : (PyErr_SetString(PyExc_RuntimeError,
                                  "a PinnedCown can only be acquired on the "
                                  "main interpreter"),
                  -1);
  }
  int64_t expected = BOC_NO_OWNER;
  /* acquire: we must see the payload written by the releasing owner. */
  if (!atomic_compare_exchange_strong_explicit(&c->owner, &expected, me,
                                               BOC_ACQUIRE, BOC_ACQUIRE)) {
    if (expected == me) {
      return 0;
    }
    PyErr_SetString(PyExc_RuntimeError,
                    "cown is owned by another interpreter");
    return -1;
  }
  PyObject *v = c->payload != NULL ? boc_payload_decode(c->payload)
                                   : Py_NewRef(Py_None);
  if (v == NULL) {
    /* The payload stays: no value is lost, and since payloads keep their
     * own references, decoding the same bytes again later is safe. */
    atomic_store_explicit(&c->owner, BOC_NO_OWNER, BOC_RELEASE);
    return -1;
  }
  c->value = v;
  return 0;
}

int boc_cown_release(boc_cown_t *c) {
  int64_t me = boc_current_interp_id();
  if (boc_cown_is_pinned(c)) {
    /* Only a registered type's release hook runs (e.g. flush). */
    return atomic_load_explicit(&c->owner, BOC_RELAXED) == me
               ? boc_ntype_pinned_release(c->pin_ntype, c->value)
               : (PyErr_SetString(PyExc_RuntimeError,
                                  "a PinnedCown can only be released on the "
                                  "main interpreter"),
                  -1);
  }
  int64_t owner = atomic_load_explicit(&c->owner, BOC_ACQUIRE);
  if (owner == BOC_NO_OWNER) {
    return 0;
  }
  if (owner != me) {
    PyErr_SetString(PyExc_RuntimeError,
                    "cown is owned by another interpreter");
    return -1;
  }
  int rc = 0;
  if (c->value == Py_None) {
    boc_payload_free(c->payload);
    c->payload = NULL; /* None needs no payload */
  } else {
    boc_payload_t *p = boc_payload_encode(c->value);
    if (p != NULL) {
      boc_payload_free(c->payload);
      c->payload = p;
      note_payload(c, p);
    } else {
      rc = -1; /* keep the previous payload: the last good value */
    }
  }
  Py_CLEAR(c->value);
  /* release: the next owner's acquire-CAS must see the new payload. */
  atomic_store_explicit(&c->owner, BOC_NO_OWNER, BOC_RELEASE);
  return rc;
}

void boc_cown_release_or_replace(boc_cown_t *c, PyObject **error) {
  if (error != NULL) {
    *error = NULL;
  }
  if (boc_cown_release(c) == 0) {
    return;
  }
  /* The cown is parked again with its previous payload (its last good
   * value); only the error remains to report. */
  PyObject *exc = PyErr_GetRaisedException();
  if (error != NULL) {
    *error = exc;
  } else {
    Py_DECREF(exc);
  }
}

PyObject *boc_cown_value(boc_cown_t *c) {
  if (atomic_load_explicit(&c->owner, BOC_ACQUIRE) != boc_current_interp_id()) {
    not_owner_error();
    return NULL;
  }
  return c->value != NULL ? c->value : Py_None;
}

int boc_cown_set_value(boc_cown_t *c, PyObject *v) {
  if (atomic_load_explicit(&c->owner, BOC_ACQUIRE) != boc_current_interp_id()) {
    return not_owner_error();
  }
  Py_XSETREF(c->value, Py_NewRef(v));
  if (boc_cown_is_pinned(c)) {
    c->pin_ntype = boc_ntype_pinned_of(v); /* hooks follow the new value */
  }
  return 0;
}
