/* matrix_type.h - the Matrix type object (defined in matrix_type.c; depends
 * on every other plugin header except matrix_module.c's).
 */
#ifndef BOCPY_PLUGIN_MATRIX_TYPE_H
#define BOCPY_PLUGIN_MATRIX_TYPE_H

#include "matrix_obj.h"

/* This interpreter's Matrix type (new reference), or NULL. */
PyTypeObject *mx_type_create(PyObject *module);

#endif /* BOCPY_PLUGIN_MATRIX_TYPE_H */
