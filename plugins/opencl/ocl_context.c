/* ocl_context.c - opencl.Context (see ocl_context.h). */
#include "ocl_context.h"

#include "ocl_buffer.h"
#include "ocl_child.h"
#include "ocl_device.h"
#include "ocl_program.h"
#include "ocl_queue.h"
#include "ocl_run.h"

static void open_unlink(ocl_ctx_t *c) {
  if (!c->open_linked) {
    return;
  }
  if (c->open_prev != NULL) {
    c->open_prev->open_next = c->open_next;
  } else {
    c->st->open = c->open_next;
  }
  if (c->open_next != NULL) {
    c->open_next->open_prev = c->open_prev;
  }
  c->open_prev = c->open_next = NULL;
  c->open_linked = 0;
}

void ocl_ctx_close(ocl_ctx_t *c) {
  if (c->closed) {
    return;
  }
  const clx_api *cl = clx_get();
  c->closed = 1;
  open_unlink(c);
  if (c->queue != NULL) {
    cl_command_queue q = c->queue;
    Py_BEGIN_ALLOW_THREADS
    cl->clFinish(q);
    Py_END_ALLOW_THREADS
  }
  while (c->children != NULL) {
    ocl_child_release(c->children);
  }
  if (c->queue != NULL) {
    cl->clReleaseCommandQueue(c->queue);
    c->queue = NULL;
  }
  if (c->context != NULL) {
    cl->clReleaseContext(c->context);
    c->context = NULL;
  }
}

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"device", "dtype", NULL};
  PyObject *sel = Py_None, *dtype = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:Context", kwlist, &sel,
                                   &dtype)) {
    return NULL;
  }
  ocl_state *st = ocl_state_of(type);
  if (st == NULL) {
    return NULL;
  }
  if (!st->abi->interp_is_main()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "an OpenCL context can only be created on the main "
                    "interpreter (it lives in a PinnedCown; create it before "
                    "scheduling behaviors and use it from pinned ones)");
    return NULL;
  }
  ocl_kind want = OCL_OTHER;
  if (dtype != Py_None) {
    if (ocl_parse_dtype(dtype, &want) < 0) {
      return NULL;
    }
    if (want != OCL_F32 && want != OCL_F64) {
      PyErr_SetString(PyExc_ValueError,
                      "a context's dtype is the device type of Matrix data: "
                      "'float64' or 'float32'");
      return NULL;
    }
  }
  ocl_dev_ref ref;
  int index;
  if (ocl_select_device(st, sel, &ref, &index) < 0) {
    return NULL;
  }
  const clx_api *cl = clx_get();
  int fp64 = ocl_device_fp64(cl, ref.device);
  if (want == OCL_F64 && !fp64) {
    PyObject *name = ocl_device_str(cl, ref.device, CL_DEVICE_NAME);
    PyErr_Format(PyExc_ValueError,
                 "the OpenCL device %R has no double precision (fp64): use "
                 "dtype='float32' (Matrix data is then converted)",
                 name);
    Py_XDECREF(name);
    return NULL;
  }
  ocl_ctx_t *c = (ocl_ctx_t *)PyType_GenericAlloc(type, 0);
  if (c == NULL) {
    return NULL;
  }
  c->abi = st->abi;
  c->st = st;
  c->owner = st->abi->interp_current();
  c->thread = PyThread_get_thread_ident();
  c->platform = ref.platform;
  c->device = ref.device;
  c->fp64 = fp64;
  c->real = want != OCL_OTHER ? want : (fp64 ? OCL_F64 : OCL_F32);
  c->max_alloc = ocl_device_ulong(cl, ref.device, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
  c->closed = 1; /* until everything exists */
  c->info = ocl_device_info(cl, &ref, index);
  if (c->info == NULL) {
    Py_DECREF(c);
    return NULL;
  }
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                   (cl_context_properties)ref.platform, 0};
  cl_int err = CL_SUCCESS;
  c->context = cl->clCreateContext(props, 1, &ref.device, NULL, NULL, &err);
  if (c->context == NULL) {
    ocl_raise_cl(st, NULL, err, NULL, "cannot create an OpenCL context");
    Py_DECREF(c);
    return NULL;
  }
  c->queue = cl->clCreateCommandQueue(c->context, ref.device, 0, &err);
  if (c->queue == NULL) {
    ocl_raise_cl(st, NULL, err, NULL,
                 "cannot create an OpenCL command queue");
    cl->clReleaseContext(c->context);
    c->context = NULL;
    Py_DECREF(c);
    return NULL;
  }
  c->closed = 0;
  c->open_next = st->open;
  if (st->open != NULL) {
    st->open->open_prev = c;
  }
  st->open = c;
  c->open_linked = 1;
  return (PyObject *)c;
}

static void ctx_dealloc(PyObject *self) {
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  PyTypeObject *tp = Py_TYPE(self);
  if (!c->closed) {
    /* Children hold references: by now none is left; a Context that never
     * lived in a PinnedCown is closed here. */
    PyObject *exc = PyErr_GetRaisedException();
    ocl_ctx_close(c);
    PyErr_SetRaisedException(exc);
  }
  open_unlink(c);
  Py_CLEAR(c->info);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *ctx_close(PyObject *self, PyObject *Py_UNUSED(a)) {
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  if (ocl_ctx_here(c, "OpenCL context") < 0) {
    return NULL;
  }
  ocl_ctx_close(c);
  Py_RETURN_NONE;
}

/* Waits until every queued command has run: 0, or -1 with opencl.Error
 * carrying the error of the command that failed. */
static int ctx_drain(ocl_ctx_t *c) {
  cl_int err = ocl_queue_wait(clx_get(), c->queue);
  if (err != CL_SUCCESS) {
    ocl_raise_cl(c->st, NULL, err, NULL, "a queued OpenCL command failed");
    return -1;
  }
  return 0;
}

static PyObject *ctx_finish(PyObject *self, PyObject *Py_UNUSED(a)) {
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  if (ocl_ctx_usable(c) < 0 || ctx_drain(c) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

/* ---- attributes ---------------------------------------------------------- */

OCL_GETTER(ctx_get_device, ocl_ctx_t, PyDict_Copy(o->info))
OCL_GETTER(ctx_get_dtype, ocl_ctx_t,
           PyUnicode_FromString(ocl_kind_name(o->real)))
OCL_GETTER(ctx_get_fp64, ocl_ctx_t, PyBool_FromLong(o->fp64))
OCL_GETTER(ctx_get_closed, ocl_ctx_t, PyBool_FromLong(o->closed))

static PyObject *ctx_get_stats(PyObject *self, void *c) {
  (void)c;
  ocl_ctx_t *x = (ocl_ctx_t *)self;
  long long live = 0;
  for (ocl_child_t *ch = x->children; ch != NULL; ch = ch->next) {
    live++;
  }
  return Py_BuildValue("{s:L,s:L,s:L,s:L}", "launches", x->launches,
                       "bytes_to_device", x->bytes_to_device,
                       "bytes_from_device", x->bytes_from_device,
                       "live_objects", live);
}

static PyObject *ctx_repr(PyObject *self) {
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  return PyUnicode_FromFormat("<bocpy.plugins.opencl.Context %S (%s)%s>",
                              PyDict_GetItemString(c->info, "name"),
                              ocl_kind_name(c->real),
                              c->closed ? " closed" : "");
}

/* ---- pinned-type hooks (main thread, GIL held) --------------------------- */

int ocl_ctx_hook_acquire(PyObject *value) {
  ocl_ctx_t *c = (ocl_ctx_t *)value;
  return c->abi->owner_check(&c->owner, "OpenCL context");
}

/* Every behavior that held the context leaves its queue empty: errors of
 * the kernels it launched are reported on its own result cown. */
int ocl_ctx_hook_release(PyObject *value) {
  ocl_ctx_t *c = (ocl_ctx_t *)value;
  return c->closed ? 0 : ctx_drain(c);
}

void ocl_ctx_hook_destroy(PyObject *value) {
  ocl_ctx_close((ocl_ctx_t *)value);
}

/* ---- type spec ----------------------------------------------------------- */

static PyMethodDef ctx_methods[] = {
    {"program", (PyCFunction)(void (*)(void))ocl_ctx_program,
     METH_VARARGS | METH_KEYWORDS, ocl_ctx_program_doc},
    {"buffer", (PyCFunction)(void (*)(void))ocl_ctx_buffer,
     METH_VARARGS | METH_KEYWORDS, ocl_ctx_buffer_doc},
    {"run", (PyCFunction)(void (*)(void))ocl_ctx_run,
     METH_FASTCALL | METH_KEYWORDS, ocl_ctx_run_doc},
    {"finish", ctx_finish, METH_NOARGS,
     "finish()\n--\n\nWaits until every queued command has run."},
    {"close", ctx_close, METH_NOARGS,
     "close()\n--\n\nWaits for the queue, then releases the context and "
     "every program, kernel and buffer made from it (idempotent)."},
    {"__reduce__", ocl_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ctx_getset[] = {
    {"device", ctx_get_device, NULL, "The device, as listed by devices().",
     NULL},
    {"dtype", ctx_get_dtype, NULL,
     "'float64' or 'float32': the device type of Matrix data (real_t).",
     NULL},
    {"fp64", ctx_get_fp64, NULL, "The device has double precision.", NULL},
    {"closed", ctx_get_closed, NULL, "True once closed.", NULL},
    {"stats", ctx_get_stats, NULL,
     "Launches, bytes moved each way, live programs/kernels/buffers.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ctx_slots[] = {
    {Py_tp_new, ctx_new},
    {Py_tp_dealloc, ctx_dealloc},
    {Py_tp_methods, ctx_methods},
    {Py_tp_getset, ctx_getset},
    {Py_tp_repr, ctx_repr},
    {Py_tp_doc,
     "Context(device=None, dtype=None)\n--\n\n"
     "An OpenCL device with its command queue, pinned to the main "
     "interpreter (use opencl.open() to get it in a PinnedCown).  device: "
     "None (the BOCPY_OPENCL_DEVICE environment variable, else the first "
     "GPU, else the first device), an index into devices(), a type ('gpu', "
     "'cpu', 'accelerator') or part of a device's name.  dtype: 'float64' "
     "(default when the device has fp64) or 'float32'."},
    {0, NULL},
};

OCL_TYPE_SPEC(ocl_context_spec, "Context", ocl_ctx_t, 0, ctx_slots);
