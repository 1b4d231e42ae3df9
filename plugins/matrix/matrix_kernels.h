/* matrix_kernels.h - the numeric loops (a leaf: plain C on raw arrays; the
 * Python header only for Py_ssize_t).  Defined in matrix_kernels.c
 * (compiled once for the baseline ISA and, on x86-64, once more as
 * matrix_kernels_v3.c for x86-64-v3).
 */
#ifndef BOCPY_PLUGIN_MATRIX_KERNELS_H
#define BOCPY_PLUGIN_MATRIX_KERNELS_H

#include <Python.h>

/* Plain C on raw arrays: no Python, no GIL requirements, no errors. */

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
/* d[...] /= the magnitude of its vector (axis 2, MX_AXIS_ALL: mags[0] for all;
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

#endif /* BOCPY_PLUGIN_MATRIX_KERNELS_H */
