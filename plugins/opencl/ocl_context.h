/* ocl_context.h - opencl.Context: an OpenCL device with its command
 * queue, a pinned value of the main interpreter, and the owner of every
 * Program, Kernel and Buffer made from it.  Main interpreter, GIL held. */
#ifndef BOCPY_PLUGIN_OCL_CONTEXT_H
#define BOCPY_PLUGIN_OCL_CONTEXT_H

#include "ocl_obj.h"

/* Waits for the queue, releases every child and the context, and takes it
 * out of the module's list of open contexts (idempotent; never fails: the
 * destroy hook, dealloc and the module's atexit handler call it). */
void ocl_ctx_close(ocl_ctx_t *c);

/* The pinned-type hooks of the Context (main thread, GIL held). */
int ocl_ctx_hook_acquire(PyObject *value);
int ocl_ctx_hook_release(PyObject *value);
void ocl_ctx_hook_destroy(PyObject *value);

/* The type (made per interpreter from this spec in ocl_module.c). */
extern PyType_Spec ocl_context_spec;

#endif /* BOCPY_PLUGIN_OCL_CONTEXT_H */
