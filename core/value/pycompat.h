/* pycompat.h - every difference between the CPython versions we support
 * (3.10 to 3.13) lives here and nowhere else.
 *
 * Include after <Python.h>.  Nothing in this file is part of the public ABI:
 * plugins never see it (they use abi/include/bocpy/bocpy.h and the stable ABI).
 */
#ifndef BOCPY_CORE_PYCOMPAT_H
#define BOCPY_CORE_PYCOMPAT_H

#include <Python.h>

#if PY_VERSION_HEX < 0x030A0000
#error "bocpy needs CPython 3.10 or newer"
#endif

/* Whether workers get their own GIL (3.12+).  On 3.10 and 3.11 worker
 * sub-interpreters share the one GIL (Py_NewInterpreter): behaviors run
 * serialized but correctly, as in the reference implementation.  Every
 * wait in the runtime already releases the GIL of the waiting thread, so
 * the same code is deadlock-free with one GIL or many. */
#if PY_VERSION_HEX >= 0x030C0000
#define BOC_OWN_GIL 1
#else
#define BOC_OWN_GIL 0
#endif

#if !BOC_OWN_GIL
#include <frameobject.h> /* PyFrameObject's fields (3.10) */
#include <structmember.h> /* PyMemberDef, T_PYSSIZET, READONLY */
#endif

/* A worker's interpreter.  Called on a thread that holds the main
 * interpreter's thread state ts_main (attached); on success *ts_sub is the
 * new interpreter's thread state, current and holding its GIL. */
static inline PyStatus boc_new_worker_interp(PyThreadState **ts_sub) {
#if BOC_OWN_GIL
  PyInterpreterConfig cfg = {
      .use_main_obmalloc = 0,
      .allow_fork = 0,
      .allow_exec = 0,
      .allow_threads = 1,
      .allow_daemon_threads = 0,
      .check_multi_interp_extensions = 1,
      .gil = PyInterpreterConfig_OWN_GIL,
  };
  return Py_NewInterpreterFromConfig(ts_sub, &cfg);
#else
  /* The legacy sub-interpreter: shares the GIL (and obmalloc) with the
   * main interpreter; single-phase extensions (ctypes, ...) import there. */
  *ts_sub = Py_NewInterpreter();
  if (*ts_sub == NULL) {
    return PyStatus_Error("Py_NewInterpreter failed");
  }
  return PyStatus_Ok();
#endif
}

/* Ends a worker's interpreter (ts_sub current) and re-attaches ts_main.
 * With its own GIL Py_EndInterpreter leaves the thread detached; with the
 * shared GIL the thread still holds it, with no thread state current. */
static inline void boc_end_worker_interp(PyThreadState *ts_sub,
                                         PyThreadState *ts_main) {
  Py_EndInterpreter(ts_sub);
#if BOC_OWN_GIL
  PyEval_RestoreThread(ts_main);
#else
  PyThreadState_Swap(ts_main);
#endif
}

/* The module slot declaring per-interpreter-GIL support (3.12+).  Before
 * 3.12 the slot does not exist: an exec slot that does nothing stands in. */
#if PY_VERSION_HEX >= 0x030C0000
#define BOC_MOD_MULTI_INTERP_SLOT \
  {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED}
#else
static inline int boc_mod_exec_nothing(PyObject *module) {
  (void)module;
  return 0;
}
#define BOC_MOD_MULTI_INTERP_SLOT {Py_mod_exec, (void *)boc_mod_exec_nothing}
#endif

#if PY_VERSION_HEX < 0x030C0000
/* The 3.12 single-object exception API over PyErr_Fetch/Restore.  Both
 * keep the traceback on the exception object, as 3.12 does. */
static inline PyObject *boc_compat_get_raised(void) {
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

static inline void boc_compat_set_raised(PyObject *exc) { /* steals exc */
  if (exc == NULL) {
    PyErr_Clear();
    return;
  }
  PyObject *type = Py_NewRef((PyObject *)Py_TYPE(exc));
  PyErr_Restore(type, exc, PyException_GetTraceback(exc));
}
#ifndef PyErr_GetRaisedException /* bocpy/compat.h or core/value/pycompat.h */
#define PyErr_GetRaisedException boc_compat_get_raised
#endif
#ifndef PyErr_SetRaisedException /* bocpy/compat.h or core/value/pycompat.h */
#define PyErr_SetRaisedException boc_compat_set_raised
#endif
#ifndef Py_T_PYSSIZET /* bocpy/compat.h or core/value/pycompat.h */
#define Py_T_PYSSIZET T_PYSSIZET
#endif
#ifndef Py_READONLY /* bocpy/compat.h or core/value/pycompat.h */
#define Py_READONLY READONLY
#endif
#endif

#if PY_VERSION_HEX < 0x030B0000
/* 3.11 API, spelled with 3.10's. */
static inline PyObject *boc_compat_type_qualname(PyTypeObject *type) {
  return PyObject_GetAttrString((PyObject *)type, "__qualname__");
}
#ifndef PyType_GetQualName /* bocpy/compat.h or core/value/pycompat.h */
#define PyType_GetQualName boc_compat_type_qualname
#endif

/* The module of the first class in type's MRO created by a module with
 * definition def (borrowed), else NULL with TypeError. */
static inline PyObject *boc_compat_type_module_by_def(PyTypeObject *type,
                                                      PyModuleDef *def) {
  PyObject *mro = type->tp_mro;
  Py_ssize_t n = mro != NULL ? PyTuple_GET_SIZE(mro) : 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
    if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
      continue;
    }
    PyObject *m = ((PyHeapTypeObject *)t)->ht_module;
    if (m != NULL && PyModule_GetDef(m) == def) {
      return m;
    }
  }
  PyErr_Format(PyExc_TypeError,
               "PyType_GetModuleByDef: No superclass of '%s' has the given "
               "module", type->tp_name);
  return NULL;
}
#define PyType_GetModuleByDef boc_compat_type_module_by_def

/* A frame's locals and globals (new references), as 3.11's accessors. */
static inline PyObject *boc_compat_frame_locals(PyFrameObject *f) {
  if (PyFrame_FastToLocalsWithError(f) < 0) {
    return NULL;
  }
  return Py_XNewRef(f->f_locals);
}
static inline PyObject *boc_compat_frame_globals(PyFrameObject *f) {
  return Py_NewRef(f->f_globals);
}
#define PyFrame_GetLocals boc_compat_frame_locals
#define PyFrame_GetGlobals boc_compat_frame_globals
#endif

/* The module-definition slot that declares "this module does not need the
 * GIL" exists from 3.13; on 3.12 the slot list simply omits it. */
#if PY_VERSION_HEX >= 0x030D0000
#define BOC_HAVE_MOD_GIL_SLOT 1
#else
#define BOC_HAVE_MOD_GIL_SLOT 0
#endif

/* Interpreter identity.  PyInterpreterState_Main() is outside the limited
 * API, which is why plugins ask the core (through the ABI table). */
static inline int64_t boc_current_interp_id(void) {
  return PyInterpreterState_GetID(PyInterpreterState_Get());
}

static inline int64_t boc_main_interp_id(void) {
  return PyInterpreterState_GetID(PyInterpreterState_Main());
}

static inline int boc_is_main_interp(void) {
  return PyInterpreterState_Get() == PyInterpreterState_Main();
}

/* The calling thread's state, or NULL when it has none (no GIL needed). */
static inline PyThreadState *boc_thread_state_unchecked(void) {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked();
#else
  return _PyThreadState_UncheckedGet();
#endif
}

/* The pinned thread: the main thread of the main interpreter, the one
 * thread that runs pinned behaviors and every hook of a pinned value.
 * CPython knows it (it is also the thread that handles signals) through
 * _PyOS_IsMainThread(), exported by 3.10 to 3.12 (intrcheck.h) and 3.13
 * (moved to an internal header there, still PyAPI_FUNC); it needs an
 * attached thread state, so a thread without one is never the pinned
 * thread here.  CPython updates its record of the main thread after fork. */
#if PY_VERSION_HEX >= 0x030D0000
PyAPI_FUNC(int) _PyOS_IsMainThread(void);
#endif
static inline int boc_on_pinned_thread(void) {
  return boc_thread_state_unchecked() != NULL && _PyOS_IsMainThread();
}

#endif /* BOCPY_CORE_PYCOMPAT_H */
