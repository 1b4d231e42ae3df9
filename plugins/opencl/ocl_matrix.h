/* ocl_matrix.h - bocpy.Matrix data for the device: recognising a Matrix,
 * viewing its numbers through its buffer protocol, making a new one, and
 * uploading a copy into a device buffer.
 *
 * Main interpreter, the Context's thread, GIL held.  PyObject * results are
 * new references; int functions return 0 or -1 with an exception set. */
#ifndef BOCPY_PLUGIN_OCL_MATRIX_H
#define BOCPY_PLUGIN_OCL_MATRIX_H

#include "ocl_obj.h"

/* 1 when o is a bocpy.Matrix, 0 when not, -1 on error. */
int ocl_is_matrix(ocl_state *st, PyObject *o);
/* 0 when o is a bocpy.Matrix; -1 with TypeError "<what> must be a
 * bocpy.Matrix" when not (or another error). */
int ocl_need_matrix(ocl_state *st, PyObject *o, const char *what);

/* A C-contiguous rows x columns float64 view of Matrix m, through the
 * Matrix's buffer protocol: owner only (RuntimeError from the Matrix
 * otherwise), and while the view is held the matrix cannot move to another
 * interpreter or change shape (BufferError from the Matrix). */
int ocl_matrix_view(PyObject *m, Py_buffer *view, int writable);
/* A new zeroed rows x cols Matrix. */
PyObject *ocl_matrix_new(ocl_state *st, Py_ssize_t rows, Py_ssize_t cols);

/* ValueError "<prefix><bytes> bytes is larger than the device's largest
 * allocation" when the device cannot allocate `bytes` at once. */
int ocl_check_alloc(ocl_ctx_t *c, size_t bytes, const char *prefix);

/* A device buffer holding a copy of the view's doubles as type k (the data
 * is copied before this returns).  NULL with an exception. */
cl_mem ocl_upload(ocl_ctx_t *c, const Py_buffer *view, ocl_kind k,
                  cl_mem_flags flags);

#endif /* BOCPY_PLUGIN_OCL_MATRIX_H */
