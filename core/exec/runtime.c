/* runtime.c - the process's runtime: start, dispatch, quiesce, stop
 * (see runtime.h). */
#include "exec/runtime.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>

#include "exec/executor.h"
#include "exec/noticeboard.h"
#include "exec/pinned.h"
#include "exec/worker.h"
#include "value/pycompat.h"

/* The lifecycle.  STOPPED -> STARTING -> RUNNING -> STOPPING -> STOPPED is
 * one start/wait cycle (the worker pool stays parked in STOPPED).  At exit,
 * boc_runtime_begin_exit() marks the process as exiting (only the exiting
 * thread may still schedule from the main interpreter), wait() stops the
 * runtime, and boc_runtime_shutdown_pool(1) moves STOPPED -> CLOSED and
 * ends the pool: nothing can start again.  FORKING: a running runtime paused around
 * fork() (its worker interpreters are ended before the fork and made anew
 * in the parent afterwards; live sub-interpreters do not survive a fork).
 * FORKED: the child of a fork while the runtime ran; every entry point
 * refuses there.
 * Transitions are CASes on `state`, so a concurrent start() or @when
 * cannot race with them. */
enum {
  RT_STOPPED = 0,
  RT_STARTING = 1,
  RT_RUNNING = 2,
  RT_STOPPING = 3,
  RT_CLOSED = 4,
  RT_FORKED = 5,
  RT_FORKING = 6, /* RUNNING, paused around a fork(): workers ended */
};

static const char SHUTTING_DOWN[] =
    "bocpy is shutting down: the program has begun to exit, so no behavior "
    "can be scheduled or runtime started from another thread";
static const char FORKED_CHILD[] =
    "bocpy cannot be used in this process: it was forked while bocpy's "
    "runtime was running (or a start() was in progress); fork after wait(), "
    "or use the 'spawn' or 'forkserver' start method of multiprocessing";

typedef struct runtime {
  _Atomic int state;
  /* 1 once the exit sequence began (or in a forked child): admission then
   * looks closer.  acquire/release: pairs with exit_thread's store. */
  _Atomic int exiting;
  unsigned long exit_thread; /* PyThread ident of the exiting thread */
  /* The signal that interrupted the program (0: none): every wait() on
   * another thread then raises.  release/acquire: set before the kick that
   * wakes the waiters, read after it. */
  _Atomic int interrupt;
  boc_terminator_t term;
  boc_sched_t *sched;       /* valid from start until the end of stop */
  int nworkers;
  boc_payload_t *bootstrap; /* kept alive while workers may decode it */
  boc_dispatch_t dispatch;  /* handed to every behavior scheduled */
  /* The other terminators being waited on now (scopes): a kick (pinned
   * work arrived, an interrupt) wakes their waiters too.  Guarded by
   * kick_mu, which is taken before any terminator's own mutex. */
  boc_mutex_t kick_mu;
  struct kick_node *kick_list;
  /* BOC_EXEC_* (executor.h): where ready unpinned behaviors go.  Written
   * only while STOPPED (boc_runtime_set_executor); the start's release
   * store of `state` publishes it to every ready callback. */
  int executor;
} runtime_t;

/* One waiter's entry in runtime_t.kick_list (on the waiter's stack). */
typedef struct kick_node {
  boc_terminator_t *term;
  struct kick_node *next;
} kick_node_t;

/* The runtime is process-global: every interpreter schedules into it. */
static runtime_t rt;
static boc_once_t rt_once = BOC_ONCE_INIT;

static void runtime_ready(boc_waiter_t *waiter, void *ctx);
static int runtime_admit(void *ctx);

static void rt_init(void) {
  atomic_init(&rt.state, RT_STOPPED);
  atomic_init(&rt.exiting, 0);
  atomic_init(&rt.interrupt, 0);
  boc_term_init(&rt.term);
  boc_mutex_init(&rt.kick_mu);
  rt.kick_list = NULL;
  rt.dispatch.ready = runtime_ready;
  rt.dispatch.ctx = &rt;
  rt.dispatch.term = &rt.term;
  rt.dispatch.admit = runtime_admit;
  atomic_init(&rt.dispatch.cancel, 0);
  atomic_init(&rt.dispatch.dropped, 0);
}

/* Refuses a behavior from a main-interpreter thread other than the exiting
 * one once exit has begun, and everything in a forked child.  Workers (and
 * pinned behaviors, which run on the exiting thread) may still schedule:
 * the exit's wait() runs what they schedule. */
static int runtime_admit(void *ctx) {
  runtime_t *r = ctx;
  if (!atomic_load_explicit(&r->exiting, BOC_ACQUIRE)) {
    return 0;
  }
  if (atomic_load_explicit(&r->state, BOC_ACQUIRE) == RT_FORKED) {
    PyErr_SetString(PyExc_RuntimeError, FORKED_CHILD);
    return -1;
  }
  if (boc_is_main_interp() && PyThread_get_thread_ident() != r->exit_thread) {
    PyErr_SetString(PyExc_RuntimeError, SHUTTING_DOWN);
    return -1;
  }
  return 0;
}

static runtime_t *runtime(void) {
  boc_once(&rt_once, rt_init);
  return &rt;
}

/* Wakes every waiter: of wait()/quiesce() and of every scope. */
static void kick_all(runtime_t *r) {
  boc_term_kick(&r->term);
  boc_mutex_lock(&r->kick_mu);
  for (kick_node_t *n = r->kick_list; n != NULL; n = n->next) {
    boc_term_kick(n->term);
  }
  boc_mutex_unlock(&r->kick_mu);
}

const boc_dispatch_t *boc_runtime_dispatch(void) { return &runtime()->dispatch; }

int boc_runtime_running(void) {
  int s = atomic_load_explicit(&runtime()->state, BOC_ACQUIRE);
  return s == RT_RUNNING || s == RT_FORKING;
}

int boc_runtime_idle(void) {
  runtime_t *r = runtime();
  if (atomic_load_explicit(&r->state, BOC_ACQUIRE) == RT_STOPPED) {
    return 1;
  }
  /* Quiescent: the count holds the seed (or nothing) and no behavior. */
  int64_t count = boc_term_count(&r->term);
  return count <= atomic_load_explicit(&r->term.seeded, BOC_SEQ_CST);
}

int boc_runtime_worker_count(void) {
  return boc_runtime_running() ? runtime()->nworkers : 0;
}

int boc_runtime_queue_depths(size_t *out, int max) {
  runtime_t *r = runtime();
  if (!boc_runtime_running() || r->sched == NULL) {
    return 0;
  }
  int n = r->nworkers < max ? r->nworkers : max;
  for (int i = 0; i < n; i++) {
    out[i] = boc_sched_queued(r->sched, i);
  }
  return n;
}

int64_t boc_runtime_in_flight(void) {
  runtime_t *r = runtime();
  if (atomic_load_explicit(&r->state, BOC_ACQUIRE) == RT_STOPPED) {
    return 0;
  }
  int64_t n = boc_term_count(&r->term) -
              atomic_load_explicit(&r->term.seeded, BOC_SEQ_CST);
  return n > 0 ? n : 0;
}

/* ---- dispatch -------------------------------------------------------------- */

/* Where a ready (unpinned) behavior goes: the scheduling policy of
 * docs/model.md.  On a worker that is finishing a behavior (its releases
 * made b ready), the worker's "next" slot: it runs b right away, which keeps
 * a chain hot on one worker.  On a worker still inside a body (b was
 * scheduled on free cowns), the worker's queue, where an idle worker can
 * take it while this one goes on.  Off the workers, round-robin. */
static void dispatch_ready(runtime_t *r, boc_behavior_t *b) {
  int self = boc_sched_worker_index();
  /* Affinity (issue 33, values that stay): a ready behavior goes to the
   * worker where one of its cowns' values rests, when that worker is idle
   * (parked) -- no hand-over then.  A busy home gets nothing an idle worker
   * could start: the policy below runs it. */
  for (int32_t i = 0; i < b->ncowns && i < 4; i++) {
    int home = boc_cown_home_worker(b->cowns[i]);
    if (home >= 0 && home < r->nworkers) {
      if (home != self && boc_sched_parked(r->sched, home)) {
        boc_sched_push_to(r->sched, home, &b->hdr.node);
        return;
      }
      break;
    }
  }
  if (self >= 0 && boc_behavior_depth() > 0) {
    boc_sched_push_shared(r->sched, self, &b->hdr.node);
  } else {
    boc_sched_push(r->sched, self, &b->hdr.node);
  }
}

/* The 2PL ready callback: a behavior that holds all its cowns goes to a
 * worker (dispatch_ready) or, if pinned, to the main-thread queue. */
static void runtime_ready(boc_waiter_t *waiter, void *ctx) {
  runtime_t *r = ctx;
  boc_behavior_t *b = boc_behavior_of_waiter(waiter);
  if (b->hdr.pinned) {
    boc_pinned_push(b);
    kick_all(r); /* wake the main thread's wait() (or scope wait) */
    return;
  }
  if (r->executor == BOC_EXEC_EXTERNAL) {
    boc_external_push(b);
    return;
  }
  dispatch_ready(r, b);
}

int boc_runtime_set_executor(int executor) {
  runtime_t *r = runtime();
  if (executor != BOC_EXEC_WORKERS && executor != BOC_EXEC_EXTERNAL) {
    PyErr_Format(PyExc_ValueError, "unknown executor %d", executor);
    return -1;
  }
  if (atomic_load_explicit(&r->state, BOC_ACQUIRE) != RT_STOPPED) {
    PyErr_SetString(PyExc_RuntimeError,
                    "the executor can only be chosen while the runtime is "
                    "stopped (before start())");
    return -1;
  }
  r->executor = executor;
  return 0;
}

int boc_runtime_executor(void) { return runtime()->executor; }

int boc_runtime_hold(void) {
  if (boc_term_inc(&runtime()->term) < 0) {
    PyErr_SetString(PyExc_RuntimeError, "runtime is not running");
    return -1;
  }
  return 0;
}

void boc_runtime_unhold(void) { boc_term_dec(&runtime()->term); }

int boc_runtime_external_run(PyObject *call, double timeout) {
  int64_t ns = timeout < 0 ? -1 : (int64_t)(timeout * 1e9);
  boc_behavior_t *b = boc_external_take(0);
  if (b == NULL && ns != 0) {
    Py_BEGIN_ALLOW_THREADS
    b = boc_external_take(ns);
    Py_END_ALLOW_THREADS
  }
  if (b == NULL) {
    return 0;
  }
  boc_behavior_run_via(b, call, NULL);
  return 1;
}

/* ---- start / wait / stop ------------------------------------------------- */

int boc_runtime_start(int n, PyObject *bootstrap) {
  runtime_t *r = runtime();
  if (runtime_admit(r) < 0) {
    return -1;
  }
  int expected = RT_STOPPED;
  if (!atomic_compare_exchange_strong_explicit(&r->state, &expected,
                                               RT_STARTING, BOC_ACQ_REL,
                                               BOC_ACQUIRE)) {
    if (expected == RT_RUNNING || expected == RT_FORKING) {
      return 0;
    }
    if (expected == RT_CLOSED) {
      PyErr_SetString(PyExc_RuntimeError, SHUTTING_DOWN);
      return -1;
    }
    if (expected == RT_FORKED) {
      PyErr_SetString(PyExc_RuntimeError, FORKED_CHILD);
      return -1;
    }
    PyErr_SetString(PyExc_RuntimeError,
                    "the runtime is starting or stopping on another thread");
    return -1;
  }
  if (n < 1 || n > 4096) {
    PyErr_Format(PyExc_ValueError,
                 "worker_count must be between 1 and 4096, not %d", n);
    goto fail_state;
  }
  if (boc_term_reset(&r->term) < 0) {
    PyErr_SetString(PyExc_RuntimeError,
                    "cannot start: the previous run left behaviors in flight");
    goto fail_state;
  }
  r->bootstrap = boc_payload_encode(bootstrap);
  if (r->bootstrap == NULL) {
    goto fail_term;
  }
  r->sched = boc_sched_new(n);
  if (r->sched == NULL) {
    PyErr_NoMemory();
    goto fail_boot;
  }
  char *error = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = boc_workers_activate(n, r->sched, r->bootstrap, &error);
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    PyErr_Format(PyExc_RuntimeError, "Error starting worker pool: %s",
                 error != NULL ? error : "unknown error");
    free(error);
    boc_sched_free(r->sched);
    r->sched = NULL;
    goto fail_boot;
  }
  r->nworkers = n;
  atomic_store_explicit(&r->state, RT_RUNNING, BOC_RELEASE);
  return 0;

fail_boot:
  boc_payload_free(r->bootstrap);
  r->bootstrap = NULL;
fail_term:
  boc_term_seed_dec(&r->term);
  boc_term_close(&r->term);
fail_state:
  atomic_store_explicit(&r->state, RT_STOPPED, BOC_RELEASE);
  return -1;
}

static PyObject *stats_list(runtime_t *r) {
  PyObject *list = PyList_New(r->nworkers);
  if (list == NULL) {
    return NULL;
  }
  for (int i = 0; i < r->nworkers; i++) {
    boc_sched_stats_t s;
    boc_sched_get_stats(r->sched, i, &s);
    PyObject *d = Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "worker_index",
        (unsigned long long)s.worker_index, "pushed_local",
        (unsigned long long)s.pushed_local, "dispatched_to_pending",
        (unsigned long long)s.dispatched_to_pending, "pushed_remote",
        (unsigned long long)s.pushed_remote, "popped_local",
        (unsigned long long)s.popped_local, "popped_via_steal",
        (unsigned long long)s.popped_via_steal, "steal_attempts",
        (unsigned long long)s.steal_attempts, "steal_failures",
        (unsigned long long)s.steal_failures, "parked",
        (unsigned long long)s.parked, "last_steal_attempt_ns",
        (unsigned long long)s.last_steal_attempt_ns, "batch_resets",
        (unsigned long long)s.batch_resets, "busy_ns",
        (unsigned long long)s.busy_ns);
    if (d == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i, d);
  }
  return list;
}

/* Runs the pinned behaviors that are ready, and frees the pinned values
 * whose last handle died on another thread (pinned thread, GIL held).
 * Between two bodies it stops for a signal (PyErr_CheckSignals: a C body
 * never looks at them) and at the deadline (ns, -1: none).  Returns 0; 1
 * when the deadline stopped it; -1 with the exception of a signal, or with
 * a KeyboardInterrupt/SystemExit (any BaseException that is not an
 * Exception) a body raised, as pump() does: the behavior itself is
 * retired, the rest stay queued. */
static int run_pinned(int64_t deadline) {
  boc_cown_collect_orphans();
  boc_behavior_t *b;
  while ((b = boc_pinned_pop()) != NULL) {
    PyObject *exc = NULL;
    if (boc_behavior_run(b, &exc) && exc != NULL) {
      if (!PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetRaisedException(exc);
        return -1;
      }
      Py_DECREF(exc);
    }
    if (PyErr_CheckSignals() < 0) {
      return -1;
    }
    /* Dropping (after an interrupt) is quick and must finish: only bodies
     * that run count against the deadline.  relaxed: as the drop test. */
    if (deadline >= 0 && boc_pinned_depth() > 0 &&
        !atomic_load_explicit(&runtime()->dispatch.cancel, BOC_RELAXED) &&
        boc_now_ns() >= deadline) {
      return 1;
    }
  }
  return 0;
}

/* Drops every behavior still queued after the workers are gone; dropping
 * one may make its successors ready, so repeat until nothing is left. */
static void drop_leftovers(runtime_t *r) {
  for (;;) {
    boc_sched_node_t *node = boc_sched_drain(r->sched);
    boc_behavior_t *pinned = boc_pinned_pop();
    boc_behavior_t *ext = boc_external_take(0);
    if (node == NULL && pinned == NULL && ext == NULL) {
      return;
    }
    if (ext != NULL) {
      boc_behavior_drop(ext, "behavior dropped during stop(): the runtime "
                             "was torn down before it could run");
    }
    while (node != NULL) {
      boc_sched_node_t *next = node->next;
      boc_behavior_drop(boc_behavior_of_node(node),
                        "behavior dropped during stop(): the runtime was "
                        "torn down before it could run");
      node = next;
    }
    if (pinned != NULL) {
      boc_behavior_drop(pinned, "behavior dropped during stop(): the runtime "
                                "was torn down before it could run");
    }
  }
}

int boc_runtime_shutdown_pool(int close) {
  runtime_t *r = runtime();
  int s = atomic_load_explicit(&r->state, BOC_ACQUIRE);
  if (s == RT_CLOSED || s == RT_FORKED) {
    return 0; /* already ended (or never ours, in a forked child) */
  }
  /* STOPPED -> STARTING holds off start() while the pool is ended. */
  int expected = RT_STOPPED;
  if (!atomic_compare_exchange_strong_explicit(&r->state, &expected,
                                               RT_STARTING, BOC_ACQ_REL,
                                               BOC_ACQUIRE)) {
    PyErr_SetString(PyExc_RuntimeError,
                    "the worker pool can only be shut down after wait()");
    return -1;
  }
  Py_BEGIN_ALLOW_THREADS
  boc_workers_shutdown();
  Py_END_ALLOW_THREADS
  atomic_store_explicit(&r->state, close ? RT_CLOSED : RT_STOPPED,
                        BOC_RELEASE);
  return 0;
}

void boc_runtime_begin_exit(void) {
  runtime_t *r = runtime();
  r->exit_thread = PyThread_get_thread_ident();
  /* release: admission reads exit_thread after seeing the flag. */
  atomic_store_explicit(&r->exiting, 1, BOC_RELEASE);
}

int boc_runtime_exiting(void) {
  return atomic_load_explicit(&runtime()->exiting, BOC_ACQUIRE);
}

int boc_runtime_fork_prepare(void) {
  runtime_t *r = runtime();
  if (atomic_load_explicit(&r->state, BOC_ACQUIRE) == RT_STOPPED) {
    return boc_runtime_shutdown_pool(0) < 0 ? -1 : 0;
  }
  int expected = RT_RUNNING;
  if (!atomic_compare_exchange_strong_explicit(&r->state, &expected,
                                               RT_FORKING, BOC_ACQ_REL,
                                               BOC_ACQUIRE)) {
    return 0; /* starting, stopping or closed: the child is marked FORKED */
  }
  /* Workers finish the body they run, then return; the queues keep the
   * rest.  Their interpreters are then ended. */
  boc_sched_stop(r->sched);
  Py_BEGIN_ALLOW_THREADS
  boc_workers_deactivate(r->nworkers);
  boc_workers_shutdown();
  Py_END_ALLOW_THREADS
  return 1;
}

int boc_runtime_fork_parent(void) {
  runtime_t *r = runtime();
  if (atomic_load_explicit(&r->state, BOC_ACQUIRE) != RT_FORKING) {
    return 0;
  }
  boc_sched_resume(r->sched);
  char *error = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = boc_workers_activate(r->nworkers, r->sched, r->bootstrap, &error);
  Py_END_ALLOW_THREADS
  atomic_store_explicit(&r->state, RT_RUNNING, BOC_RELEASE);
  if (rc < 0) {
    PyErr_Format(PyExc_RuntimeError,
                 "bocpy could not restart its workers after fork(): %s",
                 error != NULL ? error : "unknown error");
    free(error);
    return -1;
  }
  return 0;
}

int boc_runtime_after_fork_child(void) {
  runtime_t *r = runtime();
  /* The parent's interrupt is not this process's. */
  atomic_store_explicit(&r->interrupt, 0, BOC_RELEASE);
  if (atomic_load_explicit(&r->state, BOC_ACQUIRE) == RT_STOPPED &&
      boc_workers_pooled() == 0) {
    return 0; /* nothing of the parent's runtime exists: usable as is */
  }
  boc_workers_forget();
  atomic_store_explicit(&r->state, RT_FORKED, BOC_RELEASE);
  atomic_store_explicit(&r->exiting, 1, BOC_RELEASE);
  return 1;
}

int boc_runtime_forked(void) {
  return atomic_load_explicit(&runtime()->state, BOC_ACQUIRE) == RT_FORKED;
}

void boc_runtime_cancel_pending(void) {
  runtime_t *r = runtime();
  atomic_store_explicit(&r->dispatch.cancel, 1, BOC_RELAXED);
  kick_all(r); /* wake every wait() to drop the pinned queue */
}

void boc_runtime_interrupt(int sig) {
  runtime_t *r = runtime();
  int none = 0;
  /* The first signal wins; release pairs with the waiters' acquire. */
  atomic_compare_exchange_strong_explicit(&r->interrupt, &none, sig,
                                          BOC_ACQ_REL, BOC_ACQUIRE);
  boc_runtime_cancel_pending(); /* and kicks every waiter awake */
}

int boc_runtime_interrupted(void) {
  return atomic_load_explicit(&runtime()->interrupt, BOC_ACQUIRE);
}

/* Raises what an interrupted program's waits on other threads raise: 1
 * (with the exception set) when the program was interrupted and the
 * calling thread is not the one running the exit. */
static int raise_if_interrupted(runtime_t *r) {
  int sig = atomic_load_explicit(&r->interrupt, BOC_ACQUIRE);
  if (sig == 0 || PyThread_get_thread_ident() == r->exit_thread) {
    return 0;
  }
  if (sig == SIGINT) {
    PyErr_SetString(PyExc_KeyboardInterrupt,
                    "bocpy: the program was interrupted (SIGINT) and is "
                    "exiting");
  } else {
    PyObject *code = PyLong_FromLong(128 + sig);
    if (code != NULL) {
      PyErr_SetObject(PyExc_SystemExit, code);
      Py_DECREF(code);
    }
  }
  return 1;
}

int64_t boc_runtime_dropped(void) {
  return atomic_load_explicit(&runtime()->dispatch.dropped, BOC_RELAXED);
}

int boc_runtime_busy(boc_busy_t *out, int max) {
  runtime_t *r = runtime();
  if (atomic_load_explicit(&r->state, BOC_ACQUIRE) != RT_RUNNING) {
    return 0;
  }
  return boc_workers_busy(r->nworkers, out, max);
}

/* wait()'s longest sleep between pinned-queue checks; a process-wide
 * setting that a running wait() re-reads on every iteration (relaxed: a
 * tuning knob, any recent value will do). */
static _Atomic int64_t poll_ns = 50 * 1000000LL;

void boc_runtime_set_poll_ms(int64_t ms) {
  atomic_store_explicit(&poll_ns, ms * 1000000LL, BOC_RELAXED);
}

/* How long pinned work may wait for the main thread before a wait() on
 * another thread says so on stderr (once per call). */
#define PINNED_REPORT_AFTER_NS (2 * 1000000000LL)

/* What a wait() on a thread other than the pinned one is waiting for, in
 * the TimeoutError or report: "" unless pinned behaviors are queued (which
 * only the main thread runs).  Writes into buf. */
static const char *pinned_note(char *buf, size_t size, int pinned_thread) {
  int64_t depth = boc_pinned_depth();
  if (pinned_thread || depth <= 0) {
    return "";
  }
  snprintf(buf, size,
           ": %lld pinned behavior%s %s waiting for the main thread (only "
           "it runs them, in pump(), wait() or quiesce())",
           (long long)depth, depth == 1 ? "" : "s", depth == 1 ? "is" : "are");
  return buf;
}

/* The end of a wait that leaves the runtime running (quiesce, a timeout,
 * an error): the last waiter to leave restores the seed. */
static int leave_running(runtime_t *r, int rc) {
  boc_term_leave(&r->term, 1);
  return rc;
}

/* The wait loop of wait(), quiesce() and a scope's wait (t is the runtime's
 * terminator or a scope's, entered by the caller): until t's count is zero,
 * runs pinned work when on the pinned thread, stops at the deadline (ns,
 * -1: none) with TimeoutError, on a signal or an interrupt of the program
 * with its exception, and says on stderr when pinned work waits for the
 * main thread.  0, or -1 with an exception (the caller leaves t). */
static int wait_loop(runtime_t *r, boc_terminator_t *t, int64_t deadline,
                     int teardown, const char *what) {
  int scope = t != &r->term;
  /* Only the pinned thread runs pinned work; a wait on any other thread
   * waits for it to do so (through pump() or its own wait()), and says so
   * on stderr when pinned work has waited PINNED_REPORT_AFTER_NS. */
  int pinned_thread = boc_on_pinned_thread();
  int reported = 0;
  char note[192];
  kick_node_t node = {t, NULL};
  if (scope) {
    boc_mutex_lock(&r->kick_mu);
    node.next = r->kick_list;
    r->kick_list = &node;
    boc_mutex_unlock(&r->kick_mu);
  }
  int rc = 0;
  uint64_t kicks = atomic_load_explicit(&t->kicks, BOC_ACQUIRE);
  for (;;) {
    int overdue = 0; /* the deadline stopped the pinned queue's drain */
    if (pinned_thread) {
      int prc = run_pinned(deadline);
      if (prc < 0) {
        rc = -1;
        break;
      }
      overdue = prc == 1;
    }
    int64_t wait_ns = atomic_load_explicit(&poll_ns, BOC_RELAXED);
    if (deadline >= 0) {
      int64_t left = deadline - boc_now_ns();
      if (left <= 0 || overdue) {
        if (boc_term_count(t) == 0) {
          break;
        }
        PyErr_Format(PyExc_TimeoutError,
                     "behaviors still running when the timeout expired%s",
                     pinned_note(note, sizeof(note), pinned_thread));
        rc = -1;
        break;
      }
      if (left < wait_ns) {
        wait_ns = left;
      }
    }
    int res;
    Py_BEGIN_ALLOW_THREADS
    res = boc_term_wait(t, wait_ns, &kicks);
    Py_END_ALLOW_THREADS
    if (raise_if_interrupted(r)) {
      rc = -1;
      break;
    }
    if (res == 0 && (scope || boc_pinned_depth() == 0)) {
      break;
    }
    if (!teardown && !scope &&
        atomic_load_explicit(&r->state, BOC_ACQUIRE) == RT_STOPPING) {
      break; /* a wait() on another thread is tearing the runtime down */
    }
    if (PyErr_CheckSignals() < 0) {
      rc = -1;
      break;
    }
    if (!pinned_thread && !reported) {
      int64_t since = boc_pinned_nonempty_since();
      if (since != 0 && boc_now_ns() - since >= PINNED_REPORT_AFTER_NS) {
        reported = 1;
        PySys_WriteStderr(
            "bocpy: %s() on a thread other than the main thread is waiting "
            "for pinned work%s; the main thread has not run it for %.1f s\n",
            what, pinned_note(note, sizeof(note), pinned_thread),
            (double)(boc_now_ns() - since) / 1e9);
      }
    }
  }
  if (scope) {
    boc_mutex_lock(&r->kick_mu);
    kick_node_t **link = &r->kick_list;
    while (*link != &node) {
      link = &(*link)->next;
    }
    *link = node.next;
    boc_mutex_unlock(&r->kick_mu);
  }
  return rc;
}

int boc_runtime_wait_term(boc_terminator_t *t, double timeout,
                          const char *what) {
  runtime_t *r = runtime();
  if (boc_runtime_forked()) {
    PyErr_SetString(PyExc_RuntimeError, FORKED_CHILD);
    return -1;
  }
  if (raise_if_interrupted(r)) {
    return -1;
  }
  if (isnan(timeout)) {
    PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
    return -1;
  }
  int64_t deadline = -1;
  if (timeout >= 0 && timeout < 1e9) {
    deadline = boc_now_ns() + (int64_t)(timeout * 1e9);
  }
  boc_term_enter(t);
  int rc = wait_loop(r, t, deadline, 0, what);
  boc_term_leave(t, 1); /* the last waiter restores the seed */
  return rc;
}

int boc_runtime_wait(double timeout, int teardown, PyObject **stats) {
  runtime_t *r = runtime();
  if (stats != NULL) {
    *stats = NULL;
  }
  if (boc_runtime_forked()) {
    PyErr_SetString(PyExc_RuntimeError, FORKED_CHILD);
    return -1;
  }
  if (raise_if_interrupted(r)) {
    return -1;
  }
  if (!boc_runtime_running()) {
    if (stats != NULL) {
      *stats = PyList_New(0);
      return *stats != NULL ? 0 : -1;
    }
    return 0;
  }
  if (isnan(timeout)) {
    PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
    return -1;
  }
  int64_t now = boc_now_ns();
  int64_t deadline = -1;
  if (timeout >= 0 && timeout < 1e9) {
    deadline = now + (int64_t)(timeout * 1e9);
  }
  /* Everything from here to the return happens with the GIL held except
   * the waits, so a teardown on another thread (which also holds the GIL
   * from its state change until it waits for us) is seen atomically. */
  boc_term_enter(&r->term);
  if (wait_loop(r, &r->term, deadline, teardown,
                teardown ? "wait" : "quiesce") < 0) {
    return leave_running(r, -1);
  }
  if (stats != NULL && boc_runtime_running()) {
    *stats = stats_list(r);
  } else if (stats != NULL) {
    *stats = PyList_New(0);
  }
  if (!teardown) {
    return leave_running(r, stats != NULL && *stats == NULL ? -1 : 0);
  }
  /* Tear down: no behavior is in flight, so nothing can be lost.  A fork
   * on another thread may have paused the runtime (FORKING): wait for it
   * to resume first. */
  for (;;) {
    int expected = RT_RUNNING;
    if (atomic_compare_exchange_strong_explicit(&r->state, &expected,
                                                RT_STOPPING, BOC_ACQ_REL,
                                                BOC_ACQUIRE)) {
      break;
    }
    Py_BEGIN_ALLOW_THREADS
    boc_sleep_ns(1000000);
    Py_END_ALLOW_THREADS
  }
  boc_term_close(&r->term);
  /* Other threads' quiesce()s (wait()s are serialised by the lifecycle
   * lock) see STOPPING once woken and leave; the scheduler and the stats
   * they may read stay until they have. */
  boc_term_kick(&r->term);
  while (boc_term_waiters(&r->term) > 1) {
    Py_BEGIN_ALLOW_THREADS
    boc_sleep_ns(1000000);
    Py_END_ALLOW_THREADS
  }
  boc_term_leave(&r->term, 0); /* the seed stays dropped: closed */
  boc_sched_stop(r->sched);
  Py_BEGIN_ALLOW_THREADS
  boc_workers_deactivate(r->nworkers);
  Py_END_ALLOW_THREADS
  drop_leftovers(r);
  boc_external_wake(); /* the external executor's thread sees the stop */
  boc_sched_free(r->sched);
  r->sched = NULL;
  r->nworkers = 0;
  boc_payload_free(r->bootstrap);
  r->bootstrap = NULL;
  boc_cown_collect_orphans();
  boc_noticeboard_clear();
  /* Nothing runs now: reclaim cowns that only keep each other alive. */
  boc_cown_collect_cycles();
  atomic_store_explicit(&r->dispatch.cancel, 0, BOC_RELAXED);
  atomic_store_explicit(&r->state, RT_STOPPED, BOC_RELEASE);
  return stats != NULL && *stats == NULL ? -1 : 0;
}
