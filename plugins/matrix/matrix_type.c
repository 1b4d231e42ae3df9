/* matrix_type.c - the Matrix type: construction (also from the random
 * generator), properties, indexing, iteration, repr/str and the method and
 * slot tables.
 *
 * Every entry point that reads or writes a matrix's numbers (or its shape,
 * which lives in the shared record) first calls mx_own(): a matrix that
 * moved to another interpreter raises RuntimeError.
 */
#include "matrix_type.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matrix_args.h"
#include "matrix_buffer.h"
#include "matrix_convert.h"
#include "matrix_ops.h"
#include "matrix_pickle.h"
#include "matrix_view.h"

/* rows x cols from `values`: None -> zeros, a number -> filled, a Matrix
 * or sequence holding rows * cols numbers (flat, or nested of exactly that
 * shape). */
static PyObject *mx_filled(mx_state_t *st, Py_ssize_t rows, Py_ssize_t cols,
                           PyObject *values) {
  if (values == NULL || values == Py_None) {
    return (PyObject *)mx_new(st, rows, cols, 1);
  }
  double d;
  const int r = mx_as_double(values, &d);
  if (r < 0) {
    return NULL;
  }
  if (r == 1) {
    mx_t *m = mx_new(st, rows, cols, 0);
    if (m != NULL) {
      double *p = MX_DATA(m);
      for (Py_ssize_t i = 0; i < rows * cols; i++) {
        p[i] = d;
      }
    }
    return (PyObject *)m;
  }
  if (mx_check(values)) {
    mx_t *v = MX(values);
    if (mx_own(v) < 0) {
      return NULL;
    }
    if (MX_SIZE(v) != rows * cols) {
      mx_raise(MX_ERR_COUNT,
               "Matrix(): values do not fit: shapes (%zd, %zd) and (%zd, %zd) "
               "hold different numbers of elements (%zd values for %zd)",
               MX_ROWS(v), MX_COLS(v), rows, cols, MX_SIZE(v), rows * cols);
      return NULL;
    }
    mx_t *m = mx_new(st, rows, cols, 0);
    if (m != NULL) {
      memcpy(MX_DATA(m), MX_DATA(v), (size_t)(rows * cols) * sizeof(double));
    }
    return (PyObject *)m;
  }
  if (!mx_is_rowlike(values)) {
    MX_TYPE_ERROR0("Matrix(): values must be None, a number, a Matrix or a "
                   "sequence of numbers, not '%U'",
                   values);
    return NULL;
  }
  mx_t *m = mx_from_sequence(st, values, 0);
  if (m == NULL) {
    return NULL;
  }
  const int same = MX_ROWS(m) == rows && MX_COLS(m) == cols;
  const int flat = MX_ROWS(m) == 1 && MX_SIZE(m) == rows * cols;
  if (!same && !flat) {
    mx_raise(MX_ERR_COUNT,
             "Matrix(): values do not fit: shapes (%zd, %zd) and (%zd, %zd): "
             "give rows * columns = %zd numbers, flat or as rows",
             MX_ROWS(m), MX_COLS(m), rows, cols, rows * cols);
    Py_DECREF(m);
    return NULL;
  }
  /* A fresh record nobody else has seen: reshape it. */
  m->buf->rows = rows;
  m->buf->cols = cols;
  return (PyObject *)m;
}

static PyObject *mx_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"rows", "columns", "values", NULL};
  PyObject *a = NULL, *b = NULL, *values = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:Matrix", kwlist, &a, &b,
                                   &values)) {
    return NULL;
  }
  mx_state_t *st = PyType_GetModuleState(type);
  if (st == NULL) {
    return NULL;
  }
  if (b == NULL) {
    if (values != NULL || PyLong_Check(a)) {
      PyErr_SetString(PyExc_TypeError,
                      "Matrix() takes (rows, columns, values=None) or one "
                      "sequence, e.g. Matrix([[1, 2], [3, 4]])");
      return NULL;
    }
    return (PyObject *)mx_from_sequence(st, a, 0);
  }
  Py_ssize_t rows, cols;
  if (mx_parse_dim(a, "rows", &rows) < 0 ||
      mx_parse_dim(b, "columns", &cols) < 0) {
    return NULL;
  }
  return mx_filled(st, rows, cols, values);
}

/* ---- class methods: zeros, ones, vector ---------------------------------- */

static PyObject *constant(PyObject *cls, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames, double value,
                          const char *fname) {
  static const char *const names[] = {"size"};
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)cls);
  if (st == NULL) {
    return NULL;
  }
  Py_ssize_t rows, cols;
  if (nargs == 2 && kwnames == NULL) { /* zeros(rows, columns) */
    if (mx_parse_dim(args[0], "rows", &rows) < 0 ||
        mx_parse_dim(args[1], "columns", &cols) < 0) {
      return NULL;
    }
  } else {
    PyObject *size = NULL;
    if (mx_parse(fname, args, nargs, kwnames, names, 1, 1, &size) < 0) {
      return NULL;
    }
    if (size == NULL) {
      PyErr_Format(PyExc_TypeError,
                   "%s() missing required argument 'size' (a (rows, "
                   "columns) tuple)",
                   fname);
      return NULL;
    }
    if (mx_parse_size(size, fname, &rows, &cols) < 0) {
      return NULL;
    }
  }
  mx_t *m = mx_new(st, rows, cols, value == 0.0);
  if (m != NULL && value != 0.0) {
    double *p = MX_DATA(m);
    for (Py_ssize_t i = 0; i < rows * cols; i++) {
      p[i] = value;
    }
  }
  return (PyObject *)m;
}

static PyObject *mx_meth_zeros(PyObject *cls, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames) {
  return constant(cls, args, nargs, kwnames, 0.0, "zeros");
}

static PyObject *mx_meth_ones(PyObject *cls, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames) {
  return constant(cls, args, nargs, kwnames, 1.0, "ones");
}

static PyObject *mx_meth_vector(PyObject *cls, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames) {
  static const char *const names[] = {"values", "as_column"};
  PyObject *o[2] = {NULL, NULL};
  if (mx_parse("vector", args, nargs, kwnames, names, 2, 2, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "vector() missing required argument 'values'");
    return NULL;
  }
  const int as_column = mx_parse_flag(o[1]);
  if (as_column < 0) {
    return NULL;
  }
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)cls);
  if (st == NULL) {
    return NULL;
  }
  mx_t *m = mx_from_sequence(st, o[0], as_column);
  if (m == NULL) {
    return NULL;
  }
  if (MX_ROWS(m) != 1 && MX_COLS(m) != 1) {
    PyErr_Format(PyExc_ValueError,
                 "vector() needs a flat sequence of numbers (or a vector), "
                 "got values of shape (%zd, %zd)",
                 MX_ROWS(m), MX_COLS(m));
    Py_DECREF(m);
    return NULL;
  }
  const Py_ssize_t n = MX_SIZE(m); /* a fresh record: reorient in place */
  m->buf->rows = as_column ? n : 1;
  m->buf->cols = as_column ? 1 : n;
  return (PyObject *)m;
}

/* ---- random matrices ------------------------------------------------------ */

static PyObject *mx_meth_seed(PyObject *cls, PyObject *value) {
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)cls);
  if (st == NULL) {
    return NULL;
  }
  if (value == Py_None) {
    mx_rng_seed_entropy(&st->rng);
    Py_RETURN_NONE;
  }
  if (!PyLong_Check(value)) {
    MX_TYPE_ERROR0("seed() needs an int or None, not '%U'", value);
    return NULL;
  }
  /* Any int: its low 64 bits (two's complement) are the seed. */
  unsigned long long v = PyLong_AsUnsignedLongLongMask(value);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    return NULL;
  }
  mx_rng_seed(&st->rng, (uint64_t)v);
  Py_RETURN_NONE;
}

/* normal(mean=0.0, stddev=1.0, size=None) / uniform(minval=0.0, maxval=1.0,
 * size=None): a float when size is None, else a Matrix of that size. */
static PyObject *sample(PyObject *cls, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames, int normal) {
  static const char *const normal_names[] = {"mean", "stddev", "size"};
  static const char *const uniform_names[] = {"minval", "maxval", "size"};
  const char *fname = normal ? "normal" : "uniform";
  PyObject *o[3] = {NULL, NULL, NULL};
  if (mx_parse(fname, args, nargs, kwnames,
               normal ? normal_names : uniform_names, 3, 3, o) < 0) {
    return NULL;
  }
  double p[2] = {0.0, 1.0};
  for (int i = 0; i < 2; i++) {
    if (o[i] == NULL) {
      continue;
    }
    int r = mx_as_double(o[i], &p[i]);
    if (r < 0) {
      return NULL;
    }
    if (r == 0) {
      MX_TYPE_ERROR1("%s() parameters must be numbers, not '%U'", fname, o[i]);
      return NULL;
    }
  }
  if (normal && !(p[1] >= 0.0)) {
    PyErr_Format(PyExc_ValueError,
                 "normal() needs stddev >= 0, got %R", o[1]);
    return NULL;
  }
  if (!normal && !(p[1] >= p[0])) {
    PyErr_SetString(PyExc_ValueError,
                    "uniform() needs minval <= maxval");
    return NULL;
  }
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)cls);
  if (st == NULL) {
    return NULL;
  }
  const double span = p[1] - p[0];
  if (o[2] == NULL || o[2] == Py_None) {
    if (normal) {
      return PyFloat_FromDouble(p[0] + p[1] * mx_rng_normal(&st->rng));
    }
    double v = p[0] + span * mx_rng_uniform(&st->rng);
    return PyFloat_FromDouble(v >= p[1] && span > 0 ? nextafter(p[1], p[0])
                                                     : v);
  }
  Py_ssize_t rows, cols;
  if (mx_parse_size(o[2], fname, &rows, &cols) < 0) {
    return NULL;
  }
  mx_t *m = mx_new(st, rows, cols, 0);
  if (m == NULL) {
    return NULL;
  }
  double *d = MX_DATA(m);
  const Py_ssize_t n = rows * cols;
  if (normal) {
    for (Py_ssize_t i = 0; i < n; i++) {
      d[i] = p[0] + p[1] * mx_rng_normal(&st->rng);
    }
  } else {
    const double top = span > 0 ? nextafter(p[1], p[0]) : p[1];
    for (Py_ssize_t i = 0; i < n; i++) {
      const double v = p[0] + span * mx_rng_uniform(&st->rng);
      d[i] = v >= p[1] && span > 0 ? top : v; /* rounding: stay below maxval */
    }
  }
  return (PyObject *)m;
}

static PyObject *mx_meth_normal(PyObject *cls, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames) {
  return sample(cls, args, nargs, kwnames, 1);
}

static PyObject *mx_meth_uniform(PyObject *cls, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames) {
  return sample(cls, args, nargs, kwnames, 0);
}

/* ---- from a buffer --------------------------------------------------------- */

static PyObject *mx_meth_from_buffer(PyObject *cls, PyObject *obj) {
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)cls);
  if (st == NULL) {
    return NULL;
  }
  mx_t *m;
  return mx_from_buffer_object(st, obj, 0, 0, &m) < 0 ? NULL : (PyObject *)m;
}

/* ---- copy ---------------------------------------------------------------- */

static PyObject *mx_meth_copy(PyObject *self, PyObject *Py_UNUSED(unused)) {
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  return (PyObject *)mx_copy(mx_state_of(self), m);
}

static PyObject *mx_meth_tolist(PyObject *self, PyObject *Py_UNUSED(unused)) {
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  PyObject *rows = PyList_New(R);
  for (Py_ssize_t i = 0; rows != NULL && i < R; i++) {
    PyObject *row = PyList_New(C);
    for (Py_ssize_t j = 0; row != NULL && j < C; j++) {
      PyObject *x = PyFloat_FromDouble(MX_DATA(m)[i * C + j]);
      if (x == NULL || PyList_SetItem(row, j, x) < 0) { /* steals x */
        Py_CLEAR(row);
      }
    }
    if (row == NULL || PyList_SetItem(rows, i, row) < 0) { /* steals row */
      Py_CLEAR(rows);
    }
  }
  return rows;
}

static PyObject *mx_meth_deepcopy(PyObject *self, PyObject *memo) {
  (void)memo;
  return mx_meth_copy(self, NULL);
}

/* ---- properties ---------------------------------------------------------- */

static PyObject *get_rows(PyObject *self, void *closure) {
  (void)closure;
  mx_t *m = MX(self);
  return mx_own(m) < 0 ? NULL : PyLong_FromSsize_t(MX_ROWS(m));
}

static PyObject *get_columns(PyObject *self, void *closure) {
  (void)closure;
  mx_t *m = MX(self);
  return mx_own(m) < 0 ? NULL : PyLong_FromSsize_t(MX_COLS(m));
}

static PyObject *get_shape(PyObject *self, void *closure) {
  (void)closure;
  mx_t *m = MX(self);
  return mx_own(m) < 0 ? NULL : Py_BuildValue("(nn)", MX_ROWS(m), MX_COLS(m));
}

static PyObject *get_size(PyObject *self, void *closure) {
  (void)closure;
  mx_t *m = MX(self);
  return mx_own(m) < 0 ? NULL : PyLong_FromSsize_t(MX_SIZE(m));
}

static PyObject *get_T(PyObject *self, void *closure) {
  (void)closure;
  mx_t *m = MX(self);
  return mx_own(m) < 0 ? NULL : mx_transposed(m);
}

static PyObject *get_acquired(PyObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(mx_owned_quiet(MX(self)));
}

/* The address of the shared record: equal before and after a move (no
 * copy).  Not a data access, so not owner-checked; for tests. */
static PyObject *get_address(PyObject *self, void *closure) {
  (void)closure;
  return PyLong_FromVoidPtr(MX(self)->buf);
}

static const char component_names[] = "xyzw";

static PyObject *get_component(PyObject *self, void *closure) {
  const Py_ssize_t k = (Py_ssize_t)(intptr_t)closure;
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  if (k >= MX_SIZE(m)) {
    PyErr_Format(PyExc_IndexError,
                 "a (%zd, %zd) matrix has no '%c' component (it needs at "
                 "least %zd elements)",
                 MX_ROWS(m), MX_COLS(m), component_names[k], k + 1);
    return NULL;
  }
  return PyFloat_FromDouble(MX_DATA(m)[k]);
}

static int set_component(PyObject *self, PyObject *value, void *closure) {
  const Py_ssize_t k = (Py_ssize_t)(intptr_t)closure;
  mx_t *m = MX(self);
  if (value == NULL) {
    PyErr_SetString(PyExc_TypeError, "matrix components cannot be deleted");
    return -1;
  }
  if (mx_own(m) < 0) {
    return -1;
  }
  if (k >= MX_SIZE(m)) {
    PyErr_Format(PyExc_IndexError,
                 "a (%zd, %zd) matrix has no '%c' component (it needs at "
                 "least %zd elements)",
                 MX_ROWS(m), MX_COLS(m), component_names[k], k + 1);
    return -1;
  }
  double d;
  const int r = mx_as_double(value, &d);
  if (r <= 0) {
    if (r == 0) {
      MX_TYPE_ERROR0("a matrix component must be a number, not '%U'", value);
    }
    return -1;
  }
  MX_DATA(m)[k] = d;
  return 0;
}

/* ---- repr / str ---------------------------------------------------------- */

typedef struct {
  char *p;
  size_t len, cap;
} sbuf_t;

static int sb_put(sbuf_t *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
      cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

static int sb_str(sbuf_t *b, const char *s) { return sb_put(b, s, strlen(s)); }

/* %g, as Python's '%g' % v formats it (locale independent). */
static char *fmt_g(double v) {
  return PyOS_double_to_string(v, 'g', 6, 0, NULL); /* PyMem_Free it */
}

static PyObject *not_owned_repr(void) {
  return PyUnicode_FromString("<Matrix not owned by this interpreter>");
}

static PyObject *mx_repr(PyObject *self) {
  mx_t *m = MX(self);
  if (!mx_owned_quiet(m)) {
    return not_owned_repr();
  }
  sbuf_t b = {NULL, 0, 0};
  char head[96];
  snprintf(head, sizeof(head), "Matrix(%zd, %zd, [", MX_ROWS(m), MX_COLS(m));
  int rc = sb_str(&b, head);
  const double *d = MX_DATA(m);
  for (Py_ssize_t i = 0; rc == 0 && i < MX_SIZE(m); i++) {
    char *s = fmt_g(d[i]);
    if (s == NULL) {
      rc = -1;
      break;
    }
    rc = (i > 0 ? sb_str(&b, ", ") : 0) || sb_str(&b, s) ? -1 : 0;
    PyMem_Free(s);
  }
  PyObject *r = NULL;
  if (rc == 0 && sb_str(&b, "])") == 0) {
    r = PyUnicode_FromStringAndSize(b.p, (Py_ssize_t)b.len);
  }
  free(b.p);
  return r;
}

/* NumPy-like: [[1 2 3]\n [4 5 6]], every number right-aligned to the
 * widest. */
static PyObject *mx_str(PyObject *self) {
  mx_t *m = MX(self);
  if (!mx_owned_quiet(m)) {
    return not_owned_repr();
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m), n = R * C;
  char **cells = calloc((size_t)n, sizeof(char *));
  if (cells == NULL) {
    return PyErr_NoMemory();
  }
  PyObject *r = NULL;
  size_t width = 0;
  sbuf_t b = {NULL, 0, 0};
  for (Py_ssize_t i = 0; i < n; i++) {
    cells[i] = fmt_g(MX_DATA(m)[i]);
    if (cells[i] == NULL) {
      goto done;
    }
    const size_t w = strlen(cells[i]);
    width = w > width ? w : width;
  }
  for (Py_ssize_t i = 0; i < R; i++) {
    if (sb_str(&b, i == 0 ? "[[" : " [") < 0) {
      goto done;
    }
    for (Py_ssize_t j = 0; j < C; j++) {
      const char *s = cells[i * C + j];
      const size_t w = strlen(s);
      for (size_t k = w; k < width; k++) {
        if (sb_put(&b, " ", 1) < 0) {
          goto done;
        }
      }
      if (sb_put(&b, s, w) < 0 || (j + 1 < C && sb_put(&b, " ", 1) < 0)) {
        goto done;
      }
    }
    if (sb_str(&b, i + 1 < R ? "]\n" : "]]") < 0) {
      goto done;
    }
  }
  r = PyUnicode_FromStringAndSize(b.p, (Py_ssize_t)b.len);
done:
  for (Py_ssize_t i = 0; i < n; i++) {
    PyMem_Free(cells[i]); /* NULL is fine */
  }
  free(cells);
  free(b.p);
  return r;
}

/* ---- indexing ---------------------------------------------------------------
 * Each axis of a key selects an int (scalar), a slice, or (0.12, fancy
 * indexing) a list of ints; the selection is the outer product of the two
 * axes.  One axis may be a list: m[[0, 2]], m[:, [1, 0]], m[[2, 0], 1:]. */

typedef struct {
  Py_ssize_t start, step, len;
  int scalar;       /* an int index (not a slice or a list) */
  Py_ssize_t *list; /* owned (malloc): the indices of a list, else NULL */
} span_t;

#define SPAN_AT(s, k) ((s)->list != NULL ? (s)->list[k] : (s)->start + (k) * (s)->step)

static span_t full_span(Py_ssize_t n) {
  span_t s = {0, 1, n, 0, NULL};
  return s;
}

static void span_free(span_t *s) {
  free(s->list);
  s->list = NULL;
}

/* A list of indices rather than one int or a slice. */
static int is_index_list(PyObject *key) {
  return !PySlice_Check(key) && !PyIndex_Check(key) && !PyFloat_Check(key) &&
         !PyUnicode_Check(key) && !PyBytes_Check(key) &&
         !PyByteArray_Check(key) && !mx_check(key) && PySequence_Check(key);
}

/* key: an int (negatives count from the end), a slice or a list of ints,
 * over n items; what: "row" / "column". */
static int parse_span(PyObject *key, Py_ssize_t n, const char *what,
                      span_t *out) {
  out->list = NULL;
  if (PySlice_Check(key)) {
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
      return -1;
    }
    const Py_ssize_t len = PySlice_AdjustIndices(n, &start, &stop, step);
    if (len == 0) {
      PyErr_Format(PyExc_IndexError,
                   "the %s slice selects nothing (there are %zd %ss)", what,
                   n, what);
      return -1;
    }
    out->start = start;
    out->step = step;
    out->len = len;
    out->scalar = 0;
    return 0;
  }
  if (is_index_list(key)) {
    Py_ssize_t *idx, k;
    if (mx_index_list("matrix indexing", key, &idx, &k) < 0) {
      return -1;
    }
    if (mx_index_bounds("matrix indexing", idx, k, n,
                        what[0] == 'r' ? "rows" : "columns") < 0) {
      free(idx);
      return -1;
    }
    out->start = 0;
    out->step = 1;
    out->len = k;
    out->scalar = 0;
    out->list = idx;
    return 0;
  }
  if (PyFloat_Check(key) || !PyIndex_Check(key)) {
    MX_TYPE_ERROR0("matrix indices must be integers, slices or lists of "
                   "integers, not '%U'",
                   key);
    return -1;
  }
  Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
  if (i == -1 && PyErr_Occurred()) {
    return -1;
  }
  const Py_ssize_t orig = i;
  if (i < 0) {
    i += n;
  }
  if (i < 0 || i >= n) {
    PyErr_Format(PyExc_IndexError,
                 "%s index %zd is out of range for %zd %ss", what, orig, n,
                 what);
    return -1;
  }
  out->start = i;
  out->step = 1;
  out->len = 1;
  out->scalar = 1;
  return 0;
}

/* Parses m[key] into row and column spans; *two = a tuple key.  On
 * success the caller owns the spans (span_free both). */
static int parse_key(mx_t *m, PyObject *key, span_t *ri, span_t *rj,
                     int *two) {
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  *ri = full_span(R);
  *rj = full_span(C);
  *two = PyTuple_Check(key);
  int rc;
  if (*two) {
    const Py_ssize_t n = PyTuple_Size(key);
    if (n != 2) {
      mx_raise(MX_ERR_KEY,
               "a matrix takes 1 or 2 indices (row, column), got %zd", n);
      return -1;
    }
    PyObject *k0 = PyTuple_GetItem(key, 0), *k1 = PyTuple_GetItem(key, 1);
    if (is_index_list(k0) && is_index_list(k1)) {
      PyErr_SetString(PyExc_IndexError,
                      "a matrix takes a list of indices on one axis at a "
                      "time: select the rows, then the columns "
                      "(m[rows][:, columns])");
      return -1;
    }
    rc = parse_span(k0, R, "row", ri) < 0 || parse_span(k1, C, "column", rj) < 0
             ? -1
             : 0;
  } else {
    rc = parse_span(key, R, "row", ri);
  }
  /* Converting a list of indices ran Python code (iteration, __index__):
   * the matrix must still be ours and the same shape. */
  if (rc == 0 && (ri->list != NULL || rj->list != NULL)) {
    if (mx_own(m) < 0) {
      rc = -1;
    } else if (MX_ROWS(m) != R || MX_COLS(m) != C) {
      PyErr_SetString(PyExc_RuntimeError,
                      "the matrix changed shape while its indices were read");
      rc = -1;
    }
  }
  if (rc < 0) {
    span_free(ri);
    span_free(rj);
  }
  return rc;
}

static PyObject *region_copy(mx_t *m, const span_t *ri, const span_t *rj) {
  mx_t *r = mx_new(mx_state_of((PyObject *)m), ri->len, rj->len, 0);
  if (r == NULL) {
    return NULL;
  }
  const Py_ssize_t C = MX_COLS(m);
  const double *src = MX_DATA(m);
  double *dst = MX_DATA(r);
  for (Py_ssize_t i = 0; i < ri->len; i++) {
    const double *row = src + SPAN_AT(ri, i) * C;
    if (rj->list == NULL && rj->step == 1) {
      memcpy(dst + i * rj->len, row + rj->start,
             (size_t)rj->len * sizeof(double));
    } else {
      for (Py_ssize_t j = 0; j < rj->len; j++) {
        dst[i * rj->len + j] = row[SPAN_AT(rj, j)];
      }
    }
  }
  return (PyObject *)r;
}

/* Row i as a 1 x C matrix, or its value when C == 1. */
static PyObject *row_item(mx_t *m, Py_ssize_t i) {
  if (MX_COLS(m) == 1) {
    return PyFloat_FromDouble(MX_DATA(m)[i]);
  }
  span_t ri = {i, 1, 1, 1, NULL}, rj = full_span(MX_COLS(m));
  return region_copy(m, &ri, &rj);
}

static PyObject *mx_subscript(PyObject *self, PyObject *key) {
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  span_t ri, rj;
  int two;
  if (parse_key(m, key, &ri, &rj, &two) < 0) {
    return NULL;
  }
  PyObject *r;
  if (ri.scalar && (rj.scalar || (!two && MX_COLS(m) == 1))) {
    r = PyFloat_FromDouble(MX_DATA(m)[ri.start * MX_COLS(m) + rj.start]);
  } else {
    r = region_copy(m, &ri, &rj);
  }
  span_free(&ri);
  span_free(&rj);
  return r;
}

/* m[key] = value (scatter assignment with a list of indices: repeated
 * indices are written in order, the last one wins). */
static int mx_ass_subscript(PyObject *self, PyObject *key, PyObject *value) {
  mx_t *m = MX(self);
  if (value == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "matrix elements cannot be deleted (the shape is fixed)");
    return -1;
  }
  if (mx_own(m) < 0) {
    return -1;
  }
  span_t ri, rj;
  int two;
  if (parse_key(m, key, &ri, &rj, &two) < 0) {
    return -1;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  int rc = -1;
  mx_t *v = NULL;
  double d;
  const int r = mx_as_double(value, &d);
  if (r < 0) {
    goto done;
  }
  if (r == 0) {
    if (!mx_check(value) && !mx_is_rowlike(value)) {
      MX_TYPE_ERROR0("can only assign a number, a Matrix or a sequence of "
                     "numbers to matrix elements, not '%U'",
                     value);
      goto done;
    }
    /* A copy: the source may be this very matrix (m[::-1] = m). */
    v = mx_from_sequence(mx_state_of(self), value, 0);
    if (v == NULL) {
      goto done;
    }
  }
  /* Again: the conversions ran arbitrary code. */
  if (mx_own(m) < 0) {
    goto done;
  }
  if (MX_ROWS(m) != R || MX_COLS(m) != C) {
    PyErr_SetString(PyExc_RuntimeError,
                    "the matrix changed shape while the assigned values were "
                    "read");
    goto done;
  }
  double *dst = MX_DATA(m);
  if (v == NULL) { /* a scalar fills the region */
    for (Py_ssize_t i = 0; i < ri.len; i++) {
      double *row = dst + SPAN_AT(&ri, i) * C;
      for (Py_ssize_t j = 0; j < rj.len; j++) {
        row[SPAN_AT(&rj, j)] = d;
      }
    }
    rc = 0;
    goto done;
  }
  const Py_ssize_t vr = MX_ROWS(v), vc = MX_COLS(v);
  Py_ssize_t rs, cs; /* strides into v (0: broadcast) */
  if ((vr == ri.len || vr == 1) && (vc == rj.len || vc == 1)) {
    rs = vr == 1 ? 0 : vc;
    cs = vc == 1 ? 0 : 1;
  } else if ((vr == 1 || vc == 1) && (ri.len == 1 || rj.len == 1) &&
             vr * vc == ri.len * rj.len) {
    /* a vector into a vector region of the same length, either way round */
    rs = rj.len;
    cs = 1;
  } else {
    mx_shape_error("cannot assign values to the selected region", vr, vc,
                   ri.len, rj.len, " differ");
    goto done;
  }
  const double *src = MX_DATA(v);
  for (Py_ssize_t i = 0; i < ri.len; i++) {
    double *row = dst + SPAN_AT(&ri, i) * C;
    for (Py_ssize_t j = 0; j < rj.len; j++) {
      row[SPAN_AT(&rj, j)] = src[i * rs + j * cs];
    }
  }
  rc = 0;
done:
  Py_XDECREF((PyObject *)v);
  span_free(&ri);
  span_free(&rj);
  return rc;
}

static Py_ssize_t mx_length(PyObject *self) {
  mx_t *m = MX(self);
  return mx_own(m) < 0 ? -1 : MX_ROWS(m);
}

/* The sequence protocol, for iter(): rows, or floats when C == 1. */
static PyObject *mx_sq_item(PyObject *self, Py_ssize_t i) {
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  if (i < 0 || i >= MX_ROWS(m)) {
    PyErr_SetString(PyExc_IndexError, "matrix row index out of range");
    return NULL;
  }
  return row_item(m, i);
}

/* ---- the type ------------------------------------------------------------ */

#define FAST (METH_FASTCALL | METH_KEYWORDS)
#define FN(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef mx_methods[] = {
    /* construction */
    {"zeros", FN(mx_meth_zeros), FAST | METH_CLASS,
     "zeros(size)\n--\n\nA (rows, columns) matrix of zeros; also "
     "zeros(rows, columns)."},
    {"ones", FN(mx_meth_ones), FAST | METH_CLASS,
     "ones(size)\n--\n\nA (rows, columns) matrix of ones; also "
     "ones(rows, columns)."},
    {"normal", FN(mx_meth_normal), FAST | METH_CLASS,
     "normal(mean=0.0, stddev=1.0, size=None)\n--\n\nGaussian samples from "
     "this interpreter's generator: a float when size is None, else a "
     "matrix of that (rows, columns) size."},
    {"uniform", FN(mx_meth_uniform), FAST | METH_CLASS,
     "uniform(minval=0.0, maxval=1.0, size=None)\n--\n\nSamples in "
     "[minval, maxval): a float when size is None, else a matrix."},
    {"seed", mx_meth_seed, METH_O | METH_CLASS,
     "seed(value)\n--\n\nSeeds this interpreter's generator (an int; None "
     "reseeds from the clock)."},
    {"vector", FN(mx_meth_vector), FAST | METH_CLASS,
     "vector(values, as_column=False)\n--\n\nA 1 x n row (or n x 1 column) "
     "vector from a flat sequence of numbers."},
    {"from_buffer", mx_meth_from_buffer, METH_O | METH_CLASS,
     "from_buffer(obj)\n--\n\nA new matrix copied from any 1-D (a 1 x n "
     "row) or 2-D buffer of numbers (a NumPy array, memoryview, "
     "array.array...), any strides: one memcpy for C-contiguous float64, "
     "float32 / float16 / ints / bool converted."},
    {"concat", FN(mx_meth_concat), FAST | METH_CLASS,
     "concat(values, axis=0)\n--\n\nStacks matrices (or sequences, as row "
     "vectors): axis 0 stacks rows (equal column counts), axis 1 columns "
     "(equal row counts)."},
    {"allclose", FN(mx_meth_allclose), FAST | METH_CLASS,
     "allclose(lhs, rhs, rtol=1e-05, atol=1e-08, equal_nan=False)\n--\n\n"
     "True when the shapes are equal and every |a - b| <= atol + rtol * "
     "|b|."},
    {"where", FN(mx_meth_where), FAST | METH_CLASS,
     "where(mask, a, b)\n--\n\nElement-wise: a where mask is non-zero, else "
     "b (each a matrix, a sequence or a number; broadcast)."},
    {"copy", mx_meth_copy, METH_NOARGS,
     "copy()\n--\n\nAn independent copy owned by this interpreter."},
    {"tolist", mx_meth_tolist, METH_NOARGS,
     "tolist()\n--\n\nThe values as a list of rows (lists of floats)."},
    {"__copy__", mx_meth_copy, METH_NOARGS, NULL},
    {"__deepcopy__", mx_meth_deepcopy, METH_O, NULL},
    {"__reduce__", mx_meth_reduce, METH_NOARGS, NULL},
    /* reductions */
    {"sum", FN(mx_meth_sum), FAST,
     "sum(axis=None)\n--\n\nSum of all elements (a float), per column "
     "(axis=0: 1 x C) or per row (axis=1: R x 1)."},
    {"mean", FN(mx_meth_mean), FAST, "mean(axis=None)\n--\n\nMean (see sum)."},
    {"min", FN(mx_meth_min), FAST,
     "min(axis=None)\n--\n\nMinimum (see sum); NaN if any element is NaN."},
    {"max", FN(mx_meth_max), FAST,
     "max(axis=None)\n--\n\nMaximum (see sum); NaN if any element is NaN."},
    {"argmin", FN(mx_meth_argmin), FAST,
     "argmin(axis=None)\n--\n\nIndex of the first minimum: a flat int, or "
     "per column / per row indices as a matrix."},
    {"argmax", FN(mx_meth_argmax), FAST,
     "argmax(axis=None)\n--\n\nIndex of the first maximum (see argmin)."},
    {"magnitude", FN(mx_meth_magnitude), FAST,
     "magnitude(axis=None)\n--\n\nL2 norm (see sum)."},
    {"magnitude_squared", FN(mx_meth_magnitude_squared), FAST,
     "magnitude_squared(axis=None)\n--\n\nSquared L2 norm (see sum)."},
    /* vectors */
    {"vecdot", FN(mx_meth_vecdot), FAST,
     "vecdot(other, axis=None)\n--\n\nSum of element-wise products (other "
     "broadcast): a float, or per column / per row."},
    {"cross", FN(mx_meth_cross), FAST,
     "cross(other, axis=None)\n--\n\nCross product of 2-D (a scalar z) or "
     "3-D vectors, single or batched along rows / columns."},
    {"normalize", FN(mx_meth_normalize), FAST,
     "normalize(axis=None, in_place=False)\n--\n\nDivides by the total, "
     "per-column (axis=0) or per-row (axis=1) magnitude; zero stays zero."},
    {"perpendicular", FN(mx_meth_perpendicular), FAST,
     "perpendicular(axis=None, in_place=False)\n--\n\n(x, y) -> (-y, x) for "
     "each 2-D vector."},
    {"angle", FN(mx_meth_angle), FAST,
     "angle(axis=None)\n--\n\natan2(y, x) of each 2-D vector."},
    /* element-wise */
    {"transpose", FN(mx_meth_transpose), FAST,
     "transpose(in_place=False)\n--\n\nThe transpose (new, or self "
     "reshaped in place)."},
    {"ceil", FN(mx_meth_ceil), FAST, "ceil(in_place=False, *, out=None)\n--\n\n"},
    {"floor", FN(mx_meth_floor), FAST, "floor(in_place=False, *, out=None)\n--\n\n"},
    {"round", FN(mx_meth_round), FAST,
     "round(in_place=False, *, out=None)\n--\n\nRounds half to even."},
    {"negate", FN(mx_meth_negate), FAST, "negate(in_place=False, *, out=None)\n--\n\n"},
    {"abs", FN(mx_meth_abs), FAST, "abs(in_place=False, *, out=None)\n--\n\n"},
    {"sqrt", FN(mx_meth_sqrt), FAST,
     "sqrt(in_place=False, *, out=None)\n--\n\nSquare roots (NaN for negatives)."},
    {"clip", FN(mx_meth_clip), FAST,
     "clip(min_or_maxval=None, maxval=None, *, min=None, max=None, out=None)\n--\n\n"
     "A copy clamped to [a, b] (clip(a, b)), [0, a] (clip(a)), or to the "
     "given min= / max= keywords (either may be omitted)."},
    {"fma", FN(mx_meth_fma), FAST,
     "fma(b, c, *, out=None)\n--\n\nself * b + c with one rounding (fused), "
     "broadcast."},
    {"take", FN(mx_meth_take), FAST,
     "take(indices, axis=0)\n--\n\nThe listed rows (axis=0) or columns "
     "(axis=1), in order, repeats allowed; axis=None takes flat elements "
     "as a row vector."},
    {"select", FN(mx_meth_take), FAST,
     "select(indices, axis=0)\n--\n\nAlias of take()."},
    {"row_view", mx_meth_row_view, METH_O,
     "row_view(i)\n--\n\nA MatrixView of row i: reads and writes go to this "
     "matrix."},
    {"column_view", mx_meth_column_view, METH_O,
     "column_view(j)\n--\n\nA MatrixView of column j."},
    {"put", FN(mx_meth_put), FAST,
     "put(indices, values, axis=0, accumulate=False)\n--\n\nWrites values "
     "(broadcast to the shape take(indices, axis) has) into the listed rows, "
     "columns or (axis=None) flat elements; accumulate=True adds instead, "
     "repeated indices adding up.  Returns None."},
    {"add", FN(mx_meth_add), FAST,
     "add(other, *, out=None)\n--\n\nself + other (broadcast), into out= "
     "when given (a Matrix of the result's shape; it may be self)."},
    {"subtract", FN(mx_meth_subtract), FAST,
     "subtract(other, *, out=None)\n--\n\nself - other (see add)."},
    {"multiply", FN(mx_meth_multiply), FAST,
     "multiply(other, *, out=None)\n--\n\nself * other, element-wise (see "
     "add)."},
    {"divide", FN(mx_meth_divide), FAST,
     "divide(other, *, out=None)\n--\n\nself / other (see add)."},
    {"scaled_add", FN(mx_meth_scaled_add), FAST,
     "scaled_add(s, x, in_place=False, *, out=None)\n--\n\nself + s * x "
     "(x broadcast): a new matrix, self (in_place=True) or out=."},
    {"less", FN(mx_meth_less), FAST, "less(other)\n--\n\n1.0 where self < "
                                     "other, else 0.0 (broadcast)."},
    {"less_equal", FN(mx_meth_less_equal), FAST, "less_equal(other)\n--\n\n"},
    {"greater", FN(mx_meth_greater), FAST, "greater(other)\n--\n\n"},
    {"greater_equal", FN(mx_meth_greater_equal), FAST,
     "greater_equal(other)\n--\n\n"},
    {"equal", FN(mx_meth_equal), FAST, "equal(other)\n--\n\n"},
    {"not_equal", FN(mx_meth_not_equal), FAST, "not_equal(other)\n--\n\n"},
    {NULL, NULL, 0, NULL},
};

#define COMPONENT(c, i)                                                       \
  {#c, get_component, set_component,                                          \
   "Flat element " #i " (IndexError when the matrix is smaller).",            \
   (void *)(intptr_t)(i)}

static PyGetSetDef mx_getset[] = {
    {"rows", get_rows, NULL, "Number of rows.", NULL},
    {"columns", get_columns, NULL, "Number of columns.", NULL},
    {"shape", get_shape, NULL, "(rows, columns).", NULL},
    {"size", get_size, NULL, "rows * columns.", NULL},
    {"T", get_T, NULL, "The transpose (a new matrix).", NULL},
    {"length", mx_get_length, NULL, "The Frobenius norm (a float).", NULL},
    {"view", mx_get_view, NULL,
     "m.view[i], m.view[i, cols], m.view[rows, j]: MatrixViews of a row or "
     "a column (cols / rows: slices).",
     NULL},
    {"acquired", get_acquired, NULL,
     "True while this interpreter owns the matrix (False once it moved).",
     NULL},
    {"_buffer_address", get_address, NULL,
     "Address of the shared buffer (identifies it across moves).", NULL},
    COMPONENT(x, 0),
    COMPONENT(y, 1),
    COMPONENT(z, 2),
    COMPONENT(w, 3),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot mx_slots[] = {
    {Py_tp_new, mx_tp_new},
    {Py_tp_dealloc, mx_dealloc},
    {Py_tp_repr, mx_repr},
    {Py_tp_str, mx_str},
    {Py_tp_methods, mx_methods},
    {Py_tp_getset, mx_getset},
    {Py_tp_richcompare, mx_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_bf_getbuffer, mx_getbuffer},
    {Py_bf_releasebuffer, mx_releasebuffer},
    {Py_mp_length, mx_length},
    {Py_mp_subscript, mx_subscript},
    {Py_mp_ass_subscript, mx_ass_subscript},
    {Py_sq_length, mx_length},
    {Py_sq_item, mx_sq_item},
    {Py_nb_add, mx_nb_add},
    {Py_nb_subtract, mx_nb_subtract},
    {Py_nb_multiply, mx_nb_multiply},
    {Py_nb_true_divide, mx_nb_true_divide},
    {Py_nb_inplace_add, mx_nb_inplace_add},
    {Py_nb_inplace_subtract, mx_nb_inplace_subtract},
    {Py_nb_inplace_multiply, mx_nb_inplace_multiply},
    {Py_nb_inplace_true_divide, mx_nb_inplace_true_divide},
    {Py_nb_matrix_multiply, mx_nb_matmul},
    {Py_nb_inplace_matrix_multiply, mx_nb_inplace_matmul},
    {Py_nb_negative, mx_nb_negative},
    {Py_nb_positive, mx_nb_positive},
    {Py_nb_absolute, mx_nb_absolute},
    {Py_tp_doc,
     "Matrix(rows, columns, values=None)\nMatrix(sequence)\n--\n\n"
     "A dense rows x columns matrix of float64, row-major.  values: None "
     "(zeros), a number (filled), or rows * columns numbers, flat or as "
     "rows; Matrix([[1, 2], [3, 4]]) takes the shape from nested rows.\n\n"
     "A matrix belongs to one interpreter at a time: putting it in a Cown, "
     "sending it, capturing or returning it moves its buffer (no copy) and "
     "the old object raises RuntimeError; copy() first to keep one."},
    {0, NULL},
};

static PyType_Spec mx_spec = {
    .name = "bocpy.plugins.matrix.Matrix",
    .basicsize = sizeof(mx_t),
    /* not subclassable: the transport only moves exact types */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = mx_slots,
};

PyTypeObject *mx_type_create(PyObject *module) {
  return (PyTypeObject *)PyType_FromModuleAndSpec(module, &mx_spec, NULL);
}
