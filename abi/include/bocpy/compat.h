/* bocpy/compat.h - the few CPython 3.11/3.12 names a plugin may use, for a
 * plugin built on CPython 3.10 or 3.11.
 *
 * Included by <bocpy/bocpy.h> only when it is compiled for CPython older
 * than 3.12; an abi3 build (Py_LIMITED_API=0x030C0000, CPython 3.12 and
 * later) never sees it.  There is no abi3 below 3.12 for a bocpy plugin
 * (the table's ABI floor is the 3.12 limited API), so on 3.10 and 3.11 a
 * plugin is a version-specific module built from the same sources
 * (bocpy_add_plugin() does that; docs/packaging.md), with the full API.
 * This header makes the 3.12 spellings of what plugins commonly use
 * compile there:
 *
 *   PyErr_GetRaisedException / PyErr_SetRaisedException      (3.12)
 *   Py_mod_multiple_interpreters = Py_MOD_PER_INTERPRETER_GIL_SUPPORTED
 *       (3.12; on 3.10/3.11 an exec slot that does nothing: every
 *        sub-interpreter there shares the one GIL)
 *   PyMemberDef, Py_T_PYSSIZET, Py_T_OBJECT_EX, Py_READONLY (3.12 names)
 *   PyType_GetName, PyType_GetQualName                         (3.11)
 *
 * Not part of the ABI: it declares no entry and no data.
 */
#ifndef BOCPY_COMPAT_H
#define BOCPY_COMPAT_H

#include <Python.h>

#if PY_VERSION_HEX < 0x030C0000
#if defined(Py_LIMITED_API)
#error "a bocpy plugin for CPython 3.10/3.11 is a version-specific module: build it without Py_LIMITED_API (bocpy_add_plugin() does)"
#endif

#include <structmember.h>

static inline PyObject *bocpy_compat_get_raised(void) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (type == NULL) {
    return NULL;
  }
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL) {
    PyException_SetTraceback(value, tb);
  }
  Py_DECREF(type);
  Py_XDECREF(tb);
  return value; /* new reference */
}

static inline void bocpy_compat_set_raised(PyObject *exc) { /* steals */
  if (exc == NULL) {
    PyErr_Clear();
    return;
  }
  PyObject *type = (PyObject *)Py_TYPE(exc);
  Py_INCREF(type);
  PyErr_Restore(type, exc, PyException_GetTraceback(exc));
}

static inline int bocpy_compat_exec_nothing(PyObject *module) {
  (void)module;
  return 0;
}

#ifndef PyErr_GetRaisedException /* bocpy/compat.h or core/value/pycompat.h */
#define PyErr_GetRaisedException bocpy_compat_get_raised
#endif
#ifndef PyErr_SetRaisedException /* bocpy/compat.h or core/value/pycompat.h */
#define PyErr_SetRaisedException bocpy_compat_set_raised
#endif
#define Py_mod_multiple_interpreters Py_mod_exec
#define Py_MOD_PER_INTERPRETER_GIL_SUPPORTED ((void *)bocpy_compat_exec_nothing)
#define Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED \
  ((void *)bocpy_compat_exec_nothing)
#ifndef Py_T_PYSSIZET /* bocpy/compat.h or core/value/pycompat.h */
#define Py_T_PYSSIZET T_PYSSIZET
#endif
#ifndef Py_T_OBJECT_EX /* bocpy/compat.h or core/value/pycompat.h */
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif
#ifndef Py_READONLY /* bocpy/compat.h or core/value/pycompat.h */
#define Py_READONLY READONLY
#endif
#endif /* < 3.12 */

#if PY_VERSION_HEX < 0x030B0000
static inline PyObject *bocpy_compat_type_name(PyTypeObject *type) {
  return PyObject_GetAttrString((PyObject *)type, "__name__");
}
static inline PyObject *bocpy_compat_type_qualname(PyTypeObject *type) {
  return PyObject_GetAttrString((PyObject *)type, "__qualname__");
}
#define PyType_GetName bocpy_compat_type_name
#ifndef PyType_GetQualName /* bocpy/compat.h or core/value/pycompat.h */
#define PyType_GetQualName bocpy_compat_type_qualname
#endif
#endif /* < 3.11 */

#endif /* BOCPY_COMPAT_H */
