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

int boc_pickle_dumps(PyObject *obj, PyObject **bytes_out) {
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return -1;
  }
  if (st->byvalue_dumps == NULL) {
    PyObject *mod = PyImport_ImportModule("bocpy._byvalue");
    if (mod == NULL) {
      return -1;
    }
    st->byvalue_dumps = PyObject_GetAttrString(mod, "dumps");
    Py_DECREF(mod);
    if (st->byvalue_dumps == NULL) {
      return -1;
    }
  }
  *bytes_out = PyObject_CallFunctionObjArgs(st->byvalue_dumps, obj,
                                            st->protocol, NULL);
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

