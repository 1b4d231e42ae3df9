/* test_request.c - two-phase locking over per-cown request queues: ordering,
 * hand-off, duplicates, and a model-checking stress test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/request.h"

/* ---- small single-threaded cases ---------------------------------------- */

enum { MAXREQ = 8 };

typedef struct beh {
  boc_waiter_t w; /* first member: a waiter pointer is a behavior pointer */
  boc_request_t reqs[MAXREQ];
  int n;
  int ready_calls;
} beh_t;

static void count_ready(boc_waiter_t *w, void *ctx) {
  beh_t *b = (beh_t *)w;
  b->ready_calls++;
  if (ctx != NULL) {
    (*(int *)ctx)++;
  }
}

/* Prepares and links b on the given cown indexes (duplicates allowed). */
static void link_on(beh_t *b, boc_slot_t *slots, const int *cowns, int k,
                    int *ready_total) {
  memset(b, 0, sizeof(*b));
  for (int i = 0; i < k; i++) {
    boc_request_init(&b->reqs[i], &slots[cowns[i]], (uint64_t)cowns[i], &b->w);
  }
  b->n = boc_requests_prepare(b->reqs, k);
  boc_requests_link(&b->w, b->reqs, b->n, count_ready, ready_total);
}

static void release(beh_t *b, int *ready_total) {
  boc_requests_release(b->reqs, b->n, count_ready, ready_total);
}

static void init_slots(boc_slot_t *slots, int n) {
  for (int i = 0; i < n; i++) {
    atomic_init(&slots[i].last, NULL);
  }
}

static bool idle(boc_slot_t *slot) {
  /* relaxed: single-threaded test */
  return atomic_load_explicit(&slot->last, BOC_RELAXED) == NULL;
}

static void test_prepare_sorts_and_dedups(void **state) {
  (void)state;
  boc_slot_t slots[8];
  init_slots(slots, 8);
  boc_waiter_t w;
  boc_request_t r[7];
  const int keys[7] = {5, 3, 5, 1, 3, 7, 1};
  for (int i = 0; i < 7; i++) {
    boc_request_init(&r[i], &slots[keys[i]], (uint64_t)keys[i], &w);
  }
  int n = boc_requests_prepare(r, 7);
  assert_int_equal(n, 4);
  const uint64_t want[4] = {1, 3, 5, 7};
  for (int i = 0; i < n; i++) {
    assert_int_equal(r[i].key, want[i]);
    assert_ptr_equal(r[i].slot, &slots[want[i]]);
    assert_ptr_equal(r[i].owner, &w);
    assert_null(atomic_load_explicit(&r[i].next, BOC_RELAXED));
    assert_int_equal(atomic_load_explicit(&r[i].scheduled, BOC_RELAXED), 0);
  }
  /* Already sorted, single, empty. */
  assert_int_equal(boc_requests_prepare(r, 4), 4);
  assert_int_equal(boc_requests_prepare(r, 1), 1);
  assert_int_equal(boc_requests_prepare(r, 0), 0);
}

static void test_idle_cowns_ready_during_link(void **state) {
  (void)state;
  boc_slot_t slots[4];
  init_slots(slots, 4);
  int total = 0;
  beh_t b;
  const int cowns[3] = {2, 0, 3};
  link_on(&b, slots, cowns, 3, &total);
  assert_int_equal(b.ready_calls, 1);
  assert_int_equal(total, 1);
  assert_int_equal(atomic_load_explicit(&b.w.pending, BOC_RELAXED), 0);
  assert_false(idle(&slots[0]));
  assert_true(idle(&slots[1]));
  release(&b, &total);
  assert_int_equal(total, 1); /* no successor: nobody else became ready */
  for (int i = 0; i < 4; i++) {
    assert_true(idle(&slots[i]));
  }
}

static void test_second_waits_for_first(void **state) {
  (void)state;
  boc_slot_t slots[4];
  init_slots(slots, 4);
  int total = 0;
  beh_t a, b, c;
  const int ca[2] = {1, 2}, cb[2] = {3, 2}, cc[1] = {3};
  link_on(&a, slots, ca, 2, &total);
  assert_int_equal(a.ready_calls, 1);
  link_on(&b, slots, cb, 2, &total); /* waits for a on cown 2 */
  assert_int_equal(b.ready_calls, 0);
  link_on(&c, slots, cc, 1, &total); /* waits for b on cown 3 */
  assert_int_equal(c.ready_calls, 0);
  release(&a, &total);
  assert_int_equal(b.ready_calls, 1);
  assert_int_equal(c.ready_calls, 0);
  assert_true(idle(&slots[1]));
  release(&b, &total);
  assert_int_equal(c.ready_calls, 1);
  assert_true(idle(&slots[2]));
  release(&c, &total);
  assert_int_equal(total, 3);
  for (int i = 0; i < 4; i++) {
    assert_true(idle(&slots[i]));
  }
}

static void test_same_cown_twice(void **state) {
  (void)state;
  boc_slot_t slots[2];
  init_slots(slots, 2);
  int total = 0;
  beh_t a, b;
  const int twice[3] = {1, 1, 1};
  link_on(&a, slots, twice, 3, &total);
  assert_int_equal(a.n, 1);
  assert_int_equal(a.ready_calls, 1); /* does not queue behind itself */
  link_on(&b, slots, twice, 2, &total);
  assert_int_equal(b.ready_calls, 0);
  release(&a, &total);
  assert_int_equal(b.ready_calls, 1);
  release(&b, &total);
  assert_true(idle(&slots[1]));
}

/* ---- stress ----------------------------------------------------------------
 * LINKERS threads each link PER_THREAD behaviors on random cown sets; ready
 * behaviors go to a shared list that EXECUTORS drain.  Running a behavior
 * claims an exclusive 'busy' flag on each cown and appends the behavior's id
 * to the cown's log (a plain array: TSan sees a race if hand-off fails to
 * order two behaviors), then releases.  Afterwards: each ran once, the logs
 * admit one total order, and per-thread link order is kept on every cown. */
enum {
  COWNS = 16,
  LINKERS = 4,
  EXECUTORS = 2,
  PER_THREAD = 12500,
  BEHAVIORS = LINKERS * PER_THREAD, /* ids: thread * PER_THREAD + seq */
  MAXSET = 4,
};

typedef struct sbeh {
  boc_waiter_t w; /* first member */
  boc_request_t reqs[MAXSET];
  int n;
  int id;
  struct sbeh *next_ready; /* guarded by the ready list's mutex */
  _Atomic int ready_calls;
  _Atomic int runs;
} sbeh_t;

typedef struct world {
  boc_slot_t slots[COWNS];
  _Atomic int busy[COWNS];
  int *log[COWNS]; /* owned by whoever holds the cown */
  int log_len[COWNS];
  sbeh_t *behs;
  boc_mutex_t mu;
  boc_cond_t cv;
  sbeh_t *ready_head; /* guarded by mu */
  sbeh_t *ready_tail;
  int completed; /* guarded by mu */
  bool stalled;  /* guarded by mu */
  _Atomic int violations;
} world_t;

typedef struct linker_arg {
  world_t *world;
  int thread;
} linker_arg_t;

static void enqueue_ready(boc_waiter_t *w, void *ctx) {
  world_t *world = ctx;
  sbeh_t *b = (sbeh_t *)w;
  /* relaxed: counted, checked after join */
  atomic_fetch_add_explicit(&b->ready_calls, 1, BOC_RELAXED);
  b->next_ready = NULL;
  boc_mutex_lock(&world->mu);
  if (world->ready_tail == NULL) {
    world->ready_head = b;
  } else {
    world->ready_tail->next_ready = b;
  }
  world->ready_tail = b;
  boc_cond_signal(&world->cv);
  boc_mutex_unlock(&world->mu);
}

static uint64_t xorshift(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static void linker(void *arg) {
  linker_arg_t *a = arg;
  world_t *world = a->world;
  uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(a->thread + 1);
  for (int seq = 0; seq < PER_THREAD; seq++) {
    sbeh_t *b = &world->behs[a->thread * PER_THREAD + seq];
    int k = 1 + (int)(xorshift(&rng) % MAXSET);
    for (int i = 0; i < k; i++) {
      int c = (int)(xorshift(&rng) % COWNS); /* duplicates allowed */
      boc_request_init(&b->reqs[i], &world->slots[c], (uint64_t)c, &b->w);
    }
    b->n = boc_requests_prepare(b->reqs, k);
    boc_requests_link(&b->w, b->reqs, b->n, enqueue_ready, world);
  }
}

static void run(world_t *world, sbeh_t *b) {
  /* relaxed: checked after join */
  atomic_fetch_add_explicit(&b->runs, 1, BOC_RELAXED);
  for (int i = 0; i < b->n; i++) {
    int c = (int)b->reqs[i].key;
    /* relaxed: the flag only detects overlap; ordering between behaviors
     * is exactly what request.c must provide (TSan checks the log). */
    if (atomic_exchange_explicit(&world->busy[c], 1, BOC_RELAXED) != 0) {
      atomic_fetch_add_explicit(&world->violations, 1, BOC_RELAXED);
    }
    world->log[c][world->log_len[c]++] = b->id;
  }
  boc_thread_yield(); /* widen the window in which overlap would show */
  for (int i = 0; i < b->n; i++) {
    /* relaxed: as above */
    atomic_store_explicit(&world->busy[(int)b->reqs[i].key], 0, BOC_RELAXED);
  }
}

/* Executors give up (and the test fails) if nothing completes for this
 * long: a lost hand-off or a deadlock must not hang the suite. */
static const int64_t STALL_NS = 20LL * 1000 * 1000 * 1000;

static void executor(void *arg) {
  world_t *world = arg;
  for (;;) {
    boc_mutex_lock(&world->mu);
    int64_t deadline = boc_now_ns() + STALL_NS;
    while (world->ready_head == NULL && world->completed < BEHAVIORS &&
           !world->stalled) {
      boc_cond_timedwait(&world->cv, &world->mu, 100 * 1000 * 1000);
      if (boc_now_ns() > deadline) {
        world->stalled = true;
        boc_cond_broadcast(&world->cv);
      }
    }
    if (world->ready_head == NULL) { /* everything completed, or stalled */
      boc_mutex_unlock(&world->mu);
      return;
    }
    sbeh_t *b = world->ready_head;
    world->ready_head = b->next_ready;
    if (world->ready_head == NULL) {
      world->ready_tail = NULL;
    }
    boc_mutex_unlock(&world->mu);

    run(world, b);
    boc_requests_release(b->reqs, b->n, enqueue_ready, world);

    boc_mutex_lock(&world->mu);
    if (++world->completed == BEHAVIORS) {
      boc_cond_broadcast(&world->cv);
    }
    boc_mutex_unlock(&world->mu);
  }
}

/* Kahn's algorithm over edges log[c][j] -> log[c][j+1]: true if acyclic. */
static bool logs_have_total_order(world_t *world) {
  int *indeg = calloc(BEHAVIORS, sizeof(int));
  int *edge_count = calloc(BEHAVIORS + 1, sizeof(int));
  int edges = 0;
  for (int c = 0; c < COWNS; c++) {
    for (int j = 0; j + 1 < world->log_len[c]; j++) {
      edge_count[world->log[c][j] + 1]++;
      indeg[world->log[c][j + 1]]++;
      edges++;
    }
  }
  for (int i = 0; i < BEHAVIORS; i++) { /* prefix sums: adjacency offsets */
    edge_count[i + 1] += edge_count[i];
  }
  int *adj = malloc(sizeof(int) * (size_t)(edges > 0 ? edges : 1));
  int *fill = malloc(sizeof(int) * BEHAVIORS);
  memcpy(fill, edge_count, sizeof(int) * BEHAVIORS);
  for (int c = 0; c < COWNS; c++) {
    for (int j = 0; j + 1 < world->log_len[c]; j++) {
      adj[fill[world->log[c][j]]++] = world->log[c][j + 1];
    }
  }
  int *stack = malloc(sizeof(int) * BEHAVIORS);
  int top = 0, visited = 0;
  for (int i = 0; i < BEHAVIORS; i++) {
    if (indeg[i] == 0) {
      stack[top++] = i;
    }
  }
  while (top > 0) {
    int u = stack[--top];
    visited++;
    for (int e = edge_count[u]; e < edge_count[u + 1]; e++) {
      if (--indeg[adj[e]] == 0) {
        stack[top++] = adj[e];
      }
    }
  }
  free(indeg);
  free(edge_count);
  free(adj);
  free(fill);
  free(stack);
  return visited == BEHAVIORS;
}

static void test_stress_model_check(void **state) {
  (void)state;
  world_t *world = calloc(1, sizeof(*world));
  assert_non_null(world);
  world->behs = calloc(BEHAVIORS, sizeof(sbeh_t));
  assert_non_null(world->behs);
  for (int c = 0; c < COWNS; c++) {
    atomic_init(&world->slots[c].last, NULL);
    atomic_init(&world->busy[c], 0);
    world->log[c] = malloc(sizeof(int) * BEHAVIORS);
    assert_non_null(world->log[c]);
  }
  for (int i = 0; i < BEHAVIORS; i++) {
    world->behs[i].id = i;
    atomic_init(&world->behs[i].ready_calls, 0);
    atomic_init(&world->behs[i].runs, 0);
  }
  atomic_init(&world->violations, 0);
  assert_int_equal(boc_mutex_init(&world->mu), 0);
  assert_int_equal(boc_cond_init(&world->cv), 0);

  boc_thread_t et[EXECUTORS], lt[LINKERS];
  linker_arg_t la[LINKERS];
  for (int i = 0; i < EXECUTORS; i++) {
    assert_int_equal(boc_thread_start(&et[i], executor, world), 0);
  }
  for (int i = 0; i < LINKERS; i++) {
    la[i] = (linker_arg_t){world, i};
    assert_int_equal(boc_thread_start(&lt[i], linker, &la[i]), 0);
  }
  for (int i = 0; i < LINKERS; i++) {
    assert_int_equal(boc_thread_join(&lt[i]), 0);
  }
  for (int i = 0; i < EXECUTORS; i++) {
    assert_int_equal(boc_thread_join(&et[i]), 0);
  }

  assert_false(world->stalled);
  assert_int_equal(world->completed, BEHAVIORS);
  assert_int_equal(atomic_load_explicit(&world->violations, BOC_RELAXED), 0);
  for (int i = 0; i < BEHAVIORS; i++) {
    sbeh_t *b = &world->behs[i];
    assert_int_equal(atomic_load_explicit(&b->ready_calls, BOC_RELAXED), 1);
    assert_int_equal(atomic_load_explicit(&b->runs, BOC_RELAXED), 1);
  }
  /* Every request of every behavior appears once in its cown's log. */
  int64_t entries = 0, expected = 0;
  for (int c = 0; c < COWNS; c++) {
    entries += world->log_len[c];
    assert_true(idle(&world->slots[c]));
  }
  for (int i = 0; i < BEHAVIORS; i++) {
    expected += world->behs[i].n;
  }
  assert_int_equal(entries, expected);
  /* Per-thread link order is kept on every cown. */
  for (int c = 0; c < COWNS; c++) {
    int last[LINKERS];
    for (int t = 0; t < LINKERS; t++) {
      last[t] = -1;
    }
    for (int j = 0; j < world->log_len[c]; j++) {
      int id = world->log[c][j];
      int t = id / PER_THREAD;
      assert_true(id % PER_THREAD > last[t]);
      last[t] = id % PER_THREAD;
    }
  }
  assert_true(logs_have_total_order(world));

  boc_cond_destroy(&world->cv);
  boc_mutex_destroy(&world->mu);
  for (int c = 0; c < COWNS; c++) {
    free(world->log[c]);
  }
  free(world->behs);
  free(world);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prepare_sorts_and_dedups),
      cmocka_unit_test(test_idle_cowns_ready_during_link),
      cmocka_unit_test(test_second_waits_for_first),
      cmocka_unit_test(test_same_cown_twice),
      cmocka_unit_test(test_stress_model_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
