/* ocl_device.h - finding OpenCL devices: the list devices() returns and the
 * device a new Context picks.  Main interpreter or any, GIL held.
 *
 * PyObject * results are new references; int functions return 0 or -1
 * with an exception set. */
#ifndef BOCPY_PLUGIN_OCL_DEVICE_H
#define BOCPY_PLUGIN_OCL_DEVICE_H

#include "ocl_obj.h"

/* The environment variable that picks the default device. */
#define OCL_DEVICE_ENV "BOCPY_OPENCL_DEVICE"

typedef struct {
  cl_platform_id platform;
  cl_device_id device;
} ocl_dev_ref;

/* A string property of the device ('' when the query fails). */
PyObject *ocl_device_str(const clx_api *cl, cl_device_id dev,
                         cl_device_info what);
/* A cl_ulong property of the device (0 when the query fails). */
cl_ulong ocl_device_ulong(const clx_api *cl, cl_device_id dev,
                          cl_device_info what);
/* 1 when the device has double precision. */
int ocl_device_fp64(const clx_api *cl, cl_device_id dev);
/* The dict devices() lists for one device. */
PyObject *ocl_device_info(const clx_api *cl, const ocl_dev_ref *ref,
                          int index);
/* devices(): every device of every platform ([] without a runtime). */
PyObject *ocl_devices_list(void);

/* Picks a device: `sel` (None: the environment variable, else the first
 * GPU, else the first device) is an index (int or digits), a type ('gpu',
 * 'cpu', 'accelerator') or a case-insensitive part of the device's name,
 * vendor or platform.  0 with *ref / *index set, or -1 with NoDeviceError,
 * TypeError or ValueError. */
int ocl_select_device(ocl_state *st, PyObject *sel, ocl_dev_ref *ref,
                      int *index);

#endif /* BOCPY_PLUGIN_OCL_DEVICE_H */
