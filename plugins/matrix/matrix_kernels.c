/* matrix_kernels.c - the numeric loops of bocpy.plugins.matrix.
 *
 * Plain C over raw row-major arrays: no Python objects, no errors.  Built
 * with -O3 -fno-math-errno -fno-trapping-math (so sqrt/floor/ceil/rint become
 * vector instructions and compare-and-select loops if-convert; FP exception
 * flags are not part of the API) and -ffp-contract=off.  This file is
 * compiled twice:
 * as is (the baseline: SSE2 on x86-64) and, through matrix_kernels_v3.c,
 * with MX_KERNEL_V3 and -mavx2 -mfma.  Every kernel is static; each
 * compilation exports one table of them (mx_kernels_base / mx_kernels_v3)
 * and the baseline compilation also holds the mx_k_* entry points, which
 * call through the table picked once for the CPU (BOCPY_MATRIX_KERNELS=base
 * forces the baseline, for tests).  No -ffast-math and no implicit
 * contraction: both tables compute the same IEEE results (fma() only where
 * the source calls it).
 *
 * Output arrays handed to the out-of-place kernels are freshly allocated by
 * the caller, so they never overlap the inputs: hence the restrict
 * qualifiers.  Inputs may overlap each other (they are only read).
 */
#include "matrix_kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__GNUC__) && !defined(__clang__)
#error "the matrix kernels use the GCC / clang vector extension"
#endif
#define MX_INLINE inline __attribute__((always_inline))

/* MX_VW doubles in one register (the GCC / clang vector extension): an AVX
 * register in the x86-64-v3 build, an SSE2 register in the baseline one.
 * Loaded and stored with memcpy (unaligned, no aliasing games); only used
 * inside a function, never passed by value (that would change the psABI).
 * mx_vi is the same register seen as 64-bit integers (comparison masks). */
#ifdef MX_KERNEL_V3
#define MX_VW 4
#else
#define MX_VW 2
#endif
typedef double mx_vd __attribute__((vector_size(MX_VW * sizeof(double))));
typedef long long mx_vi __attribute__((vector_size(MX_VW * sizeof(double))));
#define MX_LD(v, p) memcpy(&(v), (p), sizeof(mx_vd))
#define MX_ST(p, v) memcpy((p), &(v), sizeof(mx_vd))
/* Reductions keep MX_LANES partial results, element i going to lane
 * i % MX_LANES, whatever the register width: MX_NV registers of MX_VW. */
#define MX_LANES 8
#define MX_NV (MX_LANES / MX_VW)

/* ---- element-wise binary operations -------------------------------------- */

/* One kernel per operation, for every broadcast form of the inner loop
 * (both operands running along the row, one of them repeated, or both):
 * each inner loop has a fixed access pattern, so it vectorises. */
#define MX_BINARY_KERNELS(NAME, EXPR)                                         \
  static MX_INLINE void NAME(Py_ssize_t R, Py_ssize_t C, mx_view_t a,         \
                             mx_view_t b, double *restrict out) {             \
    for (Py_ssize_t i = 0; i < R; i++) {                                      \
      const double *restrict x = a.p + i * a.rs;                              \
      const double *restrict y = b.p + i * b.rs;                              \
      double *restrict o = out + i * C;                                       \
      if (a.cs && b.cs) {                                                     \
        for (Py_ssize_t j = 0; j < C; j++) {                                  \
          const double u = x[j], v = y[j];                                    \
          o[j] = (EXPR);                                                      \
        }                                                                     \
      } else if (a.cs) {                                                      \
        const double v = y[0];                                                \
        for (Py_ssize_t j = 0; j < C; j++) {                                  \
          const double u = x[j];                                              \
          o[j] = (EXPR);                                                      \
        }                                                                     \
      } else if (b.cs) {                                                      \
        const double u = x[0];                                                \
        for (Py_ssize_t j = 0; j < C; j++) {                                  \
          const double v = y[j];                                              \
          o[j] = (EXPR);                                                      \
        }                                                                     \
      } else {                                                                \
        const double u = x[0], v = y[0];                                      \
        const double r = (EXPR);                                              \
        for (Py_ssize_t j = 0; j < C; j++) {                                  \
          o[j] = r;                                                           \
        }                                                                     \
      }                                                                       \
    }                                                                         \
  }                                                                           \
  /* In place: a is R x C contiguous and also the output; b may be a          \
   * itself (same element read then written), so no restrict here: the       \
   * compiler vectorises with a run-time overlap check. */                    \
  static MX_INLINE void NAME##_ip(Py_ssize_t R, Py_ssize_t C, double *a,      \
                                  mx_view_t b) {                              \
    for (Py_ssize_t i = 0; i < R; i++) {                                      \
      double *x = a + i * C;                                                  \
      const double *y = b.p + i * b.rs;                                       \
      if (b.cs) {                                                             \
        for (Py_ssize_t j = 0; j < C; j++) {                                  \
          const double u = x[j], v = y[j];                                    \
          x[j] = (EXPR);                                                      \
        }                                                                     \
      } else {                                                                \
        const double v = y[0];                                                \
        for (Py_ssize_t j = 0; j < C; j++) {                                  \
          const double u = x[j];                                              \
          x[j] = (EXPR);                                                      \
        }                                                                     \
      }                                                                       \
    }                                                                         \
  }

MX_BINARY_KERNELS(k_add, u + v)
MX_BINARY_KERNELS(k_sub, u - v)
MX_BINARY_KERNELS(k_mul, u * v)
MX_BINARY_KERNELS(k_div, u / v)
MX_BINARY_KERNELS(k_lt, u < v ? 1.0 : 0.0)
MX_BINARY_KERNELS(k_le, u <= v ? 1.0 : 0.0)
MX_BINARY_KERNELS(k_gt, u > v ? 1.0 : 0.0)
MX_BINARY_KERNELS(k_ge, u >= v ? 1.0 : 0.0)
MX_BINARY_KERNELS(k_eq, u == v ? 1.0 : 0.0)
MX_BINARY_KERNELS(k_ne, u != v ? 1.0 : 0.0)

/* A view that is either the whole R x C array or one repeated element can
 * be walked as one long row. */
static int flat_view(mx_view_t v, Py_ssize_t C) {
  return (v.cs == 1 && v.rs == C) || (v.cs == 0 && v.rs == 0);
}

static void k_binary(mx_binop_t op, Py_ssize_t R, Py_ssize_t C,
                                   mx_view_t a, mx_view_t b, double *out) {
  if (R > 1 && flat_view(a, C) && flat_view(b, C)) {
    C *= R;
    R = 1;
  }
  switch (op) {
  case MX_OP_ADD: k_add(R, C, a, b, out); break;
  case MX_OP_SUB: k_sub(R, C, a, b, out); break;
  case MX_OP_MUL: k_mul(R, C, a, b, out); break;
  case MX_OP_DIV: k_div(R, C, a, b, out); break;
  case MX_OP_LT: k_lt(R, C, a, b, out); break;
  case MX_OP_LE: k_le(R, C, a, b, out); break;
  case MX_OP_GT: k_gt(R, C, a, b, out); break;
  case MX_OP_GE: k_ge(R, C, a, b, out); break;
  case MX_OP_EQ: k_eq(R, C, a, b, out); break;
  case MX_OP_NE: k_ne(R, C, a, b, out); break;
  default: break;
  }
}

static void k_binary_inplace(mx_binop_t op, Py_ssize_t R,
                                           Py_ssize_t C, double *a,
                                           mx_view_t b) {
  if (R > 1 && flat_view(b, C)) {
    C *= R;
    R = 1;
  }
  switch (op) {
  case MX_OP_ADD: k_add_ip(R, C, a, b); break;
  case MX_OP_SUB: k_sub_ip(R, C, a, b); break;
  case MX_OP_MUL: k_mul_ip(R, C, a, b); break;
  case MX_OP_DIV: k_div_ip(R, C, a, b); break;
  case MX_OP_LT: k_lt_ip(R, C, a, b); break;
  case MX_OP_LE: k_le_ip(R, C, a, b); break;
  case MX_OP_GT: k_gt_ip(R, C, a, b); break;
  case MX_OP_GE: k_ge_ip(R, C, a, b); break;
  case MX_OP_EQ: k_eq_ip(R, C, a, b); break;
  case MX_OP_NE: k_ne_ip(R, C, a, b); break;
  default: break;
  }
}

/* ---- element-wise unary operations --------------------------------------- */

/* Out of place (restrict, fresh output) or in place (out == a). */
#define MX_UNARY_LOOP(EXPR)                                                   \
  do {                                                                        \
    if (out == a) {                                                           \
      double *x = out;                                                        \
      for (Py_ssize_t i = 0; i < n; i++) {                                    \
        const double u = x[i];                                                \
        x[i] = (EXPR);                                                        \
      }                                                                       \
    } else {                                                                  \
      const double *restrict x = a;                                           \
      double *restrict o = out;                                               \
      for (Py_ssize_t i = 0; i < n; i++) {                                    \
        const double u = x[i];                                                \
        o[i] = (EXPR);                                                        \
      }                                                                       \
    }                                                                         \
  } while (0)

static void k_unary(mx_unop_t op, Py_ssize_t n, const double *a,
                                  double *out) {
  switch (op) {
  case MX_UN_NEG: MX_UNARY_LOOP(-u); break;
  case MX_UN_ABS: MX_UNARY_LOOP(fabs(u)); break;
  case MX_UN_CEIL: MX_UNARY_LOOP(ceil(u)); break;
  case MX_UN_FLOOR: MX_UNARY_LOOP(floor(u)); break;
  /* rint in the default rounding mode: half to even, keeps -0.0. */
  case MX_UN_ROUND: MX_UNARY_LOOP(rint(u)); break;
  case MX_UN_SQRT: MX_UNARY_LOOP(sqrt(u)); break;
  default: break;
  }
}

static void k_clip(Py_ssize_t n, const double *a, double lo,
                                 double hi, double *out) {
  /* A NaN compares false both ways and is kept. */
  MX_UNARY_LOOP(u < lo ? lo : (u > hi ? hi : u));
}

/* ---- ternary ------------------------------------------------------------- */

#define MX_AT(v, i, j) ((v).p[(i) * (v).rs + (j) * (v).cs])

/* The flat forms: a whole array (step 1) or one repeated value (step 0). */
static int flat_step(mx_view_t v, Py_ssize_t C, Py_ssize_t *step) {
  if (v.cs == 1 && v.rs == C) {
    *step = 1;
    return 1;
  }
  if (v.cs == 0 && v.rs == 0) {
    *step = 0;
    return 1;
  }
  return 0;
}

/* One loop per combination of steps, so each inner loop vectorises. */
#define MX_TERNARY_FLAT(N, X, Y, Z, sx, sy, sz, EXPR)                         \
  do {                                                                        \
    if (sy && sz) {                                                           \
      for (Py_ssize_t i = 0; i < (N); i++) {                                  \
        const double x = (X)[i * (sx)], y = (Y)[i], z = (Z)[i];               \
        o[i] = (EXPR);                                                        \
      }                                                                       \
    } else if (sy) {                                                          \
      const double z = (Z)[0];                                                \
      for (Py_ssize_t i = 0; i < (N); i++) {                                  \
        const double x = (X)[i * (sx)], y = (Y)[i];                           \
        o[i] = (EXPR);                                                        \
      }                                                                       \
    } else if (sz) {                                                          \
      const double y = (Y)[0];                                                \
      for (Py_ssize_t i = 0; i < (N); i++) {                                  \
        const double x = (X)[i * (sx)], z = (Z)[i];                           \
        o[i] = (EXPR);                                                        \
      }                                                                       \
    } else {                                                                  \
      const double y = (Y)[0], z = (Z)[0];                                    \
      for (Py_ssize_t i = 0; i < (N); i++) {                                  \
        const double x = (X)[i * (sx)];                                       \
        o[i] = (EXPR);                                                        \
      }                                                                       \
    }                                                                         \
  } while (0)

static void k_fma(Py_ssize_t R, Py_ssize_t C, mx_view_t a,
                                mx_view_t b, mx_view_t c,
                                double *restrict out) {
  Py_ssize_t sa, sb, sc;
  if (flat_step(a, C, &sa) && flat_step(b, C, &sb) && flat_step(c, C, &sc) &&
      sa == 1) {
    const double *restrict pa = a.p, *restrict pb = b.p, *restrict pc = c.p;
    double *restrict o = out;
    MX_TERNARY_FLAT(R * C, pa, pb, pc, 1, sb, sc, fma(x, y, z));
    return;
  }
  for (Py_ssize_t i = 0; i < R; i++) {
    double *restrict o = out + i * C;
    for (Py_ssize_t j = 0; j < C; j++) {
      o[j] = fma(MX_AT(a, i, j), MX_AT(b, i, j), MX_AT(c, i, j));
    }
  }
}

static void k_where(Py_ssize_t R, Py_ssize_t C, mx_view_t m,
                                  mx_view_t a, mx_view_t b,
                                  double *restrict out) {
  Py_ssize_t sm, sa, sb;
  if (flat_step(m, C, &sm) && flat_step(a, C, &sa) && flat_step(b, C, &sb) &&
      sm == 1) {
    const double *restrict pm = m.p, *restrict pa = a.p, *restrict pb = b.p;
    double *restrict o = out;
    /* NaN is "true", as any non-zero value. */
    MX_TERNARY_FLAT(R * C, pm, pa, pb, 1, sa, sb, x != 0.0 ? y : z);
    return;
  }
  for (Py_ssize_t i = 0; i < R; i++) {
    double *restrict o = out + i * C;
    for (Py_ssize_t j = 0; j < C; j++) {
      o[j] = MX_AT(m, i, j) != 0.0 ? MX_AT(a, i, j) : MX_AT(b, i, j);
    }
  }
}

/* Divides each element by the magnitude of its vector (all elements,
 * per column or per row: mags holds 1, C or R values); zero stays zero. */
static void k_scale_by(int axis, Py_ssize_t R, Py_ssize_t C,
                                     double *d, const double *mags) {
  if (axis == 0) {
    for (Py_ssize_t i = 0; i < R; i++) {
      double *x = d + i * C;
      for (Py_ssize_t j = 0; j < C; j++) {
        x[j] = mags[j] == 0.0 ? 0.0 : x[j] / mags[j];
      }
    }
    return;
  }
  for (Py_ssize_t i = 0; i < R; i++) {
    double *x = axis == 1 ? d + i * C : d;
    const Py_ssize_t n = axis == 1 ? C : R * C;
    const double mag = axis == 1 ? mags[i] : mags[0];
    if (mag == 0.0) {
      for (Py_ssize_t j = 0; j < n; j++) {
        x[j] = 0.0;
      }
    } else {
      for (Py_ssize_t j = 0; j < n; j++) {
        x[j] = x[j] / mag;
      }
    }
    if (axis != 1) {
      break; /* all elements done in one pass */
    }
  }
}

/* ---- matrix product ---------------------------------------------------------
 * i-k-j order over row-major data: the innermost loop runs along a row of
 * b and a row of the output with unit stride (vectorised), the a element
 * being a scalar.  Four output rows are updated together so that each row
 * segment of b loaded from cache feeds four multiply-adds.  For larger
 * products the j and k ranges are blocked so the block of b in use stays in
 * cache while every row of a goes past it. */

#define MX_MM_KB 128  /* rows of b per block (k) */
#define MX_MM_NB 256  /* columns per block (j): a 128 x 256 block is 256 KiB */
#define MX_MM_SMALL (64 * 64 * 64)

/* out[r0..r0+4) += a[r0..r0+4, k0..k0+kb) @ b[k0..k0+kb, j0..j0+nb) */
static MX_INLINE void mm_rows4(Py_ssize_t K, Py_ssize_t N, Py_ssize_t k0,
                               Py_ssize_t kb, Py_ssize_t j0, Py_ssize_t nb,
                               const double *restrict a,
                               const double *restrict b, double *out) {
  double *restrict c0 = out + j0;
  double *restrict c1 = c0 + N;
  double *restrict c2 = c1 + N;
  double *restrict c3 = c2 + N;
  const double *a0 = a + k0;
  const double *a1 = a0 + K;
  const double *a2 = a1 + K;
  const double *a3 = a2 + K;
  for (Py_ssize_t k = 0; k < kb; k++) {
    const double *restrict bk = b + (k0 + k) * N + j0;
    const double x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
    for (Py_ssize_t j = 0; j < nb; j++) {
      const double v = bk[j];
      c0[j] += x0 * v;
      c1[j] += x1 * v;
      c2[j] += x2 * v;
      c3[j] += x3 * v;
    }
  }
}

/* A tile is 4 rows x MX_TW columns: 8 accumulator registers. */
#define MX_TW (2 * MX_VW)

/* A 4 x MX_TW tile of the output (rows c, c + N, c + 2N, c + 3N) held in
 * registers for the whole k range: per k, one row segment of b and four
 * values of a feed 4 * MX_TW multiply-adds, with no load or store of the
 * output in between.  Same arithmetic, in the same order, as mm_rows4. */
static MX_INLINE void mm_tile(Py_ssize_t K, Py_ssize_t N, Py_ssize_t kb,
                              const double *restrict a,
                              const double *restrict b, double *restrict c) {
  mx_vd c00, c01, c10, c11, c20, c21, c30, c31, b0, b1;
  MX_LD(c00, c);
  MX_LD(c01, c + MX_VW);
  MX_LD(c10, c + N);
  MX_LD(c11, c + N + MX_VW);
  MX_LD(c20, c + 2 * N);
  MX_LD(c21, c + 2 * N + MX_VW);
  MX_LD(c30, c + 3 * N);
  MX_LD(c31, c + 3 * N + MX_VW);
  for (Py_ssize_t k = 0; k < kb; k++) {
    const double *bk = b + k * N;
    MX_LD(b0, bk);
    MX_LD(b1, bk + MX_VW);
    const double x0 = a[k], x1 = a[K + k], x2 = a[2 * K + k],
                 x3 = a[3 * K + k];
    c00 += b0 * x0;
    c01 += b1 * x0;
    c10 += b0 * x1;
    c11 += b1 * x1;
    c20 += b0 * x2;
    c21 += b1 * x2;
    c30 += b0 * x3;
    c31 += b1 * x3;
  }
  MX_ST(c, c00);
  MX_ST(c + MX_VW, c01);
  MX_ST(c + N, c10);
  MX_ST(c + N + MX_VW, c11);
  MX_ST(c + 2 * N, c20);
  MX_ST(c + 2 * N + MX_VW, c21);
  MX_ST(c + 3 * N, c30);
  MX_ST(c + 3 * N + MX_VW, c31);
}

static MX_INLINE void mm_row1(Py_ssize_t N, Py_ssize_t k0, Py_ssize_t kb,
                              Py_ssize_t j0, Py_ssize_t nb,
                              const double *restrict a,
                              const double *restrict b, double *out) {
  double *restrict c0 = out + j0;
  for (Py_ssize_t k = 0; k < kb; k++) {
    const double *restrict bk = b + (k0 + k) * N + j0;
    const double x0 = a[k0 + k];
    for (Py_ssize_t j = 0; j < nb; j++) {
      c0[j] += x0 * bk[j];
    }
  }
}

static void k_matmul(Py_ssize_t R, Py_ssize_t K, Py_ssize_t N,
                                   const double *restrict a,
                                   const double *restrict b,
                                   double *restrict out) {
  memset(out, 0, (size_t)R * (size_t)N * sizeof(double));
  Py_ssize_t kblock = K, nblock = N;
  if ((double)R * (double)K * (double)N > (double)MX_MM_SMALL) {
    kblock = MX_MM_KB;
    nblock = MX_MM_NB;
  }
  for (Py_ssize_t j0 = 0; j0 < N; j0 += nblock) {
    const Py_ssize_t nb = N - j0 < nblock ? N - j0 : nblock;
    for (Py_ssize_t k0 = 0; k0 < K; k0 += kblock) {
      const Py_ssize_t kb = K - k0 < kblock ? K - k0 : kblock;
      Py_ssize_t i = 0;
      for (; i + 4 <= R; i += 4) {
        Py_ssize_t j = j0;
        for (; j + MX_TW <= j0 + nb; j += MX_TW) {
          mm_tile(K, N, kb, a + i * K + k0, b + k0 * N + j, out + i * N + j);
        }
        if (j < j0 + nb) {
          mm_rows4(K, N, k0, kb, j, j0 + nb - j, a + i * K, b, out + i * N);
        }
      }
      for (; i < R; i++) {
        mm_row1(N, k0, kb, j0, nb, a + i * K, b, out + i * N);
      }
    }
  }
}

/* ---- transpose (32 x 32 tiles: both sides stay in cache) ----------------- */

static void k_transpose(Py_ssize_t R, Py_ssize_t C,
                                      const double *restrict a,
                                      double *restrict out) {
  enum { T = 32 };
  if (R == 1 || C == 1) {
    memcpy(out, a, (size_t)R * (size_t)C * sizeof(double));
    return;
  }
  for (Py_ssize_t i0 = 0; i0 < R; i0 += T) {
    const Py_ssize_t i1 = i0 + T < R ? i0 + T : R;
    for (Py_ssize_t j0 = 0; j0 < C; j0 += T) {
      const Py_ssize_t j1 = j0 + T < C ? j0 + T : C;
      for (Py_ssize_t i = i0; i < i1; i++) {
        for (Py_ssize_t j = j0; j < j1; j++) {
          out[j * R + i] = a[i * C + j];
        }
      }
    }
  }
}

/* ---- reductions -------------------------------------------------------------
 * Over contiguous values: MX_LANES interleaved partial results (element i
 * into lane i % MX_LANES, the last n % MX_LANES elements into lanes 0..),
 * combined in a fixed order at the end.  That order is the same in every
 * build, so every build gives the same bits; the loops are explicit vector
 * code (no reassociation flags needed).  min/max propagate NaN, as NumPy
 * does. */

/* Bitwise | (not ||): no branch, so the column loops if-convert and
 * vectorise.  Once m is NaN no comparison replaces it. */
#define MX_MIN_STEP(m, x) ((((x) < (m)) | ((x) != (x))) ? (x) : (m))
#define MX_MAX_STEP(m, x) ((((x) > (m)) | ((x) != (x))) ? (x) : (m))

static double combine_sum(const double *p) {
  return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* Sum of a[i] (b == NULL, square = 0), of a[i]^2 (square = 1) or of
 * a[i] * b[i]. */
static double k_sum(Py_ssize_t n, const double *a, const double *b,
                    int square) {
  mx_vd acc[MX_NV], x, y;
  double p[MX_LANES];
  memset(acc, 0, sizeof(acc));
  Py_ssize_t i = 0;
  if (b != NULL) {
    for (; i + MX_LANES <= n; i += MX_LANES) {
      for (int v = 0; v < MX_NV; v++) {
        MX_LD(x, a + i + v * MX_VW);
        MX_LD(y, b + i + v * MX_VW);
        acc[v] += x * y;
      }
    }
  } else if (square) {
    for (; i + MX_LANES <= n; i += MX_LANES) {
      for (int v = 0; v < MX_NV; v++) {
        MX_LD(x, a + i + v * MX_VW);
        acc[v] += x * x;
      }
    }
  } else {
    for (; i + MX_LANES <= n; i += MX_LANES) {
      for (int v = 0; v < MX_NV; v++) {
        MX_LD(x, a + i + v * MX_VW);
        acc[v] += x;
      }
    }
  }
  memcpy(p, acc, sizeof(p));
  for (Py_ssize_t t = 0; i + t < n; t++) {
    const double u = a[i + t];
    p[t] += b != NULL ? u * b[i + t] : square ? u * u : u;
  }
  return combine_sum(p);
}

/* min (want_max = 0) or max of n >= 1 values.  nan_wins: a NaN anywhere
 * gives NaN (min/max); otherwise NaNs are skipped, which needs a[0] not
 * NaN (argmin/argmax). */
static double k_best(int want_max, int nan_wins, Py_ssize_t n,
                     const double *a) {
  mx_vd acc[MX_NV], x;
  mx_vi nan = {0};
  double p[MX_LANES];
  for (int l = 0; l < MX_LANES; l++) {
    p[l] = a[0];
  }
  memcpy(acc, p, sizeof(acc));
  Py_ssize_t i = 0;
  for (; i + MX_LANES <= n; i += MX_LANES) {
    for (int v = 0; v < MX_NV; v++) {
      MX_LD(x, a + i + v * MX_VW);
      const mx_vi take = want_max ? (x > acc[v]) : (x < acc[v]);
      acc[v] = (mx_vd)(((mx_vi)x & take) | ((mx_vi)acc[v] & ~take));
      nan |= (x != x);
    }
  }
  memcpy(p, acc, sizeof(p));
  for (Py_ssize_t t = 0; i + t < n; t++) {
    const double u = a[i + t];
    if (u != u && nan_wins) {
      return u;
    }
    p[t] = (want_max ? u > p[t] : u < p[t]) ? u : p[t]; /* NaN: skipped */
  }
  if (nan_wins) {
    long long any[MX_VW];
    memcpy(any, &nan, sizeof(any));
    for (int l = 0; l < MX_VW; l++) {
      if (any[l] != 0) {
        return (double)NAN;
      }
    }
  }
  double m = p[0];
  for (int l = 1; l < MX_LANES; l++) {
    m = (want_max ? p[l] > m : p[l] < m) ? p[l] : m;
  }
  return m;
}

static double k_reduce_all(mx_red_t kind, Py_ssize_t n, const double *a) {
  switch (kind) {
  case MX_RED_SUM:
    return k_sum(n, a, NULL, 0);
  case MX_RED_SUMSQ:
    return k_sum(n, a, NULL, 1);
  case MX_RED_MIN:
    return k_best(0, 1, n, a);
  case MX_RED_MAX:
    return k_best(1, 1, n, a);
  }
  return 0.0;
}

static void k_reduce_cols(mx_red_t kind, Py_ssize_t R,
                                        Py_ssize_t C, const double *restrict a,
                                        double *restrict out) {
  switch (kind) {
  case MX_RED_SUM:
    memcpy(out, a, (size_t)C * sizeof(double));
    for (Py_ssize_t i = 1; i < R; i++) {
      const double *restrict x = a + i * C;
      for (Py_ssize_t j = 0; j < C; j++) {
        out[j] += x[j];
      }
    }
    break;
  case MX_RED_SUMSQ:
    for (Py_ssize_t j = 0; j < C; j++) {
      out[j] = a[j] * a[j];
    }
    for (Py_ssize_t i = 1; i < R; i++) {
      const double *restrict x = a + i * C;
      for (Py_ssize_t j = 0; j < C; j++) {
        out[j] += x[j] * x[j];
      }
    }
    break;
  case MX_RED_MIN:
    memcpy(out, a, (size_t)C * sizeof(double));
    for (Py_ssize_t i = 1; i < R; i++) {
      const double *restrict x = a + i * C;
      for (Py_ssize_t j = 0; j < C; j++) {
        out[j] = MX_MIN_STEP(out[j], x[j]);
      }
    }
    break;
  case MX_RED_MAX:
    memcpy(out, a, (size_t)C * sizeof(double));
    for (Py_ssize_t i = 1; i < R; i++) {
      const double *restrict x = a + i * C;
      for (Py_ssize_t j = 0; j < C; j++) {
        out[j] = MX_MAX_STEP(out[j], x[j]);
      }
    }
    break;
  }
}

static void k_reduce_rows(mx_red_t kind, Py_ssize_t R, Py_ssize_t C,
                      const double *a, double *out) {
  for (Py_ssize_t i = 0; i < R; i++) {
    out[i] = k_reduce_all(kind, C, a + i * C);
  }
}

static void k_vecdot(int axis, Py_ssize_t R, Py_ssize_t C, mx_view_t a,
                     mx_view_t b, double *out) {
  const int flat =
      a.cs == 1 && b.cs == 1 && (R == 1 || (a.rs == C && b.rs == C));
  if (axis == 0) {
    for (Py_ssize_t j = 0; j < C; j++) {
      out[j] = 0.0;
    }
    for (Py_ssize_t i = 0; i < R; i++) {
      if (flat) {
        const double *restrict x = a.p + i * C, *restrict y = b.p + i * C;
        for (Py_ssize_t j = 0; j < C; j++) {
          out[j] += x[j] * y[j];
        }
      } else {
        for (Py_ssize_t j = 0; j < C; j++) {
          out[j] += MX_AT(a, i, j) * MX_AT(b, i, j);
        }
      }
    }
    return;
  }
  if (flat && axis != 1) {
    out[0] = k_sum(R * C, a.p, b.p, 0);
    return;
  }
  double total = 0.0;
  for (Py_ssize_t i = 0; i < R; i++) {
    double s;
    if (a.cs == 1 && b.cs == 1) {
      s = k_sum(C, a.p + i * a.rs, b.p + i * b.rs, 0);
    } else {
      s = 0.0;
      for (Py_ssize_t j = 0; j < C; j++) {
        s += MX_AT(a, i, j) * MX_AT(b, i, j);
      }
    }
    if (axis == 1) {
      out[i] = s;
    } else {
      total += s;
    }
  }
  if (axis != 1) {
    out[0] = total;
  }
}

/* Contiguous values: the best non-NaN value in one vectorised pass, then
 * the first index holding it. */
static Py_ssize_t k_argbest_flat(int want_max, Py_ssize_t n,
                                 const double *a) {
  if (a[0] != a[0]) {
    return 0; /* a NaN wins only when it comes first */
  }
  const double m = k_best(want_max, 0, n, a);
  for (Py_ssize_t i = 0; i < n; i++) {
    if (a[i] == m) {
      return i;
    }
  }
  return 0; /* unreachable: m is one of the values */
}

static Py_ssize_t k_argbest(int want_max, Py_ssize_t n, const double *a,
                        Py_ssize_t stride) {
  if (stride == 1) {
    return k_argbest_flat(want_max, n, a);
  }
  Py_ssize_t best = 0;
  double v = a[0];
  for (Py_ssize_t i = 1; i < n; i++) {
    const double x = a[i * stride];
    if (want_max ? x > v : x < v) {
      v = x;
      best = i;
    }
  }
  return best;
}


/* ---- this compilation's table -------------------------------------------- */

#ifdef MX_KERNEL_V3
#define MX_TABLE mx_kernels_v3
#define MX_KERNEL_NAME "x86-64-v3"
#else
#define MX_TABLE mx_kernels_base
#define MX_KERNEL_NAME "base"
#endif

const mx_kernels_t MX_TABLE = {
    .name = MX_KERNEL_NAME,
    .binary = k_binary,
    .binary_inplace = k_binary_inplace,
    .unary = k_unary,
    .clip = k_clip,
    .fma = k_fma,
    .where = k_where,
    .scale_by = k_scale_by,
    .matmul = k_matmul,
    .transpose = k_transpose,
    .reduce_all = k_reduce_all,
    .reduce_cols = k_reduce_cols,
    .reduce_rows = k_reduce_rows,
    .vecdot = k_vecdot,
    .argbest = k_argbest,
};

/* ---- the entry points (baseline compilation only) ------------------------ */

#ifndef MX_KERNEL_V3

/* The table in use: chosen on first use, then fixed.  Tables are immutable
 * static data, so racing first uses (interpreters with their own GILs) just
 * store the same pointer. */
static _Atomic(const mx_kernels_t *) mx_table;

static const mx_kernels_t *choose(void) {
  const char *force = getenv("BOCPY_MATRIX_KERNELS");
  if (force != NULL && strcmp(force, "base") == 0) {
    return &mx_kernels_base;
  }
#if defined(MX_HAVE_V3)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return &mx_kernels_v3;
  }
#endif
  return &mx_kernels_base;
}

const mx_kernels_t *mx_kernels(void) {
  /* relaxed: the pointee is static data initialised before any thread
   * ran; only the pointer itself is published here. */
  const mx_kernels_t *t = atomic_load_explicit(&mx_table, memory_order_relaxed);
  if (t == NULL) {
    t = choose();
    atomic_store_explicit(&mx_table, t, memory_order_relaxed);
  }
  return t;
}

void mx_k_binary(mx_binop_t op, Py_ssize_t R, Py_ssize_t C, mx_view_t a,
                 mx_view_t b, double *out) {
  mx_kernels()->binary(op, R, C, a, b, out);
}

void mx_k_binary_inplace(mx_binop_t op, Py_ssize_t R, Py_ssize_t C, double *a,
                         mx_view_t b) {
  mx_kernels()->binary_inplace(op, R, C, a, b);
}

void mx_k_unary(mx_unop_t op, Py_ssize_t n, const double *a, double *out) {
  mx_kernels()->unary(op, n, a, out);
}

void mx_k_clip(Py_ssize_t n, const double *a, double lo, double hi,
               double *out) {
  mx_kernels()->clip(n, a, lo, hi, out);
}

void mx_k_fma(Py_ssize_t R, Py_ssize_t C, mx_view_t a, mx_view_t b,
              mx_view_t c, double *out) {
  mx_kernels()->fma(R, C, a, b, c, out);
}

void mx_k_where(Py_ssize_t R, Py_ssize_t C, mx_view_t m, mx_view_t a,
                mx_view_t b, double *out) {
  mx_kernels()->where(R, C, m, a, b, out);
}

void mx_k_scale_by(int axis, Py_ssize_t R, Py_ssize_t C, double *d,
                   const double *mags) {
  mx_kernels()->scale_by(axis, R, C, d, mags);
}

void mx_k_matmul(Py_ssize_t R, Py_ssize_t K, Py_ssize_t N, const double *a,
                 const double *b, double *out) {
  mx_kernels()->matmul(R, K, N, a, b, out);
}

void mx_k_transpose(Py_ssize_t R, Py_ssize_t C, const double *a,
                    double *out) {
  mx_kernels()->transpose(R, C, a, out);
}

double mx_k_reduce_all(mx_red_t kind, Py_ssize_t n, const double *a) {
  return mx_kernels()->reduce_all(kind, n, a);
}

void mx_k_reduce_cols(mx_red_t kind, Py_ssize_t R, Py_ssize_t C,
                      const double *a, double *out) {
  mx_kernels()->reduce_cols(kind, R, C, a, out);
}

void mx_k_reduce_rows(mx_red_t kind, Py_ssize_t R, Py_ssize_t C,
                      const double *a, double *out) {
  mx_kernels()->reduce_rows(kind, R, C, a, out);
}

void mx_k_vecdot(int axis, Py_ssize_t R, Py_ssize_t C, mx_view_t a,
                 mx_view_t b, double *out) {
  mx_kernels()->vecdot(axis, R, C, a, b, out);
}

Py_ssize_t mx_k_argbest(int want_max, Py_ssize_t n, const double *a,
                        Py_ssize_t stride) {
  return mx_kernels()->argbest(want_max, n, a, stride);
}

#endif /* !MX_KERNEL_V3 */
