/* module.c - the bocpy._core extension module: types and functions only.
 *
 * Multi-phase initialisation (PEP 489) with per-interpreter module state, so
 * the module can be imported in every worker sub-interpreter, each of which
 * has its own GIL.  No Python object is kept in a C global.
 */
#include <Python.h>

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "module/abi_table.h"
#include "exec/behavior.h"
#include "module/cown_type.h"
#include "engine/messages.h"
#include "module/messaging_module.h"
#include "value/handle.h"
#include "value/state.h"
#include "exec/executor.h"
#include "exec/noticeboard.h"
#include "exec/pinned.h"
#include "engine/platform.h"
#include "value/pycompat.h"
#include "exec/runtime.h"
#include "exec/worker.h"
#include "module/observe_module.h"
#include "module/scope_type.h"
#include "value/transport.h"
#include "module/when.h"

static inline boc_state_t *get_state(PyObject *module) {
  return (boc_state_t *)PyModule_GetState(module);
}

/* _cown_ref(index): the unpickling side of a cown handle's __reduce__. */
static PyObject *cown_ref(PyObject *module, PyObject *arg) {
  (void)module;
  Py_ssize_t index = PyLong_AsSsize_t(arg);
  if (index == -1 && PyErr_Occurred()) {
    return NULL;
  }
  boc_cown_t *c = boc_transport_cown_at(index);
  return c != NULL ? boc_handle_new(c) : NULL;
}

PyDoc_STRVAR(report_unhandled_doc,
             "_report_unhandled()\n\n"
             "Writes the report of every behavior result that still holds an\n"
             "exception nobody handled (behavior, where defined, where it\n"
             "failed, traceback) to stderr, once each.  Called at exit.");
static PyObject *report_unhandled(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  boc_cown_report_unhandled_all();
  Py_RETURN_NONE;
}

/* ---- runtime control ------------------------------------------------------- */

static int require_main(const char *what) {
  if (!boc_is_main_interp()) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s can only be called from the main interpreter", what);
    return -1;
  }
  return 0;
}

PyDoc_STRVAR(start_doc, "start(worker_count: int, bootstrap: object)\n\n"
                        "Starts the worker pool (main interpreter only).");
static PyObject *start(PyObject *module, PyObject *args) {
  int n;
  PyObject *bootstrap;
  if (!PyArg_ParseTuple(args, "iO:start", &n, &bootstrap)) {
    return NULL;
  }
  if (require_main("start()") < 0) {
    return NULL;
  }
  if (boc_release_borrowed(get_state(module)) < 0 ||
      boc_runtime_start(n, bootstrap) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

/* Raises RuntimeError when `what` (a waiting call) is made from inside a
 * behavior body or a notice_update function on this thread: it would wait
 * for itself (or for the board lock this thread holds). */
static int refuse_reentry(const char *what) {
  if (boc_behavior_depth() > 0) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s is not reentrant: it cannot be called from inside a "
                 "behavior (it would wait "
                 "for the behavior that calls it); schedule a follow-up "
                 "behavior instead",
                 what);
    return -1;
  }
  if (boc_nb_in_update()) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s is not reentrant: it cannot be called from inside a "
                 "notice_update() function "
                 "(the noticeboard is locked while it runs)",
                 what);
    return -1;
  }
  return 0;
}

/* Parses a timeout: None -> forever (-1); numbers >= 0; NaN rejected. */
static int parse_timeout(PyObject *obj, double *out) {
  if (obj == Py_None) {
    *out = -1;
    return 0;
  }
  if (PyBool_Check(obj) || !(PyLong_Check(obj) || PyFloat_Check(obj))) {
    PyErr_Format(PyExc_TypeError, "timeout must be a number or None, not %s",
                 Py_TYPE(obj)->tp_name);
    return -1;
  }
  double t = PyFloat_AsDouble(obj);
  if (t == -1 && PyErr_Occurred()) {
    return -1;
  }
  if (isnan(t)) {
    PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
    return -1;
  }
  *out = t < 0 ? 0 : t;
  return 0;
}

PyDoc_STRVAR(wait_doc,
             "wait(timeout, teardown, stats) -> list | None\n\n"
             "Waits until no behavior is in flight, running pinned behaviors\n"
             "meanwhile; then stops the runtime when teardown is true.");
static PyObject *wait_(PyObject *module, PyObject *args) {
  (void)module;
  PyObject *timeout_obj;
  int teardown, want_stats;
  if (!PyArg_ParseTuple(args, "Opp:wait", &timeout_obj, &teardown,
                        &want_stats)) {
    return NULL;
  }
  double timeout;
  if (parse_timeout(timeout_obj, &timeout) < 0 ||
      require_main(teardown ? "wait()" : "quiesce()") < 0 ||
      refuse_reentry(teardown ? "wait()" : "quiesce()") < 0) {
    return NULL;
  }
  PyObject *stats = NULL;
  if (boc_runtime_wait(timeout, teardown, want_stats ? &stats : NULL) < 0) {
    return NULL;
  }
  if (stats != NULL) {
    return stats;
  }
  Py_RETURN_NONE;
}

PyDoc_STRVAR(pump_doc,
             "pump(deadline_ms, max_behaviors, raise_on_error) -> tuple\n\n"
             "Runs ready pinned behaviors; returns (executed, deadline_reached,\n"
             "raised).  Bounds are already validated (0 = unbounded).");
static PyObject *pump(PyObject *module, PyObject *args) {
  long long deadline_ms, max_behaviors;
  int raise_on_error;
  if (!PyArg_ParseTuple(args, "LLp:pump", &deadline_ms, &max_behaviors,
                        &raise_on_error)) {
    return NULL;
  }
  boc_pump_result_t r;
  /* Off the pinned thread boc_pump says so (the rule comes first). */
  if (boc_on_pinned_thread() && refuse_reentry("pump()") < 0) {
    return NULL;
  }
  if (boc_pump(get_state(module), deadline_ms, max_behaviors, raise_on_error,
               &r) < 0) {
    return NULL;
  }
  return Py_BuildValue("(LOL)", (long long)r.executed,
                       r.deadline_reached ? Py_True : Py_False,
                       (long long)r.raised);
}

static PyObject *pinned_state(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  int64_t since = boc_pinned_nonempty_since();
  int64_t age_ms = since > 0 ? (boc_now_ns() - since) / 1000000 : 0;
  return Py_BuildValue("(LLL)", (long long)boc_pinned_depth(),
                       (long long)age_ms, (long long)since);
}

PyDoc_STRVAR(on_pinned_thread_doc,
             "on_pinned_thread() -> bool\n\n"
             "True on the pinned thread: the main thread of the main\n"
             "interpreter, the one thread that runs pinned behaviors and the\n"
             "hooks of pinned values.");
static PyObject *on_pinned_thread(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyBool_FromLong(boc_on_pinned_thread());
}

PyDoc_STRVAR(pinned_at_exit_doc,
             "_pinned_at_exit() -> None\n\n"
             "At exit, after the remaining behaviors ran: runs the destroy\n"
             "hook of every live pinned value exactly once (pinned thread).");
static PyObject *pinned_at_exit(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  if (!boc_on_pinned_thread()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "_pinned_at_exit() must run on the pinned thread (the "
                    "main thread of the main interpreter)");
    return NULL;
  }
  boc_pinned_destroy_all();
  Py_RETURN_NONE;
}

static PyObject *pinned_live(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLongLong(boc_pinned_live_count());
}

static PyObject *set_wait_pump_poll(PyObject *module, PyObject *arg) {
  (void)module;
  long long ms = PyLong_AsLongLong(arg);
  if (ms == -1 && PyErr_Occurred()) {
    return NULL;
  }
  boc_runtime_set_poll_ms(ms);
  Py_RETURN_NONE;
}

static PyObject *shutdown_pool(PyObject *module, PyObject *args) {
  (void)module;
  int close = 1;
  if (!PyArg_ParseTuple(args, "|p:shutdown_pool", &close)) {
    return NULL;
  }
  if (require_main("shutdown_pool()") < 0 ||
      boc_runtime_shutdown_pool(close) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

/* ---- exit, fork, interrupts ---------------------------------------------- */

static PyObject *begin_exit(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  if (require_main("begin_exit()") < 0) {
    return NULL;
  }
  boc_runtime_begin_exit();
  Py_RETURN_NONE;
}

/* The process ends by SIGINT at the end of finalisation (set once: a
 * Py_AtExit function is the process's, as the exit status is). */
static _Atomic int end_by_sigint_armed;

/* A Py_AtExit function: called by Py_FinalizeEx once everything else is
 * done (atexit hooks, threads joined, interpreters gone), where CPython's
 * own Py_RunMain would end a program whose main thread raised
 * KeyboardInterrupt: the same, killed by SIGINT (shell status 130). */
static void end_by_sigint(void) {
  (void)fflush(NULL);
  (void)signal(SIGINT, SIG_DFL);
  (void)kill(getpid(), SIGINT);
  /* Still here (SIGINT blocked on this thread): CPython's exit goes on. */
}

static PyObject *exit_by_sigint(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  if (require_main("_exit_by_sigint()") < 0) {
    return NULL;
  }
  int none = 0;
  /* relaxed: only the main interpreter's exit sequence calls this, under
   * the GIL; the flag only keeps Py_AtExit from taking a second slot. */
  if (atomic_compare_exchange_strong_explicit(&end_by_sigint_armed, &none, 1,
                                              BOC_RELAXED, BOC_RELAXED) &&
      Py_AtExit(end_by_sigint) < 0) {
    atomic_store_explicit(&end_by_sigint_armed, 0, BOC_RELAXED);
    PyErr_SetString(PyExc_RuntimeError,
                    "_exit_by_sigint(): no Py_AtExit slot left");
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *fork_prepare(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  if (require_main("fork_prepare()") < 0 || boc_runtime_fork_prepare() < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *fork_parent(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  if (boc_runtime_fork_parent() < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *after_fork_child(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyBool_FromLong(boc_runtime_after_fork_child());
}

static PyObject *forked(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyBool_FromLong(boc_runtime_forked());
}

static PyObject *cancel_pending(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  if (require_main("cancel_pending()") < 0) {
    return NULL;
  }
  boc_runtime_cancel_pending();
  Py_RETURN_NONE;
}

static PyObject *interrupt(PyObject *module, PyObject *arg) {
  (void)module;
  if (require_main("interrupt()") < 0) {
    return NULL;
  }
  long sig = PyLong_AsLong(arg);
  if (sig == -1 && PyErr_Occurred()) {
    return NULL;
  }
  if (sig <= 0 || sig > 1024) {
    PyErr_Format(PyExc_ValueError, "interrupt() needs a signal number, not %ld",
                 sig);
    return NULL;
  }
  boc_runtime_interrupt((int)sig);
  Py_RETURN_NONE;
}

static PyObject *interrupted(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLong(boc_runtime_interrupted());
}

static PyObject *in_flight(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLongLong(boc_runtime_in_flight());
}

static PyObject *dropped(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLongLong(boc_runtime_dropped());
}

/* busy() -> [(worker, marshalled code bytes, seconds running)]: the Python
 * behaviors running on workers now (the caller unmarshals the code for its
 * name, file and line). */
static PyObject *busy(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  enum { MAX_BUSY = 64 };
  boc_busy_t items[MAX_BUSY];
  int n = boc_runtime_busy(items, MAX_BUSY);
  int64_t now = boc_now_ns();
  PyObject *list = PyList_New(0);
  for (int i = 0; i < n; i++) {
    if (list != NULL) {
      PyObject *t = Py_BuildValue(
          "(iy#d)", items[i].worker, items[i].code->bytes,
          (Py_ssize_t)items[i].code->size,
          (double)(now - items[i].since_ns) / 1e9);
      if (t == NULL || PyList_Append(list, t) < 0) {
        Py_CLEAR(list);
      }
      Py_XDECREF(t);
    }
    boc_code_decref(items[i].code);
  }
  return list;
}

static PyObject *collect_cycles(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  if (require_main("collect_cycles()") < 0) {
    return NULL;
  }
  if (!boc_runtime_idle() || boc_runtime_running()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "cown cycles are collected only while the runtime is "
                    "stopped (wait() does it)");
    return NULL;
  }
  return PyLong_FromLongLong(boc_cown_collect_cycles());
}

/* gc.callbacks (bocpy._finalize): after a full collection, whether the
 * runtime runs or not (the collector is safe while behaviors run). */
static PyObject *collect_cycles_gc(PyObject *module, PyObject *Py_UNUSED(a)) {
  if (require_main("_collect_cycles_gc()") < 0) {
    return NULL;
  }
  if (boc_release_borrowed_unshared(get_state(module)) < 0) {
    return NULL;
  }
  boc_cown_collect_orphans();
  boc_homes_evict_all(); /* values resting live in workers: out first */
  return PyLong_FromLongLong(boc_cown_collect_cycles());
}

static PyObject *check_borrowed(PyObject *module, PyObject *Py_UNUSED(a)) {
  if (boc_check_stale(get_state(module)) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *pooled_workers(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLong(boc_workers_pooled());
}

static PyObject *tracked_cowns(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLongLong(boc_cown_tracked_count());
}

static PyObject *check_reentry(PyObject *module, PyObject *arg) {
  (void)module;
  const char *what = PyUnicode_AsUTF8(arg);
  if (what == NULL || refuse_reentry(what) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *running(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyBool_FromLong(boc_runtime_running());
}

static PyObject *worker_count(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLong(boc_runtime_worker_count());
}

static PyObject *worker_index(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLong(boc_sched_worker_index());
}

static PyObject *live_cowns(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLongLong(boc_cown_live_count());
}

static PyObject *record_sizes(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  /* The encoded captures of a body reading two small ints from its
   * enclosing function: ((x, y), ()) as @when ships them. */
  PyObject *sample = Py_BuildValue("((ii)())", 12345, 678);
  boc_payload_t *p = sample != NULL ? boc_payload_encode(sample) : NULL;
  Py_XDECREF(sample);
  if (p == NULL) {
    return NULL;
  }
  Py_ssize_t captures = (Py_ssize_t)(sizeof(*p) + p->size);
  boc_payload_free(p);
  return Py_BuildValue(
      "{s:n,s:n,s:n,s:n,s:n}", "cown", (Py_ssize_t)sizeof(boc_cown_t),
      "behavior_1", (Py_ssize_t)boc_behavior_record_size(1, 1, 0),
      "behavior_2", (Py_ssize_t)boc_behavior_record_size(2, 2, 0),
      "captures_2", captures, "global_ref", (Py_ssize_t)sizeof(boc_gval_t *));
}

/* ---- platform queries ------------------------------------------------------- */

PyDoc_STRVAR(interpreter_id_doc,
             "interpreter_id() -> int\n\n"
             "The id of the interpreter that calls it (0 for the main one).");
static PyObject *interpreter_id(PyObject *module, PyObject *Py_UNUSED(arg)) {
  (void)module;
  return PyLong_FromLongLong(boc_current_interp_id());
}

PyDoc_STRVAR(is_main_interpreter_doc,
             "is_main_interpreter() -> bool\n\n"
             "True when called from the process's main interpreter.");
static PyObject *is_main_interpreter(PyObject *module,
                                     PyObject *Py_UNUSED(arg)) {
  (void)module;
  return PyBool_FromLong(boc_is_main_interp());
}

PyDoc_STRVAR(cpu_count_doc,
             "cpu_count(physical=False) -> int\n\n"
             "CPUs in this process's affinity mask; with physical=True, the\n"
             "distinct physical cores among them.");
static PyObject *cpu_count(PyObject *module, PyObject *args, PyObject *kwds) {
  (void)module;
  static char *kwlist[] = {"physical", NULL};
  int physical = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:cpu_count", kwlist,
                                   &physical)) {
    return NULL;
  }
  return PyLong_FromLong(physical ? boc_cpu_count_physical()
                                  : boc_cpu_count_logical());
}

PyDoc_STRVAR(default_worker_count_doc,
             "default_worker_count() -> int\n\n"
             "BOCPY_WORKERS when it holds an integer in [1, 4096], else the\n"
             "physical cores in the affinity mask minus one, at least 1.");
static PyObject *default_worker_count(PyObject *module,
                                      PyObject *Py_UNUSED(arg)) {
  (void)module;
  return PyLong_FromLong(boc_default_worker_count(getenv("BOCPY_WORKERS")));
}

/* ---- the external executor (exec/executor.h) ------------------------------ */

static PyObject *set_executor(PyObject *module, PyObject *arg) {
  (void)module;
  if (require_main("_set_executor()") < 0) {
    return NULL;
  }
  if (!PyUnicode_Check(arg)) {
    PyErr_SetString(PyExc_TypeError, "executor must be a str");
    return NULL;
  }
  int kind;
  if (PyUnicode_CompareWithASCIIString(arg, "workers") == 0) {
    kind = BOC_EXEC_WORKERS;
  } else if (PyUnicode_CompareWithASCIIString(arg, "external") == 0) {
    kind = BOC_EXEC_EXTERNAL;
  } else {
    PyErr_Format(PyExc_ValueError,
                 "executor must be 'workers' or 'external', not %R", arg);
    return NULL;
  }
  if (boc_runtime_set_executor(kind) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *executor_name(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyUnicode_FromString(boc_runtime_executor() == BOC_EXEC_EXTERNAL
                                  ? "external"
                                  : "workers");
}

static PyObject *external_run(PyObject *module, PyObject *args) {
  (void)module;
  PyObject *call;
  double timeout;
  if (!PyArg_ParseTuple(args, "Od:_external_run", &call, &timeout)) {
    return NULL;
  }
  if (require_main("_external_run()") < 0) {
    return NULL;
  }
  if (!PyCallable_Check(call)) {
    PyErr_SetString(PyExc_TypeError, "call must be callable");
    return NULL;
  }
  return PyBool_FromLong(boc_runtime_external_run(call, timeout));
}

static PyObject *external_hold(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  if (boc_runtime_hold() < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *external_unhold(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  boc_runtime_unhold();
  Py_RETURN_NONE;
}

static PyObject *mark_exception(PyObject *module, PyObject *arg) {
  (void)module;
  boc_cown_t *c = boc_handle_record(arg); /* borrowed */
  if (c == NULL) {
    PyErr_SetString(PyExc_TypeError, "_mark_exception() takes a Cown");
    return NULL;
  }
  /* relaxed: the flag describes the value, which is published by the
   * release that parked it (as in behavior.c set_result). */
  uint32_t was = atomic_fetch_or_explicit(&c->flags, BOC_COWN_EXCEPTION,
                                          BOC_RELAXED);
  if (!(was & BOC_COWN_EXCEPTION)) {
    boc_cown_note_failed(c);
  }
  Py_RETURN_NONE;
}

/* _cown_unshared(handle): whether this handle is the last way to reach its
 * cown (the only other holder, if any, is main's borrow of its value), so
 * that nobody can read the cown again once the handle is dropped (the Ray
 * executor forgets a version's ObjectRef then: bocpy/ray/_driver.py).  A
 * hint for the caller's own handle: a cown reachable only through it cannot
 * gain a holder behind the caller's back. */
static PyObject *cown_unshared(PyObject *module, PyObject *arg) {
  boc_cown_t *c = boc_handle_record(arg); /* borrowed */
  if (c == NULL) {
    PyErr_SetString(PyExc_TypeError, "_cown_unshared() takes a Cown");
    return NULL;
  }
  if (require_main("_cown_unshared()") < 0) {
    return NULL;
  }
  /* relaxed: with the count at 1 or 2 the holders are this handle and
   * main's borrow (both only reachable from this thread, under the GIL);
   * any other holder keeps the count above them, and a count racing down
   * only leaves the cown for a later call. */
  intptr_t refs = atomic_load_explicit(&c->refs, BOC_RELAXED);
  if (refs == 1) {
    Py_RETURN_TRUE;
  }
  if (refs != 2 || boc_cown_is_pinned(c)) {
    Py_RETURN_FALSE;
  }
  boc_state_t *st = get_state(module);
  if (st->borrowed == NULL) {
    Py_RETURN_FALSE;
  }
  PyObject *key = PyLong_FromVoidPtr(c);
  if (key == NULL) {
    return NULL;
  }
  int has = PyDict_Contains(st->borrowed, key);
  Py_DECREF(key);
  if (has < 0) {
    return NULL;
  }
  return PyBool_FromLong(has);
}

/* _cown_id(handle): the cown's id (what trace events name it by). */
static PyObject *cown_id(PyObject *module, PyObject *arg) {
  (void)module;
  boc_cown_t *c = boc_handle_record(arg); /* borrowed */
  if (c == NULL) {
    PyErr_SetString(PyExc_TypeError, "_cown_id() takes a Cown");
    return NULL;
  }
  return PyLong_FromUnsignedLongLong((unsigned long long)c->id);
}

static PyMethodDef core_methods[] = {
    {"_set_executor", set_executor, METH_O,
     "_set_executor('workers' | 'external'): where the next start() hands\n"
     "ready behaviors (runtime stopped)."},
    {"_executor", executor_name, METH_NOARGS,
     "The executor chosen for this run: 'workers' or 'external'."},
    {"_external_run", external_run, METH_VARARGS,
     "_external_run(call, timeout) -> bool: take the next ready behavior\n"
     "(waiting at most timeout s) and run it through call(fn, args, nargs, result)."},
    {"_external_hold", external_hold, METH_NOARGS,
     "Count one piece of external work in (wait() waits for it)."},
    {"_external_unhold", external_unhold, METH_NOARGS,
     "Count one piece of external work out."},
    {"_cown_id", cown_id, METH_O,
     "_cown_id(cown) -> int: the cown's id (as trace events name it)."},
    {"_cown_unshared", cown_unshared, METH_O,
     "_cown_unshared(cown) -> bool: this handle is the last way to reach\n"
     "its cown (but for main's borrow of its value)."},
    {"_mark_exception", mark_exception, METH_O,
     "Flag a cown's value as an exception raised by a behavior."},
    {"interpreter_id", interpreter_id, METH_NOARGS, interpreter_id_doc},
    {"is_main_interpreter", is_main_interpreter, METH_NOARGS,
     is_main_interpreter_doc},
    {"cpu_count", (PyCFunction)(void (*)(void))cpu_count,
     METH_VARARGS | METH_KEYWORDS, cpu_count_doc},
    {"default_worker_count", default_worker_count, METH_NOARGS,
     default_worker_count_doc},
    {"_cown_ref", cown_ref, METH_O, "Unpickling hook for cown handles."},
    {"_report_unhandled", report_unhandled, METH_NOARGS, report_unhandled_doc},
    {"start", start, METH_VARARGS, start_doc},
    {"wait", wait_, METH_VARARGS, wait_doc},
    {"running", running, METH_NOARGS, "True while the runtime is up."},
    {"pump", pump, METH_VARARGS, pump_doc},
    {"pinned_state", pinned_state, METH_NOARGS,
     "(depth, age_ms, since_ns) of the pinned queue."},
    {"on_pinned_thread", on_pinned_thread, METH_NOARGS,
     on_pinned_thread_doc},
    {"_pinned_at_exit", pinned_at_exit, METH_NOARGS, pinned_at_exit_doc},
    {"_pinned_live", pinned_live, METH_NOARGS,
     "PinnedCowns holding a value of a registered pinned type (tests)."},
    {"set_wait_pump_poll", set_wait_pump_poll, METH_O,
     "Set wait()'s pinned-queue poll period in ms (validated by caller)."},
    {"shutdown_pool", shutdown_pool, METH_VARARGS,
     "shutdown_pool(close=True): destroy the parked worker interpreters\n"
     "(after wait()); with close, the runtime can never start again."},
    {"begin_exit", begin_exit, METH_NOARGS,
     "The exit sequence began on this thread: other main-interpreter\n"
     "threads can no longer schedule."},
    {"_exit_by_sigint", exit_by_sigint, METH_NOARGS,
     "The exit after an uncaught KeyboardInterrupt: the process ends killed\n"
     "by SIGINT once finalisation is done, whatever ran in between."},
    {"_fork_prepare", fork_prepare, METH_NOARGS,
     "Before fork(): end the worker interpreters (pausing a running runtime)."},
    {"_fork_parent", fork_parent, METH_NOARGS,
     "After fork() in the parent: restart a paused runtime's workers."},
    {"_after_fork_child", after_fork_child, METH_NOARGS,
     "In a forked child: True if the process inherited a live runtime\n"
     "(it is then unusable)."},
    {"forked", forked, METH_NOARGS,
     "True in a child forked while the runtime was alive."},
    {"cancel_pending", cancel_pending, METH_NOARGS,
     "Drop every behavior that has not started (exit after an interrupt)."},
    {"interrupt", interrupt, METH_O,
     "interrupt(sig): the exit after a signal: drop pending behaviors and "
     "make every wait()/quiesce() on another thread raise."},
    {"interrupted", interrupted, METH_NOARGS,
     "The signal passed to interrupt(), 0 if none."},
    {"in_flight", in_flight, METH_NOARGS,
     "Behaviors scheduled and not yet retired (0 when stopped)."},
    {"dropped", dropped, METH_NOARGS,
     "Behaviors dropped by cancel_pending() so far."},
    {"busy", busy, METH_NOARGS,
     "[(worker, code bytes, seconds)] of the behaviors running on workers."},
    {"collect_cycles", collect_cycles, METH_NOARGS,
     "Free cowns kept alive only by each other's values (runtime stopped)."},
    {"_collect_cycles_gc", collect_cycles_gc, METH_NOARGS,
     "Collect cown cycles now, running or not (Python's gc callback)."},
    {"check_borrowed", check_borrowed, METH_NOARGS,
     "Raise RuntimeError if a change through a stale borrowed value was\n"
     "lost (called after wait()/quiesce())."},
    {"pooled_workers", pooled_workers, METH_NOARGS,
     "Worker interpreters in the pool (parked or active)."},
    {"tracked_cowns", tracked_cowns, METH_NOARGS,
     "Cowns in the cycle collector's set (tests)."},
    {"check_reentry", check_reentry, METH_O,
     "Raise RuntimeError if called from a behavior or notice_update fn."},
    {"worker_count", worker_count, METH_NOARGS,
     "Workers of the running runtime (0 when stopped)."},
    {"worker_index", worker_index, METH_NOARGS,
     "Index of the calling worker thread, -1 elsewhere."},
    {"live_cowns", live_cowns, METH_NOARGS,
     "Cown records alive in the process (for leak checks)."},
    {"record_sizes", record_sizes, METH_NOARGS,
     "Bytes of the C records (cown, behavior over 1 and 2 cowns)."},
    {NULL, NULL, 0, NULL},
};

/* ---- module definition ---------------------------------------------------- */

static int core_exec(PyObject *module) {
  boc_state_t *st = get_state(module);
  st->interp_id = boc_current_interp_id();
  if (boc_cown_types_init(module, st) < 0) {
    return -1;
  }
  if (boc_scope_type_init(module) < 0) {
    return -1;
  }
  if (boc_messaging_add_functions(module) < 0) return -1;
  if (boc_observe_add_functions(module) < 0) return -1;
  /* receive([]): ours raised ValueError, the reference RuntimeError; this
   * class is both, so an except clause written for either catches it. */
  PyObject *bases = PyTuple_Pack(2, PyExc_ValueError, PyExc_RuntimeError);
  st->empty_tags_error =
      bases != NULL
          ? PyErr_NewExceptionWithDoc(
                "bocpy.EmptyTagsError",
                "receive() was given no tags (both a ValueError and, as in "
                "the reference, a RuntimeError).",
                bases, NULL)
          : NULL;
  Py_XDECREF(bases);
  if (st->empty_tags_error == NULL ||
      PyModule_AddObjectRef(module, "EmptyTagsError", st->empty_tags_error) <
          0) {
    return -1;
  }
  /* Too many tags: ours raised KeyError, the reference's set_tags()
   * IndexError; this class is both. */
  bases = PyTuple_Pack(2, PyExc_KeyError, PyExc_IndexError);
  st->tag_capacity_error =
      bases != NULL
          ? PyErr_NewExceptionWithDoc(
                "bocpy.TagCapacityError",
                "No queue is available for a new tag (both a KeyError and, "
                "as in the reference's set_tags(), an IndexError).",
                bases, NULL)
          : NULL;
  Py_XDECREF(bases);
  if (st->tag_capacity_error == NULL ||
      PyModule_AddObjectRef(module, "TagCapacityError",
                            st->tag_capacity_error) < 0) {
    return -1;
  }
  if (boc_when_exec(module, st) < 0) {
    return -1;
  }
  PyObject *pickle = PyImport_ImportModule("pickle");
  if (pickle == NULL) {
    return -1;
  }
  st->pickle_dumps = PyObject_GetAttrString(pickle, "dumps");
  st->pickle_loads = PyObject_GetAttrString(pickle, "loads");
  Py_DECREF(pickle);
  if (st->pickle_dumps == NULL || st->pickle_loads == NULL) {
    return -1;
  }
  st->protocol = PyLong_FromLong(5);
  st->cown_ref = PyObject_GetAttrString(module, "_cown_ref");
  st->fn_cache = PyDict_New();
  st->borrowed = PyDict_New();
  st->stale = PyList_New(0);
  if (st->protocol == NULL || st->cown_ref == NULL || st->fn_cache == NULL ||
      st->borrowed == NULL || st->stale == NULL) {
    return -1;
  }
  if (boc_abi_exec(module, st) < 0) { /* plugin ABI: capsule, type maps */
    return -1;
  }
  PyObject *cap = PyCapsule_New(st, BOC_STATE_KEY, NULL);
  PyObject *dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
  if (cap == NULL || dict == NULL ||
      PyDict_SetItemString(dict, BOC_STATE_KEY, cap) < 0) {
    Py_XDECREF(cap);
    return -1;
  }
  Py_DECREF(cap);
  boc_state_uncache(NULL); /* re-resolve: an older state may be cached */
  return 0;
}

static int core_traverse(PyObject *module, visitproc visit, void *arg) {
  boc_state_t *st = get_state(module);
  Py_VISIT(st->cown_type);
  Py_VISIT(st->pinned_type);
  Py_VISIT(st->when_type);
  Py_VISIT(st->plans);
  Py_VISIT(st->gcache);
  Py_VISIT(st->gapplied);
  Py_VISIT(st->plan_info);
  Py_VISIT(st->check_reads);
  Py_VISIT(st->autostart);
  Py_VISIT(st->fn_importable);
  Py_VISIT(st->worker_dict);
  Py_VISIT(st->s_loading);
  Py_VISIT(st->pickle_dumps);
  Py_VISIT(st->pickle_loads);
  Py_VISIT(st->plain_types);
  Py_VISIT(st->copyreg_table);
  Py_VISIT(st->plain_classes);
  Py_VISIT(st->pickler);
  Py_VISIT(st->pickler_buf);
  Py_VISIT(st->byvalue_dumps);
  Py_VISIT(st->cown_ref);
  Py_VISIT(st->fn_cache);
  Py_VISIT(st->load_function);
  Py_VISIT(st->borrowed);
  Py_VISIT(st->stale);
  Py_VISIT(st->ntype_map);
  Py_VISIT(st->ntype_list);
  Py_VISIT(st->shared_ref);
  Py_VISIT(st->empty_tags_error);
  Py_VISIT(st->tag_capacity_error);
  return 0;
}

static int core_clear(PyObject *module) {
  boc_state_t *st = get_state(module);
  Py_CLEAR(st->cown_type);
  Py_CLEAR(st->pinned_type);
  Py_CLEAR(st->when_type);
  Py_CLEAR(st->plans);
  Py_CLEAR(st->gcache);
  Py_CLEAR(st->gapplied);
  Py_CLEAR(st->plan_info);
  Py_CLEAR(st->check_reads);
  Py_CLEAR(st->autostart);
  Py_CLEAR(st->fn_importable);
  Py_CLEAR(st->worker_dict);
  Py_CLEAR(st->s_loading);
  Py_CLEAR(st->pickle_dumps);
  Py_CLEAR(st->pickle_loads);
  Py_CLEAR(st->plain_types);
  Py_CLEAR(st->copyreg_table);
  Py_CLEAR(st->plain_classes);
  Py_CLEAR(st->pickler);
  Py_CLEAR(st->pickler_buf);
  Py_CLEAR(st->byvalue_dumps);
  Py_CLEAR(st->protocol);
  Py_CLEAR(st->cown_ref);
  Py_CLEAR(st->fn_cache);
  Py_CLEAR(st->load_function);
  Py_CLEAR(st->borrowed);
  Py_CLEAR(st->stale);
  Py_CLEAR(st->ntype_map);
  Py_CLEAR(st->ntype_list);
  Py_CLEAR(st->shared_ref);
  Py_CLEAR(st->empty_tags_error);
  Py_CLEAR(st->tag_capacity_error);
  return 0;
}

static void core_free(void *module) {
  core_clear((PyObject *)module);
  boc_state_uncache(get_state((PyObject *)module));
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    BOC_MOD_MULTI_INTERP_SLOT,
#if BOC_HAVE_MOD_GIL_SLOT
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bocpy._core",
    .m_doc = "The bocpy runtime, written in C.",
    .m_size = sizeof(boc_state_t),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC PyInit__core(void); /* the one exported symbol */
PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
