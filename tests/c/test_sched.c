/* test_sched.c - the worker scheduler: queues, "next" slot, fairness,
 * round-robin, drain, stop/park, and a multi-threaded stress test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "engine/sched.h"

typedef struct item {
  boc_sched_node_t node; /* first member: a node pointer is an item pointer */
  int id;
} item_t;

static item_t *as_item(boc_sched_node_t *n) { return (item_t *)n; }

static void init_items(item_t *items, int n) {
  for (int i = 0; i < n; i++) {
    items[i].node.next = NULL;
    items[i].id = i;
  }
}

/* sum(pushes) - sum(pops) over every worker: what drain must still return. */
static int64_t pushes_minus_pops(const boc_sched_t *s) {
  int64_t d = 0;
  for (int i = 0; i < boc_sched_workers(s); i++) {
    boc_sched_stats_t st;
    boc_sched_get_stats(s, i, &st);
    assert_int_equal(st.worker_index, (uint64_t)i);
    d += (int64_t)(st.pushed_local + st.dispatched_to_pending +
                   st.pushed_remote);
    d -= (int64_t)(st.popped_local + st.popped_via_steal);
  }
  return d;
}

static void test_new_and_bad_count(void **state) {
  (void)state;
  assert_null(boc_sched_new(0));
  assert_null(boc_sched_new(-3));
  boc_sched_t *s = boc_sched_new(3);
  assert_non_null(s);
  assert_int_equal(boc_sched_workers(s), 3);
  assert_null(boc_sched_try_pop(s, 1));
  assert_null(boc_sched_drain(s));
  boc_sched_free(s);
}

static void test_fifo_single_thread(void **state) {
  (void)state;
  enum { N = 10 };
  item_t items[N];
  init_items(items, N);
  boc_sched_t *s = boc_sched_new(1);
  for (int i = 0; i < N; i++) {
    boc_sched_push(s, -1, &items[i].node);
  }
  for (int i = 0; i < N; i++) {
    boc_sched_node_t *n = boc_sched_pop(s, 0); /* never blocks: work queued */
    assert_non_null(n);
    assert_int_equal(as_item(n)->id, i);
  }
  assert_null(boc_sched_try_pop(s, 0));
  boc_sched_stats_t st;
  boc_sched_get_stats(s, 0, &st);
  assert_int_equal(st.pushed_remote, N);
  assert_int_equal(st.popped_local, N);
  assert_int_equal(st.popped_via_steal, 0);
  assert_int_equal(pushes_minus_pops(s), 0);
  boc_sched_free(s);
}

static void test_next_slot(void **state) {
  (void)state;
  item_t items[4];
  init_items(items, 4);
  boc_sched_t *s = boc_sched_new(2);
  /* Slot empty: the node goes to the slot, nothing to the queue. */
  boc_sched_push(s, 0, &items[0].node);
  assert_ptr_equal(boc_sched_try_pop(s, 0), &items[0].node);
  /* Queued work first, then two local pushes: the newest takes the slot and
   * the displaced one goes to the back of the queue. */
  boc_sched_push(s, -1, &items[1].node); /* round-robin: worker 0's queue */
  boc_sched_push(s, 0, &items[2].node);
  boc_sched_push(s, 0, &items[3].node); /* displaces 2 */
  /* Worker 1 cannot take the slot, but can steal from worker 0's queue. */
  boc_sched_node_t *stolen = boc_sched_try_pop(s, 1);
  assert_ptr_equal(stolen, &items[1].node); /* half of 2, rounded up: 1 */
  assert_ptr_equal(boc_sched_try_pop(s, 0), &items[3].node);
  assert_ptr_equal(boc_sched_try_pop(s, 0), &items[2].node);
  assert_null(boc_sched_try_pop(s, 0));
  assert_null(boc_sched_try_pop(s, 1));

  boc_sched_stats_t st0, st1;
  boc_sched_get_stats(s, 0, &st0);
  boc_sched_get_stats(s, 1, &st1);
  assert_int_equal(st0.dispatched_to_pending, 2); /* items 0 and 2 */
  assert_int_equal(st0.pushed_local, 1);          /* item 3 displaced 2 */
  assert_int_equal(st0.pushed_remote, 1);
  assert_int_equal(st0.popped_local, 3);
  assert_int_equal(st1.popped_via_steal, 1);
  assert_int_equal(st1.steal_attempts, 1);
  assert_int_equal(st1.steal_failures, 0);
  assert_true(st1.last_steal_attempt_ns > 0);
  assert_int_equal(pushes_minus_pops(s), 0);
  boc_sched_free(s);
}

static void test_fairness_reset(void **state) {
  (void)state;
  enum { CHAIN = 250 };
  item_t queued[2];
  item_t chain[CHAIN];
  init_items(queued, 2);
  init_items(chain, CHAIN);
  boc_sched_t *s = boc_sched_new(1);
  boc_sched_push(s, -1, &queued[0].node);
  boc_sched_push(s, -1, &queued[1].node);
  /* A self-rescheduling chain: pop one, push the next from "inside" it. */
  int next = 0;
  boc_sched_push(s, 0, &chain[next++].node);
  int chain_pops = 0;
  int queued_seen[2] = {-1, -1};
  for (int pops = 0; pops < CHAIN + 2; pops++) {
    boc_sched_node_t *n = boc_sched_try_pop(s, 0);
    assert_non_null(n);
    if (n == &queued[0].node || n == &queued[1].node) {
      queued_seen[n == &queued[1].node] = chain_pops;
      continue;
    }
    assert_ptr_equal(n, &chain[chain_pops].node);
    chain_pops++;
    if (next < CHAIN) {
      boc_sched_push(s, 0, &chain[next++].node);
    }
  }
  /* After 100 consecutive slot pops the queue went first, each time; the
   * slot's occupant then moved to the head of the queue and ran next (a
   * queue pop, which restarts the count). */
  assert_int_equal(queued_seen[0], 100);
  assert_int_equal(queued_seen[1], 201);
  assert_null(boc_sched_try_pop(s, 0));
  boc_sched_stats_t st;
  boc_sched_get_stats(s, 0, &st);
  assert_int_equal(st.batch_resets, 2);
  assert_int_equal(st.dispatched_to_pending, CHAIN);
  assert_int_equal(st.pushed_local, 0);
  assert_int_equal(pushes_minus_pops(s), 0);

  /* Over the limit with an empty queue, the slot is still served. */
  for (int i = 0; i < 150; i++) {
    chain[0].node.next = NULL;
    boc_sched_push(s, 0, &chain[0].node);
    assert_ptr_equal(boc_sched_try_pop(s, 0), &chain[0].node);
  }
  boc_sched_get_stats(s, 0, &st);
  assert_int_equal(st.batch_resets, 2);
  boc_sched_free(s);
}

/* When the queue goes first, the slot's occupant is not stranded behind the
 * node the owner runs: it moves to the head of the queue, where another
 * worker can steal it. */
static void test_fairness_reset_slot_is_stealable(void **state) {
  (void)state;
  enum { CHAIN = 101 };
  item_t queued;
  item_t chain[CHAIN];
  init_items(&queued, 1);
  init_items(chain, CHAIN);
  boc_sched_t *s = boc_sched_new(2);
  boc_sched_push(s, -1, &queued.node); /* round-robin: worker 0's queue */
  for (int i = 0; i < 100; i++) {
    boc_sched_push(s, 0, &chain[i].node);
    assert_ptr_equal(boc_sched_try_pop(s, 0), &chain[i].node);
  }
  boc_sched_push(s, 0, &chain[100].node); /* in the slot, streak at limit */
  assert_ptr_equal(boc_sched_try_pop(s, 0), &queued.node);
  assert_int_equal(boc_sched_queued(s, 0), 1); /* the slot's occupant */
  assert_ptr_equal(boc_sched_try_pop(s, 1), &chain[100].node); /* stolen */
  assert_null(boc_sched_try_pop(s, 0));
  boc_sched_stats_t st;
  boc_sched_get_stats(s, 0, &st);
  assert_int_equal(st.batch_resets, 1);
  assert_int_equal(pushes_minus_pops(s), 0);
  boc_sched_free(s);
}

/* A push from a worker that goes on running (a body scheduling) lands in
 * its queue, FIFO, stealable at once; the slot is left alone. */
static void test_push_shared(void **state) {
  (void)state;
  item_t items[3];
  init_items(items, 3);
  boc_sched_t *s = boc_sched_new(2);
  boc_sched_push(s, 0, &items[0].node); /* the slot */
  boc_sched_push_shared(s, 0, &items[1].node);
  boc_sched_push_shared(s, 0, &items[2].node);
  assert_int_equal(boc_sched_queued(s, 0), 2);
  /* Worker 1 steals half of the queue (rounded up): the oldest node. */
  assert_ptr_equal(boc_sched_try_pop(s, 1), &items[1].node);
  assert_ptr_equal(boc_sched_try_pop(s, 0), &items[0].node);
  assert_ptr_equal(boc_sched_try_pop(s, 0), &items[2].node);
  assert_null(boc_sched_try_pop(s, 0));
  boc_sched_stats_t st;
  boc_sched_get_stats(s, 0, &st);
  assert_int_equal(st.dispatched_to_pending, 1);
  assert_int_equal(st.pushed_local, 2);
  /* From off the workers it is a plain remote push. */
  items[0].node.next = NULL;
  boc_sched_push_shared(s, -1, &items[0].node);
  assert_non_null(boc_sched_try_pop(s, 0));
  assert_int_equal(pushes_minus_pops(s), 0);
  boc_sched_free(s);
}

static void test_round_robin(void **state) {
  (void)state;
  enum { W = 4, PER = 3 };
  item_t items[W * PER];
  init_items(items, W * PER);
  boc_sched_t *s = boc_sched_new(W);
  for (int i = 0; i < W * PER; i++) {
    boc_sched_push(s, -1, &items[i].node);
  }
  for (int w = 0; w < W; w++) {
    boc_sched_stats_t st;
    boc_sched_get_stats(s, w, &st);
    assert_int_equal(st.pushed_remote, PER);
    assert_int_equal(boc_sched_queued(s, w), PER); /* the live depth */
  }
  /* Each worker finds its own share, in push order, before stealing. */
  for (int w = 0; w < W; w++) {
    for (int k = 0; k < PER; k++) {
      boc_sched_node_t *n = boc_sched_try_pop(s, w);
      assert_non_null(n);
      assert_int_equal(as_item(n)->id, w + k * W);
    }
  }
  assert_null(boc_sched_try_pop(s, 0));
  assert_int_equal(pushes_minus_pops(s), 0);
  for (int w = 0; w < W; w++) {
    assert_int_equal(boc_sched_queued(s, w), 0);
  }
  boc_sched_free(s);
}

static void test_drain(void **state) {
  (void)state;
  enum { W = 3, N = 30 };
  item_t items[N];
  init_items(items, N);
  boc_sched_t *s = boc_sched_new(W);
  for (int i = 0; i < N; i++) {
    /* a mix of remote pushes, slot pushes and displacements */
    boc_sched_push(s, i % 3 == 0 ? -1 : i % W, &items[i].node);
  }
  /* Take a few so the stats are not trivially zero. */
  assert_non_null(boc_sched_try_pop(s, 0));
  assert_non_null(boc_sched_try_pop(s, 2));
  boc_sched_stop(s);
  assert_null(boc_sched_pop(s, 1)); /* stopped: left for drain */
  int64_t left = pushes_minus_pops(s);
  assert_int_equal(left, N - 2);
  int seen[N] = {0};
  int count = 0;
  for (boc_sched_node_t *n = boc_sched_drain(s); n != NULL; n = n->next) {
    seen[as_item(n)->id]++;
    count++;
  }
  assert_int_equal(count, left);
  int total = 0;
  for (int i = 0; i < N; i++) {
    assert_true(seen[i] <= 1);
    total += seen[i];
  }
  assert_int_equal(total, N - 2);
  assert_null(boc_sched_drain(s)); /* empty now */
  boc_sched_free(s);
}

/* ---- blocking pop: parking, waking, stopping ----------------------------- */

typedef struct popper {
  boc_sched_t *s;
  int self;
  boc_sched_node_t *_Atomic result; /* read after join */
  _Atomic int done;
} popper_t;

static void pop_once(void *arg) {
  popper_t *p = arg;
  boc_sched_node_t *n = boc_sched_pop(p->s, p->self);
  /* relaxed: the test thread reads it after joining us */
  atomic_store_explicit(&p->result, n, BOC_RELAXED);
  /* release: a test thread that sees done may join at once */
  atomic_store_explicit(&p->done, 1, BOC_RELEASE);
}

/* A parked worker's belt-and-braces timeout is set to an hour in these
 * tests (boc_sched_set_park_timeout), so a lost wake-up shows as a popper
 * that never returns.  How long a wake-up takes is not asserted (the
 * machine may be busy): the popper gets a generous bound, then the test
 * fails instead of hanging. */
static const int64_t PARK_FOREVER_NS = 3600LL * 1000 * 1000 * 1000;
static const int64_t WOKEN_WITHIN_NS = 60LL * 1000 * 1000 * 1000;

static void start_popper(popper_t *p, boc_thread_t *t, boc_sched_t *s,
                         int self) {
  p->s = s;
  p->self = self;
  atomic_init(&p->result, NULL);
  atomic_init(&p->done, 0);
  assert_int_equal(boc_thread_start(t, pop_once, p), 0);
}

/* Joins p's thread once it has returned; fails (without joining) if it has
 * not returned within WOKEN_WITHIN_NS: its wake-up was lost. */
static void join_popper(popper_t *p, boc_thread_t *t) {
  int64_t deadline = boc_now_ns() + WOKEN_WITHIN_NS;
  while (!atomic_load_explicit(&p->done, BOC_ACQUIRE)) {
    assert_true(boc_now_ns() < deadline);
    boc_sleep_ns(1000000);
  }
  assert_int_equal(boc_thread_join(t), 0);
}

/* Waits (bounded) until worker i has parked at least `times` times. */
static void wait_parked(boc_sched_t *s, int i, uint64_t times) {
  int64_t deadline = boc_now_ns() + 10LL * 1000 * 1000 * 1000;
  for (;;) {
    boc_sched_stats_t st;
    boc_sched_get_stats(s, i, &st);
    if (st.parked >= times) {
      return;
    }
    assert_true(boc_now_ns() < deadline);
    boc_sleep_ns(1000000);
  }
}

static void test_stop_wakes_parked_worker(void **state) {
  (void)state;
  boc_sched_t *s = boc_sched_new(2);
  boc_sched_set_park_timeout(s, PARK_FOREVER_NS);
  popper_t p[2];
  boc_thread_t t[2];
  for (int i = 0; i < 2; i++) {
    start_popper(&p[i], &t[i], s, i);
  }
  wait_parked(s, 0, 1);
  wait_parked(s, 1, 1);
  boc_sched_stop(s);
  for (int i = 0; i < 2; i++) {
    join_popper(&p[i], &t[i]);
    assert_null(atomic_load_explicit(&p[i].result, BOC_RELAXED));
  }
  /* A pop after stop returns at once too. */
  assert_null(boc_sched_pop(s, 0));
  assert_null(boc_sched_try_pop(s, 0));
  boc_sched_free(s);
}

static void test_push_wakes_parked_worker(void **state) {
  (void)state;
  enum { ROUNDS = 20 };
  item_t items[ROUNDS];
  init_items(items, ROUNDS);
  boc_sched_t *s = boc_sched_new(1);
  boc_sched_set_park_timeout(s, PARK_FOREVER_NS);
  for (int r = 0; r < ROUNDS; r++) {
    popper_t p;
    boc_thread_t t;
    start_popper(&p, &t, s, 0);
    wait_parked(s, 0, (uint64_t)r + 1);
    boc_sched_push(s, -1, &items[r].node);
    join_popper(&p, &t);
    assert_ptr_equal(atomic_load_explicit(&p.result, BOC_RELAXED),
                     &items[r].node);
  }
  boc_sched_free(s);
}

/* A poke brings a parked worker back from pop with NULL, once, though the
 * scheduler is not stopped; a poke before the pop is not lost either. */
static void test_poke_returns_from_pop_once(void **state) {
  (void)state;
  boc_sched_t *s = boc_sched_new(2);
  popper_t p = {.s = s, .self = 1};
  atomic_init(&p.result, NULL);
  boc_thread_t t;
  assert_int_equal(boc_thread_start(&t, pop_once, &p), 0);
  wait_parked(s, 1, 1);
  boc_sched_poke(s, 1);
  assert_int_equal(boc_thread_join(&t), 0);
  assert_null(atomic_load_explicit(&p.result, BOC_RELAXED));
  assert_false(boc_sched_stopping(s));
  /* Poked before it pops: returns at once, and only once. */
  boc_sched_poke(s, 0);
  assert_null(boc_sched_pop(s, 0));
  item_t it;
  init_items(&it, 1);
  boc_sched_push(s, -1, &it.node); /* round robin: worker 0's queue */
  assert_ptr_equal(boc_sched_pop(s, 0), &it.node);
  boc_sched_free(s);
}

/* push_to puts a node in the chosen worker's queue and wakes it. */
static void test_push_to_wakes_the_target(void **state) {
  (void)state;
  boc_sched_t *s = boc_sched_new(2);
  item_t it;
  init_items(&it, 1);
  popper_t p = {.s = s, .self = 1};
  atomic_init(&p.result, NULL);
  boc_thread_t t;
  assert_int_equal(boc_thread_start(&t, pop_once, &p), 0);
  wait_parked(s, 1, 1);
  assert_true(boc_sched_parked(s, 1));
  boc_sched_push_to(s, 1, &it.node);
  assert_int_equal(boc_thread_join(&t), 0);
  assert_ptr_equal(atomic_load_explicit(&p.result, BOC_RELAXED), &it.node);
  boc_sched_stats_t st;
  boc_sched_get_stats(s, 1, &st);
  assert_int_equal(st.pushed_remote, 1);
  assert_int_equal(pushes_minus_pops(s), 0);
  boc_sched_free(s);
}

/* Worker 0 (this thread) is busy and displaces a node into its queue:
 * parked worker 1 must be woken to steal it. */
static void test_displaced_node_wakes_thief(void **state) {
  (void)state;
  enum { ROUNDS = 20 };
  item_t items[2 * ROUNDS];
  init_items(items, 2 * ROUNDS);
  boc_sched_t *s = boc_sched_new(2);
  boc_sched_set_park_timeout(s, PARK_FOREVER_NS);
  for (int r = 0; r < ROUNDS; r++) {
    item_t *a = &items[2 * r], *b = &items[2 * r + 1];
    popper_t p;
    boc_thread_t t;
    start_popper(&p, &t, s, 1);
    wait_parked(s, 1, (uint64_t)r + 1);
    boc_sched_push(s, 0, &a->node); /* slot */
    boc_sched_push(s, 0, &b->node); /* displaces a into the queue */
    join_popper(&p, &t);
    assert_ptr_equal(atomic_load_explicit(&p.result, BOC_RELAXED), &a->node);
    assert_ptr_equal(boc_sched_try_pop(s, 0), &b->node);
  }
  boc_sched_stats_t st;
  boc_sched_get_stats(s, 1, &st);
  assert_int_equal(st.popped_via_steal, ROUNDS);
  assert_int_equal(pushes_minus_pops(s), 0);
  boc_sched_free(s);
}

/* Remote pushes that land on a busy worker's queue wake a parked one. */
static void test_remote_push_to_busy_worker_wakes_thief(void **state) {
  (void)state;
  enum { ROUNDS = 10 };
  item_t items[2 * ROUNDS];
  init_items(items, 2 * ROUNDS);
  boc_sched_t *s = boc_sched_new(2);
  boc_sched_set_park_timeout(s, PARK_FOREVER_NS);
  for (int r = 0; r < ROUNDS; r++) {
    popper_t p;
    boc_thread_t t;
    start_popper(&p, &t, s, 1);
    wait_parked(s, 1, (uint64_t)r + 1);
    /* Round-robin: even pushes go to worker 0 (busy: this thread), odd
     * ones to worker 1.  Push to 0 first: 1 must be woken to steal it. */
    boc_sched_push(s, -1, &items[2 * r].node);
    join_popper(&p, &t);
    assert_ptr_equal(atomic_load_explicit(&p.result, BOC_RELAXED),
                     &items[2 * r].node);
    boc_sched_push(s, -1, &items[2 * r + 1].node); /* keep the cursor even */
    assert_ptr_equal(boc_sched_try_pop(s, 1), &items[2 * r + 1].node);
  }
  assert_int_equal(pushes_minus_pops(s), 0);
  boc_sched_free(s);
}

/* A push into the queue of a worker that is already being woken (or is
 * running) wakes another parked worker: with workers 1 and 2 parked and
 * this thread as busy worker 0, push 1 goes to 0's queue (waking 1), push 2
 * to 1's queue; whatever 1 is doing by then, 2 must be woken too (before,
 * a push to a worker with a wake-up pending woke nobody, and 2 slept on). */
static void test_push_to_a_worker_being_woken_wakes_another(void **state) {
  (void)state;
  enum { ROUNDS = 10 };
  item_t items[2 * ROUNDS];
  init_items(items, 2 * ROUNDS);
  boc_sched_t *s = boc_sched_new(3);
  boc_sched_set_park_timeout(s, PARK_FOREVER_NS);
  for (int r = 0; r < ROUNDS; r++) {
    popper_t p[2];
    boc_thread_t t[2];
    for (int k = 0; k < 2; k++) {
      start_popper(&p[k], &t[k], s, k + 1);
    }
    wait_parked(s, 1, (uint64_t)r + 1);
    wait_parked(s, 2, (uint64_t)r + 1);
    boc_sched_push(s, -1, &items[2 * r].node);     /* worker 0's queue */
    boc_sched_push(s, -1, &items[2 * r + 1].node); /* worker 1's queue */
    for (int k = 0; k < 2; k++) {
      join_popper(&p[k], &t[k]);
      assert_non_null(atomic_load_explicit(&p[k].result, BOC_RELAXED));
    }
    boc_sched_push(s, -1, &items[0].node); /* keep the cursor at 0 mod 3 */
    assert_ptr_equal(boc_sched_try_pop(s, 2), &items[0].node);
  }
  assert_int_equal(pushes_minus_pops(s), 0);
  boc_sched_free(s);
}

/* ---- stress ---------------------------------------------------------------
 * Producers push ROOTS nodes from outside (self = -1).  A worker that pops a
 * root pushes its CHILDREN children with self = i (the first takes the slot,
 * the next ones displace it), as nested scheduling would.  Every node must
 * be popped exactly once and nothing may hang. */
enum {
  WORKERS = 4,
  PRODUCERS = 2,
  CHILDREN = 3,
  TOTAL = 200000,
  ROOTS = TOTAL / (CHILDREN + 1),
};

typedef struct stress {
  boc_sched_t *s;
  item_t *items;
  _Atomic int *pops;     /* per node */
  _Atomic int64_t consumed;
  _Atomic int errors;
} stress_t;

typedef struct stress_arg {
  stress_t *st;
  int index;
} stress_arg_t;

static void producer(void *arg) {
  stress_arg_t *a = arg;
  for (int r = a->index; r < ROOTS; r += PRODUCERS) {
    boc_sched_push(a->st->s, -1, &a->st->items[r].node);
    if (r % 1024 == 0) {
      boc_thread_yield(); /* let workers drain and park now and then */
    }
  }
}

static void worker(void *arg) {
  stress_arg_t *a = arg;
  stress_t *st = a->st;
  boc_sched_node_t *n;
  while ((n = boc_sched_pop(st->s, a->index)) != NULL) {
    int64_t t0 = boc_now_ns();
    int id = as_item(n)->id;
    /* relaxed: the count is checked after join; a second pop shows as 1 */
    if (atomic_fetch_add_explicit(&st->pops[id], 1, BOC_RELAXED) != 0) {
      atomic_fetch_add_explicit(&st->errors, 1, BOC_RELAXED);
    }
    if (id < ROOTS) {
      for (int c = 1; c <= CHILDREN; c++) {
        boc_sched_push(st->s, a->index, &st->items[id + c * ROOTS].node);
      }
    }
    boc_sched_add_busy(st->s, a->index, boc_now_ns() - t0);
    /* release: the main thread reads the pop counts after seeing TOTAL */
    atomic_fetch_add_explicit(&st->consumed, 1, BOC_RELEASE);
  }
}

static void test_stress(void **state) {
  (void)state;
  stress_t st;
  st.s = boc_sched_new(WORKERS);
  assert_non_null(st.s);
  st.items = malloc(sizeof(item_t) * TOTAL);
  st.pops = malloc(sizeof(_Atomic int) * TOTAL);
  assert_non_null(st.items);
  assert_non_null(st.pops);
  init_items(st.items, TOTAL);
  for (int i = 0; i < TOTAL; i++) {
    atomic_init(&st.pops[i], 0);
  }
  atomic_init(&st.consumed, 0);
  atomic_init(&st.errors, 0);

  boc_thread_t wt[WORKERS], pt[PRODUCERS];
  stress_arg_t wa[WORKERS], pa[PRODUCERS];
  for (int i = 0; i < WORKERS; i++) {
    wa[i] = (stress_arg_t){&st, i};
    assert_int_equal(boc_thread_start(&wt[i], worker, &wa[i]), 0);
  }
  for (int i = 0; i < PRODUCERS; i++) {
    pa[i] = (stress_arg_t){&st, i};
    assert_int_equal(boc_thread_start(&pt[i], producer, &pa[i]), 0);
  }
  for (int i = 0; i < PRODUCERS; i++) {
    assert_int_equal(boc_thread_join(&pt[i]), 0);
  }
  /* No hang: everything is consumed well within the deadline. */
  int64_t deadline = boc_now_ns() + 60LL * 1000 * 1000 * 1000;
  while (atomic_load_explicit(&st.consumed, BOC_ACQUIRE) < TOTAL) {
    assert_true(boc_now_ns() < deadline);
    boc_sleep_ns(1000000);
  }
  boc_sched_stop(st.s);
  for (int i = 0; i < WORKERS; i++) {
    assert_int_equal(boc_thread_join(&wt[i]), 0);
  }
  assert_int_equal(atomic_load_explicit(&st.errors, BOC_RELAXED), 0);
  for (int i = 0; i < TOTAL; i++) {
    assert_int_equal(atomic_load_explicit(&st.pops[i], BOC_RELAXED), 1);
  }
  assert_null(boc_sched_drain(st.s));

  /* The stats invariant, and the split between the kinds of push. */
  uint64_t remote = 0, local = 0, popped = 0, stolen = 0, parks = 0;
  for (int i = 0; i < WORKERS; i++) {
    boc_sched_stats_t w;
    boc_sched_get_stats(st.s, i, &w);
    remote += w.pushed_remote;
    local += w.pushed_local + w.dispatched_to_pending;
    popped += w.popped_local + w.popped_via_steal;
    stolen += w.popped_via_steal;
    parks += w.parked;
    assert_true(w.steal_failures <= w.steal_attempts);
    assert_true(w.popped_via_steal <= w.steal_attempts);
  }
  assert_int_equal(remote, ROOTS);
  assert_int_equal(local, (uint64_t)ROOTS * CHILDREN);
  assert_int_equal(popped, TOTAL);
  assert_int_equal(pushes_minus_pops(st.s), 0);
  print_message("stress: %llu of %d pops via steal, %llu parks\n",
                (unsigned long long)stolen, TOTAL, (unsigned long long)parks);

  boc_sched_free(st.s);
  free(st.items);
  free(st.pops);
}

/* ---- the locked FIFO (boc_fifo_t) ------------------------------------------ */

static void test_locked_fifo_order_and_depth(void **state) {
  (void)state;
  boc_fifo_t q;
  assert_int_equal(boc_fifo_init(&q), 0);
  item_t items[3];
  init_items(items, 3);
  int64_t left = -1;
  boc_mutex_lock(&q.mu);
  assert_null(boc_fifo_pop_locked(&q, &left));
  assert_int_equal(left, 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(boc_fifo_push_locked(&q, &items[i].node), i);
  }
  boc_mutex_unlock(&q.mu);
  assert_int_equal(boc_fifo_depth(&q), 3);
  boc_mutex_lock(&q.mu);
  for (int i = 0; i < 3; i++) {
    boc_sched_node_t *n = boc_fifo_pop_locked(&q, &left);
    assert_non_null(n);
    assert_int_equal(as_item(n)->id, i);
    assert_int_equal(left, 2 - i);
  }
  assert_null(boc_fifo_pop_locked(&q, NULL));
  /* Empty again: a push after emptying starts a new list. */
  assert_int_equal(boc_fifo_push_locked(&q, &items[1].node), 0);
  assert_ptr_equal(boc_fifo_pop_locked(&q, NULL), &items[1].node);
  boc_mutex_unlock(&q.mu);
  assert_int_equal(boc_fifo_depth(&q), 0);
  boc_mutex_destroy(&q.mu);
}

enum { FIFO_PUSHERS = 4, FIFO_PER_PUSHER = 2000 };

typedef struct fifo_pusher {
  boc_fifo_t *q;
  item_t *items; /* FIFO_PER_PUSHER of them, ids in push order */
} fifo_pusher_t;

static void fifo_push_all(void *arg) {
  fifo_pusher_t *p = arg;
  for (int i = 0; i < FIFO_PER_PUSHER; i++) {
    boc_mutex_lock(&p->q->mu);
    boc_fifo_push_locked(p->q, &p->items[i].node);
    boc_mutex_unlock(&p->q->mu);
  }
}

/* Several pushers and one popper: every node comes out once, and each
 * pusher's nodes in the order it pushed them. */
static void test_locked_fifo_threads(void **state) {
  (void)state;
  boc_fifo_t q;
  assert_int_equal(boc_fifo_init(&q), 0);
  item_t *items = calloc(FIFO_PUSHERS * FIFO_PER_PUSHER, sizeof(*items));
  assert_non_null(items);
  init_items(items, FIFO_PUSHERS * FIFO_PER_PUSHER);
  fifo_pusher_t pushers[FIFO_PUSHERS];
  boc_thread_t threads[FIFO_PUSHERS];
  for (int t = 0; t < FIFO_PUSHERS; t++) {
    pushers[t].q = &q;
    pushers[t].items = &items[t * FIFO_PER_PUSHER];
    assert_int_equal(boc_thread_start(&threads[t], fifo_push_all, &pushers[t]),
                     0);
  }
  int next[FIFO_PUSHERS] = {0};
  int got = 0;
  while (got < FIFO_PUSHERS * FIFO_PER_PUSHER) {
    boc_mutex_lock(&q.mu);
    boc_sched_node_t *n = boc_fifo_pop_locked(&q, NULL);
    boc_mutex_unlock(&q.mu);
    if (n == NULL) {
      boc_thread_yield();
      continue;
    }
    int id = as_item(n)->id;
    int t = id / FIFO_PER_PUSHER;
    assert_int_equal(id % FIFO_PER_PUSHER, next[t]);
    next[t]++;
    got++;
  }
  for (int t = 0; t < FIFO_PUSHERS; t++) {
    assert_int_equal(boc_thread_join(&threads[t]), 0);
  }
  assert_int_equal(boc_fifo_depth(&q), 0);
  boc_mutex_destroy(&q.mu);
  free(items);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_and_bad_count),
      cmocka_unit_test(test_fifo_single_thread),
      cmocka_unit_test(test_next_slot),
      cmocka_unit_test(test_fairness_reset),
      cmocka_unit_test(test_fairness_reset_slot_is_stealable),
      cmocka_unit_test(test_push_shared),
      cmocka_unit_test(test_round_robin),
      cmocka_unit_test(test_drain),
      cmocka_unit_test(test_stop_wakes_parked_worker),
      cmocka_unit_test(test_push_wakes_parked_worker),
      cmocka_unit_test(test_poke_returns_from_pop_once),
      cmocka_unit_test(test_push_to_wakes_the_target),
      cmocka_unit_test(test_displaced_node_wakes_thief),
      cmocka_unit_test(test_remote_push_to_busy_worker_wakes_thief),
      cmocka_unit_test(test_push_to_a_worker_being_woken_wakes_another),
      cmocka_unit_test(test_stress),
      cmocka_unit_test(test_locked_fifo_order_and_depth),
      cmocka_unit_test(test_locked_fifo_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
