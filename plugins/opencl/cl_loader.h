/* cl_loader.h - the OpenCL host API of bocpy.plugins.opencl, loaded at run
 * time.
 *
 * The plugin never links against libOpenCL: the ICD loader is dlopen()ed
 * the first time it is needed, so the module imports on a machine without
 * any OpenCL runtime (devices() is then [] and opening a context raises
 * NoDeviceError saying what to install).  Only the entry points below are
 * used (OpenCL 1.2 host API); their types, and every OpenCL type and
 * constant the plugin uses, are declared in cl_abi.h, so building needs no
 * OpenCL headers.
 */
#ifndef BOCPY_PLUGIN_CL_LOADER_H
#define BOCPY_PLUGIN_CL_LOADER_H

#include "cl_abi.h"

/* X(name): every entry point the plugin calls, resolved with dlsym. */
#define CLX_ENTRIES(X)                                                        \
  X(clGetPlatformIDs)                                                         \
  X(clGetPlatformInfo)                                                        \
  X(clGetDeviceIDs)                                                           \
  X(clGetDeviceInfo)                                                          \
  X(clCreateContext)                                                          \
  X(clReleaseContext)                                                         \
  X(clCreateCommandQueue)                                                     \
  X(clReleaseCommandQueue)                                                    \
  X(clCreateBuffer)                                                           \
  X(clReleaseMemObject)                                                       \
  X(clCreateProgramWithSource)                                                \
  X(clBuildProgram)                                                           \
  X(clGetProgramInfo)                                                         \
  X(clGetProgramBuildInfo)                                                    \
  X(clReleaseProgram)                                                         \
  X(clCreateKernel)                                                           \
  X(clReleaseKernel)                                                          \
  X(clGetKernelInfo)                                                          \
  X(clGetKernelArgInfo)                                                       \
  X(clGetKernelWorkGroupInfo)                                                 \
  X(clSetKernelArg)                                                           \
  X(clEnqueueNDRangeKernel)                                                   \
  X(clEnqueueReadBuffer)                                                      \
  X(clEnqueueWriteBuffer)                                                     \
  X(clEnqueueFillBuffer)                                                      \
  X(clFinish)                                                                 \
  X(clEnqueueMarkerWithWaitList)                                              \
  X(clGetEventInfo)                                                           \
  X(clWaitForEvents)                                                          \
  X(clReleaseEvent)

typedef struct clx_api {
#define CLX_FIELD(name) clx_fn_##name name;
  CLX_ENTRIES(CLX_FIELD)
#undef CLX_FIELD
} clx_api;

/* The loaded API, or NULL when no OpenCL runtime could be loaded (then
 * clx_load_error() says why).  Loads once per process, thread-safely; the
 * library stays loaded until the process ends. */
const clx_api *clx_get(void);
const char *clx_load_error(void);
/* The library that was (or was tried to be) loaded. */
const char *clx_library(void);

/* The name of an OpenCL error code ("CL_OUT_OF_RESOURCES"), or
 * "unknown OpenCL error". */
const char *clx_error_name(cl_int code);

#endif /* BOCPY_PLUGIN_CL_LOADER_H */
