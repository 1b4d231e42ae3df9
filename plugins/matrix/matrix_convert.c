/* matrix_convert.c - new matrices from Python sequences (see
 * matrix_convert.h).
 */
#include "matrix_convert.h"

#include <string.h>

#include "matrix_args.h"
#include "matrix_buffer.h"

/* The items of seq as a new tuple (lists are copied, so conversion cannot
 * be disturbed by code that mutates them), or NULL: with an exception set
 * on error, with none when seq is not a sequence we accept (str, bytes,
 * mappings, scalars...). */
static PyObject *as_tuple(PyObject *seq) {
  if (PyTuple_Check(seq)) {
    return Py_NewRef(seq);
  }
  if (PyList_Check(seq)) {
    return PyList_AsTuple(seq);
  }
  if (PyUnicode_Check(seq) || PyBytes_Check(seq) || PyByteArray_Check(seq) ||
      !PySequence_Check(seq)) {
    return NULL;
  }
  return PySequence_Tuple(seq); /* range, array.array, ... */
}

/* Copies the numbers of one row (a sequence or a vector Matrix) into
 * out[0..cols).  On a length mismatch: ValueError naming row i. */
static int fill_row(PyObject *item, Py_ssize_t i, Py_ssize_t cols,
                    double *out) {
  if (mx_check(item)) {
    mx_t *v = MX(item);
    if (mx_own(v) < 0) {
      return -1;
    }
    if ((MX_ROWS(v) != 1 && MX_COLS(v) != 1) || MX_SIZE(v) != cols) {
      PyErr_Format(PyExc_ValueError,
                   "row %zd is a (%zd, %zd) matrix, expected a vector of %zd "
                   "values",
                   i, MX_ROWS(v), MX_COLS(v), cols);
      return -1;
    }
    memmove(out, MX_DATA(v), (size_t)cols * sizeof(double));
    return 0;
  }
  PyObject *t = as_tuple(item);
  if (t == NULL) {
    if (!PyErr_Occurred()) {
      MX_TYPE_ERROR1("row %zd must be a sequence of numbers, not '%U'", i,
                     item);
    }
    return -1;
  }
  const Py_ssize_t n = PyTuple_Size(t);
  if (n != cols) {
    PyErr_Format(PyExc_ValueError,
                 "ragged rows: row %zd has %zd values, row 0 has %zd", i, n,
                 cols);
    Py_DECREF(t);
    return -1;
  }
  for (Py_ssize_t j = 0; j < n; j++) {
    PyObject *x = PyTuple_GetItem(t, j); /* borrowed */
    const int r = mx_as_double(x, &out[j]);
    if (r <= 0) {
      if (r == 0) {
        MX_TYPE_ERROR0("matrix values must be numbers, not '%U'", x);
      }
      Py_DECREF(t);
      return -1;
    }
  }
  Py_DECREF(t);
  return 0;
}

int mx_is_rowlike(PyObject *o) {
  return PyList_Check(o) || PyTuple_Check(o) || mx_check(o) ||
         (PySequence_Check(o) && !PyUnicode_Check(o) && !PyBytes_Check(o) &&
          !PyByteArray_Check(o));
}

mx_t *mx_from_sequence(mx_state_t *st, PyObject *seq, int as_column) {
  if (mx_check(seq)) {
    if (mx_own(MX(seq)) < 0) {
      return NULL;
    }
    return mx_copy(st, MX(seq));
  }
  if (PySequence_Check(seq) && !PyBytes_Check(seq) &&
      !PyByteArray_Check(seq) && PyObject_CheckBuffer(seq)) {
    /* NumPy arrays, memoryviews, array.array: one bulk conversion.  A
     * buffer of something other than numbers falls through to the
     * sequence protocol. */
    mx_t *m;
    const int r = mx_from_buffer_object(st, seq, as_column, 1, &m);
    if (r != 0) {
      return m;
    }
  }
  PyObject *t = as_tuple(seq);
  if (t == NULL) {
    if (!PyErr_Occurred()) {
      MX_TYPE_ERROR0("cannot make a matrix from '%U': expected a sequence of "
                     "numbers or of rows",
                     seq);
    }
    return NULL;
  }
  mx_t *m = NULL;
  const Py_ssize_t n = PyTuple_Size(t);
  if (n == 0) {
    PyErr_SetString(PyExc_ValueError,
                    "cannot make a matrix from an empty sequence (a matrix "
                    "has at least 1 row and 1 column)");
    goto done;
  }
  PyObject *first = PyTuple_GetItem(t, 0); /* borrowed */
  double d;
  const int r = mx_as_double(first, &d);
  if (r < 0) {
    goto done;
  }
  if (r == 1) { /* flat: a row (or column) vector */
    m = as_column ? mx_new(st, n, 1, 0) : mx_new(st, 1, n, 0);
    if (m == NULL) {
      goto done;
    }
    double *out = MX_DATA(m);
    for (Py_ssize_t j = 0; j < n; j++) {
      PyObject *x = PyTuple_GetItem(t, j);
      const int rr = mx_as_double(x, &out[j]);
      if (rr <= 0) {
        if (rr == 0) {
          MX_TYPE_ERROR0("matrix values must be numbers, not '%U' (a flat "
                         "sequence cannot mix numbers and rows)",
                         x);
        }
        Py_CLEAR(m);
        goto done;
      }
    }
    goto done;
  }
  if (!mx_is_rowlike(first)) {
    MX_TYPE_ERROR0("matrix values must be numbers or rows of numbers, not "
                   "'%U'",
                   first);
    goto done;
  }
  /* nested: one item per row; row 0 fixes the column count */
  Py_ssize_t cols;
  if (mx_check(first)) {
    if (mx_own(MX(first)) < 0) {
      goto done;
    }
    cols = MX_SIZE(MX(first));
  } else {
    cols = PySequence_Size(first);
    if (cols < 0) {
      goto done;
    }
  }
  if (cols == 0) {
    PyErr_SetString(PyExc_ValueError,
                    "cannot make a matrix from empty rows (a matrix has at "
                    "least 1 column)");
    goto done;
  }
  m = mx_new(st, n, cols, 0);
  if (m == NULL) {
    goto done;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    if (fill_row(PyTuple_GetItem(t, i), i, cols, MX_DATA(m) + i * cols) < 0) {
      Py_CLEAR(m);
      goto done;
    }
  }
done:
  Py_DECREF(t);
  return m;
}

