/* handle.c - cown handle objects (the Cown and PinnedCown instances): making
 * one for a record, recognising one from any interpreter (see handle.h). */
#include "value/handle.h"

#include "value/pycompat.h"
#include "value/state.h"

boc_cown_t *boc_handle_record(PyObject *obj) {
  return Py_TYPE(obj)->tp_dealloc == boc_handle_dealloc
             ? ((boc_handle_t *)obj)->rec
             : NULL;
}

PyObject *boc_handle_new(boc_cown_t *c) {
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return NULL;
  }
  PyTypeObject *type = boc_cown_is_pinned(c) ? st->pinned_type : st->cown_type;
  boc_handle_t *h = PyObject_New(boc_handle_t, type);
  if (h == NULL) {
    return NULL;
  }
  boc_cown_incref(c);
  h->rec = c;
  return (PyObject *)h;
}

static void borrowed_free(PyObject *cap) {
  boc_cown_t *c = PyCapsule_GetPointer(cap, BOC_BORROWED_CAPSULE);
  if (c == NULL) {
    PyErr_Clear();
    return;
  }
  boc_cown_decref(c);
}

int boc_borrowed_add(boc_state_t *st, boc_cown_t *c) {
  PyObject *key = PyLong_FromVoidPtr(c);
  if (key == NULL) {
    return -1;
  }
  int has = PyDict_Contains(st->borrowed, key);
  if (has != 0) {
    Py_DECREF(key);
    return has < 0 ? -1 : 0;
  }
  PyObject *cap = PyCapsule_New(c, BOC_BORROWED_CAPSULE, borrowed_free);
  if (cap == NULL) {
    Py_DECREF(key);
    return -1;
  }
  boc_cown_incref(c); /* the capsule's, dropped by borrowed_free */
  int rc = PyDict_SetItem(st->borrowed, key, cap);
  Py_DECREF(cap);
  Py_DECREF(key);
  return rc;
}

/* The handle being deallocated holds one reference to c: when the only
 * other one is main's borrow, nobody can read the value again, so the
 * borrow ends now and the record dies with this handle (its live value
 * is freed here, on main, by cown_free).  A handle of another holder (two
 * handles, a queued behavior) leaves it to the next schedule or the exit. */
static void borrowed_drop(boc_cown_t *c) {
  /* relaxed: a hint; with refs == 2 nobody else can take a reference (the
   * two holders are this handle and the borrow, both on this thread), and
   * a higher count racing down only leaves the borrow for later. */
  if (atomic_load_explicit(&c->refs, BOC_RELAXED) != 2 ||
      boc_cown_is_pinned(c) || !boc_is_main_interp() ||
      boc_cown_owner(c) != boc_current_interp_id()) {
    return;
  }
  PyObject *exc = PyErr_GetRaisedException();
  boc_state_t *st = boc_state();
  if (st != NULL && st->borrowed != NULL &&
      PyDict_GET_SIZE(st->borrowed) > 0) {
    PyObject *key = PyLong_FromVoidPtr(c);
    /* Drops the borrow's reference: c now lives on this handle's alone. */
    if (key == NULL || PyDict_DelItem(st->borrowed, key) < 0) {
      PyErr_Clear(); /* not borrowed (held by a behavior on main) */
    }
    Py_XDECREF(key);
  }
  PyErr_Clear();
  PyErr_SetRaisedException(exc);
}

void boc_handle_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  boc_cown_t *c = ((boc_handle_t *)self)->rec;
  if (c != NULL) {
    borrowed_drop(c);
    boc_cown_decref(c);
  }
  tp->tp_free(self);
  Py_DECREF(tp);
}
