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
  PyObject *pickle_dumps;    /* pickle.dumps */
  PyObject *pickle_loads;    /* pickle.loads */
  PyObject *byvalue_dumps;   /* bocpy._byvalue.dumps (lazy): pickles local
                                functions, lambdas and closures by value */
  PyObject *protocol;        /* int 5 */
  PyObject *cown_ref;        /* _core._cown_ref, the unpickling hook */
  PyObject *fn_cache;        /* dict: code blob id -> function template */
  PyObject *load_function;   /* bocpy._worker.load_function (lazy) */
  PyObject *borrowed;        /* main: cowns .value borrowed (handle.h) */
  PyObject *stale;           /* main: (handle, object, snapshot) given back */
  /* Registered native types (transport.h), set up by boc_abi_exec: */
  PyObject *ntype_map;       /* dict: this interpreter's type -> int index */
  PyObject *ntype_list;      /* list: index -> type object, or None */
  PyObject *shared_ref;      /* _core._shared_ref, the unpickling hook */
  PyObject *empty_tags_error; /* _core.EmptyTagsError(ValueError, RuntimeError) */
  PyObject *tag_capacity_error; /* _core.TagCapacityError(KeyError, IndexError) */
  /* @when (module/when.c) and module-global shipping (exec/behavior.c): */
  PyTypeObject *when_type;   /* the decorator objects when(...) returns */
  PyObject *plans;           /* dict: id(code) -> plan capsule (bounded) */
  PyObject *gcache;          /* dict: id(globals) -> (globals, {name: entry}) */
  PyObject *gapplied;        /* dict: id(namespace) -> {name: (version, value,
                                shallow)}: what this worker last applied */
  PyObject *plan_info;       /* bocpy._when._plan_info (lazy) */
  PyObject *check_reads;     /* bocpy._errors.check_reads (lazy) */
  PyObject *autostart;       /* bocpy._when._autostart (lazy) */
  PyObject *fn_importable;   /* bocpy._byvalue._importable (lazy) */
  PyObject *worker_dict;     /* bocpy._worker.__dict__ (lazy) */
  PyObject *s_loading;       /* interned "loading" */
  /* The transport's per-class cache (transport.c, "plain objects"): type ->
   * b"module\0qualname" when its instances travel natively, else None. */
  PyObject *plain_types;
  PyObject *copyreg_table;   /* copyreg.dispatch_table (lazy) */
  PyObject *plain_classes;   /* decoding: b"module\0qualname" -> (type,
                                module dict, qualname): re-checked in the
                                module dict on every use (lazy) */
  /* A pickler reused by every encoding of this interpreter (state.c):
   * bocpy._byvalue._Pickler over an io.BytesIO, made on first use. */
  PyObject *pickler;
  PyObject *pickler_buf;
  int pickler_busy;          /* an encoding nested in a __reduce__ */
  uint64_t g_encoded;        /* module-global values encoded here */
  uint64_t g_reused;         /* ... reused by a behavior instead */
  uint64_t g_decoded;        /* ... decoded into a namespace here */
  uint64_t g_skipped;        /* ... already current in the namespace */
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
