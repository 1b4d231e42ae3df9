/* ocl_run.c - Context.run() (see ocl_run.h). */
#include "ocl_run.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "ocl_args.h"
#include "ocl_child.h"
#include "ocl_matrix.h"

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

/* Raises exc "<argument i's label><fmt...>[, not <the type of obj>]";
 * returns -1. */
static int arg_fail(PyObject *exc, ocl_kernel_t *k, cl_uint i, PyObject *obj,
                    const char *fmt, ...) {
  PyObject *label = arg_label(k, i);
  if (label == NULL) {
    return -1;
  }
  va_list va;
  va_start(va, fmt);
  PyObject *tail = PyUnicode_FromFormatV(fmt, va);
  va_end(va);
  if (tail != NULL) {
    ocl_not_type(exc, obj, "%U%U", label, tail);
    Py_DECREF(tail);
  }
  Py_DECREF(label);
  return -1;
}

/* A Python number as scalar kind k in `out` (size in *size). */
static int scalar_arg(ocl_kernel_t *k, cl_uint i, ocl_kind kind, PyObject *v,
                      unsigned char out[8], size_t *size) {
  int is_int = PyLong_Check(v);
  int is_float = PyFloat_Check(v);
  if (!is_int && !is_float) {
    return arg_fail(PyExc_TypeError, k, i, v, " needs a number");
  }
  *size = ocl_kind_size(kind);
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
    return arg_fail(PyExc_TypeError, k, i, v, " needs an int");
  }
  int is_signed = kind == OCL_I8 || kind == OCL_I16 || kind == OCL_I32 ||
                  kind == OCL_I64;
  int bits = (int)ocl_kind_size(kind) * 8;
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
  return arg_fail(PyExc_OverflowError, k, i, NULL, ": %R does not fit in a %s",
                  v, ocl_kind_name(kind));
}


/* Sets argument i of k to v: a Buffer of c, a Matrix (uploaded into a
 * read-only device copy appended to temps, released by the caller once the
 * launch is queued) or a number.  0, or -1 with an exception. */
static int set_arg(ocl_ctx_t *c, ocl_kernel_t *k, cl_uint i, PyObject *v,
                   cl_mem *temps, Py_ssize_t *ntemps) {
  const clx_api *cl = clx_get();
  ocl_arg_t *a = &k->args[i];
  int pointer = k->has_info ? a->global : -1; /* -1: unknown */
  if (k->has_info && (a->local || (a->kind == OCL_OTHER && !a->global))) {
    return arg_fail(PyExc_TypeError, k, i, NULL,
                    a->local ? " is __local memory, which run() cannot set "
                               "(declare a __local array inside the kernel)"
                             : " has a type run() cannot set (vectors, "
                               "structs, images, private pointers)");
  }
  cl_int err;
  if (PyObject_TypeCheck(v, c->st->buffer_type)) {
    ocl_buffer_t *b = (ocl_buffer_t *)v;
    if (pointer == 0) {
      return arg_fail(PyExc_TypeError, k, i, v, " needs a number");
    }
    if (b->base.ctx != c) {
      return arg_fail(PyExc_ValueError, k, i, NULL,
                      " got a Buffer of another OpenCL context (buffers "
                      "belong to the context that made them)");
    }
    if (ocl_child_usable(&b->base) < 0) {
      return -1;
    }
    if (pointer == 1 && a->kind != OCL_OTHER && a->kind != b->dtype) {
      return arg_fail(PyExc_TypeError, k, i, NULL,
                      " points to %s but the buffer holds %s",
                      ocl_kind_name(a->kind), ocl_kind_name(b->dtype));
    }
    err = cl->clSetKernelArg(k->kernel, i, sizeof(cl_mem), &b->mem);
  } else {
    int mx = ocl_is_matrix(c->st, v);
    if (mx < 0) {
      return -1;
    }
    if (mx) {
      if (pointer == 0) {
        return arg_fail(PyExc_TypeError, k, i, v, " needs a number");
      }
      /* a pointer to an unknown typedef takes the context's type */
      ocl_kind kind =
          pointer == 1 && a->kind != OCL_OTHER ? a->kind : c->real;
      if (kind != OCL_F32 && kind != OCL_F64) {
        return arg_fail(PyExc_TypeError, k, i, NULL,
                        " points to %s: a Matrix can only be passed to a "
                        "float or double pointer (make a Buffer with "
                        "dtype=...)",
                        ocl_kind_name(kind));
      }
      if (kind == OCL_F64 && !c->fp64) {
        return arg_fail(PyExc_TypeError, k, i, NULL,
                        " is double but the device has no fp64");
      }
      Py_buffer view;
      if (ocl_matrix_view(v, &view, 0) < 0) {
        return -1;
      }
      cl_mem mem = ocl_upload(c, &view, kind, CL_MEM_READ_ONLY);
      PyBuffer_Release(&view);
      if (mem == NULL) {
        return -1;
      }
      temps[(*ntemps)++] = mem;
      err = cl->clSetKernelArg(k->kernel, i, sizeof(cl_mem), &mem);
    } else if (PyLong_Check(v) || PyFloat_Check(v)) {
      if (pointer == 1) {
        return arg_fail(PyExc_TypeError, k, i, v,
                        " needs a Buffer or a bocpy.Matrix");
      }
      ocl_kind kind =
          pointer == 0 ? a->kind : (PyFloat_Check(v) ? c->real : OCL_I32);
      unsigned char bytes[8];
      size_t size = 0;
      if (scalar_arg(k, i, kind, v, bytes, &size) < 0) {
        return -1;
      }
      err = cl->clSetKernelArg(k->kernel, i, size, bytes);
    } else {
      return arg_fail(PyExc_TypeError, k, i, v,
                      pointer == 1   ? " needs a Buffer or a bocpy.Matrix"
                      : pointer == 0 ? " needs a number"
                                     : " needs a number, a Buffer or a "
                                       "bocpy.Matrix");
    }
  }
  if (err != CL_SUCCESS) {
    PyObject *label = arg_label(k, i);
    if (label != NULL) {
      ocl_raise_cl(c->st, PyExc_TypeError, err, NULL, "cannot set %U", label);
      Py_DECREF(label);
    }
    return -1;
  }
  return 0;
}

/* global_size and local_size (None or the sizes of a work group) of a
 * launch of k: the same number of dimensions, local dividing global, and
 * no more work items in a group than the kernel allows. */
static int launch_sizes(ocl_kernel_t *k, PyObject *gobj, PyObject *lobj,
                        size_t global[3], size_t local[3], cl_uint *dims) {
  cl_uint ldims = 0;
  if (ocl_parse_work(gobj, "global_size", global, dims) < 0) {
    return -1;
  }
  if (lobj == Py_None) {
    return 0;
  }
  if (ocl_parse_work(lobj, "local_size", local, &ldims) < 0) {
    return -1;
  }
  if (ldims != *dims) {
    PyErr_Format(PyExc_ValueError,
                 "local_size has %u dimensions but global_size has %u",
                 (unsigned)ldims, (unsigned)*dims);
    return -1;
  }
  size_t prod = 1;
  for (cl_uint d = 0; d < *dims; d++) {
    if (global[d] % local[d] != 0) {
      PyErr_Format(PyExc_ValueError,
                   "local_size %R must divide global_size %R in every "
                   "dimension",
                   lobj, gobj);
      return -1;
    }
    prod *= local[d];
  }
  if (k->work_group_size > 0 && prod > k->work_group_size) {
    PyErr_Format(PyExc_ValueError,
                 "local_size %R has %zu work items; kernel %R allows at "
                 "most %zu per group on this device",
                 lobj, prod, k->name, k->work_group_size);
    return -1;
  }
  return 0;
}

const char ocl_ctx_run_doc[] =
    "run(kernel, global_size, *args, local_size=None)\n--\n\n"
    "Sets the kernel's arguments (numbers for scalar parameters; Buffers of "
    "this context or Matrices, uploaded as read-only copies, for __global "
    "pointers) and queues a launch over global_size work items (an int or a "
    "tuple of up to 3).  Returns at once: read() waits.";

PyObject *ocl_ctx_run(PyObject *self, PyObject *const *args,
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
  if (ocl_ctx_usable(c) < 0) {
    return NULL;
  }
  PyObject *kobj = args[0];
  if (!PyObject_TypeCheck(kobj, c->st->kernel_type)) {
    ocl_not_type(PyExc_TypeError, kobj,
                 "run(): the first argument must be a Kernel");
    return NULL;
  }
  ocl_kernel_t *k = (ocl_kernel_t *)kobj;
  if (ocl_child_usable(&k->base) < 0) {
    return NULL;
  }
  if (k->base.ctx != c) {
    PyErr_Format(PyExc_ValueError,
                 "run(): kernel %R belongs to another OpenCL context", k->name);
    return NULL;
  }
  size_t global[3] = {1, 1, 1}, lsz[3] = {1, 1, 1};
  cl_uint dims = 0;
  if (launch_sizes(k, args[1], local, global, lsz, &dims) < 0) {
    return NULL;
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
  int ok = 1;
  for (cl_uint i = 0; ok && i < k->nargs; i++) {
    ok = set_arg(c, k, i, args[2 + i], temps, &ntemps) == 0;
  }
  if (ok) {
    cl_int err = cl->clEnqueueNDRangeKernel(c->queue, k->kernel, dims, NULL,
                                            global,
                                            local != Py_None ? lsz : NULL, 0,
                                            NULL, NULL);
    if (err != CL_SUCCESS) {
      ocl_raise_cl(c->st, NULL, err,
                   err == CL_OUT_OF_RESOURCES ? OCL_OOM_HINT : NULL,
                   "cannot launch kernel %R", k->name);
      ok = 0;
    } else {
      c->launches++;
    }
  }
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
