/* scope.c - structured scopes (see scope.h). */
#include "exec/scope.h"

#include <stdlib.h>

#include "value/pycompat.h"

/* Source of scope ids (process-wide; relaxed: uniqueness only). */
static _Atomic uint64_t next_scope_id = 1;

/* The calling thread's current scope: set by `with bocpy.scope()` on a
 * main-side thread, and by boc_behavior_run around a body.  Thread-local:
 * it describes what this thread is doing now. */
static _Thread_local boc_scope_t *tls_scope;

boc_scope_t *boc_scope_new(boc_scope_t *parent, int cancel_on_error) {
  boc_scope_t *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  if (boc_term_init(&s->term) != 0) {
    free(s);
    PyErr_NoMemory();
    return NULL;
  }
  if (boc_mutex_init(&s->mu) != 0) {
    boc_term_destroy(&s->term);
    free(s);
    PyErr_NoMemory();
    return NULL;
  }
  /* Open, with the seed: waiters drop it while they wait (boc_term_enter)
   * and the last one restores it, so a scope can be waited on many times. */
  boc_term_reset(&s->term);
  atomic_init(&s->refs, 1);
  atomic_init(&s->cancelled, 0);
  atomic_init(&s->n_scheduled, 0);
  atomic_init(&s->n_finished, 0);
  atomic_init(&s->n_failed, 0);
  atomic_init(&s->n_cancelled, 0);
  s->id = atomic_fetch_add_explicit(&next_scope_id, 1, BOC_RELAXED);
  s->cancel_on_error = cancel_on_error != 0;
  s->parent = parent;
  if (parent != NULL) {
    boc_scope_incref(parent);
  }
  return s;
}

void boc_scope_decref(boc_scope_t *s) {
  while (s != NULL) {
    /* acq_rel: the freeing thread must see every other holder's writes. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, BOC_ACQ_REL) != 1) {
      return;
    }
    boc_scope_t *parent = s->parent;
    boc_scope_failures_free(s->failed, s->nfailed);
    boc_mutex_destroy(&s->mu);
    boc_term_destroy(&s->term);
    free(s);
    s = parent; /* iterative: a deep chain does not recurse */
  }
}

boc_scope_t *boc_scope_current(void) { return tls_scope; }

boc_scope_t *boc_scope_swap(boc_scope_t *s) {
  boc_scope_t *prev = tls_scope;
  tls_scope = s;
  return prev;
}

void boc_scope_enter_work(boc_scope_t *s) {
  for (; s != NULL; s = s->parent) {
    /* A scope's terminator is never closed, so this cannot fail. */
    (void)boc_term_inc(&s->term);
  }
}

void boc_scope_leave_work(boc_scope_t *s) {
  for (; s != NULL; s = s->parent) {
    boc_term_dec(&s->term);
  }
}

int boc_scope_cancelled(const boc_scope_t *s) {
  for (; s != NULL; s = s->parent) {
    if (atomic_load_explicit(&s->cancelled, BOC_RELAXED)) {
      return 1;
    }
  }
  return 0;
}

int boc_scope_cancel(boc_scope_t *s) {
  int zero = 0;
  /* relaxed: see the field; the CAS only decides who reports "cancelled". */
  return atomic_compare_exchange_strong_explicit(&s->cancelled, &zero, 1,
                                                 BOC_RELAXED, BOC_RELAXED);
}

void boc_scope_note_failed(boc_scope_t *s, boc_cown_t *result,
                           PyObject *exc) {
  /* relaxed: a statistic */
  atomic_fetch_add_explicit(&s->n_failed, 1, BOC_RELAXED);
  if (s->cancel_on_error) {
    boc_scope_cancel(s);
  }
  PyObject *saved = PyErr_GetRaisedException();
  boc_payload_t *p = boc_payload_encode(exc);
  PyErr_Clear(); /* p == NULL: raised as "could not be encoded" */
  PyErr_SetRaisedException(saved);
  boc_mutex_lock(&s->mu);
  if (s->nfailed == s->failed_cap) {
    size_t cap = s->failed_cap != 0 ? s->failed_cap * 2 : 8;
    boc_scope_failure_t *grown = realloc(s->failed, cap * sizeof(*grown));
    if (grown == NULL) {
      /* Not remembered: it is still reported as unhandled at exit, only
       * not raised by the scope. */
      boc_mutex_unlock(&s->mu);
      boc_payload_free(p);
      return;
    }
    s->failed = grown;
    s->failed_cap = cap;
  }
  boc_cown_incref(result);
  s->failed[s->nfailed].result = result;
  s->failed[s->nfailed].exc = p;
  s->nfailed++;
  boc_mutex_unlock(&s->mu);
}

void boc_scope_failures_free(boc_scope_failure_t *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    boc_cown_decref(f[i].result);
    boc_payload_free(f[i].exc);
  }
  free(f);
}

boc_scope_failure_t *boc_scope_take_failed(boc_scope_t *s, size_t *n) {
  boc_mutex_lock(&s->mu);
  boc_scope_failure_t *out = s->failed;
  *n = s->nfailed;
  s->failed = NULL;
  s->nfailed = 0;
  s->failed_cap = 0;
  boc_mutex_unlock(&s->mu);
  return out;
}

int64_t boc_scope_in_flight(boc_scope_t *s) {
  int64_t n = boc_term_count(&s->term) -
              atomic_load_explicit(&s->term.seeded, BOC_SEQ_CST);
  return n > 0 ? n : 0;
}
