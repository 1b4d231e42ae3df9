/* ocl_obj.c - what every object of the plugin uses: its module state and
 * the exception of a failed OpenCL call (see ocl_obj.h). */
#include "ocl_obj.h"

#include <stdarg.h>

ocl_state *ocl_state_of(PyTypeObject *tp) {
  return (ocl_state *)PyType_GetModuleState(tp);
}

void ocl_raise_cl(ocl_state *st, PyObject *type, cl_int code,
                  const char *hint, const char *fmt, ...) {
  va_list va;
  va_start(va, fmt);
  PyObject *what = PyUnicode_FromFormatV(fmt, va);
  va_end(va);
  if (what == NULL) {
    return;
  }
  PyObject *msg = PyUnicode_FromFormat("%U: %s (%d)%s", what,
                                       clx_error_name(code), (int)code,
                                       hint != NULL ? hint : "");
  Py_DECREF(what);
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
