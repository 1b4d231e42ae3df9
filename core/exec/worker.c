/* worker.c - the worker pool and the worker loop (see worker.h). */
#include "exec/worker.h"

#include <Python.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/behavior.h"
#include "exec/observe.h"
#include "value/cown.h"
#include "value/state.h"
#include "value/pycompat.h"

enum {
  W_CREATING,  /* thread started, interpreter being created */
  W_PARKED,    /* waiting for work (no runtime uses it) */
  W_STARTING,  /* activated: bootstrapping */
  W_RUNNING,   /* in the worker loop */
  W_FAILED,    /* activation or creation failed (see error) */
  W_GONE,      /* interpreter destroyed, thread ending */
};

typedef struct worker {
  boc_thread_t thread;
  int index;
  boc_mutex_t mu;
  boc_cond_t cv;              /* signals state changes both ways */
  int state;                  /* guarded by mu */
  int go;                     /* guarded by mu: 1 activate, -1 exit */
  boc_sched_t *sched;         /* set before go = 1 */
  const boc_payload_t *boot;  /* set before go = 1 */
  char error[512];            /* set before state = W_FAILED */
  boc_counters_t counters;    /* live statistics; this thread writes */
  /* The behavior being run, for the exit report (boc_workers_busy): its
   * code (one reference held while set) and when it started.  `inspecting`
   * and `current` form a Dekker pair with the reader (seq_cst on both
   * sides): the worker clears `current` and then looks at `inspecting`; the
   * reader sets `inspecting` and then reads `current` under mu.  So either
   * the reader sees NULL, or the worker waits on mu before dropping the code
   * reference the reader may be using. */
  _Atomic(boc_code_t *) current;
  _Atomic int64_t since;
  _Atomic int inspecting;
  /* Values resting in this worker's interpreter (value/cown.h, "homes"):
   * made with the record, bound on the worker's thread while its
   * interpreter exists. */
  boc_home_t *home;
} worker_t;

/* The pool is process-global: one set of worker interpreters serves every
 * runtime of the process.  Only the main interpreter's lifecycle calls
 * (start/wait/exit, serialised by the Python layer) touch the array. */
static worker_t **pool;
static int pool_size;

/* Workers of the current (or last) run: pool[0..pool_used).  The rest of
 * the pool stays parked for a later larger run: ending an interpreter
 * gives only part of its memory back (CPython keeps a few MiB of each
 * destroyed isolated interpreter), so a program that changes the worker
 * count keeps as many interpreters as its largest recent run (recent). */
static int pool_used;

/* The sizes of the last POOL_WINDOW runs (0: none yet): the pool keeps the
 * largest of them.  Written by boc_workers_activate only (the lifecycle
 * calls are serialised by the Python layer). */
enum { POOL_WINDOW = 8 };
static int recent[POOL_WINDOW];
static int recent_next;

int boc_workers_pooled(void) { return pool_used; }

/* Guards pool/pool_size against stats() readers on other threads (the
 * lifecycle calls themselves are serialised by the Python layer).  A
 * process-global like the pool it guards. */
static boc_mutex_t pool_mu;
static boc_once_t pool_mu_once = BOC_ONCE_INIT;
static void pool_mu_init(void) { boc_mutex_init(&pool_mu); }

int boc_worker_counters(int i, boc_counts_t *out) {
  boc_once(&pool_mu_once, pool_mu_init);
  boc_mutex_lock(&pool_mu);
  /* Copied under pool_mu: a worker record is freed when the pool shrinks
   * or at exit, each time after leaving the pool under pool_mu. */
  int found = i >= 0 && i < pool_used;
  if (found) {
    const boc_counters_t *c = &pool[i]->counters;
    /* relaxed: statistics (observe.h) */
    out->finished = atomic_load_explicit(&c->finished, BOC_RELAXED);
    out->failed = atomic_load_explicit(&c->failed, BOC_RELAXED);
    out->dropped = atomic_load_explicit(&c->dropped, BOC_RELAXED);
    out->running = atomic_load_explicit(&c->running, BOC_RELAXED);
  }
  boc_mutex_unlock(&pool_mu);
  return found ? 0 : -1;
}

static void set_state(worker_t *w, int state) {
  boc_mutex_lock(&w->mu);
  w->state = state;
  boc_cond_broadcast(&w->cv);
  boc_mutex_unlock(&w->mu);
}

static int await_state_change(worker_t *w, int from) {
  boc_mutex_lock(&w->mu);
  while (w->state == from) {
    boc_cond_wait(&w->cv, &w->mu);
  }
  int state = w->state;
  boc_mutex_unlock(&w->mu);
  return state;
}

/* Formats the current Python exception into w->error and clears it. */
static void capture_error(worker_t *w, const char *what) {
  PyObject *exc = PyErr_GetRaisedException();
  PyObject *s = exc != NULL ? PyObject_Repr(exc) : NULL;
  const char *text = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
  snprintf(w->error, sizeof(w->error), "worker %d: %s: %s", w->index, what,
           text != NULL ? text : "unknown error");
  PyErr_Clear();
  Py_XDECREF(s);
  Py_XDECREF(exc);
}

static int bootstrap(worker_t *w) {
  PyObject *mod = PyImport_ImportModule("bocpy._worker");
  if (mod == NULL) {
    capture_error(w, "cannot import bocpy._worker");
    return -1;
  }
  PyObject *arg = boc_payload_decode(w->boot);
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

/* The home's poke: another interpreter asked for a value resting here.
 * Pokes reach only a running worker (w->sched is that run's scheduler);
 * outside a run nothing rests here (boc_home_flush at the loop's end). */
static void poke_worker(void *arg) {
  worker_t *w = arg;
  boc_mutex_lock(&w->mu);
  if (w->state == W_RUNNING && w->sched != NULL) {
    boc_sched_poke(w->sched, w->index);
  }
  boc_mutex_unlock(&w->mu);
}

static void worker_loop(worker_t *w, boc_sched_t *s) {
  enum { SAMPLE_NS = 50 * 1000 };
  int64_t last_sample = 0;
  for (;;) {
    boc_sched_node_t *node = boc_sched_try_pop(s, w->index);
    if (node == NULL) {
      Py_BEGIN_ALLOW_THREADS
      node = boc_sched_pop(s, w->index);
      Py_END_ALLOW_THREADS
    }
    if (node == NULL) {
      if (boc_sched_stopping(s)) {
        break; /* the runtime is stopping */
      }
      boc_home_serve(w->home); /* poked: a value resting here is wanted */
      continue;
    }
    int64_t t0 = boc_now_ns();
    boc_behavior_t *b = boc_behavior_of_node(node);
    boc_code_t *code = b->code; /* NULL for a C behavior */
    if (code != NULL) {
      boc_code_incref(code);
      /* relaxed: read by the reporter only after it sees `current`. */
      atomic_store_explicit(&w->since, t0, BOC_RELAXED);
      atomic_store_explicit(&w->current, code, BOC_SEQ_CST);
    }
    /* relaxed: live statistics, single writer (this thread; observe.h) */
    atomic_store_explicit(&w->counters.running, 1, BOC_RELAXED);
    boc_home_set_busy(w->home, 1); /* a taker then encodes in here at once */
    boc_behavior_run(b, NULL);
    boc_home_set_busy(w->home, 0);
    boc_count(&w->counters, &w->counters.finished);
    atomic_store_explicit(&w->counters.running, 0, BOC_RELAXED);
    if (code != NULL) {
      atomic_store_explicit(&w->current, NULL, BOC_SEQ_CST);
      if (atomic_load_explicit(&w->inspecting, BOC_SEQ_CST)) {
        boc_mutex_lock(&w->mu); /* a reporter may hold the code: wait */
        boc_mutex_unlock(&w->mu);
      }
      boc_code_decref(code);
    }
    boc_home_serve(w->home); /* cheap unless a value here is wanted */
    int64_t t1 = boc_now_ns();
    boc_sched_add_busy(s, w->index, t1 - t0);
    /* A queue-depth sample for the trace's counters, at most one per
     * SAMPLE_NS per worker (a sample per behavior would double the cost of
     * tracing short behaviors). */
    if (boc_tracing() && t1 - last_sample >= SAMPLE_NS) {
      boc_trace_event_t ev = {.t0 = t1, .t1 = -1, .worker = w->index};
      ev.value = (int64_t)boc_sched_queued(s, w->index);
      boc_trace_record(&ev);
      last_sample = t1;
    }
  }
  /* Nothing runs any more: move every value resting here out, so that
   * main, the cycle collector and a pool shrink see parked values only. */
  boc_home_flush(w->home);
}

/* Parked until activated (returns 1) or told to exit (returns 0).  Called
 * with this interpreter's GIL held; releases it while waiting. */
static int wait_for_activation(worker_t *w) {
  int go;
  Py_BEGIN_ALLOW_THREADS
  boc_mutex_lock(&w->mu);
  while (w->go == 0) {
    boc_cond_wait(&w->cv, &w->mu);
  }
  go = w->go;
  if (go == 1) {
    w->go = 0;
  }
  boc_mutex_unlock(&w->mu);
  Py_END_ALLOW_THREADS
  return go == 1;
}

static void worker_main(void *arg) {
  worker_t *w = arg;
  boc_sched_bind_worker(w->index);
  boc_observe_bind(&w->counters);

  /* Attach to the main interpreter, then create our own. */
  PyThreadState *ts_main = PyThreadState_New(PyInterpreterState_Main());
  PyEval_RestoreThread(ts_main);
  PyThreadState *ts_sub = NULL;
  PyStatus status = boc_new_worker_interp(&ts_sub);
  if (PyStatus_Exception(status)) {
    snprintf(w->error, sizeof(w->error),
             "worker %d: cannot create a sub-interpreter: %s", w->index,
             status.err_msg != NULL ? status.err_msg : "unknown error");
    PyThreadState_Clear(ts_main);
    PyThreadState_DeleteCurrent();
    set_state(w, W_FAILED);
    return;
  }
  /* ts_sub is current and holds the new interpreter's GIL. */
  boc_home_bind(w->home);
  PyObject *core = PyImport_ImportModule("bocpy._core");
  if (core == NULL) {
    capture_error(w, "cannot import bocpy._core");
    set_state(w, W_FAILED);
  } else {
    Py_DECREF(core);
    set_state(w, W_PARKED);
    while (wait_for_activation(w)) {
      if (bootstrap(w) < 0) {
        set_state(w, W_FAILED);
        continue;
      }
      set_state(w, W_RUNNING);
      worker_loop(w, w->sched);
      boc_cown_collect_orphans();
      set_state(w, W_PARKED);
    }
  }
  boc_home_close(w->home); /* nothing may stay live in a dying one */
  boc_home_bind(NULL);
  shutdown_interp();
  boc_end_worker_interp(ts_sub, ts_main);
  PyThreadState_Clear(ts_main);
  PyThreadState_DeleteCurrent();
  set_state(w, W_GONE);
}

/* Creates worker i's thread and interpreter; -1 with *error on failure. */
static int spawn(int i, char **error) {
  worker_t *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    *error = strdup("out of memory");
    return -1;
  }
  w->index = i;
  w->state = W_CREATING;
  atomic_init(&w->current, NULL);
  atomic_init(&w->since, 0);
  atomic_init(&w->inspecting, 0);
  boc_mutex_init(&w->mu);
  boc_cond_init(&w->cv);
  w->home = boc_home_new(i, poke_worker, w);
  if (w->home == NULL) {
    *error = strdup("out of memory");
    goto fail;
  }
  if (boc_thread_start(&w->thread, worker_main, w) != 0) {
    *error = strdup("cannot start a worker thread");
    goto fail;
  }
  if (await_state_change(w, W_CREATING) != W_PARKED) {
    *error = strdup(w->error);
    boc_thread_join(&w->thread);
    goto fail;
  }
  boc_once(&pool_mu_once, pool_mu_init);
  boc_mutex_lock(&pool_mu);
  worker_t **grown = realloc(pool, (size_t)(i + 1) * sizeof(*pool));
  if (grown == NULL) {
    boc_mutex_unlock(&pool_mu);
    *error = strdup("out of memory");
    boc_mutex_lock(&w->mu);
    w->go = -1;
    boc_cond_broadcast(&w->cv);
    boc_mutex_unlock(&w->mu);
    boc_thread_join(&w->thread);
    goto fail;
  }
  pool = grown;
  pool[i] = w;
  pool_size = i + 1;
  boc_mutex_unlock(&pool_mu);
  return 0;
fail:
  boc_cond_destroy(&w->cv);
  boc_mutex_destroy(&w->mu);
  free(w);
  return -1;
}

/* Ends parked worker w (its interpreter is destroyed, its thread joined)
 * and frees its record. */
static void end_worker(worker_t *w) {
  boc_mutex_lock(&w->mu);
  w->go = -1;
  boc_cond_broadcast(&w->cv);
  boc_mutex_unlock(&w->mu);
  boc_thread_join(&w->thread);
  boc_cond_destroy(&w->cv);
  boc_mutex_destroy(&w->mu);
  free(w);
}

int boc_workers_activate(int n, boc_sched_t *s, const boc_payload_t *boot,
                         char **error) {
  *error = NULL;
  /* Workers beyond n stay parked, kept for a later larger run (see
   * pool_used).  Their counts stay in the totals: fold them into the
   * shared block (they are parked, so nothing adds to them meanwhile). */
  boc_counters_t *sh = boc_observe_shared_counters();
  for (int i = n; i < pool_used; i++) {
    boc_counters_t *c = &pool[i]->counters;
    /* relaxed: statistics (observe.h) */
    atomic_fetch_add_explicit(
        &sh->finished, atomic_exchange_explicit(&c->finished, 0, BOC_RELAXED),
        BOC_RELAXED);
    atomic_fetch_add_explicit(
        &sh->failed, atomic_exchange_explicit(&c->failed, 0, BOC_RELAXED),
        BOC_RELAXED);
    atomic_fetch_add_explicit(
        &sh->dropped, atomic_exchange_explicit(&c->dropped, 0, BOC_RELAXED),
        BOC_RELAXED);
  }
  /* Keep at most the largest size of the last POOL_WINDOW runs: a program
   * that cycles through sizes reuses its interpreters, one that settled on
   * a smaller size gets the memory of the others back (what CPython gives
   * back) after a few runs. */
  recent[recent_next] = n;
  recent_next = (recent_next + 1) % POOL_WINDOW;
  int keep = n;
  for (int i = 0; i < POOL_WINDOW; i++) {
    keep = recent[i] > keep ? recent[i] : keep;
  }
  while (pool_size > keep) {
    boc_once(&pool_mu_once, pool_mu_init);
    boc_mutex_lock(&pool_mu);
    worker_t *w = pool[--pool_size];
    pool[pool_size] = NULL;
    if (pool_used > pool_size) {
      pool_used = pool_size;
    }
    boc_mutex_unlock(&pool_mu);
    end_worker(w); /* its counts were folded above (or were zero) */
  }
  for (int i = pool_size; i < n; i++) {
    if (spawn(i, error) < 0) {
      return -1;
    }
  }
  boc_once(&pool_mu_once, pool_mu_init);
  boc_mutex_lock(&pool_mu);
  pool_used = n;
  boc_mutex_unlock(&pool_mu);
  for (int i = 0; i < n; i++) {
    worker_t *w = pool[i];
    boc_mutex_lock(&w->mu);
    w->sched = s;
    w->boot = boot;
    w->state = W_STARTING;
    w->go = 1;
    boc_cond_broadcast(&w->cv);
    boc_mutex_unlock(&w->mu);
    if (await_state_change(w, W_STARTING) != W_RUNNING) {
      *error = strdup(w->error);
      /* park the ones already running again */
      boc_sched_stop(s);
      boc_workers_deactivate(i);
      set_state(w, W_PARKED);
      return -1;
    }
  }
  return 0;
}

void boc_workers_deactivate(int n) {
  for (int i = 0; i < n && i < pool_size; i++) {
    await_state_change(pool[i], W_RUNNING);
  }
}

void boc_workers_shutdown(void) {
  /* Detach the pool first, so that stats() readers see it empty. */
  boc_once(&pool_mu_once, pool_mu_init);
  boc_mutex_lock(&pool_mu);
  worker_t **all = pool;
  int n = pool_size;
  pool = NULL;
  pool_size = 0;
  pool_used = 0;
  boc_mutex_unlock(&pool_mu);
  for (int i = 0; i < n; i++) {
    end_worker(all[i]);
  }
  free(all);
}

void boc_workers_forget(void) {
  /* In a forked child the threads do not exist and their mutexes may be
   * held forever: the records are leaked on purpose, never touched. */
  pool = NULL;
  pool_size = 0;
  pool_used = 0;
}

int boc_workers_busy(int n, boc_busy_t *out, int max) {
  int k = 0;
  for (int i = 0; i < n && i < pool_size && k < max; i++) {
    worker_t *w = pool[i];
    atomic_store_explicit(&w->inspecting, 1, BOC_SEQ_CST);
    boc_mutex_lock(&w->mu);
    boc_code_t *code = atomic_load_explicit(&w->current, BOC_SEQ_CST);
    if (code != NULL) {
      boc_code_incref(code);
      out[k].worker = i;
      out[k].code = code;
      out[k].since_ns = atomic_load_explicit(&w->since, BOC_RELAXED);
      k++;
    }
    boc_mutex_unlock(&w->mu);
    atomic_store_explicit(&w->inspecting, 0, BOC_SEQ_CST);
  }
  return k;
}
