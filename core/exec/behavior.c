/* behavior.c - behavior records: creation, scheduling, execution and
 * retirement (see behavior.h). */
#include "exec/behavior.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value/handle.h"
#include "value/state.h"
#include "exec/noticeboard.h"
#include "exec/observe.h"
#include "value/pycompat.h"

/* ---- code blobs ------------------------------------------------------------ */

/* Source of code blob ids (process-wide; relaxed: uniqueness only). */
static _Atomic uint64_t next_code_id = 1;

static char *dup_str(const char *s) {
  if (s == NULL) {
    return NULL;
  }
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d != NULL) {
    memcpy(d, s, n);
  }
  return d;
}

boc_code_t *boc_code_new(const char *bytes, size_t size, const char *module,
                         const char *file) {
  boc_code_t *code = malloc(sizeof(*code) + size);
  if (code == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&code->refs, 1);
  code->id = atomic_fetch_add_explicit(&next_code_id, 1, BOC_RELAXED);
  code->module = dup_str(module);
  code->file = dup_str(file);
  code->size = size;
  memcpy(code->bytes, bytes, size);
  if (code->module == NULL || (file != NULL && code->file == NULL)) {
    boc_code_decref(code);
    PyErr_NoMemory();
    return NULL;
  }
  return code;
}

void boc_code_decref(boc_code_t *code) {
  /* acq_rel: the freeing thread must see the other holders' reads done. */
  if (atomic_fetch_sub_explicit(&code->refs, 1, BOC_ACQ_REL) == 1) {
    free(code->module);
    free(code->file);
    free(code);
  }
}

/* ---- records ------------------------------------------------------------- */

static size_t record_size(int32_t nargs, int32_t ncowns, int32_t *shape_off,
                          int32_t *cowns_off) {
  size_t size = sizeof(boc_behavior_t) +
                (size_t)(ncowns + 1) * sizeof(boc_request_t);
  size = (size + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
  *cowns_off = (int32_t)size;
  size += (size_t)ncowns * sizeof(boc_cown_t *);
  *shape_off = (int32_t)size;
  size += (size_t)nargs * sizeof(int32_t);
  return size;
}

size_t boc_behavior_record_size(int32_t nargs, int32_t ncowns) {
  int32_t a, b;
  return record_size(nargs, ncowns, &a, &b);
}

void boc_cfn_free(boc_cfn_t *cfn) {
  if (cfn->free_ctx != NULL) {
    cfn->free_ctx(cfn->ctx);
  }
  free(cfn->module);
  boc_payload_free(cfn->args);
  free(cfn);
}

static void behavior_free(boc_behavior_t *b) {
  for (int32_t i = 0; i < b->ncowns; i++) {
    boc_cown_decref(b->cowns[i]);
  }
  if (b->result != NULL) {
    boc_cown_decref(b->result);
  }
  boc_payload_free(b->captures);
  if (b->code != NULL) {
    boc_code_decref(b->code);
  }
  if (b->cfn != NULL) {
    boc_cfn_free(b->cfn);
  }
  free(b);
}

/* TypeError for @when argument `pos` (0-based) that is not a cown or a
 * group of cowns; for a group, `item` at `index` is the bad element.  The
 * message keeps the reference's wording first (code may match it), then
 * says which argument, what it is and what is accepted. */
static int not_a_cown(Py_ssize_t pos, PyObject *arg, Py_ssize_t index,
                      PyObject *item) {
  if (item == NULL) {
    PyErr_Format(PyExc_TypeError,
                 "can only schedule over cowns or sequences of cowns: "
                 "@when argument %zd has type %.100s (%.100R); pass a Cown or "
                 "PinnedCown, or a list or tuple of them (wrap a plain "
                 "value in Cown(value) first)",
                 pos + 1, Py_TYPE(arg)->tp_name, arg);
  } else {
    PyErr_Format(PyExc_TypeError,
                 "can only schedule over cowns or sequences of cowns: "
                 "@when argument %zd (a %.100s) holds an item of type %.100s "
                 "at index %zd (%.100R); a group must hold only Cown or "
                 "PinnedCown "
                 "objects",
                 pos + 1, Py_TYPE(arg)->tp_name, Py_TYPE(item)->tp_name,
                 index, item);
  }
  return -1;
}

/* The number of cowns named by items[0..nargs) (groups flattened), or -1
 * with the TypeError of not_a_cown. */
static Py_ssize_t count_cowns(PyObject **items, Py_ssize_t nargs) {
  Py_ssize_t ncowns = 0;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    PyObject *a = items[i];
    if (boc_handle_record(a) != NULL) {
      ncowns++;
    } else if (PyList_CheckExact(a) || PyTuple_CheckExact(a)) {
      Py_ssize_t n = PySequence_Fast_GET_SIZE(a);
      for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *item = PySequence_Fast_GET_ITEM(a, j);
        if (boc_handle_record(item) == NULL) {
          return not_a_cown(i, a, j, item);
        }
      }
      ncowns += n;
    } else {
      return not_a_cown(i, a, 0, NULL);
    }
  }
  return ncowns;
}

int boc_behavior_check_args(PyObject *args) {
  PyObject *seq = PySequence_Fast(args, "behavior arguments must be a sequence");
  if (seq == NULL) {
    return -1;
  }
  Py_ssize_t n = count_cowns(PySequence_Fast_ITEMS(seq),
                             PySequence_Fast_GET_SIZE(seq));
  Py_DECREF(seq);
  return n < 0 ? -1 : 0;
}

boc_behavior_t *boc_behavior_new(boc_code_t *code, PyObject *args,
                                 boc_payload_t *captures) {
  PyObject *seq = PySequence_Fast(args, "behavior arguments must be a sequence");
  if (seq == NULL) {
    boc_payload_free(captures);
    return NULL;
  }
  Py_ssize_t nargs = PySequence_Fast_GET_SIZE(seq);
  PyObject **items = PySequence_Fast_ITEMS(seq);
  Py_ssize_t ncowns = count_cowns(items, nargs);
  if (ncowns < 0) {
    goto fail;
  }
  if (nargs > INT32_MAX / 4 || ncowns > INT32_MAX / 4) {
    PyErr_SetString(PyExc_OverflowError, "too many cowns in one behavior");
    goto fail;
  }
  int32_t shape_off, cowns_off;
  size_t size = record_size((int32_t)nargs, (int32_t)ncowns, &shape_off,
                            &cowns_off);
  boc_behavior_t *b = calloc(1, size);
  if (b == NULL) {
    PyErr_NoMemory();
    goto fail;
  }
  b->hdr.node.next = NULL;
  atomic_init(&b->hdr.waiter.pending, 0);
  b->code = code;
  if (code != NULL) {
    boc_code_incref(code);
  }
  b->captures = captures;
  b->nargs = (int32_t)nargs;
  b->ncowns = (int32_t)ncowns;
  b->shape = (int32_t *)((char *)b + shape_off);
  b->cowns = (boc_cown_t **)((char *)b + cowns_off);
  int32_t k = 0;
  uint8_t pinned = 0;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    PyObject *a = items[i];
    boc_cown_t *c = boc_handle_record(a);
    if (c != NULL) {
      b->shape[i] = -1;
      boc_cown_incref(c);
      pinned |= (uint8_t)boc_cown_is_pinned(c);
      b->cowns[k++] = c;
      continue;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(a);
    b->shape[i] = (int32_t)n;
    for (Py_ssize_t j = 0; j < n; j++) {
      c = boc_handle_record(PySequence_Fast_GET_ITEM(a, j));
      boc_cown_incref(c);
      pinned |= (uint8_t)boc_cown_is_pinned(c);
      b->cowns[k++] = c;
    }
  }
  b->hdr.pinned = pinned;
  Py_DECREF(seq);

  b->result = boc_cown_new(Py_None);
  if (b->result == NULL) {
    behavior_free(b);
    return NULL;
  }
  /* One request per distinct cown, the result cown included. */
  boc_waiter_t *w = &b->hdr.waiter;
  for (int32_t i = 0; i < b->ncowns; i++) {
    boc_request_init(&b->reqs[i], &b->cowns[i]->slot, b->cowns[i]->id, w);
  }
  boc_request_init(&b->reqs[b->ncowns], &b->result->slot, b->result->id, w);
  b->nreqs = boc_requests_prepare(b->reqs, b->ncowns + 1);
  return b;

fail:
  Py_DECREF(seq);
  boc_payload_free(captures);
  return NULL;
}

boc_behavior_t *boc_behavior_new_cfn(PyObject *args, boc_cfn_t *cfn) {
  boc_behavior_t *b = boc_behavior_new(NULL, args, NULL);
  if (b == NULL) {
    boc_cfn_free(cfn);
    return NULL;
  }
  b->cfn = cfn;
  return b;
}

boc_cown_t *boc_behavior_schedule(boc_behavior_t *b, const boc_dispatch_t *d) {
  if (boc_term_inc(d->term) < 0) {
    behavior_free(b);
    PyErr_SetString(PyExc_RuntimeError, "runtime is shutting down");
    return NULL;
  }
  boc_cown_t *result = b->result;
  boc_cown_incref(result); /* the caller's; b may be gone once linked */
  b->hdr.dispatch = d;
  boc_requests_link(&b->hdr.waiter, b->reqs, b->nreqs, d->ready, d->ctx);
  return result;
}

static inline boc_cown_t *req_cown(const boc_request_t *r) {
  return (boc_cown_t *)((char *)r->slot - offsetof(boc_cown_t, slot));
}

/* Hands every cown on, counts the behavior out and frees it. */
static void retire(boc_behavior_t *b) {
  const boc_dispatch_t *d = b->hdr.dispatch;
  boc_requests_release(b->reqs, b->nreqs, d->ready, d->ctx);
  behavior_free(b);
  boc_term_dec(d->term);
}

/* ---- execution ------------------------------------------------------------- */

/* The function to call for b's code in this interpreter: the cached template
 * for the code blob, given b's closure cells when it has captures.  Sets
 * *extras to the trailing positional values (new reference). */
static PyObject *behavior_function(boc_state_t *st, boc_behavior_t *b,
                                   PyObject **extras) {
  *extras = NULL;
  PyObject *key = PyLong_FromUnsignedLongLong(b->code->id);
  if (key == NULL) {
    return NULL;
  }
  PyObject *tmpl = PyDict_GetItemWithError(st->fn_cache, key); /* borrowed */
  if (tmpl == NULL) {
    if (PyErr_Occurred()) {
      Py_DECREF(key);
      return NULL;
    }
    if (st->load_function == NULL) {
      PyObject *mod = PyImport_ImportModule("bocpy._worker");
      if (mod == NULL) {
        Py_DECREF(key);
        return NULL;
      }
      st->load_function = PyObject_GetAttrString(mod, "load_function");
      Py_DECREF(mod);
      if (st->load_function == NULL) {
        Py_DECREF(key);
        return NULL;
      }
    }
    PyObject *fn = PyObject_CallFunction(
        st->load_function, "y#ss", b->code->bytes, (Py_ssize_t)b->code->size,
        b->code->module, b->code->file);
    if (fn == NULL || PyDict_SetItem(st->fn_cache, key, fn) < 0) {
      Py_XDECREF(fn);
      Py_DECREF(key);
      return NULL;
    }
    tmpl = fn;
    Py_DECREF(fn); /* the cache keeps it alive */
  }
  Py_DECREF(key);

  if (b->captures == NULL) {
    return Py_NewRef(tmpl);
  }
  PyObject *cap = boc_payload_decode(b->captures);
  if (cap == NULL) {
    return NULL;
  }
  PyObject *cells = NULL, *glob = NULL, *fn = NULL;
  if (!PyArg_ParseTuple(cap, "O!O!O!:captures", &PyTuple_Type, &cells,
                        &PyTuple_Type, extras, &PyTuple_Type, &glob)) {
    Py_DECREF(cap);
    return NULL;
  }
  Py_INCREF(*extras);
  PyObject *globals = PyFunction_GetGlobals(tmpl); /* borrowed */
  /* Captured module globals refresh a worker's copy of the module.  On the
   * main interpreter (pinned behaviors) the namespace IS the module, whose
   * live values must not be rolled back to a snapshot. */
  Py_ssize_t nglob = boc_is_main_interp() ? 0 : PyTuple_GET_SIZE(glob);
  for (Py_ssize_t i = 0; i + 1 < nglob; i += 2) {
    if (PyDict_SetItem(globals, PyTuple_GET_ITEM(glob, i),
                       PyTuple_GET_ITEM(glob, i + 1)) < 0) {
      goto done;
    }
  }
  if (PyTuple_GET_SIZE(cells) == 0) {
    fn = Py_NewRef(tmpl);
    goto done;
  }
  PyCodeObject *code = (PyCodeObject *)PyFunction_GetCode(tmpl);
  if (PyCode_GetNumFree(code) != PyTuple_GET_SIZE(cells)) {
    PyErr_SetString(PyExc_RuntimeError,
                    "behavior closure does not match its code");
    goto done;
  }
  PyObject *closure = PyTuple_New(PyTuple_GET_SIZE(cells));
  if (closure == NULL) {
    goto done;
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(cells); i++) {
    PyObject *cell = PyCell_New(PyTuple_GET_ITEM(cells, i));
    if (cell == NULL) {
      Py_DECREF(closure);
      goto done;
    }
    PyTuple_SET_ITEM(closure, i, cell);
  }
  fn = PyFunction_New((PyObject *)code, globals);
  if (fn != NULL && PyFunction_SetClosure(fn, closure) < 0) {
    Py_CLEAR(fn);
  }
  Py_DECREF(closure);
done:
  Py_DECREF(cap);
  if (fn == NULL) {
    Py_CLEAR(*extras);
  }
  return fn;
}

/* Positional arguments: a handle per single cown, a list per group, then
 * the extras. */
static PyObject *behavior_args(boc_behavior_t *b, PyObject *extras) {
  Py_ssize_t nextra = extras != NULL ? PyTuple_GET_SIZE(extras) : 0;
  PyObject *args = PyTuple_New(b->nargs + nextra);
  if (args == NULL) {
    return NULL;
  }
  int32_t k = 0;
  for (int32_t i = 0; i < b->nargs; i++) {
    PyObject *item;
    if (b->shape[i] < 0) {
      item = boc_handle_new(b->cowns[k++]);
    } else {
      item = PyList_New(b->shape[i]);
      for (int32_t j = 0; item != NULL && j < b->shape[i]; j++) {
        PyObject *h = boc_handle_new(b->cowns[k++]);
        if (h == NULL) {
          Py_CLEAR(item);
          break;
        }
        PyList_SET_ITEM(item, j, h);
      }
    }
    if (item == NULL) {
      Py_DECREF(args);
      return NULL;
    }
    PyTuple_SET_ITEM(args, i, item);
  }
  for (Py_ssize_t i = 0; i < nextra; i++) {
    PyTuple_SET_ITEM(args, b->nargs + i,
                     Py_NewRef(PyTuple_GET_ITEM(extras, i)));
  }
  return args;
}

/* Calls a 1.1 body: imports the plugin's module here and rebuilds the
 * arguments.  The return value (new reference), or NULL with an
 * exception. */
static PyObject *call_cfn(boc_cfn_t *cfn, PyObject **handles, Py_ssize_t n) {
  PyObject *module = PyImport_ImportModule(cfn->module);
  if (module == NULL) {
    return NULL;
  }
  PyObject *args = cfn->args != NULL ? boc_payload_decode(cfn->args)
                                     : PyTuple_New(0);
  PyObject *r = NULL;
  if (args != NULL) {
    r = cfn->call(module, n > 0 ? handles : NULL, n, args, cfn->ctx);
    if (r == NULL && !PyErr_Occurred()) {
      PyErr_Format(PyExc_SystemError,
                   "a C behavior of '%s' returned NULL without setting an "
                   "exception",
                   cfn->module);
    } else if (r != NULL && PyErr_Occurred()) {
      Py_CLEAR(r);
      PyErr_Format(PyExc_SystemError,
                   "a C behavior of '%s' returned a value with an exception "
                   "set",
                   cfn->module);
    }
    Py_DECREF(args);
  }
  Py_DECREF(module);
  return r;
}

/* Runs a C body over handles of the flattened cowns.  0 with *retval set
 * (a new reference), or -1 with an exception set. */
static int run_cfn(boc_behavior_t *b, PyObject **retval) {
  *retval = NULL;
  PyObject *small[8];
  PyObject **handles = small;
  if (b->ncowns > 8) {
    handles = PyMem_Malloc((size_t)b->ncowns * sizeof(*handles));
    if (handles == NULL) {
      PyErr_NoMemory();
      return -1;
    }
  }
  int32_t made = 0;
  int rc = 0;
  for (; made < b->ncowns; made++) {
    handles[made] = boc_handle_new(b->cowns[made]);
    if (handles[made] == NULL) {
      rc = -1;
      break;
    }
  }
  if (rc == 0 && b->cfn->call != NULL) {
    *retval = call_cfn(b->cfn, handles, b->ncowns);
    rc = *retval != NULL ? 0 : -1;
  } else if (rc == 0) {
    rc = b->cfn->fn(handles, b->ncowns, b->cfn->ctx) < 0 ? -1 : 0;
    if (rc < 0 && !PyErr_Occurred()) {
      PyErr_SetString(PyExc_SystemError,
                      "a C behavior failed without setting an exception");
    }
    if (rc == 0) {
      *retval = Py_NewRef(Py_None);
    }
  }
  for (int32_t i = 0; i < made; i++) {
    Py_DECREF(handles[i]);
  }
  if (handles != small) {
    PyMem_Free(handles);
  }
  return rc;
}

/* Stores exc as the parked value of a result cown this behavior could not
 * hold (or will never run for), flagged as an exception. */
static void park_error(boc_cown_t *result, PyObject *exc) {
  boc_payload_t *p = boc_payload_encode(exc);
  if (p == NULL) {
    PyErr_Clear();
    return;
  }
  if (boc_cown_owner(result) != BOC_NO_OWNER) {
    boc_payload_free(p);
    return;
  }
  boc_payload_free(result->payload);
  result->payload = p;
  uint32_t was = atomic_fetch_or_explicit(&result->flags, BOC_COWN_EXCEPTION,
                                          BOC_RELAXED);
  if (!(was & BOC_COWN_EXCEPTION)) {
    boc_cown_note_failed(result);
  }
}

/* What to store for an exception a Python body raised: the carrier from
 * bocpy._errors.carry(exc, fn), which keeps the body's traceback (as text)
 * and where the behavior is defined when the exception travels.  Falls back
 * to the exception itself.  Returns a new reference. */
static PyObject *carried_error(PyObject *exc, PyObject *fn) {
  PyObject *mod = PyImport_ImportModule("bocpy._errors");
  PyObject *c = mod != NULL ? PyObject_CallMethod(mod, "carry", "OO", exc, fn)
                            : NULL;
  Py_XDECREF(mod);
  if (c == NULL) {
    PyErr_Clear();
    return Py_NewRef(exc);
  }
  return c;
}

static void set_result(boc_cown_t *result, PyObject *value, int exception) {
  Py_XSETREF(result->value, Py_NewRef(value));
  if (exception) {
    /* relaxed: the flags travel with the value, published by the release. */
    uint32_t was = atomic_fetch_or_explicit(&result->flags, BOC_COWN_EXCEPTION,
                                            BOC_RELAXED);
    if (!(was & BOC_COWN_EXCEPTION)) {
      boc_cown_note_failed(result); /* reported if nobody handles it */
    }
  } else {
    atomic_fetch_and_explicit(&result->flags, ~(uint32_t)BOC_COWN_EXCEPTION,
                              BOC_RELAXED);
  }
}

/* Records the trace event of a behavior that ran from t0 until now. */
static void trace_behavior(boc_behavior_t *b, int64_t t0, PyObject *error) {
  boc_trace_event_t ev;
  memset(&ev, 0, sizeof(ev));
  ev.t0 = t0;
  ev.t1 = boc_now_ns();
  ev.code = b->code;
  ev.worker = boc_sched_worker_index();
  ev.ncowns = b->ncowns;
  ev.result = b->result->id;
  for (int32_t i = 0; i < b->ncowns && i < BOC_TRACE_COWNS; i++) {
    ev.cowns[i] = b->cowns[i]->id;
  }
  if (error != NULL) {
    snprintf(ev.exc, sizeof(ev.exc), "%s", Py_TYPE(error)->tp_name);
  }
  if (ev.code != NULL) {
    boc_code_incref(ev.code); /* the trace buffer's */
  }
  if (boc_trace_record(&ev) < 0 && ev.code != NULL) {
    boc_code_decref(ev.code);
  }
}

int boc_behavior_run(boc_behavior_t *b, PyObject **body_exc) {
  /* Workers count their behaviors in their loop (no thread-local lookup on
   * the hot path); pinned ones are counted here, on the shared block. */
  boc_counters_t *shared = b->hdr.pinned ? boc_observe_shared_counters() : NULL;
  if (shared != NULL) {
    /* relaxed: a statistic (see observe.h) */
    atomic_store_explicit(&shared->running, 1, BOC_RELAXED);
  }
  int64_t t_start = boc_tracing() ? boc_now_ns() : 0;
  boc_state_t *st = boc_state();
  PyObject *error = NULL;  /* exception to store on the result cown */
  PyObject *retval = NULL;
  int32_t nacq = 0;        /* reqs[0..nacq) are held (acquired in order) */
  int body_raised = 0;

  boc_noticeboard_begin_behavior();
  if (st == NULL) {
    error = PyErr_GetRaisedException();
  }
  /* Resolve the body first: loading its module (a script's reduced copy)
   * defines the classes that the cowns' values may need to be rebuilt. */
  PyObject *extras = NULL;
  PyObject *fn = NULL;
  if (error == NULL && b->cfn == NULL) {
    fn = behavior_function(st, b, &extras);
    if (fn == NULL) {
      error = PyErr_GetRaisedException();
    }
  }
  /* Acquire every requested cown (the result cown included). */
  for (int32_t i = 0; error == NULL && i < b->nreqs; i++) {
    if (boc_cown_acquire(req_cown(&b->reqs[i])) < 0) {
      error = PyErr_GetRaisedException();
      break;
    }
    nacq = i + 1;
  }
  if (error == NULL && b->cfn != NULL) { /* a C body (C ABI) */
    body_raised = run_cfn(b, &retval) < 0;
    if (body_raised) {
      error = PyErr_GetRaisedException();
    }
  } else if (error == NULL) {
    PyObject *args = behavior_args(b, extras);
    if (args != NULL) {
      retval = PyObject_Call(fn, args, NULL);
      body_raised = retval == NULL;
      Py_DECREF(args);
    }
    if (retval == NULL) {
      error = PyErr_GetRaisedException();
    }
  }
  PyObject *stored = NULL; /* what the result cown gets for error */
  if (error != NULL && body_raised && fn != NULL) {
    stored = carried_error(error, fn);
  }
  Py_XDECREF(fn);
  Py_XDECREF(extras);

  /* Store the outcome.  The result cown is held unless acquiring it is what
   * failed, in which case its record is reset to hold the error. */
  boc_cown_t *result = b->result;
  int result_held = boc_cown_owner(result) == boc_current_interp_id();
  if (result_held) {
    if (error != NULL) {
      set_result(result, stored != NULL ? stored : error, 1);
    } else {
      set_result(result, retval, 0);
    }
  }
  Py_CLEAR(retval);

  /* Release every cown we acquired, the result last so that a release
   * failure of an argument can still be reported on it. */
  for (int32_t i = 0; i < nacq; i++) {
    boc_cown_t *c = req_cown(&b->reqs[i]);
    if (c == result) {
      continue;
    }
    PyObject *rel_error = NULL;
    boc_cown_release_or_replace(c, &rel_error);
    if (rel_error != NULL) {
      if (result_held && error == NULL) {
        set_result(result, rel_error, 1);
        error = rel_error;
      } else {
        Py_DECREF(rel_error);
      }
    }
  }
  int result_failed = 0; /* the result itself could not be stored */
  if (result_held) {
    PyObject *rel_error = NULL;
    if (boc_cown_release(result) < 0) {
      result_failed = 1;
      /* The return value (or exception) cannot travel: store a TypeError
       * naming it instead; that one always can. */
      rel_error = PyErr_GetRaisedException();
      if (boc_cown_acquire(result) == 0) {
        set_result(result, rel_error, 1);
        boc_cown_release_or_replace(result, NULL);
      }
      Py_DECREF(rel_error);
    }
  } else if (error != NULL) {
    park_error(result, error); /* could not even hold the result cown */
  }
  Py_XDECREF(stored);
  if (body_exc != NULL) {
    *body_exc = body_raised ? Py_XNewRef(error) : NULL;
  }
  if (t_start != 0) {
    trace_behavior(b, t_start, error);
  }
  if (error != NULL || result_failed) {
    boc_counters_t *ctr = boc_observe_counters(); /* rare: a failure */
    boc_count(ctr, &ctr->failed);
  }
  if (shared != NULL) {
    boc_count(shared, &shared->finished);
    atomic_store_explicit(&shared->running, 0, BOC_RELAXED);
  }
  Py_XDECREF(error);
  retire(b);
  return body_raised;
}

void boc_behavior_drop(boc_behavior_t *b, const char *message) {
  boc_counters_t *ctr = boc_observe_counters();
  boc_count(ctr, &ctr->dropped);
  boc_cown_t *result = b->result;
  PyObject *exc = PyObject_CallFunction(PyExc_RuntimeError, "s", message);
  if (exc != NULL) {
    park_error(result, exc);
    Py_DECREF(exc);
  }
  PyErr_Clear();
  retire(b);
}
