/* matrix_kernels_v3.c - matrix_kernels.c compiled for x86-64-v3 (built with
 * -mavx2 -mfma, see CMakeLists.txt): the same static kernels in one more
 * table, mx_kernels_v3, used when the CPU has AVX2 and FMA. */
#define MX_KERNEL_V3 1
#include "matrix_kernels.c"
