/* state.h - per-interpreter state of the bocpy._core module.
 *
 * Each interpreter that imports bocpy._core (main and every worker) gets its
 * own state: heap types and cached Python callables.  C code that has no
 * module object at hand finds the current interpreter's state with
 * boc_state(), which caches the lookup per thread and re-validates it
 * against the current interpreter on every call.
 */
#ifndef BOCPY_CORE_STATE_H
#define BOCPY_CORE_STATE_H

#include <Python.h>

#include "value/cown.h"

typedef struct boc_state {
  PyTypeObject *cown_type;   /* bocpy.Cown */
  PyTypeObject *pinned_type; /* bocpy.PinnedCown (subclass of Cown) */
  PyTypeObject *code_type;   /* behavior code blobs */
  PyObject *pickle_dumps;    /* pickle.dumps */
  PyObject *pickle_loads;    /* pickle.loads */
  PyObject *protocol;        /* int 5 */
  PyObject *cown_ref;        /* _core._cown_ref, the unpickling hook */
  PyObject *fn_cache;        /* dict: code blob id -> function template */
  PyObject *load_function;   /* bocpy._worker.load_function (lazy) */
  PyObject *borrowed;        /* main: handles whose cowns .value borrowed */
  PyObject *stale;           /* main: (handle, object, snapshot) given back */
  /* Registered native types (transport.h), set up by boc_abi_exec: */
  PyObject *ntype_map;       /* dict: this interpreter's type -> int index */
  PyObject *ntype_list;      /* list: index -> type object, or None */
  PyObject *shared_ref;      /* _core._shared_ref, the unpickling hook */
  int64_t interp_id;         /* the interpreter this state belongs to */
  int pumping;               /* main: inside pump() (not reentrant) */
} boc_state_t;

/* The current interpreter's module state, or NULL with ImportError when
 * bocpy._core has not been imported in this interpreter. */
boc_state_t *boc_state(void);

/* Drops this thread's cached lookup: always (st NULL), or if it is st.
 * The module's exec slot calls it after publishing a new state, and its
 * free slot before the state goes away. */
void boc_state_uncache(const boc_state_t *st);

/* The key, in each interpreter's dict, of the capsule that points at its
 * state (set by the module's exec slot). */
#define BOC_STATE_KEY "bocpy._core.state"

/* The pickle functions of the current interpreter, for the transport.
 * dumps: 0 with a new bytes object in *bytes_out, or -1 with an exception;
 * loads: a new reference, or NULL with an exception. */
int boc_pickle_dumps(PyObject *obj, PyObject **bytes_out);
PyObject *boc_pickle_loads(const char *data, Py_ssize_t size);

#endif /* BOCPY_CORE_STATE_H */
