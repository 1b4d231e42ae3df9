/* matrix_buffer.c - the buffer protocol both ways (see matrix_buffer.h). */
#include "matrix_buffer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "matrix_args.h"

/* ---- exporting ------------------------------------------------------------ */

int mx_no_exports(mx_t *m, const char *action) {
  const Py_ssize_t n = m->buf->exports;
  if (n == 0) {
    return 0;
  }
  PyErr_Format(PyExc_BufferError,
               "cannot %s: %zd buffer export%s of this matrix %s alive (a "
               "memoryview or a NumPy array sharing its memory, e.g. from "
               "numpy.asarray(m)); release %s first (del the array, or "
               "memoryview.release()), or use a copy: m.copy()",
               action, n, n == 1 ? "" : "s", n == 1 ? "is" : "are",
               n == 1 ? "it" : "them");
  return -1;
}

int mx_getbuffer(PyObject *self, Py_buffer *view, int flags) {
  mx_t *m = MX(self);
  view->obj = NULL;
  if (mx_own(m) < 0) {
    return -1; /* RuntimeError: the matrix lives in another interpreter */
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  if ((flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS && R > 1 && C > 1) {
    PyErr_Format(PyExc_BufferError,
                 "a (%zd, %zd) matrix is row-major (C-contiguous), not "
                 "Fortran-contiguous: ask for a C-contiguous or strided "
                 "buffer, or copy m.T",
                 R, C);
    return -1;
  }
  m->view_shape[0] = R;
  m->view_shape[1] = C;
  m->view_strides[0] = C * (Py_ssize_t)sizeof(double);
  m->view_strides[1] = (Py_ssize_t)sizeof(double);
  view->buf = MX_DATA(m);
  view->obj = Py_NewRef(self);
  view->len = R * C * (Py_ssize_t)sizeof(double);
  view->readonly = 0;
  view->itemsize = (Py_ssize_t)sizeof(double);
  view->format = (flags & PyBUF_FORMAT) ? (char *)"d" : NULL;
  if ((flags & PyBUF_ND) == PyBUF_ND) {
    view->ndim = 2;
    view->shape = m->view_shape;
  } else {
    view->ndim = 1; /* PyBUF_SIMPLE: plain bytes, no shape */
    view->shape = NULL;
  }
  view->strides =
      (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? m->view_strides : NULL;
  view->suboffsets = NULL;
  view->internal = NULL;
  m->buf->exports++; /* owner only: we hold this interpreter's GIL */
  return 0;
}

void mx_releasebuffer(PyObject *self, Py_buffer *view) {
  (void)view;
  /* The record cannot have moved while exported: still ours. */
  MX(self)->buf->exports--;
}

/* ---- importing --------------------------------------------------------------
 * Elements are read through memcpy (buffers need not be aligned) and
 * converted to double; a byte order other than the native one is swapped
 * first. */

typedef enum { EL_FLOAT, EL_HALF, EL_INT, EL_UINT } el_kind_t;

static int native_little(void) {
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

/* 1 when fmt (a struct-module format) is one number we convert: sets
 * *kind and *swap; 0 otherwise. */
static int parse_format(const char *fmt, Py_ssize_t size, el_kind_t *kind,
                        int *swap) {
  if (fmt == NULL) {
    fmt = "B"; /* no format: unsigned bytes */
  }
  int order = 0; /* 0 native, 1 little-endian, 2 big-endian */
  if (*fmt == '@' || *fmt == '=') {
    fmt++;
  } else if (*fmt == '<') {
    order = 1;
    fmt++;
  } else if (*fmt == '>' || *fmt == '!') {
    order = 2;
    fmt++;
  }
  if (fmt[0] == '\0' || fmt[1] != '\0') {
    return 0; /* structs, repeat counts, ... */
  }
  *swap = order != 0 && (order == 1) != native_little();
  const int int_size = size == 1 || size == 2 || size == 4 || size == 8;
  switch (fmt[0]) {
  case 'd':
    *kind = EL_FLOAT;
    return size == 8;
  case 'f':
    *kind = EL_FLOAT;
    return size == 4;
  case 'e':
    *kind = EL_HALF;
    return size == 2;
  case 'b': case 'h': case 'i': case 'l': case 'q': case 'n':
    *kind = EL_INT;
    return int_size;
  case 'B': case 'H': case 'I': case 'L': case 'Q': case 'N': case '?':
    *kind = EL_UINT;
    return int_size;
  default:
    return 0;
  }
}

static double half_to_double(uint16_t h) {
  const int e = (h >> 10) & 0x1f;
  const int f = h & 0x3ff;
  double v;
  if (e == 0) {
    v = ldexp((double)f, -24); /* zero or subnormal */
  } else if (e == 31) {
    v = f != 0 ? NAN : INFINITY;
  } else {
    v = ldexp((double)(f + 1024), e - 25);
  }
  return (h & 0x8000) ? -v : v;
}

/* One element of `size` bytes at p (any kind, any byte order). */
static double read_any(const char *p, el_kind_t kind, Py_ssize_t size,
                       int swap) {
  unsigned char t[8];
  memcpy(t, p, (size_t)size);
  if (swap) {
    for (Py_ssize_t k = 0; k < size / 2; k++) {
      const unsigned char c = t[k];
      t[k] = t[size - 1 - k];
      t[size - 1 - k] = c;
    }
  }
  switch (kind) {
  case EL_HALF: {
    uint16_t h;
    memcpy(&h, t, 2);
    return half_to_double(h);
  }
  case EL_FLOAT:
    if (size == 8) {
      double d;
      memcpy(&d, t, 8);
      return d;
    } else {
      float f;
      memcpy(&f, t, 4);
      return (double)f;
    }
  case EL_INT:
    switch (size) {
    case 1: { int8_t v; memcpy(&v, t, 1); return (double)v; }
    case 2: { int16_t v; memcpy(&v, t, 2); return (double)v; }
    case 4: { int32_t v; memcpy(&v, t, 4); return (double)v; }
    default: { int64_t v; memcpy(&v, t, 8); return (double)v; }
    }
  case EL_UINT:
  default:
    switch (size) {
    case 1: { uint8_t v; memcpy(&v, t, 1); return (double)v; }
    case 2: { uint16_t v; memcpy(&v, t, 2); return (double)v; }
    case 4: { uint32_t v; memcpy(&v, t, 4); return (double)v; }
    default: { uint64_t v; memcpy(&v, t, 8); return (double)v; }
    }
  }
}

/* out (R x C) from the elements at base + i * s0 + j * s1, native order. */
#define MX_CONVERT_LOOP(T)                                                    \
  for (Py_ssize_t i = 0; i < R; i++) {                                        \
    const char *row = base + i * s0;                                          \
    double *o = out + i * C;                                                  \
    for (Py_ssize_t j = 0; j < C; j++) {                                      \
      T v;                                                                    \
      memcpy(&v, row + j * s1, sizeof v);                                     \
      o[j] = (double)v;                                                       \
    }                                                                         \
  }

static void convert(const char *base, Py_ssize_t R, Py_ssize_t C,
                    Py_ssize_t s0, Py_ssize_t s1, el_kind_t kind,
                    Py_ssize_t size, int swap, double *out) {
  if (!swap && kind == EL_FLOAT && size == 8) {
    MX_CONVERT_LOOP(double)
  } else if (!swap && kind == EL_FLOAT) {
    MX_CONVERT_LOOP(float)
  } else if (!swap && kind == EL_INT && size == 8) {
    MX_CONVERT_LOOP(int64_t)
  } else if (!swap && kind == EL_INT && size == 4) {
    MX_CONVERT_LOOP(int32_t)
  } else if (!swap && kind == EL_INT && size == 2) {
    MX_CONVERT_LOOP(int16_t)
  } else if (!swap && kind == EL_INT) {
    MX_CONVERT_LOOP(int8_t)
  } else if (!swap && kind == EL_UINT && size == 8) {
    MX_CONVERT_LOOP(uint64_t)
  } else if (!swap && kind == EL_UINT && size == 4) {
    MX_CONVERT_LOOP(uint32_t)
  } else if (!swap && kind == EL_UINT && size == 2) {
    MX_CONVERT_LOOP(uint16_t)
  } else if (!swap && kind == EL_UINT) {
    MX_CONVERT_LOOP(uint8_t)
  } else {
    for (Py_ssize_t i = 0; i < R; i++) {
      for (Py_ssize_t j = 0; j < C; j++) {
        out[i * C + j] = read_any(base + i * s0 + j * s1, kind, size, swap);
      }
    }
  }
}

#undef MX_CONVERT_LOOP

/* "(2, 3, 4)" for the error messages (a new reference). */
static PyObject *shape_text(const Py_buffer *v) {
  PyObject *t = PyTuple_New(v->ndim);
  for (int k = 0; t != NULL && k < v->ndim; k++) {
    PyObject *n = PyLong_FromSsize_t(v->shape != NULL ? v->shape[k] : -1);
    if (n == NULL || PyTuple_SetItem(t, k, n) < 0) { /* steals n */
      Py_CLEAR(t);
    }
  }
  if (t == NULL) {
    return NULL;
  }
  PyObject *s = PyObject_Repr(t);
  Py_DECREF(t);
  return s;
}

int mx_from_buffer_object(mx_state_t *st, PyObject *obj, int as_column,
                          int implicit, mx_t **out) {
  *out = NULL;
  if (!PyObject_CheckBuffer(obj)) {
    if (implicit) {
      return 0;
    }
    MX_TYPE_ERROR0("from_buffer() needs an object that supports the buffer "
                   "protocol (a NumPy array, memoryview, array.array...), "
                   "not '%U'",
                   obj);
    return -1;
  }
  Py_buffer v;
  if (PyObject_GetBuffer(obj, &v, PyBUF_RECORDS_RO) < 0) {
    if (implicit && PyErr_ExceptionMatches(PyExc_BufferError)) {
      PyErr_Clear(); /* e.g. suboffsets: let the sequence protocol try */
      return 0;
    }
    return -1;
  }
  int rc = -1;
  el_kind_t kind;
  int swap = 0;
  if (!parse_format(v.format, v.itemsize, &kind, &swap)) {
    if (implicit) {
      rc = 0;
    } else {
      PyErr_Format(PyExc_TypeError,
                   "cannot make a matrix from a buffer of element format "
                   "'%s' (%zd bytes each): the elements must be numbers "
                   "(float64 'd', float32 'f', float16 'e', signed or "
                   "unsigned integers, bool)",
                   v.format != NULL ? v.format : "B", v.itemsize);
    }
    goto done;
  }
  if (v.ndim == 0 || v.ndim > 2 || v.shape == NULL) {
    PyObject *s = v.ndim > 0 && v.shape != NULL ? shape_text(&v) : NULL;
    if (v.ndim == 0 || v.shape == NULL) {
      PyErr_SetString(PyExc_ValueError,
                      "cannot make a matrix from a 0-D buffer (a single "
                      "number): a matrix is 1-D or 2-D; use "
                      "Matrix(1, 1, value)");
    } else if (s != NULL) {
      PyErr_Format(PyExc_ValueError,
                   "cannot make a matrix from a %d-D buffer of shape %U: a "
                   "matrix is 1-D or 2-D; reshape it first",
                   v.ndim, s);
    }
    Py_XDECREF(s);
    goto done;
  }
  Py_ssize_t R, C, s0, s1;
  if (v.ndim == 1) {
    const Py_ssize_t n = v.shape[0];
    const Py_ssize_t s = v.strides != NULL ? v.strides[0] : v.itemsize;
    R = as_column ? n : 1;
    C = as_column ? 1 : n;
    s0 = as_column ? s : 0;
    s1 = as_column ? 0 : s;
  } else {
    R = v.shape[0];
    C = v.shape[1];
    s0 = v.strides != NULL ? v.strides[0] : C * v.itemsize;
    s1 = v.strides != NULL ? v.strides[1] : v.itemsize;
  }
  if (R < 1 || C < 1) {
    PyObject *s = shape_text(&v);
    if (s != NULL) {
      PyErr_Format(PyExc_ValueError,
                   "cannot make a matrix from an empty buffer of shape %U "
                   "(a matrix has at least 1 row and 1 column)",
                   s);
      Py_DECREF(s);
    }
    goto done;
  }
  mx_t *m = mx_new(st, R, C, 0);
  if (m == NULL) {
    goto done;
  }
  if (!swap && kind == EL_FLOAT && v.itemsize == 8 &&
      PyBuffer_IsContiguous(&v, 'C')) {
    memcpy(MX_DATA(m), v.buf, (size_t)(R * C) * sizeof(double));
  } else {
    convert((const char *)v.buf, R, C, s0, s1, kind, v.itemsize, swap,
            MX_DATA(m));
  }
  *out = m;
  rc = 1;
done:
  PyBuffer_Release(&v);
  return rc;
}
