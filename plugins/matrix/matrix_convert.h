/* matrix_convert.h - Python values to new matrices: sequences (those that
 * also export a buffer of numbers, like NumPy arrays, through
 * matrix_buffer.h).  Defined in matrix_convert.c; depends on matrix_obj.h,
 * matrix_args.h and matrix_buffer.h.
 */
#ifndef BOCPY_PLUGIN_MATRIX_CONVERT_H
#define BOCPY_PLUGIN_MATRIX_CONVERT_H

#include "matrix_obj.h"

/* A new Matrix from a flat or nested sequence (a flat one is 1 x n, or
 * n x 1 when as_column), or a copy of a Matrix.  NULL with TypeError
 * (non-numbers, not a sequence) or ValueError (empty, ragged). */
mx_t *mx_from_sequence(mx_state_t *st, PyObject *seq, int as_column);

/* 1 when o looks like a row of numbers (a list, tuple, Matrix or another
 * sequence that is not str / bytes / bytearray). */
int mx_is_rowlike(PyObject *o);

#endif /* BOCPY_PLUGIN_MATRIX_CONVERT_H */
