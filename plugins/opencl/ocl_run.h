/* ocl_run.h - Context.run(): checks the arguments against the kernel's
 * parameters, sets them (numbers, Buffers, Matrices uploaded as read-only
 * copies) and queues a launch.  Main interpreter, the Context's thread,
 * GIL held. */
#ifndef BOCPY_PLUGIN_OCL_RUN_H
#define BOCPY_PLUGIN_OCL_RUN_H

#include "ocl_obj.h"

/* Context.run(kernel, global_size, *args, local_size=None) (vectorcall)
 * and its docstring. */
PyObject *ocl_ctx_run(PyObject *self, PyObject *const *args,
                      Py_ssize_t nargsf, PyObject *kwnames);
extern const char ocl_ctx_run_doc[];

#endif /* BOCPY_PLUGIN_OCL_RUN_H */
