/* ocl_child.c - the checks every method makes, and the children's list,
 * release, dealloc and common attributes (see ocl_child.h). */
#include "ocl_child.h"

int ocl_ctx_here(ocl_ctx_t *c, const char *what) {
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

int ocl_ctx_usable(ocl_ctx_t *c) {
  if (ocl_ctx_here(c, "OpenCL context") < 0) {
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

int ocl_child_usable(ocl_child_t *ch) {
  const char *what = child_what(ch);
  if (ocl_ctx_here(ch->ctx, what) < 0) {
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

void ocl_child_release(ocl_child_t *ch) {
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


void *ocl_child_new(ocl_ctx_t *c, PyTypeObject *tp, int kind) {
  ocl_child_t *ch = (ocl_child_t *)PyType_GenericAlloc(tp, 0);
  if (ch != NULL) {
    child_link(c, ch, kind);
  }
  return ch;
}

PyObject *ocl_child_release_meth(PyObject *self, PyObject *Py_UNUSED(a)) {
  ocl_child_t *ch = (ocl_child_t *)self;
  if (ocl_ctx_here(ch->ctx, child_what(ch)) < 0) {
    return NULL;
  }
  ocl_child_release(ch);
  Py_RETURN_NONE;
}

PyObject *ocl_child_get_context(PyObject *self, void *closure) {
  (void)closure;
  return Py_NewRef((PyObject *)((ocl_child_t *)self)->ctx);
}
PyObject *ocl_child_get_released(PyObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(!((ocl_child_t *)self)->linked);
}

void ocl_child_dealloc(PyObject *self) {
  ocl_child_t *ch = (ocl_child_t *)self;
  PyTypeObject *tp = Py_TYPE(self);
  ocl_child_release(ch);
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

PyObject *ocl_reduce(PyObject *self, PyObject *Py_UNUSED(a)) {
  /* TypeError naming PinnedCown: these never leave the main interpreter. */
  ocl_state *st = ocl_state_of(Py_TYPE(self));
  return st != NULL ? st->abi->reduce_shared(self) : NULL;
}

