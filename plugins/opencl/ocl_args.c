/* ocl_args.c - argument checks shared by the methods (see ocl_args.h). */
#include "ocl_args.h"

#include <stdarg.h>

int ocl_not_type(PyObject *exc, PyObject *obj, const char *fmt, ...) {
  va_list va;
  va_start(va, fmt);
  PyObject *head = PyUnicode_FromFormatV(fmt, va);
  va_end(va);
  if (head == NULL) {
    return -1;
  }
  if (obj == NULL) {
    PyErr_SetObject(exc, head);
    Py_DECREF(head);
    return -1;
  }
  PyObject *tn = PyType_GetName(Py_TYPE(obj));
  if (tn != NULL) {
    PyErr_Format(exc, "%U, not %U", head, tn);
    Py_DECREF(tn);
  }
  Py_DECREF(head);
  return -1;
}

int ocl_parse_size(PyObject *o, const char *what, size_t *out) {
  if (!PyLong_Check(o) || PyBool_Check(o)) {
    return ocl_not_type(PyExc_TypeError, o, "%s must be an int", what);
  }
  long long v = PyLong_AsLongLong(o);
  if (v == -1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
      return -1;
    }
    PyErr_Clear();
    /* beyond 64 bits: too large, or far negative */
    PyObject *zero = PyLong_FromLong(0);
    int neg = zero != NULL ? PyObject_RichCompareBool(o, zero, Py_LT) : -1;
    Py_XDECREF(zero);
    if (neg < 0) {
      return -1;
    }
    if (neg) {
      PyErr_Format(PyExc_ValueError, "%s must be at least 1, got %R", what,
                   o);
    } else {
      PyErr_Format(PyExc_OverflowError, "%s %R is too large", what, o);
    }
    return -1;
  }
  if (v < 1) {
    PyErr_Format(PyExc_ValueError, "%s must be at least 1, got %lld", what,
                 v);
    return -1;
  }
  if ((unsigned long long)v > (unsigned long long)PY_SSIZE_T_MAX) {
    PyErr_Format(PyExc_OverflowError, "%s %lld is too large", what, v);
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

int ocl_parse_work(PyObject *o, const char *what, size_t out[3],
                   cl_uint *dims) {
  if (PyLong_Check(o)) {
    *dims = 1;
    return ocl_parse_size(o, what, &out[0]);
  }
  if (!PyTuple_Check(o) && !PyList_Check(o)) {
    return ocl_not_type(PyExc_TypeError, o,
                        "%s must be an int or a tuple of 1 to 3 ints", what);
  }
  PyObject *seq = PySequence_Tuple(o);
  if (seq == NULL) {
    return -1;
  }
  Py_ssize_t n = PyTuple_Size(seq);
  if (n < 1 || n > 3) {
    PyErr_Format(PyExc_ValueError,
                 "%s must have 1 to 3 dimensions, got %zd", what, n);
    Py_DECREF(seq);
    return -1;
  }
  size_t total = 1;
  for (Py_ssize_t i = 0; i < n; i++) {
    if (ocl_parse_size(PyTuple_GetItem(seq, i), what, &out[i]) < 0) {
      Py_DECREF(seq);
      return -1;
    }
    if (out[i] > (size_t)PY_SSIZE_T_MAX / total) {
      PyErr_Format(PyExc_OverflowError,
                   "%s %R has more work items than fit in a size_t", what,
                   o);
      Py_DECREF(seq);
      return -1;
    }
    total *= out[i];
  }
  Py_DECREF(seq);
  *dims = (cl_uint)n;
  return 0;
}

