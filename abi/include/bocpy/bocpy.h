/* bocpy/bocpy.h - the public C interface of bocpy for plugins.
 *
 * A plugin is a C extension module compiled against the stable ABI
 * (Py_LIMITED_API=0x030C0000) and this header only.  Everything that is
 * CPython-version specific (cross-interpreter data, the main interpreter's
 * identity, scheduler and cown internals) stays inside bocpy._core, which
 * exports a table of function pointers, struct bocpy_abi, through the
 * capsule "bocpy._core._BOCPY_ABI".  So one plugin binary (name.abi3.so)
 * loads on every CPython the core supports.
 *
 *   #include <bocpy/bocpy.h>
 *
 *   static int exec_module(PyObject *m) {        // Py_mod_exec
 *     const bocpy_abi *abi = bocpy_import_abi(BOCPY_TARGET_MINOR);
 *     if (abi == NULL) return -1;                 // ImportError is set
 *     ...
 *   }
 *
 * Call the import helper from Py_mod_exec, so it runs in every interpreter
 * (main and workers), and declare Py_mod_multiple_interpreters =
 * Py_MOD_PER_INTERPRETER_GIL_SUPPORTED: without it the plugin cannot be
 * imported by a worker.  The table is plain process-global data (the same
 * pointer in every interpreter); types and module state stay per
 * interpreter.
 *
 * Conventions of every entry (docs/c_abi.md lists each one's affinity and
 * errors): CPython's -1 / NULL with an exception set on failure; PyObject*
 * results are new references; PyObject* arguments are borrowed.
 *
 * C only; compiles with and without Py_LIMITED_API.
 */
#ifndef BOCPY_BOCPY_H
#define BOCPY_BOCPY_H

#include <Python.h>

#include "abi_header.h"
#if PY_VERSION_HEX < 0x030C0000
#include "compat.h" /* a version-specific plugin for CPython 3.10/3.11 */
#endif

/* ---- callbacks a plugin gives the core ------------------------------------ */

/* Shareable types.  share: in the producing interpreter (GIL held), turn obj
 * into an opaque, interpreter-neutral payload (e.g. flip the resource's owner
 * current -> none and take a reference); NULL with an exception to refuse.
 * rebuild: in the consuming interpreter (GIL held), make a new object of
 * `type` (this interpreter's registered type object) from the payload; the
 * payload stays owned by the core and may be rebuilt again later.  free: any
 * thread, no GIL, exactly once per payload.  unshare (optional): in the
 * producing interpreter, when the rest of the value failed to encode and the
 * payload will be freed unused, before free: take the resource back. */
typedef void *(*bocpy_share_fn)(PyObject *obj);
typedef PyObject *(*bocpy_rebuild_fn)(PyTypeObject *type, void *payload);
typedef void (*bocpy_free_fn)(void *payload);
typedef void (*bocpy_unshare_fn)(PyObject *obj, void *payload);

/* Pinned-type hooks, all optional, all on the pinned thread (the main
 * thread of the main interpreter) with the GIL, never elsewhere:
 * acquire / release: a behavior (or `with`) acquires / releases the
 * PinnedCown holding the value (return 0, or -1 with an exception: the
 * behavior's result cown gets it); destroy: exactly once, when the
 * PinnedCown holding the value dies, when the value is replaced, or at exit
 * for every live value (must not fail). */
typedef int (*bocpy_pin_hook_fn)(PyObject *value);
typedef void (*bocpy_pin_destroy_fn)(PyObject *value);

/* The body of a C behavior: runs holding every cown it was scheduled over;
 * cowns[0..n) are handles (Cown / PinnedCown objects) of this interpreter.
 * Returns 0, or -1 with an exception set (stored on the result cown). */
typedef int (*bocpy_behavior_fn)(PyObject **cowns, Py_ssize_t n, void *ctx);

/* The body of a C behavior scheduled with schedule_call (ABI 1.1), and of
 * call_on_pinned_thread: module is the plugin's module in the interpreter
 * that runs it; cowns[0..n) are handles of this interpreter (NULL, 0 for
 * call_on_pinned_thread); args is the tuple passed at scheduling, rebuilt
 * here (an empty tuple when NULL was passed).  Returns a new reference (the
 * result cown's value) or NULL with an exception set. */
typedef PyObject *(*bocpy_call_fn)(PyObject *module, PyObject **cowns,
                                   Py_ssize_t n, PyObject *args, void *ctx);

/* ---- registration specs ---------------------------------------------------
 * Size-prefixed: set struct_size = sizeof(the spec) and leave reserved 0; the
 * core refuses a size it does not know (unless the extra bytes are all zero)
 * and a non-zero reserved field, so specs can grow later. */
typedef struct bocpy_shareable_spec {
  uint32_t struct_size;     /* sizeof(bocpy_shareable_spec) */
  uint32_t reserved;        /* must be 0 */
  PyTypeObject *type;       /* this interpreter's type object (exact type) */
  bocpy_share_fn share;     /* required */
  bocpy_rebuild_fn rebuild; /* required */
  bocpy_free_fn free_payload; /* required */
  bocpy_unshare_fn unshare; /* optional (NULL) */
} bocpy_shareable_spec;

typedef struct bocpy_pinned_spec {
  uint32_t struct_size;         /* sizeof(bocpy_pinned_spec) */
  uint32_t reserved;            /* must be 0 */
  PyTypeObject *type;           /* this interpreter's type object */
  bocpy_pin_hook_fn acquire;    /* optional */
  bocpy_pin_hook_fn release;    /* optional, e.g. flush */
  bocpy_pin_destroy_fn destroy; /* optional, e.g. close */
} bocpy_pinned_spec;

/* ---- the table ---------------------------------------------------------------
 * Generated from abi/abi.manifest: entries are only ever appended. */
typedef struct bocpy_abi {
  bocpy_abi_header header;
/* BEGIN GENERATED by abi/gen_abi.py from abi/abi.manifest: do not edit. */
  /* [0] since 1.0. Capability query: a positive feature version when the core
   * supports the optional feature `name` ("shareable_types", "pinned_types",
   * "c_behaviors", "pump_state", "reduce_shared", "messaging", "noticeboard"),
   * else 0. Lets a plugin probe features without a minor bump. Affinity: any
   * thread; no thread state needed. */
  int64_t (*capability)(const char *name);
  /* [1] since 1.0. The id of the calling interpreter (0 for the main one).
   * Affinity: any interpreter; the calling thread must have an attached thread
   * state. */
  int64_t (*interp_current)(void);
  /* [2] since 1.0. The id of the main interpreter (PyInterpreterState_Main is
   * not in the limited API). Affinity: any thread; no thread state needed. */
  int64_t (*interp_main)(void);
  /* [3] since 1.0. 1 when the caller runs in the main interpreter, else 0.
   * Affinity: any interpreter; attached thread state. */
  int (*interp_is_main)(void);
  /* [4] since 1.0. Atomically reads an owner word (sequentially consistent):
   * an interpreter id or BOCPY_NO_OWNER (-2). Affinity: any thread; no thread
   * state needed. */
  int64_t (*owner_load)(const int64_t *owner);
  /* [5] since 1.0. Atomic owner flip none -> current (compare-and-swap,
   * sequentially consistent). Returns 0 when taken now, 1 when the caller
   * already owned it. `what` names the resource in the error message.
   * Affinity: any interpreter; attached thread state (the calling interpreter
   * becomes the owner). */
  int (*owner_take)(int64_t *owner, const char *what);
  /* [6] since 1.0. Atomic owner flip current -> none (compare-and-swap,
   * sequentially consistent). Returns 0. Affinity: any interpreter; attached
   * thread state. */
  int (*owner_give)(int64_t *owner, const char *what);
  /* [7] since 1.0. 0 when the calling interpreter owns the resource. Call it
   * in every accessor of a single-owner C resource. Affinity: any interpreter;
   * attached thread state. */
  int (*owner_check)(const int64_t *owner, const char *what);
  /* [8] since 1.0. Registers spec->type (this interpreter's type object) as a
   * shareable type: its values travel between interpreters through the core's
   * value transport as share() -> opaque payload -> rebuild(). Registering the
   * same name again with the same callbacks is a no-op. Affinity: any
   * interpreter; attached thread state; call from the plugin's Py_mod_exec in
   * every interpreter. */
  int (*register_shareable)(const bocpy_shareable_spec *spec);
  /* [9] since 1.0. The __reduce__ of a registered shareable type: records obj
   * in the value being encoded (so objects nested in pickled containers also
   * travel by share/rebuild) and returns a new reduce tuple. Affinity: the
   * interpreter that owns obj; attached thread state; only while bocpy encodes
   * a value. */
  PyObject *(*reduce_shared)(PyObject *obj);
  /* [10] since 1.0. Registers spec->type as a pinned type: its values may only
   * live in a PinnedCown (putting one in a Cown, a message or the noticeboard
   * raises TypeError naming PinnedCown). Optional hooks run on the pinned
   * thread (the main thread of the main interpreter) only: acquire / release
   * when a behavior (or `with`) acquires / releases the PinnedCown holding the
   * value; destroy exactly once, when that PinnedCown dies, when its value is
   * replaced, or at exit for every live value. Affinity: any interpreter;
   * attached thread state; call from the plugin's Py_mod_exec in every
   * interpreter. */
  int (*register_pinned)(const bocpy_pinned_spec *spec);
  /* [11] since 1.0. A new Cown holding value (new reference). Affinity: any
   * interpreter; attached thread state. */
  PyObject *(*cown_new)(PyObject *value);
  /* [12] since 1.0. A new PinnedCown holding value (new reference). Affinity:
   * main interpreter only; attached thread state. */
  PyObject *(*pinned_cown_new)(PyObject *value);
  /* [13] since 1.0. 2 when obj is a PinnedCown, 1 when it is a Cown, 0
   * otherwise. Affinity: any interpreter; attached thread state. */
  int (*cown_check)(PyObject *obj);
  /* [14] since 1.0. The value of a cown the caller holds (new reference).
   * Affinity: the interpreter holding the cown (inside a behavior that names
   * it; the pinned thread for a PinnedCown); since 1.1, on the main
   * interpreter after wait() / quiesce() it borrows a parked cown as .value
   * does; attached thread state. */
  PyObject *(*cown_get)(PyObject *cown);
  /* [15] since 1.0. Replaces the value of a cown the caller holds (a
   * PinnedCown's old value gets its destroy hook). Affinity: the interpreter
   * holding the cown (the pinned thread for a PinnedCown); borrows like
   * cown_get; attached thread state. */
  int (*cown_set)(PyObject *cown, PyObject *value);
  /* [16] since 1.0. Schedules a behavior whose body is the C function fn over
   * the cowns (like @when(*cowns)); returns its result Cown (new reference),
   * which receives None, or the exception fn raised. fn runs on a worker (on
   * the pinned thread when a PinnedCown is named) as fn(handles, n, ctx) and
   * returns 0, or -1 with an exception set. free_ctx(ctx), if not NULL, is
   * called exactly once after the behavior retired, or when scheduling fails.
   * Affinity: any interpreter; attached thread state (the main interpreter
   * starts the runtime if needed). */
  PyObject *(*schedule_c)(PyObject *const *cowns, Py_ssize_t n, bocpy_behavior_fn fn, void *ctx, bocpy_free_fn free_ctx);
  /* [17] since 1.0. Pinned behaviors ready and waiting for the pinned thread's
   * pump. Affinity: any thread; no thread state needed. */
  int64_t (*pinned_queue_depth)(void);
  /* [18] since 1.0. Milliseconds the pinned queue has been continuously non-
   * empty (0 when empty). Affinity: any thread; no thread state needed. */
  int64_t (*pinned_queue_age_ms)(void);
  /* [19] since 1.0. 1 while the pinned thread is inside pump() (running a
   * pinned behavior), else 0. Affinity: main interpreter; attached thread
   * state. */
  int (*pump_in_progress)(void);
  /* [20] since 1.0. bocpy.send(tag, value): copies value (cown handles travel
   * as references, shareable types by share/rebuild) onto the queue of `tag`
   * (UTF-8, NUL-terminated). Affinity: any interpreter; attached thread state;
   * never blocks. */
  int (*send)(const char *tag, PyObject *value);
  /* [21] since 1.0. bocpy.receive(tag, timeout): a new reference to the (tag,
   * value) tuple of the oldest message of `tag`, waiting up to `timeout`
   * seconds (negative: forever; 0: poll); on timeout the tuple (bocpy.TIMEOUT,
   * None). Affinity: any interpreter; attached thread state (released while
   * waiting). */
  PyObject *(*receive)(const char *tag, double timeout);
  /* [22] since 1.0. bocpy.notice_write(key, value): sets `key` to a copy of
   * value on the noticeboard, synchronously. Affinity: any interpreter;
   * attached thread state; not from inside a notice_update function. */
  int (*notice_write)(const char *key, PyObject *value);
  /* [23] since 1.0. bocpy.notice_read(key, dflt): a new reference to the value
   * of `key` (inside a behavior, from the behavior's one snapshot of the
   * board), or to dflt (None when NULL) when absent. Affinity: any
   * interpreter; attached thread state. */
  PyObject *(*notice_read)(const char *key, PyObject *dflt);
  /* [24] since 1.0. bocpy.notice_delete(key): removes `key` from the
   * noticeboard (no error when absent). Affinity: any interpreter; attached
   * thread state; not from inside a notice_update function. */
  int (*notice_delete)(const char *key);
  /* [25] since 1.1. Schedules a behavior whose body is the C function fn over
   * the cowns (like @when(*cowns)) and returns its result Cown (new
   * reference). args (NULL or a tuple) is copied now like a cown value (cown
   * handles travel as references, shareable types by share/rebuild) and
   * rebuilt in the interpreter that runs fn; module is the calling plugin's
   * module, whose name is imported there. fn runs on a worker (on the pinned
   * thread when a PinnedCown is named) as fn(module, handles, n, args, ctx)
   * and returns a new reference, which becomes the result cown's value (it
   * must be able to travel), or NULL with an exception set, which becomes the
   * result cown's exception. free_ctx(ctx), if not NULL, is called exactly
   * once after the behavior retired, or when scheduling fails (any thread,
   * some interpreter's thread state attached: ctx must be plain C data).
   * Affinity: any interpreter; attached thread state (the main interpreter
   * starts the runtime if needed); a native thread may call it after
   * PyGILState_Ensure. */
  PyObject *(*schedule_call)(PyObject *module, PyObject *const *cowns, Py_ssize_t n, bocpy_call_fn fn, PyObject *args, void *ctx, bocpy_free_fn free_ctx);
  /* [26] since 1.1. 1 when the cown's value is an exception a behavior raised
   * (a result cown's error state, Cown.exception), else 0. Affinity: like
   * cown_get: the interpreter holding the cown; on the main interpreter after
   * wait() / quiesce() it borrows the cown as .value does; a PinnedCown only
   * on the pinned thread. */
  int (*cown_exception)(PyObject *cown);
  /* [27] since 1.1. bocpy.wait(timeout): waits until every behavior has run,
   * then stops the runtime (timeout < 0: forever). Afterwards cown_get borrows
   * any cown on the main interpreter. Affinity: main interpreter; attached
   * thread state (released while waiting); pinned work runs meanwhile only
   * when called on the pinned thread. */
  int (*wait)(double timeout);
  /* [28] since 1.1. bocpy.quiesce(timeout): like wait, but the runtime keeps
   * running. Affinity: main interpreter; attached thread state (released while
   * waiting); pinned work runs meanwhile only when called on the pinned
   * thread. */
  int (*quiesce)(double timeout);
  /* [29] since 1.1. Runs fn(module, NULL, 0, args, ctx) on the pinned thread
   * (the main thread of the main interpreter), from its next pump() or wait(),
   * like a behavior over no cown; returns its result Cown (new reference),
   * which receives fn's return value or exception. args, module, ctx and
   * free_ctx as for schedule_call. Affinity: any interpreter; attached thread
   * state (the main interpreter starts the runtime if needed). */
  PyObject *(*call_on_pinned_thread)(PyObject *module, bocpy_call_fn fn, PyObject *args, void *ctx, bocpy_free_fn free_ctx);
  /* [30] since 1.1. 1 on the pinned thread (the main thread of the main
   * interpreter, where pinned behaviors and every pinned-value hook run), else
   * 0. Affinity: any thread; no thread state needed. */
  int (*on_pinned_thread)(void);
  /* [31] since 1.1. PyType_GetModuleByDef for the 3.12 limited API: 1 when the
   * type of obj, or one of its bases, was created by a module of definition
   * def in the calling interpreter (*module, when not NULL, receives that
   * module, borrowed), else 0 (*module = NULL). A plugin checks its own types
   * with it in every interpreter, then compares Py_TYPE(obj) with the type in
   * that module's state. Affinity: any interpreter; attached thread state. */
  int (*type_check)(PyObject *obj, PyModuleDef *def, PyObject **module);
/* END GENERATED */
} bocpy_abi;

/* Whether the core behind `abi` has `entry` (an older core has a smaller
 * table); only needed for entries newer than BOCPY_TARGET_MINOR. */
#define BOCPY_ABI_HAS(abi, entry)                                            \
  (offsetof(bocpy_abi, entry) < (size_t)(abi)->header.struct_size)

/* Build flags of this plugin, compared with the core's. */
#ifdef Py_GIL_DISABLED
#define BOCPY_PLUGIN_FLAGS BOCPY_ABI_FLAG_FREE_THREADED
#else
#define BOCPY_PLUGIN_FLAGS 0u
#endif

/* ---- the import helper -------------------------------------------------------
 * bocpy_import_abi(min_minor): imports bocpy._core, finds its capsule and
 * negotiates versions (NumPy's import_array(), HPy's ABI check).  Returns the
 * table, or NULL with ImportError naming both versions when the capsule is
 * missing or misnamed, the major differs, or the core's minor is older than
 * min_minor.  Call it from Py_mod_exec (every interpreter). */
static inline const bocpy_abi *bocpy_import_abi_from(const char *module_name,
                                                     const char *attr,
                                                     int min_minor) {
  char err[512];
  PyObject *mod = PyImport_ImportModule(module_name);
  if (mod == NULL) {
    return NULL;
  }
  PyObject *cap = PyObject_GetAttrString(mod, attr);
  Py_DECREF(mod);
  if (cap == NULL) {
    PyErr_Format(PyExc_ImportError,
                 "%s has no attribute %s: the installed bocpy core predates "
                 "the C ABI (this plugin needs bocpy ABI %d.%d)",
                 module_name, attr, BOCPY_ABI_MAJOR, min_minor);
    return NULL;
  }
  if (!PyCapsule_CheckExact(cap)) {
    PyErr_Format(PyExc_ImportError,
                 "%s.%s is not a capsule: cannot use the bocpy C ABI",
                 module_name, attr);
    Py_DECREF(cap);
    return NULL;
  }
  const char *name = PyCapsule_GetName(cap);
  if (bocpy_abi_check_name(name, err, sizeof(err)) != BOCPY_ABI_OK) {
    Py_DECREF(cap);
    PyErr_SetString(PyExc_ImportError, err);
    return NULL;
  }
  const bocpy_abi *abi = (const bocpy_abi *)PyCapsule_GetPointer(cap, name);
  /* The table is static data of the core's shared object, which CPython
   * never unloads: it outlives the capsule. */
  Py_DECREF(cap);
  if (abi == NULL) {
    return NULL;
  }
  if (min_minor > BOCPY_ABI_MINOR) {
    PyErr_Format(PyExc_ImportError,
                 "this plugin asks for bocpy ABI %d.%d but was compiled "
                 "with the headers of ABI %d.%d",
                 BOCPY_ABI_MAJOR, min_minor, BOCPY_ABI_MAJOR, BOCPY_ABI_MINOR);
    return NULL;
  }
  if (bocpy_abi_check(&abi->header, BOCPY_ABI_MAJOR, min_minor, err,
                      sizeof(err)) != BOCPY_ABI_OK ||
      bocpy_abi_check_flags(&abi->header, BOCPY_PLUGIN_FLAGS, err,
                            sizeof(err)) != BOCPY_ABI_OK) {
    PyErr_SetString(PyExc_ImportError, err);
    return NULL;
  }
  return abi;
}

static inline const bocpy_abi *bocpy_import_abi(int min_minor) {
  return bocpy_import_abi_from(BOCPY_ABI_CORE_MODULE, BOCPY_ABI_CAPSULE_ATTR,
                               min_minor);
}

/* The usual call: the minor this plugin declared it needs. */
#define BOCPY_IMPORT_ABI() bocpy_import_abi(BOCPY_TARGET_MINOR)

#endif /* BOCPY_BOCPY_H */
