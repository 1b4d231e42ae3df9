/* cown.c - cown records: ownership, values, lifetime (see cown.h). */
#include "value/cown.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- live pinned values ----------------------------------------------------
 * Every PinnedCown whose value is of a registered pinned type (pin_ntype >
 * 0) is listed here, so that (a) one such value can live in one PinnedCown
 * only, and (b) at exit every one of them is destroyed exactly once, on the
 * pinned thread, before the interpreter finalises.  Weak pointers: a record
 * removes itself when it dies.  Process-global because there is one pinned
 * thread; a plain array, since programs hold few hooked pinned values.
 * pins_mu also guards `value` and `pin_ntype` of the listed records against
 * the (rare) readers that are not on the pinned thread: construction on
 * another thread of the main interpreter scans the list. */
static boc_mutex_t pins_mu;
static boc_once_t pins_once = BOC_ONCE_INIT;
static boc_cown_t **pins;    /* guarded by pins_mu */
static size_t npins, pins_cap; /* guarded by pins_mu */

static void pins_init(void) { boc_mutex_init(&pins_mu); }

static void pins_lock(void) {
  boc_once(&pins_once, pins_init);
  boc_mutex_lock(&pins_mu);
}

/* pins_mu held.  0, or -1 with MemoryError. */
static int pins_add(boc_cown_t *c) {
  if (npins == pins_cap) {
    size_t cap = pins_cap ? pins_cap * 2 : 16;
    boc_cown_t **p = realloc(pins, cap * sizeof(*p));
    if (p == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    pins = p;
    pins_cap = cap;
  }
  pins[npins++] = c;
  return 0;
}

/* pins_mu held. */
static void pins_remove(boc_cown_t *c) {
  for (size_t i = 0; i < npins; i++) {
    if (pins[i] == c) {
      pins[i] = pins[--npins];
      return;
    }
  }
}

/* pins_mu held.  The listed record other than self holding v, or NULL. */
static boc_cown_t *pins_holder(PyObject *v, const boc_cown_t *self) {
  for (size_t i = 0; i < npins; i++) {
    if (pins[i] != self && pins[i]->value == v) {
      return pins[i];
    }
  }
  return NULL;
}

static int pinned_twice_error(PyObject *v, const boc_cown_t *holder) {
  PyErr_Format(PyExc_TypeError,
               "this %.200s is already the value of PinnedCown #%llu: a value "
               "of a pinned type lives in one PinnedCown at a time (its "
               "destroy hook runs once, when that PinnedCown dies); make a "
               "new %.200s or share the PinnedCown",
               Py_TYPE(v)->tp_name, (unsigned long long)holder->id,
               Py_TYPE(v)->tp_name);
  return -1;
}

int64_t boc_pinned_live_count(void) {
  pins_lock();
  int64_t n = (int64_t)npins;
  boc_mutex_unlock(&pins_mu);
  return n;
}

static int pinned_thread_error(const char *what) {
  PyErr_Format(PyExc_RuntimeError,
               "a PinnedCown can only be %s on the pinned thread (the main "
               "thread of the main interpreter): its value and its hooks "
               "live there; schedule a behavior on it instead",
               what);
  return -1;
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
  if (atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_CYCLE_TRACKED) {
    return;
  }
  boc_once(&tracked_once, track_init);
  boc_mutex_lock(&tracked_mu);
  if (atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_CYCLE_TRACKED) {
    /* tracked meanwhile (cannot happen for one owner; cheap to check) */
  } else if ((tracked.used + 1) * 2 <= tracked.cap || set_grow(&tracked) == 0) {
    tracked.slots[set_find(&tracked, c)] = c;
    tracked.used++;
    /* relaxed: the flag is read by the owner or under tracked_mu. */
    atomic_fetch_or_explicit(&c->flags, BOC_COWN_CYCLE_TRACKED, BOC_RELAXED);
  } /* out of memory: left untracked (a cycle through it is not collected) */
  boc_mutex_unlock(&tracked_mu);
}

static void untrack(boc_cown_t *c) {
  if (!(atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_CYCLE_TRACKED)) {
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

/* Replaces c's payload by p and returns the old one (the caller frees it,
 * after this returns: freeing may free records, which takes tracked_mu).
 * Only the owner writes a payload; for a tracked cown the write is made
 * under tracked_mu, so that a collection running meanwhile (from Python's
 * gc while behaviors run) never reads a payload being freed.  Untracked
 * cowns are not read by the collector, and only their owner tracks them,
 * after the write. */
static boc_payload_t *swap_payload(boc_cown_t *c, boc_payload_t *p) {
  /* relaxed: the flag is only set by the owner (us) or under tracked_mu. */
  int tracked_now = (atomic_load_explicit(&c->flags, BOC_RELAXED) &
                     BOC_COWN_CYCLE_TRACKED) != 0;
  if (tracked_now) {
    boc_mutex_lock(&tracked_mu);
  }
  boc_payload_t *old = c->payload;
  c->payload = p;
  if (tracked_now) {
    boc_mutex_unlock(&tracked_mu);
  }
  return old;
}

void boc_cown_set_payload(boc_cown_t *c, boc_payload_t *p) {
  boc_payload_free(swap_payload(c, p));
}

/* A collection in progress on this process (a nested one, from Python run
 * by the first one's reports, returns at once). */
static _Atomic int collecting;

static int64_t collect_cycles_locked(void);

int64_t boc_cown_collect_cycles(void) {
  boc_once(&tracked_once, track_init);
  /* acq_rel: pairs with the store that ends the previous collection. */
  if (atomic_exchange_explicit(&collecting, 1, BOC_ACQ_REL)) {
    return 0;
  }
  int64_t freed = collect_cycles_locked();
  atomic_store_explicit(&collecting, 0, BOC_RELEASE);
  return freed;
}

/* The collection.  Safe while behaviors run: payloads of tracked cowns
 * change only under tracked_mu (swap_payload), which this holds while it
 * reads them; a record whose count reached zero meanwhile (its free waits
 * in untrack) is kept as a root and never touched after the lock. */
static int64_t collect_cycles_locked(void) {
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
      if (gc[k] == 0) {
        /* Dying elsewhere (its free waits for the lock): a root, so it is
         * neither counted as garbage nor referenced again. */
        gc[k] = INT64_MAX / 2;
      }
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
  atomic_init(&c->home, NULL);
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
  int32_t pin = boc_ntype_pinned_of(value);
  if (pin == 0) {
    c->value = Py_NewRef(value);
    return c;
  }
  pins_lock();
  boc_cown_t *holder = pins_holder(value, c);
  int rc = holder != NULL ? pinned_twice_error(value, holder) : pins_add(c);
  if (rc == 0) {
    c->value = Py_NewRef(value);
    c->pin_ntype = pin;
  }
  boc_mutex_unlock(&pins_mu);
  if (rc < 0) {
    free(c);
    atomic_fetch_sub_explicit(&live_cowns, 1, BOC_RELAXED);
    return NULL;
  }
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
  int64_t owner; /* the interpreter, or PINNED_THREAD */
  int32_t pin_ntype; /* the pinned cown's destroy hook runs first */
  PyObject *value;
} orphan_t;

/* A mutex initialised once, on first use, by whoever gets there first.
 * state: 0 new, 1 initialising, 2 ready. */
static boc_mutex_t *lazy_mutex(boc_mutex_t *mu, _Atomic int *state) {
  int s = atomic_load_explicit(state, BOC_ACQUIRE);
  if (s != 2) {
    int expected = 0;
    if (atomic_compare_exchange_strong_explicit(state, &expected, 1,
                                                BOC_ACQ_REL, BOC_ACQUIRE)) {
      boc_mutex_init(mu);
      atomic_store_explicit(state, 2, BOC_RELEASE);
    } else {
      while (atomic_load_explicit(state, BOC_ACQUIRE) != 2) {
        boc_cpu_relax();
      }
    }
  }
  return mu;
}

static void failed_prune(int all);
static _Atomic int failed_dirty;

static boc_mutex_t *orphans_mu(void) {
  static boc_mutex_t mu;
  static _Atomic int state;
  return lazy_mutex(&mu, &state);
}
static orphan_t *orphans; /* guarded by orphans_mu() */

/* The owner of an orphaned pinned value: only the pinned thread frees it
 * (its destroy hook runs there), not just any thread of main. */
#define PINNED_THREAD ((int64_t)-3)

static int current_interp_is(int64_t id) {
  PyThreadState *ts = boc_thread_state_unchecked();
  return ts != NULL &&
         PyInterpreterState_GetID(PyThreadState_GetInterpreter(ts)) == id;
}

static void free_live_value(boc_cown_t *c) {
  int32_t pin = c->pin_ntype;
  if (pin > 0) {
    pins_lock();
    pins_remove(c);
    boc_mutex_unlock(&pins_mu);
  }
  PyObject *v = c->value;
  c->value = NULL;
  if (v == NULL) {
    return;
  }
  int64_t owner = atomic_load_explicit(&c->owner, BOC_ACQUIRE);
  if (boc_cown_is_pinned(c)) {
    /* A pinned value is freed (and destroyed) on the pinned thread only:
     * elsewhere it waits for the next pump(), wait() or the exit. */
    if (boc_on_pinned_thread()) {
      boc_ntype_pinned_destroy(pin, v);
      Py_DECREF(v);
      return;
    }
    owner = PINNED_THREAD;
  } else if (current_interp_is(owner)) {
    boc_ntype_pinned_destroy(c->pin_ntype, v);
    Py_DECREF(v);
    return;
  }
  orphan_t *o = malloc(sizeof(*o));
  if (o == NULL) {
    return; /* cannot queue it: leak rather than free it in the wrong place */
  }
  o->owner = owner;
  o->pin_ntype = pin;
  o->value = v;
  boc_mutex_lock(orphans_mu());
  o->next = orphans;
  orphans = o;
  boc_mutex_unlock(orphans_mu());
}

void boc_cown_collect_orphans(void) {
  if (atomic_load_explicit(&failed_dirty, BOC_RELAXED) &&
      boc_is_main_interp()) {
    failed_prune(0); /* report the dropped ones while Python is whole */
  }
  if (orphans == NULL) { /* racy peek: a miss is collected next time */
    return;
  }
  int64_t me = boc_current_interp_id();
  int pinned_thread = boc_on_pinned_thread();
  orphan_t *mine = NULL;
  boc_mutex_lock(orphans_mu());
  orphan_t **link = &orphans;
  while (*link != NULL) {
    orphan_t *o = *link;
    if (o->owner == me || (pinned_thread && o->owner == PINNED_THREAD)) {
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

/* Reports a cown holding an exception nobody looked at (neither read its
 * value nor cleared its flag), once, through bocpy._errors.report_unhandled
 * (behavior, where defined, where it failed, traceback).  Only where this
 * thread runs Python: the report needs the exception itself. */
static void report_unhandled(boc_cown_t *c) {
  uint32_t flags = atomic_load_explicit(&c->flags, BOC_RELAXED);
  if (!(flags & BOC_COWN_EXCEPTION) || (flags & BOC_COWN_REPORTED) ||
      boc_thread_state_unchecked() == NULL) {
    return;
  }
  /* relaxed: the flag only stops a second report of the same record. */
  flags = atomic_fetch_or_explicit(&c->flags, BOC_COWN_REPORTED, BOC_RELAXED);
  if (flags & BOC_COWN_REPORTED) {
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
  PyObject *r = NULL;
  if (value != NULL) {
    PyObject *mod = PyImport_ImportModule("bocpy._errors");
    r = mod != NULL ? PyObject_CallMethod(mod, "report_unhandled", "KO",
                                          (unsigned long long)c->id, value)
                    : NULL;
    Py_XDECREF(mod);
  }
  if (r == NULL) { /* Python cannot format it now: say what we can */
    PyObject *cause = PyErr_GetRaisedException();
    PyObject *s = cause != NULL ? PyObject_Repr(cause) : NULL;
    const char *why = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
    if (why == NULL && value == NULL) {
      why = "a behavior still holds it";
    }
    PyErr_Clear();
    fprintf(stderr,
            "bocpy: Cown #%llu holds an exception that nobody handled; it "
            "could not be decoded here (%s)\n",
            (unsigned long long)c->id, why != NULL ? why : "no details");
    Py_XDECREF(s);
    Py_XDECREF(cause);
  }
  Py_XDECREF(r);
  Py_XDECREF(value);
  PyErr_SetRaisedException(exc);
}

/* ---- results that hold an exception ----------------------------------------
 * Every result cown that a behavior stored an exception in is remembered
 * here (with a strong reference), so that the ones nobody handled can be
 * reported while Python is still whole: at the next stop of the runtime
 * for those nobody references any more, and at exit for the rest.  Guarded
 * by failed_mu(); process-wide because any worker may add to it. */
static boc_cown_t **failed;
static size_t nfailed, failed_cap;
/* failed_dirty (declared above): set when an entry was added since the
 * last prune (relaxed: a hint; a miss is pruned at the next stop). */

static boc_mutex_t *failed_mu(void) {
  static boc_mutex_t mu;
  static _Atomic int state;
  return lazy_mutex(&mu, &state);
}

/* Keeps the entries for which keep() holds; returns the others in a new
 * array (*n of them) for the caller to decref outside the lock. */
static boc_cown_t **failed_filter(int all, size_t *n) {
  boc_mutex_lock(failed_mu());
  boc_cown_t **out = nfailed > 0 ? malloc(nfailed * sizeof(*out)) : NULL;
  size_t kept = 0;
  *n = 0;
  for (size_t i = 0; i < nfailed; i++) {
    boc_cown_t *c = failed[i];
    uint32_t flags = atomic_load_explicit(&c->flags, BOC_RELAXED);
    /* refs == 1: only this list holds it (nobody can take another). */
    int drop = all || !(flags & BOC_COWN_EXCEPTION) ||
               (flags & BOC_COWN_REPORTED) ||
               atomic_load_explicit(&c->refs, BOC_ACQUIRE) == 1;
    if (drop && out != NULL) {
      atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_TRACKED,
                                BOC_RELAXED);
      out[(*n)++] = c;
    } else {
      failed[kept++] = c;
    }
  }
  nfailed = kept;
  atomic_store_explicit(&failed_dirty, 0, BOC_RELAXED);
  boc_mutex_unlock(failed_mu());
  return out;
}

static void failed_prune(int all) {
  size_t n;
  boc_cown_t **drop = failed_filter(all, &n);
  for (size_t i = 0; i < n; i++) {
    if (all) {
      report_unhandled(drop[i]);
    }
    boc_cown_decref(drop[i]); /* the last reference reports it */
  }
  free(drop);
}

void boc_cown_note_failed(boc_cown_t *c) {
  /* relaxed: the flag only enables the early report in boc_cown_decref;
   * a decref that misses it reports when the list lets go instead. */
  boc_cown_incref(c); /* the list's reference, before it is flagged */
  if (atomic_fetch_or_explicit(&c->flags, BOC_COWN_TRACKED, BOC_RELAXED) &
      BOC_COWN_TRACKED) {
    /* Already in the list: drop the reference again (the caller holds
     * another, so this is never the last, and must not report; acq_rel
     * as in boc_cown_decref). */
    atomic_fetch_sub_explicit(&c->refs, 1, BOC_ACQ_REL);
    return;
  }
  boc_mutex_lock(failed_mu());
  int full = nfailed == failed_cap;
  if (full && nfailed >= 1024) {
    boc_mutex_unlock(failed_mu());
    failed_prune(0); /* amortised: the list at least halves or doubles */
    boc_mutex_lock(failed_mu());
    full = nfailed == failed_cap;
  }
  if (full) {
    size_t cap = failed_cap != 0 ? failed_cap * 2 : 64;
    boc_cown_t **grown = realloc(failed, cap * sizeof(*grown));
    if (grown == NULL) {
      boc_mutex_unlock(failed_mu());
      atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_TRACKED,
                                BOC_RELAXED);
      boc_cown_decref(c); /* not remembered: reported when it dies */
      return;
    }
    failed = grown;
    failed_cap = cap;
  }
  failed[nfailed++] = c;
  atomic_store_explicit(&failed_dirty, 1, BOC_RELAXED);
  boc_mutex_unlock(failed_mu());
}

void boc_cown_report_unhandled_all(void) { failed_prune(1); }

/* Whether this thread can report c now: it runs Python, and c's value is
 * parked or held by this thread's interpreter. */
static int reportable_here(const boc_cown_t *c) {
  if (boc_thread_state_unchecked() == NULL) {
    return 0;
  }
  int64_t owner = atomic_load_explicit(&c->owner, BOC_ACQUIRE);
  return owner == BOC_NO_OWNER || owner == boc_current_interp_id();
}

/* The last reference is gone: report an unhandled exception, free. */
static void cown_free(boc_cown_t *c) {
  untrack(c);
  report_unhandled(c);
  /* A live value (a pinned one included) is only ever released in its own
   * interpreter: elsewhere it is queued for that interpreter. */
  free_live_value(c);
  boc_payload_free(c->payload);
  free(c->evict_msg);
  free(c);
  atomic_fetch_sub_explicit(&live_cowns, 1, BOC_RELAXED);
}

/* A holder let go of c, leaving one reference, and c was in the failed list
 * when it did: if the list still holds it, that is the only reference left,
 * nobody can handle the exception any more, so report it here and now (a
 * nested behavior's result, a result handle that was dropped).  The list's
 * reference is checked under its lock (removal clears TRACKED under the
 * lock before letting go), and a reference of our own keeps c alive while
 * the report runs Python. */
static void early_report(boc_cown_t *c) {
  if (boc_thread_state_unchecked() == NULL) {
    return;
  }
  boc_mutex_lock(failed_mu());
  int listed = (atomic_load_explicit(&c->flags, BOC_RELAXED) &
                BOC_COWN_TRACKED) != 0;
  if (listed) {
    boc_cown_incref(c);
  }
  boc_mutex_unlock(failed_mu());
  if (!listed) {
    return;
  }
  if (reportable_here(c)) {
    report_unhandled(c);
  }
  /* Our own reference, without another early report (acq_rel as in
   * boc_cown_decref); the last one frees. */
  if (atomic_fetch_sub_explicit(&c->refs, 1, BOC_ACQ_REL) == 1) {
    cown_free(c);
  }
}

void boc_cown_decref(boc_cown_t *c) {
  /* Read before the decrement: once it is done, another holder may free c
   * at any moment, so c is not touched afterwards unless this was the last
   * reference (or early_report re-checks the failed list's under its lock).
   * relaxed: a hint; early_report re-reads the flag under the lock. */
  uint32_t flags = atomic_load_explicit(&c->flags, BOC_RELAXED);
  /* acq_rel: the thread that frees must see every other holder's writes. */
  intptr_t was = atomic_fetch_sub_explicit(&c->refs, 1, BOC_ACQ_REL);
  if (was == 2 && (flags & BOC_COWN_TRACKED) &&
      (flags & BOC_COWN_EXCEPTION) && !(flags & BOC_COWN_REPORTED)) {
    early_report(c);
    return;
  }
  if (was == 1) {
    cown_free(c);
  }
}

/* ---- homes: values resting in a worker --------------------------------------
 * A behavior on worker X that releases an argument cown whose value is not
 * a cheap scalar leaves the value live in X (flag BOC_COWN_RESTING) and
 * lists the cown in X's home, which holds a reference to it.  Everything
 * about the list happens on X's thread under X's GIL.  Another interpreter
 * that takes the cown (holding its 2PL lock) pushes it on X's request
 * stack and pokes X; X encodes the value, frees the live object and parks
 * the cown; the taker sees the owner change and decodes.  If X does not
 * serve the request promptly (it is running a body, or waiting), the taker
 * encodes the value itself, in X's interpreter: it drops its own GIL,
 * takes X's GIL on a thread state of its own for X (home_take_over), and
 * evicts there.  "Everything on X's thread" above thus reads "under X's
 * GIL"; an eviction is claimed by BOC_COWN_EVICTING so that two never run
 * at once on one cown.  See docs/model.md ("Values stay where they are"). */
struct boc_home {
  int worker;
  boc_home_poke_fn poke;
  void *poke_arg;
  /* Requests: a Treiber stack through boc_cown_t.evict_next; each entry
   * holds a reference to its cown. */
  _Atomic(boc_cown_t *) requests;
  struct boc_home *all_next; /* every home ever made (guarded by homes_mu) */
  int64_t interp;            /* written once by bind, before any listing */
  PyInterpreterState *istate; /* likewise: X's interpreter, for take-overs */
  _Atomic int busy;           /* X is running a behavior (a hint) */
  /* Take-overs in flight (thread states of X on other threads), and
   * whether X's interpreter is about to end (no new take-over then). */
  boc_mutex_t mu;
  boc_cond_t cv;
  int inflight, sealed; /* guarded by mu */
  /* Under X's GIL (X's thread, or a taker holding X's GIL): */
  boc_cown_t **live;
  size_t nlive, cap, prune_at;
};

/* This thread's home (worker threads only).  A thread-local because a
 * worker thread runs exactly one interpreter, the home's. */
static _Thread_local boc_home_t *tls_home;

/* Every home ever made, so that a pointer a cown still holds is never
 * dangling and the records stay reachable (process-global: a few hundred
 * bytes per worker interpreter ever created). */
static boc_mutex_t homes_mu;
static boc_once_t homes_once = BOC_ONCE_INIT;
static boc_home_t *homes; /* guarded by homes_mu */

static void homes_init(void) { boc_mutex_init(&homes_mu); }

enum { HOME_PRUNE_MIN = 64 };

boc_home_t *boc_home_new(int worker, boc_home_poke_fn poke, void *arg) {
  boc_home_t *h = calloc(1, sizeof(*h));
  if (h == NULL) {
    return NULL;
  }
  h->worker = worker;
  h->poke = poke;
  h->poke_arg = arg;
  atomic_init(&h->requests, NULL);
  atomic_init(&h->busy, 0);
  if (boc_mutex_init(&h->mu) != 0) {
    free(h);
    return NULL;
  }
  if (boc_cond_init(&h->cv) != 0) {
    boc_mutex_destroy(&h->mu);
    free(h);
    return NULL;
  }
  h->prune_at = HOME_PRUNE_MIN;
  boc_once(&homes_once, homes_init);
  boc_mutex_lock(&homes_mu);
  h->all_next = homes;
  homes = h;
  boc_mutex_unlock(&homes_mu);
  return h;
}

void boc_home_bind(boc_home_t *h) {
  tls_home = h;
  if (h != NULL) {
    h->interp = boc_current_interp_id();
    h->istate = PyInterpreterState_Get();
  }
}

void boc_home_set_busy(boc_home_t *h, int busy) {
  if (h != NULL) {
    /* relaxed: a hint for takers (take over at once, or spin first);
     * correctness never depends on it. */
    atomic_store_explicit(&h->busy, busy, BOC_RELAXED);
  }
}

size_t boc_home_count(const boc_home_t *h) { return h != NULL ? h->nlive : 0; }

int boc_cown_home_worker(const boc_cown_t *c) {
  /* acquire: pairs with the worker's release store when it listed c. */
  boc_home_t *h = atomic_load_explicit(&((boc_cown_t *)c)->home, BOC_ACQUIRE);
  return h != NULL ? h->worker : -1;
}

int boc_cown_held_here(const boc_cown_t *c) {
  /* relaxed on flags: RESTING is written only by the owner's thread, and
   * we only care when the owner is us. */
  return atomic_load_explicit(&((boc_cown_t *)c)->owner, BOC_ACQUIRE) ==
             boc_current_interp_id() &&
         !(atomic_load_explicit(&((boc_cown_t *)c)->flags, BOC_RELAXED) &
           BOC_COWN_RESTING);
}

/* Lists c in h (h's thread): the list takes a reference.  -1 on OOM. */
static int home_list(boc_home_t *h, boc_cown_t *c) {
  if (h->nlive == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    boc_cown_t **live = realloc(h->live, cap * sizeof(*live));
    if (live == NULL) {
      return -1;
    }
    h->live = live;
    h->cap = cap;
  }
  boc_cown_incref(c);
  c->home_slot = (uint32_t)h->nlive;
  h->live[h->nlive++] = c;
  /* release: a taker that reads home (acquire) sees h's fields. */
  atomic_store_explicit(&c->home, h, BOC_RELEASE);
  return 0;
}

/* Unlists c from home `in` (under in's GIL; nothing to do if c is not
 * listed there), dropping the list's reference: the caller must hold
 * another one or not touch c again. */
static void home_unlist_in(boc_home_t *in, boc_cown_t *c) {
  boc_home_t *h = atomic_load_explicit(&c->home, BOC_RELAXED);
  if (h == NULL || h != in) {
    return;
  }
  size_t i = c->home_slot;
  boc_cown_t *last = h->live[--h->nlive];
  h->live[i] = last;
  last->home_slot = (uint32_t)i;
  /* release: pairs with boc_cown_home_worker and evict_wait. */
  atomic_store_explicit(&c->home, NULL, BOC_RELEASE);
  boc_cown_decref(c);
}

/* Unlists c from this thread's home (see home_unlist_in). */
static void home_unlist(boc_cown_t *c) { home_unlist_in(tls_home, c); }

static void clear_stuck(boc_cown_t *c) {
  /* relaxed: the flag is written only by the owner's thread, which is
   * us, and read by takers after an acquire of the flags. */
  if (atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_STUCK) {
    atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_STUCK,
                              BOC_RELAXED);
    free(c->evict_msg);
    c->evict_msg = NULL;
  }
}

/* The current exception (cleared) as "worker K: message", malloc'd. */
static char *stuck_reason(const boc_home_t *h) {
  PyObject *exc = PyErr_GetRaisedException();
  PyObject *s = exc != NULL ? PyObject_Str(exc) : NULL;
  const char *text = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
  if (text == NULL) {
    PyErr_Clear();
    text = "unknown error";
  }
  size_t n = strlen(text) + 64;
  char *msg = malloc(n);
  if (msg != NULL) {
    snprintf(msg, n, "worker %d: %s", h->worker, text);
  }
  Py_XDECREF(s);
  Py_XDECREF(exc);
  return msg;
}

static int stuck_error(const boc_cown_t *c) {
  PyErr_Format(PyExc_TypeError,
               "the value of Cown #%llu cannot leave the worker interpreter "
               "it rests in, so it cannot be used here (it stays there "
               "unchanged; a behavior that runs there still sees it): %s",
               (unsigned long long)c->id,
               c->evict_msg != NULL ? c->evict_msg : "it cannot be encoded");
  return -1;
}

/* Moves the value of c (resting in h) out: encode it here, free the live
 * object, park the cown.  On an encoding error the value stays, c is
 * flagged stuck (with the reason) and -1 is returned, no exception set.
 * h's thread, GIL held; the caller holds a reference to c. */
static int evict_one(boc_home_t *h, boc_cown_t *c) {
  /* Claim the eviction: the encoding runs Python, which may let another
   * thread holding h's GIL (X itself, or another taker) try the same cown.
   * acquire: a later claimer sees the finished eviction's writes. */
  if (atomic_fetch_or_explicit(&c->flags, BOC_COWN_EVICTING, BOC_ACQUIRE) &
      BOC_COWN_EVICTING) {
    return 0; /* under way elsewhere: the waiters see its outcome */
  }
  uint32_t f = atomic_load_explicit(&c->flags, BOC_RELAXED);
  if (!(f & BOC_COWN_RESTING) || (f & BOC_COWN_STUCK) ||
      atomic_load_explicit(&c->home, BOC_RELAXED) != h) {
    /* Moved out (or taken back by a behavior here) meanwhile.
     * release: pairs with the claim above. */
    atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_EVICTING,
                              BOC_RELEASE);
    return 0;
  }
  PyObject *v = c->value;
  boc_payload_t *p = NULL;
  if (v != NULL && v != Py_None) {
    p = boc_payload_encode(v);
    if (p == NULL) {
      char *msg = stuck_reason(h);
      free(c->evict_msg);
      c->evict_msg = msg;
      /* release: publishes evict_msg to the taker that sees the flag. */
      atomic_fetch_or_explicit(&c->flags, BOC_COWN_STUCK, BOC_RELEASE);
      atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_EVICTING,
                                BOC_RELEASE);
      return -1;
    }
  }
  boc_cown_set_payload(c, p);
  note_payload(c, p);
  c->value = NULL;
  /* relaxed: the owner's own flags, published by the owner store below. */
  atomic_fetch_and_explicit(
      &c->flags, ~(uint32_t)(BOC_COWN_RESTING | BOC_COWN_EVICTING),
      BOC_RELAXED);
  home_unlist_in(h, c);
  /* release: the taker's acquire of the owner sees the payload. */
  atomic_store_explicit(&c->owner, BOC_NO_OWNER, BOC_RELEASE);
  Py_XDECREF(v); /* our object: after the hand-over, to shorten the wait */
  return 0;
}

static void home_push(boc_home_t *h, boc_cown_t *c) {
  boc_cown_t *top = atomic_load_explicit(&h->requests, BOC_RELAXED);
  do {
    c->evict_next = top;
    /* release: the worker's exchange (acquire) sees evict_next. */
  } while (!atomic_compare_exchange_weak_explicit(&h->requests, &top, c,
                                                  BOC_RELEASE, BOC_RELAXED));
}

void boc_home_serve(boc_home_t *h) {
  /* relaxed: a cheap poll after every behavior; a request pushed just
   * after it is served at the next poll (the pusher also pokes us). */
  if (h == NULL || atomic_load_explicit(&h->requests, BOC_RELAXED) == NULL) {
    return;
  }
  /* acquire: pairs with home_push's release. */
  boc_cown_t *list = atomic_exchange_explicit(&h->requests, NULL, BOC_ACQUIRE);
  PyObject *exc = PyErr_GetRaisedException(); /* the caller's, kept */
  boc_cown_t *later = NULL;
  while (list != NULL) {
    boc_cown_t *c = list;
    list = c->evict_next;
    uint32_t f = atomic_load_explicit(&c->flags, BOC_RELAXED);
    int here = atomic_load_explicit(&c->home, BOC_RELAXED) == h;
    if (here && !(f & BOC_COWN_RESTING)) {
      /* Held by a behavior here right now: only a taker that bypasses the
       * 2PL locks (Cown.acquire()) can ask for it; serve it later. */
      c->evict_next = later;
      later = c;
      continue;
    }
    if (here && !(f & BOC_COWN_STUCK)) {
      (void)evict_one(h, c);
    }
    boc_cown_decref(c); /* the request's reference */
  }
  while (later != NULL) {
    boc_cown_t *c = later;
    later = c->evict_next;
    home_push(h, c);
  }
  PyErr_SetRaisedException(exc);
}

/* Moves every value resting in h and not stuck out (h's interpreter, h's
 * GIL held by this thread). */
static void evict_resting(boc_home_t *h) {
  for (size_t i = h->nlive; i-- > 0;) {
    if (i >= h->nlive) {
      continue; /* encoding ran Python that dropped some: re-check */
    }
    boc_cown_t *c = h->live[i];
    uint32_t f = atomic_load_explicit(&c->flags, BOC_RELAXED);
    if ((f & BOC_COWN_RESTING) && !(f & BOC_COWN_STUCK)) {
      boc_cown_incref(c);
      (void)evict_one(h, c);
      boc_cown_decref(c);
    }
  }
}

/* Runs fn(h, arg) in h's interpreter from this thread, which holds no GIL:
 * a thread state of our own for h's interpreter takes h's GIL (a running X
 * lets it go at its next eval-breaker check, a waiting X does not hold it),
 * fn runs there, any exception it leaves is cleared, and the thread state
 * is gone again before we return.  Nothing is done once h is sealed: its
 * interpreter is about to end, and its worker moves every value out itself
 * first.  The visit is counted in h->inflight meanwhile, so that
 * boc_home_close waits for it before the interpreter ends. */
static void home_visit(boc_home_t *h, void (*fn)(boc_home_t *, void *),
                       void *arg) {
  boc_mutex_lock(&h->mu);
  int ok = !h->sealed && h->istate != NULL;
  if (ok) {
    h->inflight++;
  }
  boc_mutex_unlock(&h->mu);
  if (!ok) {
    return;
  }
  PyThreadState *ts = PyThreadState_New(h->istate);
  if (ts != NULL) {
    PyEval_RestoreThread(ts);
    fn(h, arg);
    PyErr_Clear();
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent(); /* releases h's GIL */
  }
  boc_mutex_lock(&h->mu);
  if (--h->inflight == 0 && h->sealed) {
    boc_cond_broadcast(&h->cv);
  }
  boc_mutex_unlock(&h->mu);
}

static void visit_evict_one(boc_home_t *h, void *c) {
  (void)evict_one(h, c); /* an error flags c stuck, with the reason */
}

static void visit_evict_resting(boc_home_t *h, void *unused) {
  (void)unused;
  evict_resting(h);
}

/* Encodes c's value in h's interpreter from this thread, which holds no
 * GIL (see home_visit). */
static void home_take_over(boc_home_t *h, boc_cown_t *c) {
  home_visit(h, visit_evict_one, c);
}

/* Moves every value resting in h out, from this thread (which holds no
 * GIL), in h's interpreter as home_take_over does.  Safe while behaviors
 * run: a resting value is held by no behavior, and whoever wants it next
 * (h's own thread, or a taker) synchronises on h's GIL and the owner. */
static void home_evict_all(boc_home_t *h) {
  home_visit(h, visit_evict_resting, NULL);
}

void boc_homes_evict_all(void) {
  boc_once(&homes_once, homes_init);
  boc_mutex_lock(&homes_mu);
  boc_home_t *first = homes; /* records are only ever prepended, never freed */
  boc_mutex_unlock(&homes_mu);
  if (first == NULL) {
    return;
  }
  PyThreadState *saved = PyEval_SaveThread(); /* never two GILs at once */
  for (boc_home_t *h = first; h != NULL; h = h->all_next) {
    home_evict_all(h);
  }
  PyEval_RestoreThread(saved);
}

/* Spins before a taker encodes a value itself: when its home is idle (the
 * home's own serve is cheaper: no thread state, no GIL hand-over), and
 * when it is running a behavior (a short body ends, and its worker serves
 * the request, sooner than a GIL hand-over, which can take a switch
 * interval). */
enum {
  TAKE_OVER_SPINS = 4096,
  TAKE_OVER_BUSY_SPINS = 256,
  TAKE_OVER_RETRY = 1024
};

/* Whoever wants c while `owner` (not us) has it: if its value rests in a
 * worker's home, ask that worker to move it out and wait until it did (0:
 * retry the take) or could not (-1, TypeError naming the cown).  If the
 * worker is running a behavior, or does not answer, within a short spin,
 * move it out ourselves in its interpreter (home_take_over).  We wait
 * without our own GIL: a thread never waits for a value holding its GIL,
 * so a taker of a value resting here can always take ours over, and no
 * thread ever holds two GILs -- no cycle of waits (docs/model.md). */
static int evict_wait(boc_cown_t *c, int64_t owner) {
  boc_home_t *h = atomic_load_explicit(&c->home, BOC_ACQUIRE);
  if (h == NULL || h->interp != owner || h == tls_home) {
    if (atomic_load_explicit(&c->owner, BOC_ACQUIRE) != owner) {
      return 0; /* moved meanwhile: take it again */
    }
    PyErr_SetString(PyExc_RuntimeError,
                    "cown is owned by another interpreter");
    return -1;
  }
  /* acquire: the reason is read after the flag (see evict_one). */
  if (atomic_load_explicit(&c->flags, BOC_ACQUIRE) & BOC_COWN_STUCK) {
    return stuck_error(c);
  }
  boc_cown_incref(c); /* the request's reference */
  home_push(h, c);
  h->poke(h->poke_arg);
  PyThreadState *saved = PyEval_SaveThread();
  int stuck = 0;
  unsigned next_take = TAKE_OVER_SPINS;
  for (unsigned spins = 0;; spins++) {
    /* acquire: pairs with evict_one's release of the owner. */
    if (atomic_load_explicit(&c->owner, BOC_ACQUIRE) != owner) {
      break;
    }
    if (atomic_load_explicit(&c->flags, BOC_ACQUIRE) & BOC_COWN_STUCK) {
      stuck = 1;
      break;
    }
    /* relaxed: busy is a hint (see boc_home_set_busy). */
    if (spins >= next_take ||
        (spins == TAKE_OVER_BUSY_SPINS &&
         atomic_load_explicit(&h->busy, BOC_RELAXED))) {
      home_take_over(h, c);
      /* Not moved by it (an eviction under way elsewhere, a sealed home,
       * a value a Cown.acquire() there holds): wait, try again later. */
      next_take = spins + TAKE_OVER_SPINS + TAKE_OVER_RETRY;
      continue;
    }
    if (spins < 64) {
      boc_cpu_relax();
    } else if (spins < 4096) {
      boc_thread_yield();
    } else {
      boc_sleep_ns(20 * 1000);
    }
  }
  PyEval_RestoreThread(saved);
  return stuck ? stuck_error(c) : 0;
}

/* Drops the cowns only h's list still references (h's thread, GIL held),
 * once the list has doubled since the last pass: amortised O(1). */
static void home_maybe_prune(boc_home_t *h) {
  if (h->nlive < h->prune_at) {
    return;
  }
  for (size_t i = h->nlive; i-- > 0;) {
    if (i >= h->nlive) {
      continue;
    }
    boc_cown_t *c = h->live[i];
    /* acquire: as in boc_cown_decref, the freeing thread must see every
     * other holder's writes.  1 = only the list: nobody can take another
     * reference any more. */
    if (atomic_load_explicit(&c->refs, BOC_ACQUIRE) == 1 &&
        (atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_RESTING)) {
      PyObject *v = c->value;
      c->value = NULL;
      home_unlist(c); /* the last reference: frees the record */
      Py_XDECREF(v);
    }
  }
  h->prune_at = h->nlive * 2 > HOME_PRUNE_MIN ? h->nlive * 2 : HOME_PRUNE_MIN;
}

void boc_cown_release_rest(boc_cown_t *c, PyObject **error) {
  boc_home_t *h = tls_home;
  if (h == NULL || boc_cown_is_pinned(c) || c->value == NULL ||
      atomic_load_explicit(&c->owner, BOC_RELAXED) != h->interp ||
      boc_payload_cheap(c->value)) {
    boc_cown_release_or_replace(c, error);
    return;
  }
  if (c->eager_left > 0) {
    /* It travels (see boc_cown_acquire): encoded now, no take-over later. */
    c->eager_left--;
    home_unlist(c); /* if it rested here before: the list's reference */
    boc_cown_release_or_replace(c, error);
    return;
  }
  if (atomic_load_explicit(&c->home, BOC_RELAXED) != h &&
      home_list(h, c) < 0) {
    boc_cown_release_or_replace(c, error); /* out of memory: as before */
    return;
  }
  if (error != NULL) {
    *error = NULL;
  }
  clear_stuck(c);
  /* The live value is the truth now: the old payload is stale. */
  boc_cown_set_payload(c, NULL);
  /* relaxed: the owner's own flag (read by this thread, or by takers
   * after the 2PL hand-over, which orders it). */
  atomic_fetch_or_explicit(&c->flags, BOC_COWN_RESTING, BOC_RELAXED);
  home_maybe_prune(h);
}

void boc_home_flush(boc_home_t *h) {
  if (h == NULL) {
    return;
  }
  boc_home_serve(h);
  PyObject *exc = PyErr_GetRaisedException();
  evict_resting(h);
  PyErr_SetRaisedException(exc);
}

void boc_home_close(boc_home_t *h) {
  if (h == NULL) {
    return;
  }
  /* Seal: no new take-over, and wait (without our GIL: a take-over in
   * flight needs it) until the thread states of ours on other threads are
   * gone -- Py_EndInterpreter refuses to end with any left. */
  Py_BEGIN_ALLOW_THREADS
  boc_mutex_lock(&h->mu);
  h->sealed = 1;
  while (h->inflight > 0) {
    boc_cond_wait(&h->cv, &h->mu);
  }
  boc_mutex_unlock(&h->mu);
  Py_END_ALLOW_THREADS
  boc_home_flush(h);
  PyObject *exc = PyErr_GetRaisedException();
  while (h->nlive > 0) {
    /* Stuck: the value cannot leave and its interpreter ends.  Say so in
     * the cown instead of losing it silently. */
    boc_cown_t *c = h->live[h->nlive - 1];
    boc_cown_incref(c);
    PyObject *err = PyUnicode_FromFormat(
        "the value of Cown #%llu was lost: worker %d ended while holding it "
        "and it could not be encoded (%s)",
        (unsigned long long)c->id, h->worker,
        c->evict_msg != NULL ? c->evict_msg : "unknown error");
    PyObject *e = err != NULL ? PyObject_CallOneArg(PyExc_TypeError, err)
                              : NULL;
    Py_XDECREF(err);
    boc_payload_t *p = e != NULL ? boc_payload_encode(e) : NULL;
    Py_XDECREF(e);
    PyErr_Clear();
    PyObject *v = c->value;
    c->value = NULL;
    clear_stuck(c);
    boc_cown_set_payload(c, p);
    atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_RESTING,
                              BOC_RELAXED);
    home_unlist(c);
    atomic_store_explicit(&c->owner, BOC_NO_OWNER, BOC_RELEASE);
    if (p != NULL) {
      uint32_t was = atomic_fetch_or_explicit(&c->flags, BOC_COWN_EXCEPTION,
                                              BOC_RELAXED);
      if (!(was & BOC_COWN_EXCEPTION)) {
        boc_cown_note_failed(c); /* reported if nobody reads it */
      }
    }
    Py_XDECREF(v);
    boc_cown_decref(c);
  }
  /* Requests that arrived after the values left: drop their references. */
  boc_cown_t *list = atomic_exchange_explicit(&h->requests, NULL, BOC_ACQUIRE);
  while (list != NULL) {
    boc_cown_t *c = list;
    list = c->evict_next;
    boc_cown_decref(c);
  }
  free(h->live);
  h->live = NULL;
  h->nlive = h->cap = 0;
  PyErr_SetRaisedException(exc);
}

/* ---- ownership ------------------------------------------------------------ */

static int not_owner_error(const boc_cown_t *c) {
  PyErr_Format(PyExc_RuntimeError,
               "The current interpreter does not own this cown (Cown #%llu): "
               "use it inside a behavior that names it (@when(cown)), or on "
               "the main interpreter after bocpy.wait()",
               (unsigned long long)c->id);
  return -1;
}

static int evict_wait(boc_cown_t *c, int64_t owner);

/* Values that travel: a value that an interpreter (a worker, or main for
 * a pinned behavior or a read after quiesce()) had to take from a
 * worker's home (a take-over, or a request that worker served) is
 * encoded at once by its next EAGER_RELEASES releases instead of resting,
 * as long as its encoding stays within EAGER_MAX_BYTES.  Resting saves the
 * encoding when the value stays in its worker; for a small value that
 * moves between busy workers (a bank's accounts, scheduled from main over
 * two workers) the taker's wait for a busy home costs far more than the
 * encoding (issue 33: 191k -> 320k transfers/s of README-style Account
 * objects at 2 workers).  A large value always rests: encoding it again
 * costs more than the wait. */
enum { EAGER_RELEASES = 64, EAGER_MAX_BYTES = 4096 };

int boc_cown_acquire(boc_cown_t *c) {
  int64_t me = boc_current_interp_id();
  if (boc_cown_is_pinned(c)) {
    /* Held by main forever: only a registered type's acquire hook runs,
     * and only on the pinned thread. */
    (void)me;
    return boc_on_pinned_thread()
               ? boc_ntype_pinned_acquire(c->pin_ntype, c->value)
               : pinned_thread_error("acquired");
  }
  int moved = 0;
  for (;;) {
    int64_t expected = BOC_NO_OWNER;
    /* acquire: we must see the payload written by the releasing owner. */
    if (atomic_compare_exchange_strong_explicit(&c->owner, &expected, me,
                                                BOC_ACQUIRE, BOC_ACQUIRE)) {
      break;
    }
    if (expected == me) {
      /* Held here already, or resting here: the live value is ours.
       * relaxed: the flag is only written by this interpreter's thread. */
      atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_RESTING,
                                BOC_RELAXED);
      return 0;
    }
    /* Owned elsewhere: if it rests in a worker, that worker moves it out
     * for us (evict_wait); else it is really held by someone else. */
    if (evict_wait(c, expected) < 0) {
      return -1;
    }
    moved = 1;
  }
  if (moved) {
    /* We had to wait for its value to leave another worker: it travels
     * between workers, so its next releases encode it at once. */
    c->eager_left =
        c->payload != NULL && c->payload->size > EAGER_MAX_BYTES
            ? 0
            : EAGER_RELEASES;
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
    /* Only a registered type's release hook runs (e.g. flush), and only
     * on the pinned thread. */
    (void)me;
    return boc_on_pinned_thread()
               ? boc_ntype_pinned_release(c->pin_ntype, c->value)
               : pinned_thread_error("released");
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
  clear_stuck(c);
  /* relaxed: the flag is only written by the owner's thread. */
  atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_RESTING,
                            BOC_RELAXED);
  if (c->value == Py_None) {
    boc_cown_set_payload(c, NULL); /* None needs no payload */
  } else {
    boc_payload_t *p = boc_payload_encode(c->value);
    if (p != NULL) {
      if (p->size > EAGER_MAX_BYTES) {
        c->eager_left = 0; /* large: rests from its next release on */
      }
      boc_cown_set_payload(c, p);
      note_payload(c, p);
    } else {
      rc = -1; /* keep the previous payload: the last good value */
    }
  }
  Py_CLEAR(c->value);
  home_unlist(c); /* the caller holds a reference: c stays alive */
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
  if (!boc_cown_held_here(c)) {
    not_owner_error(c);
    return NULL;
  }
  if (boc_cown_is_pinned(c) && !boc_on_pinned_thread()) {
    pinned_thread_error("read");
    return NULL;
  }
  return c->value != NULL ? c->value : Py_None;
}

/* A pinned cown's new value: the registry follows it; the old value's
 * destroy hook runs when destroy_old (pinned thread). */
static int set_pinned_value(boc_cown_t *c, PyObject *v, int destroy_old) {
  if (!boc_on_pinned_thread()) {
    return pinned_thread_error("written");
  }
  if (v == c->value) {
    return 0;
  }
  int32_t pin = boc_ntype_pinned_of(v);
  int32_t old_pin = c->pin_ntype;
  PyObject *old = c->value;
  if (pin > 0 || old_pin > 0) {
    pins_lock();
    boc_cown_t *holder = pin > 0 ? pins_holder(v, c) : NULL;
    int rc = 0;
    if (holder != NULL) {
      rc = pinned_twice_error(v, holder);
    } else if (pin > 0 && old_pin == 0) {
      rc = pins_add(c);
    } else if (pin == 0) {
      pins_remove(c);
    }
    if (rc == 0) {
      c->value = Py_NewRef(v);
      c->pin_ntype = pin;
    }
    boc_mutex_unlock(&pins_mu);
    if (rc < 0) {
      return -1;
    }
  } else {
    c->value = Py_NewRef(v);
  }
  if (destroy_old) {
    boc_ntype_pinned_destroy(old_pin, old);
  }
  Py_XDECREF(old);
  return 0;
}

int boc_cown_set_value(boc_cown_t *c, PyObject *v) {
  if (!boc_cown_held_here(c)) {
    return not_owner_error(c);
  }
  if (boc_cown_is_pinned(c)) {
    return set_pinned_value(c, v, 1);
  }
  Py_XSETREF(c->value, Py_NewRef(v));
  return 0;
}

PyObject *boc_cown_take_value(boc_cown_t *c) {
  PyObject *v = boc_cown_value(c);
  if (v == NULL) {
    return NULL;
  }
  Py_INCREF(v);
  int rc = boc_cown_is_pinned(c) ? set_pinned_value(c, Py_None, 0)
                                 : boc_cown_set_value(c, Py_None);
  if (rc < 0) {
    Py_DECREF(v);
    return NULL;
  }
  return v;
}

/* 1 + 1 reference taken when c's count was not already 0 (dying). */
static int try_incref(boc_cown_t *c) {
  intptr_t n = atomic_load_explicit(&c->refs, BOC_RELAXED);
  while (n > 0) {
    /* relaxed: like boc_cown_incref; the record cannot be freed while
     * pins_mu (held by the caller) lists it. */
    if (atomic_compare_exchange_weak_explicit(&c->refs, &n, n + 1,
                                              BOC_RELAXED, BOC_RELAXED)) {
      return 1;
    }
  }
  return 0;
}

void boc_pinned_destroy_all(void) {
  boc_cown_collect_orphans();
  for (;;) {
    boc_cown_t *c = NULL;
    pins_lock();
    while (npins > 0) {
      boc_cown_t *cand = pins[npins - 1];
      npins--; /* unlisted: its hooks will not run again */
      if (try_incref(cand)) {
        c = cand;
        break;
      }
      /* Dying on another thread right now: it queues its value as an
       * orphan, collected below. */
    }
    int32_t pin = 0;
    PyObject *v = NULL;
    if (c != NULL) {
      pin = c->pin_ntype;
      c->pin_ntype = 0;
      v = Py_XNewRef(c->value);
    }
    boc_mutex_unlock(&pins_mu);
    if (c == NULL) {
      break;
    }
    boc_ntype_pinned_destroy(pin, v);
    Py_XDECREF(v);
    boc_cown_decref(c);
  }
  boc_cown_collect_orphans();
}
