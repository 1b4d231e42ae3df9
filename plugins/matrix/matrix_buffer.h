/* matrix_buffer.h - the buffer protocol, both ways: a Matrix exports its
 * numbers (float64, 2-D, C-contiguous, writable) to memoryview / NumPy in
 * the interpreter that owns it, and new matrices are made from any 1-D or
 * 2-D buffer of numbers.  Defined in matrix_buffer.c; depends on
 * matrix_obj.h and matrix_args.h.
 *
 * While an export is alive (buf->exports > 0) the record may neither move
 * to another interpreter (the share hook refuses with BufferError) nor
 * change shape (transpose(in_place=True) refuses): the exporter's memory
 * and shape stay valid until the last PyBuffer_Release.  Exports are
 * counted on the record, not the wrapper, so a second wrapper of the same
 * record in the same interpreter cannot send it away either.
 */
#ifndef BOCPY_PLUGIN_MATRIX_BUFFER_H
#define BOCPY_PLUGIN_MATRIX_BUFFER_H

#include "matrix_obj.h"

/* The Py_bf_getbuffer / Py_bf_releasebuffer slots. */
int mx_getbuffer(PyObject *self, Py_buffer *view, int flags);
void mx_releasebuffer(PyObject *self, Py_buffer *view);

/* 0 when m's record has no live export, else -1 with BufferError saying
 * that `action` (e.g. "send this matrix to another interpreter") is
 * impossible and naming the number of live exports. */
int mx_no_exports(mx_t *m, const char *action);

/* A new matrix from the buffer of obj: 1-D (a 1 x n row, n x 1 when
 * as_column) or 2-D, any strides, float64 (one memcpy when C-contiguous
 * and native), float32 / float16 / signed and unsigned ints / bool
 * converted.  Returns 1 with *out set; -1 with an exception (BufferError,
 * TypeError for element formats that are not numbers, ValueError for 0-D,
 * 3-D or empty buffers); 0 with nothing raised when `implicit` and obj is
 * not a buffer of numbers we convert (the caller falls back to the
 * sequence protocol). */
int mx_from_buffer_object(mx_state_t *st, PyObject *obj, int as_column,
                          int implicit, mx_t **out);

#endif /* BOCPY_PLUGIN_MATRIX_BUFFER_H */
