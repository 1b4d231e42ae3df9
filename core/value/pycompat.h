/* pycompat.h - every difference between the CPython versions we support
 * (3.12 and 3.13) lives here and nowhere else.
 *
 * Include after <Python.h>.  Nothing in this file is part of the public ABI:
 * plugins never see it (they use abi/include/bocpy/bocpy.h and the stable ABI).
 */
#ifndef BOCPY_CORE_PYCOMPAT_H
#define BOCPY_CORE_PYCOMPAT_H

#include <Python.h>

#if PY_VERSION_HEX < 0x030C0000
#error "bocpy needs CPython 3.12 or newer (per-interpreter GIL)"
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
 * _PyOS_IsMainThread(), exported by both 3.12 (intrcheck.h) and 3.13
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
