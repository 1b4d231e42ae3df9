/* opencl.c - bocpy.plugins.opencl: OpenCL contexts as pinned values.
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
 * See opencl.h for the object model and the thread rules, docs/opencl.md for
 * the user's view.
 */
#include "opencl.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OCL_DEVICE_ENV "BOCPY_OPENCL_DEVICE"
#define OCL_MAX_PLATFORMS 16
#define OCL_MAX_DEVICES 64
/* Copies up to this size run with the GIL held (see queue_wait). */
#define OCL_GIL_COPY_LIMIT (1u << 20)
/* How long queue_wait spins before it releases the GIL (1 ms: a small
 * kernel finishes well within it, and it is 1/5 of the switch interval). */
#define OCL_SPIN_NS 1000000

static void ctx_dealloc(PyObject *self);
static void child_dealloc(PyObject *self);

/* ---- small helpers ------------------------------------------------------- */

static const char *kind_name(ocl_kind k) {
  switch (k) {
  case OCL_F32:
    return "float32";
  case OCL_F64:
    return "float64";
  case OCL_I32:
    return "int32";
  case OCL_I64:
    return "int64";
  case OCL_U32:
    return "uint32";
  case OCL_U64:
    return "uint64";
  case OCL_I8:
    return "int8";
  case OCL_U8:
    return "uint8";
  case OCL_I16:
    return "int16";
  case OCL_U16:
    return "uint16";
  default:
    return "other";
  }
}

static size_t kind_size(ocl_kind k) {
  switch (k) {
  case OCL_F64:
  case OCL_I64:
  case OCL_U64:
    return 8;
  case OCL_F32:
  case OCL_I32:
  case OCL_U32:
    return 4;
  case OCL_I16:
  case OCL_U16:
    return 2;
  case OCL_I8:
  case OCL_U8:
    return 1;
  default:
    return 0;
  }
}

/* The buffer element types a user may ask for by name. */
static int parse_dtype(PyObject *o, ocl_kind *out) {
  if (!PyUnicode_Check(o)) {
    PyErr_SetString(PyExc_TypeError,
                    "dtype must be a str: 'float64', 'float32', 'int32' or "
                    "'int64'");
    return -1;
  }
  static const ocl_kind kinds[] = {OCL_F64, OCL_F32, OCL_I32, OCL_I64};
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    if (PyUnicode_CompareWithASCIIString(o, kind_name(kinds[i])) == 0) {
      *out = kinds[i];
      return 0;
    }
  }
  PyErr_Format(PyExc_ValueError,
               "unknown dtype %R: use 'float64', 'float32', 'int32' or "
               "'int64'",
               o);
  return -1;
}

static ocl_state *state_of_type(PyTypeObject *tp) {
  return (ocl_state *)PyType_GetModuleState(tp);
}

/* Raises opencl.Error (or `type`) "<what>: <CL name> (<code>)<hint>" with
 * the attribute code set. */
static void raise_cl(ocl_state *st, PyObject *type, cl_int code,
                     const char *what, const char *hint) {
  PyObject *msg = PyUnicode_FromFormat("%s: %s (%d)%s", what,
                                       clx_error_name(code), (int)code,
                                       hint != NULL ? hint : "");
  if (msg == NULL) {
    return;
  }
  PyObject *exc = PyObject_CallFunctionObjArgs(
      type != NULL ? type : st->error, msg, NULL);
  Py_DECREF(msg);
  if (exc == NULL) {
    return;
  }
  PyObject *c = PyLong_FromLong((long)code);
  if (c == NULL || PyObject_SetAttrString(exc, "code", c) < 0) {
    Py_XDECREF(c);
    Py_DECREF(exc);
    return;
  }
  Py_DECREF(c);
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
}

/* The hint of an out-of-resources error. */
#define OOM_HINT                                                              \
  " (the device ran out of memory or resources: use smaller buffers or "      \
  "release some)"

/* ---- waiting for the queue --------------------------------------------------
 * Releasing the GIL around every wait looks right but is slow for short
 * kernels: when another thread of the main interpreter wants the GIL, it
 * takes it and this thread gets it back only after the switch interval (5
 * ms), which caps pinned dispatch at ~200 behaviors a second.  So a wait
 * first spins briefly, holding the GIL, on a marker event; only work that
 * is still running after OCL_SPIN_NS is waited for with the GIL released. */

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits until every command queued on q so far has run; CL_SUCCESS or the
 * error of a failed command. */
static cl_int queue_wait(const clx_api *cl, cl_command_queue q) {
  cl_event ev = NULL;
  cl_int err = cl->clEnqueueMarkerWithWaitList(q, 0, NULL, &ev);
  if (err != CL_SUCCESS) {
    cl_int ferr;
    Py_BEGIN_ALLOW_THREADS
    ferr = cl->clFinish(q);
    Py_END_ALLOW_THREADS
    return ferr;
  }
  cl_int status = CL_QUEUED;
  const long long start = now_ns();
  do {
    if (cl->clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS,
                           sizeof(status), &status, NULL) != CL_SUCCESS) {
      status = CL_QUEUED; /* fall back to waiting */
      break;
    }
  } while (status > CL_COMPLETE && now_ns() - start < OCL_SPIN_NS);
  if (status > CL_COMPLETE) {
    Py_BEGIN_ALLOW_THREADS
    err = cl->clWaitForEvents(1, &ev);
    Py_END_ALLOW_THREADS
    if (cl->clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS,
                           sizeof(status), &status, NULL) != CL_SUCCESS) {
      status = err == CL_SUCCESS ? CL_COMPLETE : err;
    }
  }
  cl->clReleaseEvent(ev);
  return status < 0 ? status : CL_SUCCESS;
}

/* ---- devices ------------------------------------------------------------- */

typedef struct {
  cl_platform_id platform;
  cl_device_id device;
} ocl_dev_ref;

/* Every device of every platform, in a stable order.  Returns the count (0
 * when there is no runtime or no device; nothing raised). */
static int list_devices(const clx_api *cl, ocl_dev_ref *out, int max) {
  cl_platform_id plats[OCL_MAX_PLATFORMS];
  cl_uint nplat = 0;
  if (cl == NULL ||
      cl->clGetPlatformIDs(OCL_MAX_PLATFORMS, plats, &nplat) != CL_SUCCESS) {
    return 0;
  }
  if (nplat > OCL_MAX_PLATFORMS) {
    nplat = OCL_MAX_PLATFORMS;
  }
  int n = 0;
  for (cl_uint p = 0; p < nplat && n < max; p++) {
    cl_device_id devs[OCL_MAX_DEVICES];
    cl_uint ndev = 0;
    if (cl->clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, OCL_MAX_DEVICES,
                           devs, &ndev) != CL_SUCCESS) {
      continue;
    }
    if (ndev > OCL_MAX_DEVICES) {
      ndev = OCL_MAX_DEVICES;
    }
    for (cl_uint d = 0; d < ndev && n < max; d++) {
      out[n].platform = plats[p];
      out[n].device = devs[d];
      n++;
    }
  }
  return n;
}

static PyObject *device_str(const clx_api *cl, cl_device_id dev,
                            cl_device_info what) {
  char buf[512];
  size_t len = 0;
  if (cl->clGetDeviceInfo(dev, what, sizeof(buf) - 1, buf, &len) !=
      CL_SUCCESS) {
    len = 0;
  }
  if (len >= sizeof(buf)) {
    len = sizeof(buf) - 1;
  }
  buf[len] = '\0';
  /* strip the trailing NUL and blanks some drivers add */
  size_t n = strlen(buf);
  while (n > 0 && isspace((unsigned char)buf[n - 1])) {
    buf[--n] = '\0';
  }
  return PyUnicode_DecodeUTF8(buf, (Py_ssize_t)n, "replace");
}

static cl_ulong device_ulong(const clx_api *cl, cl_device_id dev,
                             cl_device_info what) {
  cl_ulong v = 0;
  if (cl->clGetDeviceInfo(dev, what, sizeof(v), &v, NULL) != CL_SUCCESS) {
    return 0;
  }
  return v;
}

static int device_fp64(const clx_api *cl, cl_device_id dev) {
  cl_device_fp_config cfg = 0;
  if (cl->clGetDeviceInfo(dev, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof(cfg), &cfg,
                          NULL) != CL_SUCCESS) {
    return 0;
  }
  return cfg != 0;
}

/* The dict devices() lists for one device. */
static PyObject *device_info(const clx_api *cl, const ocl_dev_ref *ref,
                             int index) {
  char pbuf[256];
  size_t plen = 0;
  if (cl->clGetPlatformInfo(ref->platform, CL_PLATFORM_NAME,
                            sizeof(pbuf) - 1, pbuf, &plen) != CL_SUCCESS) {
    plen = 0;
  }
  if (plen >= sizeof(pbuf)) {
    plen = sizeof(pbuf) - 1;
  }
  pbuf[plen] = '\0';
  cl_device_type type = 0;
  if (cl->clGetDeviceInfo(ref->device, CL_DEVICE_TYPE, sizeof(type), &type,
                          NULL) != CL_SUCCESS) {
    type = 0;
  }
  const char *tname = (type & CL_DEVICE_TYPE_GPU)           ? "gpu"
                      : (type & CL_DEVICE_TYPE_CPU)         ? "cpu"
                      : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator"
                                                            : "other";
  cl_uint units = 0;
  if (cl->clGetDeviceInfo(ref->device, CL_DEVICE_MAX_COMPUTE_UNITS,
                          sizeof(units), &units, NULL) != CL_SUCCESS) {
    units = 0;
  }
  size_t wg = 0;
  if (cl->clGetDeviceInfo(ref->device, CL_DEVICE_MAX_WORK_GROUP_SIZE,
                          sizeof(wg), &wg, NULL) != CL_SUCCESS) {
    wg = 0;
  }
  return Py_BuildValue(
      "{s:i,s:s,s:N,s:N,s:s,s:K,s:K,s:I,s:n,s:O,s:N,s:N}", "index", index,
      "platform", pbuf, "name", device_str(cl, ref->device, CL_DEVICE_NAME),
      "vendor", device_str(cl, ref->device, CL_DEVICE_VENDOR), "type", tname,
      "memory",
      (unsigned long long)device_ulong(cl, ref->device,
                                       CL_DEVICE_GLOBAL_MEM_SIZE),
      "max_alloc",
      (unsigned long long)device_ulong(cl, ref->device,
                                       CL_DEVICE_MAX_MEM_ALLOC_SIZE),
      "compute_units", (unsigned)units, "max_work_group_size", (Py_ssize_t)wg,
      "fp64", device_fp64(cl, ref->device) ? Py_True : Py_False, "version",
      device_str(cl, ref->device, CL_DEVICE_VERSION), "driver",
      device_str(cl, ref->device, CL_DRIVER_VERSION));
}

static PyObject *devices_list(void) {
  const clx_api *cl = clx_get();
  ocl_dev_ref refs[OCL_MAX_DEVICES];
  int n = list_devices(cl, refs, OCL_MAX_DEVICES);
  PyObject *list = PyList_New(0);
  if (list == NULL) {
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    PyObject *d = device_info(cl, &refs[i], i);
    if (d == NULL || PyList_Append(list, d) < 0) {
      Py_XDECREF(d);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(d);
  }
  return list;
}

/* Case-insensitive: does hay contain needle? */
static int contains_ci(PyObject *hay, PyObject *needle_lower) {
  if (hay == NULL || !PyUnicode_Check(hay)) {
    return 0;
  }
  PyObject *low = PyObject_CallMethod(hay, "lower", NULL);
  if (low == NULL) {
    PyErr_Clear();
    return 0;
  }
  int r = PyUnicode_Contains(low, needle_lower);
  Py_DECREF(low);
  if (r < 0) {
    PyErr_Clear();
    return 0;
  }
  return r;
}

/* Raises NoDeviceError "<why>; devices(): [names]". */
static void no_device(ocl_state *st, PyObject *why) {
  PyObject *list = devices_list();
  PyObject *names = list != NULL ? PyList_New(0) : NULL;
  for (Py_ssize_t i = 0; names != NULL && i < PyList_Size(list); i++) {
    PyObject *d = PyList_GetItem(list, i);
    PyObject *s = PyUnicode_FromFormat(
        "%d: %S (%S, %S)", (int)i, PyDict_GetItemString(d, "name"),
        PyDict_GetItemString(d, "type"), PyDict_GetItemString(d, "platform"));
    if (s == NULL || PyList_Append(names, s) < 0) {
      Py_CLEAR(names);
    }
    Py_XDECREF(s);
  }
  if (names == NULL) {
    Py_XDECREF(list);
    return;
  }
  PyErr_Format(st->no_device_error, "%U; the devices are: %S", why, names);
  Py_DECREF(names);
  Py_DECREF(list);
}

/* Picks a device: `sel` (None: the environment variable, else the first
 * GPU, else the first device) is an index (int or digits), a type ('gpu',
 * 'cpu', 'accelerator') or a case-insensitive part of the device's name,
 * vendor or platform.  0 with *ref / *index set, or -1 with NoDeviceError,
 * TypeError or ValueError. */
static int select_device(ocl_state *st, PyObject *sel, ocl_dev_ref *ref,
                         int *index) {
  const clx_api *cl = clx_get();
  if (cl == NULL) {
    PyErr_SetString(st->no_device_error, clx_load_error());
    return -1;
  }
  ocl_dev_ref refs[OCL_MAX_DEVICES];
  int n = list_devices(cl, refs, OCL_MAX_DEVICES);
  if (n == 0) {
    PyErr_Format(st->no_device_error,
                 "no OpenCL device: the OpenCL loader (%s) found no platform "
                 "or device; install a driver (Debian: apt-get install "
                 "pocl-opencl-icd for the CPU, or your GPU vendor's OpenCL "
                 "driver) and check that /etc/OpenCL/vendors lists it",
                 clx_library());
    return -1;
  }
  PyObject *owned = NULL;
  const char *source = "device";
  if (sel == NULL || sel == Py_None) {
    const char *env = getenv(OCL_DEVICE_ENV);
    if (env != NULL && env[0] != '\0') {
      owned = PyUnicode_FromString(env);
      if (owned == NULL) {
        return -1;
      }
      sel = owned;
      source = OCL_DEVICE_ENV;
    } else {
      sel = NULL;
    }
  }
  int found = -1;
  if (sel == NULL) {
    for (int i = 0; i < n && found < 0; i++) {
      cl_device_type type = 0;
      if (cl->clGetDeviceInfo(refs[i].device, CL_DEVICE_TYPE, sizeof(type),
                              &type, NULL) == CL_SUCCESS &&
          (type & CL_DEVICE_TYPE_GPU)) {
        found = i;
      }
    }
    if (found < 0) {
      found = 0;
    }
  } else if (PyLong_Check(sel) && !PyBool_Check(sel)) {
    long v = PyLong_AsLong(sel);
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      v = -1;
    }
    if (v >= 0 && v < n) {
      found = (int)v;
    }
  } else if (PyUnicode_Check(sel)) {
    PyObject *low = PyObject_CallMethod(sel, "lower", NULL);
    PyObject *stripped =
        low != NULL ? PyObject_CallMethod(low, "strip", NULL) : NULL;
    Py_XDECREF(low);
    if (stripped == NULL) {
      Py_XDECREF(owned);
      return -1;
    }
    Py_ssize_t slen = PyUnicode_GetLength(stripped);
    const char *utf8 = PyUnicode_AsUTF8AndSize(stripped, NULL);
    int digits = utf8 != NULL && slen > 0;
    for (const char *p = utf8; digits && p != NULL && *p; p++) {
      digits = isdigit((unsigned char)*p) != 0;
    }
    if (utf8 == NULL) {
      PyErr_Clear();
    } else if (digits) {
      long v = strtol(utf8, NULL, 10);
      if (v >= 0 && v < n) {
        found = (int)v;
      }
    } else if (slen > 0) {
      cl_device_type want = 0;
      if (strcmp(utf8, "gpu") == 0) {
        want = CL_DEVICE_TYPE_GPU;
      } else if (strcmp(utf8, "cpu") == 0) {
        want = CL_DEVICE_TYPE_CPU;
      } else if (strcmp(utf8, "accelerator") == 0) {
        want = CL_DEVICE_TYPE_ACCELERATOR;
      }
      for (int i = 0; i < n && found < 0; i++) {
        if (want != 0) {
          cl_device_type type = 0;
          if (cl->clGetDeviceInfo(refs[i].device, CL_DEVICE_TYPE,
                                  sizeof(type), &type, NULL) == CL_SUCCESS &&
              (type & want)) {
            found = i;
          }
          continue;
        }
        PyObject *d = device_info(cl, &refs[i], i);
        if (d == NULL) {
          Py_DECREF(stripped);
          Py_XDECREF(owned);
          return -1;
        }
        if (contains_ci(PyDict_GetItemString(d, "name"), stripped) ||
            contains_ci(PyDict_GetItemString(d, "vendor"), stripped) ||
            contains_ci(PyDict_GetItemString(d, "platform"), stripped)) {
          found = i;
        }
        Py_DECREF(d);
      }
    }
    Py_DECREF(stripped);
  } else {
    PyObject *tn = PyType_GetName(Py_TYPE(sel));
    if (tn != NULL) {
      PyErr_Format(PyExc_TypeError,
                   "device must be None, an index (int) or a str (a type "
                   "such as 'gpu', or part of the device's name), not %U",
                   tn);
      Py_DECREF(tn);
    }
    Py_XDECREF(owned);
    return -1;
  }
  if (found < 0) {
    PyObject *why = PyUnicode_FromFormat(
        "no OpenCL device matches %s=%R (use an index from 0 to %d, 'gpu', "
        "'cpu', or part of a device's name)",
        source, sel, n - 1);
    if (why != NULL) {
      no_device(st, why);
      Py_DECREF(why);
    }
    Py_XDECREF(owned);
    return -1;
  }
  Py_XDECREF(owned);
  *ref = refs[found];
  *index = found;
  return 0;
}

/* ---- checks every method makes ------------------------------------------- */

/* The main interpreter, the Context's thread. */
static int ctx_here(ocl_ctx_t *c, const char *what) {
  if (!c->abi->interp_is_main()) {
    PyErr_Format(PyExc_RuntimeError,
                 "The current interpreter does not own this %s: OpenCL "
                 "objects live on the main interpreter; use them in a "
                 "pinned behavior (@when over the PinnedCown holding the "
                 "context)",
                 what);
    return -1;
  }
  if (c->abi->owner_check(&c->owner, what) < 0) {
    return -1;
  }
  if (PyThread_get_thread_ident() != c->thread) {
    PyErr_Format(PyExc_RuntimeError,
                 "this %s can only be used on the thread that opened its "
                 "context (the main thread, where pinned behaviors run)",
                 what);
    return -1;
  }
  return 0;
}

static int ctx_usable(ocl_ctx_t *c) {
  if (ctx_here(c, "OpenCL context") < 0) {
    return -1;
  }
  if (c->closed) {
    PyErr_SetString(PyExc_ValueError,
                    "this OpenCL context is closed: open a new one with "
                    "opencl.open()");
    return -1;
  }
  return 0;
}

static const char *child_what(const ocl_child_t *ch) {
  switch (ch->kind) {
  case OCL_CHILD_PROGRAM:
    return "OpenCL program";
  case OCL_CHILD_KERNEL:
    return "OpenCL kernel";
  default:
    return "OpenCL buffer";
  }
}

/* The child's context is usable and the child still holds its OpenCL
 * object. */
static int child_usable(ocl_child_t *ch) {
  const char *what = child_what(ch);
  if (ctx_here(ch->ctx, what) < 0) {
    return -1;
  }
  if (ch->ctx->closed) {
    PyErr_Format(PyExc_ValueError,
                 "this %s belongs to an OpenCL context that is closed: "
                 "make a new one on an open context",
                 what);
    return -1;
  }
  if (!ch->linked) {
    PyErr_Format(PyExc_ValueError, "this %s was released", what);
    return -1;
  }
  return 0;
}

/* ---- children ------------------------------------------------------------ */

static void child_link(ocl_ctx_t *c, ocl_child_t *ch, int kind) {
  ch->ctx = (ocl_ctx_t *)Py_NewRef((PyObject *)c);
  ch->kind = kind;
  ch->prev = NULL;
  ch->next = c->children;
  if (c->children != NULL) {
    c->children->prev = ch;
  }
  c->children = ch;
  ch->linked = 1;
}

/* Releases the child's OpenCL object and takes it out of its Context's
 * list (idempotent). */
static void child_release(ocl_child_t *ch) {
  if (!ch->linked) {
    return;
  }
  const clx_api *cl = clx_get();
  ocl_ctx_t *c = ch->ctx;
  if (ch->prev != NULL) {
    ch->prev->next = ch->next;
  } else {
    c->children = ch->next;
  }
  if (ch->next != NULL) {
    ch->next->prev = ch->prev;
  }
  ch->prev = ch->next = NULL;
  ch->linked = 0;
  switch (ch->kind) {
  case OCL_CHILD_PROGRAM: {
    ocl_program_t *p = (ocl_program_t *)ch;
    if (p->program != NULL) {
      cl->clReleaseProgram(p->program);
      p->program = NULL;
    }
    break;
  }
  case OCL_CHILD_KERNEL: {
    ocl_kernel_t *k = (ocl_kernel_t *)ch;
    if (k->kernel != NULL) {
      cl->clReleaseKernel(k->kernel);
      k->kernel = NULL;
    }
    break;
  }
  default: {
    ocl_buffer_t *b = (ocl_buffer_t *)ch;
    if (b->mem != NULL) {
      /* The runtime frees it once queued commands using it are done. */
      cl->clReleaseMemObject(b->mem);
      b->mem = NULL;
    }
    break;
  }
  }
}

/* ---- the Context --------------------------------------------------------- */

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

/* Waits for the queue, releases every child and the context (idempotent).
 * Never fails: the destroy hook and dealloc call it. */
static void ctx_close_impl(ocl_ctx_t *c) {
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
    child_release(c->children);
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
  ocl_state *st = state_of_type(type);
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
    if (parse_dtype(dtype, &want) < 0) {
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
  if (select_device(st, sel, &ref, &index) < 0) {
    return NULL;
  }
  const clx_api *cl = clx_get();
  int fp64 = device_fp64(cl, ref.device);
  if (want == OCL_F64 && !fp64) {
    PyObject *name = device_str(cl, ref.device, CL_DEVICE_NAME);
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
  c->max_alloc = device_ulong(cl, ref.device, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
  c->closed = 1; /* until everything exists */
  c->info = device_info(cl, &ref, index);
  if (c->info == NULL) {
    Py_DECREF(c);
    return NULL;
  }
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                   (cl_context_properties)ref.platform, 0};
  cl_int err = CL_SUCCESS;
  c->context = cl->clCreateContext(props, 1, &ref.device, NULL, NULL, &err);
  if (c->context == NULL) {
    raise_cl(st, NULL, err, "cannot create an OpenCL context", NULL);
    Py_DECREF(c);
    return NULL;
  }
  c->queue = cl->clCreateCommandQueue(c->context, ref.device, 0, &err);
  if (c->queue == NULL) {
    raise_cl(st, NULL, err, "cannot create an OpenCL command queue", NULL);
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
    ctx_close_impl(c);
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
  if (ctx_here(c, "OpenCL context") < 0) {
    return NULL;
  }
  ctx_close_impl(c);
  Py_RETURN_NONE;
}

static PyObject *ctx_finish(PyObject *self, PyObject *Py_UNUSED(a)) {
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  if (ctx_usable(c) < 0) {
    return NULL;
  }
  cl_int err = queue_wait(clx_get(), c->queue);
  if (err != CL_SUCCESS) {
    raise_cl(c->st, NULL, err, "a queued OpenCL command failed", NULL);
    return NULL;
  }
  Py_RETURN_NONE;
}

/* ---- Matrix access (its buffer protocol) ------------------------------------- */

static PyObject *matrix_type(ocl_state *st) {
  if (st->matrix_type == NULL) {
    PyObject *mod = PyImport_ImportModule("bocpy.plugins.matrix");
    if (mod == NULL) {
      return NULL;
    }
    st->matrix_type = PyObject_GetAttrString(mod, "Matrix");
    Py_DECREF(mod);
  }
  return st->matrix_type;
}

/* 1 when o is a bocpy.Matrix, 0 when not, -1 on error. */
static int is_matrix(ocl_state *st, PyObject *o) {
  PyObject *t = matrix_type(st);
  if (t == NULL) {
    return -1;
  }
  return (PyObject *)Py_TYPE(o) == t;
}

/* A C-contiguous rows x columns float64 view of Matrix m, through the
 * Matrix's buffer protocol: owner only (RuntimeError from the Matrix
 * otherwise), and while the view is held the matrix cannot move to another
 * interpreter or change shape (BufferError from the Matrix). */
static int matrix_view(PyObject *m, Py_buffer *view, int writable) {
  if (PyObject_GetBuffer(m, view,
                         PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                             (writable ? PyBUF_WRITABLE : 0)) < 0) {
    return -1;
  }
  if (view->ndim != 2 || view->format == NULL ||
      strcmp(view->format, "d") != 0 || view->itemsize != 8) {
    PyBuffer_Release(view);
    PyErr_SetString(PyExc_TypeError,
                    "the Matrix did not export a 2-D float64 buffer");
    return -1;
  }
  return 0;
}

static PyObject *matrix_new(ocl_state *st, Py_ssize_t rows, Py_ssize_t cols) {
  PyObject *t = matrix_type(st);
  if (t == NULL) {
    return NULL;
  }
  return PyObject_CallFunction(t, "nn", rows, cols);
}

/* Converts n doubles to the element type k (into dst): floats round to
 * nearest (beyond float's range: infinity), integers truncate toward zero.
 * 0, or -1 with ValueError naming the first element an integer type cannot
 * hold (NaN, infinite or out of range: a C conversion would be undefined). */
static int from_doubles(ocl_kind k, const double *src, void *dst, size_t n) {
  size_t i = 0;
  switch (k) {
  case OCL_F32: {
    float *d = dst;
    for (; i < n; i++) {
      const double v = src[i];
      d[i] = v > FLT_MAX    ? INFINITY
             : v < -FLT_MAX ? -INFINITY
                            : (float)v; /* NaN stays NaN */
    }
    return 0;
  }
  case OCL_I32: {
    int32_t *d = dst;
    for (; i < n; i++) {
      const double v = src[i];
      if (!(v > -2147483649.0 && v < 2147483648.0)) {
        goto range;
      }
      d[i] = (int32_t)v;
    }
    return 0;
  }
  case OCL_I64: {
    int64_t *d = dst;
    for (; i < n; i++) {
      const double v = src[i];
      if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) {
        goto range;
      }
      d[i] = (int64_t)v;
    }
    return 0;
  }
  default:
    memcpy(dst, src, n * sizeof(double));
    return 0;
  }
range: {
  PyObject *value = PyFloat_FromDouble(src[i]);
  if (value != NULL) {
    PyErr_Format(PyExc_ValueError,
                 "element %zu of the Matrix (%R) does not fit in %s", i,
                 value, kind_name(k));
    Py_DECREF(value);
  }
  return -1;
}
}

static void to_doubles(ocl_kind k, const void *src, double *dst, size_t n) {
  switch (k) {
  case OCL_F32: {
    const float *s = src;
    for (size_t i = 0; i < n; i++) {
      dst[i] = (double)s[i];
    }
    break;
  }
  case OCL_I32: {
    const int32_t *s = src;
    for (size_t i = 0; i < n; i++) {
      dst[i] = (double)s[i];
    }
    break;
  }
  case OCL_I64: {
    const int64_t *s = src;
    for (size_t i = 0; i < n; i++) {
      dst[i] = (double)s[i];
    }
    break;
  }
  default:
    memcpy(dst, src, n * sizeof(double));
  }
}

/* A device buffer holding a copy of the view's doubles as type k (the data
 * is copied before this returns).  NULL with an exception. */
static cl_mem upload(ocl_ctx_t *c, const Py_buffer *view, ocl_kind k,
                     cl_mem_flags flags) {
  const clx_api *cl = clx_get();
  size_t n = (size_t)view->len / sizeof(double);
  size_t bytes = n * kind_size(k);
  if ((cl_ulong)bytes > c->max_alloc) {
    PyErr_Format(PyExc_ValueError,
                 "a buffer of %zu bytes is larger than the device's largest "
                 "allocation (%llu bytes)",
                 bytes, (unsigned long long)c->max_alloc);
    return NULL;
  }
  void *host = view->buf;
  void *tmp = NULL;
  if (k != OCL_F64) {
    tmp = malloc(bytes);
    if (tmp == NULL) {
      PyErr_NoMemory();
      return NULL;
    }
    if (from_doubles(k, view->buf, tmp, n) < 0) {
      free(tmp);
      return NULL;
    }
    host = tmp;
  }
  cl_int err = CL_SUCCESS;
  cl_mem mem;
  cl_context ctx = c->context;
  if (bytes <= OCL_GIL_COPY_LIMIT) {
    mem = cl->clCreateBuffer(ctx, flags | CL_MEM_COPY_HOST_PTR, bytes, host,
                             &err);
  } else {
    Py_BEGIN_ALLOW_THREADS
    mem = cl->clCreateBuffer(ctx, flags | CL_MEM_COPY_HOST_PTR, bytes, host,
                             &err);
    Py_END_ALLOW_THREADS
  }
  free(tmp);
  if (mem == NULL) {
    raise_cl(c->st, NULL, err, "cannot create an OpenCL buffer", OOM_HINT);
    return NULL;
  }
  c->bytes_to_device += (long long)bytes;
  return mem;
}

/* ---- sizes --------------------------------------------------------------- */

/* One positive size: 0, or -1 with TypeError / ValueError / OverflowError
 * naming `what`. */
static int parse_size(PyObject *o, const char *what, size_t *out) {
  if (!PyLong_Check(o) || PyBool_Check(o)) {
    PyObject *tn = PyType_GetName(Py_TYPE(o));
    if (tn != NULL) {
      PyErr_Format(PyExc_TypeError, "%s must be an int, not %U", what, tn);
      Py_DECREF(tn);
    }
    return -1;
  }
  long long v = PyLong_AsLongLong(o);
  if (v == -1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
      return -1;
    }
    PyErr_Clear();
    /* beyond 64 bits: too large, or far negative */
    PyObject *zero = PyLong_FromLong(0);
    int neg = zero != NULL ? PyObject_RichCompareBool(o, zero, Py_LT) : -1;
    Py_XDECREF(zero);
    if (neg < 0) {
      return -1;
    }
    if (neg) {
      PyErr_Format(PyExc_ValueError, "%s must be at least 1, got %R", what,
                   o);
    } else {
      PyErr_Format(PyExc_OverflowError, "%s %R is too large", what, o);
    }
    return -1;
  }
  if (v < 1) {
    PyErr_Format(PyExc_ValueError, "%s must be at least 1, got %lld", what,
                 v);
    return -1;
  }
  if ((unsigned long long)v > (unsigned long long)PY_SSIZE_T_MAX) {
    PyErr_Format(PyExc_OverflowError, "%s %lld is too large", what, v);
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

/* An int or a tuple/list of 1 to 3 ints: the work sizes of a launch. */
static int parse_work(PyObject *o, const char *what, size_t out[3],
                      cl_uint *dims) {
  if (PyLong_Check(o)) {
    *dims = 1;
    return parse_size(o, what, &out[0]);
  }
  if (!PyTuple_Check(o) && !PyList_Check(o)) {
    PyObject *tn = PyType_GetName(Py_TYPE(o));
    if (tn != NULL) {
      PyErr_Format(PyExc_TypeError,
                   "%s must be an int or a tuple of 1 to 3 ints, not %U",
                   what, tn);
      Py_DECREF(tn);
    }
    return -1;
  }
  PyObject *seq = PySequence_Tuple(o);
  if (seq == NULL) {
    return -1;
  }
  Py_ssize_t n = PyTuple_Size(seq);
  if (n < 1 || n > 3) {
    PyErr_Format(PyExc_ValueError,
                 "%s must have 1 to 3 dimensions, got %zd", what, n);
    Py_DECREF(seq);
    return -1;
  }
  size_t total = 1;
  for (Py_ssize_t i = 0; i < n; i++) {
    if (parse_size(PyTuple_GetItem(seq, i), what, &out[i]) < 0) {
      Py_DECREF(seq);
      return -1;
    }
    if (out[i] > (size_t)PY_SSIZE_T_MAX / total) {
      PyErr_Format(PyExc_OverflowError,
                   "%s %R has more work items than fit in a size_t", what,
                   o);
      Py_DECREF(seq);
      return -1;
    }
    total *= out[i];
  }
  Py_DECREF(seq);
  *dims = (cl_uint)n;
  return 0;
}

/* ---- Buffers ------------------------------------------------------------- */

static ocl_buffer_t *buffer_alloc(ocl_ctx_t *c) {
  ocl_buffer_t *b =
      (ocl_buffer_t *)PyType_GenericAlloc(c->st->buffer_type, 0);
  if (b != NULL) {
    child_link(c, &b->base, OCL_CHILD_BUFFER);
  }
  return b;
}

PyDoc_STRVAR(ctx_buffer_doc,
             "buffer(source, dtype=None) -> Buffer\n--\n\n"
             "A device buffer: a copy of the Matrix `source` (converted to "
             "dtype, by default the context's dtype), or `source` zeroed "
             "elements (an int n, shape (1, n), or a (rows, columns) "
             "tuple).  dtype: 'float64', 'float32', 'int32', 'int64'.");
static PyObject *ctx_buffer(PyObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"source", "dtype", NULL};
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  PyObject *source, *dtype = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:buffer", kwlist, &source,
                                   &dtype)) {
    return NULL;
  }
  if (ctx_usable(c) < 0) {
    return NULL;
  }
  ocl_kind k = c->real;
  if (dtype != Py_None && parse_dtype(dtype, &k) < 0) {
    return NULL;
  }
  if (k == OCL_F64 && !c->fp64) {
    PyErr_Format(PyExc_ValueError,
                 "the OpenCL device %S has no double precision (fp64): use "
                 "dtype='float32'",
                 PyDict_GetItemString(c->info, "name"));
    return NULL;
  }
  int mx = is_matrix(c->st, source);
  if (mx < 0) {
    return NULL;
  }
  const clx_api *cl = clx_get();
  if (mx) {
    Py_buffer view;
    if (matrix_view(source, &view, 0) < 0) {
      return NULL;
    }
    cl_mem mem = upload(c, &view, k, CL_MEM_READ_WRITE);
    Py_ssize_t rows = view.shape[0], cols = view.shape[1];
    PyBuffer_Release(&view);
    if (mem == NULL) {
      return NULL;
    }
    ocl_buffer_t *b = buffer_alloc(c);
    if (b == NULL) {
      cl->clReleaseMemObject(mem);
      return NULL;
    }
    b->mem = mem;
    b->dtype = k;
    b->rows = rows;
    b->cols = cols;
    b->count = (size_t)(rows * cols);
    return (PyObject *)b;
  }
  size_t rows = 1, cols;
  if (PyTuple_Check(source)) {
    if (PyTuple_Size(source) != 2) {
      PyErr_Format(PyExc_ValueError,
                   "buffer(): a shape is a (rows, columns) tuple, got %R",
                   source);
      return NULL;
    }
    if (parse_size(PyTuple_GetItem(source, 0), "buffer rows", &rows) < 0 ||
        parse_size(PyTuple_GetItem(source, 1), "buffer columns", &cols) <
            0) {
      return NULL;
    }
    if (rows > (size_t)PY_SSIZE_T_MAX / cols) {
      PyErr_Format(PyExc_OverflowError,
                   "buffer(): %R elements do not fit in a size_t", source);
      return NULL;
    }
  } else if (PyLong_Check(source)) {
    if (parse_size(source, "buffer size", &cols) < 0) {
      return NULL;
    }
  } else {
    PyObject *tn = PyType_GetName(Py_TYPE(source));
    if (tn != NULL) {
      PyErr_Format(PyExc_TypeError,
                   "buffer() needs a bocpy.Matrix, a number of elements or "
                   "a (rows, columns) tuple, not %U",
                   tn);
      Py_DECREF(tn);
    }
    return NULL;
  }
  size_t count = rows * cols, item = kind_size(k);
  if (count > SIZE_MAX / item) {
    PyErr_Format(PyExc_OverflowError,
                 "buffer(): %zu elements of %s overflow a size_t", count,
                 kind_name(k));
    return NULL;
  }
  size_t bytes = count * item;
  if ((cl_ulong)bytes > c->max_alloc) {
    PyErr_Format(PyExc_ValueError,
                 "buffer(): %zu bytes is larger than the device's largest "
                 "allocation (%llu bytes)",
                 bytes, (unsigned long long)c->max_alloc);
    return NULL;
  }
  cl_int err = CL_SUCCESS;
  cl_mem mem = cl->clCreateBuffer(c->context, CL_MEM_READ_WRITE, bytes, NULL,
                                  &err);
  if (mem == NULL) {
    raise_cl(c->st, NULL, err, "cannot create an OpenCL buffer", OOM_HINT);
    return NULL;
  }
  const uint64_t zero = 0;
  err = cl->clEnqueueFillBuffer(c->queue, mem, &zero, item, 0, bytes, 0,
                                NULL, NULL);
  if (err != CL_SUCCESS) {
    cl->clReleaseMemObject(mem);
    raise_cl(c->st, NULL, err, "cannot clear an OpenCL buffer", OOM_HINT);
    return NULL;
  }
  ocl_buffer_t *b = buffer_alloc(c);
  if (b == NULL) {
    cl->clReleaseMemObject(mem);
    return NULL;
  }
  b->mem = mem;
  b->dtype = k;
  b->rows = (Py_ssize_t)rows;
  b->cols = (Py_ssize_t)cols;
  b->count = count;
  return (PyObject *)b;
}

/* The Matrix `out` must have the buffer's shape. */
static int check_shape(ocl_buffer_t *b, const Py_buffer *view,
                       const char *verb) {
  if (view->shape[0] != b->rows || view->shape[1] != b->cols) {
    PyErr_Format(PyExc_ValueError,
                 "cannot %s a buffer of shape (%zd, %zd) %s a Matrix of "
                 "shape (%zd, %zd): the shapes must be equal",
                 verb, b->rows, b->cols, verb[0] == 'r' ? "into" : "from",
                 view->shape[0], view->shape[1]);
    return -1;
  }
  return 0;
}

PyDoc_STRVAR(buf_read_doc,
             "read(out=None) -> Matrix\n--\n\n"
             "Waits for the queued work, then copies the buffer into `out` "
             "(a Matrix of the buffer's shape) or a new Matrix, converting "
             "to float64.");
static PyObject *buf_read(PyObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"out", NULL};
  ocl_buffer_t *b = (ocl_buffer_t *)self;
  PyObject *out = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:read", kwlist, &out)) {
    return NULL;
  }
  if (child_usable(&b->base) < 0) {
    return NULL;
  }
  ocl_ctx_t *c = b->base.ctx;
  if (out == Py_None) {
    out = matrix_new(c->st, b->rows, b->cols);
    if (out == NULL) {
      return NULL;
    }
  } else {
    int mx = is_matrix(c->st, out);
    if (mx <= 0) {
      if (mx == 0) {
        PyErr_SetString(PyExc_TypeError,
                        "read(out=...): out must be a bocpy.Matrix");
      }
      return NULL;
    }
    Py_INCREF(out);
  }
  Py_buffer view;
  if (matrix_view(out, &view, 1) < 0) {
    Py_DECREF(out);
    return NULL;
  }
  if (check_shape(b, &view, "read") < 0) {
    PyBuffer_Release(&view);
    Py_DECREF(out);
    return NULL;
  }
  const clx_api *cl = clx_get();
  size_t bytes = b->count * kind_size(b->dtype);
  void *tmp = NULL;
  void *dst = view.buf;
  if (b->dtype != OCL_F64) {
    tmp = malloc(bytes);
    if (tmp == NULL) {
      PyBuffer_Release(&view);
      Py_DECREF(out);
      return PyErr_NoMemory();
    }
    dst = tmp;
  }
  cl_command_queue q = c->queue;
  cl_mem mem = b->mem;
  cl_int err = queue_wait(cl, q); /* the kernels writing it first */
  if (err == CL_SUCCESS && bytes <= OCL_GIL_COPY_LIMIT) {
    err = cl->clEnqueueReadBuffer(q, mem, CL_TRUE, 0, bytes, dst, 0, NULL,
                                  NULL);
  } else if (err == CL_SUCCESS) {
    Py_BEGIN_ALLOW_THREADS
    err = cl->clEnqueueReadBuffer(q, mem, CL_TRUE, 0, bytes, dst, 0, NULL,
                                  NULL);
    Py_END_ALLOW_THREADS
  }
  if (err == CL_SUCCESS && tmp != NULL) {
    to_doubles(b->dtype, tmp, view.buf, b->count);
  }
  free(tmp);
  PyBuffer_Release(&view);
  if (err != CL_SUCCESS) {
    raise_cl(c->st, NULL, err,
             "cannot read the OpenCL buffer (a queued kernel may have "
             "failed)",
             NULL);
    Py_DECREF(out);
    return NULL;
  }
  c->bytes_from_device += (long long)bytes;
  return out;
}

PyDoc_STRVAR(buf_write_doc,
             "write(source)\n--\n\n"
             "Copies the Matrix `source` (of the buffer's shape) into the "
             "buffer, converting from float64.");
static PyObject *buf_write(PyObject *self, PyObject *source) {
  ocl_buffer_t *b = (ocl_buffer_t *)self;
  if (child_usable(&b->base) < 0) {
    return NULL;
  }
  ocl_ctx_t *c = b->base.ctx;
  int mx = is_matrix(c->st, source);
  if (mx <= 0) {
    if (mx == 0) {
      PyErr_SetString(PyExc_TypeError, "write(): source must be a "
                                       "bocpy.Matrix");
    }
    return NULL;
  }
  Py_buffer view;
  if (matrix_view(source, &view, 0) < 0) {
    return NULL;
  }
  if (check_shape(b, &view, "write") < 0) {
    PyBuffer_Release(&view);
    return NULL;
  }
  size_t bytes = b->count * kind_size(b->dtype);
  void *tmp = NULL;
  const void *src = view.buf;
  if (b->dtype != OCL_F64) {
    tmp = malloc(bytes);
    if (tmp == NULL) {
      PyBuffer_Release(&view);
      return PyErr_NoMemory();
    }
    if (from_doubles(b->dtype, view.buf, tmp, b->count) < 0) {
      free(tmp);
      PyBuffer_Release(&view);
      return NULL;
    }
    src = tmp;
  }
  const clx_api *cl = clx_get();
  cl_command_queue q = c->queue;
  cl_mem mem = b->mem;
  cl_int err = queue_wait(cl, q); /* the kernels using it first */
  if (err == CL_SUCCESS && bytes <= OCL_GIL_COPY_LIMIT) {
    err = cl->clEnqueueWriteBuffer(q, mem, CL_TRUE, 0, bytes, src, 0, NULL,
                                   NULL);
  } else if (err == CL_SUCCESS) {
    Py_BEGIN_ALLOW_THREADS
    err = cl->clEnqueueWriteBuffer(q, mem, CL_TRUE, 0, bytes, src, 0, NULL,
                                   NULL);
    Py_END_ALLOW_THREADS
  }
  free(tmp);
  PyBuffer_Release(&view);
  if (err != CL_SUCCESS) {
    raise_cl(c->st, NULL, err, "cannot write the OpenCL buffer", NULL);
    return NULL;
  }
  c->bytes_to_device += (long long)bytes;
  Py_RETURN_NONE;
}

static PyObject *child_release_meth(PyObject *self, PyObject *Py_UNUSED(a)) {
  ocl_child_t *ch = (ocl_child_t *)self;
  if (ctx_here(ch->ctx, child_what(ch)) < 0) {
    return NULL;
  }
  child_release(ch);
  Py_RETURN_NONE;
}

static PyObject *buf_get_shape(PyObject *self, void *c) {
  (void)c;
  ocl_buffer_t *b = (ocl_buffer_t *)self;
  return Py_BuildValue("(nn)", b->rows, b->cols);
}
static PyObject *buf_get_size(PyObject *self, void *c) {
  (void)c;
  return PyLong_FromSize_t(((ocl_buffer_t *)self)->count);
}
static PyObject *buf_get_nbytes(PyObject *self, void *c) {
  (void)c;
  ocl_buffer_t *b = (ocl_buffer_t *)self;
  return PyLong_FromSize_t(b->count * kind_size(b->dtype));
}
static PyObject *buf_get_dtype(PyObject *self, void *c) {
  (void)c;
  return PyUnicode_FromString(kind_name(((ocl_buffer_t *)self)->dtype));
}

/* ---- common to the children ---------------------------------------------- */

static PyObject *child_get_context(PyObject *self, void *c) {
  (void)c;
  return Py_NewRef((PyObject *)((ocl_child_t *)self)->ctx);
}
static PyObject *child_get_released(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(!((ocl_child_t *)self)->linked);
}

static void child_dealloc(PyObject *self) {
  ocl_child_t *ch = (ocl_child_t *)self;
  PyTypeObject *tp = Py_TYPE(self);
  child_release(ch);
  if (ch->kind == OCL_CHILD_KERNEL) {
    ocl_kernel_t *k = (ocl_kernel_t *)ch;
    Py_CLEAR(k->program);
    Py_CLEAR(k->name);
    PyMem_Free(k->args);
    k->args = NULL;
  } else if (ch->kind == OCL_CHILD_PROGRAM) {
    Py_CLEAR(((ocl_program_t *)ch)->options);
  }
  Py_CLEAR(ch->ctx);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *any_reduce(PyObject *self, PyObject *Py_UNUSED(a)) {
  /* TypeError naming PinnedCown: these never leave the main interpreter. */
  ocl_state *st = state_of_type(Py_TYPE(self));
  return st != NULL ? st->abi->reduce_shared(self) : NULL;
}

/* ---- Programs and Kernels ------------------------------------------------ */

/* Prepended to every program: enables doubles where the device has them and
 * names the context's Matrix element type real_t; #line keeps the build
 * log's line numbers those of the user's source. */
static const char prelude_f64[] =
    "#ifdef cl_khr_fp64\n#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
    "#endif\ntypedef double real_t;\n#line 1\n";
static const char prelude_f32[] =
    "#ifdef cl_khr_fp64\n#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
    "#endif\ntypedef float real_t;\n#line 1\n";

static PyObject *program_build_log(const clx_api *cl, cl_program p,
                                   cl_device_id dev) {
  size_t len = 0;
  if (cl->clGetProgramBuildInfo(p, dev, CL_PROGRAM_BUILD_LOG, 0, NULL,
                                &len) != CL_SUCCESS ||
      len == 0) {
    return PyUnicode_FromString("");
  }
  char *buf = malloc(len + 1);
  if (buf == NULL) {
    return PyErr_NoMemory();
  }
  if (cl->clGetProgramBuildInfo(p, dev, CL_PROGRAM_BUILD_LOG, len, buf,
                                NULL) != CL_SUCCESS) {
    len = 0;
  }
  buf[len] = '\0';
  size_t n = strlen(buf);
  while (n > 0 && isspace((unsigned char)buf[n - 1])) {
    buf[--n] = '\0';
  }
  PyObject *s = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)n, "replace");
  free(buf);
  return s;
}

PyDoc_STRVAR(ctx_program_doc,
             "program(source, options='') -> Program\n--\n\n"
             "Compiles OpenCL C source for the context's device.  real_t is "
             "the context's Matrix element type (double or float).  Raises "
             "BuildError (with .log, the compiler's output) when it does not "
             "compile.");
static PyObject *ctx_program(PyObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"source", "options", NULL};
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  PyObject *source, *options = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "U|U:program", kwlist, &source,
                                   &options)) {
    return NULL;
  }
  if (ctx_usable(c) < 0) {
    return NULL;
  }
  Py_ssize_t slen;
  const char *src = PyUnicode_AsUTF8AndSize(source, &slen);
  if (src == NULL) {
    return NULL;
  }
  if (slen == 0) {
    PyErr_SetString(PyExc_ValueError, "program(): the source is empty");
    return NULL;
  }
  const char *opts = "";
  if (options != NULL && (opts = PyUnicode_AsUTF8AndSize(options, NULL)) ==
                             NULL) {
    return NULL;
  }
  const clx_api *cl = clx_get();
  const char *parts[2] = {c->real == OCL_F64 ? prelude_f64 : prelude_f32,
                          src};
  size_t lens[2] = {strlen(parts[0]), (size_t)slen};
  cl_int err = CL_SUCCESS;
  cl_program p = cl->clCreateProgramWithSource(c->context, 2, parts, lens,
                                               &err);
  if (p == NULL) {
    raise_cl(c->st, NULL, err, "cannot create an OpenCL program", NULL);
    return NULL;
  }
  size_t olen = strlen(opts);
  char *all = malloc(olen + 64);
  if (all == NULL) {
    cl->clReleaseProgram(p);
    return PyErr_NoMemory();
  }
  /* -cl-kernel-arg-info: run() checks arguments against the parameters. */
  snprintf(all, olen + 64, "%s -cl-kernel-arg-info", opts);
  cl_device_id dev = c->device;
  Py_BEGIN_ALLOW_THREADS
  err = cl->clBuildProgram(p, 1, &dev, all, NULL, NULL);
  Py_END_ALLOW_THREADS
  free(all);
  if (err != CL_SUCCESS) {
    PyObject *log = program_build_log(cl, p, dev);
    cl->clReleaseProgram(p);
    if (log == NULL) {
      return NULL;
    }
    PyObject *msg = PyUnicode_FromFormat(
        "the OpenCL program did not compile for %S (%s):\n%U",
        PyDict_GetItemString(c->info, "name"), clx_error_name(err), log);
    PyObject *exc =
        msg != NULL
            ? PyObject_CallFunctionObjArgs(c->st->build_error, msg, NULL)
            : NULL;
    Py_XDECREF(msg);
    PyObject *code = PyLong_FromLong((long)err);
    if (exc != NULL && code != NULL &&
        PyObject_SetAttrString(exc, "log", log) == 0 &&
        PyObject_SetAttrString(exc, "code", code) == 0) {
      PyErr_SetObject(c->st->build_error, exc);
    }
    Py_XDECREF(code);
    Py_XDECREF(exc);
    Py_DECREF(log);
    return NULL;
  }
  ocl_program_t *prog =
      (ocl_program_t *)PyType_GenericAlloc(c->st->program_type, 0);
  if (prog == NULL) {
    cl->clReleaseProgram(p);
    return NULL;
  }
  child_link(c, &prog->base, OCL_CHILD_PROGRAM);
  prog->program = p;
  prog->options = options != NULL ? Py_NewRef(options)
                                  : PyUnicode_FromString("");
  if (prog->options == NULL) {
    Py_DECREF(prog);
    return NULL;
  }
  return (PyObject *)prog;
}

static PyObject *program_kernel_names(ocl_program_t *p) {
  const clx_api *cl = clx_get();
  size_t len = 0;
  if (cl->clGetProgramInfo(p->program, CL_PROGRAM_KERNEL_NAMES, 0, NULL,
                           &len) != CL_SUCCESS ||
      len == 0) {
    return PyList_New(0);
  }
  char *buf = malloc(len + 1);
  if (buf == NULL) {
    return PyErr_NoMemory();
  }
  if (cl->clGetProgramInfo(p->program, CL_PROGRAM_KERNEL_NAMES, len, buf,
                           NULL) != CL_SUCCESS) {
    len = 0;
  }
  buf[len] = '\0';
  PyObject *s = PyUnicode_FromString(buf);
  free(buf);
  if (s == NULL) {
    return NULL;
  }
  /* "a;b;c" */
  PyObject *sep = PyUnicode_FromString(";");
  PyObject *parts = sep != NULL ? PyUnicode_Split(s, sep, -1) : NULL;
  Py_XDECREF(sep);
  Py_DECREF(s);
  if (parts == NULL) {
    return NULL;
  }
  PyObject *sorted = PyList_New(0);
  for (Py_ssize_t i = 0; sorted != NULL && i < PyList_Size(parts); i++) {
    PyObject *item = PyList_GetItem(parts, i);
    if (PyUnicode_GetLength(item) > 0 && PyList_Append(sorted, item) < 0) {
      Py_CLEAR(sorted);
    }
  }
  Py_DECREF(parts);
  if (sorted != NULL && PyList_Sort(sorted) < 0) {
    Py_CLEAR(sorted);
  }
  return sorted;
}

static PyObject *prog_get_kernel_names(PyObject *self, void *c) {
  (void)c;
  ocl_program_t *p = (ocl_program_t *)self;
  if (child_usable(&p->base) < 0) {
    return NULL;
  }
  return program_kernel_names(p);
}

/* "float*", "__global float *", "uint" -> kind; pointer / local flags come
 * from the address qualifier. */
static ocl_kind parse_type_name(const char *t, ocl_kind real) {
  char base[48];
  size_t n = 0;
  for (const char *p = t; *p && n + 1 < sizeof(base); p++) {
    if (*p == '*' || isspace((unsigned char)*p)) {
      continue;
    }
    base[n++] = *p;
  }
  base[n] = '\0';
  static const struct {
    const char *name;
    ocl_kind kind;
  } names[] = {{"float", OCL_F32},  {"double", OCL_F64}, {"int", OCL_I32},
               {"uint", OCL_U32},   {"long", OCL_I64},   {"ulong", OCL_U64},
               {"char", OCL_I8},    {"uchar", OCL_U8},   {"short", OCL_I16},
               {"ushort", OCL_U16}, {"bool", OCL_OTHER}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcmp(base, names[i].name) == 0) {
      return names[i].kind;
    }
  }
  if (strcmp(base, "real_t") == 0) { /* the prelude's typedef */
    return real;
  }
  if (strcmp(base, "unsignedint") == 0) {
    return OCL_U32;
  }
  if (strcmp(base, "size_t") == 0) {
    return sizeof(size_t) == 8 ? OCL_U64 : OCL_U32;
  }
  return OCL_OTHER;
}

PyDoc_STRVAR(prog_kernel_doc,
             "kernel(name) -> Kernel\n--\n\n"
             "The kernel `name` of this program (ValueError listing the "
             "program's kernels when there is none by that name).");
static PyObject *prog_kernel(PyObject *self, PyObject *name) {
  ocl_program_t *p = (ocl_program_t *)self;
  if (!PyUnicode_Check(name)) {
    PyErr_SetString(PyExc_TypeError, "kernel(name): name must be a str");
    return NULL;
  }
  if (child_usable(&p->base) < 0) {
    return NULL;
  }
  const char *cname = PyUnicode_AsUTF8AndSize(name, NULL);
  if (cname == NULL) {
    return NULL;
  }
  const clx_api *cl = clx_get();
  ocl_ctx_t *c = p->base.ctx;
  cl_int err = CL_SUCCESS;
  cl_kernel k = cl->clCreateKernel(p->program, cname, &err);
  if (k == NULL) {
    if (err == CL_INVALID_KERNEL_NAME) {
      PyObject *names = program_kernel_names(p);
      if (names != NULL) {
        PyErr_Format(PyExc_ValueError,
                     "the program has no kernel named %R; its kernels are "
                     "%S",
                     name, names);
        Py_DECREF(names);
      }
      return NULL;
    }
    raise_cl(c->st, NULL, err, "cannot create the OpenCL kernel", NULL);
    return NULL;
  }
  ocl_kernel_t *kr =
      (ocl_kernel_t *)PyType_GenericAlloc(c->st->kernel_type, 0);
  if (kr == NULL) {
    cl->clReleaseKernel(k);
    return NULL;
  }
  child_link(c, &kr->base, OCL_CHILD_KERNEL);
  kr->kernel = k;
  kr->program = Py_NewRef(self);
  kr->name = Py_NewRef(name);
  cl_uint nargs = 0;
  if (cl->clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof(nargs), &nargs,
                          NULL) != CL_SUCCESS) {
    nargs = 0;
  }
  kr->nargs = nargs;
  kr->args = PyMem_Calloc(nargs > 0 ? nargs : 1, sizeof(ocl_arg_t));
  if (kr->args == NULL) {
    Py_DECREF(kr);
    return PyErr_NoMemory();
  }
  kr->has_info = 1;
  for (cl_uint i = 0; i < nargs; i++) {
    ocl_arg_t *a = &kr->args[i];
    cl_kernel_arg_address_qualifier aq = 0;
    if (cl->clGetKernelArgInfo(k, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER,
                               sizeof(aq), &aq, NULL) != CL_SUCCESS) {
      kr->has_info = 0; /* CL_KERNEL_ARG_INFO_NOT_AVAILABLE */
      break;
    }
    if (cl->clGetKernelArgInfo(k, i, CL_KERNEL_ARG_TYPE_NAME,
                               sizeof(a->type_name) - 1, a->type_name,
                               NULL) != CL_SUCCESS) {
      /* a type name longer than the buffer: a typedef we cannot set */
      snprintf(a->type_name, sizeof(a->type_name), "?");
    }
    if (cl->clGetKernelArgInfo(k, i, CL_KERNEL_ARG_NAME, sizeof(a->name) - 1,
                               a->name, NULL) != CL_SUCCESS) {
      snprintf(a->name, sizeof(a->name), "arg%u", (unsigned)i);
    }
    a->global = aq == CL_KERNEL_ARG_ADDRESS_GLOBAL ||
                aq == CL_KERNEL_ARG_ADDRESS_CONSTANT;
    a->local = aq == CL_KERNEL_ARG_ADDRESS_LOCAL;
    a->kind = parse_type_name(a->type_name, c->real);
    if (!a->global && !a->local && strchr(a->type_name, '*') != NULL) {
      a->kind = OCL_OTHER; /* a private pointer: not settable */
    }
  }
  size_t wg = 0;
  if (cl->clGetKernelWorkGroupInfo(k, c->device, CL_KERNEL_WORK_GROUP_SIZE,
                                   sizeof(wg), &wg, NULL) != CL_SUCCESS) {
    wg = 0;
  }
  kr->work_group_size = wg;
  return (PyObject *)kr;
}

static PyObject *kern_get_name(PyObject *self, void *c) {
  (void)c;
  return Py_NewRef(((ocl_kernel_t *)self)->name);
}
static PyObject *kern_get_num_args(PyObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLong(((ocl_kernel_t *)self)->nargs);
}
static PyObject *kern_get_arg_types(PyObject *self, void *c) {
  (void)c;
  ocl_kernel_t *k = (ocl_kernel_t *)self;
  PyObject *list = PyList_New(0);
  for (cl_uint i = 0; list != NULL && i < k->nargs; i++) {
    PyObject *t =
        k->has_info
            ? Py_BuildValue("(ss)", k->args[i].name, k->args[i].type_name)
            : Py_BuildValue("(ss)", "?", "?");
    if (t == NULL || PyList_Append(list, t) < 0) {
      Py_CLEAR(list);
    }
    Py_XDECREF(t);
  }
  return list;
}
static PyObject *kern_get_work_group_size(PyObject *self, void *c) {
  (void)c;
  return PyLong_FromSize_t(((ocl_kernel_t *)self)->work_group_size);
}

/* ---- run ----------------------------------------------------------------- */

/* Describes argument i for messages: "argument 2 ('x', a 'float*')". */
static PyObject *arg_label(ocl_kernel_t *k, cl_uint i) {
  if (k->has_info) {
    return PyUnicode_FromFormat("argument %u ('%s', a '%s') of kernel %R",
                                (unsigned)i, k->args[i].name,
                                k->args[i].type_name, k->name);
  }
  return PyUnicode_FromFormat("argument %u of kernel %R", (unsigned)i,
                              k->name);
}

static void arg_error(PyObject *exc, ocl_kernel_t *k, cl_uint i,
                      const char *fmt_tail, PyObject *obj) {
  PyObject *label = arg_label(k, i);
  if (label == NULL) {
    return;
  }
  PyObject *tn = obj != NULL ? PyType_GetName(Py_TYPE(obj)) : NULL;
  if (obj != NULL && tn == NULL) {
    Py_DECREF(label);
    return;
  }
  if (tn != NULL) {
    PyErr_Format(exc, "%U %s, not %U", label, fmt_tail, tn);
  } else {
    PyErr_Format(exc, "%U %s", label, fmt_tail);
  }
  Py_XDECREF(tn);
  Py_DECREF(label);
}

/* A Python number as scalar kind k in `out` (size in *size). */
static int scalar_arg(ocl_kernel_t *k, cl_uint i, ocl_kind kind, PyObject *v,
                      unsigned char out[8], size_t *size) {
  int is_int = PyLong_Check(v);
  int is_float = PyFloat_Check(v);
  if (!is_int && !is_float) {
    arg_error(PyExc_TypeError, k, i, "needs a number", v);
    return -1;
  }
  *size = kind_size(kind);
  if (kind == OCL_F32 || kind == OCL_F64) {
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) {
      return -1;
    }
    if (kind == OCL_F32) {
      float f = (float)d;
      memcpy(out, &f, sizeof(f));
    } else {
      memcpy(out, &d, sizeof(d));
    }
    return 0;
  }
  if (!is_int) {
    arg_error(PyExc_TypeError, k, i, "needs an int", v);
    return -1;
  }
  int is_signed = kind == OCL_I8 || kind == OCL_I16 || kind == OCL_I32 ||
                  kind == OCL_I64;
  int bits = (int)kind_size(kind) * 8;
  /* The value's bits, range-checked for the kind; a signed value is stored
   * as its two's complement, which the unsigned casts below keep. */
  uint64_t bits_of_x;
  if (is_signed) {
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) {
      goto range;
    }
    if (bits < 64 &&
        (x < -(1LL << (bits - 1)) || x > (1LL << (bits - 1)) - 1)) {
      goto range;
    }
    bits_of_x = (uint64_t)x;
  } else {
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
      goto range;
    }
    if (bits < 64 && x > (1ULL << bits) - 1) {
      goto range;
    }
    bits_of_x = (uint64_t)x;
  }
  switch (bits) {
  case 8: {
    uint8_t t = (uint8_t)bits_of_x;
    memcpy(out, &t, 1);
    break;
  }
  case 16: {
    uint16_t t = (uint16_t)bits_of_x;
    memcpy(out, &t, 2);
    break;
  }
  case 32: {
    uint32_t t = (uint32_t)bits_of_x;
    memcpy(out, &t, 4);
    break;
  }
  default:
    memcpy(out, &bits_of_x, 8);
  }
  return 0;
range:
  PyErr_Clear();
  {
    PyObject *label = arg_label(k, i);
    if (label != NULL) {
      PyErr_Format(PyExc_OverflowError, "%U: %R does not fit in a %s", label,
                   v, kind_name(kind));
      Py_DECREF(label);
    }
  }
  return -1;
}

PyDoc_STRVAR(ctx_run_doc,
             "run(kernel, global_size, *args, local_size=None)\n--\n\n"
             "Sets the kernel's arguments (numbers for scalar parameters; "
             "Buffers of this context or Matrices, uploaded as read-only "
             "copies, for __global pointers) and queues a launch over "
             "global_size work items (an int or a tuple of up to 3).  Returns "
             "at once: read() waits.");
static PyObject *ctx_run(PyObject *self, PyObject *const *args,
                         Py_ssize_t nargsf, PyObject *kwnames) {
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  PyObject *local = Py_None;
  if (kwnames != NULL) {
    for (Py_ssize_t i = 0; i < PyTuple_Size(kwnames); i++) {
      PyObject *key = PyTuple_GetItem(kwnames, i);
      if (PyUnicode_CompareWithASCIIString(key, "local_size") != 0) {
        PyErr_Format(PyExc_TypeError,
                     "run() got an unexpected keyword argument %R", key);
        return NULL;
      }
      local = args[nargs + i];
    }
  }
  if (nargs < 2) {
    PyErr_SetString(PyExc_TypeError,
                    "run(kernel, global_size, *args, local_size=None) needs "
                    "a kernel and a global size");
    return NULL;
  }
  if (ctx_usable(c) < 0) {
    return NULL;
  }
  PyObject *kobj = args[0];
  if (!PyObject_TypeCheck(kobj, c->st->kernel_type)) {
    PyObject *tn = PyType_GetName(Py_TYPE(kobj));
    if (tn != NULL) {
      PyErr_Format(PyExc_TypeError,
                   "run(): the first argument must be a Kernel, not %U", tn);
      Py_DECREF(tn);
    }
    return NULL;
  }
  ocl_kernel_t *k = (ocl_kernel_t *)kobj;
  if (child_usable(&k->base) < 0) {
    return NULL;
  }
  if (k->base.ctx != c) {
    PyErr_Format(PyExc_ValueError,
                 "run(): kernel %R belongs to another OpenCL context", k->name);
    return NULL;
  }
  size_t global[3] = {1, 1, 1}, lsz[3] = {1, 1, 1};
  cl_uint dims = 0, ldims = 0;
  if (parse_work(args[1], "global_size", global, &dims) < 0) {
    return NULL;
  }
  if (local != Py_None) {
    if (parse_work(local, "local_size", lsz, &ldims) < 0) {
      return NULL;
    }
    if (ldims != dims) {
      PyErr_Format(PyExc_ValueError,
                   "local_size has %u dimensions but global_size has %u",
                   (unsigned)ldims, (unsigned)dims);
      return NULL;
    }
    size_t prod = 1;
    for (cl_uint d = 0; d < dims; d++) {
      if (global[d] % lsz[d] != 0) {
        PyErr_Format(PyExc_ValueError,
                     "local_size %R must divide global_size %R in every "
                     "dimension",
                     local, args[1]);
        return NULL;
      }
      prod *= lsz[d];
    }
    if (k->work_group_size > 0 && prod > k->work_group_size) {
      PyErr_Format(PyExc_ValueError,
                   "local_size %R has %zu work items; kernel %R allows at "
                   "most %zu per group on this device",
                   local, prod, k->name, k->work_group_size);
      return NULL;
    }
  }
  Py_ssize_t given = nargs - 2;
  if (given != (Py_ssize_t)k->nargs) {
    PyErr_Format(PyExc_TypeError, "kernel %R takes %u arguments (%zd given)",
                 k->name, (unsigned)k->nargs, given);
    return NULL;
  }
  const clx_api *cl = clx_get();
  /* Matrix arguments become temporary device copies, released once the
   * launch is queued (the runtime keeps them until it has run). */
  cl_mem small[8];
  cl_mem *temps = small;
  if (given > 8) {
    temps = PyMem_Calloc((size_t)given, sizeof(cl_mem));
    if (temps == NULL) {
      return PyErr_NoMemory();
    }
  }
  Py_ssize_t ntemps = 0;
  int ok = 0;
  for (cl_uint i = 0; i < k->nargs; i++) {
    PyObject *v = args[2 + i];
    ocl_arg_t *a = &k->args[i];
    int pointer = k->has_info ? a->global : -1; /* -1: unknown */
    if (k->has_info && (a->local || (a->kind == OCL_OTHER && !a->global))) {
      arg_error(PyExc_TypeError, k, i,
                a->local ? "is __local memory, which run() cannot set "
                           "(declare a __local array inside the kernel)"
                         : "has a type run() cannot set (vectors, structs, "
                           "images, private pointers)",
                NULL);
      goto done;
    }
    cl_int err;
    if (PyObject_TypeCheck(v, c->st->buffer_type)) {
      ocl_buffer_t *b = (ocl_buffer_t *)v;
      if (pointer == 0) {
        arg_error(PyExc_TypeError, k, i, "needs a number", v);
        goto done;
      }
      if (b->base.ctx != c) {
        arg_error(PyExc_ValueError, k, i,
                  "got a Buffer of another OpenCL context (buffers belong to "
                  "the context that made them)",
                  NULL);
        goto done;
      }
      if (child_usable(&b->base) < 0) {
        goto done;
      }
      if (pointer == 1 && a->kind != OCL_OTHER && a->kind != b->dtype) {
        PyObject *label = arg_label(k, i);
        if (label != NULL) {
          PyErr_Format(PyExc_TypeError,
                       "%U points to %s but the buffer holds %s",
                       label, kind_name(a->kind), kind_name(b->dtype));
          Py_DECREF(label);
        }
        goto done;
      }
      err = cl->clSetKernelArg(k->kernel, i, sizeof(cl_mem), &b->mem);
    } else {
      int mx = is_matrix(c->st, v);
      if (mx < 0) {
        goto done;
      }
      if (mx) {
        if (pointer == 0) {
          arg_error(PyExc_TypeError, k, i, "needs a number", v);
          goto done;
        }
        /* a pointer to an unknown typedef takes the context's type */
        ocl_kind kind =
            pointer == 1 && a->kind != OCL_OTHER ? a->kind : c->real;
        if (kind != OCL_F32 && kind != OCL_F64) {
          PyObject *label = arg_label(k, i);
          if (label != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%U points to %s: a Matrix can only be passed to a "
                         "float or double pointer (make a Buffer with "
                         "dtype=...)",
                         label, kind_name(kind));
            Py_DECREF(label);
          }
          goto done;
        }
        if (kind == OCL_F64 && !c->fp64) {
          arg_error(PyExc_TypeError, k, i,
                    "is double but the device has no fp64", NULL);
          goto done;
        }
        Py_buffer view;
        if (matrix_view(v, &view, 0) < 0) {
          goto done;
        }
        cl_mem mem = upload(c, &view, kind, CL_MEM_READ_ONLY);
        PyBuffer_Release(&view);
        if (mem == NULL) {
          goto done;
        }
        temps[ntemps++] = mem;
        err = cl->clSetKernelArg(k->kernel, i, sizeof(cl_mem), &mem);
      } else if (PyLong_Check(v) || PyFloat_Check(v)) {
        if (pointer == 1) {
          arg_error(PyExc_TypeError, k, i,
                    "needs a Buffer or a bocpy.Matrix", v);
          goto done;
        }
        ocl_kind kind = pointer == 0
                            ? a->kind
                            : (PyFloat_Check(v) ? c->real : OCL_I32);
        unsigned char bytes[8];
        size_t size = 0;
        if (scalar_arg(k, i, kind, v, bytes, &size) < 0) {
          goto done;
        }
        err = cl->clSetKernelArg(k->kernel, i, size, bytes);
      } else {
        arg_error(PyExc_TypeError, k, i,
                  pointer == 1 ? "needs a Buffer or a bocpy.Matrix"
                  : pointer == 0 ? "needs a number"
                                 : "needs a number, a Buffer or a "
                                   "bocpy.Matrix",
                  v);
        goto done;
      }
    }
    if (err != CL_SUCCESS) {
      PyObject *label = arg_label(k, i);
      if (label != NULL) {
        PyObject *what = PyUnicode_FromFormat("cannot set %U", label);
        if (what != NULL) {
          raise_cl(c->st, PyExc_TypeError, err,
                   PyUnicode_AsUTF8AndSize(what, NULL), NULL);
          Py_DECREF(what);
        }
        Py_DECREF(label);
      }
      goto done;
    }
  }
  {
    cl_int err = cl->clEnqueueNDRangeKernel(c->queue, k->kernel, dims, NULL,
                                            global,
                                            local != Py_None ? lsz : NULL, 0,
                                            NULL, NULL);
    if (err != CL_SUCCESS) {
      PyObject *what = PyUnicode_FromFormat("cannot launch kernel %R", k->name);
      if (what != NULL) {
        raise_cl(c->st, NULL, err, PyUnicode_AsUTF8AndSize(what, NULL),
                 err == CL_OUT_OF_RESOURCES ? OOM_HINT : NULL);
        Py_DECREF(what);
      }
      goto done;
    }
  }
  c->launches++;
  ok = 1;
done:
  for (Py_ssize_t i = 0; i < ntemps; i++) {
    cl->clReleaseMemObject(temps[i]);
  }
  if (temps != small) {
    PyMem_Free(temps);
  }
  if (!ok) {
    return NULL;
  }
  Py_RETURN_NONE;
}

/* ---- Context attributes -------------------------------------------------- */

static PyObject *ctx_get_device(PyObject *self, void *c) {
  (void)c;
  return PyDict_Copy(((ocl_ctx_t *)self)->info);
}
static PyObject *ctx_get_dtype(PyObject *self, void *c) {
  (void)c;
  return PyUnicode_FromString(kind_name(((ocl_ctx_t *)self)->real));
}
static PyObject *ctx_get_fp64(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((ocl_ctx_t *)self)->fp64);
}
static PyObject *ctx_get_closed(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((ocl_ctx_t *)self)->closed);
}
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
                              kind_name(c->real),
                              c->closed ? " closed" : "");
}

static PyObject *buf_repr(PyObject *self) {
  ocl_buffer_t *b = (ocl_buffer_t *)self;
  return PyUnicode_FromFormat("<bocpy.plugins.opencl.Buffer (%zd, %zd) %s%s>",
                              b->rows, b->cols, kind_name(b->dtype),
                              b->base.linked ? "" : " released");
}

static PyObject *kern_repr(PyObject *self) {
  ocl_kernel_t *k = (ocl_kernel_t *)self;
  return PyUnicode_FromFormat("<bocpy.plugins.opencl.Kernel %R, %u args%s>",
                              k->name, (unsigned)k->nargs,
                              k->base.linked ? "" : " released");
}

/* ---- pinned-type hooks (main thread, GIL held) --------------------------- */

static int hook_acquire(PyObject *value) {
  ocl_ctx_t *c = (ocl_ctx_t *)value;
  return c->abi->owner_check(&c->owner, "OpenCL context");
}

/* Every behavior that held the context leaves its queue empty: errors of
 * the kernels it launched are reported on its own result cown. */
static int hook_release(PyObject *value) {
  ocl_ctx_t *c = (ocl_ctx_t *)value;
  if (c->closed) {
    return 0;
  }
  cl_int err = queue_wait(clx_get(), c->queue);
  if (err != CL_SUCCESS) {
    raise_cl(c->st, NULL, err, "a queued OpenCL command failed", NULL);
    return -1;
  }
  return 0;
}

static void hook_destroy(PyObject *value) {
  ctx_close_impl((ocl_ctx_t *)value);
}

/* ---- type specs ---------------------------------------------------------- */

static PyMethodDef ctx_methods[] = {
    {"program", (PyCFunction)(void (*)(void))ctx_program,
     METH_VARARGS | METH_KEYWORDS, ctx_program_doc},
    {"buffer", (PyCFunction)(void (*)(void))ctx_buffer,
     METH_VARARGS | METH_KEYWORDS, ctx_buffer_doc},
    {"run", (PyCFunction)(void (*)(void))ctx_run,
     METH_FASTCALL | METH_KEYWORDS, ctx_run_doc},
    {"finish", ctx_finish, METH_NOARGS,
     "finish()\n--\n\nWaits until every queued command has run."},
    {"close", ctx_close, METH_NOARGS,
     "close()\n--\n\nWaits for the queue, then releases the context and "
     "every program, kernel and buffer made from it (idempotent)."},
    {"__reduce__", any_reduce, METH_NOARGS, NULL},
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

static PyType_Spec ctx_spec = {
    .name = "bocpy.plugins.opencl.Context",
    .basicsize = sizeof(ocl_ctx_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ctx_slots,
};

static PyMethodDef prog_methods[] = {
    {"kernel", prog_kernel, METH_O, prog_kernel_doc},
    {"release", child_release_meth, METH_NOARGS,
     "release()\n--\n\nReleases the compiled program now (idempotent)."},
    {"__reduce__", any_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef prog_getset[] = {
    {"kernel_names", prog_get_kernel_names, NULL,
     "The kernels the program defines (sorted).", NULL},
    {"context", child_get_context, NULL, "The Context.", NULL},
    {"released", child_get_released, NULL,
     "True once released (or its context closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot prog_slots[] = {
    {Py_tp_dealloc, child_dealloc},
    {Py_tp_methods, prog_methods},
    {Py_tp_getset, prog_getset},
    {Py_tp_doc, "A compiled OpenCL program (Context.program())."},
    {0, NULL},
};

static PyType_Spec prog_spec = {
    .name = "bocpy.plugins.opencl.Program",
    .basicsize = sizeof(ocl_program_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = prog_slots,
};

static PyMethodDef kern_methods[] = {
    {"release", child_release_meth, METH_NOARGS,
     "release()\n--\n\nReleases the kernel now (idempotent)."},
    {"__reduce__", any_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef kern_getset[] = {
    {"name", kern_get_name, NULL, "The kernel's name.", NULL},
    {"num_args", kern_get_num_args, NULL, "Its number of parameters.", NULL},
    {"arg_types", kern_get_arg_types, NULL,
     "[(name, type)] of its parameters, as the compiler reports them.",
     NULL},
    {"work_group_size", kern_get_work_group_size, NULL,
     "The most work items per group on this device.", NULL},
    {"context", child_get_context, NULL, "The Context.", NULL},
    {"released", child_get_released, NULL,
     "True once released (or its context closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot kern_slots[] = {
    {Py_tp_dealloc, child_dealloc},
    {Py_tp_methods, kern_methods},
    {Py_tp_getset, kern_getset},
    {Py_tp_repr, kern_repr},
    {Py_tp_doc, "An OpenCL kernel (Program.kernel()); launch it with "
                "Context.run()."},
    {0, NULL},
};

static PyType_Spec kern_spec = {
    .name = "bocpy.plugins.opencl.Kernel",
    .basicsize = sizeof(ocl_kernel_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = kern_slots,
};

static PyMethodDef buf_methods[] = {
    {"read", (PyCFunction)(void (*)(void))buf_read,
     METH_VARARGS | METH_KEYWORDS, buf_read_doc},
    {"write", buf_write, METH_O, buf_write_doc},
    {"release", child_release_meth, METH_NOARGS,
     "release()\n--\n\nFrees the device memory now (idempotent)."},
    {"__reduce__", any_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef buf_getset[] = {
    {"shape", buf_get_shape, NULL, "(rows, columns) that read() gives.",
     NULL},
    {"size", buf_get_size, NULL, "Number of elements.", NULL},
    {"nbytes", buf_get_nbytes, NULL, "Bytes on the device.", NULL},
    {"dtype", buf_get_dtype, NULL, "Element type on the device.", NULL},
    {"context", child_get_context, NULL, "The Context.", NULL},
    {"released", child_get_released, NULL,
     "True once released (or its context closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot buf_slots[] = {
    {Py_tp_dealloc, child_dealloc},
    {Py_tp_methods, buf_methods},
    {Py_tp_getset, buf_getset},
    {Py_tp_repr, buf_repr},
    {Py_tp_doc, "Device memory of one Context (Context.buffer())."},
    {0, NULL},
};

static PyType_Spec buf_spec = {
    .name = "bocpy.plugins.opencl.Buffer",
    .basicsize = sizeof(ocl_buffer_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = buf_slots,
};

/* ---- module functions ---------------------------------------------------- */

static ocl_state *mod_state(PyObject *module) {
  return (ocl_state *)PyModule_GetState(module);
}

static PyObject *mod_devices(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return devices_list();
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
    ctx_close_impl(st->open); /* unlinks it */
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
      .acquire = context ? hook_acquire : NULL,
      .release = context ? hook_release : NULL,
      /* Children are released when their last reference goes (on the main
       * interpreter, where pinned values die), or with their context: a
       * PinnedCown dying does not free a buffer still referenced. */
      .destroy = context ? hook_destroy : NULL,
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
  } types[] = {{&ctx_spec, &st->context_type},
               {&prog_spec, &st->program_type},
               {&kern_spec, &st->kernel_type},
               {&buf_spec, &st->buffer_type}};
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
