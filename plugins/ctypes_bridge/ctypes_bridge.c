/* ctypes_bridge.c - bocpy.plugins.ctypes_bridge: foreign memory and foreign
 * C functions that cross interpreters.
 *
 * On CPython 3.12 `import ctypes` fails inside an own-GIL sub-interpreter,
 * and on every version a ctypes object cannot travel between interpreters.
 * This abi3 plugin (stable ABI 3.12 + <bocpy/bocpy.h> + libffi, nothing
 * else) bridges both:
 *
 *   Foreign    a record of an address, a size and an optional destructor
 *              (a foreign function such as libc.free), made from a ctypes
 *              object, pointer or an int address.  A shareable type: it
 *              moves between interpreters by ownership, without copying.
 *              PinnedForeign (Foreign(..., pinned=True)) is the pinned
 *              variant: it lives in a PinnedCown on the main thread.
 *   CFunction  a foreign function made from a ctypes function with
 *              argtypes / restype.  The function pointer and the type codes
 *              are read once (where ctypes works); the call goes through
 *              libffi, so any interpreter can make it, also a 3.12 worker.
 *
 * Memory model.  Both are process-global, reference-counted C records
 * (fb_mem_t, fb_fn_t) reached from per-interpreter Python wrappers.  A
 * Foreign record carries an owner word handled by the ABI's owner_*
 * entries: exactly one interpreter may use the memory at a time; share()
 * gives it away and marks the sending wrapper as moved for good; rebuild()
 * takes it in the receiving interpreter.  The destructor runs exactly once,
 * when the record's last reference goes (on whatever thread drops it; no
 * GIL is needed to call C).  A CFunction record is immutable, so any number
 * of interpreters may hold and call it at once.
 *
 * References: functions returning PyObject * return new references;
 * PyObject * arguments are borrowed unless stated.  int functions return 0
 * or -1 with an exception set.
 */
#include <Python.h>

#include <ffi.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bocpy/bocpy.h>

/* The most arguments a CFunction passes (keeps the call's scratch space on
 * the stack). */
#define FB_MAX_ARGS 32

/* The owner_check text of every accessor of a Foreign held elsewhere. */
#define FB_WHAT                                                               \
  "Foreign: it belongs to another interpreter (it was moved into a Cown, a " \
  "message or the noticeboard); use it inside a behavior that holds it"

/* ---- statistics -------------------------------------------------------------
 * Records alive in the process, for leak tests.  Process-global on purpose:
 * the records themselves are process-global. */
static _Atomic int64_t fb_live_mem;
static _Atomic int64_t fb_live_fn;

/* ---- foreign function records ---------------------------------------------- */

typedef enum {
  K_VOID, /* restype None */
  K_SINT, /* signed integer of `size` bytes */
  K_UINT, /* unsigned integer of `size` bytes */
  K_BOOL, /* c_bool */
  K_CHAR, /* c_char: an int or a 1-byte bytes */
  K_FLOAT,
  K_DOUBLE,
  K_PTR, /* c_void_p, POINTER(T): int, None, bytes, buffers, Foreign */
  K_STR  /* c_char_p: the same as K_PTR; returned as bytes */
} fb_kind_t;

typedef struct {
  uint8_t kind;  /* fb_kind_t */
  uint8_t size;  /* bytes, for the integer kinds */
  char name[30]; /* the ctypes type's name, for messages */
} fb_type_t;

typedef struct fb_fn {
  _Atomic int64_t refs; /* wrappers + payloads + Foreign destructors */
  void (*fn)(void);     /* the foreign function */
  ffi_cif cif;          /* prepared once; read-only afterwards */
  ffi_type **ffi_args;  /* nargs entries, owned */
  int nargs;
  int nogil;            /* release the calling interpreter's GIL */
  fb_type_t ret;
  char name[64];        /* the function's __name__, for messages */
  fb_type_t args[];     /* nargs */
} fb_fn_t;

/* The value of one argument, or the return value (never long double). */
typedef union {
  int8_t s8;
  uint8_t u8;
  int16_t s16;
  uint16_t u16;
  int32_t s32;
  uint32_t u32;
  int64_t s64;
  uint64_t u64;
  float f;
  double d;
  void *p;
  ffi_arg ua; /* small integer returns are widened to ffi_arg */
  ffi_sarg sa;
} fb_val_t;

static void fb_fn_incref(fb_fn_t *f) {
  /* relaxed: the caller holds a reference, so the record cannot die now. */
  atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

/* Any thread, no GIL needed. */
static void fb_fn_decref(fb_fn_t *f) {
  /* acq_rel: the thread that frees the record sees every holder's use. */
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
    free(f->ffi_args);
    free(f);
    /* relaxed: a statistic. */
    atomic_fetch_sub_explicit(&fb_live_fn, 1, memory_order_relaxed);
  }
}

static ffi_type *ffi_type_of(const fb_type_t *t) {
  switch ((fb_kind_t)t->kind) {
  case K_VOID:
    return &ffi_type_void;
  case K_SINT:
    return t->size == 1   ? &ffi_type_sint8
           : t->size == 2 ? &ffi_type_sint16
           : t->size == 4 ? &ffi_type_sint32
                          : &ffi_type_sint64;
  case K_UINT:
    return t->size == 1   ? &ffi_type_uint8
           : t->size == 2 ? &ffi_type_uint16
           : t->size == 4 ? &ffi_type_uint32
                          : &ffi_type_uint64;
  case K_BOOL:
    return &ffi_type_uint8;
  case K_CHAR:
    return &ffi_type_schar;
  case K_FLOAT:
    return &ffi_type_float;
  case K_DOUBLE:
    return &ffi_type_double;
  case K_PTR:
  case K_STR:
    return &ffi_type_pointer;
  }
  return &ffi_type_void;
}

/* A new record (refs = 1) for fn with the given types, or NULL with an
 * exception.  `args` has nargs entries. */
static fb_fn_t *fb_fn_new(void (*fn)(void), const char *name,
                          const fb_type_t *args, int nargs,
                          const fb_type_t *ret, int nogil) {
  fb_fn_t *f = calloc(1, sizeof(fb_fn_t) + (size_t)nargs * sizeof(fb_type_t));
  ffi_type **types = calloc((size_t)(nargs > 0 ? nargs : 1), sizeof(*types));
  if (f == NULL || types == NULL) {
    free(f);
    free(types);
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&f->refs, 1);
  f->fn = fn;
  f->nargs = nargs;
  f->nogil = nogil;
  f->ret = *ret;
  f->ffi_args = types;
  snprintf(f->name, sizeof(f->name), "%s", name);
  for (int i = 0; i < nargs; i++) {
    f->args[i] = args[i];
    types[i] = ffi_type_of(&args[i]);
  }
  ffi_status s = ffi_prep_cif(&f->cif, FFI_DEFAULT_ABI, (unsigned)nargs,
                              ffi_type_of(ret), types);
  if (s != FFI_OK) {
    free(types);
    free(f);
    PyErr_Format(PyExc_ValueError,
                 "libffi cannot prepare a call to %s() (ffi_prep_cif "
                 "returned %d)",
                 name, (int)s);
    return NULL;
  }
  /* relaxed: a statistic. */
  atomic_fetch_add_explicit(&fb_live_fn, 1, memory_order_relaxed);
  return f;
}

/* Calls a destructor record with one pointer.  Any thread, no GIL. */
static void fb_fn_call_destructor(fb_fn_t *f, void *address) {
  fb_val_t rv;
  void *arg = address;
  void *avalues[1] = {&arg};
  memset(&rv, 0, sizeof(rv));
  ffi_call(&f->cif, f->fn, &rv, avalues);
}

/* ---- foreign memory records -------------------------------------------------- */

typedef struct fb_mem {
  _Atomic int64_t refs; /* wrappers + payloads + calls in flight */
  int64_t owner;        /* owner word: only through abi->owner_* */
  void *address;
  Py_ssize_t size;
  fb_fn_t *destructor;  /* one reference, or NULL */
  struct fb_mem *next_main; /* link in fb_main_queue (pinned only) */
} fb_mem_t;

static fb_mem_t *fb_mem_new(void *address, Py_ssize_t size,
                            fb_fn_t *dtor, int64_t owner) {
  fb_mem_t *m = malloc(sizeof(*m));
  if (m == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&m->refs, 1);
  m->owner = owner;
  m->address = address;
  m->size = size;
  m->destructor = dtor;
  m->next_main = NULL;
  if (dtor != NULL) {
    fb_fn_incref(dtor);
  }
  /* relaxed: a statistic. */
  atomic_fetch_add_explicit(&fb_live_mem, 1, memory_order_relaxed);
  return m;
}

static void fb_mem_incref(fb_mem_t *m) {
  /* relaxed: the caller holds a reference, so the record cannot die now. */
  atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

/* Any thread, no GIL needed: the last reference runs the destructor. */
static void fb_mem_decref(fb_mem_t *m) {
  /* acq_rel: the release half orders this holder's writes to the memory
   * before the drop; the acquire half lets the thread that runs the
   * destructor see every other holder's writes. */
  if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) {
    return;
  }
  if (m->destructor != NULL) {
    fb_fn_call_destructor(m->destructor, m->address);
    fb_fn_decref(m->destructor);
  }
  free(m);
  /* relaxed: a statistic. */
  atomic_fetch_sub_explicit(&fb_live_mem, 1, memory_order_relaxed);
}

/* ---- pinned records dropped off the main thread -------------------------------
 * A PinnedForeign's destructor must run on the main thread (thread-affine
 * handles).  When another thread of the main interpreter holds the last use
 * (a nogil call in a threading.Thread while main dropped the PinnedCown),
 * its wrapper dies there: the record's last reference is then queued here
 * and dropped on the main thread, from a pending call (the main thread runs
 * it at its next bytecode, or in Py_FinalizeEx before atexit) or, if that
 * never comes, from the Py_AtExit hook at the very end (the destructor is
 * plain C, no interpreter needed).  Process-global on purpose: there is one
 * main thread.  A Treiber stack: pushes from any thread, and the drain
 * takes the whole list at once (exchange), so there is no ABA. */
static _Atomic(fb_mem_t *) fb_main_queue;
static _Atomic int fb_atexit_registered;

static void fb_main_drain_now(void) {
  /* acquire: see the pushing threads' writes to the records. */
  fb_mem_t *m = atomic_exchange_explicit(&fb_main_queue, NULL,
                                         memory_order_acquire);
  while (m != NULL) {
    fb_mem_t *next = m->next_main;
    fb_mem_decref(m); /* the last reference: runs the destructor here */
    m = next;
  }
}

/* For the pending call: written once, by the main interpreter's first
 * import, before any pinned value exists (so before any push). */
static const bocpy_abi *fb_main_abi;

/* Py_AddPendingCall callback: the main thread of the main interpreter. */
static int fb_main_drain(void *arg) {
  (void)arg;
  if (fb_main_abi != NULL && !fb_main_abi->on_pinned_thread()) {
    return 0; /* not the main thread after all: left for the exit hook */
  }
  fb_main_drain_now();
  return 0;
}

static void fb_main_drain_at_exit(void) { fb_main_drain_now(); }

/* Queues m's last reference (the caller's) for the main thread. */
static void fb_main_push(fb_mem_t *m) {
  fb_mem_t *head = atomic_load_explicit(&fb_main_queue, memory_order_relaxed);
  do {
    m->next_main = head;
    /* release: the record's contents are visible to the draining thread. */
  } while (!atomic_compare_exchange_weak_explicit(
      &fb_main_queue, &head, m, memory_order_release, memory_order_relaxed));
  /* A full pending-call queue (-1) leaves it for a later push or the exit
   * hook; either way it runs on the main thread. */
  (void)Py_AddPendingCall(fb_main_drain, NULL);
}

/* ---- module state and wrappers ---------------------------------------------- */

typedef struct {
  const bocpy_abi *abi;
  PyTypeObject *foreign_type; /* strong: this interpreter's types */
  PyTypeObject *pinned_type;
  PyTypeObject *cfunc_type;
} fb_state_t;

typedef struct {
  PyObject_HEAD
  fb_state_t *st;  /* the state of the module that made the type (kept
                      alive by the type, which the object references) */
  fb_mem_t *rec;   /* one reference; NULL once a pinned one was destroyed */
  int moved;       /* this wrapper gave its record away, for good */
  int pinned;
  Py_ssize_t busy; /* buffer exports + foreign calls using it now */
} fb_foreign_t;

typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  fb_state_t *st;
  fb_fn_t *rec; /* one reference */
} fb_cfunc_t;

static int is_foreign(fb_state_t *st, PyObject *o) {
  PyTypeObject *t = Py_TYPE(o);
  return t == st->foreign_type || t == st->pinned_type;
}

/* TypeError "<prefix><type name of obj><suffix>". */
static void type_error(const char *prefix, PyObject *obj, const char *suffix) {
  PyObject *name = PyType_GetName(Py_TYPE(obj));
  if (name != NULL) {
    PyErr_Format(PyExc_TypeError, "%s%U%s", prefix, name, suffix);
    Py_DECREF(name);
  }
}

/* 0 when this interpreter may use f's memory now, else -1. */
static int foreign_usable(fb_foreign_t *f) {
  if (f->rec == NULL) {
    PyErr_SetString(PyExc_ValueError,
                    "this PinnedForeign was destroyed with its PinnedCown "
                    "(its destructor has run): the memory is gone");
    return -1;
  }
  if (f->moved) {
    PyErr_SetString(PyExc_RuntimeError,
                    "The current interpreter does not own this " FB_WHAT);
    return -1;
  }
  return f->st->abi->owner_check(&f->rec->owner, FB_WHAT);
}

/* An int address: 0..UINTPTR_MAX.  0, or -1 with OverflowError "<prefix>%R
 * is not a valid address". */
static int address_of_int(PyObject *o, void **out, const char *prefix) {
  unsigned long long v = PyLong_AsUnsignedLongLong(o);
  if ((v == (unsigned long long)-1 && PyErr_Occurred()) ||
      v > (unsigned long long)UINTPTR_MAX) {
    PyErr_Clear();
    PyErr_Format(PyExc_OverflowError, "%s%R is not a valid address", prefix,
                 o);
    return -1;
  }
  *out = (void *)(uintptr_t)v;
  return 0;
}

/* ---- ctypes introspection (where ctypes can be imported) ------------------ */

/* The ctypes module, or NULL with ImportError saying why it matters. */
static PyObject *import_ctypes(const char *what) {
  PyObject *ct = PyImport_ImportModule("ctypes");
  if (ct == NULL) {
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *msg = exc != NULL ? PyObject_Str(exc) : NULL;
    PyErr_Clear();
    PyErr_Format(PyExc_ImportError,
                 "%s needs ctypes, which cannot be imported in this "
                 "interpreter (%S); do it on the main interpreter, or use "
                 "memoryview() / a CFunction here",
                 what, msg != NULL ? msg : Py_None);
    Py_XDECREF(msg);
    Py_XDECREF(exc);
  }
  return ct;
}

/* 1 when obj is an instance of ctypes.<name>, 0 if not, -1 on error. */
static int ct_isinstance(PyObject *ct, PyObject *obj, const char *name) {
  PyObject *cls = PyObject_GetAttrString(ct, name);
  if (cls == NULL) {
    return -1;
  }
  int r = PyObject_IsInstance(obj, cls);
  Py_DECREF(cls);
  return r;
}

/* 1 when type is a subclass of ctypes.<name>, 0 if not, -1 on error. */
static int ct_issubclass(PyObject *ct, PyObject *type, const char *name) {
  PyObject *cls = PyObject_GetAttrString(ct, name);
  if (cls == NULL) {
    return -1;
  }
  int r = PyType_Check(type) ? PyObject_IsSubclass(type, cls) : 0;
  Py_DECREF(cls);
  return r;
}

/* ctypes.cast(obj, ctypes.c_void_p).value as a C pointer (NULL is valid:
 * *out = NULL).  0 or -1. */
static int ct_pointer_value(PyObject *ct, PyObject *obj, void **out) {
  PyObject *vp = PyObject_GetAttrString(ct, "c_void_p");
  PyObject *cast = vp != NULL ? PyObject_CallMethod(ct, "cast", "OO", obj, vp)
                              : NULL;
  PyObject *value = cast != NULL ? PyObject_GetAttrString(cast, "value") : NULL;
  Py_XDECREF(vp);
  Py_XDECREF(cast);
  if (value == NULL) {
    return -1;
  }
  *out = value == Py_None ? NULL : PyLong_AsVoidPtr(value);
  Py_DECREF(value);
  return *out == NULL && PyErr_Occurred() ? -1 : 0;
}

/* Classifies the ctypes type `t` (an element of argtypes, or the restype
 * when is_ret) into *out.  0, or -1 with TypeError naming the type and
 * saying what the bridge can pass. */
static int classify(PyObject *ct, PyObject *t, const char *fname, int index,
                    int is_ret, fb_type_t *out) {
  char where[96];
  if (is_ret) {
    snprintf(where, sizeof(where), "the restype of %s()", fname);
  } else {
    snprintf(where, sizeof(where), "argument %d of %s()", index + 1, fname);
  }
  memset(out, 0, sizeof(*out));
  if (is_ret && t == Py_None) {
    out->kind = K_VOID;
    snprintf(out->name, sizeof(out->name), "None");
    return 0;
  }
  if (!PyType_Check(t)) {
    PyObject *r = PyObject_Repr(t);
    if (r != NULL) {
      PyErr_Format(PyExc_TypeError,
                   "the bridge cannot pass %R (%s): argtypes and restype "
                   "must be ctypes types such as ctypes.c_int (a callable "
                   "restype is not supported)",
                   r, where);
      Py_DECREF(r);
    }
    return -1;
  }
  PyObject *tname = PyType_GetName((PyTypeObject *)t);
  const char *tn = tname != NULL ? PyUnicode_AsUTF8AndSize(tname, NULL) : NULL;
  if (tn == NULL) {
    Py_XDECREF(tname);
    return -1;
  }
  snprintf(out->name, sizeof(out->name), "%s", tn);
  int rc = -1;
  int is_ptr = ct_issubclass(ct, t, "_Pointer");
  int is_simple = is_ptr == 0 ? ct_issubclass(ct, t, "_SimpleCData") : 0;
  if (is_ptr < 0 || is_simple < 0) {
    goto done;
  }
  if (is_ptr) {
    out->kind = K_PTR;
    rc = 0;
    goto done;
  }
  if (is_simple) {
    PyObject *code = PyObject_GetAttrString(t, "_type_");
    const char *c = code != NULL && PyUnicode_Check(code)
                        ? PyUnicode_AsUTF8AndSize(code, NULL)
                        : NULL;
    char k = c != NULL && c[0] != '\0' && c[1] == '\0' ? c[0] : '\0';
    Py_XDECREF(code);
    PyErr_Clear();
    rc = 0;
    switch (k) {
    case 'b': out->kind = K_SINT; out->size = sizeof(signed char); break;
    case 'B': out->kind = K_UINT; out->size = sizeof(unsigned char); break;
    case 'h': out->kind = K_SINT; out->size = sizeof(short); break;
    case 'H': out->kind = K_UINT; out->size = sizeof(unsigned short); break;
    case 'i': out->kind = K_SINT; out->size = sizeof(int); break;
    case 'I': out->kind = K_UINT; out->size = sizeof(unsigned int); break;
    case 'l': out->kind = K_SINT; out->size = sizeof(long); break;
    case 'L': out->kind = K_UINT; out->size = sizeof(unsigned long); break;
    case 'q': out->kind = K_SINT; out->size = sizeof(long long); break;
    case 'Q': out->kind = K_UINT; out->size = sizeof(unsigned long long); break;
    case '?': out->kind = K_BOOL; out->size = sizeof(_Bool); break;
    case 'c': out->kind = K_CHAR; out->size = 1; break;
    case 'f': out->kind = K_FLOAT; break;
    case 'd': out->kind = K_DOUBLE; break;
    case 'P': out->kind = K_PTR; break;
    case 'z': out->kind = K_STR; break;
    default:
      rc = -1;
      PyErr_Format(PyExc_TypeError,
                   "the bridge cannot pass ctypes.%s (%s): it passes the "
                   "integer types, c_bool, c_char, c_float, c_double, "
                   "c_char_p, c_void_p and POINTER(...) types (not "
                   "c_wchar, c_wchar_p, c_longdouble or py_object)",
                   tn, where);
    }
    goto done;
  }
  PyErr_Format(PyExc_TypeError,
               "the bridge cannot pass %s (%s): structures, unions, arrays "
               "and function types cannot be passed by value; pass a "
               "pointer (ctypes.POINTER(...) or c_void_p) to memory in a "
               "Foreign instead",
               tn, where);
done:
  Py_DECREF(tname);
  return rc;
}

/* 1 when func is a ctypes foreign function made from a library symbol or
 * an address, 0 when it is not a ctypes function at all, -1 on error.  A
 * ctypes callback (a Python function behind a C pointer) is refused with
 * TypeError: calling it from another interpreter's thread is unsafe. */
static int ct_foreign_function(PyObject *ct, PyObject *func, const char *role) {
  int r = ct_isinstance(ct, func, "_CFuncPtr");
  if (r <= 0) {
    return r;
  }
  PyObject *objs = PyObject_GetAttrString(func, "_objects");
  if (objs == NULL) {
    PyErr_Clear();
    return 1;
  }
  int callback = 0;
  if (PyDict_Check(objs)) {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (!callback && PyDict_Next(objs, &pos, &key, &value)) {
      PyObject *n = PyType_GetName(Py_TYPE(value));
      if (n == NULL) {
        Py_DECREF(objs);
        return -1;
      }
      callback = PyUnicode_CompareWithASCIIString(n, "CThunkObject") == 0;
      Py_DECREF(n);
    }
  }
  Py_DECREF(objs);
  if (callback) {
    PyErr_Format(PyExc_TypeError,
                 "%s is a ctypes callback (a Python function behind a C "
                 "pointer): the bridge only calls foreign C functions, "
                 "because a callback would run Python code of the main "
                 "interpreter on another interpreter's thread",
                 role);
    return -1;
  }
  return 1;
}

/* The function's __name__ (or "function") into buf. */
static void func_name(PyObject *func, char *buf, size_t n) {
  PyObject *name = PyObject_GetAttrString(func, "__name__");
  const char *s = name != NULL && PyUnicode_Check(name)
                      ? PyUnicode_AsUTF8AndSize(name, NULL)
                      : NULL;
  snprintf(buf, n, "%s", s != NULL ? s : "function");
  Py_XDECREF(name);
  PyErr_Clear();
}

/* A new function record from the ctypes function `func`.  When
 * as_destructor, argtypes may be unset (one pointer argument is assumed)
 * and must otherwise be exactly one pointer type. */
static fb_fn_t *fn_from_ctypes(PyObject *ct, PyObject *func, int nogil,
                               int as_destructor) {
  char name[64];
  func_name(func, name, sizeof(name));
  fb_type_t args[FB_MAX_ARGS];
  fb_type_t ret;
  int nargs = 0;
  PyObject *errcheck = PyObject_GetAttrString(func, "errcheck");
  if (errcheck == NULL) {
    PyErr_Clear();
  } else {
    int set = errcheck != Py_None;
    Py_DECREF(errcheck);
    if (set && !as_destructor) {
      PyErr_Format(PyExc_TypeError,
                   "%s() has an errcheck function: the bridge cannot run "
                   "Python code around a foreign call; check the result "
                   "yourself",
                   name);
      return NULL;
    }
  }
  PyObject *argtypes = PyObject_GetAttrString(func, "argtypes");
  if (argtypes == NULL) {
    return NULL;
  }
  if (argtypes == Py_None) {
    Py_DECREF(argtypes);
    if (!as_destructor) {
      PyErr_Format(PyExc_TypeError,
                   "CFunction needs the argument types of %s(): set "
                   "%s.argtypes = [...] (and %s.restype) first",
                   name, name, name);
      return NULL;
    }
    memset(&args[0], 0, sizeof(args[0]));
    args[0].kind = K_PTR;
    snprintf(args[0].name, sizeof(args[0].name), "c_void_p");
    nargs = 1;
  } else {
    PyObject *seq = PySequence_Tuple(argtypes);
    Py_DECREF(argtypes);
    if (seq == NULL) {
      return NULL;
    }
    Py_ssize_t n = PyTuple_Size(seq);
    if (n > FB_MAX_ARGS) {
      PyErr_Format(PyExc_TypeError,
                   "%s() takes %zd arguments: the bridge passes at most %d",
                   name, n, FB_MAX_ARGS);
      Py_DECREF(seq);
      return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
      if (classify(ct, PyTuple_GetItem(seq, i), name, (int)i, 0,
                   &args[i]) < 0) {
        Py_DECREF(seq);
        return NULL;
      }
    }
    Py_DECREF(seq);
    nargs = (int)n;
    if (as_destructor &&
        (nargs != 1 || (args[0].kind != K_PTR && args[0].kind != K_STR))) {
      PyErr_Format(PyExc_TypeError,
                   "a destructor must take exactly one pointer argument "
                   "(like free(void *)), but %s.argtypes has %d "
                   "argument(s)%s",
                   name, nargs, nargs == 1 ? " that is not a pointer" : "");
      return NULL;
    }
  }
  PyObject *restype = PyObject_GetAttrString(func, "restype");
  if (restype == NULL) {
    return NULL;
  }
  int rc = classify(ct, restype, name, 0, 1, &ret);
  Py_DECREF(restype);
  if (rc < 0) {
    if (!as_destructor) {
      return NULL;
    }
    /* A destructor's result is ignored: call it as returning void. */
    PyErr_Clear();
    memset(&ret, 0, sizeof(ret));
    ret.kind = K_VOID;
  }
  void *fp = NULL;
  if (ct_pointer_value(ct, func, &fp) < 0) {
    return NULL;
  }
  if (fp == NULL) {
    PyErr_Format(PyExc_ValueError, "%s is a NULL function pointer", name);
    return NULL;
  }
  void (*fn)(void);
  memcpy(&fn, &fp, sizeof(fn)); /* object pointer -> function pointer */
  return fb_fn_new(fn, name, args, nargs, &ret, nogil);
}

/* ---- argument conversion ------------------------------------------------------ */

static void arg_error(const fb_fn_t *f, int i, const char *want, PyObject *o) {
  PyObject *tn = PyType_GetName(Py_TYPE(o));
  if (tn != NULL) {
    PyErr_Format(PyExc_TypeError,
                 "argument %d of %s() (%s) must be %s, not %U", i + 1,
                 f->name, f->args[i].name, want, tn);
    Py_DECREF(tn);
  }
}

static int int_arg(const fb_fn_t *f, int i, PyObject *o, fb_val_t *v) {
  const fb_type_t *t = &f->args[i];
  if (!PyLong_Check(o)) {
    arg_error(f, i, "an int", o);
    return -1;
  }
  int overflow = 0;
  long long s = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (s == -1 && PyErr_Occurred()) {
    return -1;
  }
  unsigned bits = 8u * t->size;
  if (t->kind == K_SINT) {
    long long lo = bits == 64 ? INT64_MIN : -(1LL << (bits - 1));
    long long hi = bits == 64 ? INT64_MAX : (1LL << (bits - 1)) - 1;
    if (overflow != 0 || s < lo || s > hi) {
      PyErr_Format(PyExc_OverflowError,
                   "argument %d of %s() (%s): %R is out of range %lld..%lld",
                   i + 1, f->name, t->name, o, lo, hi);
      return -1;
    }
    switch (t->size) {
    case 1: v->s8 = (int8_t)s; break;
    case 2: v->s16 = (int16_t)s; break;
    case 4: v->s32 = (int32_t)s; break;
    default: v->s64 = (int64_t)s; break;
    }
    return 0;
  }
  unsigned long long u = 0;
  unsigned long long hi = bits == 64 ? UINT64_MAX : (1ULL << bits) - 1;
  int bad = overflow < 0 || (overflow == 0 && s < 0);
  if (!bad && overflow > 0) {
    u = PyLong_AsUnsignedLongLong(o);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) {
      PyErr_Clear();
      bad = 1;
    }
  } else if (!bad) {
    u = (unsigned long long)s;
  }
  if (bad || u > hi) {
    PyErr_Format(PyExc_OverflowError,
                 "argument %d of %s() (%s): %R is out of range 0..%llu",
                 i + 1, f->name, t->name, o, hi);
    return -1;
  }
  switch (t->size) {
  case 1: v->u8 = (uint8_t)u; break;
  case 2: v->u16 = (uint16_t)u; break;
  case 4: v->u32 = (uint32_t)u; break;
  default: v->u64 = (uint64_t)u; break;
  }
  return 0;
}

/* What one call holds until the foreign function returns. */
typedef struct {
  Py_buffer views[FB_MAX_ARGS];
  int nviews;
  fb_foreign_t *foreign[FB_MAX_ARGS]; /* borrowed; busy counted */
  int nforeign;
} fb_hold_t;

static int ptr_arg(const fb_fn_t *f, int i, PyObject *o, fb_val_t *v,
                   fb_state_t *st, fb_hold_t *h) {
  if (o == Py_None) {
    v->p = NULL;
    return 0;
  }
  if (PyLong_Check(o)) {
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "argument %d of %s() (%s): ", i + 1,
             f->name, f->args[i].name);
    return address_of_int(o, &v->p, prefix);
  }
  if (is_foreign(st, o)) {
    fb_foreign_t *fo = (fb_foreign_t *)o;
    if (foreign_usable(fo) < 0) {
      return -1;
    }
    v->p = fo->rec->address;
    fo->busy++; /* it cannot move while the call uses it */
    h->foreign[h->nforeign++] = fo;
    return 0;
  }
  if (PyBytes_Check(o)) {
    v->p = (void *)PyBytes_AsString(o);
    return v->p == NULL ? -1 : 0;
  }
  if (PyObject_CheckBuffer(o)) {
    /* bytearray, memoryview, array.array, a Matrix with the buffer
     * protocol (its exporter checks ownership): C-contiguous memory. */
    Py_buffer *view = &h->views[h->nviews];
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0) {
      return -1;
    }
    h->nviews++;
    v->p = view->buf;
    return 0;
  }
  arg_error(f, i,
            "bytes, a Foreign, a bocpy.Matrix, a buffer, an int address or "
            "None",
            o);
  return -1;
}

static int convert_arg(const fb_fn_t *f, int i, PyObject *o, fb_val_t *v,
                       fb_state_t *st, fb_hold_t *h) {
  switch ((fb_kind_t)f->args[i].kind) {
  case K_SINT:
  case K_UINT:
    return int_arg(f, i, o, v);
  case K_BOOL:
    if (!PyLong_Check(o)) { /* bool is an int */
      arg_error(f, i, "a bool or an int", o);
      return -1;
    }
    v->u8 = (uint8_t)(PyObject_IsTrue(o) ? 1 : 0);
    return 0;
  case K_CHAR:
    if (PyBytes_Check(o) && PyBytes_Size(o) == 1) {
      v->s8 = (int8_t)PyBytes_AsString(o)[0];
      return 0;
    }
    if (PyLong_Check(o)) {
      long c = PyLong_AsLong(o);
      if ((c == -1 && PyErr_Occurred()) || c < -128 || c > 255) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError,
                     "argument %d of %s() (c_char): %R is out of range "
                     "-128..255",
                     i + 1, f->name, o);
        return -1;
      }
      v->s8 = (int8_t)c;
      return 0;
    }
    arg_error(f, i, "a bytes of length 1 or an int", o);
    return -1;
  case K_FLOAT:
  case K_DOUBLE: {
    if (!PyFloat_Check(o) && !PyLong_Check(o)) {
      arg_error(f, i, "a float or an int", o);
      return -1;
    }
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) {
      return -1;
    }
    if (f->args[i].kind == K_FLOAT) {
      v->f = (float)d;
    } else {
      v->d = d;
    }
    return 0;
  }
  case K_PTR:
  case K_STR:
    return ptr_arg(f, i, o, v, st, h);
  case K_VOID:
    break;
  }
  PyErr_SetString(PyExc_SystemError, "ctypes_bridge: bad argument kind");
  return -1;
}

static void release_hold(fb_hold_t *h) {
  for (int i = 0; i < h->nviews; i++) {
    PyBuffer_Release(&h->views[i]);
  }
  for (int i = 0; i < h->nforeign; i++) {
    h->foreign[i]->busy--;
  }
  h->nviews = h->nforeign = 0;
}

static PyObject *convert_ret(const fb_fn_t *f, const fb_val_t *rv) {
  const fb_type_t *t = &f->ret;
  int widened = t->size < sizeof(ffi_arg);
  switch ((fb_kind_t)t->kind) {
  case K_VOID:
    Py_RETURN_NONE;
  case K_SINT:
    return PyLong_FromLongLong(widened ? (long long)rv->sa
                                       : (long long)rv->s64);
  case K_UINT: {
    unsigned long long u = widened ? (unsigned long long)rv->ua
                                   : (unsigned long long)rv->u64;
    if (widened) {
      u &= (1ULL << (8u * t->size)) - 1;
    }
    return PyLong_FromUnsignedLongLong(u);
  }
  case K_BOOL:
    return PyBool_FromLong((long)(rv->ua & 0xff) != 0);
  case K_CHAR: {
    char c = (char)(rv->ua & 0xff);
    return PyBytes_FromStringAndSize(&c, 1);
  }
  case K_FLOAT:
    return PyFloat_FromDouble((double)rv->f);
  case K_DOUBLE:
    return PyFloat_FromDouble(rv->d);
  case K_PTR:
    if (rv->p == NULL) {
      Py_RETURN_NONE;
    }
    return PyLong_FromVoidPtr(rv->p);
  case K_STR:
    if (rv->p == NULL) {
      Py_RETURN_NONE;
    }
    return PyBytes_FromString((const char *)rv->p);
  }
  PyErr_SetString(PyExc_SystemError, "ctypes_bridge: bad return kind");
  return NULL;
}

/* ---- CFunction ----------------------------------------------------------------- */

static PyObject *cfunc_vectorcall(PyObject *self, PyObject *const *args,
                                  size_t nargsf, PyObject *kwnames);

static PyObject *cfunc_wrap(fb_state_t *st, fb_fn_t *rec) {
  fb_cfunc_t *c = (fb_cfunc_t *)PyType_GenericAlloc(st->cfunc_type, 0);
  if (c == NULL) {
    fb_fn_decref(rec);
    return NULL;
  }
  c->vectorcall = cfunc_vectorcall;
  c->st = st;
  c->rec = rec; /* the reference we were given */
  return (PyObject *)c;
}

static PyObject *cfunc_vectorcall(PyObject *self, PyObject *const *args,
                                  size_t nargsf, PyObject *kwnames) {
  fb_cfunc_t *c = (fb_cfunc_t *)self;
  const fb_fn_t *f = c->rec;
  Py_ssize_t n = PyVectorcall_NARGS(nargsf);
  if (kwnames != NULL && PyTuple_Size(kwnames) > 0) {
    PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments",
                 f->name);
    return NULL;
  }
  if (n != f->nargs) {
    char sig[FB_MAX_ARGS * 32 + 2];
    size_t at = 0;
    sig[0] = '\0';
    for (int i = 0; i < f->nargs && at < sizeof(sig); i++) {
      at += (size_t)snprintf(sig + at, sizeof(sig) - at, "%s%s",
                             i ? ", " : "", f->args[i].name);
    }
    PyErr_Format(PyExc_TypeError,
                 "%s() takes %d argument%s (%s) but %zd %s given", f->name,
                 f->nargs, f->nargs == 1 ? "" : "s", sig, n,
                 n == 1 ? "was" : "were");
    return NULL;
  }
  fb_val_t vals[FB_MAX_ARGS];
  void *avalues[FB_MAX_ARGS];
  fb_hold_t hold;
  hold.nviews = hold.nforeign = 0;
  for (int i = 0; i < f->nargs; i++) {
    vals[i].u64 = 0;
    avalues[i] = &vals[i];
    if (convert_arg(f, i, args[i], &vals[i], c->st, &hold) < 0) {
      release_hold(&hold);
      return NULL;
    }
  }
  fb_val_t rv;
  rv.u64 = 0;
  if (f->nogil) {
    /* The arguments (and so the memory they point to) stay alive: the
     * caller holds them, and a Foreign argument is marked busy so it
     * cannot be moved to another interpreter during the call. */
    PyThreadState *ts = PyEval_SaveThread();
    ffi_call((ffi_cif *)&f->cif, f->fn, &rv, avalues);
    PyEval_RestoreThread(ts);
  } else {
    ffi_call((ffi_cif *)&f->cif, f->fn, &rv, avalues);
  }
  release_hold(&hold);
  return convert_ret(f, &rv);
}

static PyObject *cfunc_call(PyObject *self, PyObject *args, PyObject *kw) {
  return PyVectorcall_Call(self, args, kw);
}

static PyObject *cfunc_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"func", "nogil", NULL};
  PyObject *func;
  int nogil = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$p:CFunction", kwlist, &func,
                                   &nogil)) {
    return NULL;
  }
  fb_state_t *st = PyType_GetModuleState(type);
  if (st == NULL) {
    return NULL;
  }
  if (Py_TYPE(func) == st->cfunc_type) { /* re-wrap with another nogil */
    const fb_fn_t *o = ((fb_cfunc_t *)func)->rec;
    fb_fn_t *rec = fb_fn_new(o->fn, o->name, o->args, o->nargs, &o->ret,
                             nogil);
    return rec != NULL ? cfunc_wrap(st, rec) : NULL;
  }
  PyObject *ct = import_ctypes("CFunction(ctypes_function)");
  if (ct == NULL) {
    return NULL;
  }
  int r = ct_foreign_function(ct, func, "func");
  if (r == 0) {
    type_error("CFunction() needs a ctypes foreign function (e.g. "
               "ctypes.CDLL(...).name with argtypes and restype set), not ",
               func, "");
  }
  fb_fn_t *rec = r > 0 ? fn_from_ctypes(ct, func, nogil, 0) : NULL;
  Py_DECREF(ct);
  return rec != NULL ? cfunc_wrap(st, rec) : NULL;
}

static void cfunc_dealloc(PyObject *self) {
  fb_cfunc_t *c = (fb_cfunc_t *)self;
  PyTypeObject *tp = Py_TYPE(self);
  if (c->rec != NULL) {
    fb_fn_decref(c->rec);
  }
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *cfunc_repr(PyObject *self) {
  const fb_fn_t *f = ((fb_cfunc_t *)self)->rec;
  char sig[FB_MAX_ARGS * 32 + 2];
  size_t at = 0;
  sig[0] = '\0';
  for (int i = 0; i < f->nargs && at < sizeof(sig); i++) {
    at += (size_t)snprintf(sig + at, sizeof(sig) - at, "%s%s", i ? ", " : "",
                           f->args[i].name);
  }
  return PyUnicode_FromFormat("<CFunction %s(%s) -> %s%s>", f->name, sig,
                              f->ret.name, f->nogil ? " nogil" : "");
}

static PyObject *cfunc_reduce(PyObject *self, PyObject *Py_UNUSED(a)) {
  return ((fb_cfunc_t *)self)->st->abi->reduce_shared(self);
}

static PyObject *cfunc_get_name(PyObject *self, void *c) {
  (void)c;
  return PyUnicode_FromString(((fb_cfunc_t *)self)->rec->name);
}
static PyObject *cfunc_get_address(PyObject *self, void *c) {
  (void)c;
  void *p;
  void (*fn)(void) = ((fb_cfunc_t *)self)->rec->fn;
  memcpy(&p, &fn, sizeof(p));
  return PyLong_FromVoidPtr(p);
}
static PyObject *cfunc_get_argtypes(PyObject *self, void *c) {
  (void)c;
  const fb_fn_t *f = ((fb_cfunc_t *)self)->rec;
  PyObject *t = PyTuple_New(f->nargs);
  for (int i = 0; t != NULL && i < f->nargs; i++) {
    PyObject *s = PyUnicode_FromString(f->args[i].name);
    if (s == NULL) {
      Py_CLEAR(t);
      break;
    }
    PyTuple_SetItem(t, i, s); /* steals s */
  }
  return t;
}
static PyObject *cfunc_get_restype(PyObject *self, void *c) {
  (void)c;
  const fb_fn_t *f = ((fb_cfunc_t *)self)->rec;
  if (f->ret.kind == K_VOID) {
    Py_RETURN_NONE;
  }
  return PyUnicode_FromString(f->ret.name);
}
static PyObject *cfunc_get_nogil(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((fb_cfunc_t *)self)->rec->nogil);
}

static PyMethodDef cfunc_methods[] = {
    {"__reduce__", cfunc_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cfunc_getset[] = {
    {"name", cfunc_get_name, NULL, "The foreign function's name.", NULL},
    {"address", cfunc_get_address, NULL, "The function pointer (an int).",
     NULL},
    {"argtypes", cfunc_get_argtypes, NULL,
     "The ctypes names of the argument types (a tuple of str).", NULL},
    {"restype", cfunc_get_restype, NULL,
     "The ctypes name of the result type, or None for void.", NULL},
    {"nogil", cfunc_get_nogil, NULL,
     "True when calls release the calling interpreter's GIL.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef cfunc_members[] = {
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(fb_cfunc_t, vectorcall),
     Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot cfunc_slots[] = {
    {Py_tp_new, cfunc_new},
    {Py_tp_dealloc, cfunc_dealloc},
    {Py_tp_call, cfunc_call},
    {Py_tp_repr, cfunc_repr},
    {Py_tp_methods, cfunc_methods},
    {Py_tp_getset, cfunc_getset},
    {Py_tp_members, cfunc_members},
    {Py_tp_doc,
     "CFunction(func, *, nogil=False)\n--\n\n"
     "A foreign C function that every interpreter can call.  func is a "
     "ctypes foreign function with argtypes (and restype) set, made where "
     "ctypes can be imported; the CFunction moves to workers in cowns, "
     "messages, captures and noticeboard entries, and calls the function "
     "through libffi.  nogil=True releases the calling interpreter's GIL "
     "during the call."},
    {0, NULL},
};

static PyType_Spec cfunc_spec = {
    .name = "bocpy.plugins.ctypes_bridge.CFunction",
    .basicsize = sizeof(fb_cfunc_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = cfunc_slots,
};

/* CFunction's shareable hooks: the record is immutable, so sharing is a
 * reference and the sender keeps its CFunction. */
static void *cfunc_share(PyObject *obj) {
  fb_fn_t *rec = ((fb_cfunc_t *)obj)->rec;
  fb_fn_incref(rec);
  return rec;
}

static PyObject *cfunc_rebuild(PyTypeObject *type, void *payload) {
  fb_state_t *st = PyType_GetModuleState(type);
  if (st == NULL) {
    return NULL;
  }
  fb_fn_t *rec = payload;
  fb_fn_incref(rec);
  return cfunc_wrap(st, rec);
}

static void cfunc_free_payload(void *payload) { fb_fn_decref(payload); }

/* ---- Foreign ------------------------------------------------------------------- */

static PyObject *foreign_wrap(fb_state_t *st, PyTypeObject *type,
                              fb_mem_t *rec, int pinned) {
  fb_foreign_t *f = (fb_foreign_t *)PyType_GenericAlloc(type, 0);
  if (f == NULL) {
    fb_mem_decref(rec);
    return NULL;
  }
  f->st = st;
  f->rec = rec; /* the reference we were given */
  f->pinned = pinned;
  return (PyObject *)f;
}

/* The destructor argument: a ctypes foreign function or a CFunction.  A new
 * record reference into *out, or -1. */
static int destructor_arg(fb_state_t *st, PyObject *d, fb_fn_t **out) {
  *out = NULL;
  if (d == Py_None) {
    return 0;
  }
  if (Py_TYPE(d) == st->cfunc_type) {
    fb_fn_t *rec = ((fb_cfunc_t *)d)->rec;
    if (rec->nargs != 1 ||
        (rec->args[0].kind != K_PTR && rec->args[0].kind != K_STR)) {
      PyErr_Format(PyExc_TypeError,
                   "a destructor must take exactly one pointer argument "
                   "(like free(void *)), but %s() takes %d argument(s)%s",
                   rec->name, rec->nargs,
                   rec->nargs == 1 ? " that is not a pointer" : "");
      return -1;
    }
    fb_fn_incref(rec);
    *out = rec;
    return 0;
  }
  PyObject *ct = PyImport_ImportModule("ctypes");
  int r = 0;
  if (ct == NULL) {
    PyErr_Clear(); /* no ctypes here: d cannot be a ctypes function */
  } else {
    r = ct_foreign_function(ct, d, "the destructor");
  }
  if (r == 0) {
    type_error("destructor must be a foreign function: a ctypes function "
               "such as ctypes.CDLL(None).free, or a CFunction, not ",
               d, "");
    r = -1;
  }
  if (r > 0) {
    *out = fn_from_ctypes(ct, d, 0, 1);
    r = *out != NULL ? 0 : -1;
  }
  Py_XDECREF(ct);
  return r;
}

/* The address and default size of the `memory` argument: an int, a ctypes
 * pointer (size: none), or a ctypes data object (size: its own).  0/-1. */
static int memory_arg(PyObject *memory, void **address, Py_ssize_t *dflt) {
  *dflt = -1;
  if (PyLong_Check(memory)) {
    return address_of_int(memory, address, "Foreign(): ");
  }
  PyObject *ct = PyImport_ImportModule("ctypes");
  if (ct == NULL) {
    PyErr_Clear();
    type_error("Foreign() needs an int address or a ctypes object (ctypes "
               "cannot be imported in this interpreter), not ",
               memory, "");
    return -1;
  }
  int rc = -1;
  int is_ptr = ct_isinstance(ct, memory, "_Pointer");
  if (is_ptr == 0) {
    /* c_void_p / c_char_p instances are pointers too. */
    PyObject *t = (PyObject *)Py_TYPE(memory);
    PyObject *vp = PyObject_GetAttrString(ct, "c_void_p");
    PyObject *cp = PyObject_GetAttrString(ct, "c_char_p");
    if (vp == NULL || cp == NULL) {
      is_ptr = -1;
    } else {
      int a = PyObject_IsSubclass(t, vp), b = PyObject_IsSubclass(t, cp);
      is_ptr = a < 0 || b < 0 ? -1 : (a || b);
    }
    Py_XDECREF(vp);
    Py_XDECREF(cp);
  }
  if (is_ptr < 0) {
    goto done;
  }
  if (is_ptr) {
    rc = ct_pointer_value(ct, memory, address);
    goto done;
  }
  int is_func = ct_isinstance(ct, memory, "_CFuncPtr");
  if (is_func < 0) {
    goto done;
  }
  /* Any other ctypes data object has an address; anything else makes
   * ctypes.addressof raise TypeError. */
  PyObject *a = is_func ? NULL
                        : PyObject_CallMethod(ct, "addressof", "O", memory);
  if (a == NULL) {
    if (is_func || PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_Clear();
      type_error("Foreign() needs an int address, a ctypes pointer or a "
                 "ctypes object, not ",
                 memory, is_func ? " (a function is not memory)" : "");
    }
    goto done;
  }
  PyObject *owns = PyObject_GetAttrString(memory, "_b_needsfree_");
  int needsfree = owns != NULL ? PyObject_IsTrue(owns) : -1;
  Py_XDECREF(owns);
  if (needsfree < 0) {
    Py_DECREF(a);
    goto done;
  }
  if (needsfree) {
    Py_DECREF(a);
    type_error("Foreign() cannot take a ctypes ", memory,
               " that owns its memory (Python frees it with the object, "
               "which cannot leave this interpreter): allocate the memory "
               "in C (e.g. libc.malloc) and pass the pointer, or use "
               "ctype.from_address()");
    goto done;
  }
  PyObject *s = PyObject_CallMethod(ct, "sizeof", "O", memory);
  if (s != NULL) {
    *address = PyLong_AsVoidPtr(a);
    *dflt = PyLong_AsSsize_t(s);
    rc = PyErr_Occurred() ? -1 : 0;
  }
  Py_DECREF(a);
  Py_XDECREF(s);
done:
  Py_DECREF(ct);
  return rc;
}

static PyObject *foreign_new(PyTypeObject *type, PyObject *args,
                             PyObject *kw) {
  static char *kwlist[] = {"memory", "size", "destructor", "pinned", NULL};
  PyObject *memory, *size_obj = Py_None, *dtor = Py_None;
  int pinned = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O$Op:Foreign", kwlist,
                                   &memory, &size_obj, &dtor, &pinned)) {
    return NULL;
  }
  /* A Python subclass has no module: refused below. */
  fb_state_t *st = PyType_GetModuleState(type);
  if (st == NULL) {
    PyErr_Clear();
  }
  if (st != NULL && type == st->pinned_type) {
    pinned = 1;
  } else if (st == NULL || type != st->foreign_type) {
    PyErr_SetString(PyExc_TypeError,
                    "Foreign cannot be subclassed: bocpy moves exact types "
                    "only");
    return NULL;
  }
  if (pinned && !st->abi->interp_is_main()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "a pinned Foreign can only be created on the main "
                    "interpreter (it lives in a PinnedCown)");
    return NULL;
  }
  void *address = NULL;
  Py_ssize_t size = -1;
  if (memory_arg(memory, &address, &size) < 0) {
    return NULL;
  }
  if (size_obj != Py_None) {
    if (!PyLong_Check(size_obj)) {
      type_error("Foreign() size must be an int, not ", size_obj, "");
      return NULL;
    }
    size = PyLong_AsSsize_t(size_obj);
    if (size == -1 && PyErr_Occurred()) {
      return NULL;
    }
    if (size <= 0) {
      PyErr_Format(PyExc_ValueError,
                   "Foreign() size must be at least 1 byte, not %zd", size);
      return NULL;
    }
  } else if (size < 0) {
    PyErr_SetString(PyExc_TypeError,
                    "Foreign() needs the size in bytes of the memory at an "
                    "address or a pointer: Foreign(memory, size)");
    return NULL;
  } else if (size == 0) {
    PyErr_SetString(PyExc_ValueError,
                    "Foreign() size must be at least 1 byte, not 0");
    return NULL;
  }
  if (address == NULL) {
    PyErr_SetString(PyExc_ValueError,
                    "Foreign() got a NULL address (0): there is no memory "
                    "there");
    return NULL;
  }
  fb_fn_t *d = NULL;
  if (destructor_arg(st, dtor, &d) < 0) {
    return NULL;
  }
  fb_mem_t *rec = fb_mem_new(address, size, d, st->abi->interp_current());
  if (d != NULL) {
    fb_fn_decref(d); /* the record took its own reference */
  }
  if (rec == NULL) {
    return NULL;
  }
  return foreign_wrap(st, pinned ? st->pinned_type : st->foreign_type, rec,
                      pinned);
}

static void foreign_dealloc(PyObject *self) {
  fb_foreign_t *f = (fb_foreign_t *)self;
  PyTypeObject *tp = Py_TYPE(self);
  if (f->rec != NULL) {
    if (!f->moved && !f->pinned &&
        f->st->abi->owner_load(&f->rec->owner) ==
            f->st->abi->interp_current()) {
      /* Give the memory back, so that another reader of the same payload
       * (a noticeboard entry) can take it later. */
      f->st->abi->owner_give(&f->rec->owner, "Foreign");
    }
    fb_mem_t *rec = f->rec;
    f->rec = NULL;
    if (f->pinned && !f->st->abi->on_pinned_thread()) {
      fb_main_push(rec); /* its destructor: main thread only */
    } else {
      fb_mem_decref(rec); /* may run the destructor */
    }
  }
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *foreign_repr(PyObject *self) {
  fb_foreign_t *f = (fb_foreign_t *)self;
  const char *kind = f->pinned ? "PinnedForeign" : "Foreign";
  if (f->rec == NULL) {
    return PyUnicode_FromFormat("<%s destroyed>", kind);
  }
  if (f->moved) {
    return PyUnicode_FromFormat("<%s moved to another interpreter>", kind);
  }
  return PyUnicode_FromFormat("<%s address=%p size=%zd%s>", kind,
                              f->rec->address, f->rec->size,
                              f->rec->destructor != NULL ? " destructor" : "");
}

static PyObject *foreign_get_address(PyObject *self, void *c) {
  (void)c;
  fb_foreign_t *f = (fb_foreign_t *)self;
  return foreign_usable(f) < 0 ? NULL : PyLong_FromVoidPtr(f->rec->address);
}
static PyObject *foreign_get_size(PyObject *self, void *c) {
  (void)c;
  fb_foreign_t *f = (fb_foreign_t *)self;
  return foreign_usable(f) < 0 ? NULL : PyLong_FromSsize_t(f->rec->size);
}
static PyObject *foreign_get_acquired(PyObject *self, void *c) {
  (void)c;
  fb_foreign_t *f = (fb_foreign_t *)self;
  return PyBool_FromLong(f->rec != NULL && !f->moved &&
                         f->st->abi->owner_load(&f->rec->owner) ==
                             f->st->abi->interp_current());
}
static PyObject *foreign_get_pinned(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((fb_foreign_t *)self)->pinned);
}
static PyObject *foreign_get_has_destructor(PyObject *self, void *c) {
  (void)c;
  fb_foreign_t *f = (fb_foreign_t *)self;
  return PyBool_FromLong(f->rec != NULL && f->rec->destructor != NULL);
}

static int foreign_getbuffer(PyObject *self, Py_buffer *view, int flags) {
  fb_foreign_t *f = (fb_foreign_t *)self;
  if (foreign_usable(f) < 0) {
    view->obj = NULL;
    return -1;
  }
  if (PyBuffer_FillInfo(view, self, f->rec->address, f->rec->size, 0,
                        flags) < 0) {
    return -1;
  }
  f->busy++;
  return 0;
}

static void foreign_releasebuffer(PyObject *self, Py_buffer *view) {
  (void)view;
  ((fb_foreign_t *)self)->busy--;
}

static PyObject *foreign_as_ctypes(PyObject *self, PyObject *ctype) {
  fb_foreign_t *f = (fb_foreign_t *)self;
  if (foreign_usable(f) < 0) {
    return NULL;
  }
  PyObject *ct = import_ctypes("Foreign.as_ctypes()");
  if (ct == NULL) {
    return NULL;
  }
  PyObject *result = NULL;
  int is_ptr = ct_issubclass(ct, ctype, "_Pointer");
  int is_vp = is_ptr == 0 ? ct_issubclass(ct, ctype, "c_void_p") : 0;
  int is_cp = is_ptr == 0 && is_vp == 0 ? ct_issubclass(ct, ctype, "c_char_p")
                                        : 0;
  int is_data = PyType_Check(ctype) &&
                PyObject_HasAttrString(ctype, "from_buffer");
  if (is_ptr < 0 || is_vp < 0 || is_cp < 0) {
    goto done;
  }
  if (is_ptr || is_vp || is_cp) {
    /* A pointer to the memory (it does not keep the Foreign alive). */
    PyObject *addr = PyLong_FromVoidPtr(f->rec->address);
    if (addr != NULL) {
      result = PyObject_CallMethod(ct, "cast", "OO", addr, ctype);
      Py_DECREF(addr);
    }
  } else if (is_data) {
    /* ctype.from_buffer(self): shares the memory and keeps a buffer
     * export alive, so the Foreign cannot move while it is in use. */
    result = PyObject_CallMethod(ctype, "from_buffer", "O", self);
  } else {
    type_error("as_ctypes() needs a ctypes type (e.g. ctypes.c_char * n "
               "or ctypes.POINTER(ctypes.c_int)), not ",
               ctype, "");
  }
done:
  Py_DECREF(ct);
  return result;
}

static PyObject *foreign_reduce(PyObject *self, PyObject *Py_UNUSED(a)) {
  return ((fb_foreign_t *)self)->st->abi->reduce_shared(self);
}

static PyMethodDef foreign_methods[] = {
    {"as_ctypes", foreign_as_ctypes, METH_O,
     "as_ctypes(ctype)\n--\n\nThe memory as a ctypes object (where ctypes "
     "can be imported): ctype.from_buffer(self) for a data type (it shares "
     "the memory and blocks moves while it lives), a cast of the address "
     "for a pointer type."},
    {"__reduce__", foreign_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef foreign_getset[] = {
    {"address", foreign_get_address, NULL, "The address (an int).", NULL},
    {"size", foreign_get_size, NULL, "The size in bytes.", NULL},
    {"acquired", foreign_get_acquired, NULL,
     "True while this interpreter holds the memory.", NULL},
    {"pinned", foreign_get_pinned, NULL, "True for a PinnedForeign.", NULL},
    {"has_destructor", foreign_get_has_destructor, NULL,
     "True when a destructor runs on the last drop.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot foreign_slots[] = {
    {Py_tp_new, foreign_new},
    {Py_tp_dealloc, foreign_dealloc},
    {Py_tp_repr, foreign_repr},
    {Py_tp_methods, foreign_methods},
    {Py_tp_getset, foreign_getset},
    {Py_bf_getbuffer, foreign_getbuffer},
    {Py_bf_releasebuffer, foreign_releasebuffer},
    {Py_tp_doc,
     "Foreign(memory, size=None, *, destructor=None, pinned=False)\n--\n\n"
     "Foreign memory that moves between interpreters without copying.  "
     "memory is an int address, a ctypes pointer or a ctypes object that "
     "does not own its memory; size is in bytes (default: the ctypes "
     "object's size).  destructor (a ctypes foreign function such as "
     "libc.free, or a CFunction, taking one pointer) runs exactly once "
     "when the last reference goes.  pinned=True returns a PinnedForeign, "
     "which lives in a PinnedCown on the main thread."},
    {0, NULL},
};

static PyType_Spec foreign_spec = {
    .name = "bocpy.plugins.ctypes_bridge.Foreign",
    .basicsize = sizeof(fb_foreign_t),
    /* BASETYPE for PinnedForeign only: foreign_new refuses other
     * subclasses, which the core would not move (exact types only). */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_BASETYPE,
    .slots = foreign_slots,
};

/* A subclass of Foreign with its own registration (the core keys
 * registrations by exact type, and one type is either shareable or pinned);
 * it inherits every slot. */
static PyType_Slot pinned_slots[] = {
    {Py_tp_doc,
     "PinnedForeign(memory, size=None, *, destructor=None)\n--\n\n"
     "Foreign memory pinned to the main interpreter (a thread-affine "
     "handle): it lives in a PinnedCown, and its destructor runs on the "
     "main thread when that PinnedCown dies (at exit too)."},
    {0, NULL},
};

static PyType_Spec pinned_spec = {
    .name = "bocpy.plugins.ctypes_bridge.PinnedForeign",
    .basicsize = sizeof(fb_foreign_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pinned_slots,
};

/* Foreign's shareable hooks: the ownership flip. */
static void *foreign_share(PyObject *obj) {
  fb_foreign_t *f = (fb_foreign_t *)obj;
  if (foreign_usable(f) < 0) {
    return NULL;
  }
  if (f->busy > 0) {
    PyErr_Format(PyExc_BufferError,
                 "cannot move a Foreign while %zd buffer export(s) or "
                 "foreign call(s) use it (memoryviews, as_ctypes() "
                 "objects): release them first",
                 f->busy);
    return NULL;
  }
  if (f->st->abi->owner_give(&f->rec->owner, "Foreign") < 0) {
    return NULL;
  }
  f->moved = 1;
  fb_mem_incref(f->rec);
  return f->rec;
}

static void foreign_unshare(PyObject *obj, void *payload) {
  fb_foreign_t *f = (fb_foreign_t *)obj;
  (void)payload;
  if (f->st->abi->owner_take(&f->rec->owner, "Foreign") >= 0) {
    f->moved = 0;
  } else {
    PyErr_Clear();
  }
}

static PyObject *foreign_rebuild(PyTypeObject *type, void *payload) {
  fb_state_t *st = PyType_GetModuleState(type);
  if (st == NULL) {
    return NULL;
  }
  fb_mem_t *rec = payload;
  if (st->abi->owner_take(&rec->owner, "Foreign") < 0) {
    return NULL;
  }
  fb_mem_incref(rec);
  return foreign_wrap(st, type, rec, 0);
}

static void foreign_free_payload(void *payload) { fb_mem_decref(payload); }

/* PinnedForeign's pinned hooks (main thread, GIL held). */
static int pinned_acquire(PyObject *value) {
  return foreign_usable((fb_foreign_t *)value);
}

static void pinned_destroy(PyObject *value) {
  fb_foreign_t *f = (fb_foreign_t *)value;
  if (f->rec != NULL && f->busy == 0) {
    fb_mem_t *rec = f->rec;
    f->rec = NULL;
    fb_mem_decref(rec); /* runs the destructor here, on the main thread */
  }
  /* Busy (a memoryview is alive): the destructor runs when the wrapper
   * dies instead, which is also on the main interpreter. */
}

/* ---- module ------------------------------------------------------------------- */

static fb_state_t *mod_state(PyObject *m) {
  return (fb_state_t *)PyModule_GetState(m);
}

PyDoc_STRVAR(live_doc,
             "_live() -> (foreign, functions)\n\n"
             "Foreign-memory and foreign-function records alive in the "
             "process (a statistic for leak tests).");
static PyObject *fb_live(PyObject *m, PyObject *Py_UNUSED(a)) {
  (void)m;
  /* relaxed: statistics, read at quiescence. */
  return Py_BuildValue(
      "(LL)",
      (long long)atomic_load_explicit(&fb_live_mem, memory_order_relaxed),
      (long long)atomic_load_explicit(&fb_live_fn, memory_order_relaxed));
}

static PyMethodDef fb_methods[] = {
    {"_live", fb_live, METH_NOARGS, live_doc},
    {NULL, NULL, 0, NULL},
};

static int fb_exec(PyObject *module) {
  fb_state_t *st = mod_state(module);
  st->abi = BOCPY_IMPORT_ABI();
  if (st->abi == NULL) {
    return -1;
  }
  /* Once per process (the main interpreter imports it first to pin): the
   * last chance for queued pinned destructors, on the main thread.
   * relaxed: only one registration matters, the flag orders nothing. */
  if (st->abi->interp_is_main() &&
      !atomic_exchange_explicit(&fb_atexit_registered, 1,
                                memory_order_relaxed)) {
    fb_main_abi = st->abi;
    (void)Py_AtExit(fb_main_drain_at_exit);
  }
  st->foreign_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &foreign_spec, NULL);
  if (st->foreign_type == NULL ||
      PyModule_AddType(module, st->foreign_type) < 0) {
    return -1;
  }
  st->pinned_type = (PyTypeObject *)PyType_FromModuleAndSpec(
      module, &pinned_spec, (PyObject *)st->foreign_type);
  if (st->pinned_type == NULL ||
      PyModule_AddType(module, st->pinned_type) < 0) {
    return -1;
  }
  st->cfunc_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &cfunc_spec, NULL);
  if (st->cfunc_type == NULL || PyModule_AddType(module, st->cfunc_type) < 0) {
    return -1;
  }
  bocpy_shareable_spec fspec = {
      .struct_size = sizeof(bocpy_shareable_spec),
      .reserved = 0,
      .type = st->foreign_type,
      .share = foreign_share,
      .rebuild = foreign_rebuild,
      .free_payload = foreign_free_payload,
      .unshare = foreign_unshare,
  };
  bocpy_shareable_spec cspec = {
      .struct_size = sizeof(bocpy_shareable_spec),
      .reserved = 0,
      .type = st->cfunc_type,
      .share = cfunc_share,
      .rebuild = cfunc_rebuild,
      .free_payload = cfunc_free_payload,
      .unshare = NULL,
  };
  bocpy_pinned_spec pspec = {
      .struct_size = sizeof(bocpy_pinned_spec),
      .reserved = 0,
      .type = st->pinned_type,
      .acquire = pinned_acquire,
      .release = NULL,
      .destroy = pinned_destroy,
  };
  if (st->abi->register_shareable(&fspec) < 0 ||
      st->abi->register_shareable(&cspec) < 0 ||
      st->abi->register_pinned(&pspec) < 0) {
    return -1;
  }
  return PyModule_AddIntConstant(module, "MAX_ARGS", FB_MAX_ARGS);
}

static int fb_traverse(PyObject *module, visitproc visit, void *arg) {
  fb_state_t *st = mod_state(module);
  Py_VISIT(st->foreign_type);
  Py_VISIT(st->pinned_type);
  Py_VISIT(st->cfunc_type);
  return 0;
}

static int fb_clear(PyObject *module) {
  fb_state_t *st = mod_state(module);
  Py_CLEAR(st->foreign_type);
  Py_CLEAR(st->pinned_type);
  Py_CLEAR(st->cfunc_type);
  return 0;
}

static void fb_free(void *module) { fb_clear((PyObject *)module); }

static PyModuleDef_Slot fb_slots[] = {
    {Py_mod_exec, fb_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef fb_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bocpy.plugins.ctypes_bridge",
    .m_doc = "Foreign memory (Foreign) and foreign C functions (CFunction) "
             "that move between interpreters: a bridge for what ctypes "
             "reaches on the main interpreter.",
    .m_size = sizeof(fb_state_t),
    .m_methods = fb_methods,
    .m_slots = fb_slots,
    .m_traverse = fb_traverse,
    .m_clear = fb_clear,
    .m_free = fb_free,
};

PyMODINIT_FUNC PyInit_ctypes_bridge(void); /* the one exported symbol */
PyMODINIT_FUNC PyInit_ctypes_bridge(void) {
  return PyModuleDef_Init(&fb_module);
}
