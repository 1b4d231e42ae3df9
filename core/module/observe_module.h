/* observe_module.h - the Python functions of the live look inside
 * (stats, trace recording), for bocpy._core. */
#ifndef BOCPY_CORE_OBSERVE_MODULE_H
#define BOCPY_CORE_OBSERVE_MODULE_H

#include <Python.h>

/* Adds the functions to the module.  0, or -1 with an exception. */
int boc_observe_add_functions(PyObject *module);

#endif /* BOCPY_CORE_OBSERVE_MODULE_H */
