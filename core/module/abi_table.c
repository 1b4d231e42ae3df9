/* abi_table.c - the BOCPY_ABI table: the entries plugins call (see
 * abi_table.h, abi/abi.manifest and docs/c_abi.md).
 *
 * Every entry is a thin adapter over the runtime's own functions; each one
 * follows CPython's error convention and the affinity documented in the
 * manifest.  The table itself is static const data: one table serves every
 * interpreter, which is why it holds function pointers only.
 */
#include <Python.h>

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "bocpy/bocpy.h"

#include "module/abi_table.h"
#include "exec/behavior.h"
#include "module/cown_type.h"
#include "value/handle.h"
#include "value/state.h"
#include "exec/noticeboard.h"
#include "exec/pinned.h"
#include "engine/platform.h"
#include "value/pycompat.h"
#include "exec/runtime.h"
#include "value/transport.h"

#ifndef BOCPY_VERSION
#define BOCPY_VERSION "unknown"
#endif
#define BOC_STR2(x) #x
#define BOC_STR(x) BOC_STR2(x)
#define BOC_ABI_VERSION_STRING                                                \
  "bocpy " BOCPY_VERSION " (ABI " BOC_STR(BOCPY_ABI_MAJOR) "." BOC_STR(       \
      BOCPY_ABI_MINOR) ", CPython " PY_VERSION ")"

#if defined(Py_GIL_DISABLED)
#define BOC_ABI_FLAG_FT BOCPY_ABI_FLAG_FREE_THREADED
#else
#define BOC_ABI_FLAG_FT 0u
#endif
#if defined(Py_DEBUG)
#define BOC_ABI_FLAGS (BOCPY_ABI_FLAG_DEBUG | BOC_ABI_FLAG_FT)
#else
#define BOC_ABI_FLAGS BOC_ABI_FLAG_FT
#endif

/* The plugin's callback types are the transport's own (same signatures). */
_Static_assert(BOCPY_NO_OWNER == BOC_NO_OWNER, "one no-owner sentinel");

/* ---- capabilities ----------------------------------------------------------- */

static int64_t abi_capability(const char *name) {
  static const char *const features[] = {
      "shareable_types", "pinned_types", "c_behaviors", "pump_state",
      "reduce_shared",   "messaging",    "noticeboard",
  };
  if (name == NULL) {
    return 0;
  }
  for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
    if (strcmp(name, features[i]) == 0) {
      return 1;
    }
  }
  return 0;
}

/* ---- interpreters ------------------------------------------------------------ */

static int64_t abi_interp_current(void) { return boc_current_interp_id(); }

static int64_t abi_interp_main(void) { return boc_main_interp_id(); }

static int abi_interp_is_main(void) { return boc_is_main_interp(); }

/* ---- ownership flip -------------------------------------------------------------
 * The plugin owns a plain int64_t; the core operates on it atomically.  The
 * casts rely on _Atomic int64_t having int64_t's size and alignment (checked
 * below), which holds on every platform CPython supports with lock-free
 * 64-bit atomics. */
_Static_assert(sizeof(_Atomic int64_t) == sizeof(int64_t),
               "owner words must be plain int64_t");
_Static_assert(_Alignof(_Atomic int64_t) == _Alignof(int64_t),
               "owner words must be plain int64_t");

static const char *what_or_default(const char *what) {
  return what != NULL ? what : "resource";
}

static int64_t abi_owner_load(const int64_t *owner) {
  /* seq_cst: the owner protocol is documented as sequentially consistent. */
  return atomic_load_explicit((const _Atomic int64_t *)owner, BOC_SEQ_CST);
}

static int abi_owner_take(int64_t *owner, const char *what) {
  int64_t me = boc_current_interp_id();
  int64_t expected = BOC_NO_OWNER;
  /* seq_cst: the flip publishes the resource to this interpreter and must
   * see everything the previous owner wrote before giving it up. */
  if (atomic_compare_exchange_strong_explicit((_Atomic int64_t *)owner,
                                              &expected, me, BOC_SEQ_CST,
                                              BOC_SEQ_CST)) {
    return 0;
  }
  if (expected == me) {
    return 1;
  }
  PyErr_Format(PyExc_RuntimeError,
               "The current interpreter cannot take this %s: interpreter "
               "%lld owns it",
               what_or_default(what), (long long)expected);
  return -1;
}

static int abi_owner_give(int64_t *owner, const char *what) {
  int64_t expected = boc_current_interp_id();
  /* seq_cst: everything this interpreter wrote happens before the next
   * owner's take. */
  if (atomic_compare_exchange_strong_explicit((_Atomic int64_t *)owner,
                                              &expected, BOC_NO_OWNER,
                                              BOC_SEQ_CST, BOC_SEQ_CST)) {
    return 0;
  }
  PyErr_Format(PyExc_RuntimeError,
               "The current interpreter does not own this %s",
               what_or_default(what));
  return -1;
}

static int abi_owner_check(const int64_t *owner, const char *what) {
  /* seq_cst: see abi_owner_load. */
  if (atomic_load_explicit((const _Atomic int64_t *)owner, BOC_SEQ_CST) ==
      boc_current_interp_id()) {
    return 0;
  }
  PyErr_Format(PyExc_RuntimeError,
               "The current interpreter does not own this %s",
               what_or_default(what));
  return -1;
}

/* ---- registration ------------------------------------------------------------ */

/* Validates the size-prefixed head of a spec: struct_size must be the size
 * this core knows, or larger with only zero bytes beyond it (a newer
 * header's spec that uses nothing new); reserved must be 0. */
static int check_spec(const void *spec, uint32_t size, uint32_t reserved,
                      size_t known, const char *what) {
  if (size < known || size > 4096) {
    PyErr_Format(PyExc_ValueError,
                 "%s.struct_size is %u but this bocpy core expects %zu: set "
                 "it to sizeof(%s)",
                 what, (unsigned)size, known, what);
    return -1;
  }
  const unsigned char *bytes = spec;
  for (size_t i = known; i < size; i++) {
    if (bytes[i] != 0) {
      PyErr_Format(PyExc_ValueError,
                   "%s uses fields this bocpy core does not know (it knows "
                   "%zu bytes, the spec has %u): upgrade bocpy",
                   what, known, (unsigned)size);
      return -1;
    }
  }
  if (reserved != 0) {
    PyErr_Format(PyExc_ValueError, "%s.reserved must be 0", what);
    return -1;
  }
  return 0;
}

static int check_type(PyTypeObject *type, const char *what) {
  if (type == NULL || !PyType_Check((PyObject *)type)) {
    PyErr_Format(PyExc_TypeError, "%s.type must be a type object", what);
    return -1;
  }
  return 0;
}

/* The registry is process-wide and a registration cannot be undone, so a
 * plugin may register only types its own module created: a heap type made
 * by an extension module (PyType_FromModuleAndSpec) whose module definition
 * lives in the same shared object as the code calling us.  That refuses
 * builtins and other static types (registering bytearray would change how
 * every bytearray travels), classes defined in Python, and types of other
 * extension modules (bocpy's own included).  caller: the return address of
 * the entry, i.e. code of the registering plugin. */
static int check_own_type(PyTypeObject *type, const void *caller,
                          const char *what) {
  PyObject *name = PyType_GetQualName(type);
  if (name == NULL) {
    return -1;
  }
  int rc = -1;
  if (!(PyType_GetFlags(type) & Py_TPFLAGS_HEAPTYPE)) {
    PyErr_Format(PyExc_TypeError,
                 "%s.type '%U' is a static type (a builtin or another "
                 "extension's type): a plugin may only register heap types "
                 "its own module created with PyType_FromModuleAndSpec",
                 what, name);
    goto done;
  }
  PyObject *module = PyType_GetModule(type); /* borrowed */
  if (module == NULL) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError,
                 "%s.type '%U' was not created by an extension module (a "
                 "class defined in Python?): a plugin may only register heap "
                 "types its own module created with PyType_FromModuleAndSpec",
                 what, name);
    goto done;
  }
  PyModuleDef *def = PyModule_GetDef(module);
  Dl_info mine, theirs;
  if (def == NULL || caller == NULL || dladdr(caller, &theirs) == 0 ||
      dladdr((const void *)def, &mine) == 0 ||
      mine.dli_fbase != theirs.dli_fbase) {
    PyErr_Clear();
    const char *owner = PyModule_GetName(module);
    if (owner == NULL) {
      PyErr_Clear();
      owner = "?";
    }
    PyErr_Format(PyExc_TypeError,
                 "%s.type '%U' belongs to module '%s', which is not the "
                 "plugin registering it: a plugin may only register types "
                 "its own module created",
                 what, name, owner);
    goto done;
  }
  rc = 0;
done:
  Py_DECREF(name);
  return rc;
}

static int abi_register_shareable(const bocpy_shareable_spec *spec) {
  static const char what[] = "bocpy_shareable_spec";
  const void *caller = __builtin_return_address(0);
  if (spec == NULL) {
    PyErr_Format(PyExc_ValueError, "%s is NULL", what);
    return -1;
  }
  if (check_spec(spec, spec->struct_size, spec->reserved,
                 sizeof(bocpy_shareable_spec), what) < 0 ||
      check_type(spec->type, what) < 0) {
    return -1;
  }
  if (spec->share == NULL || spec->rebuild == NULL ||
      spec->free_payload == NULL) {
    PyErr_Format(PyExc_ValueError,
                 "%s needs share, rebuild and free_payload callbacks", what);
    return -1;
  }
  if (check_own_type(spec->type, caller, what) < 0) {
    return -1;
  }
  boc_ntype_hooks_t hooks = {
      .kind = BOC_NTYPE_SHAREABLE,
      .share = spec->share,
      .rebuild = spec->rebuild,
      .free = spec->free_payload,
      .unshare = spec->unshare,
  };
  return boc_ntype_register(spec->type, &hooks);
}

static PyObject *abi_reduce_shared(PyObject *obj) {
  if (obj == NULL) {
    PyErr_SetString(PyExc_TypeError, "reduce_shared(NULL)");
    return NULL;
  }
  return boc_ntype_reduce(obj);
}

static int abi_register_pinned(const bocpy_pinned_spec *spec) {
  static const char what[] = "bocpy_pinned_spec";
  const void *caller = __builtin_return_address(0);
  if (spec == NULL) {
    PyErr_Format(PyExc_ValueError, "%s is NULL", what);
    return -1;
  }
  if (check_spec(spec, spec->struct_size, spec->reserved,
                 sizeof(bocpy_pinned_spec), what) < 0 ||
      check_type(spec->type, what) < 0 ||
      check_own_type(spec->type, caller, what) < 0) {
    return -1;
  }
  boc_ntype_hooks_t hooks = {
      .kind = BOC_NTYPE_PINNED,
      .acquire = spec->acquire,
      .release = spec->release,
      .destroy = spec->destroy,
  };
  return boc_ntype_register(spec->type, &hooks);
}

/* ---- cowns ---------------------------------------------------------------------- */

static PyObject *handle_for(boc_cown_t *c) {
  if (c == NULL) {
    return NULL;
  }
  PyObject *h = boc_handle_new(c);
  boc_cown_decref(c); /* the handle holds its own reference */
  return h;
}

static PyObject *abi_cown_new(PyObject *value) {
  if (value == NULL) {
    value = Py_None;
  }
  return handle_for(boc_cown_new(value));
}

static PyObject *abi_pinned_cown_new(PyObject *value) {
  if (!boc_is_main_interp()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "PinnedCown must be constructed on the main interpreter");
    return NULL;
  }
  if (value == NULL) {
    value = Py_None;
  }
  return handle_for(boc_cown_new_pinned(value));
}

static int abi_cown_check(PyObject *obj) {
  boc_cown_t *c = obj != NULL ? boc_handle_record(obj) : NULL;
  if (c == NULL) {
    return 0;
  }
  return boc_cown_is_pinned(c) ? 2 : 1;
}

static boc_cown_t *record_or_error(PyObject *cown) {
  boc_cown_t *c = cown != NULL ? boc_handle_record(cown) : NULL;
  if (c == NULL) {
    PyErr_Format(PyExc_TypeError, "expected a Cown, not %.200s",
                 cown != NULL ? Py_TYPE(cown)->tp_name : "NULL");
  }
  return c;
}

static PyObject *abi_cown_get(PyObject *cown) {
  boc_cown_t *c = record_or_error(cown);
  if (c == NULL || boc_handle_ensure_owned(cown) < 0) {
    return NULL;
  }
  PyObject *v = boc_cown_value(c); /* borrowed */
  return v != NULL ? Py_NewRef(v) : NULL;
}

static int abi_cown_set(PyObject *cown, PyObject *value) {
  boc_cown_t *c = record_or_error(cown);
  if (c == NULL || boc_handle_ensure_owned(cown) < 0) {
    return -1;
  }
  return boc_cown_set_value(c, value != NULL ? value : Py_None);
}

static int abi_cown_exception(PyObject *cown) {
  boc_cown_t *c = record_or_error(cown);
  if (c == NULL || boc_handle_ensure_owned(cown) < 0) {
    return -1;
  }
  if (boc_cown_is_pinned(c) && !boc_on_pinned_thread()) {
    return boc_cown_value(c) == NULL ? -1 : 0; /* raises the thread rule */
  }
  uint32_t flags = atomic_load_explicit(&c->flags, BOC_RELAXED);
  return (flags & BOC_COWN_EXCEPTION) != 0;
}

/* ---- C behaviors ------------------------------------------------------------------ */

/* On the main interpreter, like @when: start the runtime on first use. */
static int ensure_running(void) {
  if (boc_runtime_running() || !boc_is_main_interp()) {
    return 0;
  }
  PyObject *bocpy = PyImport_ImportModule("bocpy");
  PyObject *r = bocpy != NULL ? PyObject_CallMethod(bocpy, "start", NULL)
                              : NULL;
  Py_XDECREF(bocpy);
  if (r == NULL) {
    return -1;
  }
  Py_DECREF(r);
  return 0;
}

/* Schedules a C behavior over cowns[0..n); takes ownership of cfn (freed,
 * free_ctx called, also on failure).  on_pinned: run it on the pinned
 * thread even without a PinnedCown. */
static PyObject *schedule_cfn(PyObject *const *cowns, Py_ssize_t n,
                              boc_cfn_t *cfn, int on_pinned) {
  PyObject *args = NULL;
  if (n < 0 || (n > 0 && cowns == NULL)) {
    PyErr_SetString(PyExc_ValueError,
                    "a C behavior needs a body function and n >= 0 cowns");
    goto fail;
  }
  boc_state_t *st = boc_state();
  if (st == NULL) {
    goto fail;
  }
  args = PyTuple_New(n);
  if (args == NULL) {
    goto fail;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    if (cowns[i] == NULL) {
      PyErr_SetString(PyExc_TypeError, "a C behavior's cown is NULL");
      goto fail;
    }
    PyTuple_SET_ITEM(args, i, Py_NewRef(cowns[i]));
  }
  if (ensure_running() < 0) {
    goto fail;
  }
  if (PyDict_GET_SIZE(st->borrowed) > 0 && boc_release_borrowed(st) < 0) {
    goto fail;
  }
  /* From here on the behavior owns cfn (and calls free_ctx), also when
   * building or scheduling it fails. */
  boc_behavior_t *b = boc_behavior_new_cfn(args, cfn);
  Py_DECREF(args);
  if (b == NULL) {
    return NULL;
  }
  if (on_pinned) {
    b->hdr.pinned = 1;
  }
  return handle_for(boc_behavior_schedule(b, boc_runtime_dispatch()));

fail:
  Py_XDECREF(args);
  boc_cfn_free(cfn);
  return NULL;
}

/* A cfn record, or NULL with MemoryError after calling free_ctx(ctx). */
static boc_cfn_t *cfn_new(void *ctx, bocpy_free_fn free_ctx) {
  boc_cfn_t *cfn = calloc(1, sizeof(*cfn));
  if (cfn == NULL) {
    PyErr_NoMemory();
    if (free_ctx != NULL) {
      free_ctx(ctx);
    }
    return NULL;
  }
  cfn->ctx = ctx;
  cfn->free_ctx = free_ctx;
  return cfn;
}

static PyObject *abi_schedule_c(PyObject *const *cowns, Py_ssize_t n,
                                bocpy_behavior_fn fn, void *ctx,
                                bocpy_free_fn free_ctx) {
  boc_cfn_t *cfn = cfn_new(ctx, free_ctx);
  if (cfn == NULL) {
    return NULL;
  }
  if (fn == NULL) {
    PyErr_SetString(PyExc_ValueError,
                    "schedule_c needs a body function and n >= 0 cowns");
    boc_cfn_free(cfn);
    return NULL;
  }
  cfn->fn = fn;
  return schedule_cfn(cowns, n, cfn, 0);
}

/* Fills in a 1.1 body: the module's name, the encoded arguments.  0, or -1
 * with an exception (cfn untouched but for what was filled in). */
static int cfn_set_call(boc_cfn_t *cfn, PyObject *module, bocpy_call_fn fn,
                        PyObject *args) {
  if (fn == NULL) {
    PyErr_SetString(PyExc_ValueError, "schedule_call needs a body function");
    return -1;
  }
  if (module == NULL || !PyModule_Check(module)) {
    PyErr_Format(PyExc_TypeError,
                 "schedule_call needs the plugin's module object, not %.200s",
                 module != NULL ? Py_TYPE(module)->tp_name : "NULL");
    return -1;
  }
  if (args != NULL && !PyTuple_Check(args)) {
    PyErr_Format(PyExc_TypeError,
                 "schedule_call's args must be a tuple or NULL, not %.200s",
                 Py_TYPE(args)->tp_name);
    return -1;
  }
  const char *name = PyModule_GetName(module);
  if (name == NULL) {
    return -1;
  }
  cfn->module = strdup(name);
  if (cfn->module == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  if (args != NULL && PyTuple_GET_SIZE(args) > 0) {
    cfn->args = boc_payload_encode(args);
    if (cfn->args == NULL) {
      return -1;
    }
  }
  cfn->call = fn;
  return 0;
}

static PyObject *abi_schedule_call(PyObject *module, PyObject *const *cowns,
                                   Py_ssize_t n, bocpy_call_fn fn,
                                   PyObject *args, void *ctx,
                                   bocpy_free_fn free_ctx) {
  boc_cfn_t *cfn = cfn_new(ctx, free_ctx);
  if (cfn == NULL) {
    return NULL;
  }
  if (cfn_set_call(cfn, module, fn, args) < 0) {
    boc_cfn_free(cfn);
    return NULL;
  }
  return schedule_cfn(cowns, n, cfn, 0);
}

static PyObject *abi_call_on_pinned_thread(PyObject *module, bocpy_call_fn fn,
                                           PyObject *args, void *ctx,
                                           bocpy_free_fn free_ctx) {
  boc_cfn_t *cfn = cfn_new(ctx, free_ctx);
  if (cfn == NULL) {
    return NULL;
  }
  if (cfn_set_call(cfn, module, fn, args) < 0) {
    boc_cfn_free(cfn);
    return NULL;
  }
  return schedule_cfn(NULL, 0, cfn, 1);
}

/* bocpy.wait / bocpy.quiesce (Python: they keep the lifecycle lock and
 * the watchdog check); timeout < 0 means forever. */
static int call_bocpy_wait(const char *name, double timeout) {
  PyObject *bocpy = PyImport_ImportModule("bocpy");
  if (bocpy == NULL) {
    return -1;
  }
  PyObject *r = timeout < 0
                    ? PyObject_CallMethod(bocpy, name, NULL)
                    : PyObject_CallMethod(bocpy, name, "d", timeout);
  Py_DECREF(bocpy);
  Py_XDECREF(r);
  return r != NULL ? 0 : -1;
}

static int abi_wait(double timeout) { return call_bocpy_wait("wait", timeout); }

static int abi_quiesce(double timeout) {
  return call_bocpy_wait("quiesce", timeout);
}

static int abi_on_pinned_thread(void) { return boc_on_pinned_thread(); }

static int abi_type_check(PyObject *obj, PyModuleDef *def, PyObject **module) {
  if (module != NULL) {
    *module = NULL;
  }
  if (obj == NULL || def == NULL ||
      !(PyType_GetFlags(Py_TYPE(obj)) & Py_TPFLAGS_HEAPTYPE)) {
    return 0; /* static types were made by no module */
  }
  PyObject *exc = PyErr_GetRaisedException();
  PyObject *m = PyType_GetModuleByDef(Py_TYPE(obj), def); /* borrowed */
  if (m == NULL) {
    PyErr_Clear();
  }
  PyErr_SetRaisedException(exc);
  if (module != NULL) {
    *module = m;
  }
  return m != NULL;
}

/* ---- pump state ------------------------------------------------------------------ */

static int64_t abi_pinned_queue_depth(void) { return boc_pinned_depth(); }

static int64_t abi_pinned_queue_age_ms(void) {
  int64_t since = boc_pinned_nonempty_since();
  return since > 0 ? (boc_now_ns() - since) / 1000000 : 0;
}

static int abi_pump_in_progress(void) {
  if (!boc_is_main_interp()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "pump_in_progress() can only be called from the main "
                    "interpreter");
    return -1;
  }
  boc_state_t *st = boc_state();
  return st == NULL ? -1 : st->pumping != 0;
}

/* ---- messaging and the noticeboard ----------------------------------------------- */

/* The str for a UTF-8 C string argument, or NULL with an exception. */
static PyObject *str_arg(const char *s, const char *what) {
  if (s == NULL) {
    PyErr_Format(PyExc_TypeError, "%s must not be NULL", what);
    return NULL;
  }
  return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), NULL);
}

/* Calls bocpy._core.<name>(*args) of this interpreter: the messaging
 * functions keep their exact Python semantics (tag rules, waiting with the
 * GIL released, signals). */
static PyObject *call_core(const char *name, PyObject *args) {
  PyObject *core = PyImport_ImportModule("bocpy._core");
  if (core == NULL) {
    return NULL;
  }
  PyObject *fn = PyObject_GetAttrString(core, name);
  Py_DECREF(core);
  if (fn == NULL) {
    return NULL;
  }
  PyObject *r = PyObject_Call(fn, args, NULL);
  Py_DECREF(fn);
  return r;
}

static int abi_send(const char *tag, PyObject *value) {
  PyObject *t = str_arg(tag, "tag");
  if (t == NULL) {
    return -1;
  }
  PyObject *args = PyTuple_Pack(2, t, value != NULL ? value : Py_None);
  Py_DECREF(t);
  PyObject *r = args != NULL ? call_core("send", args) : NULL;
  Py_XDECREF(args);
  Py_XDECREF(r);
  return r != NULL ? 0 : -1;
}

static PyObject *abi_receive(const char *tag, double timeout) {
  PyObject *t = str_arg(tag, "tag");
  if (t == NULL) {
    return NULL;
  }
  PyObject *args = Py_BuildValue("(Nd)", t, timeout);
  PyObject *r = args != NULL ? call_core("receive", args) : NULL;
  Py_XDECREF(args);
  return r;
}

static int abi_notice_write(const char *key, PyObject *value) {
  PyObject *k = str_arg(key, "key");
  if (k == NULL) {
    return -1;
  }
  int rc = boc_nb_write(k, value != NULL ? value : Py_None);
  Py_DECREF(k);
  return rc;
}

static PyObject *abi_notice_read(const char *key, PyObject *dflt) {
  PyObject *k = str_arg(key, "key");
  if (k == NULL) {
    return NULL;
  }
  PyObject *r = boc_nb_read(k, dflt != NULL ? dflt : Py_None);
  Py_DECREF(k);
  return r;
}

static int abi_notice_delete(const char *key) {
  PyObject *k = str_arg(key, "key");
  if (k == NULL) {
    return -1;
  }
  int rc = boc_nb_delete(k);
  Py_DECREF(k);
  return rc;
}

/* ---- the table ---------------------------------------------------------------------
 * Static: one table for the whole process, never freed (the core's shared
 * object is never unloaded). */
/* The table itself: its initializer and layout assertions are generated
 * from abi/abi.manifest into a file of their own. */
#include "module/abi_table_init.h"

/* ---- module glue ---------------------------------------------------------------------- */

/* _shared_ref(slot): the unpickling side of reduce_shared. */
static PyObject *shared_ref(PyObject *module, PyObject *arg) {
  (void)module;
  Py_ssize_t slot = PyLong_AsSsize_t(arg);
  if (slot == -1 && PyErr_Occurred()) {
    return NULL;
  }
  return boc_transport_shared_at(slot);
}

static PyObject *abi_info(PyObject *module, PyObject *Py_UNUSED(arg)) {
  (void)module;
  return Py_BuildValue("{s:I,s:I,s:I,s:I,s:s,s:n}", "major",
                       (unsigned)boc_abi.header.major, "minor",
                       (unsigned)boc_abi.header.minor, "struct_size",
                       (unsigned)boc_abi.header.struct_size, "flags",
                       (unsigned)boc_abi.header.flags, "version",
                       boc_abi.header.version, "entries",
                       (Py_ssize_t)BOCPY_ABI_ENTRY_COUNT);
}

static PyObject *registered_types(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return boc_ntype_snapshot();
}

static PyMethodDef abi_methods[] = {
    {"_shared_ref", shared_ref, METH_O,
     "Unpickling hook for objects of registered shareable types."},
    {"_abi_info", abi_info, METH_NOARGS,
     "The header of the BOCPY_ABI table (major, minor, struct_size, flags, "
     "version, entries)."},
    {"_registered_types", registered_types, METH_NOARGS,
     "The process-wide registry of plugin types: [(name, kind)]."},
    {NULL, NULL, 0, NULL},
};

int boc_abi_exec(PyObject *module, boc_state_t *st) {
  st->ntype_map = PyDict_New();
  st->ntype_list = PyList_New(0);
  if (st->ntype_map == NULL || st->ntype_list == NULL ||
      PyModule_AddFunctions(module, abi_methods) < 0) {
    return -1;
  }
  st->shared_ref = PyObject_GetAttrString(module, "_shared_ref");
  if (st->shared_ref == NULL) {
    return -1;
  }
  /* The capsule points at static data: no destructor. */
  PyObject *cap = PyCapsule_New((void *)&boc_abi, BOCPY_ABI_CAPSULE_NAME, NULL);
  if (cap == NULL) {
    return -1;
  }
  int rc = PyModule_AddObjectRef(module, BOCPY_ABI_CAPSULE_ATTR, cap);
  Py_DECREF(cap);
  return rc;
}
