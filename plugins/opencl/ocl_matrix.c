/* ocl_matrix.c - Matrix data to and from the device (see ocl_matrix.h). */
#include "ocl_matrix.h"

#include <stdlib.h>
#include <string.h>

#include "ocl_queue.h"

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

int ocl_is_matrix(ocl_state *st, PyObject *o) {
  PyObject *t = matrix_type(st);
  if (t == NULL) {
    return -1;
  }
  return (PyObject *)Py_TYPE(o) == t;
}

int ocl_matrix_view(PyObject *m, Py_buffer *view, int writable) {
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

PyObject *ocl_matrix_new(ocl_state *st, Py_ssize_t rows, Py_ssize_t cols) {
  PyObject *t = matrix_type(st);
  if (t == NULL) {
    return NULL;
  }
  return PyObject_CallFunction(t, "nn", rows, cols);
}

int ocl_need_matrix(ocl_state *st, PyObject *o, const char *what) {
  int mx = ocl_is_matrix(st, o);
  if (mx == 0) {
    PyErr_Format(PyExc_TypeError, "%s must be a bocpy.Matrix", what);
  }
  return mx == 1 ? 0 : -1;
}

int ocl_check_alloc(ocl_ctx_t *c, size_t bytes, const char *prefix) {
  if ((cl_ulong)bytes > c->max_alloc) {
    PyErr_Format(PyExc_ValueError,
                 "%s%zu bytes is larger than the device's largest "
                 "allocation (%llu bytes)",
                 prefix, bytes, (unsigned long long)c->max_alloc);
    return -1;
  }
  return 0;
}

cl_mem ocl_upload(ocl_ctx_t *c, const Py_buffer *view, ocl_kind k,
                  cl_mem_flags flags) {
  const clx_api *cl = clx_get();
  size_t n = (size_t)view->len / sizeof(double);
  size_t bytes = n * ocl_kind_size(k);
  if (ocl_check_alloc(c, bytes, "a buffer of ") < 0) {
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
    if (ocl_from_doubles(k, view->buf, tmp, n) < 0) {
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
    ocl_raise_cl(c->st, NULL, err, OCL_OOM_HINT,
                 "cannot create an OpenCL buffer");
    return NULL;
  }
  c->bytes_to_device += (long long)bytes;
  return mem;
}

