/* ocl_module.c - bocpy.plugins.opencl: OpenCL contexts as pinned values.
 *
 *   from bocpy import PinnedCown, when, wait
 *   from bocpy.plugins import opencl
 *
 *   gpu = opencl.open()                       # PinnedCown[Context]
 *
 *   @when(gpu, inputs)                        # runs on the main thread
 *   def step(gpu, inputs):
 *       ctx = gpu.value
 *       k = ctx.program(SOURCE).kernel("saxpy")
 *       x = ctx.buffer(inputs.value)          # Matrix -> device
 *       ctx.run(k, x.size, 2.0, x, y)         # numbers, Matrix, Buffer args
 *       return x.read()                       # device -> new Matrix
 *
 * See ocl_obj.h for the object model and the thread rules, docs/opencl.md
 * for the user's view.
 *
 * Layout (each file includes only the headers below it; each declaration
 * sits in the header of the file that defines it; checked by
 * tests/python/test_opencl.py):
 *   ocl_module.c     the module: devices(), runtime(), open(), the atexit
 *                    handler, the types, exceptions and pinned hooks;
 *   ocl_context.c    Context: opening, closing, finish(), attributes, the
 *                    pinned hooks, and its method table;
 *   ocl_run.c        Context.run(): argument checks and the launch;
 *   ocl_program.c    Program and Kernel, Context.program();
 *   ocl_buffer.c     Buffer, Context.buffer();
 *   ocl_matrix.c     Matrix data: views, new matrices, uploads;
 *   ocl_child.c      the checks every method makes, the Context's list of
 *                    children, what every child type has in common;
 *   ocl_device.c     device discovery and selection;
 *   ocl_obj.c        the objects (ocl_obj.h), module state, opencl.Error;
 *   leaves (no plugin header but the OpenCL ones):
 *   ocl_queue.c      waiting for the queue, host <-> device copies;
 *   ocl_args.c       size and type checks of Python arguments;
 *   ocl_kind.c       element types, dtype names, conversions;
 *   cl_loader.c      the OpenCL library, loaded with dlopen;
 *   cl_abi.h         the OpenCL ABI the plugin uses, declared by us.
 */
#include "ocl_buffer.h"
#include "ocl_context.h"
#include "ocl_device.h"
#include "ocl_program.h"

#include <stdio.h>

static ocl_state *mod_state(PyObject *module) {
  return (ocl_state *)PyModule_GetState(module);
}

static PyObject *mod_devices(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return ocl_devices_list();
}

static PyObject *mod_runtime(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  const clx_api *cl = clx_get();
  return Py_BuildValue("{s:s,s:O,s:s}", "library", clx_library(), "loaded",
                       cl != NULL ? Py_True : Py_False, "error",
                       clx_load_error());
}

PyDoc_STRVAR(open_doc,
             "open(device=None, dtype=None) -> PinnedCown[Context]\n\n"
             "Opens a Context (see Context) and puts it in a new PinnedCown: "
             "pinned behaviors over it use it on the main thread; it is "
             "closed when the PinnedCown dies, or at exit.");
static PyObject *mod_open(PyObject *module, PyObject *args, PyObject *kw) {
  ocl_state *st = mod_state(module);
  PyObject *ctx = PyObject_Call((PyObject *)st->context_type, args, kw);
  if (ctx == NULL) {
    return NULL;
  }
  PyObject *cown = st->abi->pinned_cown_new(ctx);
  Py_DECREF(ctx);
  return cown;
}

/* atexit: let bocpy run what is scheduled, then close every context still
 * open (bocpy's own handler, registered earlier, runs after this one). */
static PyObject *mod_atexit(PyObject *module, PyObject *Py_UNUSED(a)) {
  ocl_state *st = mod_state(module);
  if (st->open == NULL) {
    Py_RETURN_NONE;
  }
  PyObject *core = PyImport_ImportModule("bocpy._core");
  PyObject *running =
      core != NULL ? PyObject_CallMethod(core, "running", NULL) : NULL;
  Py_XDECREF(core);
  if (running != NULL && PyObject_IsTrue(running) == 1) {
    PyObject *bocpy = PyImport_ImportModule("bocpy");
    PyObject *r =
        bocpy != NULL ? PyObject_CallMethod(bocpy, "wait", NULL) : NULL;
    Py_XDECREF(bocpy);
    if (r == NULL) {
      PyErr_WriteUnraisable(module);
    }
    Py_XDECREF(r);
  }
  if (running == NULL) {
    PyErr_Clear();
  }
  Py_XDECREF(running);
  while (st->open != NULL) {
    ocl_ctx_close(st->open); /* unlinks it */
  }
  Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {
    {"devices", mod_devices, METH_NOARGS,
     "devices() -> list[dict]\n\nEvery OpenCL device ([] without an OpenCL "
     "runtime): index, platform, name, vendor, type ('gpu', 'cpu', "
     "'accelerator', 'other'), memory, max_alloc, compute_units, "
     "max_work_group_size, fp64, version, driver."},
    {"runtime", mod_runtime, METH_NOARGS,
     "runtime() -> dict\n\nThe OpenCL library: library (path tried), loaded "
     "(bool), error (why it did not load, else '')."},
    {"open", (PyCFunction)(void (*)(void))mod_open,
     METH_VARARGS | METH_KEYWORDS, open_doc},
    {"_atexit", mod_atexit, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- module -------------------------------------------------------------- */

static int add_exception(PyObject *module, const char *name, const char *doc,
                         PyObject *base, PyObject **slot) {
  char full[96];
  snprintf(full, sizeof(full), "bocpy.plugins.opencl.%s", name);
  *slot = PyErr_NewExceptionWithDoc(full, doc, base, NULL);
  if (*slot == NULL) {
    return -1;
  }
  return PyModule_AddObjectRef(module, name, *slot);
}

static int register_pinned(ocl_state *st, PyTypeObject *type, int context) {
  bocpy_pinned_spec spec = {
      .struct_size = sizeof(bocpy_pinned_spec),
      .reserved = 0,
      .type = type,
      .acquire = context ? ocl_ctx_hook_acquire : NULL,
      .release = context ? ocl_ctx_hook_release : NULL,
      /* Children are released when their last reference goes (on the main
       * interpreter, where pinned values die), or with their context: a
       * PinnedCown dying does not free a buffer still referenced. */
      .destroy = context ? ocl_ctx_hook_destroy : NULL,
  };
  return st->abi->register_pinned(&spec);
}

static int ocl_exec(PyObject *module) {
  ocl_state *st = mod_state(module);
  /* Every interpreter: negotiate with the core, make the types, register
   * them as pinned (a worker that imports us still refuses the values). */
  st->abi = BOCPY_IMPORT_ABI();
  if (st->abi == NULL) {
    return -1;
  }
  struct {
    PyType_Spec *spec;
    PyTypeObject **slot;
  } types[] = {{&ocl_context_spec, &st->context_type},
               {&ocl_program_spec, &st->program_type},
               {&ocl_kernel_spec, &st->kernel_type},
               {&ocl_buffer_spec, &st->buffer_type}};
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    *types[i].slot = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, types[i].spec, NULL);
    if (*types[i].slot == NULL ||
        PyModule_AddType(module, *types[i].slot) < 0 ||
        register_pinned(st, *types[i].slot, i == 0) < 0) {
      return -1;
    }
  }
  if (add_exception(module, "Error",
                    "An OpenCL call failed (.code: the OpenCL error code).",
                    PyExc_RuntimeError, &st->error) < 0 ||
      add_exception(module, "BuildError",
                    "A program did not compile (.log: the compiler's "
                    "output).",
                    st->error, &st->build_error) < 0 ||
      add_exception(module, "NoDeviceError",
                    "No OpenCL runtime, no device, or no device matching "
                    "the selection.",
                    st->error, &st->no_device_error) < 0) {
    return -1;
  }
  if (PyModule_AddStringConstant(module, "DEVICE_ENV", OCL_DEVICE_ENV) < 0) {
    return -1;
  }
  if (st->abi->interp_is_main()) {
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *fn =
        atexit != NULL ? PyObject_GetAttrString(module, "_atexit") : NULL;
    PyObject *r = fn != NULL ? PyObject_CallMethod(atexit, "register", "O", fn)
                             : NULL;
    Py_XDECREF(atexit);
    Py_XDECREF(fn);
    if (r == NULL) {
      return -1;
    }
    Py_DECREF(r);
  }
  return 0;
}

static int ocl_traverse(PyObject *module, visitproc visit, void *arg) {
  ocl_state *st = mod_state(module);
  Py_VISIT(st->context_type);
  Py_VISIT(st->program_type);
  Py_VISIT(st->kernel_type);
  Py_VISIT(st->buffer_type);
  Py_VISIT(st->error);
  Py_VISIT(st->build_error);
  Py_VISIT(st->no_device_error);
  Py_VISIT(st->matrix_type);
  return 0;
}

static int ocl_clear(PyObject *module) {
  ocl_state *st = mod_state(module);
  Py_CLEAR(st->context_type);
  Py_CLEAR(st->program_type);
  Py_CLEAR(st->kernel_type);
  Py_CLEAR(st->buffer_type);
  Py_CLEAR(st->error);
  Py_CLEAR(st->build_error);
  Py_CLEAR(st->no_device_error);
  Py_CLEAR(st->matrix_type);
  return 0;
}

static void ocl_free(void *module) { ocl_clear((PyObject *)module); }

static PyModuleDef_Slot ocl_slots[] = {
    {Py_mod_exec, ocl_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef ocl_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bocpy.plugins.opencl",
    .m_doc = "OpenCL contexts as pinned values: programs, kernels and device "
             "buffers used from pinned behaviors, with bocpy.Matrix data.",
    .m_size = sizeof(ocl_state),
    .m_methods = mod_methods,
    .m_slots = ocl_slots,
    .m_traverse = ocl_traverse,
    .m_clear = ocl_clear,
    .m_free = ocl_free,
};

PyMODINIT_FUNC PyInit_opencl(void); /* the one exported symbol */
PyMODINIT_FUNC PyInit_opencl(void) { return PyModuleDef_Init(&ocl_module); }
