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
  if (atomic_load_explicit(&failed_dirty, BOC_RELAXED) &&
      boc_is_main_interp()) {
    failed_prune(0); /* report the dropped ones while Python is whole */
  }
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

void boc_cown_decref(boc_cown_t *c) {
  /* acq_rel: the thread that frees must see every other holder's writes. */
  intptr_t was = atomic_fetch_sub_explicit(&c->refs, 1, BOC_ACQ_REL);
  if (was == 2 &&
      (atomic_load_explicit(&c->flags, BOC_RELAXED) & BOC_COWN_TRACKED) &&
      reportable_here(c)) {
    /* Only the unhandled-exception list holds it now: nobody can handle
     * it any more, so report it here and now (a nested behavior's result,
     * a result handle that was dropped). */
    report_unhandled(c);
    return;
  }
  if (was != 1) {
    return;
  }
  report_unhandled(c);
  /* A live value (a pinned one included) is only ever released in its own
   * interpreter: elsewhere it is queued for that interpreter. */
  free_live_value(c);
  boc_payload_free(c->payload);
  free(c);
  atomic_fetch_sub_explicit(&live_cowns, 1, BOC_RELAXED);
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
    not_owner_error(c);
    return NULL;
  }
  return c->value != NULL ? c->value : Py_None;
}

int boc_cown_set_value(boc_cown_t *c, PyObject *v) {
  if (atomic_load_explicit(&c->owner, BOC_ACQUIRE) != boc_current_interp_id()) {
    return not_owner_error(c);
  }
  Py_XSETREF(c->value, Py_NewRef(v));
  if (boc_cown_is_pinned(c)) {
    c->pin_ntype = boc_ntype_pinned_of(v); /* hooks follow the new value */
  }
  return 0;
}
