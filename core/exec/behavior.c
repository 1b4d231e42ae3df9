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
#include "exec/scope.h"
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

void boc_cfn_free(boc_cfn_t *cfn) {
  if (cfn->free_ctx != NULL) {
    cfn->free_ctx(cfn->ctx);
  }
  free(cfn->module);
  boc_payload_free(cfn->args);
  free(cfn);
}

/* ---- bocpy.map chunks ------------------------------------------------------- */

struct boc_bulk_latch {
  _Atomic intptr_t refs;
  boc_mutex_t mu;
  boc_cond_t cv;
  int64_t n;
  uint8_t *done; /* guarded by mu: 1 once chunk i's record is freed */
};

boc_bulk_latch_t *boc_bulk_latch_new(int64_t n) {
  boc_bulk_latch_t *l = calloc(1, sizeof(*l));
  uint8_t *done = n > 0 ? calloc((size_t)n, 1) : NULL;
  if (l == NULL || (n > 0 && done == NULL)) {
    free(l);
    free(done);
    PyErr_NoMemory();
    return NULL;
  }
  if (boc_mutex_init(&l->mu) != 0) {
    free(l);
    free(done);
    PyErr_NoMemory();
    return NULL;
  }
  if (boc_cond_init(&l->cv) != 0) {
    boc_mutex_destroy(&l->mu);
    free(l);
    free(done);
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&l->refs, 1);
  l->n = n;
  l->done = done;
  return l;
}

void boc_bulk_latch_decref(boc_bulk_latch_t *l) {
  /* acq_rel: the last holder must see every other holder's writes (done
   * flags, under mu anyway) before it frees the latch. */
  if (atomic_fetch_sub_explicit(&l->refs, 1, BOC_ACQ_REL) == 1) {
    boc_cond_destroy(&l->cv);
    boc_mutex_destroy(&l->mu);
    free(l->done);
    free(l);
  }
}

static void latch_mark(boc_bulk_latch_t *l, int64_t index) {
  boc_mutex_lock(&l->mu);
  if (index >= 0 && index < l->n) {
    l->done[index] = 1;
  }
  boc_cond_broadcast(&l->cv);
  boc_mutex_unlock(&l->mu);
}

int boc_bulk_latch_wait(boc_bulk_latch_t *l, int64_t index,
                        int64_t timeout_ns) {
  if (index < 0 || index >= l->n) {
    return 1;
  }
  int64_t deadline = timeout_ns >= 0 ? boc_now_ns() + timeout_ns : -1;
  boc_mutex_lock(&l->mu);
  while (!l->done[index]) {
    if (deadline < 0) {
      boc_cond_wait(&l->cv, &l->mu);
      continue;
    }
    int64_t left = deadline - boc_now_ns();
    if (left <= 0) {
      break;
    }
    boc_cond_timedwait(&l->cv, &l->mu, left);
  }
  int done = l->done[index];
  boc_mutex_unlock(&l->mu);
  return done;
}

int boc_behavior_set_bulk(boc_behavior_t *b, boc_payload_t *items,
                          boc_bulk_latch_t *latch, int64_t index) {
  boc_bulk_t *bulk = malloc(sizeof(*bulk));
  if (bulk == NULL) {
    boc_payload_free(items);
    PyErr_NoMemory();
    return -1;
  }
  /* relaxed: the caller already holds a reference */
  atomic_fetch_add_explicit(&latch->refs, 1, BOC_RELAXED);
  bulk->items = items;
  bulk->latch = latch;
  bulk->index = index;
  b->bulk = bulk;
  return 0;
}

/* Calls fn(item) for each item of b's chunk: the list of results (new
 * reference), or NULL with the first exception (the items after it are not
 * run, as in Executor.map with a chunksize). */
static PyObject *run_bulk(boc_behavior_t *b, PyObject *fn) {
  PyObject *items = boc_payload_decode(b->bulk->items);
  if (items == NULL) {
    return NULL;
  }
  if (!PyTuple_CheckExact(items)) {
    Py_DECREF(items);
    PyErr_SetString(PyExc_SystemError, "map chunk items are malformed");
    return NULL;
  }
  Py_ssize_t n = PyTuple_GET_SIZE(items);
  PyObject *out = PyList_New(n);
  for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
    PyObject *r = PyObject_CallOneArg(fn, PyTuple_GET_ITEM(items, i));
    if (r == NULL) {
      Py_CLEAR(out);
      break;
    }
    PyList_SET_ITEM(out, i, r);
  }
  Py_DECREF(items);
  return out;
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
    boc_cfn_free(b->cfn);
  }
  if (b->scope != NULL) {
    boc_scope_decref(b->scope);
  }
  if (b->bulk != NULL) {
    /* Last: the result cown is parked by now, so a waiter woken here can
     * take the chunk's outcome from it. */
    boc_payload_free(b->bulk->items);
    latch_mark(b->bulk->latch, b->bulk->index);
    boc_bulk_latch_decref(b->bulk->latch);
    free(b->bulk);
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

int boc_behavior_check_arg(PyObject *a, Py_ssize_t pos) {
  if (boc_handle_record(a) != NULL) {
    return 0;
  }
  if (PyList_CheckExact(a) || PyTuple_CheckExact(a)) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(a);
    for (Py_ssize_t j = 0; j < n; j++) {
      PyObject *item = PySequence_Fast_GET_ITEM(a, j);
      if (boc_handle_record(item) == NULL) {
        return not_a_cown(pos, a, j, item);
      }
    }
    return 0;
  }
  return not_a_cown(pos, a, 0, NULL);
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
  /* Not started yet (boc_behavior_cancel).  relaxed: nobody else sees the
   * record before it is scheduled. */
  atomic_fetch_or_explicit(&b->result->flags, BOC_COWN_PENDING, BOC_RELAXED);
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

void boc_behavior_drop_unscheduled(boc_behavior_t *b) { behavior_free(b); }

boc_behavior_t *boc_behavior_new_cfn(PyObject *args, boc_cfn_t *cfn) {
  boc_behavior_t *b = boc_behavior_new(NULL, args, NULL, NULL, 0);
  if (b == NULL) {
    boc_cfn_free(cfn);
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
  /* The scheduling thread's current scope (a `with bocpy.scope()` block,
   * or the scope of the behavior running here) gets it. */
  boc_scope_t *scope = boc_scope_current();
  if (scope != NULL) {
    boc_scope_enter_work(scope);
    boc_scope_incref(scope);
    b->scope = scope;
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&scope->n_scheduled, 1, BOC_RELAXED);
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

/* Hands every cown on, counts the behavior out (of its scopes first, so a
 * scope's waiter wakes as early as possible) and frees it. */
static void retire(boc_behavior_t *b) {
  const boc_dispatch_t *d = b->hdr.dispatch;
  boc_scope_t *scope = b->scope;
  b->scope = NULL; /* its reference is dropped below, after counting out */
  boc_requests_release(b->reqs, b->nreqs, d->ready, d->ctx);
  behavior_free(b);
  if (scope != NULL) {
    boc_scope_leave_work(scope);
    boc_scope_decref(scope);
  }
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

/* An external executor runs a C body here, on this thread, over the cowns'
 * live values; first its hook makes them the real current values (under the
 * Ray backend a value is a placeholder until then): call(None, (cowns...),
 * ncowns, result).  0, or -1 with an exception (the body does not run). */
static PyObject *call_body(PyObject *call, PyObject *fn, PyObject *args,
                           int32_t nargs, boc_cown_t *result);

static int prepare_cfn(PyObject *call, boc_behavior_t *b) {
  PyObject *cowns = PyTuple_New(b->ncowns);
  if (cowns == NULL) {
    return -1;
  }
  for (int32_t i = 0; i < b->ncowns; i++) {
    PyObject *h = boc_handle_new(b->cowns[i]);
    if (h == NULL) {
      Py_DECREF(cowns);
      return -1;
    }
    PyTuple_SET_ITEM(cowns, i, h); /* steals h */
  }
  PyObject *r = call_body(call, Py_None, cowns, b->ncowns, b->result);
  Py_DECREF(cowns);
  if (r == NULL) {
    return -1;
  }
  Py_DECREF(r);
  return 0;
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
  boc_cown_set_payload(result, p);
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

/* Records the trace event of a behavior that ran from t0 until now (for an
 * external executor: that handled it, on its track BOC_TRACE_EXTERNAL). */
static void trace_behavior(boc_behavior_t *b, int64_t t0, PyObject *error,
                           int external) {
  boc_trace_event_t ev;
  memset(&ev, 0, sizeof(ev));
  ev.t0 = t0;
  ev.t1 = boc_now_ns();
  ev.code = b->code;
  ev.worker = external ? BOC_TRACE_EXTERNAL : boc_sched_worker_index();
  ev.ncowns = b->ncowns;
  ev.result = b->result->id;
  ev.scope = b->scope != NULL ? b->scope->id : 0;
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

/* Bodies this thread is inside (nested only on main: a pinned behavior that
 * calls pump() would be one level deeper).  Thread-local: it describes this
 * thread's stack. */
static _Thread_local int tls_depth;

int boc_behavior_depth(void) { return tls_depth; }

/* CancelledError(message) of concurrent.futures (a new reference), or
 * NULL with an exception. */
static PyObject *cancelled_error(const char *message) {
  PyObject *mod = PyImport_ImportModule("concurrent.futures");
  PyObject *type = mod != NULL ? PyObject_GetAttrString(mod, "CancelledError")
                               : NULL;
  Py_XDECREF(mod);
  PyObject *exc = type != NULL ? PyObject_CallFunction(type, "s", message)
                               : NULL;
  Py_XDECREF(type);
  return exc;
}

static void drop_with(boc_behavior_t *b, PyObject *exc);

/* Retires a cancelled behavior without running it (see scope.h). */
static void drop_cancelled(boc_behavior_t *b) {
  boc_cown_t *result = b->result;
  /* relaxed: flags travel with the value, published by the release.
   * REPORTED: a cancellation is not an error nobody handled. */
  atomic_fetch_or_explicit(&result->flags,
                           BOC_COWN_CANCELLED | BOC_COWN_REPORTED,
                           BOC_RELAXED);
  if (b->scope != NULL) {
    atomic_fetch_add_explicit(&b->scope->n_cancelled, 1, BOC_RELAXED);
  }
  PyObject *exc = cancelled_error(
      "behavior cancelled before it started (Scope.cancel(), "
      "cancel_on_error, or bocpy.cancel() on its result)");
  drop_with(b, exc);
  Py_XDECREF(exc);
}

int boc_behavior_cancel(boc_cown_t *result) {
  /* relaxed: the flag word itself is the only shared state; its RMWs
   * decide whether the behavior starts (boc_behavior_run) or is cancelled,
   * never both. */
  uint32_t f = atomic_load_explicit(&result->flags, BOC_RELAXED);
  for (;;) {
    if (f & BOC_COWN_CANCELLED) {
      return 1;
    }
    if (!(f & BOC_COWN_PENDING)) {
      return 0;
    }
    uint32_t want = (f & ~(uint32_t)BOC_COWN_PENDING) | BOC_COWN_CANCELLED;
    if (atomic_compare_exchange_weak_explicit(&result->flags, &f, want,
                                              BOC_RELAXED, BOC_RELAXED)) {
      return 1;
    }
  }
}

int boc_behavior_run(boc_behavior_t *b, PyObject **body_exc) {
  return boc_behavior_run_via(b, NULL, body_exc);
}

/* Calls the body: fn(*args), or call(fn, args, nargs, result handle) for
 * an external executor.  A new reference, or NULL with an exception. */
static PyObject *call_body(PyObject *call, PyObject *fn, PyObject *args,
                           int32_t nargs, boc_cown_t *result) {
  if (call == NULL) {
    return PyObject_Call(fn, args, NULL);
  }
  PyObject *handle = boc_handle_new(result);
  if (handle == NULL) {
    return NULL;
  }
  PyObject *n = PyLong_FromLong(nargs);
  PyObject *r = n != NULL ? PyObject_CallFunctionObjArgs(call, fn, args, n,
                                                         handle, NULL)
                          : NULL;
  Py_XDECREF(n);
  Py_DECREF(handle);
  return r;
}

int boc_behavior_run_via(boc_behavior_t *b, PyObject *call,
                         PyObject **body_exc) {
  /* The counters are the mutable part of the runtime's dispatch. */
  boc_dispatch_t *d = (boc_dispatch_t *)b->hdr.dispatch;
  /* Started: from now on boc_behavior_cancel says no.  relaxed: see
   * boc_behavior_cancel. */
  uint32_t prior = atomic_fetch_and_explicit(
      &b->result->flags, ~(uint32_t)BOC_COWN_PENDING, BOC_RELAXED);
  if ((prior & BOC_COWN_CANCELLED) ||
      (b->scope != NULL && boc_scope_cancelled(b->scope))) {
    if (body_exc != NULL) {
      *body_exc = NULL;
    }
    drop_cancelled(b);
    return 0;
  }
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
  /* Workers count their behaviors in their loop (no thread-local lookup on
   * the hot path); pinned ones and those of an external executor are
   * counted here, on the shared block. */
  boc_counters_t *shared = b->hdr.pinned || call != NULL
                               ? boc_observe_shared_counters()
                               : NULL;
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
  /* What the body schedules belongs to this behavior's scope. */
  boc_scope_t *outer_scope = boc_scope_swap(b->scope);
  if (error == NULL && b->cfn != NULL) { /* a C body (C ABI) */
    if (call != NULL && prepare_cfn(call, b) < 0) {
      error = PyErr_GetRaisedException();
    } else {
      tls_depth++;
      body_raised = run_cfn(b, &retval) < 0;
      tls_depth--;
      if (body_raised) {
        error = PyErr_GetRaisedException();
      }
    }
  } else if (error == NULL && b->bulk != NULL) { /* a bocpy.map chunk */
    tls_depth++;
    retval = run_bulk(b, fn);
    tls_depth--;
    body_raised = retval == NULL;
    if (retval == NULL) {
      error = PyErr_GetRaisedException();
    }
  } else if (error == NULL) {
    PyObject *args = behavior_args(b, extras);
    if (args != NULL) {
      tls_depth++;
      retval = call_body(call, fn, args, b->nargs, b->result);
      tls_depth--;
      body_raised = retval == NULL;
      Py_DECREF(args);
    }
    if (retval == NULL) {
      error = PyErr_GetRaisedException();
    }
  }
  boc_scope_swap(outer_scope);
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
    /* On a worker the value may rest there (cown.c, "homes"). */
    boc_cown_release_rest(c, &rel_error);
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
  /* A KeyboardInterrupt/SystemExit raised while the result was encoded (a
   * signal handled by Python code the pickler ran): stored on the result
   * and passed on to the caller as if the body had raised it. */
  PyObject *interrupt = NULL;
  if (result_held) {
    PyObject *rel_error = NULL;
    if (boc_cown_release(result) < 0) {
      result_failed = 1;
      /* The return value (or exception) cannot travel: store a TypeError
       * naming it instead; that one always can. */
      rel_error = PyErr_GetRaisedException();
      if (!PyObject_TypeCheck(rel_error, (PyTypeObject *)PyExc_Exception)) {
        interrupt = Py_NewRef(rel_error);
      }
      if (boc_cown_acquire(result) == 0) {
        set_result(result, rel_error, 1);
        boc_cown_release_or_replace(result, NULL);
      }
      Py_DECREF(rel_error);
    }
  } else if (error != NULL) {
    park_error(result, error); /* could not even hold the result cown */
  }
  if (error != NULL && b->scope != NULL) {
    boc_scope_note_failed(b->scope, result, stored != NULL ? stored : error);
  }
  Py_XDECREF(stored);
  if (body_exc != NULL) {
    *body_exc = body_raised ? Py_XNewRef(error) : NULL;
    if (interrupt != NULL) {
      Py_XSETREF(*body_exc, interrupt);
      interrupt = NULL;
      body_raised = 1;
    }
  }
  Py_XDECREF(interrupt);
  if (t_start != 0) {
    trace_behavior(b, t_start, error, call != NULL);
  }
  if (error != NULL || result_failed) {
    boc_counters_t *ctr = boc_observe_counters(); /* rare: a failure */
    boc_count(ctr, &ctr->failed);
  } else if (b->scope != NULL) {
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&b->scope->n_finished, 1, BOC_RELAXED);
  }
  if (shared != NULL) {
    boc_count(shared, &shared->finished);
    atomic_store_explicit(&shared->running, 0, BOC_RELAXED);
  }
  Py_XDECREF(error);
  retire(b);
  return body_raised;
}

/* Retires b without running it, its result holding exc (when not NULL). */
static void drop_with(boc_behavior_t *b, PyObject *exc) {
  boc_counters_t *ctr = boc_observe_counters();
  boc_count(ctr, &ctr->dropped);
  if (exc != NULL) {
    park_error(b->result, exc);
  }
  PyErr_Clear();
  retire(b);
}

void boc_behavior_drop(boc_behavior_t *b, const char *message) {
  PyObject *exc = PyObject_CallFunction(PyExc_RuntimeError, "s", message);
  drop_with(b, exc);
  Py_XDECREF(exc);
}
