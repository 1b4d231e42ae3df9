/* matrix.h - internal declarations of bocpy.plugins.matrix (not installed).
 *
 * bocpy.plugins.matrix.Matrix is a dense, row-major rows x columns matrix of
 * C doubles.  The module is an abi3 plugin: stable ABI 3.12 plus the
 * BOCPY_ABI table, nothing else.
 *
 * Layout:
 *   matrix_module.c   module state, the per-interpreter RNG, the
 *                     shareable-type hooks (the ownership flip), pickling;
 *   matrix_type.c     the type: construction, properties, indexing,
 *                     iteration, repr/str, the method table;
 *   matrix_ops.c      operators with broadcasting, matmul, reductions,
 *                     element-wise and vector methods;
 *   matrix_kernels.c  the numeric loops (restrict pointers, -O3, optionally
 *                     an AVX2 clone picked at load time).
 *
 * Ownership.  The numbers live in a raw-allocated, process-global,
 * reference-counted record (mat_buf_t) with an owner word handled by the
 * ABI's owner_* entries: exactly one interpreter may read or write the
 * record at a time.  A Python wrapper (matrix_t) holds one reference.  When
 * bocpy moves a matrix to another interpreter (a cown value, a message, a
 * capture, a result) share() flips the owner to "none", takes a reference
 * for the payload and marks the wrapper as moved for good; rebuild() in the
 * receiving interpreter flips the owner to itself and wraps the same record
 * in that interpreter's type.  No copy.  Every accessor calls mx_own().
 *
 * References: functions returning PyObject * return new references;
 * PyObject * arguments are borrowed.  Functions returning int return 0 (or
 * a documented non-negative value) or -1 with an exception set.
 */
#ifndef BOCPY_PLUGIN_MATRIX_H
#define BOCPY_PLUGIN_MATRIX_H

#include <Python.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <bocpy/bocpy.h>

/* The error text of every accessor of a matrix this interpreter does not
 * own (the ABI's owner_check writes the same words). */
#define MX_WHAT "matrix"

/* ---- the shared record --------------------------------------------------- */

typedef struct mx_buf {
  _Atomic int64_t refs;   /* wrappers + payloads holding the record */
  int64_t owner;          /* owner word: only through abi->owner_* */
  Py_ssize_t rows, cols;  /* owner only (transpose(in_place) swaps them) */
  void *alloc;            /* what malloc/calloc returned (for free) */
  _Alignas(64) double data[]; /* rows * cols, row-major, on a cache line */
} mx_buf_t;

/* A new record of rows x cols (both >= 1) owned by `owner`, refs = 1;
 * zeroed when `zero`.  NULL with MemoryError/ValueError. */
mx_buf_t *mx_buf_new(Py_ssize_t rows, Py_ssize_t cols, int zero,
                     int64_t owner);
void mx_buf_incref(mx_buf_t *b);
/* Any thread, no GIL needed. */
void mx_buf_decref(mx_buf_t *b);
/* Records alive in the process (a statistic for leak tests). */
int64_t mx_buf_live(void);

/* ---- module state -------------------------------------------------------- */

typedef struct {
  uint64_t s[4];    /* xoshiro256** */
  double spare;     /* the second Box-Muller sample */
  int has_spare;
} mx_rng_t;

typedef struct {
  const bocpy_abi *abi;
  PyTypeObject *type; /* strong: this interpreter's Matrix type */
  PyTypeObject *view_type; /* strong: the exporter behind Matrix.data() */
  mx_rng_t rng;       /* this interpreter's generator */
} mx_state_t;

/* ---- the wrapper --------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  mx_buf_t *buf;        /* one reference, never NULL after construction */
  const bocpy_abi *abi; /* the process's table (plain data) */
  int moved;            /* this wrapper gave its record away, for good */
  Py_ssize_t exports;   /* live views from data() (memoryviews) */
  Py_ssize_t view_shape[2];   /* what the views describe (fixed while */
  Py_ssize_t view_strides[2]; /* exports > 0: see mx_exported) */
} mx_t;

#define MX(o) ((mx_t *)(o))
#define MX_ROWS(m) ((m)->buf->rows)
#define MX_COLS(m) ((m)->buf->cols)
#define MX_DATA(m) ((m)->buf->data)
#define MX_SIZE(m) ((m)->buf->rows * (m)->buf->cols)

/* 1 when o is a Matrix (of any interpreter's type: compares tp_dealloc). */
int mx_check(PyObject *o);
/* 0 when no buffer view of m exists, else -1 with BufferError: a matrix
 * cannot move to another interpreter, or change its shape, while memory
 * views of it are alive (`what` names the operation). */
int mx_exported(mx_t *m, const char *what);
/* The state of the module that made m's type. */
mx_state_t *mx_state_of(PyObject *m);
/* 0 when this interpreter owns m (and m has not been moved), else -1 with
 * RuntimeError("The current interpreter does not own this matrix"). */
int mx_own(mx_t *m);
/* A new, owned rows x cols Matrix (zeroed when `zero`), or NULL. */
mx_t *mx_new(mx_state_t *st, Py_ssize_t rows, Py_ssize_t cols, int zero);
/* Wraps record b (steals its reference; decrefs it on failure). */
PyObject *mx_wrap(mx_state_t *st, mx_buf_t *b);
/* A deep copy of m (owner checked by the caller). */
mx_t *mx_copy(mx_state_t *st, mx_t *m);

/* ---- argument helpers (matrix_type.c) ------------------------------------ */

/* Converts a real number (float, int, __index__ or __float__) to a double:
 * 1 converted, 0 not a number (nothing raised), -1 error (e.g. overflow). */
int mx_as_double(PyObject *o, double *out);
/* Parses METH_FASTCALL | METH_KEYWORDS arguments into out[0..nall): the
 * first npos may be positional, all may be keywords (names[i]).  Slots not
 * given are left untouched (preset them to NULL).  Borrowed references. */
int mx_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames, const char *const *names, Py_ssize_t npos,
             Py_ssize_t nall, PyObject **out);
/* axis: NULL/None -> MX_AXIS_ALL; 0/-2 -> 0 (per column); 1/-1 -> 1 (per
 * row).  -1 with TypeError / ValueError. */
#define MX_AXIS_ALL 2
int mx_parse_axis(PyObject *o, int *axis);
/* A truth value (NULL -> 0); -1 on error. */
int mx_parse_flag(PyObject *o);
/* A size argument: a (rows, columns) tuple/list of ints >= 1. */
int mx_parse_size(PyObject *o, const char *fname, Py_ssize_t *rows,
                  Py_ssize_t *cols);
/* A dimension: an int >= 1 (TypeError / ValueError naming `what`). */
int mx_parse_dim(PyObject *o, const char *what, Py_ssize_t *out);
/* A new Matrix from a flat or nested sequence (a flat one is 1 x n, or
 * n x 1 when as_column), or a copy of a Matrix.  NULL with TypeError
 * (non-numbers, not a sequence) or ValueError (empty, ragged). */
mx_t *mx_from_sequence(mx_state_t *st, PyObject *seq, int as_column);

/* TypeError with the type name of o as the last (%U) argument of fmt. */
#define MX_TYPE_ERROR0(fmt, o)                                                \
  do {                                                                        \
    PyObject *mx_tn_ = PyType_GetName(Py_TYPE(o));                            \
    if (mx_tn_ != NULL) {                                                     \
      PyErr_Format(PyExc_TypeError, fmt, mx_tn_);                             \
      Py_DECREF(mx_tn_);                                                      \
    }                                                                         \
  } while (0)
#define MX_TYPE_ERROR1(fmt, s, o)                                             \
  do {                                                                        \
    PyObject *mx_tn_ = PyType_GetName(Py_TYPE(o));                            \
    if (mx_tn_ != NULL) {                                                     \
      PyErr_Format(PyExc_TypeError, fmt, s, mx_tn_);                          \
      Py_DECREF(mx_tn_);                                                      \
    }                                                                         \
  } while (0)

/* ValueError "<prefix>: shapes (a, b) and (c, d)<suffix>". */
void mx_shape_error(const char *prefix, Py_ssize_t ar, Py_ssize_t ac,
                    Py_ssize_t br, Py_ssize_t bc, const char *suffix);

/* ---- RNG (matrix_module.c) ----------------------------------------------- */

void mx_rng_seed(mx_rng_t *r, uint64_t seed);
void mx_rng_seed_entropy(mx_rng_t *r);
double mx_rng_uniform(mx_rng_t *r);  /* [0, 1) */
double mx_rng_normal(mx_rng_t *r);   /* N(0, 1) */

/* ---- Python entry points defined outside matrix_type.c ------------------- */

/* matrix_type.c: this interpreter's Matrix type (new reference). */
PyTypeObject *mx_type_create(PyObject *module);
/* The type of the objects behind Matrix.data()'s memoryviews. */
PyTypeObject *mx_view_type_create(PyObject *module);

/* matrix_module.c */
PyObject *mx_meth_reduce(PyObject *self, PyObject *unused);
PyObject *mx_meth_seed(PyObject *cls, PyObject *value);
PyObject *mx_meth_normal(PyObject *cls, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames);
PyObject *mx_meth_uniform(PyObject *cls, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames);

/* matrix_ops.c: number protocol */
PyObject *mx_nb_add(PyObject *a, PyObject *b);
PyObject *mx_nb_subtract(PyObject *a, PyObject *b);
PyObject *mx_nb_multiply(PyObject *a, PyObject *b);
PyObject *mx_nb_true_divide(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_add(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_subtract(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_multiply(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_true_divide(PyObject *a, PyObject *b);
PyObject *mx_nb_matmul(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_matmul(PyObject *a, PyObject *b);
PyObject *mx_nb_negative(PyObject *a);
PyObject *mx_nb_positive(PyObject *a);
PyObject *mx_nb_absolute(PyObject *a);

/* matrix_ops.c: methods.  FASTCALL ones have the (self, args, nargs,
 * kwnames) signature. */
#define MX_FASTCALL_DECL(name)                                                \
  PyObject *name(PyObject *self, PyObject *const *args, Py_ssize_t nargs,     \
                 PyObject *kwnames)
MX_FASTCALL_DECL(mx_meth_sum);
MX_FASTCALL_DECL(mx_meth_mean);
MX_FASTCALL_DECL(mx_meth_min);
MX_FASTCALL_DECL(mx_meth_max);
MX_FASTCALL_DECL(mx_meth_argmin);
MX_FASTCALL_DECL(mx_meth_argmax);
MX_FASTCALL_DECL(mx_meth_magnitude);
MX_FASTCALL_DECL(mx_meth_magnitude_squared);
MX_FASTCALL_DECL(mx_meth_vecdot);
MX_FASTCALL_DECL(mx_meth_cross);
MX_FASTCALL_DECL(mx_meth_normalize);
MX_FASTCALL_DECL(mx_meth_perpendicular);
MX_FASTCALL_DECL(mx_meth_angle);
MX_FASTCALL_DECL(mx_meth_transpose);
MX_FASTCALL_DECL(mx_meth_ceil);
MX_FASTCALL_DECL(mx_meth_floor);
MX_FASTCALL_DECL(mx_meth_round);
MX_FASTCALL_DECL(mx_meth_negate);
MX_FASTCALL_DECL(mx_meth_abs);
MX_FASTCALL_DECL(mx_meth_sqrt);
MX_FASTCALL_DECL(mx_meth_clip);
MX_FASTCALL_DECL(mx_meth_take);
MX_FASTCALL_DECL(mx_meth_fma);
MX_FASTCALL_DECL(mx_meth_less);
MX_FASTCALL_DECL(mx_meth_less_equal);
MX_FASTCALL_DECL(mx_meth_greater);
MX_FASTCALL_DECL(mx_meth_greater_equal);
MX_FASTCALL_DECL(mx_meth_equal);
MX_FASTCALL_DECL(mx_meth_not_equal);
/* class / static methods (cls or NULL first) */
MX_FASTCALL_DECL(mx_meth_concat);
MX_FASTCALL_DECL(mx_meth_allclose);
MX_FASTCALL_DECL(mx_meth_where);
/* the T property and length */
PyObject *mx_transposed(mx_t *m);
PyObject *mx_get_length(PyObject *self, void *closure);

/* ---- kernels (matrix_kernels.c) ---------------------------------------------
 * Plain C on raw arrays: no Python, no GIL requirements, no errors. */

typedef enum {
  MX_OP_ADD,
  MX_OP_SUB,
  MX_OP_MUL,
  MX_OP_DIV,
  MX_OP_LT,
  MX_OP_LE,
  MX_OP_GT,
  MX_OP_GE,
  MX_OP_EQ,
  MX_OP_NE,
  MX_OP_COUNT
} mx_binop_t;

typedef enum {
  MX_UN_NEG,
  MX_UN_ABS,
  MX_UN_CEIL,
  MX_UN_FLOOR,
  MX_UN_ROUND,
  MX_UN_SQRT,
  MX_UN_COUNT
} mx_unop_t;

/* Reductions. */
typedef enum { MX_RED_SUM, MX_RED_SUMSQ, MX_RED_MIN, MX_RED_MAX } mx_red_t;

/* A broadcast operand: element (i, j) is p[i * rs + j * cs] where rs is 0
 * (a repeated row) or the row length, and cs is 0 (a repeated column) or
 * 1. */
typedef struct {
  const double *p;
  Py_ssize_t rs, cs;
} mx_view_t;

/* The kernels of one build variant (matrix_kernels.c compiled for the
 * baseline ISA, and for x86-64-v3 when available); see mx_k_* below. */
typedef struct mx_kernels {
  const char *name; /* "base" or "x86-64-v3" */
  void (*binary)(mx_binop_t, Py_ssize_t, Py_ssize_t, mx_view_t, mx_view_t,
                 double *);
  void (*binary_inplace)(mx_binop_t, Py_ssize_t, Py_ssize_t, double *,
                         mx_view_t);
  void (*unary)(mx_unop_t, Py_ssize_t, const double *, double *);
  void (*clip)(Py_ssize_t, const double *, double, double, double *);
  void (*fma)(Py_ssize_t, Py_ssize_t, mx_view_t, mx_view_t, mx_view_t,
              double *);
  void (*where)(Py_ssize_t, Py_ssize_t, mx_view_t, mx_view_t, mx_view_t,
                double *);
  void (*scale_by)(int, Py_ssize_t, Py_ssize_t, double *, const double *);
  void (*matmul)(Py_ssize_t, Py_ssize_t, Py_ssize_t, const double *,
                 const double *, double *);
  void (*transpose)(Py_ssize_t, Py_ssize_t, const double *, double *);
  double (*reduce_all)(mx_red_t, Py_ssize_t, const double *);
  void (*reduce_cols)(mx_red_t, Py_ssize_t, Py_ssize_t, const double *,
                      double *);
  void (*reduce_rows)(mx_red_t, Py_ssize_t, Py_ssize_t, const double *,
                      double *);
  void (*vecdot)(int, Py_ssize_t, Py_ssize_t, mx_view_t, mx_view_t,
                 double *);
  Py_ssize_t (*argbest)(int, Py_ssize_t, const double *, Py_ssize_t);
} mx_kernels_t;

extern const mx_kernels_t mx_kernels_base;
#if defined(MX_HAVE_V3)
extern const mx_kernels_t mx_kernels_v3;
#endif
/* The table in use (chosen once for this CPU). */
const mx_kernels_t *mx_kernels(void);

/* out (R x C, fresh, never overlapping a or b) = a op b. */
void mx_k_binary(mx_binop_t op, Py_ssize_t R, Py_ssize_t C, mx_view_t a,
                 mx_view_t b, double *out);
/* a (R x C, contiguous) = a op b, in place; b may alias a exactly. */
void mx_k_binary_inplace(mx_binop_t op, Py_ssize_t R, Py_ssize_t C, double *a,
                         mx_view_t b);
/* out = op(a), n elements; out may equal a (in place). */
void mx_k_unary(mx_unop_t op, Py_ssize_t n, const double *a, double *out);
/* out = clamp(a, lo, hi) (NaN stays NaN); out may equal a. */
void mx_k_clip(Py_ssize_t n, const double *a, double lo, double hi,
               double *out);
/* out (R x C, fresh) = fma(a, b, c) / where(a != 0, b, c). */
void mx_k_fma(Py_ssize_t R, Py_ssize_t C, mx_view_t a, mx_view_t b,
              mx_view_t c, double *out);
void mx_k_where(Py_ssize_t R, Py_ssize_t C, mx_view_t m, mx_view_t a,
                mx_view_t b, double *out);
/* d[...] /= the magnitude of its vector (axis MX_AXIS_ALL: mags[0] for all;
 * 0: mags[j] per column; 1: mags[i] per row); zero magnitude -> 0.0. */
void mx_k_scale_by(int axis, Py_ssize_t R, Py_ssize_t C, double *d,
                   const double *mags);
/* out (R x N, fresh) = a (R x K) @ b (K x N). */
void mx_k_matmul(Py_ssize_t R, Py_ssize_t K, Py_ssize_t N,
                 const double *a, const double *b, double *out);
/* out (C x R, fresh) = transpose of a (R x C). */
void mx_k_transpose(Py_ssize_t R, Py_ssize_t C, const double *a,
                    double *out);

/* Over all n elements. */
double mx_k_reduce_all(mx_red_t kind, Py_ssize_t n, const double *a);
/* Per column (out: C values) or per row (out: R values) of a R x C. */
void mx_k_reduce_cols(mx_red_t kind, Py_ssize_t R, Py_ssize_t C,
                      const double *a, double *out);
void mx_k_reduce_rows(mx_red_t kind, Py_ssize_t R, Py_ssize_t C,
                      const double *a, double *out);
/* Sum of the products of a and b broadcast to R x C: all, per column or
 * per row (out: 1, C or R values). */
void mx_k_vecdot(int axis, Py_ssize_t R, Py_ssize_t C, mx_view_t a,
                 mx_view_t b, double *out);
/* First index of the minimum (want_max = 0) / maximum of n values spaced
 * `stride` apart; a NaN is only chosen when it comes first. */
Py_ssize_t mx_k_argbest(int want_max, Py_ssize_t n, const double *a,
                        Py_ssize_t stride);

#endif /* BOCPY_PLUGIN_MATRIX_H */
