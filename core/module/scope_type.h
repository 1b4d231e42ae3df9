/* scope_type.h - the Python type _core.Scope and _core.cancel (issue #32). */
#ifndef BOCPY_CORE_SCOPE_TYPE_H
#define BOCPY_CORE_SCOPE_TYPE_H

#include <Python.h>

/* Adds the Scope type and the cancel() function to module. */
int boc_scope_type_init(PyObject *module);

#endif /* BOCPY_CORE_SCOPE_TYPE_H */
