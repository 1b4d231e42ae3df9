/* sched.c - the worker scheduler (see sched.h).
 *
 * Layout.  Each worker owns a FIFO queue (intrusive singly linked list,
 * head/tail/len) guarded by its mutex, a one-node "next" slot that only the
 * worker's own thread touches (no lock), and a condition variable it parks
 * on.  len is also an atomic so that other threads can look at it without
 * the lock: thieves use it as a hint, parking workers use it (seq_cst) in
 * their last re-check.
 *
 * Parking (no lost wake-up).  A worker W that found nothing anywhere:
 *   1. parked_count += 1                                     (seq_cst)
 *   2. locks W.mu, sets W.parked = 1                         (seq_cst)
 *   3. re-checks, still under W.mu: own queue, W.token, the stop flag, and
 *      every other worker's len                              (seq_cst loads)
 *   4. only if all are empty: waits on W.cv until W.token is set (timed, as a
 *      belt-and-braces only), then clears token/parked, unlocks and
 *      parked_count -= 1.
 * A pusher into W's queue appends under W.mu and, still under it, sets
 * W.token and signals if W.parked: W holds W.mu from step 2 until it waits,
 * so the push is either seen in step 3 or lands after W waits and wakes it;
 * the token makes the signal stick even if it is sent before the wait.
 * A push that leaves work in a queue whose owner is busy must also not leave
 * a parked worker asleep (it could steal the work): the pusher stores len
 * (seq_cst) and then loads parked_count and the parked flags (seq_cst),
 * while the parking worker stores parked_count/parked (seq_cst) and then
 * loads every len (seq_cst).  In the single total order of seq_cst
 * operations one side sees the other's store: either the parker sees the
 * work, or the pusher sees the parker and wakes it (wake_one).  The owner of
 * a queue is either running (it will come back to pop) or parked (it is
 * signalled), so no node is ever stranded; wake_one only adds parallelism.
 * boc_sched_stop sets the stop flag and then, under each mutex, every token.
 *
 * Stats.  Every push is counted exactly once, on one of three counters:
 *   pushed_remote         push from self = -1, on the receiving worker;
 *   dispatched_to_pending push from worker i that found i's "next" slot
 *                         empty (the node went into the slot, nothing moved);
 *   pushed_local          push from worker i that found the slot occupied
 *                         (the new node took the slot and the displaced one
 *                         was appended to i's own queue), or any
 *                         boc_sched_push_shared from worker i (the node went
 *                         to the tail of i's queue).
 * Every node leaving the scheduler is counted exactly once:
 *   popped_local          taken by the worker from its own slot or queue
 *                         (including nodes that an earlier steal moved into
 *                         its queue);
 *   popped_via_steal      the one node a successful steal returns (the rest
 *                         of the stolen batch is moved into the thief's queue
 *                         and counted later, as popped_local or by drain);
 * or returned by boc_sched_drain.  Hence, once everything has settled:
 *   sum(pushed_local + dispatched_to_pending + pushed_remote)
 *     == sum(popped_local + popped_via_steal) + nodes drained.
 * steal_attempts counts steal rounds in which some victim looked non-empty
 * (rounds that see every queue empty are free and not counted);
 * steal_failures counts those rounds that came back empty-handed (lost the
 * race); last_steal_attempt_ns stamps the last counted round.  parked counts
 * sleeps (step 4 entered), batch_resets the times the "next" slot was
 * bypassed for fairness (its occupant then moves to the head of the queue:
 * not a push, not a pop), busy_ns the sum passed to boc_sched_add_busy.
 *
 * Policy (docs/model.md, "Scheduling policy").  The slot only ever holds
 * what its owner will run next: the runtime pushes there only as a worker
 * finishes a behavior (its releases make the successor ready), and a node
 * that a running body makes ready goes to the queue (boc_sched_push_shared).
 * A node in a queue is stealable and wakes a parked worker unless its
 * owner was just woken for it (wake_locked); a thief leaves a just-woken
 * owner's queue alone for WAKE_GRACE_NS (its own node is usually on the
 * way).  When the queue goes first for fairness, the slot's occupant moves
 * to the queue's head, stealable while the owner runs the other node.
 * Counters are relaxed atomics: they order nothing and are read after the
 * fact; all but pushed_remote have a single writer (their worker).
 */
#include "engine/sched.h"

#include <stdlib.h>
#include <string.h>

/* The worker index of this thread (-1 elsewhere).  A thread-local by
 * nature: a push from a worker goes to that worker's own next slot. */
static _Thread_local int tls_worker_index = -1;

void boc_sched_bind_worker(int index) { tls_worker_index = index; }

int boc_sched_worker_index(void) { return tls_worker_index; }

enum {
  BATCH_LIMIT = 100,                      /* slot pops before queue goes first */
  SPIN_NS = 75 * 1000,                    /* retrying before parking */
  WAKE_GRACE_NS = 100 * 1000, /* a woken owner's head start over thieves */
  CACHE_LINE = 64,
};
/* Belt-and-braces default (boc_sched_set_park_timeout changes it). */
static const int64_t PARK_TIMEOUT_NS = 100 * 1000 * 1000;

typedef struct worker_stats {
  _Atomic uint64_t pushed_local;
  _Atomic uint64_t dispatched_to_pending;
  _Atomic uint64_t pushed_remote;
  _Atomic uint64_t popped_local;
  _Atomic uint64_t popped_via_steal;
  _Atomic uint64_t steal_attempts;
  _Atomic uint64_t steal_failures;
  _Atomic uint64_t parked;
  _Atomic uint64_t last_steal_attempt_ns;
  _Atomic uint64_t batch_resets;
  _Atomic uint64_t busy_ns;
} worker_stats_t;

typedef struct worker {
  /* Guarded by mu. */
  _Alignas(CACHE_LINE) boc_mutex_t mu;
  boc_cond_t cv;
  boc_sched_node_t *head;
  boc_sched_node_t *tail;
  bool token;             /* a wake-up for this worker is pending */
  _Atomic size_t len;     /* written under mu; read anywhere */
  _Atomic int parked;     /* written under mu; read anywhere */
  _Atomic int poked;      /* boc_sched_poke: return from pop once */
  /* When the pending wake-up was sent (0: none): written under mu, read
   * lock-free by thieves as a hint (see steal). */
  _Atomic int64_t woken_at;
  /* Owner thread only. */
  boc_sched_node_t *slot; /* the "next" slot */
  int streak;             /* consecutive pops from the slot */
  int victim;             /* where the next steal round starts */
  int index;              /* this worker's index (fixed) */
  worker_stats_t st;
} worker_t;

struct boc_sched {
  int n;
  _Atomic int stop;
  _Atomic int parked_count; /* workers between park steps 1 and 4 */
  _Atomic uint64_t rr;      /* round-robin cursor for remote pushes */
  _Atomic int64_t park_timeout_ns; /* belt-and-braces re-check period */
  worker_t *workers;
};

/* A counter with a single writer: a relaxed load + store is enough (and
 * cheaper than a locked RMW); readers only want a recent value. */
static inline void own_add(_Atomic uint64_t *c, uint64_t v) {
  uint64_t cur = atomic_load_explicit(c, BOC_RELAXED); /* statistics only */
  atomic_store_explicit(c, cur + v, BOC_RELAXED);      /* statistics only */
}

static inline bool stopped(const boc_sched_t *s) {
  /* acquire: a cheap poll; the final check before sleeping is seq_cst. */
  return atomic_load_explicit(&s->stop, BOC_ACQUIRE) != 0;
}

/* ---- queue primitives (caller holds w->mu) ------------------------------- */

/* Appends the chain first..last (count nodes, last->next == NULL). */
static void queue_append(worker_t *w, boc_sched_node_t *first,
                         boc_sched_node_t *last, size_t count) {
  if (w->tail == NULL) {
    w->head = first;
  } else {
    w->tail->next = first;
  }
  w->tail = last;
  /* relaxed load: we hold mu, the only writers do too.  seq_cst store: the
   * pusher's half of the store/load pairing with a parking worker (see top). */
  size_t len = atomic_load_explicit(&w->len, BOC_RELAXED);
  atomic_store_explicit(&w->len, len + count, BOC_SEQ_CST);
}

/* Puts one node back at the head (the slot's occupant when the queue goes
 * first: it keeps its turn and is stealable meanwhile). */
static void queue_prepend(worker_t *w, boc_sched_node_t *node) {
  node->next = w->head;
  w->head = node;
  if (w->tail == NULL) {
    w->tail = node;
  }
  /* As in queue_append: relaxed load under mu, seq_cst store (the pusher's
   * half of the pairing with a parking worker). */
  size_t len = atomic_load_explicit(&w->len, BOC_RELAXED);
  atomic_store_explicit(&w->len, len + 1, BOC_SEQ_CST);
}

/* Detaches up to want nodes from the head; returns the chain (NULL-ended)
 * and its length in *got. */
static boc_sched_node_t *queue_take(worker_t *w, size_t want, size_t *got) {
  boc_sched_node_t *first = w->head;
  if (first == NULL || want == 0) {
    *got = 0;
    return NULL;
  }
  boc_sched_node_t *last = first;
  size_t k = 1;
  while (k < want && last->next != NULL) {
    last = last->next;
    k++;
  }
  w->head = last->next;
  if (w->head == NULL) {
    w->tail = NULL;
  }
  last->next = NULL;
  /* relaxed load: we hold mu.  release store: len only shrinks here, and a
   * reader that sees a smaller len needs nothing from us (it just finds less
   * work); the lock orders everything else. */
  size_t len = atomic_load_explicit(&w->len, BOC_RELAXED);
  atomic_store_explicit(&w->len, len - k, BOC_RELEASE);
  *got = k;
  return first;
}

/* ---- waking ---------------------------------------------------------------- */

/* Caller holds w->mu: sets w's token and signals it (w is parked). */
static void signal_locked(worker_t *w) {
  w->token = true;
  /* relaxed: a hint for thieves (steal); the lock orders the rest. */
  atomic_store_explicit(&w->woken_at, boc_now_ns(), BOC_RELAXED);
  boc_cond_signal(&w->cv);
}

/* Caller holds w->mu: wakes w if it is parked and not already being woken.
 * Returns true if this call woke it: false when w is running, or parked
 * with a wake-up already pending (which an earlier node will use up, so the
 * caller's node needs another worker: wake_one). */
static bool wake_locked(worker_t *w) {
  /* relaxed: parked is written under mu, which we hold. */
  if (!atomic_load_explicit(&w->parked, BOC_RELAXED) || w->token) {
    return false;
  }
  signal_locked(w);
  return true;
}

/* Wakes one parked worker (if any) so it can steal; start rotates the scan.
 * Called after the caller's seq_cst store of a len (see top). */
static void wake_one(boc_sched_t *s, int start) {
  /* seq_cst: the pusher's load half of the pairing; 0 means no worker has
   * started parking, and any that starts now will see our len. */
  if (atomic_load_explicit(&s->parked_count, BOC_SEQ_CST) == 0) {
    return;
  }
  for (int k = 0; k < s->n; k++) {
    worker_t *y = &s->workers[(start + k) % s->n];
    /* seq_cst: if this misses a parker's store of parked, that parker's
     * later seq_cst len loads see our work. */
    if (!atomic_load_explicit(&y->parked, BOC_SEQ_CST)) {
      continue;
    }
    boc_mutex_lock(&y->mu);
    bool woke = false;
    /* relaxed: under y->mu, which every writer of parked holds. */
    if (atomic_load_explicit(&y->parked, BOC_RELAXED) && !y->token) {
      signal_locked(y);
      woke = true;
    }
    boc_mutex_unlock(&y->mu);
    if (woke) {
      return;
    }
  }
}

/* ---- lifecycle ------------------------------------------------------------- */

boc_sched_t *boc_sched_new(int n) {
  if (n < 1) {
    return NULL;
  }
  boc_sched_t *s = malloc(sizeof(*s));
  if (s == NULL) {
    return NULL;
  }
  /* sizeof(worker_t) is a multiple of CACHE_LINE (its first member is
   * aligned so), as aligned_alloc requires. */
  s->workers = aligned_alloc(CACHE_LINE, (size_t)n * sizeof(worker_t));
  if (s->workers == NULL) {
    free(s);
    return NULL;
  }
  memset(s->workers, 0, (size_t)n * sizeof(worker_t));
  s->n = n;
  atomic_init(&s->stop, 0);
  atomic_init(&s->parked_count, 0);
  atomic_init(&s->rr, 0);
  atomic_init(&s->park_timeout_ns, PARK_TIMEOUT_NS);
  for (int i = 0; i < n; i++) {
    worker_t *w = &s->workers[i];
    if (boc_mutex_init(&w->mu) != 0) {
      s->n = i;
      boc_sched_free(s);
      return NULL;
    }
    if (boc_cond_init(&w->cv) != 0) {
      boc_mutex_destroy(&w->mu);
      s->n = i;
      boc_sched_free(s);
      return NULL;
    }
    atomic_init(&w->len, 0);
    atomic_init(&w->parked, 0);
    atomic_init(&w->poked, 0);
    atomic_init(&w->woken_at, 0);
    w->index = i;
    w->victim = (i + 1) % n;
    worker_stats_t *st = &w->st;
    atomic_init(&st->pushed_local, 0);
    atomic_init(&st->dispatched_to_pending, 0);
    atomic_init(&st->pushed_remote, 0);
    atomic_init(&st->popped_local, 0);
    atomic_init(&st->popped_via_steal, 0);
    atomic_init(&st->steal_attempts, 0);
    atomic_init(&st->steal_failures, 0);
    atomic_init(&st->parked, 0);
    atomic_init(&st->last_steal_attempt_ns, 0);
    atomic_init(&st->batch_resets, 0);
    atomic_init(&st->busy_ns, 0);
  }
  return s;
}

void boc_sched_free(boc_sched_t *s) {
  if (s == NULL) {
    return;
  }
  for (int i = 0; i < s->n; i++) {
    boc_cond_destroy(&s->workers[i].cv);
    boc_mutex_destroy(&s->workers[i].mu);
  }
  free(s->workers);
  free(s);
}

int boc_sched_workers(const boc_sched_t *s) { return s->n; }

/* ---- push ------------------------------------------------------------------ */

void boc_sched_push(boc_sched_t *s, int self, boc_sched_node_t *node) {
  node->next = NULL;
  if (self >= 0 && self < s->n) {
    worker_t *w = &s->workers[self];
    boc_sched_node_t *prev = w->slot;
    w->slot = node;
    if (prev == NULL) {
      own_add(&w->st.dispatched_to_pending, 1);
      return; /* we are running: we will pop it ourselves */
    }
    own_add(&w->st.pushed_local, 1);
    boc_mutex_lock(&w->mu);
    queue_append(w, prev, prev, 1);
    boc_mutex_unlock(&w->mu);
    wake_one(s, self + 1); /* someone idle could take prev */
    return;
  }
  /* relaxed: the cursor only spreads load; any interleaving is fine. */
  uint64_t t = atomic_fetch_add_explicit(&s->rr, 1, BOC_RELAXED) %
               (uint64_t)s->n;
  worker_t *w = &s->workers[t];
  boc_mutex_lock(&w->mu);
  queue_append(w, node, node, 1);
  bool woke_target = wake_locked(w);
  boc_mutex_unlock(&w->mu);
  /* relaxed: statistics only (the one counter with several writers). */
  atomic_fetch_add_explicit(&w->st.pushed_remote, 1, BOC_RELAXED);
  if (!woke_target) {
    /* The target is busy, or already being woken for an earlier node: let
     * an idle worker steal this one. */
    wake_one(s, (int)t + 1);
  }
}

void boc_sched_push_to(boc_sched_t *s, int target, boc_sched_node_t *node) {
  node->next = NULL;
  worker_t *w = &s->workers[target];
  boc_mutex_lock(&w->mu);
  queue_append(w, node, node, 1);
  bool target_parked = wake_locked(w);
  boc_mutex_unlock(&w->mu);
  /* relaxed: statistics only (the one counter with several writers). */
  atomic_fetch_add_explicit(&w->st.pushed_remote, 1, BOC_RELAXED);
  if (!target_parked) {
    wake_one(s, target + 1); /* the target is busy: let an idle one steal */
  }
}

bool boc_sched_parked(const boc_sched_t *s, int i) {
  /* relaxed: a hint for placement; correctness never depends on it. */
  return atomic_load_explicit(&s->workers[i].parked, BOC_RELAXED) != 0;
}

void boc_sched_poke(boc_sched_t *s, int i) {
  worker_t *w = &s->workers[i];
  /* seq_cst: pairs with the parker's seq_cst re-check of poked (a poke
   * either is seen there or finds parked set under mu and signals). */
  atomic_store_explicit(&w->poked, 1, BOC_SEQ_CST);
  boc_mutex_lock(&w->mu);
  (void)wake_locked(w);
  boc_mutex_unlock(&w->mu);
}

bool boc_sched_stopping(const boc_sched_t *s) { return stopped(s); }

void boc_sched_push_shared(boc_sched_t *s, int self, boc_sched_node_t *node) {
  if (self < 0 || self >= s->n) {
    boc_sched_push(s, self, node);
    return;
  }
  node->next = NULL;
  worker_t *w = &s->workers[self];
  own_add(&w->st.pushed_local, 1);
  boc_mutex_lock(&w->mu);
  queue_append(w, node, node, 1);
  boc_mutex_unlock(&w->mu);
  wake_one(s, self + 1); /* we are busy: someone idle can take it now */
}

/* ---- pop ------------------------------------------------------------------- */

/* Own slot (subject to fairness), then own queue. */
static boc_sched_node_t *take_local(boc_sched_t *s, worker_t *w) {
  boc_sched_node_t *node = NULL;
  size_t got = 0;
  if (w->slot != NULL && w->streak < BATCH_LIMIT) {
    node = w->slot;
    w->slot = NULL;
    w->streak++;
    own_add(&w->st.popped_local, 1);
    return node;
  }
  /* relaxed: a hint to skip the lock; the authoritative re-check before
   * parking is made under the mutex. */
  bool displaced = false;
  if (atomic_load_explicit(&w->len, BOC_RELAXED) != 0) {
    boc_mutex_lock(&w->mu);
    node = queue_take(w, 1, &got);
    if (node != NULL && w->slot != NULL) {
      /* The queue goes first (fairness): the slot's occupant would wait
       * for the whole of the node we run, so it moves to the head of the
       * queue, where it keeps its turn and an idle worker can take it. */
      queue_prepend(w, w->slot);
      w->slot = NULL;
      displaced = true;
    }
    boc_mutex_unlock(&w->mu);
  }
  if (node != NULL) {
    if (displaced) {
      own_add(&w->st.batch_resets, 1);
      wake_one(s, w->index + 1);
    }
    w->streak = 0;
    own_add(&w->st.popped_local, 1);
    return node;
  }
  if (w->slot != NULL) { /* over the limit but the queue is empty */
    node = w->slot;
    w->slot = NULL; /* streak stays at the limit: check the queue next time */
    own_add(&w->st.popped_local, 1);
  }
  return node;
}

/* One steal round: visits every other worker once, starting at a rotating
 * victim; takes half (rounded up) of the first non-empty queue. */
static boc_sched_node_t *steal(boc_sched_t *s, int self) {
  worker_t *w = &s->workers[self];
  int n = s->n;
  if (n == 1) {
    return NULL;
  }
  int start = w->victim;
  w->victim = (start + 1) % n;
  bool attempted = false;
  for (int k = 0; k < n; k++) {
    int v = (start + k) % n;
    if (v == self) {
      continue;
    }
    worker_t *vic = &s->workers[v];
    /* relaxed: a hint; we re-read it under the victim's lock. */
    if (atomic_load_explicit(&vic->len, BOC_RELAXED) == 0) {
      continue;
    }
    /* A victim that was just woken for its work is about to take it: give
     * it WAKE_GRACE_NS before stealing, or two workers woken for two nodes
     * can end up with both nodes on one of them (the thief takes the
     * woken one's node, its own arrives next, the woken one finds none).
     * relaxed: a hint only; the parking re-check still sees the work, so
     * we never sleep past it. */
    int64_t woken = atomic_load_explicit(&vic->woken_at, BOC_RELAXED);
    if (woken != 0 && boc_now_ns() - woken < WAKE_GRACE_NS) {
      continue;
    }
    if (!attempted) {
      attempted = true;
      own_add(&w->st.steal_attempts, 1);
      /* relaxed: statistics only */
      atomic_store_explicit(&w->st.last_steal_attempt_ns,
                            (uint64_t)boc_now_ns(), BOC_RELAXED);
    }
    size_t got = 0;
    boc_mutex_lock(&vic->mu);
    /* relaxed: under vic->mu, which every writer of len holds. */
    size_t len = atomic_load_explicit(&vic->len, BOC_RELAXED);
    boc_sched_node_t *first = queue_take(vic, (len + 1) / 2, &got);
    boc_mutex_unlock(&vic->mu);
    if (first == NULL) {
      continue; /* emptied under us: try the next victim */
    }
    boc_sched_node_t *rest = first->next;
    first->next = NULL;
    if (rest != NULL) {
      boc_sched_node_t *last = rest;
      while (last->next != NULL) {
        last = last->next;
      }
      boc_mutex_lock(&w->mu);
      queue_append(w, rest, last, got - 1);
      boc_mutex_unlock(&w->mu);
      wake_one(s, self + 1); /* spread the rest further */
    }
    w->streak = 0;
    own_add(&w->st.popped_via_steal, 1);
    return first;
  }
  if (attempted) {
    own_add(&w->st.steal_failures, 1);
  }
  return NULL;
}

/* Does any worker other than self have queued (stealable) work?  seq_cst:
 * the parker's load half of the pairing described at the top. */
static bool others_have_work(const boc_sched_t *s, int self) {
  for (int i = 0; i < s->n; i++) {
    if (i != self &&
        atomic_load_explicit(&s->workers[i].len, BOC_SEQ_CST) != 0) {
      return true;
    }
  }
  return false;
}

/* Steps 1-4 of the parking protocol (see top).  Returns when woken, when the
 * belt-and-braces timeout expires, or at once if the re-check found work. */
static void park(boc_sched_t *s, int self) {
  worker_t *w = &s->workers[self];
  /* seq_cst: the parker's store half of the pairing with wake_one. */
  atomic_fetch_add_explicit(&s->parked_count, 1, BOC_SEQ_CST);
  boc_mutex_lock(&w->mu);
  /* seq_cst: as above; must precede our len loads in the total order. */
  atomic_store_explicit(&w->parked, 1, BOC_SEQ_CST);
  /* seq_cst on stop: pairs with boc_sched_stop's store (the token, set under
   * this mutex, covers a stop that comes later). */
  if (w->head == NULL && !w->token &&
      atomic_load_explicit(&s->stop, BOC_SEQ_CST) == 0 &&
      atomic_load_explicit(&w->poked, BOC_SEQ_CST) == 0 &&
      !others_have_work(s, self)) {
    own_add(&w->st.parked, 1);
    /* relaxed: a setting, read once per sleep. */
    int64_t timeout =
        atomic_load_explicit(&s->park_timeout_ns, BOC_RELAXED);
    while (!w->token) {
      if (!boc_cond_timedwait(&w->cv, &w->mu, timeout)) {
        break; /* timed out: go round the loop again */
      }
    }
  }
  w->token = false;
  /* relaxed: a hint for thieves (see steal); under mu like its writers. */
  atomic_store_explicit(&w->woken_at, 0, BOC_RELAXED);
  /* relaxed: under mu; a stale 1 seen lock-free only costs a lock. */
  atomic_store_explicit(&w->parked, 0, BOC_RELAXED);
  boc_mutex_unlock(&w->mu);
  /* seq_cst: keeps parked_count in the same total order as its increment;
   * a stale non-zero only costs a pusher a scan. */
  atomic_fetch_sub_explicit(&s->parked_count, 1, BOC_SEQ_CST);
}

boc_sched_node_t *boc_sched_try_pop(boc_sched_t *s, int self) {
  if (stopped(s)) {
    return NULL;
  }
  boc_sched_node_t *node = take_local(s, &s->workers[self]);
  return node != NULL ? node : steal(s, self);
}

/* A poke for self was pending (and is now consumed). */
static bool take_poke(boc_sched_t *s, int self) {
  _Atomic int *p = &s->workers[self].poked;
  /* relaxed peek, acq_rel exchange: the poker's writes before its poke
   * (the request it queued) are visible to the chore that follows. */
  return atomic_load_explicit(p, BOC_RELAXED) != 0 &&
         atomic_exchange_explicit(p, 0, BOC_ACQ_REL) != 0;
}

boc_sched_node_t *boc_sched_pop(boc_sched_t *s, int self) {
  for (;;) {
    boc_sched_node_t *node = boc_sched_try_pop(s, self);
    if (node != NULL || stopped(s) || take_poke(s, self)) {
      return node;
    }
    /* Spin briefly: work often arrives within microseconds. */
    int64_t start = boc_now_ns();
    while (boc_now_ns() - start < SPIN_NS) {
      boc_thread_yield();
      node = boc_sched_try_pop(s, self);
      if (node != NULL || stopped(s) || take_poke(s, self)) {
        return node;
      }
    }
    park(s, self);
  }
}

/* ---- the rest --------------------------------------------------------------- */

void boc_sched_add_busy(boc_sched_t *s, int self, int64_t ns) {
  if (ns > 0) {
    own_add(&s->workers[self].st.busy_ns, (uint64_t)ns);
  }
}

void boc_sched_stop(boc_sched_t *s) {
  /* seq_cst: pairs with the parker's seq_cst check before sleeping. */
  atomic_store_explicit(&s->stop, 1, BOC_SEQ_CST);
  for (int i = 0; i < s->n; i++) {
    worker_t *w = &s->workers[i];
    boc_mutex_lock(&w->mu);
    w->token = true; /* sticks even if the worker is not yet waiting */
    boc_cond_signal(&w->cv);
    boc_mutex_unlock(&w->mu);
  }
}

void boc_sched_set_park_timeout(boc_sched_t *s, int64_t ns) {
  /* relaxed: a setting; the next sleep reads it. */
  atomic_store_explicit(&s->park_timeout_ns, ns > 0 ? ns : PARK_TIMEOUT_NS,
                        BOC_RELAXED);
}

void boc_sched_resume(boc_sched_t *s) {
  /* seq_cst: like stop; workers activated after this see it cleared. */
  atomic_store_explicit(&s->stop, 0, BOC_SEQ_CST);
}

boc_sched_node_t *boc_sched_drain(boc_sched_t *s) {
  boc_sched_node_t *head = NULL;
  boc_sched_node_t **link = &head;
  for (int i = 0; i < s->n; i++) {
    worker_t *w = &s->workers[i];
    if (w->slot != NULL) { /* the workers are gone: we own the slot */
      *link = w->slot;
      link = &w->slot->next;
      w->slot = NULL;
    }
    boc_mutex_lock(&w->mu);
    size_t got = 0;
    boc_sched_node_t *q = queue_take(w, SIZE_MAX, &got);
    boc_mutex_unlock(&w->mu);
    *link = q;
    while (*link != NULL) {
      link = &(*link)->next;
    }
    w->streak = 0;
  }
  *link = NULL;
  return head;
}

void boc_sched_get_stats(const boc_sched_t *s, int i, boc_sched_stats_t *out) {
  const worker_stats_t *st = &s->workers[i].st;
  /* relaxed throughout: statistics, read after the fact. */
#define LOAD(f) atomic_load_explicit(&st->f, BOC_RELAXED)
  out->worker_index = (uint64_t)i;
  out->pushed_local = LOAD(pushed_local);
  out->dispatched_to_pending = LOAD(dispatched_to_pending);
  out->pushed_remote = LOAD(pushed_remote);
  out->popped_local = LOAD(popped_local);
  out->popped_via_steal = LOAD(popped_via_steal);
  out->steal_attempts = LOAD(steal_attempts);
  out->steal_failures = LOAD(steal_failures);
  out->parked = LOAD(parked);
  out->last_steal_attempt_ns = LOAD(last_steal_attempt_ns);
  out->batch_resets = LOAD(batch_resets);
  out->busy_ns = LOAD(busy_ns);
#undef LOAD
}

size_t boc_sched_queued(const boc_sched_t *s, int i) {
  /* relaxed: a live statistic; len is written under the worker's mutex. */
  return atomic_load_explicit(&s->workers[i].len, BOC_RELAXED);
}

/* ---- a locked FIFO of nodes ---------------------------------------------- */

int boc_fifo_init(boc_fifo_t *q) {
  q->head = q->tail = NULL;
  atomic_init(&q->depth, 0);
  return boc_mutex_init(&q->mu);
}

int64_t boc_fifo_push_locked(boc_fifo_t *q, boc_sched_node_t *node) {
  node->next = NULL;
  if (q->tail != NULL) {
    q->tail->next = node;
  } else {
    q->head = node;
  }
  q->tail = node;
  /* relaxed: depth is a hint to readers without mu; the list itself is
   * guarded by mu. */
  return atomic_fetch_add_explicit(&q->depth, 1, BOC_RELAXED);
}

boc_sched_node_t *boc_fifo_pop_locked(boc_fifo_t *q, int64_t *left) {
  boc_sched_node_t *node = q->head;
  int64_t n = atomic_load_explicit(&q->depth, BOC_RELAXED);
  if (node != NULL) {
    q->head = node->next;
    if (q->head == NULL) {
      q->tail = NULL;
    }
    /* relaxed: as in boc_fifo_push_locked. */
    n = atomic_fetch_sub_explicit(&q->depth, 1, BOC_RELAXED) - 1;
  }
  if (left != NULL) {
    *left = n;
  }
  return node;
}

int64_t boc_fifo_depth(const boc_fifo_t *q) {
  /* relaxed: a hint (see boc_fifo_t). */
  return atomic_load_explicit(&q->depth, BOC_RELAXED);
}
