/* matrix_pickle.c - pickling a Matrix (see matrix_pickle.h). */
#include "matrix_pickle.h"

#include <stdint.h>
#include <string.h>

#include "matrix_args.h"

/* * Inside a bocpy encoding (a Matrix nested in a container that bocpy
 * pickles) the matrix still moves by share/rebuild: reduce_shared records
 * it.  Anywhere else (pickle.dumps, copy.deepcopy through __reduce_ex__)
 * the owner gets a self-contained copy: _from_buffer(rows, columns, raw
 * native-endian bytes, byte order). */

static int native_little(void) {
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

PyObject *mx_meth_reduce(PyObject *self, PyObject *Py_UNUSED(unused)) {
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  PyObject *r = m->abi->reduce_shared(self);
  if (r != NULL || !PyErr_ExceptionMatches(PyExc_TypeError)) {
    return r;
  }
  PyErr_Clear(); /* no bocpy encoding in progress: a plain pickle */
  PyObject *module = PyType_GetModule(Py_TYPE(self)); /* borrowed */
  if (module == NULL) {
    return NULL;
  }
  PyObject *fn = PyObject_GetAttrString(module, "_from_buffer");
  if (fn == NULL) {
    return NULL;
  }
  PyObject *data = PyBytes_FromStringAndSize(
      (const char *)MX_DATA(m), MX_SIZE(m) * (Py_ssize_t)sizeof(double));
  if (data == NULL) {
    Py_DECREF(fn);
    return NULL;
  }
  r = Py_BuildValue("N(nnNs)", fn, MX_ROWS(m), MX_COLS(m), data,
                    native_little() ? "little" : "big");
  return r;
}

const char mx_unpickle_doc[] =
                 "_from_buffer(rows, columns, data, byteorder) -> Matrix\n\n"
             "Unpickling helper: a Matrix from raw float64 bytes (row-major) "
             "in the given byte order ('little' or 'big').";
PyObject *mx_unpickle(PyObject *module, PyObject *const *args,
                                Py_ssize_t nargs) {
  mx_state_t *st = PyModule_GetState(module);
  if (nargs != 4) {
    PyErr_Format(PyExc_TypeError,
                 "_from_buffer() takes 4 arguments (%zd given)", nargs);
    return NULL;
  }
  Py_ssize_t rows, cols;
  if (mx_parse_dim(args[0], "rows", &rows) < 0 ||
      mx_parse_dim(args[1], "columns", &cols) < 0) {
    return NULL;
  }
  if (!PyUnicode_Check(args[3])) {
    PyErr_SetString(PyExc_TypeError, "byteorder must be 'little' or 'big'");
    return NULL;
  }
  int little;
  if (PyUnicode_CompareWithASCIIString(args[3], "little") == 0) {
    little = 1;
  } else if (PyUnicode_CompareWithASCIIString(args[3], "big") == 0) {
    little = 0;
  } else {
    PyErr_SetString(PyExc_ValueError, "byteorder must be 'little' or 'big'");
    return NULL;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0) {
    return NULL;
  }
  mx_t *m = NULL;
  if (rows > PY_SSIZE_T_MAX / cols ||
      view.len / (Py_ssize_t)sizeof(double) != rows * cols ||
      view.len % (Py_ssize_t)sizeof(double) != 0) {
    PyErr_Format(PyExc_ValueError,
                 "_from_buffer(): %zd bytes cannot hold a %zd x %zd float64 "
                 "matrix",
                 view.len, rows, cols);
  } else if ((m = mx_new(st, rows, cols, 0)) != NULL) {
    memcpy(MX_DATA(m), view.buf, (size_t)view.len);
    if (little != native_little()) {
      unsigned char *p = (unsigned char *)MX_DATA(m);
      for (Py_ssize_t i = 0; i < rows * cols; i++, p += 8) {
        for (int k = 0; k < 4; k++) {
          unsigned char t = p[k];
          p[k] = p[7 - k];
          p[7 - k] = t;
        }
      }
    }
  }
  PyBuffer_Release(&view);
  return (PyObject *)m;
}

