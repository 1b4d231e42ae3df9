/* test_messages.c - the tagged message queues without Python: FIFO order,
 * tag priority, timeouts, limits, drain, set_tags, and wake-ups across
 * threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine/messages.h"
#include "engine/platform.h"

static const int64_t MS = 1000 * 1000;

/* Items are small integers smuggled in pointers; freed ones are counted.
 * A global because the free callback has no context argument. */
static _Atomic int freed;
static void count_free(void *item) {
  (void)item;
  /* relaxed: a test counter, read only after the threads are joined */
  atomic_fetch_add_explicit(&freed, 1, BOC_RELAXED);
}
static int freed_count(void) {
  /* relaxed: see count_free */
  return atomic_load_explicit(&freed, BOC_RELAXED);
}

static void *item_of(intptr_t v) { return (void *)(v + 1); }
static intptr_t value_of(void *item) { return (intptr_t)item - 1; }

static boc_msg_tag_t tag(const char *s) {
  boc_msg_tag_t t = {s, strlen(s)};
  return t;
}

static int setup(void **state) {
  (void)state;
  boc_msg_set_limits(0, 0);
  int rc = boc_msg_set_tags(NULL, 0, count_free, NULL);
  /* relaxed: see count_free (no other thread runs between tests) */
  atomic_store_explicit(&freed, 0, BOC_RELAXED);
  return rc == BOC_MSG_OK ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  boc_msg_set_limits(0, 0);
  return boc_msg_set_tags(NULL, 0, NULL, NULL) == BOC_MSG_OK ? 0 : -1;
}

/* Receives one item from the given tags with a timeout; -1 on timeout. */
static intptr_t recv_one(const char **names, size_t n, int64_t timeout_ns,
                         size_t *which) {
  boc_msg_tag_t tags[8];
  for (size_t i = 0; i < n; i++) {
    tags[i] = tag(names[i]);
  }
  int error;
  size_t bad;
  boc_msg_receiver_t *r = boc_msg_receiver_open(tags, n, &error, &bad);
  assert_non_null(r);
  void *item = NULL;
  size_t w = 0;
  int rc = boc_msg_receive(r, timeout_ns, &w, &item);
  boc_msg_receiver_close(r);
  if (which != NULL) {
    *which = w;
  }
  if (rc == BOC_MSG_TIMEOUT) {
    return -1;
  }
  assert_int_equal(rc, BOC_MSG_OK);
  return value_of(item);
}

static void test_fifo_and_priority(void **state) {
  (void)state;
  for (intptr_t i = 0; i < 10; i++) {
    assert_int_equal(boc_msg_send("a", 1, item_of(i)), BOC_MSG_OK);
  }
  assert_int_equal(boc_msg_pending("a", 1), 10);
  const char *a[] = {"a"};
  for (intptr_t i = 0; i < 10; i++) {
    assert_int_equal(recv_one(a, 1, 0, NULL), i);
  }
  assert_int_equal(boc_msg_send("y", 1, item_of(1)), BOC_MSG_OK);
  assert_int_equal(boc_msg_send("x", 1, item_of(2)), BOC_MSG_OK);
  const char *xy[] = {"x", "y"};
  size_t which;
  assert_int_equal(recv_one(xy, 2, 0, &which), 2);
  assert_int_equal(which, 0);
  assert_int_equal(recv_one(xy, 2, 0, &which), 1);
  assert_int_equal(which, 1);
}

static void test_timeout(void **state) {
  (void)state;
  const char *t[] = {"silent", "quiet"};
  assert_int_equal(recv_one(t, 2, 0, NULL), -1);
  int64_t t0 = boc_now_ns();
  assert_int_equal(recv_one(t, 2, 50 * MS, NULL), -1);
  assert_true(boc_now_ns() - t0 >= 50 * MS);
}

static void test_tag_and_pending_limits(void **state) {
  (void)state;
  boc_msg_set_limits(3, 2);
  assert_int_equal(boc_msg_send("t1", 2, item_of(1)), BOC_MSG_OK);
  assert_int_equal(boc_msg_send("t1", 2, item_of(2)), BOC_MSG_OK);
  assert_int_equal(boc_msg_send("t1", 2, item_of(3)), BOC_MSG_FULL);
  assert_int_equal(boc_msg_send("t2", 2, item_of(1)), BOC_MSG_OK);
  assert_int_equal(boc_msg_send("t3", 2, item_of(1)), BOC_MSG_OK);
  assert_int_equal(boc_msg_send("t4", 2, item_of(1)), BOC_MSG_TOO_MANY_TAGS);
  assert_int_equal(boc_msg_tag_count(), 3);
  boc_msg_tag_t tags[] = {tag("t1"), tag("t4")};
  int error;
  size_t bad;
  assert_null(boc_msg_receiver_open(tags, 2, &error, &bad));
  assert_int_equal(error, BOC_MSG_TOO_MANY_TAGS);
  assert_int_equal(bad, 1);
  boc_msg_tag_t many[] = {tag("a"), tag("b"), tag("a"), tag("c"), tag("d")};
  assert_int_equal(boc_msg_set_tags(many, 5, count_free, &bad),
                   BOC_MSG_TOO_MANY_TAGS);
  assert_int_equal(bad, 4);
  /* Nothing changed by the failed set_tags. */
  assert_int_equal(boc_msg_pending("t1", 2), 2);
  assert_int_equal(freed_count(), 0);
  assert_int_equal(boc_msg_set_tags(many, 4, count_free, &bad), BOC_MSG_OK);
  assert_int_equal(boc_msg_tag_count(), 3); /* a, b, c */
  assert_int_equal(freed_count(), 4);
  assert_int_equal(boc_msg_pending("t1", 2), 0);
}

static void test_drain(void **state) {
  (void)state;
  for (intptr_t i = 0; i < 5; i++) {
    boc_msg_send("d", 1, item_of(i));
  }
  boc_msg_send("k", 1, item_of(9));
  assert_int_equal(boc_msg_drain("d", 1, count_free), 5);
  assert_int_equal(boc_msg_drain("nope", 4, count_free), 0);
  assert_int_equal(freed_count(), 5);
  const char *k[] = {"k"};
  assert_int_equal(recv_one(k, 1, 0, NULL), 9);
}

typedef struct delayed_send {
  const char *tag;
  int64_t delay_ns;
  intptr_t first, count;
  int set_tags_first;
} delayed_send_t;

static void sender(void *arg) {
  delayed_send_t *d = arg;
  boc_sleep_ns(d->delay_ns);
  if (d->set_tags_first) {
    boc_msg_set_tags(NULL, 0, count_free, NULL);
  }
  for (intptr_t i = 0; i < d->count; i++) {
    while (boc_msg_send(d->tag, strlen(d->tag), item_of(d->first + i)) ==
           BOC_MSG_FULL) {
      boc_thread_yield();
    }
  }
}

static void test_counts_per_tag(void **state) {
  (void)state;
  size_t n = 99;
  assert_null(boc_msg_counts(&n));
  assert_int_equal(n, 0);
  for (intptr_t i = 0; i < 3; i++) {
    assert_int_equal(boc_msg_send("three", 5, item_of(i)), BOC_MSG_OK);
  }
  assert_int_equal(boc_msg_send("one", 3, item_of(7)), BOC_MSG_OK);
  assert_int_equal(boc_msg_drain("empty", 5, count_free), 0);
  boc_msg_count_t *c = boc_msg_counts(&n);
  assert_non_null(c);
  size_t seen = 0;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(strlen(c[i].tag), c[i].len);
    if (strcmp(c[i].tag, "three") == 0) {
      assert_int_equal(c[i].pending, 3);
      seen |= 1;
    } else if (strcmp(c[i].tag, "one") == 0) {
      assert_int_equal(c[i].pending, 1);
      seen |= 2;
    } else {
      assert_int_equal(c[i].pending, 0);
    }
  }
  assert_int_equal(seen, 3);
  free(c);
}

static void test_blocked_receiver_is_woken(void **state) {
  (void)state;
  delayed_send_t d = {"late", 30 * MS, 7, 1, 0};
  boc_thread_t t;
  assert_int_equal(boc_thread_start(&t, sender, &d), 0);
  const char *tags[] = {"other", "late"};
  size_t which;
  assert_int_equal(recv_one(tags, 2, -1, &which), 7);
  assert_int_equal(which, 1);
  boc_thread_join(&t);
}

static void test_receiver_follows_set_tags(void **state) {
  (void)state;
  /* The receiver resolves "moving" before set_tags forgets it; the send
   * after set_tags goes to the new queue and must still reach it. */
  delayed_send_t d = {"moving", 30 * MS, 3, 1, 1};
  boc_thread_t t;
  assert_int_equal(boc_thread_start(&t, sender, &d), 0);
  const char *tags[] = {"moving"};
  assert_int_equal(recv_one(tags, 1, 5000 * MS, NULL), 3);
  boc_thread_join(&t);
}

enum { PRODUCERS = 4, PER_PRODUCER = 20000, CONSUMERS = 3 };

typedef struct consumer {
  boc_thread_t thread;
  int index;
  int64_t got;
  int64_t sum;
} consumer_t;

static void consume(void *arg) {
  consumer_t *c = arg;
  const char *all[] = {"p0", "p1", "p2", "p3", "stop"};
  boc_msg_tag_t tags[5];
  for (int i = 0; i < 4; i++) { /* rotated: each consumer prefers others */
    tags[i] = tag(all[(i + c->index) % 4]);
  }
  tags[4] = tag(all[4]);
  int error;
  size_t bad;
  boc_msg_receiver_t *r = boc_msg_receiver_open(tags, 5, &error, &bad);
  for (;;) {
    size_t which;
    void *item;
    int rc = boc_msg_receive(r, 10000 * MS, &which, &item);
    if (rc != BOC_MSG_OK || which == 4) {
      break;
    }
    c->got++;
    c->sum += value_of(item);
  }
  boc_msg_receiver_close(r);
}

static void test_many_producers_and_consumers(void **state) {
  (void)state;
  consumer_t consumers[CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++) {
    consumers[i] = (consumer_t){.index = i};
    assert_int_equal(boc_thread_start(&consumers[i].thread, consume,
                                      &consumers[i]),
                     0);
  }
  static const char *names[] = {"p0", "p1", "p2", "p3"};
  delayed_send_t d[PRODUCERS];
  boc_thread_t producers[PRODUCERS];
  for (int i = 0; i < PRODUCERS; i++) {
    d[i] = (delayed_send_t){names[i], 0, (intptr_t)i * PER_PRODUCER,
                            PER_PRODUCER, 0};
    assert_int_equal(boc_thread_start(&producers[i], sender, &d[i]), 0);
  }
  for (int i = 0; i < PRODUCERS; i++) {
    boc_thread_join(&producers[i]);
  }
  /* Wait until every item is taken, then stop the consumers. */
  int64_t deadline = boc_now_ns() + 20000 * MS;
  for (;;) {
    size_t left = 0;
    for (int i = 0; i < PRODUCERS; i++) {
      left += boc_msg_pending(names[i], 2);
    }
    if (left == 0 || boc_now_ns() > deadline) {
      break;
    }
    boc_sleep_ns(MS);
  }
  for (int i = 0; i < CONSUMERS; i++) {
    boc_msg_send("stop", 4, item_of(0));
  }
  int64_t got = 0, sum = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    boc_thread_join(&consumers[i].thread);
    got += consumers[i].got;
    sum += consumers[i].sum;
  }
  int64_t n = (int64_t)PRODUCERS * PER_PRODUCER;
  assert_int_equal(got, n);
  assert_int_equal(sum, n * (n - 1) / 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fifo_and_priority, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tag_and_pending_limits, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counts_per_tag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_blocked_receiver_is_woken, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_receiver_follows_set_tags, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_many_producers_and_consumers,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
