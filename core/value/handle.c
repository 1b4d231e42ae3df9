/* handle.c - cown handle objects (the Cown and PinnedCown instances): making
 * one for a record, recognising one from any interpreter (see handle.h). */
#include "value/handle.h"

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

void boc_handle_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  boc_cown_t *c = ((boc_handle_t *)self)->rec;
  if (c != NULL) {
    boc_cown_decref(c);
  }
  tp->tp_free(self);
  Py_DECREF(tp);
}
