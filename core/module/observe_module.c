/* observe_module.c - bocpy._core.stats() and the trace functions behind
 * bocpy.trace (see exec/observe.h and docs/observability.md). */
#include "module/observe_module.h"

#include <stdlib.h>

#include "engine/messages.h"
#include "exec/behavior.h"
#include "exec/observe.h"
#include "exec/pinned.h"
#include "exec/runtime.h"
#include "exec/worker.h"
#include "value/pycompat.h"

/* relaxed loads throughout: live statistics, each value recent on its own
 * (the dict is not a consistent snapshot; see observe.h). */
#define LOAD(p) atomic_load_explicit(p, BOC_RELAXED)

static int set_u64(PyObject *d, const char *key, unsigned long long v) {
  PyObject *o = PyLong_FromUnsignedLongLong(v);
  int rc = o != NULL ? PyDict_SetItemString(d, key, o) : -1;
  Py_XDECREF(o);
  return rc;
}

static PyObject *messages_pending(void) {
  PyObject *d = PyDict_New();
  if (d == NULL) {
    return NULL;
  }
  size_t n;
  boc_msg_count_t *counts = boc_msg_counts(&n);
  for (size_t i = 0; i < n; i++) {
    PyObject *k = PyUnicode_DecodeUTF8(counts[i].tag, (Py_ssize_t)counts[i].len,
                                       "replace");
    PyObject *v = k != NULL ? PyLong_FromSize_t(counts[i].pending) : NULL;
    if (v == NULL || PyDict_SetItem(d, k, v) < 0) {
      Py_XDECREF(k);
      Py_XDECREF(v);
      Py_DECREF(d);
      free(counts);
      return NULL;
    }
    Py_DECREF(k);
    Py_DECREF(v);
  }
  free(counts);
  return d;
}

PyDoc_STRVAR(stats_doc,
             "stats()\n\n"
             "Live counters of the runtime, readable at any time from any\n"
             "interpreter (see bocpy.stats).");
static PyObject *stats(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  int maxw = boc_workers_pooled();
  size_t *depths = PyMem_Calloc((size_t)maxw + 1, sizeof(*depths));
  if (depths == NULL) {
    return PyErr_NoMemory();
  }
  int active = boc_runtime_queue_depths(depths, maxw);
  int pooled = boc_workers_pooled();
  const boc_counters_t *sh = boc_observe_shared_counters();
  unsigned long long finished = LOAD(&sh->finished);
  unsigned long long failed = LOAD(&sh->failed);
  unsigned long long dropped = LOAD(&sh->dropped);
  unsigned long long running = (unsigned long long)LOAD(&sh->running);
  unsigned long long queued = 0;
  PyObject *workers = PyList_New(0);
  if (workers == NULL) {
    PyMem_Free(depths);
    return NULL;
  }
  for (int i = 0; i < pooled; i++) {
    boc_counts_t c;
    if (boc_worker_counters(i, &c) < 0) {
      break;
    }
    unsigned long long q = i < active ? (unsigned long long)depths[i] : 0;
    int run = i < active ? c.running : 0;
    finished += c.finished;
    failed += c.failed;
    dropped += c.dropped;
    running += (unsigned long long)run;
    queued += q;
    PyObject *w = Py_BuildValue("{s:i,s:K,s:O,s:K,s:K}", "index", i, "queued",
                                q, "running", run ? Py_True : Py_False,
                                "finished", (unsigned long long)c.finished,
                                "failed", (unsigned long long)c.failed);
    if (w == NULL || PyList_Append(workers, w) < 0) {
      Py_XDECREF(w);
      Py_DECREF(workers);
      PyMem_Free(depths);
      return NULL;
    }
    Py_DECREF(w);
  }
  PyMem_Free(depths);
  int64_t pdepth = boc_pinned_depth();
  int64_t since = boc_pinned_nonempty_since();
  double age = pdepth > 0 && since > 0 ? (double)(boc_now_ns() - since) / 1e9
                                       : 0.0;
  int64_t in_flight = boc_runtime_in_flight();
  /* Every behavior scheduled has finished, been dropped, or is in flight. */
  unsigned long long scheduled =
      finished + dropped + (unsigned long long)(in_flight > 0 ? in_flight : 0);
  int64_t waiting = in_flight - (int64_t)running - (int64_t)queued - pdepth;
  PyObject *pinned = Py_BuildValue("{s:L,s:d}", "queued", (long long)pdepth,
                                   "oldest_age_s", age);
  PyObject *msgs = pinned != NULL ? messages_pending() : NULL;
  PyObject *d = msgs != NULL ? PyDict_New() : NULL;
  if (d == NULL || PyDict_SetItemString(d, "runtime_running",
                                        boc_runtime_running() ? Py_True
                                                              : Py_False) < 0 ||
      set_u64(d, "scheduled", scheduled) < 0 ||
      set_u64(d, "in_flight", (unsigned long long)in_flight) < 0 ||
      set_u64(d, "running", running) < 0 ||
      set_u64(d, "queued", queued) < 0 ||
      set_u64(d, "waiting", waiting > 0 ? (unsigned long long)waiting : 0) <
          0 ||
      set_u64(d, "finished", finished) < 0 ||
      set_u64(d, "failed", failed) < 0 ||
      set_u64(d, "dropped", dropped) < 0 ||
      PyDict_SetItemString(d, "workers", workers) < 0 ||
      PyDict_SetItemString(d, "pinned", pinned) < 0 ||
      PyDict_SetItemString(d, "messages", msgs) < 0 ||
      /* 3.10/3.11: workers share the one GIL (behaviors serialized) */
      PyDict_SetItemString(d, "shared_gil",
                           BOC_OWN_GIL ? Py_False : Py_True) < 0) {
    Py_XDECREF(d);
    d = NULL;
  }
  Py_DECREF(workers);
  Py_XDECREF(pinned);
  Py_XDECREF(msgs);
  return d;
}

PyDoc_STRVAR(trace_start_doc, "_trace_start()\n\nStart recording behaviors "
                              "(drops what was recorded before).");
static PyObject *trace_start(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  boc_trace_start(boc_code_decref);
  Py_RETURN_NONE;
}

PyDoc_STRVAR(trace_stop_doc, "_trace_stop()\n\nStop recording behaviors.");
static PyObject *trace_stop(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  boc_trace_stop();
  Py_RETURN_NONE;
}

PyDoc_STRVAR(trace_take_doc,
             "_trace_take() -> (events, codes)\n\n"
             "Moves the recorded events out.  events: a list of tuples\n"
             "(t0_ns, t1_ns, worker, code_id, cown_ids, result_id, exception)\n"
             "for behaviors and (t_ns, -1, worker, depth) for queue samples;\n"
             "codes: {code_id: (marshalled_code, module, file)}.");
static PyObject *trace_take(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  size_t n;
  boc_trace_event_t *evs = boc_trace_take(&n);
  PyObject *list = PyList_New(0);
  PyObject *codes = PyDict_New();
  if (list == NULL || codes == NULL) {
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    const boc_trace_event_t *e = &evs[i];
    PyObject *item;
    if (e->t1 < 0) {
      item = Py_BuildValue("(LLiL)", (long long)e->t0, -1LL, (int)e->worker,
                           (long long)e->value);
    } else {
      int32_t k = e->ncowns < BOC_TRACE_COWNS ? e->ncowns : BOC_TRACE_COWNS;
      PyObject *ids = PyTuple_New(k);
      for (int32_t j = 0; ids != NULL && j < k; j++) {
        PyObject *id = PyLong_FromUnsignedLongLong(e->cowns[j]);
        if (id == NULL) {
          Py_CLEAR(ids);
          break;
        }
        PyTuple_SET_ITEM(ids, j, id);
      }
      unsigned long long code_id = e->code != NULL ? e->code->id : 0;
      if (ids != NULL && e->code != NULL) {
        PyObject *key = PyLong_FromUnsignedLongLong(code_id);
        int has = key != NULL ? PyDict_Contains(codes, key) : -1;
        if (has == 0) {
          PyObject *v = Py_BuildValue("(y#sz)", e->code->bytes,
                                      (Py_ssize_t)e->code->size,
                                      e->code->module, e->code->file);
          if (v == NULL || PyDict_SetItem(codes, key, v) < 0) {
            has = -1;
          }
          Py_XDECREF(v);
        }
        Py_XDECREF(key);
        if (has < 0) {
          Py_CLEAR(ids);
        }
      }
      item = ids != NULL
                 ? Py_BuildValue("(LLiKNKs)", (long long)e->t0,
                                 (long long)e->t1, (int)e->worker, code_id,
                                 ids, (unsigned long long)e->result, e->exc)
                 : NULL;
    }
    if (item == NULL || PyList_Append(list, item) < 0) {
      Py_XDECREF(item);
      goto fail;
    }
    Py_DECREF(item);
  }
  boc_trace_free(evs, n, boc_code_decref);
  return Py_BuildValue("(NN)", list, codes);
fail:
  boc_trace_free(evs, n, boc_code_decref);
  Py_XDECREF(list);
  Py_XDECREF(codes);
  return NULL;
}

PyDoc_STRVAR(now_ns_doc, "_now_ns()\n\nThe monotonic clock the trace uses, "
                         "in nanoseconds.");
static PyObject *now_ns(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromLongLong((long long)boc_now_ns());
}

static PyMethodDef observe_methods[] = {
    {"stats", stats, METH_NOARGS, stats_doc},
    {"_trace_start", trace_start, METH_NOARGS, trace_start_doc},
    {"_trace_stop", trace_stop, METH_NOARGS, trace_stop_doc},
    {"_trace_take", trace_take, METH_NOARGS, trace_take_doc},
    {"_now_ns", now_ns, METH_NOARGS, now_ns_doc},
    {NULL, NULL, 0, NULL},
};

int boc_observe_add_functions(PyObject *module) {
  return PyModule_AddFunctions(module, observe_methods);
}
