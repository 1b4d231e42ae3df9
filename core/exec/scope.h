/* scope.h - structured scopes (issue #32): a set of behaviors that can be
 * waited for, cancelled and asked for their errors as one.
 *
 * A scope counts its behaviors in flight with a terminator of its own
 * (engine/terminator.h: seed + behaviors between scheduled and retired), so
 * waiting on it reuses the runtime's wait machinery (boc_runtime_wait_term).
 * Every behavior records the scope it was scheduled in: the calling
 * thread's current scope, a thread-local set by `with bocpy.scope()` on
 * main-side threads and, while a body runs, to the running behavior's scope
 * (so work scheduled by a behavior, on a worker or the pinned thread,
 * belongs to the scope of the behavior that scheduled it).  Scopes nest: a
 * behavior is counted in its scope and in every enclosing one, so leaving an
 * outer scope also waits for what nested ones left behind.
 *
 * Cancellation: a behavior whose scope (or an enclosing scope) is cancelled
 * when it becomes ready is retired without running (boc_behavior_run), its
 * result cown holding CancelledError; it still takes its turn on its cowns,
 * so the order of everything else is unchanged.
 *
 * Errors: the result cown of every behavior of the scope that stored an
 * exception is remembered (a strong reference) until the scope's owner takes
 * them (boc_scope_take_failed); those nobody handled become the scope's
 * ExceptionGroup.  Holding them also defers their "unhandled" report.
 */
#ifndef BOCPY_CORE_SCOPE_H
#define BOCPY_CORE_SCOPE_H

#include <Python.h>

#include "engine/terminator.h"
#include "value/cown.h"
#include "value/transport.h"

/* One failed behavior of a scope: its result cown (strong) and a copy of
 * the exception it stored, encoded when it failed (NULL: could not be
 * encoded), so that the scope's owner can raise it without touching a cown
 * that other behaviors may be using. */
typedef struct boc_scope_failure {
  boc_cown_t *result;
  boc_payload_t *exc;
} boc_scope_failure_t;

typedef struct boc_scope {
  _Atomic intptr_t refs;
  uint64_t id;              /* unique per process, from 1 */
  struct boc_scope *parent; /* the enclosing scope (strong), or NULL */
  boc_terminator_t term;    /* seed + behaviors (and holds) in flight */
  /* 1 once cancelled: pending behaviors are dropped when they become
   * ready.  relaxed: a flag polled per behavior; a behavior that starts
   * around the cancel may still run, as for Future.cancel. */
  _Atomic int cancelled;
  int cancel_on_error;      /* set at creation, read-only afterwards */
  boc_mutex_t mu;           /* guards failed/nfailed/failed_cap */
  boc_scope_failure_t *failed; /* behaviors that stored an exception */
  size_t nfailed, failed_cap;
  /* Statistics (relaxed: counters, read as recent values). */
  _Atomic int64_t n_scheduled, n_finished, n_failed, n_cancelled;
} boc_scope_t;

/* A new scope (refs = 1) inside parent (may be NULL; takes a reference to
 * it).  NULL with MemoryError. */
boc_scope_t *boc_scope_new(boc_scope_t *parent, int cancel_on_error);
static inline void boc_scope_incref(boc_scope_t *s) {
  /* relaxed: the caller already holds a reference. */
  atomic_fetch_add_explicit(&s->refs, 1, BOC_RELAXED);
}
/* Drops a reference; the last one frees the scope (its parent reference
 * and remembered result cowns included).  Any thread. */
void boc_scope_decref(boc_scope_t *s);

/* The calling thread's current scope (borrowed), or NULL. */
boc_scope_t *boc_scope_current(void);
/* Makes s (borrowed: the caller keeps it alive while current) the calling
 * thread's current scope; returns the previous one. */
boc_scope_t *boc_scope_swap(boc_scope_t *s);

/* Counts one behavior (or hold) in on s and every enclosing scope.
 * Never fails. */
void boc_scope_enter_work(boc_scope_t *s);
/* Counts it out again (the waiters of a scope reaching zero wake). */
void boc_scope_leave_work(boc_scope_t *s);

/* 1 when s or an enclosing scope is cancelled. */
int boc_scope_cancelled(const boc_scope_t *s);
/* Cancels s (and so everything nested in it).  Returns 1 if this call
 * cancelled it, 0 if it already was. */
int boc_scope_cancel(boc_scope_t *s);

/* A behavior of s stored exc in result: remembered (a reference to result
 * taken, exc encoded now) for boc_scope_take_failed; cancels s when it was
 * made with cancel_on_error.  Any thread holding some interpreter's GIL;
 * leaves no exception set. */
void boc_scope_note_failed(boc_scope_t *s, boc_cown_t *result, PyObject *exc);
/* Moves the remembered failures out (the caller owns the array and what
 * each entry holds: boc_scope_failures_free).  NULL with *n = 0 when
 * none. */
boc_scope_failure_t *boc_scope_take_failed(boc_scope_t *s, size_t *n);
void boc_scope_failures_free(boc_scope_failure_t *f, size_t n);

/* Behaviors of s (and nested scopes) in flight now. */
int64_t boc_scope_in_flight(boc_scope_t *s);

#endif /* BOCPY_CORE_SCOPE_H */
