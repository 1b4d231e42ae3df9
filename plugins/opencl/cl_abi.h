/* cl_abi.h - the part of the OpenCL 1.2 host ABI that bocpy.plugins.opencl
 * uses, declared by us so the plugin builds with no OpenCL headers
 * installed (only a C compiler and Python's headers).
 *
 * Nothing here is linked: the ICD loader (libOpenCL.so.1) is opened with
 * dlopen at run time and the entry points below are looked up by name
 * (cl_loader.c).  What this header records are facts of the ABI every
 * OpenCL implementation shares: the widths of the scalar types, that the
 * objects are opaque pointers, the numeric values of the enumerants we pass
 * or compare against, and the parameter lists of the entry points.  Add a
 * name here only when the plugin starts to use it.
 * tests/python/test_opencl_abi.py checks every value and width against the
 * Khronos headers when a machine has them.
 */
#ifndef BOCPY_PLUGIN_CL_ABI_H
#define BOCPY_PLUGIN_CL_ABI_H

#include <stddef.h>
#include <stdint.h>

/* The calling convention of the entry points: the platform's default on
 * every 64-bit target and on 32-bit Unix; __stdcall on 32-bit Windows. */
#if defined(_WIN32) && !defined(_WIN64)
#define CLX_CALL __stdcall
#else
#define CLX_CALL
#endif

/* ---- scalar types (fixed widths on every platform) ---------------------- */

typedef int32_t cl_int;
typedef uint32_t cl_uint;
typedef uint64_t cl_ulong;
typedef cl_uint cl_bool;      /* CL_TRUE / CL_FALSE, 32 bits wide */
typedef cl_ulong cl_bitfield; /* flag sets are 64 bits wide */

/* Flag sets (cl_bitfield) and property lists (pointer-sized integers). */
typedef cl_bitfield cl_device_type;
typedef cl_bitfield cl_device_fp_config;
typedef cl_bitfield cl_command_queue_properties;
typedef cl_bitfield cl_mem_flags;
typedef intptr_t cl_context_properties;

/* The "which property" selectors of the clGet*Info queries (32 bits). */
typedef cl_uint cl_platform_info;
typedef cl_uint cl_device_info;
typedef cl_uint cl_program_info;
typedef cl_uint cl_program_build_info;
typedef cl_uint cl_kernel_info;
typedef cl_uint cl_kernel_arg_info;
typedef cl_uint cl_kernel_arg_address_qualifier;
typedef cl_uint cl_kernel_work_group_info;
typedef cl_uint cl_event_info;

/* ---- objects: opaque handles owned by the implementation ---------------- */

typedef struct clx_platform *cl_platform_id;
typedef struct clx_device *cl_device_id;
typedef struct clx_context *cl_context;
typedef struct clx_queue *cl_command_queue;
typedef struct clx_mem *cl_mem;
typedef struct clx_program *cl_program;
typedef struct clx_kernel *cl_kernel;
typedef struct clx_event *cl_event;

/* ---- values -------------------------------------------------------------- */

#define CL_TRUE 1

/* Status codes (cl_int): 0 is success, failures are negative.  This is the
 * set clx_error_name() knows by name. */
#define CL_SUCCESS 0
#define CL_DEVICE_NOT_FOUND (-1)
#define CL_DEVICE_NOT_AVAILABLE (-2)
#define CL_COMPILER_NOT_AVAILABLE (-3)
#define CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)
#define CL_OUT_OF_RESOURCES (-5)
#define CL_OUT_OF_HOST_MEMORY (-6)
#define CL_PROFILING_INFO_NOT_AVAILABLE (-7)
#define CL_MEM_COPY_OVERLAP (-8)
#define CL_IMAGE_FORMAT_MISMATCH (-9)
#define CL_IMAGE_FORMAT_NOT_SUPPORTED (-10)
#define CL_BUILD_PROGRAM_FAILURE (-11)
#define CL_MAP_FAILURE (-12)
#define CL_MISALIGNED_SUB_BUFFER_OFFSET (-13)
#define CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST (-14)
#define CL_COMPILE_PROGRAM_FAILURE (-15)
#define CL_LINKER_NOT_AVAILABLE (-16)
#define CL_LINK_PROGRAM_FAILURE (-17)
#define CL_DEVICE_PARTITION_FAILED (-18)
#define CL_KERNEL_ARG_INFO_NOT_AVAILABLE (-19)
#define CL_INVALID_VALUE (-30)
#define CL_INVALID_DEVICE_TYPE (-31)
#define CL_INVALID_PLATFORM (-32)
#define CL_INVALID_DEVICE (-33)
#define CL_INVALID_CONTEXT (-34)
#define CL_INVALID_QUEUE_PROPERTIES (-35)
#define CL_INVALID_COMMAND_QUEUE (-36)
#define CL_INVALID_HOST_PTR (-37)
#define CL_INVALID_MEM_OBJECT (-38)
#define CL_INVALID_IMAGE_FORMAT_DESCRIPTOR (-39)
#define CL_INVALID_IMAGE_SIZE (-40)
#define CL_INVALID_SAMPLER (-41)
#define CL_INVALID_BINARY (-42)
#define CL_INVALID_BUILD_OPTIONS (-43)
#define CL_INVALID_PROGRAM (-44)
#define CL_INVALID_PROGRAM_EXECUTABLE (-45)
#define CL_INVALID_KERNEL_NAME (-46)
#define CL_INVALID_KERNEL_DEFINITION (-47)
#define CL_INVALID_KERNEL (-48)
#define CL_INVALID_ARG_INDEX (-49)
#define CL_INVALID_ARG_VALUE (-50)
#define CL_INVALID_ARG_SIZE (-51)
#define CL_INVALID_KERNEL_ARGS (-52)
#define CL_INVALID_WORK_DIMENSION (-53)
#define CL_INVALID_WORK_GROUP_SIZE (-54)
#define CL_INVALID_WORK_ITEM_SIZE (-55)
#define CL_INVALID_GLOBAL_OFFSET (-56)
#define CL_INVALID_EVENT_WAIT_LIST (-57)
#define CL_INVALID_EVENT (-58)
#define CL_INVALID_OPERATION (-59)
#define CL_INVALID_GL_OBJECT (-60)
#define CL_INVALID_BUFFER_SIZE (-61)
#define CL_INVALID_MIP_LEVEL (-62)
#define CL_INVALID_GLOBAL_WORK_SIZE (-63)
#define CL_INVALID_PROPERTY (-64)
#define CL_INVALID_IMAGE_DESCRIPTOR (-65)
#define CL_INVALID_COMPILER_OPTIONS (-66)
#define CL_INVALID_LINKER_OPTIONS (-67)
#define CL_INVALID_DEVICE_PARTITION_COUNT (-68)
/* The ICD loader's own: no vendor driver is installed. */
#define CL_PLATFORM_NOT_FOUND_KHR (-1001)

/* cl_device_type bits (CL_DEVICE_TYPE_ALL: every type). */
#define CL_DEVICE_TYPE_CPU 0x2
#define CL_DEVICE_TYPE_GPU 0x4
#define CL_DEVICE_TYPE_ACCELERATOR 0x8
#define CL_DEVICE_TYPE_ALL 0xFFFFFFFF

/* cl_platform_info */
#define CL_PLATFORM_NAME 0x0902

/* cl_device_info */
#define CL_DEVICE_TYPE 0x1000
#define CL_DEVICE_MAX_COMPUTE_UNITS 0x1002
#define CL_DEVICE_MAX_WORK_GROUP_SIZE 0x1004
#define CL_DEVICE_MAX_MEM_ALLOC_SIZE 0x1010
#define CL_DEVICE_GLOBAL_MEM_SIZE 0x101F
#define CL_DEVICE_NAME 0x102B
#define CL_DEVICE_VENDOR 0x102C
#define CL_DRIVER_VERSION 0x102D
#define CL_DEVICE_VERSION 0x102F
#define CL_DEVICE_DOUBLE_FP_CONFIG 0x1032

/* cl_context_properties key: the platform the context is made on. */
#define CL_CONTEXT_PLATFORM 0x1084

/* cl_mem_flags bits */
#define CL_MEM_READ_WRITE 0x1
#define CL_MEM_READ_ONLY 0x4
#define CL_MEM_COPY_HOST_PTR 0x20

/* cl_program_info, cl_program_build_info */
#define CL_PROGRAM_KERNEL_NAMES 0x1168
#define CL_PROGRAM_BUILD_LOG 0x1183

/* cl_kernel_info, cl_kernel_arg_info and the address qualifiers */
#define CL_KERNEL_NUM_ARGS 0x1191
#define CL_KERNEL_ARG_ADDRESS_QUALIFIER 0x1196
#define CL_KERNEL_ARG_TYPE_NAME 0x1198
#define CL_KERNEL_ARG_NAME 0x119A
#define CL_KERNEL_ARG_ADDRESS_GLOBAL 0x119B
#define CL_KERNEL_ARG_ADDRESS_LOCAL 0x119C
#define CL_KERNEL_ARG_ADDRESS_CONSTANT 0x119D

/* cl_kernel_work_group_info */
#define CL_KERNEL_WORK_GROUP_SIZE 0x11B0

/* cl_event_info, and the command execution states it reports (a failed
 * command reports its negative error code instead). */
#define CL_EVENT_COMMAND_EXECUTION_STATUS 0x11D3
#define CL_COMPLETE 0x0
#define CL_QUEUED 0x3

/* ---- entry points (the types of the pointers cl_loader.c resolves) ------ */

typedef cl_int(CLX_CALL *clx_fn_clGetPlatformIDs)(cl_uint num_entries,
                                                  cl_platform_id *platforms,
                                                  cl_uint *num_platforms);
typedef cl_int(CLX_CALL *clx_fn_clGetPlatformInfo)(cl_platform_id platform,
                                                   cl_platform_info name,
                                                   size_t size, void *value,
                                                   size_t *size_ret);
typedef cl_int(CLX_CALL *clx_fn_clGetDeviceIDs)(cl_platform_id platform,
                                                cl_device_type type,
                                                cl_uint num_entries,
                                                cl_device_id *devices,
                                                cl_uint *num_devices);
typedef cl_int(CLX_CALL *clx_fn_clGetDeviceInfo)(cl_device_id device,
                                                 cl_device_info name,
                                                 size_t size, void *value,
                                                 size_t *size_ret);
typedef cl_context(CLX_CALL *clx_fn_clCreateContext)(
    const cl_context_properties *properties, cl_uint num_devices,
    const cl_device_id *devices,
    void(CLX_CALL *notify)(const char *info, const void *private_info,
                           size_t cb, void *user_data),
    void *user_data, cl_int *errcode_ret);
typedef cl_int(CLX_CALL *clx_fn_clReleaseContext)(cl_context context);
typedef cl_command_queue(CLX_CALL *clx_fn_clCreateCommandQueue)(
    cl_context context, cl_device_id device,
    cl_command_queue_properties properties, cl_int *errcode_ret);
typedef cl_int(CLX_CALL *clx_fn_clReleaseCommandQueue)(cl_command_queue q);
typedef cl_mem(CLX_CALL *clx_fn_clCreateBuffer)(cl_context context,
                                                cl_mem_flags flags,
                                                size_t size, void *host_ptr,
                                                cl_int *errcode_ret);
typedef cl_int(CLX_CALL *clx_fn_clReleaseMemObject)(cl_mem mem);
typedef cl_program(CLX_CALL *clx_fn_clCreateProgramWithSource)(
    cl_context context, cl_uint count, const char **strings,
    const size_t *lengths, cl_int *errcode_ret);
typedef cl_int(CLX_CALL *clx_fn_clBuildProgram)(
    cl_program program, cl_uint num_devices, const cl_device_id *devices,
    const char *options,
    void(CLX_CALL *notify)(cl_program program, void *user_data),
    void *user_data);
typedef cl_int(CLX_CALL *clx_fn_clGetProgramInfo)(cl_program program,
                                                  cl_program_info name,
                                                  size_t size, void *value,
                                                  size_t *size_ret);
typedef cl_int(CLX_CALL *clx_fn_clGetProgramBuildInfo)(
    cl_program program, cl_device_id device, cl_program_build_info name,
    size_t size, void *value, size_t *size_ret);
typedef cl_int(CLX_CALL *clx_fn_clReleaseProgram)(cl_program program);
typedef cl_kernel(CLX_CALL *clx_fn_clCreateKernel)(cl_program program,
                                                   const char *name,
                                                   cl_int *errcode_ret);
typedef cl_int(CLX_CALL *clx_fn_clReleaseKernel)(cl_kernel kernel);
typedef cl_int(CLX_CALL *clx_fn_clGetKernelInfo)(cl_kernel kernel,
                                                 cl_kernel_info name,
                                                 size_t size, void *value,
                                                 size_t *size_ret);
typedef cl_int(CLX_CALL *clx_fn_clGetKernelArgInfo)(
    cl_kernel kernel, cl_uint index, cl_kernel_arg_info name, size_t size,
    void *value, size_t *size_ret);
typedef cl_int(CLX_CALL *clx_fn_clGetKernelWorkGroupInfo)(
    cl_kernel kernel, cl_device_id device, cl_kernel_work_group_info name,
    size_t size, void *value, size_t *size_ret);
typedef cl_int(CLX_CALL *clx_fn_clSetKernelArg)(cl_kernel kernel,
                                                cl_uint index, size_t size,
                                                const void *value);
typedef cl_int(CLX_CALL *clx_fn_clEnqueueNDRangeKernel)(
    cl_command_queue q, cl_kernel kernel, cl_uint work_dim,
    const size_t *global_offset, const size_t *global_size,
    const size_t *local_size, cl_uint num_waits, const cl_event *waits,
    cl_event *event);
typedef cl_int(CLX_CALL *clx_fn_clEnqueueReadBuffer)(
    cl_command_queue q, cl_mem mem, cl_bool blocking, size_t offset,
    size_t size, void *dst, cl_uint num_waits, const cl_event *waits,
    cl_event *event);
typedef cl_int(CLX_CALL *clx_fn_clEnqueueWriteBuffer)(
    cl_command_queue q, cl_mem mem, cl_bool blocking, size_t offset,
    size_t size, const void *src, cl_uint num_waits, const cl_event *waits,
    cl_event *event);
typedef cl_int(CLX_CALL *clx_fn_clEnqueueFillBuffer)(
    cl_command_queue q, cl_mem mem, const void *pattern, size_t pattern_size,
    size_t offset, size_t size, cl_uint num_waits, const cl_event *waits,
    cl_event *event);
typedef cl_int(CLX_CALL *clx_fn_clFinish)(cl_command_queue q);
typedef cl_int(CLX_CALL *clx_fn_clEnqueueMarkerWithWaitList)(
    cl_command_queue q, cl_uint num_waits, const cl_event *waits,
    cl_event *event);
typedef cl_int(CLX_CALL *clx_fn_clGetEventInfo)(cl_event event,
                                                cl_event_info name,
                                                size_t size, void *value,
                                                size_t *size_ret);
typedef cl_int(CLX_CALL *clx_fn_clWaitForEvents)(cl_uint num_events,
                                                 const cl_event *events);
typedef cl_int(CLX_CALL *clx_fn_clReleaseEvent)(cl_event event);

#endif /* BOCPY_PLUGIN_CL_ABI_H */
