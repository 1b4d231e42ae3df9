/* matrix_args.c - argument parsing shared by the Matrix methods (see
 * matrix_args.h): numbers, FASTCALL keywords, axes, flags, dimensions,
 * sizes and the shape-mismatch message.
 */
#include "matrix_args.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

int mx_as_double(PyObject *o, double *out) {
  if (PyFloat_Check(o)) {
    *out = PyFloat_AsDouble(o);
    return 1;
  }
  if (PyLong_Check(o)) {
    const double d = PyLong_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) {
      return -1; /* OverflowError: too large for a double */
    }
    *out = d;
    return 1;
  }
  if (PySequence_Check(o)) {
    return 0; /* rows, NumPy arrays (which also have __index__ / __float__) */
  }
  PyObject *num = NULL;
  if (PyIndex_Check(o)) {
    num = PyNumber_Index(o);
  } else if (PyType_GetSlot(Py_TYPE(o), Py_nb_float) != NULL) {
    num = PyNumber_Float(o); /* __float__: Decimal, Fraction, ... */
  } else {
    return 0;
  }
  if (num == NULL) {
    return -1;
  }
  const double d = PyFloat_Check(num) ? PyFloat_AsDouble(num)
                                      : PyLong_AsDouble(num);
  Py_DECREF(num);
  if (d == -1.0 && PyErr_Occurred()) {
    return -1;
  }
  *out = d;
  return 1;
}

int mx_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames, const char *const *names, Py_ssize_t npos,
             Py_ssize_t nall, PyObject **out) {
  if (nargs > npos) {
    PyErr_Format(PyExc_TypeError,
                 "%s() takes at most %zd positional argument%s (%zd given)",
                 fname, npos, npos == 1 ? "" : "s", nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < nargs; i++) {
    out[i] = args[i];
  }
  if (kwnames == NULL) {
    return 0;
  }
  const Py_ssize_t nkw = PyTuple_Size(kwnames);
  for (Py_ssize_t k = 0; k < nkw; k++) {
    PyObject *key = PyTuple_GetItem(kwnames, k); /* borrowed */
    Py_ssize_t j = 0;
    while (j < nall && PyUnicode_CompareWithASCIIString(key, names[j]) != 0) {
      j++;
    }
    if (j == nall) {
      PyErr_Format(PyExc_TypeError,
                   "%s() got an unexpected keyword argument '%U'", fname,
                   key);
      return -1;
    }
    if (j < nargs) {
      PyErr_Format(PyExc_TypeError,
                   "%s() got multiple values for argument '%s'", fname,
                   names[j]);
      return -1;
    }
    out[j] = args[nargs + k];
  }
  return 0;
}

int mx_parse_axis_as(PyObject *o, int *axis, mx_err_t bad) {
  if (o == NULL || o == Py_None) {
    *axis = MX_AXIS_ALL;
    return 0;
  }
  if (!PyLong_Check(o) || PyBool_Check(o)) {
    MX_TYPE_ERROR0("axis must be an int or None, not '%U' (" MX_REF_AXIS
                   ")",
                   o);
    return -1;
  }
  int overflow = 0;
  const long v = PyLong_AsLongAndOverflow(o, &overflow);
  if (v == -1 && PyErr_Occurred()) {
    return -1;
  }
  if (overflow || v < INT_MIN || v > INT_MAX) {
    /* The reference reads the axis as a C int: OverflowError. */
    mx_raise(MX_ERR_AXIS_RANGE,
             "axis %R " MX_REF_INT_RANGE ": " MX_REF_AXIS " (0 or -2 per "
             "column, 1 or -1 per row; None means all elements)",
             o);
    return -1;
  }
  if (v == 0 || v == -2) {
    *axis = 0;
    return 0;
  }
  if (v == 1 || v == -1) {
    *axis = 1;
    return 0;
  }
  mx_raise(bad,
           "axis %R is out of range: " MX_REF_AXIS " (0 or -2 per column, "
           "1 or -1 per row; None means all elements)",
           o);
  return -1;
}

int mx_parse_axis(PyObject *o, int *axis) {
  return mx_parse_axis_as(o, axis, MX_ERR_AXIS);
}

int mx_parse_flag(PyObject *o) {
  return o == NULL ? 0 : PyObject_IsTrue(o);
}

int mx_parse_dim(PyObject *o, const char *what, Py_ssize_t *out) {
  if (!PyLong_Check(o)) {
    MX_TYPE_ERROR1("%s must be an int, not '%U'", what, o);
    return -1;
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (v == -1 && PyErr_Occurred()) {
    return -1;
  }
  if (overflow < 0 || (!overflow && v < 1)) {
    mx_raise(MX_ERR_DIM, "%s must be at least 1, not %R", what, o);
    return -1;
  }
  if (overflow > 0 || v > (long long)(PY_SSIZE_T_MAX / 8)) {
    PyErr_Format(PyExc_ValueError, "%s is too large: %R", what, o);
    return -1;
  }
  *out = (Py_ssize_t)v;
  return 0;
}

int mx_parse_size(PyObject *o, const char *fname, Py_ssize_t *rows,
                  Py_ssize_t *cols) {
  if (!PyTuple_Check(o) && !PyList_Check(o)) {
    MX_TYPE_ERROR1("%s(): size must be a (rows, columns) tuple, not '%U'",
                   fname, o);
    return -1;
  }
  const Py_ssize_t n = PySequence_Size(o);
  if (n != 2) {
    PyErr_Format(PyExc_ValueError,
                 "%s(): size must have 2 items (rows, columns), not %zd",
                 fname, n);
    return -1;
  }
  PyObject *r = PySequence_GetItem(o, 0);
  PyObject *c = r != NULL ? PySequence_GetItem(o, 1) : NULL;
  int rc = -1;
  if (c != NULL && mx_parse_dim(r, "rows", rows) == 0 &&
      mx_parse_dim(c, "columns", cols) == 0) {
    rc = 0;
  }
  Py_XDECREF(r);
  Py_XDECREF(c);
  return rc;
}

void mx_shape_error_as(mx_err_t k, const char *prefix, Py_ssize_t ar,
                       Py_ssize_t ac, Py_ssize_t br, Py_ssize_t bc,
                       const char *suffix) {
  mx_raise(k, "%s: shapes (%zd, %zd) and (%zd, %zd)%s (" MX_REF_MISMATCH ")",
           prefix, ar, ac, br, bc, suffix);
}

void mx_shape_error(const char *prefix, Py_ssize_t ar, Py_ssize_t ac,
                    Py_ssize_t br, Py_ssize_t bc, const char *suffix) {
  mx_shape_error_as(MX_ERR_SHAPE, prefix, ar, ac, br, bc, suffix);
}


/* ---- error classes --------------------------------------------------------- */

static const struct {
  const char *name; /* in the module */
  const char *doc;
  int parent;       /* the kind this one subclasses, or -1 */
} mx_err_info[MX_ERR_KINDS] = {
    {"MatrixShapeError",
     "Shapes that do not match or that the operation does not support: a "
     "ValueError, and a NotImplementedError as in bocpy 0.9.",
     -1},
    {"MatrixAxisError",
     "An axis other than -2, -1, 0, 1 (or None): a ValueError, and a "
     "NotImplementedError as in bocpy 0.9.",
     -1},
    {"MatrixAxisOverflowError",
     "An axis beyond the range of a C int: a ValueError, and an "
     "OverflowError as in bocpy 0.9.",
     -1},
    {"MatrixValueCountError",
     "The wrong number of constructor values: a ValueError, and a TypeError "
     "as in bocpy 0.9.",
     -1},
    {"MatrixDimensionError",
     "A number of rows or columns below 1: a ValueError, and an "
     "AssertionError as in bocpy 0.9.",
     -1},
    {"MatrixBoundsError",
     "clip() with the lower bound above the upper one: a ValueError, and an "
     "AssertionError as in bocpy 0.9.",
     -1},
    {"MatrixKeyError",
     "A key tuple of length other than 2: an IndexError, and a KeyError as "
     "in bocpy 0.9.",
     -1},
    {"MatrixAxisKeyError",
     "A bad axis of take(), select(), put() or concat(): a MatrixAxisError, "
     "and a KeyError as in bocpy 0.9.",
     MX_ERR_AXIS},
    {"MatrixConcatError",
     "concat() of items whose shapes do not stack: a MatrixShapeError, and "
     "an AssertionError as in bocpy 0.9.",
     MX_ERR_SHAPE},
};

int mx_errors_add(PyObject *module) {
  PyObject *ours[MX_ERR_KINDS] = {
      PyExc_ValueError, PyExc_ValueError, PyExc_ValueError, PyExc_ValueError,
      PyExc_ValueError, PyExc_ValueError, PyExc_IndexError, NULL,
      NULL};
  PyObject *refs[MX_ERR_KINDS] = {
      PyExc_NotImplementedError, PyExc_NotImplementedError,
      PyExc_OverflowError,       PyExc_TypeError,
      PyExc_AssertionError,      PyExc_AssertionError,
      PyExc_KeyError,            PyExc_KeyError,
      PyExc_AssertionError};
  /* made[k]: a strong reference to class k until the end. */
  PyObject *made[MX_ERR_KINDS] = {NULL};
  int rc = -1;
  for (int k = 0; k < MX_ERR_KINDS; k++) {
    char qualified[80];
    (void)snprintf(qualified, sizeof qualified, "bocpy.plugins.matrix.%s",
                   mx_err_info[k].name);
    /* parents come earlier in the table */
    const int parent = mx_err_info[k].parent;
    PyObject *first = parent >= 0 ? made[parent] : ours[k];
    PyObject *bases = PyTuple_Pack(2, first, refs[k]);
    if (bases == NULL) {
      goto done;
    }
    made[k] = PyErr_NewExceptionWithDoc(qualified, mx_err_info[k].doc, bases,
                                        NULL);
    Py_DECREF(bases);
    if (made[k] == NULL ||
        PyModule_AddObjectRef(module, mx_err_info[k].name, made[k]) < 0) {
      goto done;
    }
  }
  rc = 0;
done:
  for (int k = 0; k < MX_ERR_KINDS; k++) {
    Py_XDECREF(made[k]);
  }
  return rc;
}

PyObject *mx_raise(mx_err_t k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
  va_end(ap);
  if (msg == NULL) {
    return NULL;
  }
  /* This interpreter's class (an error path: a sys.modules lookup is
   * cheap enough, and no state needs to be threaded through). */
  PyObject *cls = NULL;
  PyObject *module = PyImport_ImportModule("bocpy.plugins.matrix");
  if (module != NULL) {
    cls = PyObject_GetAttrString(module, mx_err_info[k].name);
    Py_DECREF(module);
  }
  if (cls == NULL) {
    PyErr_Clear();
    cls = Py_NewRef(PyExc_ValueError);
  }
  PyErr_SetObject(cls, msg);
  Py_DECREF(cls);
  Py_DECREF(msg);
  return NULL;
}
