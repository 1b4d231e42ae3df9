/* terminator.c - termination counting (see terminator.h). */
#include "engine/terminator.h"

int boc_term_init(boc_terminator_t *t) {
  atomic_init(&t->count, 0);
  atomic_init(&t->seeded, 0);
  atomic_init(&t->closed, 1);
  atomic_init(&t->kicks, 0);
  t->waiters = 0;
  if (boc_mutex_init(&t->mu) != 0) {
    return -1;
  }
  if (boc_cond_init(&t->cv) != 0) {
    boc_mutex_destroy(&t->mu);
    return -1;
  }
  return 0;
}

void boc_term_destroy(boc_terminator_t *t) {
  boc_cond_destroy(&t->cv);
  boc_mutex_destroy(&t->mu);
}

int boc_term_reset(boc_terminator_t *t) {
  boc_mutex_lock(&t->mu);
  int64_t count = atomic_load_explicit(&t->count, BOC_SEQ_CST);
  int32_t seeded = atomic_load_explicit(&t->seeded, BOC_SEQ_CST);
  if (count != (int64_t)seeded) {
    boc_mutex_unlock(&t->mu);
    return -1; /* leaked work from a previous run */
  }
  atomic_store_explicit(&t->count, 1, BOC_SEQ_CST);
  atomic_store_explicit(&t->seeded, 1, BOC_SEQ_CST);
  atomic_store_explicit(&t->closed, 0, BOC_SEQ_CST);
  boc_mutex_unlock(&t->mu);
  return 0;
}

int boc_term_inc(boc_terminator_t *t) {
  /* seq_cst on both: an increment racing with boc_term_close must either be
   * seen by the closer's later zero-wait or see closed and undo itself. */
  if (atomic_load_explicit(&t->closed, BOC_SEQ_CST)) {
    return -1;
  }
  atomic_fetch_add_explicit(&t->count, 1, BOC_SEQ_CST);
  if (atomic_load_explicit(&t->closed, BOC_SEQ_CST)) {
    boc_term_dec(t);
    return -1;
  }
  return 0;
}

void boc_term_dec(boc_terminator_t *t) {
  /* acq_rel: the waiter that sees zero must see every retired behavior's
   * effects. */
  if (atomic_fetch_sub_explicit(&t->count, 1, BOC_ACQ_REL) == 1) {
    boc_mutex_lock(&t->mu);
    boc_cond_broadcast(&t->cv);
    boc_mutex_unlock(&t->mu);
  }
}

int boc_term_seed_dec(boc_terminator_t *t) {
  int32_t one = 1;
  /* seq_cst: pairs with boc_term_reset/seed_inc; rare, so no need to be
   * clever. */
  if (atomic_compare_exchange_strong_explicit(&t->seeded, &one, 0, BOC_SEQ_CST,
                                              BOC_SEQ_CST)) {
    boc_term_dec(t);
    return 1;
  }
  return 0;
}

void boc_term_seed_inc(boc_terminator_t *t) {
  int32_t zero = 0;
  if (atomic_compare_exchange_strong_explicit(&t->seeded, &zero, 1,
                                              BOC_SEQ_CST, BOC_SEQ_CST)) {
    atomic_fetch_add_explicit(&t->count, 1, BOC_SEQ_CST);
  }
}

void boc_term_enter(boc_terminator_t *t) {
  /* mu orders arrivals and departures, so "first" and "last" are exact;
   * the seed itself is changed with its own seq_cst operations. */
  boc_mutex_lock(&t->mu);
  int first = t->waiters++ == 0;
  boc_mutex_unlock(&t->mu);
  if (first) {
    boc_term_seed_dec(t);
  }
}

int boc_term_leave(boc_terminator_t *t, int restore) {
  boc_mutex_lock(&t->mu);
  int left = --t->waiters;
  if (left == 0 && restore) {
    /* Under mu: a waiter arriving now sees the seed back and drops it. */
    boc_term_seed_inc(t);
  }
  boc_mutex_unlock(&t->mu);
  return left;
}

int boc_term_waiters(boc_terminator_t *t) {
  boc_mutex_lock(&t->mu);
  int n = t->waiters;
  boc_mutex_unlock(&t->mu);
  return n;
}

int boc_term_wait(boc_terminator_t *t, int64_t timeout_ns,
                  uint64_t *kick_seen) {
  int64_t deadline = timeout_ns < 0 ? -1 : boc_now_ns() + timeout_ns;
  int result = 0;
  boc_mutex_lock(&t->mu);
  for (;;) {
    if (atomic_load_explicit(&t->count, BOC_ACQUIRE) == 0) {
      result = 0;
      break;
    }
    if (kick_seen != NULL) {
      uint64_t k = atomic_load_explicit(&t->kicks, BOC_ACQUIRE);
      if (k != *kick_seen) {
        *kick_seen = k;
        result = 2;
        break;
      }
    }
    int64_t left = -1;
    if (deadline >= 0) {
      left = deadline - boc_now_ns();
      if (left <= 0) {
        result = 1;
        break;
      }
    }
    boc_cond_timedwait(&t->cv, &t->mu, left);
  }
  boc_mutex_unlock(&t->mu);
  return result;
}

void boc_term_kick(boc_terminator_t *t) {
  boc_mutex_lock(&t->mu);
  atomic_fetch_add_explicit(&t->kicks, 1, BOC_RELEASE);
  boc_cond_broadcast(&t->cv);
  boc_mutex_unlock(&t->mu);
}

void boc_term_close(boc_terminator_t *t) {
  atomic_store_explicit(&t->closed, 1, BOC_SEQ_CST);
}

int boc_term_is_closed(const boc_terminator_t *t) {
  return atomic_load_explicit(&t->closed, BOC_SEQ_CST);
}

int64_t boc_term_count(const boc_terminator_t *t) {
  return atomic_load_explicit(&t->count, BOC_SEQ_CST);
}
