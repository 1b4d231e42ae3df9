/* pinned.c - the main-thread queue of pinned behaviors and the pump that
 * runs them from an event loop or script (see pinned.h); wait() drains the
 * queue too. */
#include "exec/pinned.h"

#include "exec/observe.h"

#include "value/pycompat.h"

/* ---- the queue ------------------------------------------------------------- */

typedef struct pinned_queue {
  boc_fifo_t fifo;
  _Atomic int64_t nonempty_since; /* monotonic ns, 0 while empty */
} pinned_queue_t;

/* Process-global: there is one main thread, and every interpreter's ready
 * callback feeds it. */
static pinned_queue_t pq;
static boc_once_t pq_once = BOC_ONCE_INIT;

static void pq_init(void) {
  boc_fifo_init(&pq.fifo);
  atomic_init(&pq.nonempty_since, 0);
}

static pinned_queue_t *queue(void) {
  boc_once(&pq_once, pq_init);
  return &pq;
}

void boc_pinned_push(boc_behavior_t *b) {
  pinned_queue_t *q = queue();
  boc_mutex_lock(&q->fifo.mu);
  /* relaxed: nonempty_since is read as a hint only (pump state queries,
   * wait's poll); it is written under fifo.mu, so in the queue's order. */
  if (boc_fifo_push_locked(&q->fifo, &b->hdr.node) == 0) {
    atomic_store_explicit(&q->nonempty_since, boc_now_ns(), BOC_RELAXED);
  }
  boc_mutex_unlock(&q->fifo.mu);
}

boc_behavior_t *boc_pinned_pop(void) {
  pinned_queue_t *q = queue();
  /* A hint: a push racing with this check is seen on the next pop, and
   * pushers kick the main thread's wait() after pushing. */
  if (boc_fifo_depth(&q->fifo) == 0) {
    return NULL;
  }
  boc_mutex_lock(&q->fifo.mu);
  int64_t left = 0;
  boc_sched_node_t *node = boc_fifo_pop_locked(&q->fifo, &left);
  if (node != NULL && left == 0) {
    /* relaxed: as in boc_pinned_push. */
    atomic_store_explicit(&q->nonempty_since, 0, BOC_RELAXED);
  }
  boc_mutex_unlock(&q->fifo.mu);
  if (node != NULL && boc_tracing()) { /* a queue-depth sample (trace) */
    boc_trace_event_t ev = {.t0 = boc_now_ns(), .t1 = -1, .worker = -1};
    ev.value = boc_fifo_depth(&q->fifo);
    boc_trace_record(&ev);
  }
  return node != NULL ? boc_behavior_of_node(node) : NULL;
}

int64_t boc_pinned_depth(void) { return boc_fifo_depth(&queue()->fifo); }

int64_t boc_pinned_nonempty_since(void) {
  return atomic_load_explicit(&queue()->nonempty_since, BOC_RELAXED);
}

/* ---- the pump -------------------------------------------------------------- */

int boc_pump(boc_state_t *st, int64_t deadline_ms, int64_t max_behaviors,
             int raise_on_error, boc_pump_result_t *out) {
  out->executed = 0;
  out->raised = 0;
  out->deadline_reached = 0;
  if (!boc_on_pinned_thread()) {
    PyErr_SetString(PyExc_RuntimeError,
                    boc_is_main_interp()
                        ? "pump() can only be called from the pinned thread "
                          "(the main thread of the main interpreter): "
                          "pinned behaviors and pinned-value hooks run only "
                          "there; call pump() from the main thread"
                        : "pump() can only be called from the main "
                          "interpreter's main thread (the pinned thread), "
                          "not from a worker");
    return -1;
  }
  if (st->pumping) {
    PyErr_SetString(PyExc_RuntimeError,
                    "pump() is not reentrant: it was called from inside a "
                    "pinned behavior");
    return -1;
  }
  boc_cown_collect_orphans();
  int64_t deadline = deadline_ms > 0 ? boc_now_ns() + deadline_ms * 1000000LL
                                     : -1;
  PyObject *first = NULL; /* first body exception, for raise_on_error */
  st->pumping = 1;
  for (;;) {
    if (max_behaviors > 0 && out->executed >= max_behaviors) {
      break;
    }
    if (deadline >= 0 && out->executed > 0 && boc_now_ns() >= deadline) {
      out->deadline_reached = boc_pinned_depth() > 0;
      break;
    }
    boc_behavior_t *b = boc_pinned_pop();
    if (b == NULL) {
      break;
    }

    PyObject *exc = NULL;
    int raised = boc_behavior_run(b, &exc);
    out->executed++;
    if (!raised) {
      continue;
    }
    if (exc != NULL && !PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_Exception)) {
      /* KeyboardInterrupt, SystemExit...: stop pumping and propagate (the
       * behavior itself was fully retired; the rest stay queued). */
      st->pumping = 0;
      Py_XDECREF(first);
      PyErr_SetRaisedException(exc);
      return -1;
    }
    out->raised++;
    if (raise_on_error && first == NULL) {
      first = exc;
    } else {
      Py_XDECREF(exc);
    }
    /* A signal stops the pump between two bodies (a C body never looks at
     * them; a Python body that saw one raised it above). */
    if (PyErr_CheckSignals() < 0) {
      st->pumping = 0;
      Py_XDECREF(first);
      return -1;
    }
  }
  st->pumping = 0;
  if (first != NULL) {
    PyErr_SetRaisedException(first);
    return -1;
  }
  return 0;
}
