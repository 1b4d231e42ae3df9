/* ocl_buffer.c - opencl.Buffer and Context.buffer() (see ocl_buffer.h). */
#include "ocl_buffer.h"

#include <stdint.h>
#include <stdlib.h>

#include "ocl_args.h"
#include "ocl_child.h"
#include "ocl_matrix.h"
#include "ocl_queue.h"

/* A Buffer of c holding mem (taken over: released on failure) with `rows`
 * x `cols` elements of k.  NULL with an exception. */
static PyObject *buffer_wrap(ocl_ctx_t *c, cl_mem mem, ocl_kind k,
                             size_t rows, size_t cols) {
  ocl_buffer_t *b = ocl_child_new(c, c->st->buffer_type, OCL_CHILD_BUFFER);
  if (b == NULL) {
    clx_get()->clReleaseMemObject(mem);
    return NULL;
  }
  b->mem = mem;
  b->dtype = k;
  b->rows = (Py_ssize_t)rows;
  b->cols = (Py_ssize_t)cols;
  b->count = rows * cols;
  return (PyObject *)b;
}

/* A device copy of Matrix m as elements of k. */
static PyObject *buffer_from_matrix(ocl_ctx_t *c, PyObject *m, ocl_kind k) {
  Py_buffer view;
  if (ocl_matrix_view(m, &view, 0) < 0) {
    return NULL;
  }
  cl_mem mem = ocl_upload(c, &view, k, CL_MEM_READ_WRITE);
  Py_ssize_t rows = view.shape[0], cols = view.shape[1];
  PyBuffer_Release(&view);
  if (mem == NULL) {
    return NULL;
  }
  return buffer_wrap(c, mem, k, (size_t)rows, (size_t)cols);
}

/* The shape of a zeroed buffer: an int n (1 x n) or a (rows, columns)
 * tuple. */
static int buffer_shape(PyObject *source, size_t *rows, size_t *cols) {
  *rows = 1;
  if (PyTuple_Check(source)) {
    if (PyTuple_Size(source) != 2) {
      PyErr_Format(PyExc_ValueError,
                   "buffer(): a shape is a (rows, columns) tuple, got %R",
                   source);
      return -1;
    }
    if (ocl_parse_size(PyTuple_GetItem(source, 0), "buffer rows", rows) <
            0 ||
        ocl_parse_size(PyTuple_GetItem(source, 1), "buffer columns", cols) <
            0) {
      return -1;
    }
    if (*rows > (size_t)PY_SSIZE_T_MAX / *cols) {
      PyErr_Format(PyExc_OverflowError,
                   "buffer(): %R elements do not fit in a size_t", source);
      return -1;
    }
    return 0;
  }
  if (PyLong_Check(source)) {
    return ocl_parse_size(source, "buffer size", cols);
  }
  return ocl_not_type(PyExc_TypeError, source,
                      "buffer() needs a bocpy.Matrix, a number of elements "
                      "or a (rows, columns) tuple");
}

/* A zeroed device buffer of `source` elements of k. */
static PyObject *buffer_zeroed(ocl_ctx_t *c, PyObject *source, ocl_kind k) {
  size_t rows, cols;
  if (buffer_shape(source, &rows, &cols) < 0) {
    return NULL;
  }
  size_t count = rows * cols, item = ocl_kind_size(k);
  if (count > SIZE_MAX / item) {
    PyErr_Format(PyExc_OverflowError,
                 "buffer(): %zu elements of %s overflow a size_t", count,
                 ocl_kind_name(k));
    return NULL;
  }
  size_t bytes = count * item;
  if (ocl_check_alloc(c, bytes, "buffer(): ") < 0) {
    return NULL;
  }
  const clx_api *cl = clx_get();
  cl_int err = CL_SUCCESS;
  cl_mem mem = cl->clCreateBuffer(c->context, CL_MEM_READ_WRITE, bytes, NULL,
                                  &err);
  if (mem == NULL) {
    ocl_raise_cl(c->st, NULL, err, OCL_OOM_HINT,
                 "cannot create an OpenCL buffer");
    return NULL;
  }
  const uint64_t zero = 0;
  err = cl->clEnqueueFillBuffer(c->queue, mem, &zero, item, 0, bytes, 0,
                                NULL, NULL);
  if (err != CL_SUCCESS) {
    cl->clReleaseMemObject(mem);
    ocl_raise_cl(c->st, NULL, err, OCL_OOM_HINT,
                 "cannot clear an OpenCL buffer");
    return NULL;
  }
  return buffer_wrap(c, mem, k, rows, cols);
}

const char ocl_ctx_buffer_doc[] =
    "buffer(source, dtype=None) -> Buffer\n--\n\n"
    "A device buffer: a copy of the Matrix `source` (converted to dtype, by "
    "default the context's dtype), or `source` zeroed elements (an int n, "
    "shape (1, n), or a (rows, columns) tuple).  dtype: 'float64', "
    "'float32', 'int32', 'int64'.";

PyObject *ocl_ctx_buffer(PyObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"source", "dtype", NULL};
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  PyObject *source, *dtype = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:buffer", kwlist, &source,
                                   &dtype)) {
    return NULL;
  }
  if (ocl_ctx_usable(c) < 0) {
    return NULL;
  }
  ocl_kind k = c->real;
  if (dtype != Py_None && ocl_parse_dtype(dtype, &k) < 0) {
    return NULL;
  }
  if (k == OCL_F64 && !c->fp64) {
    PyErr_Format(PyExc_ValueError,
                 "the OpenCL device %S has no double precision (fp64): use "
                 "dtype='float32'",
                 PyDict_GetItemString(c->info, "name"));
    return NULL;
  }
  int mx = ocl_is_matrix(c->st, source);
  if (mx < 0) {
    return NULL;
  }
  return mx ? buffer_from_matrix(c, source, k) : buffer_zeroed(c, source, k);
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
  if (ocl_child_usable(&b->base) < 0) {
    return NULL;
  }
  ocl_ctx_t *c = b->base.ctx;
  if (out == Py_None) {
    out = ocl_matrix_new(c->st, b->rows, b->cols);
    if (out == NULL) {
      return NULL;
    }
  } else {
    if (ocl_need_matrix(c->st, out, "read(out=...): out") < 0) {
      return NULL;
    }
    Py_INCREF(out);
  }
  Py_buffer view;
  if (ocl_matrix_view(out, &view, 1) < 0) {
    Py_DECREF(out);
    return NULL;
  }
  if (check_shape(b, &view, "read") < 0) {
    PyBuffer_Release(&view);
    Py_DECREF(out);
    return NULL;
  }
  size_t bytes = b->count * ocl_kind_size(b->dtype);
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
  /* the kernels writing it first */
  cl_int err = ocl_transfer(clx_get(), c->queue, b->mem, 0, dst, bytes);
  if (err == CL_SUCCESS && tmp != NULL) {
    ocl_to_doubles(b->dtype, tmp, view.buf, b->count);
  }
  free(tmp);
  PyBuffer_Release(&view);
  if (err != CL_SUCCESS) {
    ocl_raise_cl(c->st, NULL, err, NULL,
                 "cannot read the OpenCL buffer (a queued kernel may have "
                 "failed)");
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
  if (ocl_child_usable(&b->base) < 0) {
    return NULL;
  }
  ocl_ctx_t *c = b->base.ctx;
  if (ocl_need_matrix(c->st, source, "write(): source") < 0) {
    return NULL;
  }
  Py_buffer view;
  if (ocl_matrix_view(source, &view, 0) < 0) {
    return NULL;
  }
  if (check_shape(b, &view, "write") < 0) {
    PyBuffer_Release(&view);
    return NULL;
  }
  size_t bytes = b->count * ocl_kind_size(b->dtype);
  void *tmp = NULL;
  void *src = view.buf;
  if (b->dtype != OCL_F64) {
    tmp = malloc(bytes);
    if (tmp == NULL) {
      PyBuffer_Release(&view);
      return PyErr_NoMemory();
    }
    if (ocl_from_doubles(b->dtype, view.buf, tmp, b->count) < 0) {
      free(tmp);
      PyBuffer_Release(&view);
      return NULL;
    }
    src = tmp;
  }
  /* the kernels using it first */
  cl_int err = ocl_transfer(clx_get(), c->queue, b->mem, 1, src, bytes);
  free(tmp);
  PyBuffer_Release(&view);
  if (err != CL_SUCCESS) {
    ocl_raise_cl(c->st, NULL, err, NULL, "cannot write the OpenCL buffer");
    return NULL;
  }
  c->bytes_to_device += (long long)bytes;
  Py_RETURN_NONE;
}

OCL_GETTER(buf_get_shape, ocl_buffer_t,
           Py_BuildValue("(nn)", o->rows, o->cols))
OCL_GETTER(buf_get_size, ocl_buffer_t, PyLong_FromSize_t(o->count))
OCL_GETTER(buf_get_nbytes, ocl_buffer_t,
           PyLong_FromSize_t(o->count * ocl_kind_size(o->dtype)))
OCL_GETTER(buf_get_dtype, ocl_buffer_t,
           PyUnicode_FromString(ocl_kind_name(o->dtype)))

static PyObject *buf_repr(PyObject *self) {
  ocl_buffer_t *b = (ocl_buffer_t *)self;
  return PyUnicode_FromFormat("<bocpy.plugins.opencl.Buffer (%zd, %zd) %s%s>",
                              b->rows, b->cols, ocl_kind_name(b->dtype),
                              b->base.linked ? "" : " released");
}

static PyMethodDef buf_methods[] = {
    {"read", (PyCFunction)(void (*)(void))buf_read,
     METH_VARARGS | METH_KEYWORDS, buf_read_doc},
    {"write", buf_write, METH_O, buf_write_doc},
    OCL_CHILD_METHODS("Frees the device memory now (idempotent)."),
};

static PyGetSetDef buf_getset[] = {
    {"shape", buf_get_shape, NULL, "(rows, columns) that read() gives.",
     NULL},
    {"size", buf_get_size, NULL, "Number of elements.", NULL},
    {"nbytes", buf_get_nbytes, NULL, "Bytes on the device.", NULL},
    {"dtype", buf_get_dtype, NULL, "Element type on the device.", NULL},
    OCL_CHILD_GETSET,
};

static PyType_Slot buf_slots[] = {
    {Py_tp_dealloc, ocl_child_dealloc},
    {Py_tp_methods, buf_methods},
    {Py_tp_getset, buf_getset},
    {Py_tp_repr, buf_repr},
    {Py_tp_doc, "Device memory of one Context (Context.buffer())."},
    {0, NULL},
};

OCL_TYPE_SPEC(ocl_buffer_spec, "Buffer", ocl_buffer_t,
              Py_TPFLAGS_DISALLOW_INSTANTIATION, buf_slots);
