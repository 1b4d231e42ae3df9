/* matrix_obj.c - the Matrix wrapper (see matrix_obj.h): life cycle,
 * identity, the owner check, making and copying matrices.
 */
#include "matrix_obj.h"

#include <string.h>

void mx_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  mx_t *m = MX(self);
  if (m->buf != NULL) {
    mx_buf_t *b = m->buf;
    /* relaxed: refs == 1 means this wrapper is the record's only holder
     * (nobody else can take a reference now), so it dies with us and there
     * is nothing to give back: temporaries skip the owner check. */
    if (atomic_load_explicit(&b->refs, memory_order_relaxed) > 1 &&
        mx_owned_quiet(m) && --b->holders == 0) {
      /* The last holder here: give the record back (owner -> none) so that
       * a payload still holding it can be rebuilt anywhere. */
      PyObject *exc = PyErr_GetRaisedException();
      if (m->abi->owner_give(&b->owner, MX_WHAT) < 0) {
        PyErr_Clear();
      }
      PyErr_SetRaisedException(exc);
    }
    mx_buf_decref(m->buf); /* the record may outlive us in another interp */
    m->buf = NULL;
  }
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp); /* instances of heap types hold their type */
}

int mx_check(PyObject *o) {
  /* Each interpreter has its own type object; they share tp_dealloc. */
  return PyType_GetSlot(Py_TYPE(o), Py_tp_dealloc) == (void *)mx_dealloc;
}

mx_state_t *mx_state_of(PyObject *m) {
  return (mx_state_t *)PyType_GetModuleState(Py_TYPE(m));
}

int mx_own(mx_t *m) {
  if (m->moved) {
    PyErr_SetString(PyExc_RuntimeError,
                    "The current interpreter does not own this " MX_WHAT);
    return -1;
  }
  if (m->abi->owner_check(&m->buf->owner, MX_WHAT) < 0) {
    return -1;
  }
  if (m->epoch != m->buf->epoch) {
    /* This interpreter owns the record again, through another wrapper. */
    PyErr_SetString(PyExc_RuntimeError,
                    "The current interpreter does not own this " MX_WHAT);
    return -1;
  }
  return 0;
}

PyObject *mx_wrap(mx_state_t *st, mx_buf_t *b) {
  mx_t *m = (mx_t *)PyType_GenericAlloc(st->type, 0);
  if (m == NULL) {
    mx_buf_decref(b);
    return NULL;
  }
  m->buf = b; /* the reference we were given */
  m->abi = st->abi;
  m->moved = 0;
  m->epoch = b->epoch;
  b->holders++;
  return (PyObject *)m;
}

mx_t *mx_new(mx_state_t *st, Py_ssize_t rows, Py_ssize_t cols, int zero) {
  mx_buf_t *b = mx_buf_new(rows, cols, zero, st->abi->interp_current());
  if (b == NULL) {
    return NULL;
  }
  return (mx_t *)mx_wrap(st, b);
}

mx_t *mx_copy(mx_state_t *st, mx_t *m) {
  mx_t *r = mx_new(st, MX_ROWS(m), MX_COLS(m), 0);
  if (r != NULL) {
    memcpy(MX_DATA(r), MX_DATA(m), (size_t)MX_SIZE(m) * sizeof(double));
  }
  return r;
}

/* Whether this interpreter may use m now (no exception). */
int mx_owned_quiet(mx_t *m) {
  return !m->moved &&
         m->abi->owner_load(&m->buf->owner) == m->abi->interp_current() &&
         m->epoch == m->buf->epoch;
}

void mx_retire(mx_t *m) {
  m->buf->epoch++; /* still the owner: plain writes, published by the flip */
  m->buf->holders = 0;
  m->moved = 1;
}

void mx_reinstate(mx_t *m) {
  m->buf->epoch++;
  m->buf->holders = 1;
  m->epoch = m->buf->epoch;
  m->moved = 0;
}

