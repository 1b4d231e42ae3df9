/* worker.c - worker sub-interpreters and the worker loop (see worker.h). */
#include "worker.h"

#include <Python.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "behavior.h"
#include "cown.h"
#include "module.h"
#include "pycompat.h"
#include "runtime.h"

enum { W_STARTING = 0, W_READY = 1, W_FAILED = 2 };

struct boc_worker {
  boc_thread_t thread;
  int index;
  int started;                 /* thread was created */
  boc_sched_t *sched;
  const boc_payload_t *bootstrap;
  /* start-up handshake */
  boc_mutex_t mu;
  boc_cond_t cv;
  int state;                   /* guarded by mu */
  char error[512];             /* set before state = W_FAILED */
};

/* The worker index of this thread (-1 elsewhere).  A thread-local by
 * nature: dispatch from a worker goes to that worker's own queue. */
static _Thread_local int tls_worker_index = -1;

int boc_worker_index(void) { return tls_worker_index; }

static void report(boc_worker_t *w, int state) {
  boc_mutex_lock(&w->mu);
  w->state = state;
  boc_cond_broadcast(&w->cv);
  boc_mutex_unlock(&w->mu);
}

/* Formats the current Python exception into w->error and clears it. */
static void capture_error(boc_worker_t *w, const char *what) {
  PyObject *exc = PyErr_GetRaisedException();
  PyObject *s = exc != NULL ? PyObject_Repr(exc) : NULL;
  const char *text = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
  snprintf(w->error, sizeof(w->error), "worker %d: %s: %s", w->index, what,
           text != NULL ? text : "unknown error");
  PyErr_Clear();
  Py_XDECREF(s);
  Py_XDECREF(exc);
}

static int bootstrap(boc_worker_t *w) {
  if (boc_state() == NULL) { /* imports bocpy._core in this interpreter */
    PyErr_Clear();
    PyObject *core = PyImport_ImportModule("bocpy._core");
    if (core == NULL) {
      capture_error(w, "cannot import bocpy._core");
      return -1;
    }
    Py_DECREF(core);
  }
  PyObject *mod = PyImport_ImportModule("bocpy._worker");
  if (mod == NULL) {
    capture_error(w, "cannot import bocpy._worker");
    return -1;
  }
  PyObject *arg = boc_payload_decode(w->bootstrap);
  PyObject *r = arg != NULL ? PyObject_CallMethod(mod, "bootstrap", "Oi", arg,
                                                  w->index)
                            : NULL;
  Py_XDECREF(arg);
  Py_DECREF(mod);
  if (r == NULL) {
    capture_error(w, "bootstrap failed");
    return -1;
  }
  Py_DECREF(r);
  return 0;
}

static void shutdown_interp(void) {
  PyObject *mod = PyImport_ImportModule("bocpy._worker");
  PyObject *r = mod != NULL ? PyObject_CallMethod(mod, "shutdown", NULL) : NULL;
  if (r == NULL) {
    PyErr_WriteUnraisable(NULL);
  }
  Py_XDECREF(r);
  Py_XDECREF(mod);
  boc_cown_collect_orphans();
}

static void worker_loop(boc_worker_t *w) {
  boc_sched_t *s = w->sched;
  for (;;) {
    boc_sched_node_t *node = boc_sched_try_pop(s, w->index);
    if (node == NULL) {
      Py_BEGIN_ALLOW_THREADS
      node = boc_sched_pop(s, w->index);
      Py_END_ALLOW_THREADS
    }
    if (node == NULL) {
      return; /* stopped */
    }
    int64_t t0 = boc_now_ns();
    boc_behavior_run(boc_behavior_of_node(node), NULL);
    boc_sched_add_busy(s, w->index, boc_now_ns() - t0);
  }
}

static void worker_main(void *arg) {
  boc_worker_t *w = arg;
  tls_worker_index = w->index;

  /* Attach to the main interpreter, then create our own. */
  PyThreadState *ts_main = PyThreadState_New(PyInterpreterState_Main());
  PyEval_RestoreThread(ts_main);
  PyInterpreterConfig cfg = {
      .use_main_obmalloc = 0,
      .allow_fork = 0,
      .allow_exec = 0,
      .allow_threads = 1,
      .allow_daemon_threads = 0,
      .check_multi_interp_extensions = 1,
      .gil = PyInterpreterConfig_OWN_GIL,
  };
  PyThreadState *ts_sub = NULL;
  PyStatus status = Py_NewInterpreterFromConfig(&ts_sub, &cfg);
  if (PyStatus_Exception(status)) {
    snprintf(w->error, sizeof(w->error),
             "worker %d: cannot create a sub-interpreter: %s", w->index,
             status.err_msg != NULL ? status.err_msg : "unknown error");
    PyThreadState_Clear(ts_main);
    PyThreadState_DeleteCurrent();
    report(w, W_FAILED);
    return;
  }
  /* Now ts_sub is current and holds the new interpreter's GIL. */
  int ok = bootstrap(w) == 0;
  report(w, ok ? W_READY : W_FAILED);
  if (ok) {
    worker_loop(w);
  }
  shutdown_interp();
  Py_EndInterpreter(ts_sub);
  PyEval_RestoreThread(ts_main);
  PyThreadState_Clear(ts_main);
  PyThreadState_DeleteCurrent();
}

boc_worker_t *boc_workers_start(int n, boc_sched_t *s,
                                const boc_payload_t *boot, char **error) {
  *error = NULL;
  boc_worker_t *ws = calloc((size_t)n, sizeof(*ws));
  if (ws == NULL) {
    *error = strdup("out of memory");
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    boc_worker_t *w = &ws[i];
    w->index = i;
    w->sched = s;
    w->bootstrap = boot;
    boc_mutex_init(&w->mu);
    boc_cond_init(&w->cv);
  }
  /* Start them one at a time: interpreter creation is serialised by the
   * main GIL anyway, and a failure stops the rest early. */
  int failed = -1;
  for (int i = 0; i < n && failed < 0; i++) {
    boc_worker_t *w = &ws[i];
    if (boc_thread_start(&w->thread, worker_main, w) != 0) {
      snprintf(w->error, sizeof(w->error), "worker %d: cannot start a thread",
               i);
      failed = i;
      break;
    }
    w->started = 1;
    boc_mutex_lock(&w->mu);
    while (w->state == W_STARTING) {
      boc_cond_wait(&w->cv, &w->mu);
    }
    int state = w->state;
    boc_mutex_unlock(&w->mu);
    if (state == W_FAILED) {
      failed = i;
    }
  }
  if (failed < 0) {
    return ws;
  }
  *error = strdup(ws[failed].error);
  boc_sched_stop(s);
  boc_workers_join(ws, n);
  return NULL;
}

void boc_workers_join(boc_worker_t *ws, int n) {
  for (int i = 0; i < n; i++) {
    if (ws[i].started) {
      boc_thread_join(&ws[i].thread);
    }
    boc_cond_destroy(&ws[i].cv);
    boc_mutex_destroy(&ws[i].mu);
  }
  free(ws);
}
