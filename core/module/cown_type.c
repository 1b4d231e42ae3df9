/* cown_type.c - the Python handle types Cown and PinnedCown.
 *
 * A handle is a small object holding a strong reference to a cown record;
 * any number of handles in any interpreters may refer to one record.  Both
 * types share one tp_dealloc, which is how C code recognises a handle from
 * any interpreter without looking up that interpreter's module state.
 */
#include "module/cown_type.h"

#include <string.h>

#include "exec/runtime.h"
#include "value/handle.h"
#include "value/pycompat.h"
#include "value/transport.h"

static inline boc_cown_t *rec_of(PyObject *self) {
  return ((boc_handle_t *)self)->rec;
}

/* ---- construction ------------------------------------------------------ */

/* Wraps a new record (its reference is stolen) in an object of type. */
static PyObject *wrap_new_record(PyTypeObject *type, boc_cown_t *c) {
  if (c == NULL) {
    return NULL;
  }
  boc_handle_t *h = (boc_handle_t *)type->tp_alloc(type, 0);
  if (h == NULL) {
    boc_cown_decref(c);
    return NULL;
  }
  h->rec = c;
  return (PyObject *)h;
}

static PyObject *cown_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"value", NULL};
  PyObject *value = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Cown", kwlist, &value)) {
    return NULL;
  }
  return wrap_new_record(type, boc_cown_new(value));
}

static PyObject *pinned_new(PyTypeObject *type, PyObject *args,
                            PyObject *kwds) {
  static char *kwlist[] = {"value", NULL};
  PyObject *value = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:PinnedCown", kwlist,
                                   &value)) {
    return NULL;
  }
  if (!boc_is_main_interp()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "PinnedCown must be constructed on the main interpreter");
    return NULL;
  }
  return wrap_new_record(type, boc_cown_new_pinned(value));
}

static PyObject *cown_init_subclass(PyObject *cls, PyObject *args,
                                    PyObject *kwds) {
  (void)cls;
  (void)args;
  (void)kwds;
  PyErr_SetString(PyExc_TypeError, "Cown cannot be subclassed");
  return NULL;
}

/* ---- ownership ------------------------------------------------------------ */

/* On the main interpreter, reading a parked cown while nothing is in flight
 * (after wait() or quiesce(), or before anything was scheduled) borrows it:
 * main takes ownership, and gives it back before it next schedules. */
int boc_handle_ensure_owned(PyObject *self) {
  boc_cown_t *c = rec_of(self);
  int64_t owner = boc_cown_owner(c);
  if (boc_cown_held_here(c)) {
    return 0;
  }
  /* Parked, or resting in a worker (which moves it out for us). */
  if ((owner == BOC_NO_OWNER || boc_cown_home_worker(c) >= 0) &&
      boc_is_main_interp() && boc_runtime_idle()) {
    boc_state_t *st = boc_state();
    if (st == NULL || boc_cown_acquire(c) < 0) {
      return -1;
    }
    if (boc_borrowed_add(st, c) < 0) {
      PyObject *exc = PyErr_GetRaisedException();
      boc_cown_release_or_replace(c, NULL);
      PyErr_SetRaisedException(exc);
      return -1;
    }
    return 0;
  }
  if (boc_is_main_interp()) {
    PyErr_Format(PyExc_RuntimeError,
                 "The current interpreter does not own this cown (Cown #%llu):"
                 " behaviors are still in flight, and one may hold it. Call "
                 "bocpy.wait() or bocpy.quiesce() before reading it here, or "
                 "read it inside a behavior that names it: @when(cown)",
                 (unsigned long long)c->id);
  } else {
    PyErr_Format(PyExc_RuntimeError,
                 "The current interpreter does not own this cown (Cown #%llu):"
                 " this behavior does not name it in its @when. Add it to "
                 "the @when arguments, or schedule a behavior over it "
                 "(@when(cown)) and use it there",
                 (unsigned long long)c->id);
  }
  return -1;
}

/* ---- stale borrowed values -------------------------------------------------
 * A value read on main (borrowed) is given back when main next schedules;
 * the object main still holds is then a stale copy, and a change made
 * through it is lost.  To say so instead of losing it silently, a release
 * remembers (handle, object, snapshot payload) for each mutable borrowed
 * value somebody else still references, and boc_check_stale() (after the
 * next wait()/quiesce()) compares each object with its snapshot. */

static void free_snapshot(PyObject *capsule) {
  boc_payload_free(PyCapsule_GetPointer(capsule, "bocpy.snapshot"));
}

static int is_immutable(PyObject *v) {
  return v == Py_None || PyLong_CheckExact(v) || PyFloat_CheckExact(v) ||
         PyUnicode_CheckExact(v) || PyBytes_CheckExact(v) ||
         PyBool_Check(v) || PyComplex_CheckExact(v) || PyTuple_CheckExact(v) ||
         PyFrozenSet_CheckExact(v);
}

/* Remembers the value main is about to give back, if it may still be
 * changed through another reference.  entry_rec: the borrowed dict's
 * capsule of the record (kept for the record's id in the message). */
static void remember_stale(boc_state_t *st, PyObject *entry_rec, PyObject *v) {
  /* 2: the cown's own reference and ours (the caller's). */
  if (v == NULL || is_immutable(v) || Py_REFCNT(v) <= 2) {
    return;
  }
  boc_payload_t *p = boc_payload_encode(v);
  if (p == NULL) {
    PyErr_Clear(); /* the release reports encoding errors itself */
    return;
  }
  PyObject *cap = PyCapsule_New(p, "bocpy.snapshot", free_snapshot);
  if (cap == NULL) {
    boc_payload_free(p);
    PyErr_Clear();
    return;
  }
  PyObject *entry = PyTuple_Pack(3, entry_rec, v, cap);
  Py_DECREF(cap);
  if (entry == NULL || PyList_Append(st->stale, entry) < 0) {
    PyErr_Clear();
  }
  Py_XDECREF(entry);
}

static int same_payload(const boc_payload_t *a, const boc_payload_t *b) {
  return a->size == b->size && a->ncowns == b->ncowns &&
         a->nshared == 0 && b->nshared == 0 &&
         memcmp(a->data, b->data, a->size) == 0 &&
         (a->ncowns == 0 ||
          memcmp(a->cowns, b->cowns, a->ncowns * sizeof(*a->cowns)) == 0);
}

int boc_check_stale(boc_state_t *st) {
  Py_ssize_t n = PyList_GET_SIZE(st->stale);
  if (n == 0) {
    return 0;
  }
  PyObject *names = PyList_New(0);
  if (names == NULL) {
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *entry = PyList_GET_ITEM(st->stale, i);
    boc_cown_t *rec =
        PyCapsule_GetPointer(PyTuple_GET_ITEM(entry, 0), BOC_BORROWED_CAPSULE);
    PyObject *v = PyTuple_GET_ITEM(entry, 1);
    if (Py_REFCNT(v) <= 1) {
      continue; /* nobody else holds it: it cannot have been changed */
    }
    const boc_payload_t *snap =
        PyCapsule_GetPointer(PyTuple_GET_ITEM(entry, 2), "bocpy.snapshot");
    boc_payload_t *now = boc_payload_encode(v);
    if (now == NULL) {
      PyErr_Clear(); /* cannot tell: changed into something untransferable */
      continue;
    }
    int same = same_payload(snap, now);
    boc_payload_free(now);
    if (!same) {
      PyObject *name = PyUnicode_FromFormat(
          "Cown(#%llu)", (unsigned long long)rec->id);
      if (name == NULL || PyList_Append(names, name) < 0) {
        Py_XDECREF(name);
        Py_DECREF(names);
        return -1;
      }
      Py_DECREF(name);
    }
  }
  if (PyList_SetSlice(st->stale, 0, n, NULL) < 0) {
    Py_DECREF(names);
    return -1;
  }
  int rc = 0;
  if (PyList_GET_SIZE(names) > 0) {
    PyObject *sep = PyUnicode_FromString(", ");
    PyObject *joined = sep != NULL ? PyUnicode_Join(sep, names) : NULL;
    if (joined != NULL) {
      PyErr_Format(PyExc_RuntimeError,
                   "a write through a borrowed value was lost: the value of "
                   "%U was changed on the main thread through an object read "
                   "from .value before the cown was scheduled again (the "
                   "behaviors got the value as it was when scheduled). Read "
                   ".value again after wait() or quiesce() and change that, "
                   "or make the change in a behavior",
                   joined);
    }
    Py_XDECREF(sep);
    Py_XDECREF(joined);
    rc = -1;
  }
  Py_DECREF(names);
  return rc;
}

int boc_release_borrowed(boc_state_t *st) {
  if (PyDict_GET_SIZE(st->borrowed) == 0) {
    return 0;
  }
  /* Taken out first: releasing may run Python (encoding), which may drop
   * handles, whose deallocation looks st->borrowed up (handle.c). */
  PyObject *taken = st->borrowed;
  st->borrowed = PyDict_New();
  if (st->borrowed == NULL) {
    st->borrowed = taken;
    return -1;
  }
  int64_t me = boc_current_interp_id();
  Py_ssize_t pos = 0;
  PyObject *key, *cap;
  while (PyDict_Next(taken, &pos, &key, &cap)) {
    boc_cown_t *c = PyCapsule_GetPointer(cap, BOC_BORROWED_CAPSULE);
    if (c != NULL && boc_cown_owner(c) == me) {
      PyObject *v = Py_XNewRef(c->value);
      remember_stale(st, cap, v);
      Py_XDECREF(v);
      boc_cown_release_or_replace(c, NULL);
    }
  }
  Py_DECREF(taken); /* drops the records' references */
  return 0;
}

/* ---- giving back borrowed values for the cycle collector ------------------
 * A value main borrowed is a Python object graph the cown collector cannot
 * look into.  From Python's full collection, a borrowed value is given back
 * (encoded into its payload, where the collector sees its cown references)
 * only when doing so cannot be observed: it mentions a cown, and no object
 * of its graph is referenced from outside the graph (each one's reference
 * count equals the references the walk found, the root's plus the cown's
 * own), so main holds no part of it that would become a stale copy.
 * Immutable scalars, types and handles are leaves that need no check. */

enum { WALK_LIMIT = 100000 }; /* objects per value; beyond: left borrowed */

typedef struct {
  PyObject *counts; /* dict: PyLong(address) -> PyLong(references found) */
  PyObject **stack; /* borrowed: every object is kept alive by the value */
  size_t n, cap;
  Py_ssize_t seen;
  int handles; /* cown handles found in the graph */
  int stop;    /* too large, or an error (set) */
} walk_t;

static int walk_leaf(PyObject *o) {
  return o == Py_None || o == Py_Ellipsis || o == Py_NotImplemented ||
         PyBool_Check(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o) ||
         PyComplex_CheckExact(o) || PyUnicode_CheckExact(o) ||
         PyBytes_CheckExact(o) || PyType_Check(o) ||
         (PyTuple_CheckExact(o) && PyTuple_GET_SIZE(o) == 0);
}

static int walk_visit(PyObject *o, void *arg) {
  walk_t *w = arg;
  if (o == NULL || w->stop) {
    return w->stop;
  }
  if (boc_handle_record(o) != NULL) {
    w->handles++;
    return 0;
  }
  if (walk_leaf(o)) {
    return 0;
  }
  PyObject *key = PyLong_FromVoidPtr(o);
  PyObject *was = key != NULL ? PyDict_GetItemWithError(w->counts, key) : NULL;
  long count = 1;
  if (was != NULL) {
    count = PyLong_AsLong(was) + 1;
  } else if (key == NULL || PyErr_Occurred()) {
    Py_XDECREF(key);
    w->stop = 1;
    return 1;
  } else {
    if (++w->seen > WALK_LIMIT) {
      Py_DECREF(key);
      w->stop = 1;
      return 1;
    }
    if (w->n == w->cap) {
      size_t cap = w->cap ? w->cap * 2 : 64;
      PyObject **grown = PyMem_Realloc(w->stack, cap * sizeof(*grown));
      if (grown == NULL) {
        Py_DECREF(key);
        PyErr_NoMemory();
        w->stop = 1;
        return 1;
      }
      w->stack = grown;
      w->cap = cap;
    }
    w->stack[w->n++] = o;
  }
  PyObject *n = PyLong_FromLong(count);
  int rc = n != NULL ? PyDict_SetItem(w->counts, key, n) : -1;
  Py_XDECREF(n);
  Py_DECREF(key);
  if (rc < 0) {
    w->stop = 1;
    return 1;
  }
  return 0;
}

/* 1 when giving back v cannot be observed and may free a cycle (see
 * above), 0 when not, -1 with an exception. */
static int value_unshared(PyObject *v) {
  if (v == NULL || walk_leaf(v) || boc_handle_record(v) != NULL) {
    return v != NULL && boc_handle_record(v) != NULL &&
           Py_REFCNT(v) == 1; /* the value is a handle itself */
  }
  walk_t w = {.counts = PyDict_New()};
  if (w.counts == NULL) {
    return -1;
  }
  walk_visit(v, &w); /* the cown's own reference to its value */
  while (!w.stop && w.n > 0) {
    PyObject *o = w.stack[--w.n];
    traverseproc traverse = Py_TYPE(o)->tp_traverse;
    if (traverse != NULL && PyType_IS_GC(Py_TYPE(o))) {
      traverse(o, walk_visit, &w);
    }
  }
  PyMem_Free(w.stack);
  int result = !w.stop && w.handles > 0;
  Py_ssize_t pos = 0;
  PyObject *key, *count;
  while (result && PyDict_Next(w.counts, &pos, &key, &count)) {
    PyObject *o = PyLong_AsVoidPtr(key);
    if (o == NULL || Py_REFCNT(o) != PyLong_AsSsize_t(count)) {
      result = 0; /* referenced from outside the value */
    }
  }
  Py_DECREF(w.counts);
  if (PyErr_Occurred()) {
    return -1;
  }
  return result;
}

int boc_release_borrowed_unshared(boc_state_t *st) {
  if (st->borrowed == NULL || PyDict_GET_SIZE(st->borrowed) == 0) {
    return 0;
  }
  PyObject *keys = PyList_New(0);
  if (keys == NULL) {
    return -1;
  }
  int64_t me = boc_current_interp_id();
  Py_ssize_t pos = 0;
  PyObject *key, *cap;
  while (PyDict_Next(st->borrowed, &pos, &key, &cap)) {
    boc_cown_t *c = PyCapsule_GetPointer(cap, BOC_BORROWED_CAPSULE);
    if (c == NULL || boc_cown_owner(c) != me) {
      continue;
    }
    int unshared = value_unshared(c->value);
    if (unshared < 0 || (unshared && PyList_Append(keys, key) < 0)) {
      Py_DECREF(keys);
      return -1;
    }
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
    key = PyList_GET_ITEM(keys, i);
    cap = PyDict_GetItemWithError(st->borrowed, key); /* borrowed */
    if (cap == NULL) {
      PyErr_Clear(); /* dropped meanwhile (a handle died while encoding) */
      continue;
    }
    boc_cown_t *c = PyCapsule_GetPointer(cap, BOC_BORROWED_CAPSULE);
    if (c != NULL && boc_cown_owner(c) == me) {
      boc_cown_incref(c); /* the value's release may drop other handles */
      boc_cown_release_or_replace(c, NULL);
      if (PyDict_DelItem(st->borrowed, key) < 0) {
        PyErr_Clear();
      }
      boc_cown_decref(c);
    }
  }
  Py_DECREF(keys);
  return 0;
}

static PyObject *cown_get_value(PyObject *self, void *closure) {
  (void)closure;
  if (boc_handle_ensure_owned(self) < 0) {
    return NULL;
  }
  boc_cown_t *c = rec_of(self);
  PyObject *v = boc_cown_value(c);
  if (v == NULL) {
    return NULL;
  }
  /* Looking at an exception counts as handling it. */
  atomic_fetch_or_explicit(&c->flags, BOC_COWN_REPORTED, BOC_RELAXED);
  return Py_NewRef(v);
}

static int cown_set_value(PyObject *self, PyObject *v, void *closure) {
  (void)closure;
  if (v == NULL) {
    PyErr_SetString(PyExc_TypeError, "a cown's value cannot be deleted");
    return -1;
  }
  if (boc_handle_ensure_owned(self) < 0) {
    return -1;
  }
  boc_cown_t *c = rec_of(self);
  if (boc_cown_set_value(c, v) < 0) {
    return -1;
  }
  /* A new value is not the stored exception any more (as the reference):
   * relaxed, the flag travels with the value, published by the release. */
  atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_EXCEPTION,
                            BOC_RELAXED);
  return 0;
}

static PyObject *cown_get_exception(PyObject *self, void *closure) {
  (void)closure;
  if (boc_handle_ensure_owned(self) < 0) {
    return NULL;
  }
  uint32_t flags = atomic_load_explicit(&rec_of(self)->flags, BOC_RELAXED);
  return PyBool_FromLong((flags & BOC_COWN_EXCEPTION) != 0);
}

static int cown_set_exception(PyObject *self, PyObject *v, void *closure) {
  (void)closure;
  if (v == NULL) {
    PyErr_SetString(PyExc_TypeError, "exception cannot be deleted");
    return -1;
  }
  int truth = PyObject_IsTrue(v);
  if (truth < 0 || boc_handle_ensure_owned(self) < 0) {
    return -1;
  }
  boc_cown_t *c = rec_of(self);
  if (truth) {
    atomic_fetch_or_explicit(&c->flags, BOC_COWN_EXCEPTION, BOC_RELAXED);
  } else {
    atomic_fetch_and_explicit(&c->flags, ~(uint32_t)BOC_COWN_EXCEPTION,
                              BOC_RELAXED);
  }
  return 0;
}

static PyObject *cown_get_acquired(PyObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(boc_cown_held_here(rec_of(self)));
}

static PyObject *cown_acquire(PyObject *self, PyObject *Py_UNUSED(a)) {
  if (boc_cown_acquire(rec_of(self)) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *cown_release(PyObject *self, PyObject *Py_UNUSED(a)) {
  if (boc_cown_release(rec_of(self)) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *cown_enter(PyObject *self, PyObject *Py_UNUSED(a)) {
  boc_cown_t *c = rec_of(self);
  if (boc_cown_acquire(c) < 0) {
    return NULL;
  }
  return Py_XNewRef(boc_cown_value(c));
}

static PyObject *cown_exit(PyObject *self, PyObject *args) {
  (void)args;
  if (boc_cown_release(rec_of(self)) < 0) {
    return NULL;
  }
  Py_RETURN_FALSE;
}

static PyObject *cown_unwrap(PyObject *self, PyObject *Py_UNUSED(a)) {
  boc_cown_t *c = rec_of(self);
  if (!boc_runtime_idle()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "unwrap() needs quiescence: call wait() or quiesce() "
                    "first");
    return NULL;
  }
  if (boc_handle_ensure_owned(self) < 0) {
    return NULL;
  }
  PyObject *v = boc_cown_take_value(c);
  if (v == NULL) {
    return NULL;
  }
  uint32_t flags = atomic_fetch_and_explicit(
      &c->flags, ~(uint32_t)BOC_COWN_EXCEPTION, BOC_RELAXED);
  if ((flags & BOC_COWN_EXCEPTION) && PyExceptionInstance_Check(v)) {
    PyErr_SetRaisedException(v);
    return NULL;
  }
  return v;
}

static PyObject *cown_reduce(PyObject *self, PyObject *Py_UNUSED(a)) {
  Py_ssize_t index = boc_transport_note_cown(rec_of(self));
  if (index < 0) {
    return NULL;
  }
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return NULL;
  }
  return Py_BuildValue("O(n)", st->cown_ref, index);
}

static PyObject *cown_copy(PyObject *self, PyObject *Py_UNUSED(a)) {
  return Py_NewRef(self); /* a handle is a reference: copies share it */
}

static PyObject *cown_deepcopy(PyObject *self, PyObject *memo) {
  (void)memo;
  return Py_NewRef(self);
}

/* ---- comparison, hashing, repr ------------------------------------------ */

static PyObject *cown_richcompare(PyObject *a, PyObject *b, int op) {
  boc_cown_t *x = boc_handle_record(a);
  boc_cown_t *y = boc_handle_record(b);
  if (x == NULL || y == NULL) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  Py_RETURN_RICHCOMPARE(x->id, y->id, op);
}

static Py_hash_t cown_hash(PyObject *self) {
  Py_hash_t h = (Py_hash_t)(rec_of(self)->id * 0x9E3779B97F4A7C15ull >> 1);
  return h == -1 ? -2 : h;
}

static PyObject *cown_repr(PyObject *self) {
  boc_cown_t *c = rec_of(self);
  const char *name = boc_cown_is_pinned(c) ? "PinnedCown" : "Cown";
  if (!boc_cown_held_here(c)) {
    return PyUnicode_FromFormat("%s(#%llu, value=<not owner>)", name,
                                (unsigned long long)c->id);
  }
  if (boc_cown_is_pinned(c) && !boc_on_pinned_thread()) {
    return PyUnicode_FromFormat("%s(#%llu, value=<pinned thread only>)",
                                name, (unsigned long long)c->id);
  }
  return PyUnicode_FromFormat("%s(#%llu, value=%R)", name,
                              (unsigned long long)c->id, boc_cown_value(c));
}

static PyMethodDef cown_methods[] = {
    {"acquire", cown_acquire, METH_NOARGS,
     "Take ownership for this interpreter (non-blocking)."},
    {"release", cown_release, METH_NOARGS,
     "Give ownership back, serialising the value."},
    {"unwrap", cown_unwrap, METH_NOARGS,
     "After quiescence: return the value (re-raising a stored exception) "
     "and reset the cown to None."},
    {"__enter__", cown_enter, METH_NOARGS, NULL},
    {"__exit__", cown_exit, METH_VARARGS, NULL},
    {"__reduce__", cown_reduce, METH_NOARGS, NULL},
    {"__copy__", cown_copy, METH_NOARGS, NULL},
    {"__deepcopy__", cown_deepcopy, METH_O, NULL},
    {"__init_subclass__", (PyCFunction)(void (*)(void))cown_init_subclass,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS, NULL},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cown_getset[] = {
    {"value", cown_get_value, cown_set_value,
     "The cown's value; the calling interpreter must own the cown.", NULL},
    {"exception", cown_get_exception, cown_set_exception,
     "True when the value is an exception raised by a behavior.", NULL},
    {"acquired", cown_get_acquired, NULL,
     "True when the calling interpreter owns the cown.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot cown_slots[] = {
    {Py_tp_new, cown_new},
    {Py_tp_dealloc, boc_handle_dealloc},
    {Py_tp_methods, cown_methods},
    {Py_tp_getset, cown_getset},
    {Py_tp_richcompare, cown_richcompare},
    {Py_tp_hash, cown_hash},
    {Py_tp_repr, cown_repr},
    {Py_tp_doc, "Cown(value=None)\n--\n\nA concurrently owned box holding "
                "one value; behaviors scheduled with @when get exclusive "
                "access to it."},
    {0, NULL},
};

static PyType_Spec cown_spec = {
    .name = "bocpy.Cown",
    .basicsize = sizeof(boc_handle_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = cown_slots,
};

static PyType_Slot pinned_slots[] = {
    {Py_tp_new, pinned_new},
    {Py_tp_dealloc, boc_handle_dealloc},
    {Py_tp_doc, "PinnedCown(value=None)\n--\n\nA cown whose value never "
                "leaves the main interpreter; its behaviors run on the main "
                "thread."},
    {0, NULL},
};

static PyType_Spec pinned_spec = {
    .name = "bocpy.PinnedCown",
    .basicsize = sizeof(boc_handle_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pinned_slots,
};

int boc_cown_types_init(PyObject *module, boc_state_t *st) {
  st->cown_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &cown_spec, NULL);
  if (st->cown_type == NULL) {
    return -1;
  }
  st->pinned_type = (PyTypeObject *)PyType_FromModuleAndSpec(
      module, &pinned_spec, (PyObject *)st->cown_type);
  if (st->pinned_type == NULL) {
    return -1;
  }
  if (PyModule_AddType(module, st->cown_type) < 0 ||
      PyModule_AddType(module, st->pinned_type) < 0) {
    return -1;
  }
  return 0;
}
