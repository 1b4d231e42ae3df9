/* ocl_child.h - what the Context and its children (Programs, Kernels,
 * Buffers) have in common: the checks every method makes first, the
 * Context's list of live children, and the methods and attributes each
 * child type has (release(), __reduce__, .context, .released).
 *
 * Main interpreter, the Context's thread, GIL held (see ocl_obj.h).
 * int functions return 0 or -1 with an exception set. */
#ifndef BOCPY_PLUGIN_OCL_CHILD_H
#define BOCPY_PLUGIN_OCL_CHILD_H

#include "ocl_obj.h"

/* We are on the main interpreter, on the Context's thread; `what` names
 * the object in the RuntimeError. */
int ocl_ctx_here(ocl_ctx_t *c, const char *what);
/* ocl_ctx_here, and the Context is open (ValueError when closed). */
int ocl_ctx_usable(ocl_ctx_t *c);
/* The child's context is usable and the child still holds its OpenCL
 * object (ValueError when released). */
int ocl_child_usable(ocl_child_t *ch);

/* A new child of type tp (an OCL_CHILD_* kind), linked into c's list with
 * a strong reference to c; its OpenCL object is still NULL.  NULL with an
 * exception. */
void *ocl_child_new(ocl_ctx_t *c, PyTypeObject *tp, int kind);
/* Releases the child's OpenCL object and takes it out of its Context's
 * list (idempotent; never fails). */
void ocl_child_release(ocl_child_t *ch);

/* Py_tp_dealloc of every child type. */
void ocl_child_dealloc(PyObject *self);
/* __reduce__ of every type: TypeError naming PinnedCown (these objects
 * never leave the main interpreter). */
PyObject *ocl_reduce(PyObject *self, PyObject *unused);
/* The children's release() and attributes. */
PyObject *ocl_child_release_meth(PyObject *self, PyObject *unused);
PyObject *ocl_child_get_context(PyObject *self, void *closure);
PyObject *ocl_child_get_released(PyObject *self, void *closure);

/* The entries every child type's method and getset tables end with. */
#define OCL_CHILD_METHODS(release_doc)                                        \
  {"release", ocl_child_release_meth, METH_NOARGS,                            \
   "release()\n--\n\n" release_doc},                                          \
      {"__reduce__", ocl_reduce, METH_NOARGS, NULL}, {                        \
    NULL, NULL, 0, NULL                                                       \
  }
#define OCL_CHILD_GETSET                                                      \
  {"context", ocl_child_get_context, NULL, "The Context.", NULL},             \
      {"released", ocl_child_get_released, NULL,                              \
       "True once released (or its context closed).", NULL},                  \
  {                                                                           \
    NULL, NULL, NULL, NULL, NULL                                              \
  }

#endif /* BOCPY_PLUGIN_OCL_CHILD_H */
