/* matrix_view.c - MatrixView and m.view (see matrix_view.h). */
#include "matrix_view.h"

#include <string.h>

#include "matrix_args.h"
#include "matrix_convert.h"

/* ---- the view ---------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  PyObject *src;         /* strong: the source Matrix (this interpreter's) */
  Py_ssize_t rows, cols; /* the source's shape when the view was made */
  Py_ssize_t start;      /* flat index of element 0 in the source */
  Py_ssize_t stride;     /* flat distance between elements (may be < 0) */
  Py_ssize_t len;        /* >= 1 */
  Py_ssize_t index;      /* the row (is_row) or column it lies in */
  int is_row;
  Py_ssize_t bshape[2], bstrides[2]; /* handed to buffer exports */
} mxv_t;

#define MXV(o) ((mxv_t *)(o))

/* The source's data when this interpreter owns it and its shape is the
 * one the view was made for; NULL with RuntimeError otherwise. */
static double *view_data(mxv_t *v) {
  mx_t *m = MX(v->src);
  if (mx_own(m) < 0) {
    return NULL;
  }
  if (MX_ROWS(m) != v->rows || MX_COLS(m) != v->cols) {
    PyErr_Format(PyExc_RuntimeError,
                 "this MatrixView was made for a (%zd, %zd) matrix, which is "
                 "now (%zd, %zd) (transposed in place): make a new view",
                 v->rows, v->cols, MX_ROWS(m), MX_COLS(m));
    return NULL;
  }
  return MX_DATA(m) + v->start;
}

static PyObject *view_new(mx_state_t *st, PyObject *src, Py_ssize_t start,
                          Py_ssize_t stride, Py_ssize_t len, Py_ssize_t index,
                          int is_row) {
  mxv_t *v = (mxv_t *)PyType_GenericAlloc(st->view_type, 0);
  if (v == NULL) {
    return NULL;
  }
  v->src = Py_NewRef(src);
  v->rows = MX_ROWS(MX(src));
  v->cols = MX_COLS(MX(src));
  v->start = start;
  v->stride = stride;
  v->len = len;
  v->index = index;
  v->is_row = is_row;
  return (PyObject *)v;
}

static void view_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  Py_CLEAR(MXV(self)->src);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

/* An independent Matrix with the view's numbers: 1 x n for a row view,
 * n x 1 for a column view. */
static PyObject *view_copy(PyObject *self, PyObject *Py_UNUSED(unused)) {
  mxv_t *v = MXV(self);
  const double *d = view_data(v);
  if (d == NULL) {
    return NULL;
  }
  mx_t *r = mx_new(mx_state_of(v->src), v->is_row ? 1 : v->len,
                   v->is_row ? v->len : 1, 0);
  if (r != NULL) {
    for (Py_ssize_t k = 0; k < v->len; k++) {
      MX_DATA(r)[k] = d[k * v->stride];
    }
  }
  return (PyObject *)r;
}

static PyObject *view_tolist(PyObject *self, PyObject *Py_UNUSED(unused)) {
  mxv_t *v = MXV(self);
  const double *d = view_data(v);
  if (d == NULL) {
    return NULL;
  }
  PyObject *l = PyList_New(v->len);
  for (Py_ssize_t k = 0; l != NULL && k < v->len; k++) {
    PyObject *x = PyFloat_FromDouble(d[k * v->stride]);
    if (x == NULL || PyList_SetItem(l, k, x) < 0) { /* steals x */
      Py_CLEAR(l);
    }
  }
  return l;
}

static PyObject *view_reduce(PyObject *self, PyObject *Py_UNUSED(unused)) {
  (void)self;
  PyErr_SetString(PyExc_TypeError,
                  "a MatrixView cannot be pickled or sent to another "
                  "interpreter (it aliases a matrix that stays here): send "
                  "view.copy(), an independent Matrix");
  return NULL;
}

static Py_ssize_t view_length(PyObject *self) {
  mxv_t *v = MXV(self);
  return view_data(v) == NULL ? -1 : v->len;
}

/* i: an int index (negatives count from the end) -> 0 <= *out < len. */
static int view_index(mxv_t *v, PyObject *key, Py_ssize_t *out) {
  Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
  if (i == -1 && PyErr_Occurred()) {
    return -1;
  }
  const Py_ssize_t orig = i;
  if (i < 0) {
    i += v->len;
  }
  if (i < 0 || i >= v->len) {
    PyErr_Format(PyExc_IndexError,
                 "MatrixView index %zd is out of range for %zd elements", orig,
                 v->len);
    return -1;
  }
  *out = i;
  return 0;
}

static PyObject *view_sq_item(PyObject *self, Py_ssize_t i) {
  mxv_t *v = MXV(self);
  const double *d = view_data(v);
  if (d == NULL) {
    return NULL;
  }
  if (i < 0 || i >= v->len) {
    PyErr_SetString(PyExc_IndexError, "MatrixView index out of range");
    return NULL;
  }
  return PyFloat_FromDouble(d[i * v->stride]);
}

/* v[i] -> float; v[a:b:c] -> a new Matrix (same orientation). */
static PyObject *view_subscript(PyObject *self, PyObject *key) {
  mxv_t *v = MXV(self);
  if (PySlice_Check(key)) {
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
      return NULL;
    }
    const double *d = view_data(v);
    if (d == NULL) {
      return NULL;
    }
    const Py_ssize_t n = PySlice_AdjustIndices(v->len, &start, &stop, step);
    if (n == 0) {
      PyErr_Format(PyExc_IndexError,
                   "the slice selects nothing (the view has %zd elements)",
                   v->len);
      return NULL;
    }
    mx_t *r = mx_new(mx_state_of(v->src), v->is_row ? 1 : n,
                     v->is_row ? n : 1, 0);
    if (r != NULL) {
      for (Py_ssize_t k = 0; k < n; k++) {
        MX_DATA(r)[k] = d[(start + k * step) * v->stride];
      }
    }
    return (PyObject *)r;
  }
  if (PyFloat_Check(key) || !PyIndex_Check(key)) {
    MX_TYPE_ERROR0("MatrixView indices must be integers or slices, not '%U'",
                   key);
    return NULL;
  }
  Py_ssize_t i;
  if (view_index(v, key, &i) < 0) {
    return NULL;
  }
  const double *d = view_data(v);
  return d == NULL ? NULL : PyFloat_FromDouble(d[i * v->stride]);
}

/* v[i] = number; v[slice] = number or a sequence / Matrix / view of the
 * slice's length (written through to the source). */
static int view_ass_subscript(PyObject *self, PyObject *key, PyObject *value) {
  mxv_t *v = MXV(self);
  if (value == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "MatrixView elements cannot be deleted (the shape is "
                    "fixed)");
    return -1;
  }
  Py_ssize_t start, step, n;
  if (PySlice_Check(key)) {
    Py_ssize_t stop;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
      return -1;
    }
    n = PySlice_AdjustIndices(v->len, &start, &stop, step);
  } else if (PyFloat_Check(key) || !PyIndex_Check(key)) {
    MX_TYPE_ERROR0("MatrixView indices must be integers or slices, not '%U'",
                   key);
    return -1;
  } else {
    if (view_index(v, key, &start) < 0) {
      return -1;
    }
    step = 1;
    n = 1;
  }
  double x;
  const int r = mx_as_double(value, &x);
  if (r < 0) {
    return -1;
  }
  mx_t *src = NULL; /* a copy of the values (they may alias the view) */
  if (r == 0) {
    if (!PySlice_Check(key)) {
      MX_TYPE_ERROR0("a MatrixView element must be a number, not '%U'",
                     value);
      return -1;
    }
    if (!mx_is_rowlike(value)) {
      MX_TYPE_ERROR0("can only assign a number or a sequence of numbers to a "
                     "MatrixView slice, not '%U'",
                     value);
      return -1;
    }
    src = mx_from_sequence(mx_state_of(v->src), value, 0);
    if (src == NULL) {
      return -1;
    }
    if ((MX_ROWS(src) != 1 && MX_COLS(src) != 1) || MX_SIZE(src) != n) {
      PyErr_Format(PyExc_ValueError,
                   "cannot assign %zd x %zd values to a MatrixView slice of "
                   "%zd elements",
                   MX_ROWS(src), MX_COLS(src), n);
      Py_DECREF((PyObject *)src);
      return -1;
    }
  }
  double *d = view_data(v); /* after the conversions, which ran code */
  if (d != NULL) {
    for (Py_ssize_t k = 0; k < n; k++) {
      d[(start + k * step) * v->stride] = src != NULL ? MX_DATA(src)[k] : x;
    }
  }
  Py_XDECREF((PyObject *)src);
  return d == NULL ? -1 : 0;
}

static PyObject *view_repr(PyObject *self) {
  mxv_t *v = MXV(self);
  mx_t *m = MX(v->src);
  if (!mx_owned_quiet(m) || MX_ROWS(m) != v->rows || MX_COLS(m) != v->cols) {
    return PyUnicode_FromString(
        "<MatrixView of a matrix not owned by this interpreter or reshaped>");
  }
  PyObject *l = view_tolist(self, NULL);
  if (l == NULL) {
    return NULL;
  }
  PyObject *r = PyUnicode_FromFormat("MatrixView(%s %zd of a (%zd, %zd) "
                                     "matrix: %R)",
                                     v->is_row ? "row" : "column", v->index,
                                     v->rows, v->cols, l);
  Py_DECREF(l);
  return r;
}

/* Properties. */
static PyObject *view_get_rows(PyObject *self, void *c) {
  (void)c;
  mxv_t *v = MXV(self);
  return view_data(v) == NULL ? NULL
                              : PyLong_FromSsize_t(v->is_row ? 1 : v->len);
}
static PyObject *view_get_columns(PyObject *self, void *c) {
  (void)c;
  mxv_t *v = MXV(self);
  return view_data(v) == NULL ? NULL
                              : PyLong_FromSsize_t(v->is_row ? v->len : 1);
}
static PyObject *view_get_size(PyObject *self, void *c) {
  (void)c;
  mxv_t *v = MXV(self);
  return view_data(v) == NULL ? NULL : PyLong_FromSsize_t(v->len);
}
static PyObject *view_get_shape(PyObject *self, void *c) {
  (void)c;
  mxv_t *v = MXV(self);
  if (view_data(v) == NULL) {
    return NULL;
  }
  return Py_BuildValue("(nn)", v->is_row ? (Py_ssize_t)1 : v->len,
                       v->is_row ? v->len : (Py_ssize_t)1);
}
static PyObject *view_get_is_row(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(MXV(self)->is_row);
}
static PyObject *view_get_read_only(PyObject *self, void *c) {
  (void)c;
  (void)self;
  Py_RETURN_FALSE; /* views write through */
}
static PyObject *view_get_matrix(PyObject *self, void *c) {
  (void)c;
  return Py_NewRef(MXV(self)->src);
}

/* The buffer protocol: a (1, n) or (n, 1) float64 window with strides, so
 * that NumPy, Matrix(v) and the Matrix operators keep its orientation.
 * The export counts on the source record: while it lives the source
 * cannot move or change shape, as for its own exports. */
static int view_getbuffer(PyObject *self, Py_buffer *view, int flags) {
  mxv_t *v = MXV(self);
  view->obj = NULL;
  double *d = view_data(v);
  if (d == NULL) {
    return -1;
  }
  const int contiguous = v->stride == 1 || v->len == 1;
  const int wants_contig =
      (flags & PyBUF_STRIDES) != PyBUF_STRIDES ||
      (flags & (PyBUF_C_CONTIGUOUS | PyBUF_F_CONTIGUOUS |
                PyBUF_ANY_CONTIGUOUS) & ~PyBUF_STRIDES) != 0;
  if (!contiguous && wants_contig) {
    PyErr_SetString(PyExc_BufferError,
                    "this MatrixView is strided (a column, or a slice with a "
                    "step): ask for a strided buffer, or copy() it");
    return -1;
  }
  const Py_ssize_t es = v->stride * (Py_ssize_t)sizeof(double);
  v->bshape[0] = v->is_row ? 1 : v->len;
  v->bshape[1] = v->is_row ? v->len : 1;
  v->bstrides[0] = v->is_row ? v->len * es : es;
  v->bstrides[1] = v->is_row ? es : (Py_ssize_t)sizeof(double);
  view->buf = d;
  view->obj = Py_NewRef(self);
  view->len = v->len * (Py_ssize_t)sizeof(double);
  view->readonly = 0;
  view->itemsize = (Py_ssize_t)sizeof(double);
  view->format = (flags & PyBUF_FORMAT) ? (char *)"d" : NULL;
  view->ndim = (flags & PyBUF_ND) == PyBUF_ND ? 2 : 1;
  view->shape = (flags & PyBUF_ND) == PyBUF_ND ? v->bshape : NULL;
  view->strides =
      (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? v->bstrides : NULL;
  view->suboffsets = NULL;
  view->internal = NULL;
  MX(v->src)->buf->exports++; /* owner only: we hold the GIL */
  return 0;
}

static void view_releasebuffer(PyObject *self, Py_buffer *view) {
  (void)view;
  MX(MXV(self)->src)->buf->exports--;
}

/* Arithmetic: each view operand becomes a new Matrix, then the Matrix
 * operator runs (so nothing is written through, and v += x rebinds v). */
static int is_view(PyObject *o) {
  return PyType_GetSlot(Py_TYPE(o), Py_tp_dealloc) == (void *)view_dealloc;
}

static PyObject *materialise(PyObject *o) {
  return is_view(o) ? view_copy(o, NULL) : Py_NewRef(o);
}

static PyObject *view_binop(PyObject *a, PyObject *b,
                            PyObject *(*op)(PyObject *, PyObject *)) {
  PyObject *x = materialise(a);
  if (x == NULL) {
    return NULL;
  }
  PyObject *y = materialise(b);
  if (y == NULL) {
    Py_DECREF(x);
    return NULL;
  }
  PyObject *r = op(x, y);
  Py_DECREF(x);
  Py_DECREF(y);
  return r;
}

static PyObject *view_add(PyObject *a, PyObject *b) {
  return view_binop(a, b, PyNumber_Add);
}
static PyObject *view_sub(PyObject *a, PyObject *b) {
  return view_binop(a, b, PyNumber_Subtract);
}
static PyObject *view_mul(PyObject *a, PyObject *b) {
  return view_binop(a, b, PyNumber_Multiply);
}
static PyObject *view_div(PyObject *a, PyObject *b) {
  return view_binop(a, b, PyNumber_TrueDivide);
}
static PyObject *view_matmul(PyObject *a, PyObject *b) {
  return view_binop(a, b, PyNumber_MatrixMultiply);
}
static PyObject *view_neg(PyObject *a) {
  PyObject *x = materialise(a);
  PyObject *r = x != NULL ? PyNumber_Negative(x) : NULL;
  Py_XDECREF(x);
  return r;
}
static PyObject *view_abs(PyObject *a) {
  PyObject *x = materialise(a);
  PyObject *r = x != NULL ? PyNumber_Absolute(x) : NULL;
  Py_XDECREF(x);
  return r;
}

static PyMethodDef view_methods[] = {
    {"copy", view_copy, METH_NOARGS,
     "copy()\n--\n\nAn independent Matrix: 1 x n for a row view, n x 1 for "
     "a column view."},
    {"tolist", view_tolist, METH_NOARGS,
     "tolist()\n--\n\nThe values as a list of floats."},
    {"__copy__", view_copy, METH_NOARGS, NULL},
    {"__reduce__", view_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef view_getset[] = {
    {"rows", view_get_rows, NULL, "1 for a row view, else its length.", NULL},
    {"columns", view_get_columns, NULL,
     "Its length for a row view, else 1.", NULL},
    {"size", view_get_size, NULL, "The number of elements.", NULL},
    {"shape", view_get_shape, NULL, "(rows, columns).", NULL},
    {"is_row", view_get_is_row, NULL,
     "True for a window onto a row, False for a column.", NULL},
    {"read_only", view_get_read_only, NULL,
     "False: writes go through to the matrix.", NULL},
    {"matrix", view_get_matrix, NULL, "The source Matrix.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot view_slots[] = {
    {Py_tp_dealloc, view_dealloc},
    {Py_tp_repr, view_repr},
    {Py_tp_methods, view_methods},
    {Py_tp_getset, view_getset},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_bf_getbuffer, view_getbuffer},
    {Py_bf_releasebuffer, view_releasebuffer},
    {Py_mp_length, view_length},
    {Py_mp_subscript, view_subscript},
    {Py_mp_ass_subscript, view_ass_subscript},
    {Py_sq_length, view_length},
    {Py_sq_item, view_sq_item},
    {Py_nb_add, view_add},
    {Py_nb_subtract, view_sub},
    {Py_nb_multiply, view_mul},
    {Py_nb_true_divide, view_div},
    {Py_nb_matrix_multiply, view_matmul},
    {Py_nb_negative, view_neg},
    {Py_nb_absolute, view_abs},
    {Py_tp_doc,
     "A 1-D read/write window onto one row or column of a Matrix (from "
     "m.row_view(i), m.column_view(j) or m.view[...]).  It aliases the "
     "matrix (writes go through), keeps it alive, cannot be pickled or sent "
     "(copy() it), and arithmetic on it gives a new Matrix.  Not "
     "constructible directly."},
    {0, NULL},
};

static PyType_Spec view_spec = {
    .name = "bocpy.plugins.matrix.MatrixView",
    .basicsize = sizeof(mxv_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = view_slots,
};

/* ---- making views ------------------------------------------------------------ */

/* One axis index: 0 <= *out < n (negatives from the end). */
static int axis_index(PyObject *key, Py_ssize_t n, const char *what,
                      Py_ssize_t *out) {
  if (PyFloat_Check(key) || PyBool_Check(key) || !PyIndex_Check(key)) {
    MX_TYPE_ERROR1("the %s of a view must be an int, not '%U'", what, key);
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
    PyErr_Format(PyExc_IndexError, "%s index %zd is out of range for %zd %ss",
                 what, orig, n, what);
    return -1;
  }
  *out = i;
  return 0;
}

/* A slice over n items: start, step, len (>= 1). */
static int axis_slice(PyObject *key, Py_ssize_t n, const char *what,
                      Py_ssize_t *start, Py_ssize_t *step, Py_ssize_t *len) {
  Py_ssize_t stop;
  if (PySlice_Unpack(key, start, &stop, step) < 0) {
    return -1;
  }
  *len = PySlice_AdjustIndices(n, start, &stop, *step);
  if (*len == 0) {
    PyErr_Format(PyExc_IndexError,
                 "the %s slice selects nothing (there are %zd %ss)", what, n,
                 what);
    return -1;
  }
  return 0;
}

/* Row i (columns: a slice or NULL for all) of src. */
static PyObject *make_row(PyObject *src, PyObject *ikey, PyObject *cols) {
  mx_t *m = MX(src);
  Py_ssize_t i, start = 0, step = 1, len;
  if (mx_own(m) < 0 || axis_index(ikey, MX_ROWS(m), "row", &i) < 0) {
    return NULL;
  }
  len = MX_COLS(m);
  if (cols != NULL && axis_slice(cols, MX_COLS(m), "column", &start, &step,
                                 &len) < 0) {
    return NULL;
  }
  if (mx_own(m) < 0) { /* the indices ran code */
    return NULL;
  }
  return view_new(mx_state_of(src), src, i * MX_COLS(m) + start, step, len, i,
                  1);
}

/* Column j (rows: a slice or NULL for all) of src. */
static PyObject *make_column(PyObject *src, PyObject *jkey, PyObject *rows) {
  mx_t *m = MX(src);
  Py_ssize_t j, start = 0, step = 1, len;
  if (mx_own(m) < 0 || axis_index(jkey, MX_COLS(m), "column", &j) < 0) {
    return NULL;
  }
  len = MX_ROWS(m);
  if (rows != NULL &&
      axis_slice(rows, MX_ROWS(m), "row", &start, &step, &len) < 0) {
    return NULL;
  }
  if (mx_own(m) < 0) {
    return NULL;
  }
  return view_new(mx_state_of(src), src, start * MX_COLS(m) + j,
                  step * MX_COLS(m), len, j, 0);
}

PyObject *mx_meth_row_view(PyObject *self, PyObject *arg) {
  return make_row(self, arg, NULL);
}

PyObject *mx_meth_column_view(PyObject *self, PyObject *arg) {
  return make_column(self, arg, NULL);
}

/* ---- m.view -------------------------------------------------------------------
 * m.view[i] (row i), m.view[i, cols] (row i, a column slice), m.view[rows,
 * j] (column j, a row slice). */

typedef struct {
  PyObject_HEAD
  PyObject *src; /* strong: the Matrix */
} mxi_t;

static void indexer_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  Py_CLEAR(((mxi_t *)self)->src);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *indexer_subscript(PyObject *self, PyObject *key) {
  PyObject *src = ((mxi_t *)self)->src;
  if (!PyTuple_Check(key)) {
    return make_row(src, key, NULL);
  }
  if (PyTuple_Size(key) != 2) {
    mx_raise(MX_ERR_KEY, "m.view takes 1 or 2 indices (row, column), got %zd",
             PyTuple_Size(key));
    return NULL;
  }
  PyObject *a = PyTuple_GetItem(key, 0), *b = PyTuple_GetItem(key, 1);
  if (PySlice_Check(a) && !PySlice_Check(b)) {
    return make_column(src, b, a);
  }
  if (!PySlice_Check(a) && PySlice_Check(b)) {
    return make_row(src, a, b);
  }
  if (!PySlice_Check(a) && !PySlice_Check(b)) {
    /* one element: a row view of length 1 */
    mx_t *m = MX(src);
    Py_ssize_t i, j;
    if (mx_own(m) < 0 || axis_index(a, MX_ROWS(m), "row", &i) < 0 ||
        axis_index(b, MX_COLS(m), "column", &j) < 0 || mx_own(m) < 0) {
      return NULL;
    }
    return view_new(mx_state_of(src), src, i * MX_COLS(m) + j, 1, 1, i, 1);
  }
  PyErr_SetString(PyExc_TypeError,
                  "a MatrixView is 1-D: m.view[i, cols] or m.view[rows, j] "
                  "(one of the two must be an int)");
  return NULL;
}

static PyType_Slot indexer_slots[] = {
    {Py_tp_dealloc, indexer_dealloc},
    {Py_mp_subscript, indexer_subscript},
    {Py_tp_doc, "m.view[i], m.view[i, cols], m.view[rows, j]: MatrixViews."},
    {0, NULL},
};

static PyType_Spec indexer_spec = {
    .name = "bocpy.plugins.matrix._MatrixViewIndexer",
    .basicsize = sizeof(mxi_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = indexer_slots,
};

PyObject *mx_get_view(PyObject *self, void *closure) {
  (void)closure;
  if (mx_own(MX(self)) < 0) {
    return NULL;
  }
  mxi_t *ix = (mxi_t *)PyType_GenericAlloc(mx_state_of(self)->indexer_type, 0);
  if (ix != NULL) {
    ix->src = Py_NewRef(self);
  }
  return (PyObject *)ix;
}

int mx_view_types_create(PyObject *module, mx_state_t *st) {
  st->view_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &view_spec, NULL);
  if (st->view_type == NULL || PyModule_AddType(module, st->view_type) < 0) {
    return -1;
  }
  st->indexer_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &indexer_spec, NULL);
  return st->indexer_type == NULL ? -1 : 0;
}
