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

/* ---- shared module-global values ------------------------------------------ */

/* Source of gval versions (process-wide; relaxed: uniqueness only). */
static _Atomic uint64_t next_gval_version = 1;

boc_gval_t *boc_gval_new(const char *name, boc_payload_t *payload, int kind) {
  size_t n = strlen(name) + 1;
  boc_gval_t *g = malloc(sizeof(*g) + n);
  if (g == NULL) {
    boc_payload_free(payload);
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&g->refs, 1);
  g->version = atomic_fetch_add_explicit(&next_gval_version, 1, BOC_RELAXED);
  g->payload = payload;
  g->kind = kind;
  memcpy(g->name, name, n);
  return g;
}

void boc_gval_decref(boc_gval_t *g) {
  /* acq_rel: the freeing thread must see the other holders' reads done. */
  if (atomic_fetch_sub_explicit(&g->refs, 1, BOC_ACQ_REL) == 1) {
    boc_payload_free(g->payload);
    free(g);
  }
}

int boc_deeply_immutable(PyObject *obj, int depth) {
  if (obj == Py_None || PyBool_Check(obj) || PyLong_CheckExact(obj) ||
      PyFloat_CheckExact(obj) || PyUnicode_CheckExact(obj) ||
      PyBytes_CheckExact(obj) || PyComplex_CheckExact(obj) ||
      boc_handle_record(obj) != NULL) {
    return 1;
  }
  if (depth <= 0) {
    return 0;
  }
  if (PyTuple_CheckExact(obj)) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(obj); i++) {
      if (!boc_deeply_immutable(PyTuple_GET_ITEM(obj, i), depth - 1)) {
        return 0;
      }
    }
    return 1;
  }
  if (PyFrozenSet_CheckExact(obj)) {
    PyObject *it = PyObject_GetIter(obj);
    if (it == NULL) {
      PyErr_Clear();
      return 0;
    }
    PyObject *key;
    int ok = 1;
    while (ok && (key = PyIter_Next(it)) != NULL) {
      ok = boc_deeply_immutable(key, depth - 1);
      Py_DECREF(key);
    }
    Py_DECREF(it);
    PyErr_Clear(); /* iterating a frozenset cannot fail; be safe anyway */
    return ok;
  }
  return 0;
}

PyObject *boc_gval_shallow(PyObject *obj, int kind) {
  if (kind == BOC_GVAL_LIST) {
    return PyList_GetSlice(obj, 0, PyList_GET_SIZE(obj));
  }
  if (kind == BOC_GVAL_DICT) {
    return PyDict_Copy(obj);
  }
  return Py_NewRef(Py_None);
}

int boc_gval_unchanged(PyObject *obj, PyObject *shallow) {
  if (shallow == Py_None) {
    return 1;
  }
  if (PyList_CheckExact(shallow)) {
    Py_ssize_t n = PyList_GET_SIZE(shallow);
    if (!PyList_CheckExact(obj) || PyList_GET_SIZE(obj) != n) {
      return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
      if (PyList_GET_ITEM(obj, i) != PyList_GET_ITEM(shallow, i)) {
        return 0;
      }
    }
    return 1;
  }
  if (PyDict_CheckExact(shallow)) {
    if (!PyDict_CheckExact(obj) || PyDict_GET_SIZE(obj) != PyDict_GET_SIZE(shallow)) {
      return 0;
    }
    Py_ssize_t pa = 0, pb = 0;
    PyObject *ka, *va, *kb, *vb;
    while (PyDict_Next(obj, &pa, &ka, &va)) {
      if (!PyDict_Next(shallow, &pb, &kb, &vb) || ka != kb || va != vb) {
        return 0;
      }
    }
    return 1;
  }
  return 0;
}

/* ---- bounded per-code caches ------------------------------------------------ */

/* The entry limit of the per-code caches (boc_cache_limit); relaxed: a plain
 * setting, read on each insertion. */
static _Atomic Py_ssize_t cache_limit = 4096;

Py_ssize_t boc_cache_limit(void) {
  return atomic_load_explicit(&cache_limit, BOC_RELAXED);
}

void boc_set_cache_limit(Py_ssize_t n) {
  atomic_store_explicit(&cache_limit, n < 4 ? 4 : n, BOC_RELAXED);
}

int boc_cache_trim(PyObject *dict) {
  Py_ssize_t drop = PyDict_GET_SIZE(dict) / 4;
  if (drop < 1) {
    drop = 1;
  }
  PyObject *keys = PyList_New(0);
  if (keys == NULL) {
    return -1;
  }
  Py_ssize_t pos = 0;
  PyObject *k, *v;
  while (PyList_GET_SIZE(keys) < drop && PyDict_Next(dict, &pos, &k, &v)) {
    if (PyList_Append(keys, k) < 0) {
      Py_DECREF(keys);
      return -1;
    }
  }
  int rc = 0;
  for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(keys); i++) {
    rc = PyDict_DelItem(dict, PyList_GET_ITEM(keys, i));
  }
  Py_DECREF(keys);
  return rc;
}

/* ---- records ------------------------------------------------------------- */

static size_t record_size(int32_t nargs, int32_t ncowns, int32_t nglobals,
                          int32_t *shape_off, int32_t *cowns_off,
                          int32_t *globals_off) {
  size_t size = sizeof(boc_behavior_t) +
                (size_t)(ncowns + 1) * sizeof(boc_request_t);
  size = (size + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
  *cowns_off = (int32_t)size;
  size += (size_t)ncowns * sizeof(boc_cown_t *);
  *globals_off = (int32_t)size;
  size += (size_t)nglobals * sizeof(boc_gval_t *);
  *shape_off = (int32_t)size;
  size += (size_t)nargs * sizeof(int32_t);
  return size;
}

size_t boc_behavior_record_size(int32_t nargs, int32_t ncowns,
                                int32_t nglobals) {
  int32_t a, b, c;
  return record_size(nargs, ncowns, nglobals, &a, &b, &c);
}

static void behavior_free(boc_behavior_t *b) {
  for (int32_t i = 0; i < b->ncowns; i++) {
    boc_cown_decref(b->cowns[i]);
  }
  for (int32_t i = 0; i < b->nglobals; i++) {
    boc_gval_decref(b->globals[i]);
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

int boc_behavior_check_arg(PyObject *a, Py_ssize_t pos) {
  (void)pos;
  if (boc_handle_record(a) != NULL) {
    return 0;
  }
  if (PyList_CheckExact(a) || PyTuple_CheckExact(a)) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(a);
    for (Py_ssize_t j = 0; j < n; j++) {
      if (boc_handle_record(PySequence_Fast_GET_ITEM(a, j)) == NULL) {
        goto bad;
      }
    }
    return 0;
  }
bad:
  PyErr_SetString(PyExc_TypeError,
                  "can only schedule over cowns or sequences of cowns");
  return -1;
}

static void drop_globals(boc_gval_t *const *globals, int32_t nglobals) {
  for (int32_t i = 0; i < nglobals; i++) {
    boc_gval_decref(globals[i]);
  }
}

boc_behavior_t *boc_behavior_new(boc_code_t *code, PyObject *args,
                                 boc_payload_t *captures,
                                 boc_gval_t *const *globals, int32_t nglobals) {
  PyObject *seq = PySequence_Fast(args, "behavior arguments must be a sequence");
  if (seq == NULL) {
    boc_payload_free(captures);
    drop_globals(globals, nglobals);
    return NULL;
  }
  Py_ssize_t nargs = PySequence_Fast_GET_SIZE(seq);
  PyObject **items = PySequence_Fast_ITEMS(seq);
  Py_ssize_t ncowns = 0;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    PyObject *a = items[i];
    if (boc_behavior_check_arg(a, i) < 0) {
      goto fail;
    }
    ncowns += boc_handle_record(a) != NULL ? 1 : PySequence_Fast_GET_SIZE(a);
  }
  if (nargs > INT32_MAX / 4 || ncowns > INT32_MAX / 4) {
    PyErr_SetString(PyExc_OverflowError, "too many cowns in one behavior");
    goto fail;
  }
  int32_t shape_off, cowns_off, globals_off;
  size_t size = record_size((int32_t)nargs, (int32_t)ncowns, nglobals,
                            &shape_off, &cowns_off, &globals_off);
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
  b->globals = (boc_gval_t **)((char *)b + globals_off);
  b->nglobals = nglobals;
  for (int32_t i = 0; i < nglobals; i++) {
    b->globals[i] = globals[i];
  }
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
  drop_globals(globals, nglobals);
  return NULL;
}

boc_behavior_t *boc_behavior_new_cfn(PyObject *args, boc_cfn_t *cfn) {
  boc_behavior_t *b = boc_behavior_new(NULL, args, NULL, NULL, 0);
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

/* Brings the module globals b reads up to date in globals (a worker's copy
 * of the defining module): a value is decoded only when this interpreter
 * has not applied that very encoding yet, or the namespace no longer holds
 * it unchanged (a body rebound or mutated it).  0, or -1 with an
 * exception. */
static int apply_globals(boc_state_t *st, boc_behavior_t *b, PyObject *globals) {
  PyObject *key = PyLong_FromVoidPtr(globals);
  if (key == NULL) {
    return -1;
  }
  PyObject *applied = PyDict_GetItemWithError(st->gapplied, key); /* borrowed */
  if (applied == NULL) {
    applied = PyErr_Occurred() ? NULL : PyDict_New();
    if (applied == NULL || PyDict_SetItem(st->gapplied, key, applied) < 0) {
      Py_XDECREF(applied);
      Py_DECREF(key);
      return -1;
    }
    Py_DECREF(applied); /* st->gapplied keeps it */
  }
  Py_DECREF(key);
  for (int32_t i = 0; i < b->nglobals; i++) {
    boc_gval_t *g = b->globals[i];
    PyObject *name = PyUnicode_FromString(g->name);
    if (name == NULL) {
      return -1;
    }
    PyObject *rec = PyDict_GetItemWithError(applied, name); /* borrowed */
    if (rec == NULL && PyErr_Occurred()) {
      Py_DECREF(name);
      return -1;
    }
    if (rec != NULL && g->kind != BOC_GVAL_OTHER &&
        PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(rec, 0)) == g->version) {
      PyObject *cur = PyDict_GetItemWithError(globals, name); /* borrowed */
      if (cur != NULL && cur == PyTuple_GET_ITEM(rec, 1) &&
          boc_gval_unchanged(cur, PyTuple_GET_ITEM(rec, 2))) {
        st->g_skipped++;
        Py_DECREF(name);
        continue;
      }
      if (PyErr_Occurred()) {
        Py_DECREF(name);
        return -1;
      }
    }
    PyObject *value = boc_payload_decode(g->payload);
    if (value == NULL || PyDict_SetItem(globals, name, value) < 0) {
      Py_XDECREF(value);
      Py_DECREF(name);
      return -1;
    }
    st->g_decoded++;
    int rc = 0;
    if (g->kind != BOC_GVAL_OTHER) {
      PyObject *shallow = boc_gval_shallow(value, g->kind);
      PyObject *r = shallow != NULL
                        ? Py_BuildValue("(KOO)", (unsigned long long)g->version,
                                        value, shallow)
                        : NULL;
      rc = r != NULL ? PyDict_SetItem(applied, name, r) : -1;
      Py_XDECREF(r);
      Py_XDECREF(shallow);
    } else if (rec != NULL) {
      rc = PyDict_DelItem(applied, name);
    }
    Py_DECREF(value);
    Py_DECREF(name);
    if (rc < 0) {
      return -1;
    }
  }
  return 0;
}

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
    /* Bounded: generated code would otherwise grow it forever. */
    if (fn != NULL && PyDict_GET_SIZE(st->fn_cache) >= boc_cache_limit() &&
        boc_cache_trim(st->fn_cache) < 0) {
      Py_CLEAR(fn);
    }
    if (fn == NULL || PyDict_SetItem(st->fn_cache, key, fn) < 0) {
      Py_XDECREF(fn);
      Py_DECREF(key);
      return NULL;
    }
    tmpl = fn;
    Py_DECREF(fn); /* the cache keeps it alive */
  }
  Py_DECREF(key);

  /* Captured module globals refresh a worker's copy of the module.  On the
   * main interpreter (pinned behaviors) the namespace IS the module, whose
   * live values must not be rolled back to a snapshot. */
  if (b->nglobals > 0 && !boc_is_main_interp() &&
      apply_globals(st, b, PyFunction_GetGlobals(tmpl)) < 0) {
    return NULL;
  }
  if (b->captures == NULL) {
    return Py_NewRef(tmpl);
  }
  PyObject *cap = boc_payload_decode(b->captures);
  if (cap == NULL) {
    return NULL;
  }
  PyObject *cells = NULL, *fn = NULL;
  if (!PyTuple_CheckExact(cap) || PyTuple_GET_SIZE(cap) != 2 ||
      !PyTuple_CheckExact(PyTuple_GET_ITEM(cap, 0)) ||
      !PyTuple_CheckExact(PyTuple_GET_ITEM(cap, 1))) {
    Py_DECREF(cap);
    PyErr_SetString(PyExc_SystemError, "behavior captures are malformed");
    return NULL;
  }
  cells = PyTuple_GET_ITEM(cap, 0);
  *extras = Py_NewRef(PyTuple_GET_ITEM(cap, 1));
  PyObject *globals = PyFunction_GetGlobals(tmpl); /* borrowed */
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

int boc_behavior_run(boc_behavior_t *b, PyObject **body_exc) {
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
    body_raised = run_cfn(b) < 0;
    if (body_raised) {
      error = PyErr_GetRaisedException();
    } else {
      retval = Py_NewRef(Py_None);
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
