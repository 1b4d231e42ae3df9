/* test_terminator.c - termination counting: seed, wait, kick, close,
 * reset, and the quiesce pattern. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/terminator.h"

static const int64_t MS = 1000 * 1000;

static void test_counting_and_seed(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  /* A fresh terminator is closed until the first reset. */
  assert_true(boc_term_is_closed(&t));
  assert_int_equal(boc_term_count(&t), 0);
  assert_int_equal(boc_term_inc(&t), -1);
  assert_int_equal(boc_term_count(&t), 0);

  assert_int_equal(boc_term_reset(&t), 0);
  assert_false(boc_term_is_closed(&t));
  assert_int_equal(boc_term_count(&t), 1); /* the seed */
  assert_int_equal(boc_term_inc(&t), 0);
  assert_int_equal(boc_term_inc(&t), 0);
  assert_int_equal(boc_term_count(&t), 3);
  boc_term_dec(&t);
  assert_int_equal(boc_term_count(&t), 2);

  assert_int_equal(boc_term_seed_dec(&t), 1);
  assert_int_equal(boc_term_count(&t), 1);
  assert_int_equal(boc_term_seed_dec(&t), 0); /* already dropped */
  assert_int_equal(boc_term_count(&t), 1);
  boc_term_seed_inc(&t);
  assert_int_equal(boc_term_count(&t), 2);
  boc_term_seed_inc(&t); /* already held: no double seed */
  assert_int_equal(boc_term_count(&t), 2);
  boc_term_dec(&t);
  assert_int_equal(boc_term_count(&t), 1);
  /* At zero with the seed dropped, wait returns at once. */
  assert_int_equal(boc_term_seed_dec(&t), 1);
  assert_int_equal(boc_term_wait(&t, 0, NULL), 0);
  boc_term_destroy(&t);
}

typedef struct delayed {
  boc_terminator_t *t;
  int decs;
  int kick;
} delayed_t;

static void later(void *arg) {
  delayed_t *d = arg;
  boc_sleep_ns(5 * MS);
  for (int i = 0; i < d->decs; i++) {
    boc_term_dec(d->t);
  }
  if (d->kick) {
    boc_term_kick(d->t);
  }
}

static void test_wait_until_zero(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(boc_term_inc(&t), 0);
  }
  assert_int_equal(boc_term_seed_dec(&t), 1);
  delayed_t d = {&t, 3, 0};
  boc_thread_t th;
  assert_int_equal(boc_thread_start(&th, later, &d), 0);
  uint64_t seen = 0;
  assert_int_equal(boc_term_wait(&t, -1, &seen), 0);
  assert_int_equal(boc_term_count(&t), 0);
  assert_int_equal(boc_thread_join(&th), 0);
  boc_term_destroy(&t);
}

static void test_wait_timeout(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0); /* the seed keeps count at 1 */
  int64_t before = boc_now_ns();
  assert_int_equal(boc_term_wait(&t, 10 * MS, NULL), 1);
  assert_true(boc_now_ns() - before >= 10 * MS);
  assert_int_equal(boc_term_wait(&t, 0, NULL), 1);
  assert_int_equal(boc_term_count(&t), 1);
  boc_term_destroy(&t);
}

static void test_kick(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0);
  uint64_t seen = 0;
  /* A kick from another thread wakes a waiter that is blocked forever. */
  delayed_t d = {&t, 0, 1};
  boc_thread_t th;
  assert_int_equal(boc_thread_start(&th, later, &d), 0);
  assert_int_equal(boc_term_wait(&t, -1, &seen), 2);
  assert_int_equal(seen, 1);
  assert_int_equal(boc_thread_join(&th), 0);
  /* The kick is consumed: the next wait times out. */
  assert_int_equal(boc_term_wait(&t, 1 * MS, &seen), 1);
  /* A kick that came before the wait is not lost. */
  boc_term_kick(&t);
  assert_int_equal(boc_term_wait(&t, -1, &seen), 2);
  assert_int_equal(seen, 2);
  /* Without kick_seen, kicks are ignored. */
  boc_term_kick(&t);
  assert_int_equal(boc_term_wait(&t, 1 * MS, NULL), 1);
  boc_term_destroy(&t);
}

static void test_close(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0);
  assert_int_equal(boc_term_inc(&t), 0);
  boc_term_close(&t);
  assert_true(boc_term_is_closed(&t));
  assert_int_equal(boc_term_inc(&t), -1);
  assert_int_equal(boc_term_count(&t), 2); /* unchanged by the failed inc */
  boc_term_dec(&t); /* in-flight work still retires */
  assert_int_equal(boc_term_seed_dec(&t), 1);
  assert_int_equal(boc_term_wait(&t, 0, NULL), 0);
  /* A clean shutdown can be followed by a new run. */
  assert_int_equal(boc_term_reset(&t), 0);
  assert_false(boc_term_is_closed(&t));
  assert_int_equal(boc_term_inc(&t), 0);
  boc_term_dec(&t);
  boc_term_destroy(&t);
}

static void test_reset_refuses_leaked_work(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0);
  assert_int_equal(boc_term_inc(&t), 0); /* seeded, count 2 */
  assert_int_equal(boc_term_reset(&t), -1);
  assert_int_equal(boc_term_count(&t), 2); /* unchanged */
  boc_term_close(&t);
  assert_int_equal(boc_term_seed_dec(&t), 1); /* unseeded, count 1 */
  assert_int_equal(boc_term_reset(&t), -1);
  assert_true(boc_term_is_closed(&t)); /* unchanged */
  assert_int_equal(boc_term_count(&t), 1);
  boc_term_dec(&t); /* the work retires: now a reset may proceed */
  assert_int_equal(boc_term_reset(&t), 0);
  assert_int_equal(boc_term_count(&t), 1);
  /* Seeded with nothing in flight is also clean. */
  assert_int_equal(boc_term_reset(&t), 0);
  assert_int_equal(boc_term_count(&t), 1);
  boc_term_destroy(&t);
}

/* Several checkpoints in a row: seed_dec, wait for zero, seed_inc. */
static void test_quiesce_pattern(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 4; i++) {
      assert_int_equal(boc_term_inc(&t), 0);
    }
    delayed_t d = {&t, 4, 0};
    boc_thread_t th;
    assert_int_equal(boc_thread_start(&th, later, &d), 0);
    assert_int_equal(boc_term_seed_dec(&t), 1);
    assert_int_equal(boc_term_wait(&t, -1, NULL), 0);
    boc_term_seed_inc(&t);
    assert_int_equal(boc_thread_join(&th), 0);
    assert_false(boc_term_is_closed(&t));
    assert_int_equal(boc_term_count(&t), 1);
  }
  /* Still usable after the checkpoints, and a final shutdown works. */
  assert_int_equal(boc_term_inc(&t), 0);
  boc_term_dec(&t);
  assert_int_equal(boc_term_seed_dec(&t), 1);
  assert_int_equal(boc_term_wait(&t, 0, NULL), 0);
  boc_term_close(&t);
  assert_int_equal(boc_term_inc(&t), -1);
  boc_term_destroy(&t);
}

/* Two waiters (issue 25): the one that gives up first (a timeout) must not
 * take the seed back from under the other, which still wakes at zero; the
 * last to leave restores the seed. */
static void test_two_waiters_one_gives_up(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0);
  assert_int_equal(boc_term_inc(&t), 0); /* one behavior: count 2 */
  boc_term_enter(&t);                    /* A: drops the seed */
  boc_term_enter(&t);                    /* B */
  assert_int_equal(boc_term_waiters(&t), 2);
  assert_int_equal(boc_term_count(&t), 1);
  assert_int_equal(boc_term_wait(&t, 1 * MS, NULL), 1); /* A times out */
  assert_int_equal(boc_term_leave(&t, 1), 1);           /* ...and leaves */
  assert_int_equal(boc_term_count(&t), 1); /* the seed stays dropped */
  delayed_t d = {&t, 1, 0};
  boc_thread_t th;
  assert_int_equal(boc_thread_start(&th, later, &d), 0);
  assert_int_equal(boc_term_wait(&t, -1, NULL), 0); /* B wakes at zero */
  assert_int_equal(boc_thread_join(&th), 0);
  assert_int_equal(boc_term_leave(&t, 1), 0); /* last: seed back */
  assert_int_equal(boc_term_count(&t), 1);
  /* A teardown leaves without restoring it. */
  boc_term_enter(&t);
  assert_int_equal(boc_term_count(&t), 0);
  boc_term_close(&t);
  assert_int_equal(boc_term_leave(&t, 0), 0);
  assert_int_equal(boc_term_count(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0);
  boc_term_destroy(&t);
}

/* Increments racing with close: each either fails cleanly or counts, so
 * the count stays balanced. */
enum { RACERS = 3, RACE_ITERS = 20000 };

static void inc_dec_loop(void *arg) {
  boc_terminator_t *t = arg;
  for (int i = 0; i < RACE_ITERS; i++) {
    if (boc_term_inc(t) == 0) {
      boc_term_dec(t);
    }
  }
}

static void test_inc_close_race(void **state) {
  (void)state;
  boc_terminator_t t;
  assert_int_equal(boc_term_init(&t), 0);
  assert_int_equal(boc_term_reset(&t), 0);
  boc_thread_t th[RACERS];
  for (int i = 0; i < RACERS; i++) {
    assert_int_equal(boc_thread_start(&th[i], inc_dec_loop, &t), 0);
  }
  boc_sleep_ns(1 * MS);
  boc_term_close(&t);
  for (int i = 0; i < RACERS; i++) {
    assert_int_equal(boc_thread_join(&th[i]), 0);
  }
  assert_int_equal(boc_term_count(&t), 1);
  assert_int_equal(boc_term_seed_dec(&t), 1);
  assert_int_equal(boc_term_wait(&t, 0, NULL), 0);
  boc_term_destroy(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counting_and_seed),
      cmocka_unit_test(test_wait_until_zero),
      cmocka_unit_test(test_wait_timeout),
      cmocka_unit_test(test_kick),
      cmocka_unit_test(test_close),
      cmocka_unit_test(test_reset_refuses_leaked_work),
      cmocka_unit_test(test_quiesce_pattern),
      cmocka_unit_test(test_two_waiters_one_gives_up),
      cmocka_unit_test(test_inc_close_race),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
