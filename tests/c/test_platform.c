/* test_platform.c - the platform layer: atomics, mutex/condvar, time, CPUs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/platform.h"

static void test_monotonic_time_advances(void **state) {
  (void)state;
  int64_t a = boc_now_ns();
  boc_sleep_ns(2000000); /* 2 ms */
  int64_t b = boc_now_ns();
  assert_true(b - a >= 2000000);
}

static void test_cpu_counts(void **state) {
  (void)state;
  int logical = boc_cpu_count_logical();
  int physical = boc_cpu_count_physical();
  assert_true(logical >= 1);
  assert_true(physical >= 1);
  assert_true(physical <= logical);
}

static void test_worker_count_override(void **state) {
  (void)state;
  assert_int_equal(boc_parse_worker_count("3"), 3);
  assert_int_equal(boc_parse_worker_count(" 7\n"), 7);
  assert_int_equal(boc_parse_worker_count("0"), 0);
  assert_int_equal(boc_parse_worker_count("-2"), 0);
  assert_int_equal(boc_parse_worker_count("two"), 0);
  assert_int_equal(boc_parse_worker_count("3x"), 0);
  assert_int_equal(boc_parse_worker_count(""), 0);
  assert_int_equal(boc_parse_worker_count(NULL), 0);
  assert_int_equal(boc_parse_worker_count("99999"), 0);
  assert_int_equal(boc_default_worker_count("5"), 5);
  int fallback = boc_default_worker_count("bogus");
  assert_true(fallback >= 1);
  assert_int_equal(fallback, boc_cpu_count_physical() > 1
                                 ? boc_cpu_count_physical() - 1
                                 : 1);
}

/* N threads each add to a shared counter: once with a mutex around a plain
 * int, once with a relaxed atomic add.  Neither may lose an increment. */
enum { THREADS = 4, ITERS = 100000 };

typedef struct {
  boc_mutex_t mu;
  long plain;
  _Atomic long atomic;
} counters_t;

static void add_many(void *arg) {
  counters_t *c = arg;
  for (int i = 0; i < ITERS; i++) {
    boc_mutex_lock(&c->mu);
    c->plain++;
    boc_mutex_unlock(&c->mu);
    /* relaxed: only the final total matters, read after join */
    atomic_fetch_add_explicit(&c->atomic, 1, BOC_RELAXED);
  }
}

static void test_mutex_and_atomics(void **state) {
  (void)state;
  counters_t c;
  assert_int_equal(boc_mutex_init(&c.mu), 0);
  c.plain = 0;
  atomic_init(&c.atomic, 0);
  boc_thread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    assert_int_equal(boc_thread_start(&t[i], add_many, &c), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    assert_int_equal(boc_thread_join(&t[i]), 0);
  }
  assert_int_equal(c.plain, (long)THREADS * ITERS);
  assert_int_equal(atomic_load_explicit(&c.atomic, BOC_RELAXED),
                   (long)THREADS * ITERS);
  boc_mutex_destroy(&c.mu);
}

/* Condition variable hand-off: the waiter must see the flag set by the
 * signaller, and a timed wait with nothing to wake it must time out. */
typedef struct {
  boc_mutex_t mu;
  boc_cond_t cv;
  int flag;
} handoff_t;

static void set_flag(void *arg) {
  handoff_t *h = arg;
  boc_sleep_ns(1000000);
  boc_mutex_lock(&h->mu);
  h->flag = 1;
  boc_cond_signal(&h->cv);
  boc_mutex_unlock(&h->mu);
}

static void test_condvar(void **state) {
  (void)state;
  handoff_t h;
  assert_int_equal(boc_mutex_init(&h.mu), 0);
  assert_int_equal(boc_cond_init(&h.cv), 0);
  h.flag = 0;
  boc_thread_t t;
  assert_int_equal(boc_thread_start(&t, set_flag, &h), 0);
  boc_mutex_lock(&h.mu);
  while (!h.flag) {
    boc_cond_wait(&h.cv, &h.mu);
  }
  boc_mutex_unlock(&h.mu);
  assert_int_equal(boc_thread_join(&t), 0);

  boc_mutex_lock(&h.mu);
  int64_t before = boc_now_ns();
  bool woken = boc_cond_timedwait(&h.cv, &h.mu, 5000000); /* 5 ms */
  int64_t waited = boc_now_ns() - before;
  boc_mutex_unlock(&h.mu);
  if (!woken) {
    assert_true(waited >= 5000000);
  }
  boc_cond_destroy(&h.cv);
  boc_mutex_destroy(&h.mu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_monotonic_time_advances),
      cmocka_unit_test(test_cpu_counts),
      cmocka_unit_test(test_worker_count_override),
      cmocka_unit_test(test_mutex_and_atomics),
      cmocka_unit_test(test_condvar),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
