/* ocl_obj.h - the objects of bocpy.plugins.opencl: module state, Context,
 * Program, Kernel, Buffer (internal, not installed).
 *
 * An abi3 plugin (stable ABI 3.12 + <bocpy/bocpy.h> only) that runs OpenCL
 * kernels from pinned behaviors.  The OpenCL runtime is loaded at run time
 * (cl_loader.c), so the module imports everywhere; ocl_module.c lists the
 * files and the one way they depend on each other.
 *
 * Objects.  A Context (platform, device, in-order command queue) is a
 * *pinned* type: created on the main interpreter only, it lives in a
 * PinnedCown and is used by pinned behaviors, on the thread that opened it.
 * Programs, Kernels and Buffers are its children, pinned too: each holds a
 * strong reference to its Context and sits in the Context's list of live
 * children, so closing the Context (close(), the PinnedCown's destroy hook,
 * or the plugin's atexit handler) releases every OpenCL object at once and
 * leaves the children as closed shells that raise ValueError.
 *
 * Threads.  Everything here runs on the main interpreter with its GIL, on
 * the Context's thread (checked by every method), so the lists and counters
 * need no locks.  The GIL is released around blocking OpenCL calls (build,
 * finish, blocking reads and writes); nothing else may touch the Context
 * meanwhile because of the thread check.
 *
 * References: PyObject * results are new references, arguments borrowed.
 * int functions return 0 or -1 with an exception set.
 */
#ifndef BOCPY_PLUGIN_OCL_OBJ_H
#define BOCPY_PLUGIN_OCL_OBJ_H

#include <Python.h>

#include <stddef.h>
#include <stdint.h>

#include <bocpy/bocpy.h>

#include "cl_loader.h"
#include "ocl_kind.h"

typedef struct ocl_ctx ocl_ctx_t;

/* Module state (one per interpreter). */
typedef struct {
  const bocpy_abi *abi;
  PyTypeObject *context_type;
  PyTypeObject *program_type;
  PyTypeObject *kernel_type;
  PyTypeObject *buffer_type;
  PyObject *error;           /* opencl.Error(RuntimeError) */
  PyObject *build_error;     /* opencl.BuildError(Error) */
  PyObject *no_device_error; /* opencl.NoDeviceError(Error) */
  PyObject *matrix_type;     /* bocpy.Matrix of this interpreter, lazily */
  ocl_ctx_t *open;           /* main interpreter: open contexts (borrowed;
                                a Context unlinks itself when it closes) */
} ocl_state;

/* The common head of Programs, Kernels and Buffers. */
typedef struct ocl_child {
  PyObject_HEAD
  ocl_ctx_t *ctx;          /* strong reference (as a PyObject) */
  struct ocl_child *prev;  /* the Context's list of live children */
  struct ocl_child *next;
  int linked;              /* 1 while in that list */
  int kind;                /* OCL_CHILD_* */
} ocl_child_t;

enum { OCL_CHILD_PROGRAM = 1, OCL_CHILD_KERNEL, OCL_CHILD_BUFFER };

struct ocl_ctx {
  PyObject_HEAD
  const bocpy_abi *abi;
  ocl_state *st;            /* the module state (our type keeps the module) */
  int64_t owner;            /* the main interpreter */
  unsigned long thread;     /* the thread that opened it */
  cl_platform_id platform;
  cl_device_id device;
  cl_context context;
  cl_command_queue queue;
  int closed;
  int fp64;                 /* the device has double precision */
  ocl_kind real;            /* OCL_F64 or OCL_F32: Matrix data on the device */
  cl_ulong max_alloc;       /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
  PyObject *info;           /* strong: the device's dict (as in devices()) */
  ocl_child_t *children;    /* live Programs, Kernels, Buffers */
  ocl_ctx_t *open_prev;     /* ocl_state.open */
  ocl_ctx_t *open_next;
  int open_linked;
  long long launches;       /* statistics */
  long long bytes_to_device;
  long long bytes_from_device;
};

typedef struct {
  ocl_child_t base;
  cl_program program;
  PyObject *options;        /* strong: str */
} ocl_program_t;

typedef struct {
  int global;               /* a __global / __constant pointer */
  int local;                /* a __local pointer (not supported) */
  ocl_kind kind;            /* scalar type, or pointee type of a pointer */
  char type_name[96];       /* as the compiler reported it */
  char name[64];            /* the parameter's name */
} ocl_arg_t;

typedef struct {
  ocl_child_t base;
  cl_kernel kernel;
  PyObject *program;        /* strong */
  PyObject *name;           /* strong: str */
  cl_uint nargs;
  int has_info;             /* the arg table came from clGetKernelArgInfo */
  ocl_arg_t *args;          /* PyMem: nargs entries */
  size_t work_group_size;   /* CL_KERNEL_WORK_GROUP_SIZE */
} ocl_kernel_t;

typedef struct {
  ocl_child_t base;
  cl_mem mem;
  ocl_kind dtype;
  size_t count;             /* elements */
  Py_ssize_t rows, cols;    /* the shape read() gives */
} ocl_buffer_t;

/* The module state of the module that made type tp (NULL with an
 * exception when there is none). */
ocl_state *ocl_state_of(PyTypeObject *tp);

/* Raises `type` (NULL: opencl.Error) "<fmt...>: <CL name> (<code>)<hint>"
 * with the attribute code set; hint may be NULL. */
void ocl_raise_cl(ocl_state *st, PyObject *type, cl_int code,
                  const char *hint, const char *fmt, ...);

/* The hint of an out-of-resources error. */
#define OCL_OOM_HINT                                                          \
  " (the device ran out of memory or resources: use smaller buffers or "      \
  "release some)"

/* A read-only attribute: `static PyObject *name(PyObject *self, void *)`
 * returning `expr`, in which `o` is self as a const T *. */
#define OCL_GETTER(name, T, expr)                                             \
  static PyObject *name(PyObject *self, void *closure) {                      \
    (void)closure;                                                            \
    const T *o = (const T *)self;                                             \
    return (expr);                                                            \
  }

/* A PyType_Spec of this module's type `Name` with instances of C type T. */
#define OCL_TYPE_SPEC(var, Name, T, extra_flags, slot_table)                  \
  PyType_Spec var = {                                                         \
      .name = "bocpy.plugins.opencl." Name,                                   \
      .basicsize = sizeof(T),                                                 \
      .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | (extra_flags), \
      .slots = (slot_table),                                                  \
  }

#endif /* BOCPY_PLUGIN_OCL_OBJ_H */
