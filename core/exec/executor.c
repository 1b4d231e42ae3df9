/* executor.c - the queue of an external executor (see executor.h). */
#include "exec/executor.h"

typedef struct external_queue {
  boc_fifo_t fifo;
  boc_cond_t cv;  /* signalled on push and on wake, with fifo.mu */
  uint64_t wakes; /* guarded by fifo.mu: bumped by wake */
} external_queue_t;

/* Process-global, like the runtime it belongs to: every interpreter's ready
 * callback may feed it. */
static external_queue_t xq;
static boc_once_t xq_once = BOC_ONCE_INIT;

static void xq_init(void) {
  boc_fifo_init(&xq.fifo);
  boc_cond_init(&xq.cv);
}

static external_queue_t *queue(void) {
  boc_once(&xq_once, xq_init);
  return &xq;
}

void boc_external_push(boc_behavior_t *b) {
  external_queue_t *q = queue();
  boc_mutex_lock(&q->fifo.mu);
  boc_fifo_push_locked(&q->fifo, &b->hdr.node);
  boc_cond_signal(&q->cv);
  boc_mutex_unlock(&q->fifo.mu);
}

boc_behavior_t *boc_external_take(int64_t timeout_ns) {
  external_queue_t *q = queue();
  int64_t deadline = timeout_ns > 0 ? boc_now_ns() + timeout_ns : 0;
  boc_mutex_lock(&q->fifo.mu);
  uint64_t wakes = q->wakes;
  while (q->fifo.head == NULL && timeout_ns != 0 && q->wakes == wakes) {
    int64_t left = -1;
    if (timeout_ns > 0) {
      left = deadline - boc_now_ns();
      if (left <= 0) {
        break;
      }
    }
    boc_cond_timedwait(&q->cv, &q->fifo.mu, left);
  }
  boc_sched_node_t *node = boc_fifo_pop_locked(&q->fifo, NULL);
  boc_mutex_unlock(&q->fifo.mu);
  return node != NULL ? boc_behavior_of_node(node) : NULL;
}

void boc_external_wake(void) {
  external_queue_t *q = queue();
  boc_mutex_lock(&q->fifo.mu);
  q->wakes++;
  boc_cond_broadcast(&q->cv);
  boc_mutex_unlock(&q->fifo.mu);
}

int64_t boc_external_depth(void) { return boc_fifo_depth(&queue()->fifo); }
