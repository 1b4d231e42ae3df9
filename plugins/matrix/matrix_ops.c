/* matrix_ops.c - Matrix arithmetic: operators with broadcasting, matmul,
 * reductions, element-wise and vector methods.
 *
 * Broadcasting (2-D NumPy rules): each dimension of the two operands is
 * equal, or one of them is 1 and is repeated.  So a 1 x C row vector
 * applies to every row, an R x 1 column vector to every column, a 1 x 1
 * matrix or a number to every element, and a 1 x C with an R x 1 gives the
 * R x C "outer" result.  Lists, tuples and other sequences (not str /
 * bytes) are coerced to matrices (a flat one is a 1 x n row).  Anything else is a TypeError; shapes that do not
 * broadcast are a ValueError naming both shapes.
 *
 * The numbers are crunched in matrix_kernels.c; this file validates,
 * allocates and dispatches.
 */
#include "matrix_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matrix_args.h"
#include "matrix_buffer.h"
#include "matrix_convert.h"
#include "matrix_kernels.h"

/* ---- operands ------------------------------------------------------------ */

typedef struct {
  const double *p;
  Py_ssize_t rows, cols;
  double scalar; /* a number operand: p points here (do not copy the struct) */
  mx_t *tmp;     /* owned: the matrix made from a list / tuple */
} arg_t;

#define ARG_SCALAR 1 /* numbers are 1 x 1 operands */
#define ARG_SEQ 2    /* sequences (lists, tuples, ...) are coerced */
#define ARG_COLUMN 4 /* with ARG_SEQ: a flat sequence is n x 1, not 1 x n */

/* 1: a usable operand; 0: a type we do not handle (nothing raised); -1:
 * error (not owned, bad sequence...). */
static int arg_get(mx_state_t *st, PyObject *o, arg_t *a, int flags) {
  a->tmp = NULL;
  if (Py_TYPE(o) == st->type) {
    mx_t *m = MX(o);
    if (mx_own(m) < 0) {
      return -1;
    }
    a->p = MX_DATA(m);
    a->rows = MX_ROWS(m);
    a->cols = MX_COLS(m);
    return 1;
  }
  if (flags & ARG_SCALAR) {
    const int r = mx_as_double(o, &a->scalar);
    if (r != 0) {
      a->p = &a->scalar;
      a->rows = a->cols = 1;
      return r;
    }
  }
  if ((flags & ARG_SEQ) && PySequence_Check(o) && !PyUnicode_Check(o) &&
      !PyBytes_Check(o) && !PyByteArray_Check(o)) {
    /* lists, tuples, ranges, NumPy arrays... */
    a->tmp = mx_from_sequence(st, o, (flags & ARG_COLUMN) != 0);
    if (a->tmp == NULL) {
      return -1;
    }
    a->p = MX_DATA(a->tmp);
    a->rows = MX_ROWS(a->tmp);
    a->cols = MX_COLS(a->tmp);
    return 1;
  }
  return 0;
}

static void arg_done(arg_t *a) { Py_CLEAR(a->tmp); }

/* arg_get, with TypeError for an unsupported type. */
static int arg_need(mx_state_t *st, PyObject *o, arg_t *a, int flags,
                    const char *fname) {
  const int r = arg_get(st, o, a, flags);
  if (r == 0) {
    if (flags & ARG_SCALAR) {
      MX_TYPE_ERROR1("%s() needs a Matrix, a sequence or a number, not '%U'",
                     fname, o);
    } else {
      MX_TYPE_ERROR1("%s() needs a Matrix or a sequence, not '%U'", fname, o);
    }
    return -1;
  }
  return r < 0 ? -1 : 0;
}

static int bdim(Py_ssize_t x, Py_ssize_t y, Py_ssize_t *out) {
  if (x == y || y == 1) {
    *out = x;
    return 1;
  }
  if (x == 1) {
    *out = y;
    return 1;
  }
  return 0;
}

/* The broadcast shape of a and b, or ValueError naming both shapes. */
static int bshape(const arg_t *a, const arg_t *b, Py_ssize_t *R,
                  Py_ssize_t *C, const char *what) {
  if (bdim(a->rows, b->rows, R) && bdim(a->cols, b->cols, C)) {
    return 0;
  }
  mx_shape_error(what, a->rows, a->cols, b->rows, b->cols,
                 " cannot be broadcast together");
  return -1;
}

/* a, broadcast to R x C (its shape already checked against it). */
static mx_view_t view_of(const arg_t *a, Py_ssize_t C) {
  mx_view_t v;
  v.p = a->p;
  v.rs = a->rows == 1 ? 0 : a->cols;
  v.cs = (a->cols == 1 && C != 1) ? 0 : 1;
  return v;
}

/* ---- out= ------------------------------------------------------------------
 * Where a result of R x C goes: a new matrix, or the Matrix given as out=
 * (owned here, of exactly that shape).  When out= is one of the inputs of a
 * kernel that needs a fresh output (same data), the result is computed into
 * a scratch matrix and copied into out= at the end. */

typedef struct {
  mx_t *dst; /* new reference: where the kernel writes */
  mx_t *out; /* new reference: out= when dst is a scratch copy, else NULL */
} target_t;

/* 0 with t filled, or -1 with TypeError / RuntimeError / MatrixShapeError.
 * in0..in2: the kernel's inputs (NULL: none, or the kernel allows out to
 * equal its input). */
static int target_begin(mx_state_t *st, PyObject *o, Py_ssize_t R,
                        Py_ssize_t C, const char *fname, const double *in0,
                        const double *in1, const double *in2, target_t *t) {
  t->out = NULL;
  if (o == NULL || o == Py_None) {
    t->dst = mx_new(st, R, C, 0);
    return t->dst == NULL ? -1 : 0;
  }
  if (!mx_check(o)) {
    MX_TYPE_ERROR1("%s(): out= must be a Matrix (or None), not '%U'", fname,
                   o);
    return -1;
  }
  mx_t *out = MX(o);
  if (mx_own(out) < 0) {
    return -1;
  }
  if (MX_ROWS(out) != R || MX_COLS(out) != C) {
    mx_raise(MX_ERR_SHAPE,
             "%s(): out= has shape (%zd, %zd) but the result has shape (%zd, "
             "%zd) (" MX_REF_MISMATCH ")",
             fname, MX_ROWS(out), MX_COLS(out), R, C);
    return -1;
  }
  const double *d = MX_DATA(out);
  if (d == in0 || d == in1 || d == in2) {
    t->dst = mx_new(st, R, C, 0);
    if (t->dst == NULL) {
      return -1;
    }
    t->out = (mx_t *)Py_NewRef(o);
    return 0;
  }
  t->dst = (mx_t *)Py_NewRef(o);
  return 0;
}

/* The result (a new reference): out= (the scratch copied in) or dst. */
static PyObject *target_end(target_t *t) {
  if (t->out == NULL) {
    return (PyObject *)t->dst;
  }
  memcpy(MX_DATA(t->out), MX_DATA(t->dst),
         (size_t)MX_SIZE(t->out) * sizeof(double));
  Py_DECREF(t->dst);
  return (PyObject *)t->out;
}

/* in_place and out= together: TypeError. */
static int exclusive(const char *fname, int in_place, PyObject *out) {
  if (in_place && out != NULL && out != Py_None) {
    PyErr_Format(PyExc_TypeError,
                 "%s(): in_place=True and out= are exclusive: give one", fname);
    return -1;
  }
  return 0;
}

/* The state for an operation between x and y, one of them a Matrix. */
static mx_state_t *pair_state(PyObject *x, PyObject *y) {
  return mx_state_of(mx_check(x) ? x : y);
}

/* ---- element-wise binary operators --------------------------------------- */

static PyObject *binary_args(mx_state_t *st, const arg_t *a, const arg_t *b,
                             mx_binop_t op) {
  Py_ssize_t R, C;
  if (bshape(a, b, &R, &C, "operands do not match") < 0) {
    return NULL;
  }
  mx_t *out = mx_new(st, R, C, 0);
  if (out != NULL) {
    mx_k_binary(op, R, C, view_of(a, C), view_of(b, C), MX_DATA(out));
  }
  return (PyObject *)out;
}

/* NotImplemented for an operand we do not handle, except bytes and
 * bytearray under +: their concatenation accepts any buffer (a Matrix
 * exports one), so deferring to it would silently concatenate bytes. */
static PyObject *not_handled(PyObject *x, PyObject *y, mx_binop_t op) {
  if (op == MX_OP_ADD && (PyBytes_Check(x) || PyByteArray_Check(x))) {
    PyObject *l = PyType_GetName(Py_TYPE(x));
    PyObject *r = l != NULL ? PyType_GetName(Py_TYPE(y)) : NULL;
    if (r != NULL) {
      PyErr_Format(PyExc_TypeError,
                   "unsupported operand type(s) for +: '%U' and '%U'", l, r);
    }
    Py_XDECREF(l);
    Py_XDECREF(r);
    return NULL;
  }
  return Py_NewRef(Py_NotImplemented);
}

static PyObject *binary(PyObject *x, PyObject *y, mx_binop_t op) {
  mx_state_t *st = pair_state(x, y);
  arg_t a, b;
  int r = arg_get(st, x, &a, ARG_SCALAR | ARG_SEQ);
  if (r <= 0) {
    return r == 0 ? not_handled(x, y, op) : NULL;
  }
  r = arg_get(st, y, &b, ARG_SCALAR | ARG_SEQ);
  if (r <= 0) {
    arg_done(&a);
    return r == 0 ? not_handled(x, y, op) : NULL;
  }
  PyObject *res = binary_args(st, &a, &b, op);
  arg_done(&a);
  arg_done(&b);
  return res;
}

PyObject *mx_nb_add(PyObject *a, PyObject *b) {
  return binary(a, b, MX_OP_ADD);
}
PyObject *mx_nb_subtract(PyObject *a, PyObject *b) {
  return binary(a, b, MX_OP_SUB);
}
PyObject *mx_nb_multiply(PyObject *a, PyObject *b) {
  return binary(a, b, MX_OP_MUL);
}
PyObject *mx_nb_true_divide(PyObject *a, PyObject *b) {
  return binary(a, b, MX_OP_DIV);
}

/* ---- named operations (0.13): add/subtract/multiply/divide(other, out=),
 * scaled_add(s, x, in_place=False, out=) ------------------------------------- */

static PyObject *named_binary(PyObject *self, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames,
                              mx_binop_t op, const char *fname) {
  static const char *const names[] = {"other", "out"};
  PyObject *o[2] = {NULL, NULL};
  if (mx_parse(fname, args, nargs, kwnames, names, 1, 2, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL) {
    PyErr_Format(PyExc_TypeError, "%s() needs the other operand", fname);
    return NULL;
  }
  mx_state_t *st = mx_state_of(self);
  arg_t a, b;
  if (arg_need(st, self, &a, 0, fname) < 0) {
    return NULL;
  }
  if (arg_need(st, o[0], &b, ARG_SCALAR | ARG_SEQ, fname) < 0) {
    return NULL;
  }
  PyObject *res = NULL;
  Py_ssize_t R, C;
  target_t t;
  if (bshape(&a, &b, &R, &C, "operands do not match") == 0 &&
      target_begin(st, o[1], R, C, fname, a.p, b.p, NULL, &t) == 0) {
    mx_k_binary(op, R, C, view_of(&a, C), view_of(&b, C), MX_DATA(t.dst));
    res = target_end(&t);
  }
  arg_done(&b);
  return res;
}

MX_FASTCALL_DECL(mx_meth_add) {
  return named_binary(self, args, nargs, kwnames, MX_OP_ADD, "add");
}
MX_FASTCALL_DECL(mx_meth_subtract) {
  return named_binary(self, args, nargs, kwnames, MX_OP_SUB, "subtract");
}
MX_FASTCALL_DECL(mx_meth_multiply) {
  return named_binary(self, args, nargs, kwnames, MX_OP_MUL, "multiply");
}
MX_FASTCALL_DECL(mx_meth_divide) {
  return named_binary(self, args, nargs, kwnames, MX_OP_DIV, "divide");
}

MX_FASTCALL_DECL(mx_meth_scaled_add) {
  static const char *const names[] = {"s", "x", "in_place", "out"};
  PyObject *o[4] = {NULL, NULL, NULL, NULL};
  if (mx_parse("scaled_add", args, nargs, kwnames, names, 3, 4, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL || o[1] == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "scaled_add() needs two arguments: s (a number) and x");
    return NULL;
  }
  double s;
  const int r = mx_as_double(o[0], &s);
  if (r <= 0) {
    if (r == 0) {
      MX_TYPE_ERROR0("scaled_add(): s must be a number, not '%U'", o[0]);
    }
    return NULL;
  }
  const int in_place = mx_parse_flag(o[2]);
  if (in_place < 0 || exclusive("scaled_add", in_place, o[3]) < 0) {
    return NULL;
  }
  mx_state_t *st = mx_state_of(self);
  arg_t a, x;
  if (arg_need(st, self, &a, 0, "scaled_add") < 0) {
    return NULL;
  }
  if (arg_need(st, o[1], &x, ARG_SCALAR | ARG_SEQ, "scaled_add") < 0) {
    return NULL;
  }
  PyObject *res = NULL;
  Py_ssize_t R, C;
  mx_t *sx = NULL;
  if (bshape(&a, &x, &R, &C, "scaled_add() operands do not match") < 0) {
    goto done;
  }
  if (in_place && (R != a.rows || C != a.cols)) {
    mx_shape_error("scaled_add(in_place=True) would change the shape", a.rows,
                   a.cols, x.rows, x.cols,
                   ": x must broadcast to self");
    goto done;
  }
  /* s * x, broadcast to R x C (a fresh scratch), then self + that: two
   * roundings, as the expression self + s * x. */
  sx = mx_new(st, R, C, 0);
  if (sx == NULL) {
    goto done;
  }
  const mx_view_t sv = {&s, 0, 0};
  mx_k_binary(MX_OP_MUL, R, C, sv, view_of(&x, C), MX_DATA(sx));
  const mx_view_t sxv = {MX_DATA(sx), C, 1};
  if (in_place) {
    mx_k_binary_inplace(MX_OP_ADD, R, C, MX_DATA(MX(self)), sxv);
    res = Py_NewRef(self);
    goto done;
  }
  target_t t;
  if (target_begin(st, o[3], R, C, "scaled_add", a.p, NULL, NULL, &t) == 0) {
    mx_k_binary(MX_OP_ADD, R, C, view_of(&a, C), sxv, MX_DATA(t.dst));
    res = target_end(&t);
  }
done:
  Py_XDECREF((PyObject *)sx);
  arg_done(&x);
  return res;
}

/* ---- comparisons (0.12): lexicographic, as m.tolist() op n.tolist() ---------
 * Rows are compared in order; within a row, elements in order; the first
 * pair that differs (NaN differs from everything, itself included) decides;
 * when one row (or the row list) is a prefix of the other, the shorter one
 * is smaller.  Only between matrices: anything else is NotImplemented
 * (so == falls back to identity). */

static int cmp_sizes(Py_ssize_t x, Py_ssize_t y, int op) {
  switch (op) {
  case Py_LT: return x < y;
  case Py_LE: return x <= y;
  case Py_EQ: return x == y;
  case Py_NE: return x != y;
  case Py_GT: return x > y;
  default: return x >= y;
  }
}

static int cmp_values(double x, double y, int op) {
  switch (op) {
  case Py_LT: return x < y;
  case Py_LE: return x <= y;
  case Py_EQ: return x == y;
  case Py_NE: return x != y;
  case Py_GT: return x > y;
  default: return x >= y;
  }
}

PyObject *mx_richcompare(PyObject *x, PyObject *y, int op) {
  if (!mx_check(x) || !mx_check(y)) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  mx_t *a = MX(x), *b = MX(y);
  if (mx_own(a) < 0 || mx_own(b) < 0) {
    return NULL;
  }
  const Py_ssize_t Ra = MX_ROWS(a), Ca = MX_COLS(a);
  const Py_ssize_t Rb = MX_ROWS(b), Cb = MX_COLS(b);
  const Py_ssize_t R = Ra < Rb ? Ra : Rb, C = Ca < Cb ? Ca : Cb;
  const double *pa = MX_DATA(a), *pb = MX_DATA(b);
  for (Py_ssize_t i = 0; i < R; i++) {
    for (Py_ssize_t j = 0; j < C; j++) {
      const double u = pa[i * Ca + j], v = pb[i * Cb + j];
      if (!(u == v)) { /* the first difference decides */
        if (op == Py_EQ || op == Py_NE) {
          return PyBool_FromLong(op == Py_NE);
        }
        return PyBool_FromLong(cmp_values(u, v, op));
      }
    }
    if (Ca != Cb) { /* rows differ in length: the shorter row is smaller */
      return PyBool_FromLong(cmp_sizes(Ca, Cb, op));
    }
  }
  return PyBool_FromLong(cmp_sizes(Ra, Rb, op));
}

/* x op= y: x keeps its shape, y must broadcast to it. */
static PyObject *inplace(PyObject *x, PyObject *y, mx_binop_t op) {
  if (!mx_check(x)) {
    return Py_NewRef(Py_NotImplemented);
  }
  mx_state_t *st = mx_state_of(x);
  mx_t *m = MX(x);
  arg_t b;
  const int r = arg_get(st, y, &b, ARG_SCALAR | ARG_SEQ);
  if (r <= 0) {
    return r == 0 ? Py_NewRef(Py_NotImplemented) : NULL;
  }
  if (mx_own(m) < 0) {
    arg_done(&b);
    return NULL;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  if (!((b.rows == R || b.rows == 1) && (b.cols == C || b.cols == 1))) {
    mx_shape_error("in-place operation would change the shape", R, C, b.rows,
                   b.cols, ": the right operand must broadcast to the left");
    arg_done(&b);
    return NULL;
  }
  mx_k_binary_inplace(op, R, C, MX_DATA(m), view_of(&b, C));
  arg_done(&b);
  return Py_NewRef(x);
}

PyObject *mx_nb_inplace_add(PyObject *a, PyObject *b) {
  return inplace(a, b, MX_OP_ADD);
}
PyObject *mx_nb_inplace_subtract(PyObject *a, PyObject *b) {
  return inplace(a, b, MX_OP_SUB);
}
PyObject *mx_nb_inplace_multiply(PyObject *a, PyObject *b) {
  return inplace(a, b, MX_OP_MUL);
}
PyObject *mx_nb_inplace_true_divide(PyObject *a, PyObject *b) {
  return inplace(a, b, MX_OP_DIV);
}

/* The prologue of a two-operand method (other[, axis]): parses the
 * arguments (axis only when `axis` is not NULL), requires `other`, and
 * resolves self and other (other accepted as flagged) into a and b.
 * 0, or -1 with an exception set. */
static int two_operands(PyObject *self, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames, const char *fname,
                        int other_flags, int *axis, mx_state_t **st,
                        arg_t *a, arg_t *b) {
  static const char *const names[] = {"other", "axis"};
  PyObject *o[2] = {NULL, NULL};
  Py_ssize_t n = axis != NULL ? 2 : 1;
  if (mx_parse(fname, args, nargs, kwnames, names, n, n, o) < 0 ||
      (axis != NULL && mx_parse_axis(o[1], axis) < 0)) {
    return -1;
  }
  if (o[0] == NULL) {
    PyErr_Format(PyExc_TypeError, "%s() missing required argument 'other'",
                 fname);
    return -1;
  }
  *st = mx_state_of(self);
  if (arg_need(*st, self, a, 0, fname) < 0 ||
      arg_need(*st, o[0], b, other_flags, fname) < 0) {
    return -1;
  }
  return 0;
}

/* less(other) & co: 1.0 / 0.0 masks. */
static PyObject *compare(PyObject *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames, mx_binop_t op,
                         const char *fname) {
  mx_state_t *st;
  arg_t a, b;
  if (two_operands(self, args, nargs, kwnames, fname, ARG_SCALAR | ARG_SEQ,
                   NULL, &st, &a, &b) < 0) {
    return NULL;
  }
  PyObject *res = binary_args(st, &a, &b, op);
  arg_done(&b);
  return res;
}

#define COMPARE(name, op)                                                     \
  MX_FASTCALL_DECL(mx_meth_##name) {                                          \
    return compare(self, args, nargs, kwnames, op, #name);                    \
  }
COMPARE(less, MX_OP_LT)
COMPARE(less_equal, MX_OP_LE)
COMPARE(greater, MX_OP_GT)
COMPARE(greater_equal, MX_OP_GE)
COMPARE(equal, MX_OP_EQ)
COMPARE(not_equal, MX_OP_NE)

/* ---- matrix product ------------------------------------------------------ */

static PyObject *matmul_args(mx_state_t *st, const arg_t *a,
                             const arg_t *b) {
  if (a->cols != b->rows) {
    mx_raise(MX_ERR_SHAPE,
             "matmul: shapes (%zd, %zd) and (%zd, %zd) do not align: %zd "
             "columns on the left, %zd rows on the right (" MX_REF_MISMATCH
             ")",
             a->rows, a->cols, b->rows, b->cols, a->cols, b->rows);
    return NULL;
  }
  mx_t *out = mx_new(st, a->rows, b->cols, 0);
  if (out != NULL) {
    mx_k_matmul(a->rows, a->cols, b->cols, a->p, b->p, MX_DATA(out));
  }
  return (PyObject *)out;
}

PyObject *mx_nb_matmul(PyObject *x, PyObject *y) {
  mx_state_t *st = pair_state(x, y);
  arg_t a, b;
  int r = arg_get(st, x, &a, ARG_SEQ); /* numbers: TypeError, as NumPy */
  if (r <= 0) {
    return r == 0 ? Py_NewRef(Py_NotImplemented) : NULL;
  }
  r = arg_get(st, y, &b, ARG_SEQ);
  if (r <= 0) {
    arg_done(&a);
    return r == 0 ? Py_NewRef(Py_NotImplemented) : NULL;
  }
  PyObject *res = matmul_args(st, &a, &b);
  arg_done(&a);
  arg_done(&b);
  return res;
}

PyObject *mx_nb_inplace_matmul(PyObject *x, PyObject *y) {
  if (!mx_check(x)) {
    return Py_NewRef(Py_NotImplemented);
  }
  PyObject *res = mx_nb_matmul(x, y);
  if (res == NULL || res == Py_NotImplemented) {
    return res;
  }
  mx_t *m = MX(x), *p = MX(res);
  if (MX_ROWS(p) != MX_ROWS(m) || MX_COLS(p) != MX_COLS(m)) {
    mx_shape_error("in-place matmul would change the shape", MX_ROWS(m),
                   MX_COLS(m), MX_ROWS(p), MX_COLS(p),
                   " (left and result) differ");
    Py_DECREF(res);
    return NULL;
  }
  memcpy(MX_DATA(m), MX_DATA(p), (size_t)MX_SIZE(m) * sizeof(double));
  Py_DECREF(res);
  return Py_NewRef(x);
}

/* ---- unary --------------------------------------------------------------- */

static PyObject *unary_new(PyObject *self, mx_unop_t op) {
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  mx_t *out = mx_new(mx_state_of(self), MX_ROWS(m), MX_COLS(m), 0);
  if (out != NULL) {
    mx_k_unary(op, MX_SIZE(m), MX_DATA(m), MX_DATA(out));
  }
  return (PyObject *)out;
}

PyObject *mx_nb_negative(PyObject *a) { return unary_new(a, MX_UN_NEG); }
PyObject *mx_nb_absolute(PyObject *a) { return unary_new(a, MX_UN_ABS); }
PyObject *mx_nb_positive(PyObject *a) {
  mx_t *m = MX(a);
  if (mx_own(m) < 0) {
    return NULL;
  }
  return (PyObject *)mx_copy(mx_state_of(a), m);
}

/* Parses (in_place=False). */
static int parse_in_place(const char *fname, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames) {
  static const char *const names[] = {"in_place"};
  PyObject *o = NULL;
  if (mx_parse(fname, args, nargs, kwnames, names, 1, 1, &o) < 0) {
    return -1;
  }
  return mx_parse_flag(o);
}

/* name(in_place=False, *, out=None) */
static PyObject *unary_method(PyObject *self, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames,
                              mx_unop_t op, const char *fname) {
  static const char *const names[] = {"in_place", "out"};
  PyObject *o[2] = {NULL, NULL};
  if (mx_parse(fname, args, nargs, kwnames, names, 1, 2, o) < 0) {
    return NULL;
  }
  const int in_place = mx_parse_flag(o[0]);
  if (in_place < 0 || exclusive(fname, in_place, o[1]) < 0) {
    return NULL;
  }
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  if (in_place) {
    mx_k_unary(op, MX_SIZE(m), MX_DATA(m), MX_DATA(m));
    return Py_NewRef(self);
  }
  target_t t; /* the kernel allows out == its input */
  if (target_begin(mx_state_of(self), o[1], MX_ROWS(m), MX_COLS(m), fname,
                   NULL, NULL, NULL, &t) < 0) {
    return NULL;
  }
  mx_k_unary(op, MX_SIZE(m), MX_DATA(m), MX_DATA(t.dst));
  return target_end(&t);
}

#define UNARY(name, op)                                                       \
  MX_FASTCALL_DECL(mx_meth_##name) {                                          \
    return unary_method(self, args, nargs, kwnames, op, #name);               \
  }
UNARY(ceil, MX_UN_CEIL)
UNARY(floor, MX_UN_FLOOR)
UNARY(round, MX_UN_ROUND)
UNARY(negate, MX_UN_NEG)
UNARY(abs, MX_UN_ABS)
UNARY(sqrt, MX_UN_SQRT)

/* ---- reductions ---------------------------------------------------------- */

static int parse_axis_only(const char *fname, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames, int *axis) {
  static const char *const names[] = {"axis"};
  PyObject *o = NULL;
  if (mx_parse(fname, args, nargs, kwnames, names, 1, 1, &o) < 0) {
    return -1;
  }
  return mx_parse_axis(o, axis);
}

enum { POST_NONE, POST_MEAN, POST_SQRT };

static double post(int how, double v, Py_ssize_t count) {
  switch (how) {
  case POST_MEAN:
    return v / (double)count;
  case POST_SQRT:
    return sqrt(v);
  default:
    return v;
  }
}

static PyObject *reduction(PyObject *self, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames, mx_red_t kind,
                           int how, const char *fname) {
  int axis;
  if (parse_axis_only(fname, args, nargs, kwnames, &axis) < 0) {
    return NULL;
  }
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  const double *d = MX_DATA(m);
  if (axis == MX_AXIS_ALL) {
    return PyFloat_FromDouble(
        post(how, mx_k_reduce_all(kind, R * C, d), R * C));
  }
  mx_t *out = axis == 0 ? mx_new(mx_state_of(self), 1, C, 0)
                        : mx_new(mx_state_of(self), R, 1, 0);
  if (out == NULL) {
    return NULL;
  }
  double *o = MX_DATA(out);
  Py_ssize_t n, count;
  if (axis == 0) {
    mx_k_reduce_cols(kind, R, C, d, o);
    n = C;
    count = R;
  } else {
    mx_k_reduce_rows(kind, R, C, d, o);
    n = R;
    count = C;
  }
  if (how != POST_NONE) {
    for (Py_ssize_t i = 0; i < n; i++) {
      o[i] = post(how, o[i], count);
    }
  }
  return (PyObject *)out;
}

#define REDUCTION(name, kind, how)                                            \
  MX_FASTCALL_DECL(mx_meth_##name) {                                          \
    return reduction(self, args, nargs, kwnames, kind, how, #name);           \
  }
REDUCTION(sum, MX_RED_SUM, POST_NONE)
REDUCTION(mean, MX_RED_SUM, POST_MEAN)
REDUCTION(min, MX_RED_MIN, POST_NONE)
REDUCTION(max, MX_RED_MAX, POST_NONE)
REDUCTION(magnitude, MX_RED_SUMSQ, POST_SQRT)
REDUCTION(magnitude_squared, MX_RED_SUMSQ, POST_NONE)

PyObject *mx_get_length(PyObject *self, void *closure) {
  (void)closure;
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  return PyFloat_FromDouble(
      sqrt(mx_k_reduce_all(MX_RED_SUMSQ, MX_SIZE(m), MX_DATA(m))));
}

static PyObject *argbest(PyObject *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames, int want_max,
                         const char *fname) {
  int axis;
  if (parse_axis_only(fname, args, nargs, kwnames, &axis) < 0) {
    return NULL;
  }
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  const double *d = MX_DATA(m);
  if (axis == MX_AXIS_ALL) {
    return PyLong_FromSsize_t(mx_k_argbest(want_max, R * C, d, 1));
  }
  mx_t *out = axis == 0 ? mx_new(mx_state_of(self), 1, C, 0)
                        : mx_new(mx_state_of(self), R, 1, 0);
  if (out == NULL) {
    return NULL;
  }
  double *o = MX_DATA(out);
  if (axis == 0) {
    for (Py_ssize_t j = 0; j < C; j++) {
      o[j] = (double)mx_k_argbest(want_max, R, d + j, C);
    }
  } else {
    for (Py_ssize_t i = 0; i < R; i++) {
      o[i] = (double)mx_k_argbest(want_max, C, d + i * C, 1);
    }
  }
  return (PyObject *)out;
}

MX_FASTCALL_DECL(mx_meth_argmin) {
  return argbest(self, args, nargs, kwnames, 0, "argmin");
}
MX_FASTCALL_DECL(mx_meth_argmax) {
  return argbest(self, args, nargs, kwnames, 1, "argmax");
}

MX_FASTCALL_DECL(mx_meth_vecdot) {
  int axis;
  mx_state_t *st;
  arg_t a, b;
  if (two_operands(self, args, nargs, kwnames, "vecdot", ARG_SCALAR | ARG_SEQ, &axis,
                   &st, &a, &b) < 0) {
    return NULL;
  }
  PyObject *res = NULL;
  if ((a.rows == 1 || a.cols == 1) && (b.rows == 1 || b.cols == 1) &&
      a.rows * a.cols == b.rows * b.cols && a.rows != b.rows) {
    /* Two vectors of the same length, one a row and one a column: their
     * dot product, as the reference (not the sum of the outer product that
     * broadcasting would give).  other's contiguous data read in self's
     * orientation. */
    b.rows = a.rows;
    b.cols = a.cols;
  }
  Py_ssize_t R, C;
  if (!bdim(a.rows, b.rows, &R) || !bdim(a.cols, b.cols, &C)) {
    char prefix[128];
    (void)PyOS_snprintf(prefix, sizeof prefix,
                        "vecdot: lhs %zdx%zd incompatible with rhs %zdx%zd",
                        a.rows, a.cols, b.rows, b.cols);
    mx_shape_error(prefix, a.rows, a.cols, b.rows, b.cols,
                   " cannot be broadcast together");
  } else {
    if (axis == MX_AXIS_ALL) {
      double v;
      mx_k_vecdot(axis, R, C, view_of(&a, C), view_of(&b, C), &v);
      res = PyFloat_FromDouble(v);
    } else {
      mx_t *out = axis == 0 ? mx_new(st, 1, C, 0) : mx_new(st, R, 1, 0);
      if (out != NULL) {
        mx_k_vecdot(axis, R, C, view_of(&a, C), view_of(&b, C),
                    MX_DATA(out));
      }
      res = (PyObject *)out;
    }
  }
  arg_done(&b);
  return res;
}

/* ---- 2-D / 3-D vectors --------------------------------------------------- */

/* How a matrix holds vectors of `dim` components: one vector (1 x dim or
 * dim x 1), or a batch along rows (N x dim) or columns (dim x N).  Square
 * shapes (2 x 2, 3 x 3) are rows unless axis == 0; 2 x 3 / 3 x 2 hold 2-D
 * vectors (along the side of length 2) whatever the axis.  Any other shape
 * has one orientation, and an explicit axis must agree with it (1 for
 * rows, 0 for columns), as in the reference. */
typedef struct {
  int dim;
  int by_cols;
  int single;
  Py_ssize_t count;
} layout_t;

static int vec_layout(Py_ssize_t r, Py_ssize_t c, int axis, int max_dim,
                      const char *fname, layout_t *L) {
  const int rin = r >= 2 && r <= max_dim, cin = c >= 2 && c <= max_dim;
  int fixed = 1; /* the shape alone decides the orientation */
  L->single = 0;
  if (r == 1 && cin) {
    L->dim = (int)c, L->by_cols = 0, L->single = 1, L->count = 1;
  } else if (c == 1 && rin) {
    L->dim = (int)r, L->by_cols = 1, L->single = 1, L->count = 1;
  } else if (rin && cin && r == c) {
    L->dim = (int)r, L->by_cols = axis == 0, L->count = r;
    fixed = 0;
  } else if (rin && cin) { /* 2 x 3 or 3 x 2: 2-D vectors */
    L->dim = 2, L->by_cols = r == 2, L->count = r == 2 ? c : r;
    fixed = 0;
  } else if (cin) {
    L->dim = (int)c, L->by_cols = 0, L->count = r;
  } else if (rin) {
    L->dim = (int)r, L->by_cols = 1, L->count = c;
  } else {
    if (max_dim == 3) {
      mx_raise(MX_ERR_SHAPE,
               MX_REF_CROSS ": got shape (%zd, %zd) (a single 1 x n / n x 1 "
               "vector or a batch N x n / n x N, with n = 2 or 3)",
               r, c);
    } else {
      mx_raise(MX_ERR_SHAPE,
               "%s " MX_REF_VEC2 ": got shape (%zd, %zd) (a single 1 x 2 / "
               "2 x 1 vector or a batch N x 2 / 2 x N)",
               fname, r, c);
    }
    return -1;
  }
  if (fixed && axis != MX_AXIS_ALL && axis != (L->by_cols ? 0 : 1)) {
    const char *holds = L->single ? (L->by_cols ? "one column vector"
                                                : "one row vector")
                                  : (L->by_cols ? "vectors along columns"
                                                : "vectors along rows");
    const char *given = axis == 0 ? "0 (per column)" : "1 (per row)";
    if (max_dim == 3) {
      mx_raise(MX_ERR_SHAPE,
               MX_REF_CROSS ": shape (%zd, %zd) holds %s, which axis=%s "
               "contradicts (omit axis, or pass %d)",
               r, c, holds, given, L->by_cols ? 0 : 1);
    } else {
      mx_raise(MX_ERR_SHAPE,
               "%s " MX_REF_VEC2 ": shape (%zd, %zd) holds %s, which axis=%s "
               "contradicts (omit axis, or pass %d)",
               fname, r, c, holds, given, L->by_cols ? 0 : 1);
    }
    return -1;
  }
  return 0;
}

/* Component k of vector v. */
static double comp(const double *d, Py_ssize_t C, const layout_t *L,
                   Py_ssize_t v, int k) {
  return L->by_cols ? d[k * C + v] : d[v * C + k];
}

static double *comp_ptr(double *d, Py_ssize_t C, const layout_t *L,
                        Py_ssize_t v, int k) {
  return L->by_cols ? &d[k * C + v] : &d[v * C + k];
}

/* Parses (axis=None, in_place=False) or (axis=None). */
static int parse_axis_in_place(const char *fname, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames, int *axis,
                               int *in_place, int allow_in_place) {
  static const char *const names[] = {"axis", "in_place"};
  PyObject *o[2] = {NULL, NULL};
  const Py_ssize_t n = allow_in_place ? 2 : 1;
  if (mx_parse(fname, args, nargs, kwnames, names, n, n, o) < 0 ||
      mx_parse_axis(o[0], axis) < 0) {
    return -1;
  }
  *in_place = mx_parse_flag(o[1]);
  return *in_place < 0 ? -1 : 0;
}

MX_FASTCALL_DECL(mx_meth_cross) {
  int axis;
  mx_state_t *st;
  arg_t a, b;
  if (two_operands(self, args, nargs, kwnames, "cross", ARG_SEQ, &axis,
                   &st, &a, &b) < 0) {
    return NULL;
  }
  PyObject *res = NULL;
  layout_t L;
  const Py_ssize_t R = a.rows, C = a.cols;
  if (vec_layout(R, C, axis, 3, "cross", &L) < 0) {
    goto done;
  }
  int same;
  if (b.rows == R && b.cols == C) {
    same = 1;
  } else if ((b.rows == 1 && b.cols == L.dim) ||
             (b.cols == 1 && b.rows == L.dim)) {
    same = 0; /* one vector, applied to every vector of self */
  } else {
    /* the reference's wording names the kind of self */
    char prefix[128];
    const char *kind =
        L.single ? (L.dim == 2 ? "2D vector" : "3D vector")
        : L.dim == 2 ? (L.by_cols ? "2xN batch" : "Nx2 batch")
                     : (L.by_cols ? "3xN batch" : "Nx3 batch");
    (void)PyOS_snprintf(prefix, sizeof prefix,
                        "cross: %s lhs %zdx%zd incompatible with rhs %zdx%zd",
                        kind, R, C, b.rows, b.cols);
    mx_shape_error(prefix, R, C, b.rows, b.cols,
                   ": other must have self's shape or be one vector of the "
                   "same dimension");
    goto done;
  }
#define B_COMP(v, k) (same ? comp(b.p, C, &L, (v), (k)) : b.p[(k)])
  if (L.dim == 2) {
    if (L.single) {
      res = PyFloat_FromDouble(comp(a.p, C, &L, 0, 0) * B_COMP(0, 1) -
                               comp(a.p, C, &L, 0, 1) * B_COMP(0, 0));
      goto done;
    }
    mx_t *out = L.by_cols ? mx_new(st, 1, L.count, 0)
                          : mx_new(st, L.count, 1, 0);
    if (out == NULL) {
      goto done;
    }
    for (Py_ssize_t v = 0; v < L.count; v++) {
      MX_DATA(out)[v] = comp(a.p, C, &L, v, 0) * B_COMP(v, 1) -
                        comp(a.p, C, &L, v, 1) * B_COMP(v, 0);
    }
    res = (PyObject *)out;
    goto done;
  }
  mx_t *out = mx_new(st, R, C, 0);
  if (out == NULL) {
    goto done;
  }
  for (Py_ssize_t v = 0; v < L.count; v++) {
    const double x0 = comp(a.p, C, &L, v, 0), x1 = comp(a.p, C, &L, v, 1),
                 x2 = comp(a.p, C, &L, v, 2);
    const double y0 = B_COMP(v, 0), y1 = B_COMP(v, 1), y2 = B_COMP(v, 2);
    *comp_ptr(MX_DATA(out), C, &L, v, 0) = x1 * y2 - x2 * y1;
    *comp_ptr(MX_DATA(out), C, &L, v, 1) = x2 * y0 - x0 * y2;
    *comp_ptr(MX_DATA(out), C, &L, v, 2) = x0 * y1 - x1 * y0;
  }
#undef B_COMP
  res = (PyObject *)out;
done:
  arg_done(&b);
  return res;
}

MX_FASTCALL_DECL(mx_meth_perpendicular) {
  int axis, in_place;
  if (parse_axis_in_place("perpendicular", args, nargs, kwnames, &axis,
                          &in_place, 1) < 0) {
    return NULL;
  }
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  const Py_ssize_t C = MX_COLS(m);
  layout_t L;
  if (vec_layout(MX_ROWS(m), C, axis, 2, "perpendicular", &L) < 0) {
    return NULL;
  }
  mx_t *out = in_place ? (mx_t *)Py_NewRef(self)
                       : mx_new(mx_state_of(self), MX_ROWS(m), C, 0);
  if (out == NULL) {
    return NULL;
  }
  for (Py_ssize_t v = 0; v < L.count; v++) {
    const double x = comp(MX_DATA(m), C, &L, v, 0);
    const double y = comp(MX_DATA(m), C, &L, v, 1);
    *comp_ptr(MX_DATA(out), C, &L, v, 0) = -y;
    *comp_ptr(MX_DATA(out), C, &L, v, 1) = x;
  }
  return (PyObject *)out;
}

MX_FASTCALL_DECL(mx_meth_angle) {
  int axis, unused;
  if (parse_axis_in_place("angle", args, nargs, kwnames, &axis, &unused, 0) <
      0) {
    return NULL;
  }
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  const Py_ssize_t C = MX_COLS(m);
  layout_t L;
  if (vec_layout(MX_ROWS(m), C, axis, 2, "angle", &L) < 0) {
    return NULL;
  }
  const double *d = MX_DATA(m);
  if (L.single) {
    return PyFloat_FromDouble(
        atan2(comp(d, C, &L, 0, 1), comp(d, C, &L, 0, 0)));
  }
  mx_t *out = L.by_cols ? mx_new(mx_state_of(self), 1, L.count, 0)
                        : mx_new(mx_state_of(self), L.count, 1, 0);
  if (out != NULL) {
    for (Py_ssize_t v = 0; v < L.count; v++) {
      MX_DATA(out)[v] = atan2(comp(d, C, &L, v, 1), comp(d, C, &L, v, 0));
    }
  }
  return (PyObject *)out;
}

MX_FASTCALL_DECL(mx_meth_normalize) {
  int axis, in_place;
  if (parse_axis_in_place("normalize", args, nargs, kwnames, &axis,
                          &in_place, 1) < 0) {
    return NULL;
  }
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  mx_t *out = in_place ? (mx_t *)Py_NewRef(self)
                       : mx_copy(mx_state_of(self), m);
  if (out == NULL) {
    return NULL;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  double *d = MX_DATA(out);
  if (axis == MX_AXIS_ALL) {
    const double mag = sqrt(mx_k_reduce_all(MX_RED_SUMSQ, R * C, d));
    mx_k_scale_by(axis, R, C, d, &mag);
    return (PyObject *)out;
  }
  const Py_ssize_t n = axis == 0 ? C : R;
  double *mags = malloc((size_t)n * sizeof(double));
  if (mags == NULL) {
    Py_DECREF(out);
    return PyErr_NoMemory();
  }
  if (axis == 0) {
    mx_k_reduce_cols(MX_RED_SUMSQ, R, C, d, mags);
  } else {
    mx_k_reduce_rows(MX_RED_SUMSQ, R, C, d, mags);
  }
  for (Py_ssize_t k = 0; k < n; k++) {
    mags[k] = sqrt(mags[k]);
  }
  mx_k_scale_by(axis, R, C, d, mags);
  free(mags);
  return (PyObject *)out;
}

/* ---- transpose ----------------------------------------------------------- */

PyObject *mx_transposed(mx_t *m) {
  mx_t *out = mx_new(mx_state_of((PyObject *)m), MX_COLS(m), MX_ROWS(m), 0);
  if (out != NULL) {
    mx_k_transpose(MX_ROWS(m), MX_COLS(m), MX_DATA(m), MX_DATA(out));
  }
  return (PyObject *)out;
}

MX_FASTCALL_DECL(mx_meth_transpose) {
  const int in_place = parse_in_place("transpose", args, nargs, kwnames);
  if (in_place < 0) {
    return NULL;
  }
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  if (!in_place) {
    return mx_transposed(m);
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  if (R != C) {
    if (mx_no_exports(m, "transpose this matrix in place (its shape "
                         "would change under the exported buffer)") < 0) {
      return NULL;
    }
  }
  if (R > 1 && C > 1) {
    double *tmp = malloc((size_t)(R * C) * sizeof(double));
    if (tmp == NULL) {
      return PyErr_NoMemory();
    }
    mx_k_transpose(R, C, MX_DATA(m), tmp);
    memcpy(MX_DATA(m), tmp, (size_t)(R * C) * sizeof(double));
    free(tmp);
  }
  m->buf->rows = C; /* we own the record: nobody else reads the shape */
  m->buf->cols = R;
  return Py_NewRef(self);
}

/* ---- clip ---------------------------------------------------------------- */

static int bound(PyObject *o, const char *what, double *out) {
  const int r = mx_as_double(o, out);
  if (r == 0) {
    MX_TYPE_ERROR1("clip(): %s must be a number, not '%U'", what, o);
  }
  return r == 1 ? 0 : -1;
}

MX_FASTCALL_DECL(mx_meth_clip) {
  static const char *const names[] = {"min_or_maxval", "maxval", "min",
                                      "max", "out"};
  PyObject *o[5] = {NULL, NULL, NULL, NULL, NULL};
  if (mx_parse("clip", args, nargs, kwnames, names, 2, 5, o) < 0) {
    return NULL;
  }
  double lo = -INFINITY, hi = INFINITY;
  if (o[2] != NULL || o[3] != NULL) { /* clip(min=..., max=...) */
    if (o[0] != NULL || o[1] != NULL) {
      PyErr_SetString(PyExc_TypeError,
                      "clip() takes positional bounds or the min= / max= "
                      "keywords, not both");
      return NULL;
    }
    const int has_lo = o[2] != NULL && o[2] != Py_None;
    const int has_hi = o[3] != NULL && o[3] != Py_None;
    if (!has_lo && !has_hi) {
      PyErr_SetString(PyExc_TypeError, "clip() needs min=, max= or both");
      return NULL;
    }
    if ((has_lo && bound(o[2], "min", &lo) < 0) ||
        (has_hi && bound(o[3], "max", &hi) < 0)) {
      return NULL;
    }
  } else { /* clip(a) -> [0, a]; clip(a, b) -> [a, b] */
    if (o[0] == NULL || o[0] == Py_None) {
      PyErr_SetString(PyExc_TypeError,
                      "clip() needs a bound: clip(max), clip(min, max) or "
                      "clip(min=..., max=...)");
      return NULL;
    }
    if (o[1] == NULL || o[1] == Py_None) {
      lo = 0.0;
      if (bound(o[0], "the bound", &hi) < 0) {
        return NULL;
      }
    } else if (bound(o[0], "min", &lo) < 0 || bound(o[1], "max", &hi) < 0) {
      return NULL;
    }
  }
  if (lo > hi) {
    PyObject *l = PyFloat_FromDouble(lo), *h = PyFloat_FromDouble(hi);
    if (l != NULL && h != NULL) {
      mx_raise(MX_ERR_BOUNDS,
               "clip(): the lower bound %R is above the upper bound %R", l,
               h);
    }
    Py_XDECREF(l);
    Py_XDECREF(h);
    return NULL;
  }
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  target_t t; /* the kernel allows out == its input */
  if (target_begin(mx_state_of(self), o[4], MX_ROWS(m), MX_COLS(m), "clip",
                   NULL, NULL, NULL, &t) < 0) {
    return NULL;
  }
  mx_k_clip(MX_SIZE(m), MX_DATA(m), lo, hi, MX_DATA(t.dst));
  return target_end(&t);
}

/* ---- take / select ------------------------------------------------------- */

int mx_index_list(const char *fname, PyObject *obj, Py_ssize_t **idx,
                  Py_ssize_t *k) {
  *idx = NULL;
  *k = 0;
  PyObject *seq;
  if (PyLong_Check(obj)) {
    seq = PyTuple_Pack(1, obj);
  } else if (PyUnicode_Check(obj) || PyBytes_Check(obj) ||
             PyByteArray_Check(obj) || mx_check(obj) ||
             !PySequence_Check(obj)) {
    MX_TYPE_ERROR1("%s(): indices must be a sequence of ints, not '%U'",
                   fname, obj);
    return -1;
  } else {
    seq = PySequence_Tuple(obj);
  }
  if (seq == NULL) {
    return -1;
  }
  int rc = -1;
  const Py_ssize_t n = PyTuple_Size(seq);
  if (n == 0) {
    PyErr_Format(PyExc_ValueError,
                 "%s() needs at least one index (a matrix has at least one "
                 "row and one column)",
                 fname);
    goto done;
  }
  *idx = malloc((size_t)n * sizeof(Py_ssize_t));
  if (*idx == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *x = PyTuple_GetItem(seq, i);
    if (PyFloat_Check(x) || PyBool_Check(x) || !PyIndex_Check(x)) {
      MX_TYPE_ERROR1("%s(): indices must be ints, not '%U'", fname, x);
      goto done;
    }
    (*idx)[i] = PyNumber_AsSsize_t(x, PyExc_IndexError);
    if ((*idx)[i] == -1 && PyErr_Occurred()) {
      goto done;
    }
  }
  *k = n;
  rc = 0;
done:
  if (rc < 0) {
    free(*idx);
    *idx = NULL;
  }
  Py_DECREF(seq);
  return rc;
}

int mx_index_bounds(const char *fname, Py_ssize_t *idx, Py_ssize_t k,
                    Py_ssize_t n, const char *what) {
  for (Py_ssize_t i = 0; i < k; i++) {
    const Py_ssize_t orig = idx[i];
    if (idx[i] < 0) {
      idx[i] += n;
    }
    if (idx[i] < 0 || idx[i] >= n) {
      PyErr_Format(PyExc_IndexError, "%s(): index %zd is out of range for %zd %s",
                   fname, orig, n, what);
      return -1;
    }
  }
  return 0;
}

/* The indices and axis of take / put: idx (malloc'd, in range) over n
 * rows / columns / elements.  -1 with an exception. */
static int take_args(const char *fname, mx_t *m, PyObject *indices,
                     PyObject *axis_obj, int *axis, Py_ssize_t **idx,
                     Py_ssize_t *k) {
  *axis = 0;
  if (axis_obj != NULL &&
      mx_parse_axis_as(axis_obj, axis, MX_ERR_AXIS_KEY) < 0) {
    return -1;
  }
  if (mx_index_list(fname, indices, idx, k) < 0) {
    return -1;
  }
  if (mx_own(m) < 0) { /* checked after the conversions, which run code */
    free(*idx);
    *idx = NULL;
    return -1;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  const Py_ssize_t n = *axis == 0 ? R : *axis == 1 ? C : R * C;
  const char *what = *axis == 0 ? "rows" : *axis == 1 ? "columns" : "elements";
  if (mx_index_bounds(fname, *idx, *k, n, what) < 0) {
    free(*idx);
    *idx = NULL;
    return -1;
  }
  return 0;
}

MX_FASTCALL_DECL(mx_meth_take) {
  static const char *const names[] = {"indices", "axis"};
  PyObject *o[2] = {NULL, NULL};
  if (mx_parse("take", args, nargs, kwnames, names, 2, 2, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "take() missing required argument 'indices'");
    return NULL;
  }
  mx_t *m = MX(self);
  int axis;
  Py_ssize_t *idx, k;
  if (take_args("take", m, o[0], o[1], &axis, &idx, &k) < 0) {
    return NULL;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  mx_state_t *st = mx_state_of(self);
  const double *d = MX_DATA(m);
  mx_t *out;
  if (axis == 0) {
    out = mx_new(st, k, C, 0);
    if (out != NULL) {
      for (Py_ssize_t i = 0; i < k; i++) {
        memcpy(MX_DATA(out) + i * C, d + idx[i] * C,
               (size_t)C * sizeof(double));
      }
    }
  } else if (axis == 1) {
    out = mx_new(st, R, k, 0);
    if (out != NULL) {
      for (Py_ssize_t i = 0; i < R; i++) {
        for (Py_ssize_t j = 0; j < k; j++) {
          MX_DATA(out)[i * k + j] = d[i * C + idx[j]];
        }
      }
    }
  } else {
    out = mx_new(st, 1, k, 0);
    if (out != NULL) {
      for (Py_ssize_t j = 0; j < k; j++) {
        MX_DATA(out)[j] = d[idx[j]];
      }
    }
  }
  free(idx);
  return (PyObject *)out;
}

/* put(indices, values, axis=0, accumulate=False): writes (or, with
 * accumulate, adds; repeated indices add up) values, broadcast to the
 * shape take(indices, axis) would have, into the listed rows / columns /
 * flat elements.  Returns None. */
MX_FASTCALL_DECL(mx_meth_put) {
  static const char *const names[] = {"indices", "values", "axis",
                                      "accumulate"};
  PyObject *o[4] = {NULL, NULL, NULL, NULL};
  if (mx_parse("put", args, nargs, kwnames, names, 4, 4, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL || o[1] == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "put() needs indices and values: put(indices, values, "
                    "axis=0, accumulate=False)");
    return NULL;
  }
  const int acc = mx_parse_flag(o[3]);
  if (acc < 0) {
    return NULL;
  }
  mx_t *m = MX(self);
  mx_state_t *st = mx_state_of(self);
  arg_t v;
  if (arg_need(st, o[1], &v, ARG_SCALAR | ARG_SEQ, "put") < 0) {
    return NULL;
  }
  int axis;
  Py_ssize_t *idx, k;
  if (take_args("put", m, o[0], o[2], &axis, &idx, &k) < 0) {
    arg_done(&v);
    return NULL;
  }
  const Py_ssize_t R = MX_ROWS(m), C = MX_COLS(m);
  const Py_ssize_t TR = axis == 0 ? k : axis == 1 ? R : 1;
  const Py_ssize_t TC = axis == 0 ? C : axis == 1 ? k : k;
  PyObject *res = NULL;
  mx_t *copy = NULL;
  if (!((v.rows == TR || v.rows == 1) && (v.cols == TC || v.cols == 1))) {
    mx_shape_error("put(): values do not fit the selection", v.rows, v.cols,
                   TR, TC, " cannot be broadcast together");
    goto done;
  }
  if (v.p == MX_DATA(m)) { /* m.put(..., m): read a copy while writing */
    copy = mx_copy(st, m);
    if (copy == NULL) {
      goto done;
    }
    v.p = MX_DATA(copy);
  }
  const mx_view_t w = view_of(&v, TC);
  double *d = MX_DATA(m);
  for (Py_ssize_t i = 0; i < TR; i++) {
    for (Py_ssize_t j = 0; j < TC; j++) {
      const double x = w.p[i * w.rs + j * w.cs];
      double *t = axis == 0   ? &d[idx[i] * C + j]
                  : axis == 1 ? &d[i * C + idx[j]]
                              : &d[idx[j]];
      *t = acc ? *t + x : x;
    }
  }
  res = Py_NewRef(Py_None);
done:
  Py_XDECREF((PyObject *)copy);
  free(idx);
  arg_done(&v);
  return res;
}

/* ---- ternary: fma, where ------------------------------------------------- */

/* The broadcast shape of three operands. */
static int bshape3(const arg_t *a, const arg_t *b, const arg_t *c,
                   Py_ssize_t *R, Py_ssize_t *C, const char *fname) {
  Py_ssize_t r, k;
  if (!bdim(a->rows, b->rows, &r) || !bdim(a->cols, b->cols, &k)) {
    mx_shape_error(fname, a->rows, a->cols, b->rows, b->cols,
                   " cannot be broadcast together");
    return -1;
  }
  if (!bdim(r, c->rows, R) || !bdim(k, c->cols, C)) {
    mx_shape_error(fname, r, k, c->rows, c->cols,
                   " cannot be broadcast together");
    return -1;
  }
  return 0;
}

MX_FASTCALL_DECL(mx_meth_fma) {
  static const char *const names[] = {"b", "c", "out"};
  PyObject *o[3] = {NULL, NULL, NULL};
  if (mx_parse("fma", args, nargs, kwnames, names, 2, 3, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL || o[1] == NULL) {
    PyErr_SetString(PyExc_TypeError, "fma() needs two arguments: b and c");
    return NULL;
  }
  mx_state_t *st = mx_state_of(self);
  arg_t a, b, c;
  b.tmp = c.tmp = NULL;
  PyObject *res = NULL;
  Py_ssize_t R, C;
  if (arg_need(st, o[0], &b, ARG_SCALAR | ARG_SEQ, "fma") == 0 &&
      arg_need(st, o[1], &c, ARG_SCALAR | ARG_SEQ, "fma") == 0 &&
      arg_need(st, self, &a, 0, "fma") == 0 &&
      bshape3(&a, &b, &c, &R, &C, "fma() operands") == 0) {
    target_t t;
    if (target_begin(st, o[2], R, C, "fma", a.p, b.p, c.p, &t) == 0) {
      mx_k_fma(R, C, view_of(&a, C), view_of(&b, C), view_of(&c, C),
               MX_DATA(t.dst));
      res = target_end(&t);
    }
  }
  arg_done(&b);
  arg_done(&c);
  return res;
}

MX_FASTCALL_DECL(mx_meth_where) {
  static const char *const names[] = {"mask", "a", "b"};
  PyObject *o[3] = {NULL, NULL, NULL};
  if (mx_parse("where", args, nargs, kwnames, names, 3, 3, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL || o[1] == NULL || o[2] == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "where() needs three arguments: mask, a and b");
    return NULL;
  }
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)self);
  if (st == NULL) {
    return NULL;
  }
  arg_t m, a, b;
  m.tmp = a.tmp = b.tmp = NULL;
  PyObject *res = NULL;
  Py_ssize_t R, C;
  if (arg_need(st, o[0], &m, ARG_SCALAR | ARG_SEQ, "where") == 0 &&
      arg_need(st, o[1], &a, ARG_SCALAR | ARG_SEQ, "where") == 0 &&
      arg_need(st, o[2], &b, ARG_SCALAR | ARG_SEQ, "where") == 0 &&
      bshape3(&m, &a, &b, &R, &C, "where() operands") == 0) {
    mx_t *out = mx_new(st, R, C, 0);
    if (out != NULL) {
      mx_k_where(R, C, view_of(&m, C), view_of(&a, C), view_of(&b, C),
                 MX_DATA(out));
    }
    res = (PyObject *)out;
  }
  arg_done(&m);
  arg_done(&a);
  arg_done(&b);
  return res;
}

/* ---- allclose, concat ---------------------------------------------------- */

MX_FASTCALL_DECL(mx_meth_allclose) {
  static const char *const names[] = {"lhs", "rhs", "rtol", "atol",
                                      "equal_nan"};
  PyObject *o[5] = {NULL, NULL, NULL, NULL, NULL};
  if (mx_parse("allclose", args, nargs, kwnames, names, 5, 5, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL || o[1] == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "allclose() needs two arguments: lhs and rhs");
    return NULL;
  }
  double rtol = 1e-05, atol = 1e-08;
  for (int i = 2; i < 4; i++) {
    if (o[i] == NULL) {
      continue;
    }
    const int r = mx_as_double(o[i], i == 2 ? &rtol : &atol);
    if (r <= 0) {
      if (r == 0) {
        MX_TYPE_ERROR1("allclose(): %s must be a number, not '%U'",
                       names[i], o[i]);
      }
      return NULL;
    }
  }
  const int equal_nan = mx_parse_flag(o[4]);
  if (equal_nan < 0) {
    return NULL;
  }
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)self);
  if (st == NULL) {
    return NULL;
  }
  arg_t a, b;
  a.tmp = b.tmp = NULL;
  PyObject *res = NULL;
  if (arg_need(st, o[0], &a, ARG_SCALAR | ARG_SEQ, "allclose") == 0 &&
      arg_need(st, o[1], &b, ARG_SCALAR | ARG_SEQ, "allclose") == 0) {
    int close = a.rows == b.rows && a.cols == b.cols;
    for (Py_ssize_t i = 0; close && i < a.rows * a.cols; i++) {
      const double x = a.p[i], y = b.p[i];
      if (x == y) {
        continue; /* also equal infinities */
      }
      if (isnan(x) || isnan(y)) {
        close = equal_nan && isnan(x) && isnan(y);
      } else if (isinf(x) || isinf(y)) {
        close = 0;
      } else {
        close = fabs(x - y) <= atol + rtol * fabs(y);
      }
    }
    res = PyBool_FromLong(close);
  }
  arg_done(&a);
  arg_done(&b);
  return res;
}

MX_FASTCALL_DECL(mx_meth_concat) {
  static const char *const names[] = {"values", "axis"};
  PyObject *o[2] = {NULL, NULL};
  if (mx_parse("concat", args, nargs, kwnames, names, 2, 2, o) < 0) {
    return NULL;
  }
  if (o[0] == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "concat() missing required argument 'values'");
    return NULL;
  }
  int axis = 0;
  if (o[1] != NULL && mx_parse_axis_as(o[1], &axis, MX_ERR_AXIS_KEY) < 0) {
    return NULL;
  }
  if (axis == MX_AXIS_ALL) {
    PyErr_SetString(PyExc_ValueError,
                    "concat() needs axis 0 (stack rows) or 1 (stack columns)");
    return NULL;
  }
  if (mx_check(o[0]) || PyUnicode_Check(o[0]) || PyBytes_Check(o[0]) ||
      !PySequence_Check(o[0])) {
    MX_TYPE_ERROR0("concat() needs a sequence of matrices, not '%U'", o[0]);
    return NULL;
  }
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)self);
  if (st == NULL) {
    return NULL;
  }
  PyObject *seq = PySequence_Tuple(o[0]);
  if (seq == NULL) {
    return NULL;
  }
  PyObject *res = NULL;
  const Py_ssize_t n = PyTuple_Size(seq);
  Py_ssize_t got = 0;
  arg_t *items = n > 0 ? calloc((size_t)n, sizeof(arg_t)) : NULL;
  if (n == 0) {
    PyErr_SetString(PyExc_ValueError, "concat() needs at least one matrix");
    goto done;
  }
  if (items == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  for (; got < n; got++) {
    /* axis 1 stacks columns: a flat sequence is a column (as the
     * reference), nested rows keep their shape */
    if (arg_need(st, PyTuple_GetItem(seq, got), &items[got],
                 axis == 1 ? ARG_SEQ | ARG_COLUMN : ARG_SEQ, "concat") < 0) {
      goto done;
    }
  }
  Py_ssize_t R = items[0].rows, C = items[0].cols;
  for (Py_ssize_t i = 1; i < n; i++) {
    const int ok = axis == 0 ? items[i].cols == C : items[i].rows == R;
    if (!ok) {
      mx_shape_error_as(MX_ERR_CONCAT,
                        axis == 0 ? "concat(axis=0) needs equal column counts"
                                  : "concat(axis=1) needs equal row counts",
                        items[0].rows, items[0].cols, items[i].rows,
                        items[i].cols, " (items 0 and later) differ");
      goto done;
    }
    if (axis == 0) {
      R += items[i].rows;
    } else {
      C += items[i].cols;
    }
  }
  mx_t *out = mx_new(st, R, C, 0);
  if (out == NULL) {
    goto done;
  }
  double *d = MX_DATA(out);
  Py_ssize_t offset = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    const arg_t *it = &items[i];
    if (axis == 0) {
      memcpy(d + offset * C, it->p,
             (size_t)(it->rows * it->cols) * sizeof(double));
      offset += it->rows;
    } else {
      for (Py_ssize_t r = 0; r < R; r++) {
        memcpy(d + r * C + offset, it->p + r * it->cols,
               (size_t)it->cols * sizeof(double));
      }
      offset += it->cols;
    }
  }
  res = (PyObject *)out;
done:
  for (Py_ssize_t i = 0; i < got; i++) {
    arg_done(&items[i]);
  }
  free(items);
  Py_DECREF(seq);
  return res;
}
