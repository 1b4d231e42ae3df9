/* messaging_module.h - the Python functions of messaging and the
 * noticeboard (send/receive/drain/set_tags, notice_*), for bocpy._core. */
#ifndef BOCPY_CORE_MESSAGING_MODULE_H
#define BOCPY_CORE_MESSAGING_MODULE_H

#include <Python.h>

/* Adds the functions to the module.  0, or -1 with an exception. */
int boc_messaging_add_functions(PyObject *module);

#endif /* BOCPY_CORE_MESSAGING_MODULE_H */
