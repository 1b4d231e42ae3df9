/* request.c - two-phase locking over per-cown MCS queues (see request.h). */
#include "engine/request.h"

#include <stdlib.h>

void boc_request_init(boc_request_t *r, boc_slot_t *slot, uint64_t key,
                      boc_waiter_t *owner) {
  r->slot = slot;
  r->key = key;
  r->owner = owner;
  atomic_init(&r->next, NULL);
  atomic_init(&r->scheduled, 0);
}

int boc_requests_prepare(boc_request_t *reqs, int n) {
  /* Insertion sort: request sets are small (typically 1-8). */
  for (int i = 1; i < n; i++) {
    boc_request_t tmp = reqs[i];
    int j = i - 1;
    while (j >= 0 && reqs[j].key > tmp.key) {
      reqs[j + 1] = reqs[j];
      j--;
    }
    reqs[j + 1] = tmp;
  }
  int out = 0;
  for (int i = 0; i < n; i++) {
    if (out > 0 && reqs[out - 1].key == reqs[i].key) {
      continue; /* same cown twice: one request is enough */
    }
    reqs[out++] = reqs[i];
  }
  return out;
}

/* The waits below last only while another thread runs a few instructions,
 * unless that thread was descheduled: then give up the CPU to it. */
static inline void spin_wait(unsigned spins) {
  if (spins < 1024) {
    boc_cpu_relax();
  } else {
    boc_thread_yield();
  }
}

/* Drops one unit of the owner's pending count; the last one makes it ready. */
static inline void resolve(boc_waiter_t *w, boc_ready_fn ready, void *ctx) {
  /* acq_rel: the decrement that reaches zero must see every write made by
   * the threads that decremented before it (they handed us their cowns). */
  if (atomic_fetch_sub_explicit(&w->pending, 1, BOC_ACQ_REL) == 1) {
    ready(w, ctx);
  }
}

void boc_requests_link(boc_waiter_t *waiter, boc_request_t *reqs, int n,
                       boc_ready_fn ready, void *ctx) {
  /* One per request plus a guard that keeps the behavior from starting (and
   * retiring, and freeing reqs) while this loop still uses them.  relaxed:
   * nobody can see the waiter before the exchanges below publish it. */
  atomic_store_explicit(&waiter->pending, n + 1, BOC_RELAXED);

  /* Phase 1: join the tail of each queue, in key order. */
  for (int i = 0; i < n; i++) {
    boc_request_t *r = &reqs[i];
    /* acq_rel: release publishes r's initialised fields to the successor;
     * acquire makes the predecessor's fields visible to us. */
    boc_request_t *prev =
        atomic_exchange_explicit(&r->slot->last, r, BOC_ACQ_REL);
    if (prev == NULL) {
      resolve(waiter, ready, ctx); /* the cown was idle: we hold it */
      continue;
    }
    /* Wait until the predecessor has finished ITS phase 1, so that it is
     * queued on all of its cowns before we queue on any later cown: this
     * makes each behavior's multi-cown enqueue atomic to the others.
     * The predecessor cannot retire (and free prev) before we publish
     * prev->next below: its release spins until next is set. */
    for (unsigned spins = 0;
         atomic_load_explicit(&prev->scheduled, BOC_ACQUIRE) == 0; spins++) {
      spin_wait(spins);
    }
    /* release: the predecessor's release loop reads next with acquire. */
    atomic_store_explicit(&prev->next, waiter, BOC_RELEASE);
  }

  /* Phase 2: we are queued everywhere. */
  for (int i = 0; i < n; i++) {
    atomic_store_explicit(&reqs[i].scheduled, 1, BOC_RELEASE);
  }
  resolve(waiter, ready, ctx); /* drop the guard */
}

void boc_requests_release(boc_request_t *reqs, int n, boc_ready_fn ready,
                          void *ctx) {
  for (int i = 0; i < n; i++) {
    boc_request_t *r = &reqs[i];
    boc_waiter_t *next = atomic_load_explicit(&r->next, BOC_ACQUIRE);
    if (next == NULL) {
      boc_request_t *expected = r;
      /* acq_rel: on success the cown becomes idle and the next linker's
       * acquire-exchange sees everything we wrote while holding it. */
      if (atomic_compare_exchange_strong_explicit(
              &r->slot->last, &expected, NULL, BOC_ACQ_REL, BOC_ACQUIRE)) {
        continue;
      }
      /* A successor swapped itself in; wait for it to publish next. */
      for (unsigned spins = 0;
           (next = atomic_load_explicit(&r->next, BOC_ACQUIRE)) == NULL;
           spins++) {
        spin_wait(spins);
      }
    }
    resolve(next, ready, ctx);
  }
}
