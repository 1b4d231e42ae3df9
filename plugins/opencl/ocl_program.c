/* ocl_program.c - opencl.Program, opencl.Kernel and Context.program()
 * (see ocl_program.h). */
#include "ocl_program.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_child.h"

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

const char ocl_ctx_program_doc[] =
    "program(source, options='') -> Program\n--\n\n"
    "Compiles OpenCL C source for the context's device.  real_t is the "
    "context's Matrix element type (double or float).  Raises BuildError "
    "(with .log, the compiler's output) when it does not compile.";

PyObject *ocl_ctx_program(PyObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"source", "options", NULL};
  ocl_ctx_t *c = (ocl_ctx_t *)self;
  PyObject *source, *options = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "U|U:program", kwlist, &source,
                                   &options)) {
    return NULL;
  }
  if (ocl_ctx_usable(c) < 0) {
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
    ocl_raise_cl(c->st, NULL, err, NULL, "cannot create an OpenCL program");
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
      ocl_child_new(c, c->st->program_type, OCL_CHILD_PROGRAM);
  if (prog == NULL) {
    cl->clReleaseProgram(p);
    return NULL;
  }
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
  if (ocl_child_usable(&p->base) < 0) {
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
  if (ocl_child_usable(&p->base) < 0) {
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
    ocl_raise_cl(c->st, NULL, err, NULL, "cannot create the OpenCL kernel");
    return NULL;
  }
  ocl_kernel_t *kr = ocl_child_new(c, c->st->kernel_type, OCL_CHILD_KERNEL);
  if (kr == NULL) {
    cl->clReleaseKernel(k);
    return NULL;
  }
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

OCL_GETTER(kern_get_name, ocl_kernel_t, Py_NewRef(o->name))
OCL_GETTER(kern_get_num_args, ocl_kernel_t,
           PyLong_FromUnsignedLong(o->nargs))
OCL_GETTER(kern_get_work_group_size, ocl_kernel_t,
           PyLong_FromSize_t(o->work_group_size))

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


static PyObject *kern_repr(PyObject *self) {
  ocl_kernel_t *k = (ocl_kernel_t *)self;
  return PyUnicode_FromFormat("<bocpy.plugins.opencl.Kernel %R, %u args%s>",
                              k->name, (unsigned)k->nargs,
                              k->base.linked ? "" : " released");
}

/* ---- type specs ---------------------------------------------------------- */

static PyMethodDef prog_methods[] = {
    {"kernel", prog_kernel, METH_O, prog_kernel_doc},
    OCL_CHILD_METHODS("Releases the compiled program now (idempotent)."),
};

static PyGetSetDef prog_getset[] = {
    {"kernel_names", prog_get_kernel_names, NULL,
     "The kernels the program defines (sorted).", NULL},
    OCL_CHILD_GETSET,
};

static PyType_Slot prog_slots[] = {
    {Py_tp_dealloc, ocl_child_dealloc},
    {Py_tp_methods, prog_methods},
    {Py_tp_getset, prog_getset},
    {Py_tp_doc, "A compiled OpenCL program (Context.program())."},
    {0, NULL},
};

OCL_TYPE_SPEC(ocl_program_spec, "Program", ocl_program_t,
              Py_TPFLAGS_DISALLOW_INSTANTIATION, prog_slots);

static PyMethodDef kern_methods[] = {
    OCL_CHILD_METHODS("Releases the kernel now (idempotent)."),
};

static PyGetSetDef kern_getset[] = {
    {"name", kern_get_name, NULL, "The kernel's name.", NULL},
    {"num_args", kern_get_num_args, NULL, "Its number of parameters.", NULL},
    {"arg_types", kern_get_arg_types, NULL,
     "[(name, type)] of its parameters, as the compiler reports them.",
     NULL},
    {"work_group_size", kern_get_work_group_size, NULL,
     "The most work items per group on this device.", NULL},
    OCL_CHILD_GETSET,
};

static PyType_Slot kern_slots[] = {
    {Py_tp_dealloc, ocl_child_dealloc},
    {Py_tp_methods, kern_methods},
    {Py_tp_getset, kern_getset},
    {Py_tp_repr, kern_repr},
    {Py_tp_doc, "An OpenCL kernel (Program.kernel()); launch it with "
                "Context.run()."},
    {0, NULL},
};

OCL_TYPE_SPEC(ocl_kernel_spec, "Kernel", ocl_kernel_t,
              Py_TPFLAGS_DISALLOW_INSTANTIATION, kern_slots);
