/* executor.c - the queue of an external executor (see executor.h). */
#include "exec/executor.h"

typedef struct external_queue {
  boc_mutex_t mu;
  boc_cond_t cv;                 /* signalled on push and on wake */
  boc_sched_node_t *head, *tail; /* guarded by mu */
  uint64_t wakes;                /* guarded by mu: bumped by wake */
  _Atomic int64_t depth;
} external_queue_t;

/* Process-global, like the runtime it belongs to: every interpreter's ready
 * callback may feed it. */
static external_queue_t xq;
static boc_once_t xq_once = BOC_ONCE_INIT;

static void xq_init(void) {
  boc_mutex_init(&xq.mu);
  boc_cond_init(&xq.cv);
  atomic_init(&xq.depth, 0);
}

static external_queue_t *queue(void) {
  boc_once(&xq_once, xq_init);
  return &xq;
}

void boc_external_push(boc_behavior_t *b) {
  external_queue_t *q = queue();
  boc_sched_node_t *node = &b->hdr.node;
  node->next = NULL;
  boc_mutex_lock(&q->mu);
  if (q->tail != NULL) {
    q->tail->next = node;
  } else {
    q->head = node;
  }
  q->tail = node;
  /* relaxed: depth is a hint; the queue itself is guarded by mu. */
  atomic_fetch_add_explicit(&q->depth, 1, BOC_RELAXED);
  boc_cond_signal(&q->cv);
  boc_mutex_unlock(&q->mu);
}

boc_behavior_t *boc_external_take(int64_t timeout_ns) {
  external_queue_t *q = queue();
  int64_t deadline = timeout_ns > 0 ? boc_now_ns() + timeout_ns : 0;
  boc_mutex_lock(&q->mu);
  uint64_t wakes = q->wakes;
  while (q->head == NULL && timeout_ns != 0 && q->wakes == wakes) {
    int64_t left = -1;
    if (timeout_ns > 0) {
      left = deadline - boc_now_ns();
      if (left <= 0) {
        break;
      }
    }
    boc_cond_timedwait(&q->cv, &q->mu, left);
  }
  boc_sched_node_t *node = q->head;
  if (node != NULL) {
    q->head = node->next;
    if (q->head == NULL) {
      q->tail = NULL;
    }
    atomic_fetch_sub_explicit(&q->depth, 1, BOC_RELAXED);
  }
  boc_mutex_unlock(&q->mu);
  return node != NULL ? boc_behavior_of_node(node) : NULL;
}

void boc_external_wake(void) {
  external_queue_t *q = queue();
  boc_mutex_lock(&q->mu);
  q->wakes++;
  boc_cond_broadcast(&q->cv);
  boc_mutex_unlock(&q->mu);
}

int64_t boc_external_depth(void) {
  return atomic_load_explicit(&queue()->depth, BOC_RELAXED);
}
