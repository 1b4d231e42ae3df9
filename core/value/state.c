/* state.c - finding the current interpreter's bocpy._core module state, and
 * the pickle functions the transport uses (see state.h). */
#include "value/state.h"

#include "value/pycompat.h"

/* ---- module state lookup ---------------------------------------------------
 * The state lives in the module; a capsule in the interpreter's dict points
 * at it so C code without a module object can find it.  The per-thread
 * cache is keyed by interpreter id (ids are never reused). */

static _Thread_local int64_t tls_state_interp = -1;
static _Thread_local boc_state_t *tls_state;

void boc_state_uncache(const boc_state_t *st) {
  if (st == NULL || tls_state == st) {
    tls_state = NULL;
  }
}

boc_state_t *boc_state(void) {
  int64_t id = boc_current_interp_id();
  if (tls_state != NULL && tls_state_interp == id) {
    return tls_state;
  }
  PyObject *dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
  PyObject *cap = dict != NULL ? PyDict_GetItemString(dict, BOC_STATE_KEY) : NULL;
  if (cap == NULL) {
    PyErr_SetString(PyExc_ImportError,
                    "bocpy._core is not imported in this interpreter");
    return NULL;
  }
  boc_state_t *st = PyCapsule_GetPointer(cap, BOC_STATE_KEY);
  if (st == NULL) {
    return NULL;
  }
  tls_state = st;
  tls_state_interp = id;
  return st;
}

/* ---- pickle hooks for the transport ---------------------------------------- */

/* The interpreter's reusable pickler: bocpy._byvalue._Pickler over a
 * BytesIO, made once (a new Pickler per value costs more than the pickling
 * of a small one).  0, or -1 with an exception. */
static int make_pickler(boc_state_t *st) {
  PyObject *mod = PyImport_ImportModule("bocpy._byvalue");
  if (mod == NULL) {
    return -1;
  }
  if (st->byvalue_dumps == NULL) {
    st->byvalue_dumps = PyObject_GetAttrString(mod, "dumps");
  }
  PyObject *cls = PyObject_GetAttrString(mod, "_Pickler");
  Py_DECREF(mod);
  PyObject *io = cls != NULL ? PyImport_ImportModule("io") : NULL;
  PyObject *buf = io != NULL ? PyObject_CallMethod(io, "BytesIO", NULL) : NULL;
  Py_XDECREF(io);
  PyObject *p = buf != NULL ? PyObject_CallFunctionObjArgs(cls, buf,
                                                           st->protocol, NULL)
                            : NULL;
  Py_XDECREF(cls);
  if (p == NULL || st->byvalue_dumps == NULL) {
    Py_XDECREF(buf);
    Py_XDECREF(p);
    return -1;
  }
  st->pickler_buf = buf;
  st->pickler = p;
  return 0;
}

/* Empties the reusable pickler's buffer and memo (the memo holds the last
 * value's objects).  -1 with an exception. */
static int reset_pickler(boc_state_t *st) {
  PyObject *r = PyObject_CallMethod(st->pickler, "clear_memo", NULL);
  Py_XDECREF(r);
  PyObject *r2 = r != NULL ? PyObject_CallMethod(st->pickler_buf, "seek",
                                                 "i", 0)
                           : NULL;
  Py_XDECREF(r2);
  PyObject *r3 = r2 != NULL ? PyObject_CallMethod(st->pickler_buf,
                                                  "truncate", NULL)
                            : NULL;
  Py_XDECREF(r3);
  return r3 != NULL ? 0 : -1;
}

int boc_pickle_dumps(PyObject *obj, PyObject **bytes_out) {
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return -1;
  }
  if (st->pickler == NULL && make_pickler(st) < 0) {
    return -1;
  }
  *bytes_out = NULL;
  if (st->pickler_busy) {
    /* An encoding nested in a __reduce__: a pickler of its own. */
    *bytes_out = PyObject_CallFunctionObjArgs(st->byvalue_dumps, obj,
                                              st->protocol, NULL);
    return *bytes_out != NULL ? 0 : -1;
  }
  st->pickler_busy = 1;
  PyObject *name = PyUnicode_InternFromString("dump");
  PyObject *r = name != NULL ? PyObject_CallMethodOneArg(st->pickler, name, obj)
                             : NULL;
  Py_XDECREF(name);
  if (r != NULL) {
    Py_DECREF(r);
    *bytes_out = PyObject_CallMethod(st->pickler_buf, "getvalue", NULL);
  }
  /* Always reset: a failed dump leaves a partial pickle and memo.  After a
   * large pickle, start afresh instead: the buffer would keep its size. */
  PyObject *exc = PyErr_GetRaisedException();
  if ((*bytes_out != NULL && PyBytes_GET_SIZE(*bytes_out) > (1 << 20)) ||
      reset_pickler(st) < 0) {
    PyErr_Clear();
    Py_CLEAR(st->pickler); /* made again next time */
    Py_CLEAR(st->pickler_buf);
  }
  PyErr_SetRaisedException(exc);
  st->pickler_busy = 0;
  return *bytes_out != NULL ? 0 : -1;
}

PyObject *boc_pickle_loads(const char *data, Py_ssize_t size) {
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return NULL;
  }
  PyObject *mv = PyMemoryView_FromMemory((char *)data, size, PyBUF_READ);
  if (mv == NULL) {
    return NULL;
  }
  PyObject *obj = PyObject_CallOneArg(st->pickle_loads, mv);
  Py_DECREF(mv);
  return obj;
}

