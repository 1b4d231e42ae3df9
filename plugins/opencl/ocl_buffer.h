/* ocl_buffer.h - opencl.Buffer: device memory of one Context, made by
 * Context.buffer(), read into and written from bocpy.Matrix.
 * Main interpreter, the Context's thread, GIL held. */
#ifndef BOCPY_PLUGIN_OCL_BUFFER_H
#define BOCPY_PLUGIN_OCL_BUFFER_H

#include "ocl_obj.h"

/* Context.buffer(source, dtype=None) and its docstring. */
PyObject *ocl_ctx_buffer(PyObject *self, PyObject *args, PyObject *kw);
extern const char ocl_ctx_buffer_doc[];

/* The type (made per interpreter from this spec in ocl_module.c). */
extern PyType_Spec ocl_buffer_spec;

#endif /* BOCPY_PLUGIN_OCL_BUFFER_H */
