/* matrix_kernels.c - the numeric loops of bocpy.plugins.matrix.
 *
 * Plain C over raw row-major arrays: no Python objects, no errors.  Built
 * with -O3 -fno-math-errno (so sqrt/floor/ceil/rint become instructions and
 * the loops vectorise); when the compiler supports it (MX_HAVE_TARGET_CLONES,
 * checked by CMake) the hot entry points are also compiled for AVX2 and the
 * dynamic loader picks the variant the CPU supports.  No -ffast-math: every
 * variant computes the same IEEE results (no reassociation or contraction
 * the source does not spell out).
 *
 * Output arrays handed to the out-of-place kernels are freshly allocated by
 * the caller, so they never overlap the inputs: hence the restrict
 * qualifiers.  Inputs may overlap each other (they are only read).
 */
#include "matrix.h"

#include <math.h>
#include <string.h>

#if defined(MX_HAVE_TARGET_CLONES)
#define MX_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MX_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MX_INLINE inline __attribute__((always_inline))
#else
#define MX_INLINE inline
#endif

/* ---- element-wise binary operations ------------------------------------------------ */

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

MX_CLONES void mx_k_binary(mx_binop_t op, Py_ssize_t R, Py_ssize_t C,
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

MX_CLONES void mx_k_binary_inplace(mx_binop_t op, Py_ssize_t R, Py_ssize_t C,
                                   double *a, mx_view_t b) {
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

/* ---- element-wise unary operations ------------------------------------------------- */

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

MX_CLONES void mx_k_unary(mx_unop_t op, Py_ssize_t n, const double *a,
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

MX_CLONES void mx_k_clip(Py_ssize_t n, const double *a, double lo, double hi,
                         double *out) {
  /* A NaN compares false both ways and is kept. */
  MX_UNARY_LOOP(u < lo ? lo : (u > hi ? hi : u));
}

/* ---- ternary --------------------------------------------------------------------------- */

#define MX_AT(v, i, j) ((v).p[(i) * (v).rs + (j) * (v).cs])

void mx_k_fma(Py_ssize_t R, Py_ssize_t C, mx_view_t a, mx_view_t b,
              mx_view_t c, double *out) {
  for (Py_ssize_t i = 0; i < R; i++) {
    double *restrict o = out + i * C;
    for (Py_ssize_t j = 0; j < C; j++) {
      o[j] = fma(MX_AT(a, i, j), MX_AT(b, i, j), MX_AT(c, i, j));
    }
  }
}

void mx_k_where(Py_ssize_t R, Py_ssize_t C, mx_view_t m, mx_view_t a,
                mx_view_t b, double *out) {
  for (Py_ssize_t i = 0; i < R; i++) {
    double *restrict o = out + i * C;
    for (Py_ssize_t j = 0; j < C; j++) {
      /* NaN is "true", as any non-zero value. */
      o[j] = MX_AT(m, i, j) != 0.0 ? MX_AT(a, i, j) : MX_AT(b, i, j);
    }
  }
}

/* ---- matrix product ----------------------------------------------------------------------
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

MX_CLONES void mx_k_matmul(Py_ssize_t R, Py_ssize_t K, Py_ssize_t N,
                           const double *restrict a, const double *restrict b,
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
        mm_rows4(K, N, k0, kb, j0, nb, a + i * K, b, out + i * N);
      }
      for (; i < R; i++) {
        mm_row1(N, k0, kb, j0, nb, a + i * K, b, out + i * N);
      }
    }
  }
}

/* ---- transpose (32 x 32 tiles: both sides stay in cache) ---------------------------- */

MX_CLONES void mx_k_transpose(Py_ssize_t R, Py_ssize_t C,
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

/* ---- reductions -------------------------------------------------------------------------
 * Sums use four interleaved partial sums (a fixed, documented order: the
 * loop vectorises without reassociation flags, and every build gives the
 * same result).  min/max propagate NaN, as NumPy does. */

#define MX_MIN_STEP(m, x) (((x) < (m) || (x) != (x)) ? (x) : (m))
#define MX_MAX_STEP(m, x) (((x) > (m) || (x) != (x)) ? (x) : (m))

MX_CLONES double mx_k_reduce_all(mx_red_t kind, Py_ssize_t n,
                                 const double *a) {
  Py_ssize_t i = 0;
  switch (kind) {
  case MX_RED_SUM:
  case MX_RED_SUMSQ: {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    if (kind == MX_RED_SUM) {
      for (; i + 4 <= n; i += 4) {
        s0 += a[i];
        s1 += a[i + 1];
        s2 += a[i + 2];
        s3 += a[i + 3];
      }
      for (; i < n; i++) {
        s0 += a[i];
      }
    } else {
      for (; i + 4 <= n; i += 4) {
        s0 += a[i] * a[i];
        s1 += a[i + 1] * a[i + 1];
        s2 += a[i + 2] * a[i + 2];
        s3 += a[i + 3] * a[i + 3];
      }
      for (; i < n; i++) {
        s0 += a[i] * a[i];
      }
    }
    return (s0 + s1) + (s2 + s3);
  }
  case MX_RED_MIN:
  case MX_RED_MAX: {
    double m0 = a[0], m1 = a[0], m2 = a[0], m3 = a[0];
    if (kind == MX_RED_MIN) {
      for (; i + 4 <= n; i += 4) {
        m0 = MX_MIN_STEP(m0, a[i]);
        m1 = MX_MIN_STEP(m1, a[i + 1]);
        m2 = MX_MIN_STEP(m2, a[i + 2]);
        m3 = MX_MIN_STEP(m3, a[i + 3]);
      }
      for (; i < n; i++) {
        m0 = MX_MIN_STEP(m0, a[i]);
      }
      m0 = MX_MIN_STEP(m0, m1);
      m2 = MX_MIN_STEP(m2, m3);
      return MX_MIN_STEP(m0, m2);
    }
    for (; i + 4 <= n; i += 4) {
      m0 = MX_MAX_STEP(m0, a[i]);
      m1 = MX_MAX_STEP(m1, a[i + 1]);
      m2 = MX_MAX_STEP(m2, a[i + 2]);
      m3 = MX_MAX_STEP(m3, a[i + 3]);
    }
    for (; i < n; i++) {
      m0 = MX_MAX_STEP(m0, a[i]);
    }
    m0 = MX_MAX_STEP(m0, m1);
    m2 = MX_MAX_STEP(m2, m3);
    return MX_MAX_STEP(m0, m2);
  }
  }
  return 0.0;
}

/* Per column: the running values form a row that every row of a updates
 * with unit stride. */
MX_CLONES void mx_k_reduce_cols(mx_red_t kind, Py_ssize_t R, Py_ssize_t C,
                                const double *restrict a,
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

void mx_k_reduce_rows(mx_red_t kind, Py_ssize_t R, Py_ssize_t C,
                      const double *a, double *out) {
  for (Py_ssize_t i = 0; i < R; i++) {
    out[i] = mx_k_reduce_all(kind, C, a + i * C);
  }
}

void mx_k_vecdot(int axis, Py_ssize_t R, Py_ssize_t C, mx_view_t a,
                 mx_view_t b, double *out) {
  if (axis == 0) {
    for (Py_ssize_t j = 0; j < C; j++) {
      out[j] = 0.0;
    }
    for (Py_ssize_t i = 0; i < R; i++) {
      for (Py_ssize_t j = 0; j < C; j++) {
        out[j] += MX_AT(a, i, j) * MX_AT(b, i, j);
      }
    }
    return;
  }
  double total = 0.0;
  for (Py_ssize_t i = 0; i < R; i++) {
    double s = 0.0;
    for (Py_ssize_t j = 0; j < C; j++) {
      s += MX_AT(a, i, j) * MX_AT(b, i, j);
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

Py_ssize_t mx_k_argbest(int want_max, Py_ssize_t n, const double *a,
                        Py_ssize_t stride) {
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
