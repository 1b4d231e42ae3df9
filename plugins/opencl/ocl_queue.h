/* ocl_queue.h - waiting for a command queue and copying between host and
 * device without holding the GIL longer than needed.  A leaf: Python and
 * the loaded OpenCL API only.  Main interpreter, GIL held on entry. */
#ifndef BOCPY_PLUGIN_OCL_QUEUE_H
#define BOCPY_PLUGIN_OCL_QUEUE_H

#include <Python.h>
#include <bocpy/compat.h> /* 3.11/3.12 names on CPython 3.10/3.11 */

#include <stddef.h>

#include "cl_loader.h"

/* Copies up to this size run with the GIL held (see ocl_queue_wait). */
#define OCL_GIL_COPY_LIMIT (1u << 20)

/* Waits until every command queued on q so far has run; CL_SUCCESS or the
 * error of a failed command. */
cl_int ocl_queue_wait(const clx_api *cl, cl_command_queue q);

/* Waits for the queue (the kernels using mem first), then copies `bytes`
 * bytes between host and the start of mem, blocking: device -> host when
 * `to_device` is 0, host -> device otherwise.  The GIL is released for
 * copies over OCL_GIL_COPY_LIMIT.  CL_SUCCESS or the OpenCL error. */
cl_int ocl_transfer(const clx_api *cl, cl_command_queue q, cl_mem mem,
                    int to_device, void *host, size_t bytes);

#endif /* BOCPY_PLUGIN_OCL_QUEUE_H */
