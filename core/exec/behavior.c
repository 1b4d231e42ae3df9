/* behavior.c - behavior records: creation, scheduling, execution and
 * retirement (see behavior.h). */
#include "exec/behavior.h"

#include <stdlib.h>
#include <string.h>

#include "value/handle.h"
#include "value/state.h"
#include "exec/noticeboard.h"
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
    if (b->cfn->free_ctx != NULL) {
      b->cfn->free_ctx(b->cfn->ctx);
    }
    free(b->cfn);
  }
  free(b);
}

static int not_a_cown(void) {
  PyErr_SetString(PyExc_TypeError,
                  "can only schedule over cowns or sequences of cowns");
  return -1;
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
  Py_ssize_t ncowns = 0;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    PyObject *a = items[i];
    if (boc_handle_record(a) != NULL) {
      ncowns++;
    } else if (PyList_CheckExact(a) || PyTuple_CheckExact(a)) {
      Py_ssize_t n = PySequence_Fast_GET_SIZE(a);
      for (Py_ssize_t j = 0; j < n; j++) {
        if (boc_handle_record(PySequence_Fast_GET_ITEM(a, j)) == NULL) {
          goto bad;
        }
      }
      ncowns += n;
    } else {
      goto bad;
    }
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

bad:
  not_a_cown();
fail:
  Py_DECREF(seq);
  boc_payload_free(captures);
  return NULL;
}

boc_behavior_t *boc_behavior_new_cfn(PyObject *args, boc_cfn_t *cfn) {
  boc_behavior_t *b = boc_behavior_new(NULL, args, NULL);
  if (b == NULL) {
    if (cfn->free_ctx != NULL) {
      cfn->free_ctx(cfn->ctx);
    }
    free(cfn);
    return NULL;
  }
  b->cfn = cfn;
  return b;
}

boc_cown_t *boc_behavior_schedule(boc_behavior_t *b, const boc_dispatch_t *d) {
  if (d->admit != NULL && d->admit(d->ctx) < 0) {
    behavior_free(b);
    return NULL;
  }
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

/* Runs a C body over handles of the flattened cowns.  0, or -1 with an
 * exception set. */
static int run_cfn(boc_behavior_t *b) {
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
  if (rc == 0) {
    rc = b->cfn->fn(handles, b->ncowns, b->cfn->ctx) < 0 ? -1 : 0;
    if (rc < 0 && !PyErr_Occurred()) {
      PyErr_SetString(PyExc_SystemError,
                      "a C behavior failed without setting an exception");
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
  atomic_fetch_or_explicit(&result->flags, BOC_COWN_EXCEPTION, BOC_RELAXED);
}

static void set_result(boc_cown_t *result, PyObject *value, int exception) {
  Py_XSETREF(result->value, Py_NewRef(value));
  if (exception) {
    atomic_fetch_or_explicit(&result->flags, BOC_COWN_EXCEPTION, BOC_RELAXED);
  } else {
    atomic_fetch_and_explicit(&result->flags, ~(uint32_t)BOC_COWN_EXCEPTION,
                              BOC_RELAXED);
  }
}

/* Bodies this thread is inside (nested only on main: a pinned behavior that
 * calls pump() would be one level deeper).  Thread-local: it describes this
 * thread's stack. */
static _Thread_local int tls_depth;

int boc_behavior_depth(void) { return tls_depth; }

int boc_behavior_run(boc_behavior_t *b, PyObject **body_exc) {
  /* The counters are the mutable part of the runtime's dispatch. */
  boc_dispatch_t *d = (boc_dispatch_t *)b->hdr.dispatch;
  if (atomic_load_explicit(&d->cancel, BOC_RELAXED)) {
    if (body_exc != NULL) {
      *body_exc = NULL;
    }
    atomic_fetch_add_explicit(&d->dropped, 1, BOC_RELAXED);
    boc_cown_t *result = b->result;
    boc_cown_incref(result);
    boc_behavior_drop(b, "behavior dropped at exit: the program was "
                         "interrupted before it could run");
    /* Counted in the exit's one-line report: not reported one by one. */
    atomic_fetch_or_explicit(&result->flags, BOC_COWN_REPORTED, BOC_RELAXED);
    boc_cown_decref(result);
    return 0;
  }
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
    tls_depth++;
    body_raised = run_cfn(b) < 0;
    tls_depth--;
    if (body_raised) {
      error = PyErr_GetRaisedException();
    } else {
      retval = Py_NewRef(Py_None);
    }
  } else if (error == NULL) {
    PyObject *args = behavior_args(b, extras);
    if (args != NULL) {
      tls_depth++;
      retval = PyObject_Call(fn, args, NULL);
      tls_depth--;
      body_raised = retval == NULL;
      Py_DECREF(args);
    }
    if (retval == NULL) {
      error = PyErr_GetRaisedException();
    }
  }
  Py_XDECREF(fn);
  Py_XDECREF(extras);

  /* Store the outcome.  The result cown is held unless acquiring it is what
   * failed, in which case its record is reset to hold the error. */
  boc_cown_t *result = b->result;
  int result_held = boc_cown_owner(result) == boc_current_interp_id();
  if (result_held) {
    if (error != NULL) {
      set_result(result, error, 1);
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
  if (result_held) {
    PyObject *rel_error = NULL;
    if (boc_cown_release(result) < 0) {
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
  if (body_exc != NULL) {
    *body_exc = body_raised ? Py_XNewRef(error) : NULL;
  }
  Py_XDECREF(error);
  retire(b);
  return body_raised;
}

void boc_behavior_drop(boc_behavior_t *b, const char *message) {
  boc_cown_t *result = b->result;
  PyObject *exc = PyObject_CallFunction(PyExc_RuntimeError, "s", message);
  if (exc != NULL) {
    park_error(result, exc);
    Py_DECREF(exc);
  }
  PyErr_Clear();
  retire(b);
}
