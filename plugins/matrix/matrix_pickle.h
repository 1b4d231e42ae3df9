/* matrix_pickle.h - pickling a Matrix: __reduce__ and the module's
 * _from_buffer unpickling helper.  Defined in matrix_pickle.c; depends on
 * matrix_obj.h and matrix_args.h.
 *
 * Inside a bocpy encoding the matrix moves by share/rebuild (reduce_shared
 * records it); anywhere else pickle.dumps / copy get a self-contained copy
 * of the numbers.
 */
#ifndef BOCPY_PLUGIN_MATRIX_PICKLE_H
#define BOCPY_PLUGIN_MATRIX_PICKLE_H

#include "matrix_obj.h"

/* Matrix.__reduce__ (METH_NOARGS). */
PyObject *mx_meth_reduce(PyObject *self, PyObject *unused);
/* The module function _from_buffer(rows, columns, data, byteorder)
 * (METH_FASTCALL) and its docstring. */
PyObject *mx_unpickle(PyObject *module, PyObject *const *args,
                      Py_ssize_t nargs);
extern const char mx_unpickle_doc[];

#endif /* BOCPY_PLUGIN_MATRIX_PICKLE_H */
