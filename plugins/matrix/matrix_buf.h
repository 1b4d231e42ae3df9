/* matrix_buf.h - the shared record of a matrix's numbers (a leaf: no
 * other plugin header).
 *
 * The numbers live in a raw-allocated, process-global, reference-counted
 * record with an owner word handled by the ABI's owner_* entries: exactly
 * one interpreter may read or write the record at a time (matrix_obj.h
 * explains the ownership flip).  Defined in matrix_buf.c.
 */
#ifndef BOCPY_PLUGIN_MATRIX_BUF_H
#define BOCPY_PLUGIN_MATRIX_BUF_H

#include <Python.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mx_buf {
  _Atomic int64_t refs;   /* wrappers + payloads holding the record */
  int64_t owner;          /* owner word: only through abi->owner_* */
  Py_ssize_t exports;     /* owner only: live buffer-protocol exports */
  uint64_t epoch;         /* owner only: bumped whenever the owner changes
                             hands, so wrappers from an earlier ownership
                             in the same interpreter stay dead */
  Py_ssize_t holders;     /* owner only: live wrappers of this epoch; the
                             last one to die gives the record back */
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

#endif /* BOCPY_PLUGIN_MATRIX_BUF_H */
