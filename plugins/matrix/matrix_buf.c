/* matrix_buf.c - the shared record (see matrix_buf.h): allocation,
 * reference counting and the live-record statistic.  No Python objects;
 * mx_buf_new raises MemoryError / ValueError through the C API.
 */
#include "matrix_buf.h"

#include <stdlib.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

_Static_assert(offsetof(mx_buf_t, data) % 64 == 0,
               "matrix data must start on a cache line");

/* Records alive in the process, for leak tests.  A plain counter shared by
 * every interpreter (no Python object). */
static _Atomic int64_t mx_live_records;

mx_buf_t *mx_buf_new(Py_ssize_t rows, Py_ssize_t cols, int zero,
                     int64_t owner) {
  const size_t header = offsetof(mx_buf_t, data);
  if (rows < 1 || cols < 1 ||
      (size_t)rows > (SIZE_MAX / 2 - header) / sizeof(double) / (size_t)cols ||
      (size_t)rows * (size_t)cols > (size_t)PY_SSIZE_T_MAX / sizeof(double)) {
    PyErr_Format(PyExc_ValueError, "a %zd x %zd matrix is too large", rows,
                 cols);
    return NULL;
  }
  const size_t n = (size_t)rows * (size_t)cols;
  /* Raw process-global memory: the record outlives interpreters and is freed
   * by whichever thread drops the last reference (never PyMem).  64 spare
   * bytes align the record (and so the data) on a cache line.  Zeroed
   * records come from calloc, which hands out fresh pages lazily (a large
   * zero matrix costs no page faults until it is written). */
  const size_t bytes = header + n * sizeof(double) + 64;
  void *raw = zero ? calloc(1, bytes) : malloc(bytes);
  if (raw == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  /* Large records: ask for transparent huge pages on the 2 MiB-aligned
   * interior before anything touches it (as NumPy does for its arrays):
   * 512 times fewer page faults and TLB misses when a 32 MiB image is
   * first written (from_buffer, copies, results).  Advice only: the
   * return value is ignored. */
  if (bytes >= ((size_t)4 << 20)) {
    const uintptr_t huge = (uintptr_t)2 << 20;
    const uintptr_t lo = ((uintptr_t)raw + huge - 1) & ~(huge - 1);
    const uintptr_t hi = ((uintptr_t)raw + bytes) & ~(huge - 1);
    if (hi > lo) {
      (void)madvise((void *)lo, (size_t)(hi - lo), MADV_HUGEPAGE);
    }
  }
#endif
  mx_buf_t *b = (mx_buf_t *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
  b->alloc = raw;
  /* Not yet visible to any other thread: plain initialisation. */
  atomic_init(&b->refs, 1);
  b->owner = owner;
  b->exports = 0;
  b->epoch = 0;
  b->holders = 0;
  b->rows = rows;
  b->cols = cols;
  /* relaxed: a statistic, ordered with nothing. */
  atomic_fetch_add_explicit(&mx_live_records, 1, memory_order_relaxed);
  return b;
}

void mx_buf_incref(mx_buf_t *b) {
  /* relaxed: the caller already holds a reference, so the record cannot
   * die concurrently; the reference itself publishes nothing. */
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void mx_buf_decref(mx_buf_t *b) {
  /* acq_rel: the release half orders this holder's last writes before the
   * drop; the acquire half makes the thread that frees the record see the
   * writes of every other holder. */
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    free(b->alloc);
    /* relaxed: a statistic. */
    atomic_fetch_sub_explicit(&mx_live_records, 1, memory_order_relaxed);
  }
}

int64_t mx_buf_live(void) {
  /* relaxed: a statistic (tests read it at quiescence). */
  return atomic_load_explicit(&mx_live_records, memory_order_relaxed);
}

