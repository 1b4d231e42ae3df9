/* matrix_view.h - MatrixView (0.14): a 1-D read/write window onto one row
 * or one column of a Matrix (or a slice of one), aliasing its storage.
 * Defined in matrix_view.c; depends on matrix_obj.h, matrix_args.h and
 * matrix_convert.h.
 *
 * A view holds a strong reference to its source Matrix object (so the
 * whole record stays alive) and checks on every access that this
 * interpreter still owns the source and that its shape has not changed.
 * Views are not shareable: pickling or sending one raises TypeError
 * (copy() gives an independent Matrix).  Arithmetic materialises a new
 * Matrix (so `v += x` rebinds v; nothing is written through).
 */
#ifndef BOCPY_PLUGIN_MATRIX_VIEW_H
#define BOCPY_PLUGIN_MATRIX_VIEW_H

#include "matrix_obj.h"

/* Makes this interpreter's MatrixView type and the type of m.view (the
 * indexer) into st (strong references) and adds MatrixView to module. */
int mx_view_types_create(PyObject *module, mx_state_t *st);

/* Matrix methods and the m.view property. */
PyObject *mx_meth_row_view(PyObject *self, PyObject *arg);
PyObject *mx_meth_column_view(PyObject *self, PyObject *arg);
PyObject *mx_get_view(PyObject *self, void *closure);

#endif /* BOCPY_PLUGIN_MATRIX_VIEW_H */
