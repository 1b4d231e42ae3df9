/* ocl_program.h - opencl.Program (Context.program(): OpenCL C compiled for
 * the context's device) and opencl.Kernel (Program.kernel(), with the
 * table of its parameters that Context.run() checks arguments against).
 * Main interpreter, the Context's thread, GIL held. */
#ifndef BOCPY_PLUGIN_OCL_PROGRAM_H
#define BOCPY_PLUGIN_OCL_PROGRAM_H

#include "ocl_obj.h"

/* Context.program(source, options='') and its docstring. */
PyObject *ocl_ctx_program(PyObject *self, PyObject *args, PyObject *kw);
extern const char ocl_ctx_program_doc[];

/* The types (made per interpreter from these specs in ocl_module.c). */
extern PyType_Spec ocl_program_spec;
extern PyType_Spec ocl_kernel_spec;

#endif /* BOCPY_PLUGIN_OCL_PROGRAM_H */
