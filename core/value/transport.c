/* transport.c - interpreter-neutral payloads (see transport.h). */
#include "value/transport.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/platform.h"
#include "value/handle.h"
#include "value/pycompat.h"
#include "value/state.h"

enum {
  TAG_NONE = 'N',
  TAG_TRUE = 'T',
  TAG_FALSE = 'F',
  TAG_INT = 'i',
  TAG_FLOAT = 'f',
  TAG_STR = 's',
  TAG_BYTES = 'b',
  TAG_TUPLE = 't',
  TAG_LIST = 'l',
  TAG_COWN = 'c',
  TAG_PICKLE = 'p',
  TAG_SHARED = 'x', /* an object of a registered shareable type: slot index */
  TAG_OBJECT = 'o', /* a plain object: class name, then its __dict__ items */
  TAG_DICT = 'd',   /* an exact dict: key, value pairs */
};

/* Containers deeper than this are pickled as a whole. */
#define NATIVE_MAX_DEPTH 8
/* Plain objects and dicts nested deeper than this are pickled instead. */
#define PLAIN_MAX_DEPTH 6

/* ---- encoder ------------------------------------------------------------ */

typedef struct encoder {
  unsigned char *buf;
  size_t len, cap;
  boc_cown_t **cowns;
  uint32_t ncowns, cowns_cap;
  boc_shared_item_t *shared; /* what share() made, one per distinct object */
  PyObject **shared_objs;    /* strong: the objects shared, same order */
  uint32_t nshared, shared_cap;
  struct encoder *outer; /* the encoding this one interrupted, if any */
  int snapshot; /* boc_payload_encode_snapshot: shareables are copied */
} encoder_t;

/* The encoding in progress on this thread.  A thread-local because pickle
 * calls the handles' __reduce__ with no way to pass our context through;
 * encodings nest (a __reduce__ may itself encode), hence the `outer` chain. */
static _Thread_local encoder_t *tls_encoder;
/* Likewise the decoding in progress, for the unpickling hooks. */
struct decoder;
static _Thread_local struct decoder *tls_decoding;

/* ---- registry of native types (see transport.h) --------------------------- */

typedef struct ntype {
  char *name;   /* "<module>.<qualname>", UTF-8: the key */
  char *module; /* imported to register the type where it is missing */
  boc_ntype_hooks_t hooks;
} ntype_t;

/* Process-global because a payload carries a registry index from one
 * interpreter to another while type objects are per interpreter.  Append
 * only: an entry is filled in before ntypes_count is raised (release) and
 * never changes afterwards, so a reader holding an index it got from a
 * payload or from its interpreter's map reads the entry without the lock
 * (the index reached it after the registration, through whatever handed it
 * the payload or through its interpreter's GIL). */
static ntype_t ntypes[BOC_NTYPES_MAX];
static _Atomic uint32_t ntypes_count;
static boc_mutex_t ntypes_mu; /* serialises registrations */
static boc_once_t ntypes_once = BOC_ONCE_INIT; /* initialises ntypes_mu */

static void ntypes_init(void) { boc_mutex_init(&ntypes_mu); }

/* Registry index of obj's (exact) type in this interpreter, or -1.  Never
 * raises; call with no exception set. */
static int ntype_of(PyObject *obj) {
  /* relaxed: only a fast path.  This interpreter's map is the truth, and it
   * only names entries that this interpreter registered earlier (ordered
   * before us by its GIL), so a stale 0 here cannot hide one. */
  if (atomic_load_explicit(&ntypes_count, BOC_RELAXED) == 0) {
    return -1;
  }
  boc_state_t *st = boc_state();
  if (st == NULL) {
    PyErr_Clear();
    return -1;
  }
  if (st->ntype_map == NULL || PyDict_GET_SIZE(st->ntype_map) == 0) {
    return -1;
  }
  PyObject *idx = PyDict_GetItemWithError(st->ntype_map,
                                          (PyObject *)Py_TYPE(obj));
  if (idx == NULL) {
    PyErr_Clear();
    return -1;
  }
  return (int)PyLong_AsLong(idx);
}

static int pinned_value_error(int idx) {
  PyErr_Format(PyExc_TypeError,
               "a value of type '%s' can only live in a PinnedCown: it "
               "cannot be put in a Cown, sent as a message or stored on the "
               "noticeboard",
               ntypes[idx].name);
  return -1;
}

static int enc_reserve(encoder_t *e, size_t extra) {
  if (e->len + extra <= e->cap) {
    return 0;
  }
  size_t cap = e->cap ? e->cap : 64;
  while (cap < e->len + extra) {
    cap *= 2;
  }
  unsigned char *buf = realloc(e->buf, cap);
  if (buf == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  e->buf = buf;
  e->cap = cap;
  return 0;
}

static int enc_bytes(encoder_t *e, const void *data, size_t n) {
  if (enc_reserve(e, n) < 0) {
    return -1;
  }
  memcpy(e->buf + e->len, data, n);
  e->len += n;
  return 0;
}

static int enc_tag(encoder_t *e, unsigned char tag) {
  return enc_bytes(e, &tag, 1);
}

static int enc_u64(encoder_t *e, uint64_t v) { return enc_bytes(e, &v, 8); }

static int enc_blob(encoder_t *e, unsigned char tag, const char *data,
                    size_t n) {
  if (enc_tag(e, tag) < 0 || enc_u64(e, (uint64_t)n) < 0) {
    return -1;
  }
  return enc_bytes(e, data, n);
}

static Py_ssize_t enc_note_cown(encoder_t *e, boc_cown_t *c) {
  for (uint32_t i = 0; i < e->ncowns; i++) {
    if (e->cowns[i] == c) {
      return (Py_ssize_t)i;
    }
  }
  if (e->ncowns == e->cowns_cap) {
    uint32_t cap = e->cowns_cap ? e->cowns_cap * 2 : 4;
    boc_cown_t **cowns = realloc(e->cowns, cap * sizeof(*cowns));
    if (cowns == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    e->cowns = cowns;
    e->cowns_cap = cap;
  }
  boc_cown_incref(c);
  e->cowns[e->ncowns] = c;
  return (Py_ssize_t)e->ncowns++;
}

/* Notes an object of registered type idx: share() it once per encoding (a
 * second occurrence refers to the same slot, so identity survives) and
 * return its slot, or -1 with an exception. */
static Py_ssize_t enc_note_shared(encoder_t *e, PyObject *obj, int idx) {
  for (uint32_t i = 0; i < e->nshared; i++) {
    if (e->shared_objs[i] == obj) {
      return (Py_ssize_t)i;
    }
  }
  if (e->nshared == e->shared_cap) {
    uint32_t cap = e->shared_cap ? e->shared_cap * 2 : 4;
    boc_shared_item_t *items = realloc(e->shared, cap * sizeof(*items));
    if (items == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    e->shared = items;
    PyObject **objs = realloc(e->shared_objs, cap * sizeof(*objs));
    if (objs == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    e->shared_objs = objs;
    e->shared_cap = cap;
  }
  void *data = ntypes[idx].hooks.share(obj);
  if (data == NULL) {
    if (!PyErr_Occurred()) {
      PyErr_Format(PyExc_SystemError,
                   "the share hook of '%s' failed without setting an "
                   "exception",
                   ntypes[idx].name);
    }
    return -1;
  }
  e->shared[e->nshared].type = (uint32_t)idx;
  e->shared[e->nshared].data = data;
  e->shared_objs[e->nshared] = Py_NewRef(obj);
  return (Py_ssize_t)e->nshared++;
}

/* Can obj be written natively?  Scalars, handles and objects of registered
 * types always (a pinned one only to raise the right error); tuples and
 * lists only when made of natively writable immutable items, so that no
 * shared mutable object loses its identity (those go through pickle, which
 * keeps sharing and cycles). */
static int can_native(PyObject *obj, int depth) {
  if (obj == Py_None || PyBool_Check(obj) || PyFloat_CheckExact(obj) ||
      PyUnicode_CheckExact(obj) || PyBytes_CheckExact(obj)) {
    return 1;
  }
  if (PyLong_CheckExact(obj)) {
    int overflow = 0;
    (void)PyLong_AsLongLongAndOverflow(obj, &overflow);
    return overflow == 0;
  }
  if (boc_handle_record(obj) != NULL) {
    return 1;
  }
  if ((PyTuple_CheckExact(obj) || PyList_CheckExact(obj)) &&
      depth < NATIVE_MAX_DEPTH) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
    PyObject **items = PySequence_Fast_ITEMS(obj);
    for (Py_ssize_t i = 0; i < n; i++) {
      PyObject *item = items[i];
      if (PyList_CheckExact(item) || !can_native(item, depth + 1)) {
        return 0;
      }
    }
    return 1;
  }
  return ntype_of(obj) >= 0;
}


/* ---- plain objects and dicts (native, no pickle) ---------------------------
 * The common user value -- an instance of the program's own class whose
 * attributes are numbers, strings, small containers -- would otherwise be
 * pickled through bocpy._byvalue's Python-level pickler on every move.  It
 * is written natively instead when pickle itself would do nothing more
 * than "make an instance of module.qualname without calling __init__ and
 * put these items in its __dict__":
 *   the class (cached per interpreter in st->plain_types) is a heap type
 *   made by `type`, every class of its MRO but object is a heap type
 *   defining none of __reduce_ex__, __reduce__, __getstate__, __setstate__,
 *   __getnewargs_ex__, __getnewargs__, __slots__; its tp_new is object's;
 *   it is not an exception; copyreg has no reducer for it; and
 *   module.qualname finds it again;
 * and every value in its __dict__ (and in an exact dict) is natively
 * writable, or a list of natively writable immutables, or a plain object or
 * exact dict, each of the last three referenced only there (refcount 1:
 * nothing else in the value can share it, so no identity or cycle is lost;
 * the top-level value itself may be referenced anywhere).  Anything else is
 * pickled as before. */

static const char *const plain_breakers[] = {
    "__reduce_ex__", "__reduce__",      "__getstate__",
    "__setstate__",  "__getnewargs_ex__", "__getnewargs__",
    "__slots__",     NULL,
};

/* b"module\0qualname" if tp's instances are plain, else NULL; never raises. */
static PyObject *plain_name_compute(boc_state_t *st, PyTypeObject *tp) {
  if (Py_TYPE(tp) != &PyType_Type || !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) ||
      tp->tp_new != PyBaseObject_Type.tp_new || tp->tp_itemsize != 0 ||
      PyType_IsSubtype(tp, (PyTypeObject *)PyExc_BaseException)) {
    return NULL;
  }
  PyObject *mro = tp->tp_mro;
  if (mro == NULL || !PyTuple_Check(mro)) {
    return NULL;
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
    PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
    if (base == &PyBaseObject_Type) {
      continue;
    }
    if (!(base->tp_flags & Py_TPFLAGS_HEAPTYPE) || base->tp_dict == NULL) {
      return NULL;
    }
    for (const char *const *k = plain_breakers; *k != NULL; k++) {
      PyObject *hit = PyDict_GetItemString(base->tp_dict, *k); /* borrowed */
      if (hit != NULL) {
        return NULL;
      }
    }
  }
  if (st->copyreg_table == NULL) {
    PyObject *copyreg = PyImport_ImportModule("copyreg");
    st->copyreg_table = copyreg != NULL
                            ? PyObject_GetAttrString(copyreg, "dispatch_table")
                            : NULL;
    Py_XDECREF(copyreg);
    if (st->copyreg_table == NULL) {
      PyErr_Clear();
      return NULL;
    }
  }
  if (!PyDict_Check(st->copyreg_table) ||
      PyDict_Contains(st->copyreg_table, (PyObject *)tp) != 0) {
    PyErr_Clear();
    return NULL;
  }
  PyObject *modname = PyObject_GetAttrString((PyObject *)tp, "__module__");
  PyObject *qual = modname != NULL ? PyType_GetQualName(tp) : NULL;
  PyObject *out = NULL;
  if (qual != NULL && PyUnicode_Check(modname) && PyUnicode_Check(qual)) {
    Py_ssize_t mn = 0, qn = 0;
    const char *m = PyUnicode_AsUTF8AndSize(modname, &mn);
    const char *q = m != NULL ? PyUnicode_AsUTF8AndSize(qual, &qn) : NULL;
    PyObject *mod = q != NULL ? PyImport_GetModule(modname) : NULL;
    PyObject *found = mod != NULL ? Py_NewRef(mod) : NULL;
    /* module.qualname must find tp again (as pickle checks) */
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; found != NULL && i <= qn; i++) {
      if (i == qn || q[i] == '.') {
        PyObject *part = PyUnicode_FromStringAndSize(q + start, i - start);
        PyObject *next = part != NULL ? PyObject_GetAttr(found, part) : NULL;
        Py_XDECREF(part);
        Py_SETREF(found, next);
        start = i + 1;
      }
    }
    if (found == (PyObject *)tp) {
      out = PyBytes_FromStringAndSize(NULL, mn + 1 + qn);
      if (out != NULL) {
        char *d = PyBytes_AS_STRING(out);
        memcpy(d, m, (size_t)mn);
        d[mn] = '\0';
        memcpy(d + mn + 1, q, (size_t)qn);
      }
    }
    Py_XDECREF(found);
    Py_XDECREF(mod);
  }
  Py_XDECREF(modname);
  Py_XDECREF(qual);
  PyErr_Clear();
  return out;
}

/* The per-class cache in front of plain_name_compute (borrowed result). */
static PyObject *plain_name(PyTypeObject *tp) {
  boc_state_t *st = boc_state();
  if (st == NULL) {
    PyErr_Clear();
    return NULL;
  }
  if (st->plain_types == NULL && (st->plain_types = PyDict_New()) == NULL) {
    PyErr_Clear();
    return NULL;
  }
  PyObject *hit = PyDict_GetItemWithError(st->plain_types, (PyObject *)tp);
  if (hit != NULL) {
    return hit == Py_None ? NULL : hit;
  }
  PyErr_Clear();
  PyObject *name = plain_name_compute(st, tp);
  if (PyDict_GET_SIZE(st->plain_types) >= 1024) {
    PyDict_Clear(st->plain_types); /* generated classes must not grow it */
  }
  if (PyDict_SetItem(st->plain_types, (PyObject *)tp,
                     name != NULL ? name : Py_None) < 0) {
    PyErr_Clear();
  }
  Py_XDECREF(name); /* the cache holds it */
  return name;
}

static int plain_dict_ok(PyObject *d, int depth);
static int plain_object_ok(PyObject *obj, int depth);

/* A value inside a plain object or dict (borrowed from its container). */
static int plain_value_ok(PyObject *v, int depth) {
  if (PyList_CheckExact(v)) {
    return Py_REFCNT(v) == 1 && can_native(v, depth);
  }
  if (PyDict_CheckExact(v)) {
    return Py_REFCNT(v) == 1 && depth < PLAIN_MAX_DEPTH &&
           plain_dict_ok(v, depth + 1);
  }
  if (can_native(v, depth)) {
    return 1;
  }
  return Py_REFCNT(v) == 1 && depth < PLAIN_MAX_DEPTH &&
         plain_object_ok(v, depth + 1);
}

static int plain_dict_ok(PyObject *d, int depth) {
  Py_ssize_t pos = 0;
  PyObject *k, *v;
  while (PyDict_Next(d, &pos, &k, &v)) {
    if (PyList_CheckExact(k) || !can_native(k, depth) ||
        !plain_value_ok(v, depth)) {
      return 0;
    }
  }
  return 1;
}

/* The instance dict of a plain object (new reference), or NULL (no
 * exception) when obj is not a plain object. */
static PyObject *plain_dict_of(PyObject *obj) {
  if (plain_name(Py_TYPE(obj)) == NULL) {
    return NULL;
  }
  PyObject *d = PyObject_GenericGetDict(obj, NULL);
  if (d == NULL || !PyDict_CheckExact(d)) {
    PyErr_Clear();
    Py_XDECREF(d);
    return NULL;
  }
  return d;
}

static int plain_object_ok(PyObject *obj, int depth) {
  PyObject *d = plain_dict_of(obj);
  if (d == NULL) {
    return 0;
  }
  Py_ssize_t pos = 0;
  PyObject *k, *v;
  int ok = 1;
  while (ok && PyDict_Next(d, &pos, &k, &v)) {
    ok = PyUnicode_CheckExact(k) && plain_value_ok(v, depth);
  }
  Py_DECREF(d);
  return ok;
}

/* Whether obj (the whole value) is written as a plain object or dict. */
static int can_plain(PyObject *obj) {
  if (PyDict_CheckExact(obj)) {
    return plain_dict_ok(obj, 1);
  }
  return plain_object_ok(obj, 1);
}

static int enc_native(encoder_t *e, PyObject *obj);

static int enc_plain_items(encoder_t *e, PyObject *d) {
  Py_ssize_t n = PyDict_GET_SIZE(d);
  if (enc_u64(e, (uint64_t)n) < 0) {
    return -1;
  }
  Py_ssize_t pos = 0, done = 0;
  PyObject *k, *v;
  int rc = 0;
  Py_INCREF(d);
  while (rc == 0 && PyDict_Next(d, &pos, &k, &v)) {
    Py_INCREF(k);
    Py_INCREF(v);
    rc = enc_native(e, k);
    if (rc == 0) {
      rc = enc_native(e, v);
    }
    Py_DECREF(k);
    Py_DECREF(v);
    done++;
  }
  if (rc == 0 && (done != n || PyDict_GET_SIZE(d) != n)) {
    /* a registered type's share() hook changed it under us */
    PyErr_SetString(PyExc_RuntimeError,
                    "dict changed size while it was being sent");
    rc = -1;
  }
  Py_DECREF(d);
  return rc;
}

/* obj passed can_plain (or plain_value_ok): its tag and contents. */
static int enc_plain(encoder_t *e, PyObject *obj) {
  if (PyDict_CheckExact(obj)) {
    return enc_tag(e, TAG_DICT) < 0 ? -1 : enc_plain_items(e, obj);
  }
  PyObject *name = plain_name(Py_TYPE(obj)); /* borrowed, cached */
  PyObject *d = name != NULL ? plain_dict_of(obj) : NULL;
  if (d == NULL) {
    PyErr_SetString(PyExc_RuntimeError,
                    "bocpy: a plain object changed while it was being sent");
    return -1;
  }
  int rc = enc_blob(e, TAG_OBJECT, PyBytes_AS_STRING(name),
                    (size_t)PyBytes_GET_SIZE(name));
  if (rc == 0) {
    rc = enc_plain_items(e, d);
  }
  Py_DECREF(d);
  return rc;
}

/* Snapshot mode: obj (registered type idx) pickled on its own, with no
 * encoding in progress, so that its __reduce__ gives a self-contained copy
 * (reduce_shared raises TypeError there, as outside bocpy).  A type whose
 * pickle needs reduce_shared is shared (moved) as before. */
static int enc_snapshot_copy(encoder_t *e, PyObject *obj, int idx) {
  tls_encoder = e->outer;
  PyObject *bytes = NULL;
  int rc = boc_pickle_dumps(obj, &bytes);
  tls_encoder = e;
  if (rc == 0) {
    rc = enc_blob(e, TAG_PICKLE, PyBytes_AS_STRING(bytes),
                  (size_t)PyBytes_GET_SIZE(bytes));
    Py_DECREF(bytes);
    return rc;
  }
  if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
    return -1;
  }
  PyErr_Clear();
  Py_ssize_t slot = enc_note_shared(e, obj, idx);
  return slot < 0 || enc_tag(e, TAG_SHARED) < 0 ? -1
                                                : enc_u64(e, (uint64_t)slot);
}

static int enc_native(encoder_t *e, PyObject *obj) {
  if (obj == Py_None) {
    return enc_tag(e, TAG_NONE);
  }
  if (PyBool_Check(obj)) {
    return enc_tag(e, obj == Py_True ? TAG_TRUE : TAG_FALSE);
  }
  if (PyLong_CheckExact(obj)) {
    int64_t v = (int64_t)PyLong_AsLongLong(obj); /* checked by can_native */
    return enc_tag(e, TAG_INT) < 0 ? -1 : enc_bytes(e, &v, 8);
  }
  if (PyFloat_CheckExact(obj)) {
    double v = PyFloat_AS_DOUBLE(obj);
    return enc_tag(e, TAG_FLOAT) < 0 ? -1 : enc_bytes(e, &v, 8);
  }
  if (PyUnicode_CheckExact(obj)) {
    Py_ssize_t n = 0;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
    if (s == NULL) {
      return -1;
    }
    return enc_blob(e, TAG_STR, s, (size_t)n);
  }
  if (PyBytes_CheckExact(obj)) {
    return enc_blob(e, TAG_BYTES, PyBytes_AS_STRING(obj),
                    (size_t)PyBytes_GET_SIZE(obj));
  }
  boc_cown_t *c = boc_handle_record(obj);
  if (c != NULL) {
    Py_ssize_t index = enc_note_cown(e, c);
    if (index < 0) {
      return -1;
    }
    return enc_tag(e, TAG_COWN) < 0 ? -1 : enc_u64(e, (uint64_t)index);
  }
  if (PyDict_CheckExact(obj)) {
    return enc_plain(e, obj); /* inside a plain value (plain_value_ok) */
  }
  if (!PyTuple_CheckExact(obj) && !PyList_CheckExact(obj) &&
      ntype_of(obj) < 0) {
    return enc_plain(e, obj); /* a plain object inside a plain value */
  }
  if (!PyTuple_CheckExact(obj) && !PyList_CheckExact(obj)) {
    int idx = ntype_of(obj); /* a registered type: can_native said so */
    if (idx < 0) {
      PyErr_SetString(PyExc_SystemError, "bocpy: lost a registered type");
      return -1;
    }
    if (ntypes[idx].hooks.kind == BOC_NTYPE_PINNED) {
      return pinned_value_error(idx);
    }
    if (e->snapshot) {
      /* A snapshot (a noticeboard entry) is decoded once per reader: store
       * the type's own pickle (a self-contained copy), not a moved
       * resource that only one interpreter could take. */
      return enc_snapshot_copy(e, obj, idx);
    }
    Py_ssize_t slot = enc_note_shared(e, obj, idx);
    if (slot < 0) {
      return -1;
    }
    return enc_tag(e, TAG_SHARED) < 0 ? -1 : enc_u64(e, (uint64_t)slot);
  }
  /* tuple or list (can_native said so) */
  Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
  PyObject **items = PySequence_Fast_ITEMS(obj);
  if (enc_tag(e, PyTuple_CheckExact(obj) ? TAG_TUPLE : TAG_LIST) < 0 ||
      enc_u64(e, (uint64_t)n) < 0) {
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    /* A registered type's share() is plugin code: hold the item, and never
     * trust a list's item array across it. */
    if (PySequence_Fast_GET_SIZE(obj) != n) {
      PyErr_SetString(PyExc_RuntimeError, "list changed size while it was "
                                          "being sent");
      return -1;
    }
    items = PySequence_Fast_ITEMS(obj);
    PyObject *item = Py_NewRef(items[i]);
    int rc = enc_native(e, item);
    Py_DECREF(item);
    if (rc < 0) {
      return -1;
    }
  }
  return 0;
}

/* An exception is pickled through bocpy._errors.carry, which keeps its
 * traceback as text (pickle alone drops it) and survives exceptions that
 * cannot be pickled or rebuilt.  A new reference: the carrier, or obj. */
static PyObject *exception_carrier(PyObject *obj) {
  if (!PyExceptionInstance_Check(obj)) {
    return Py_NewRef(obj);
  }
  PyObject *mod = PyImport_ImportModule("bocpy._errors");
  PyObject *c = mod != NULL ? PyObject_CallMethod(mod, "carry", "O", obj)
                            : NULL;
  Py_XDECREF(mod);
  if (c == NULL) {
    PyErr_Clear(); /* plain pickling still sends type, args and dict */
    return Py_NewRef(obj);
  }
  return c;
}

static int enc_pickled(encoder_t *e, PyObject *obj) {
  PyObject *bytes = NULL;
  PyObject *carried = exception_carrier(obj);
  int failed = boc_pickle_dumps(carried, &bytes) < 0;
  Py_DECREF(carried);
  if (failed) {
    PyObject *cause = PyErr_GetRaisedException();
    if (cause != NULL &&
        !PyObject_TypeCheck(cause, (PyTypeObject *)PyExc_Exception)) {
      /* KeyboardInterrupt, SystemExit: a signal handled while pickling ran
       * Python code; it is not the value's fault, so pass it on. */
      PyErr_SetRaisedException(cause);
      return -1;
    }
    PyErr_Format(PyExc_TypeError,
                 "cannot send a value of type '%.200s' to another "
                 "interpreter: it is neither natively shareable nor "
                 "picklable (%S)",
                 Py_TYPE(obj)->tp_name, cause);
    PyObject *exc = PyErr_GetRaisedException();
    PyException_SetCause(exc, cause); /* steals cause */
    PyErr_SetRaisedException(exc);
    return -1;
  }
  int rc = enc_blob(e, TAG_PICKLE, PyBytes_AS_STRING(bytes),
                    (size_t)PyBytes_GET_SIZE(bytes));
  Py_DECREF(bytes);
  return rc;
}

/* Drops what the encoder holds; with `failed`, the objects shared so far
 * get their resources back (unshare) before their payloads are freed. */
static void enc_release_shared(encoder_t *e, int failed) {
  if (e->nshared == 0) {
    free(e->shared_objs);
    if (failed) {
      free(e->shared);
    }
    return;
  }
  PyObject *exc = PyErr_GetRaisedException();
  for (uint32_t i = 0; i < e->nshared; i++) {
    if (failed) {
      const boc_ntype_hooks_t *h = &ntypes[e->shared[i].type].hooks;
      if (h->unshare != NULL) {
        h->unshare(e->shared_objs[i], e->shared[i].data);
        if (PyErr_Occurred()) {
          PyErr_WriteUnraisable(e->shared_objs[i]);
        }
      }
      h->free(e->shared[i].data);
    }
    Py_DECREF(e->shared_objs[i]);
  }
  free(e->shared_objs);
  if (failed) {
    free(e->shared);
  }
  PyErr_SetRaisedException(exc);
}

static void enc_discard(encoder_t *e) {
  for (uint32_t i = 0; i < e->ncowns; i++) {
    boc_cown_decref(e->cowns[i]);
  }
  free(e->cowns);
  free(e->buf);
  enc_release_shared(e, 1);
}

static boc_payload_t *payload_encode(PyObject *obj, int snapshot);

boc_payload_t *boc_payload_encode(PyObject *obj) {
  return payload_encode(obj, 0);
}

boc_payload_t *boc_payload_encode_snapshot(PyObject *obj) {
  boc_payload_t *p = payload_encode(obj, 1);
  if (p == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
    /* A shareable type nested in a pickled container has no plain pickle
     * (its __reduce__ needs reduce_shared): encode as usual, moving it. */
    PyObject *exc = PyErr_GetRaisedException();
    p = payload_encode(obj, 0);
    Py_DECREF(exc); /* report the usual encoding's error, if any */
  }
  return p;
}

static boc_payload_t *payload_encode(PyObject *obj, int snapshot) {
  encoder_t e = {0};
  e.snapshot = snapshot;
  /* The buffer starts with room for the payload's header, so that it
   * becomes the payload itself (no copy of the data at the end). */
  if (enc_reserve(&e, offsetof(boc_payload_t, data) + 88) < 0) {
    return NULL;
  }
  e.len = offsetof(boc_payload_t, data);
  e.outer = tls_encoder;
  tls_encoder = &e;
  int rc;
  if (can_native(obj, 0)) {
    rc = enc_native(&e, obj);
  } else if (!snapshot && can_plain(obj)) {
    rc = enc_plain(&e, obj);
  } else {
    rc = enc_pickled(&e, obj);
  }
  tls_encoder = e.outer;
  if (rc < 0) {
    enc_discard(&e);
    return NULL;
  }
  /* A large buffer becomes the payload as it is (shrunk in place: no copy
   * of the data); a small one is copied into an exact allocation, which
   * costs less than realloc's bookkeeping. */
  boc_payload_t *p;
  if (e.len >= 4096) {
    p = realloc(e.buf, e.len);
    if (p == NULL) {
      p = (boc_payload_t *)e.buf;
    }
  } else {
    p = malloc(e.len);
    if (p == NULL) {
      enc_discard(&e);
      PyErr_NoMemory();
      return NULL;
    }
    memcpy(p, e.buf, e.len);
    free(e.buf);
  }
  e.buf = NULL;
  p->size = e.len - offsetof(boc_payload_t, data);
  p->ncowns = e.ncowns;
  p->nshared = e.nshared;
  p->pid = boc_process_id();
  p->cowns = e.cowns; /* ownership of the references moves to p */
  p->shared = e.shared; /* and of the shared payloads */
  enc_release_shared(&e, 0);
  return p;
}

int boc_payload_cheap(PyObject *obj) {
  if (obj == Py_None || PyBool_Check(obj) || PyFloat_CheckExact(obj)) {
    return 1;
  }
  if (PyLong_CheckExact(obj)) {
    int overflow = 0;
    (void)PyLong_AsLongLongAndOverflow(obj, &overflow);
    return overflow == 0;
  }
  if (PyUnicode_CheckExact(obj)) {
    return PyUnicode_GET_LENGTH(obj) <= BOC_CHEAP_MAX;
  }
  if (PyBytes_CheckExact(obj)) {
    return PyBytes_GET_SIZE(obj) <= BOC_CHEAP_MAX;
  }
  if ((PyTuple_CheckExact(obj) || PyList_CheckExact(obj)) &&
      PySequence_Fast_GET_SIZE(obj) <= BOC_CHEAP_ITEMS) {
    /* A short native container (e.g. [count, next_cown]): writing it
     * costs less than a request to the worker it would rest in. */
    return can_native(obj, 0);
  }
  return 0;
}

Py_ssize_t boc_transport_note_cown(boc_cown_t *c) {
  if (tls_encoder == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "cown handles can only be pickled by bocpy when a value "
                    "is sent to another interpreter");
    return -1;
  }
  return enc_note_cown(tls_encoder, c);
}

/* ---- decoder ------------------------------------------------------------ */

typedef struct decoder {
  const boc_payload_t *p;
  size_t pos;
  PyObject **shared; /* strong: objects rebuilt so far, by slot (lazy) */
} decoder_t;

/* This interpreter's type object for registry entry idx (new reference),
 * importing the type's module when it has not registered here yet; NULL
 * with TypeError (or the import error) when that does not help. */
static PyObject *local_type(uint32_t idx) {
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return NULL;
  }
  for (int attempt = 0;; attempt++) {
    if (st->ntype_list != NULL &&
        (Py_ssize_t)idx < PyList_GET_SIZE(st->ntype_list)) {
      PyObject *t = PyList_GET_ITEM(st->ntype_list, (Py_ssize_t)idx);
      if (t != Py_None) {
        return Py_NewRef(t);
      }
    }
    if (attempt > 0) {
      break;
    }
    PyObject *mod = PyImport_ImportModule(ntypes[idx].module);
    if (mod == NULL) {
      return NULL;
    }
    Py_DECREF(mod);
  }
  PyErr_Format(PyExc_TypeError,
               "cannot rebuild a value of type '%s' in this interpreter: "
               "importing '%s' did not register the type",
               ntypes[idx].name, ntypes[idx].module);
  return NULL;
}

/* The object in slot of d's payload: rebuilt on first use, then the same
 * object for every later reference in this decoding.  New reference. */
static PyObject *dec_shared(decoder_t *d, uint64_t slot) {
  if (slot >= d->p->nshared) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy payload: bad shared index");
    return NULL;
  }
  if (d->shared == NULL) {
    d->shared = calloc(d->p->nshared, sizeof(*d->shared));
    if (d->shared == NULL) {
      return PyErr_NoMemory();
    }
  }
  if (d->shared[slot] != NULL) {
    return Py_NewRef(d->shared[slot]);
  }
  const boc_shared_item_t *item = &d->p->shared[slot];
  PyObject *type = local_type(item->type);
  if (type == NULL) {
    return NULL;
  }
  PyObject *obj =
      ntypes[item->type].hooks.rebuild((PyTypeObject *)type, item->data);
  Py_DECREF(type);
  if (obj == NULL) {
    if (!PyErr_Occurred()) {
      PyErr_Format(PyExc_SystemError,
                   "the rebuild hook of '%s' failed without setting an "
                   "exception",
                   ntypes[item->type].name);
    }
    return NULL;
  }
  d->shared[slot] = Py_NewRef(obj);
  return obj;
}

static int dec_take(decoder_t *d, void *out, size_t n) {
  if (d->pos + n > d->p->size) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy payload is truncated");
    return -1;
  }
  memcpy(out, d->p->data + d->pos, n);
  d->pos += n;
  return 0;
}

static PyObject *dec_value(decoder_t *d);

/* n key/value pairs into dict; intern: keys are attribute names. */
static int dec_items(decoder_t *d, PyObject *dict, uint64_t n, int intern) {
  for (uint64_t i = 0; i < n; i++) {
    PyObject *k = dec_value(d);
    if (k == NULL) {
      return -1;
    }
    if (intern && PyUnicode_CheckExact(k)) {
      PyUnicode_InternInPlace(&k);
    }
    PyObject *v = dec_value(d);
    int rc = v != NULL ? PyDict_SetItem(dict, k, v) : -1;
    Py_DECREF(k);
    Py_XDECREF(v);
    if (rc < 0) {
      return -1;
    }
  }
  return 0;
}

/* module.qualname in this interpreter (new reference), as pickle's
 * find_class does it: import the module, follow the dotted name. */
static PyObject *find_class(const char *name, size_t size) {
  const char *sep = memchr(name, '\0', size);
  if (sep == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy payload: bad class name");
    return NULL;
  }
  PyObject *modname = PyUnicode_DecodeUTF8(name, sep - name, NULL);
  if (modname == NULL) {
    return NULL;
  }
  PyObject *obj = PyImport_GetModule(modname);
  if (obj == NULL && !PyErr_Occurred()) {
    obj = PyImport_Import(modname);
  }
  Py_DECREF(modname);
  const char *q = sep + 1, *end = name + size;
  while (obj != NULL && q <= end) {
    const char *dot = memchr(q, '.', (size_t)(end - q));
    const char *stop = dot != NULL ? dot : end;
    PyObject *part = PyUnicode_DecodeUTF8(q, stop - q, NULL);
    PyObject *next = part != NULL ? PyObject_GetAttr(obj, part) : NULL;
    Py_XDECREF(part);
    Py_SETREF(obj, next);
    q = stop + 1;
  }
  return obj;
}

/* find_class behind a per-interpreter cache for classes named at the top
 * of their module (most are): the entry is trusted only while the module's
 * dict still maps the name to the same class (a re-run script or a reload
 * defines a new one).  New reference, or NULL with an exception. */
static PyObject *cached_class(const char *name, size_t size) {
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return NULL;
  }
  if (st->plain_classes == NULL && (st->plain_classes = PyDict_New()) == NULL) {
    return NULL;
  }
  PyObject *key = PyBytes_FromStringAndSize(name, (Py_ssize_t)size);
  if (key == NULL) {
    return NULL;
  }
  PyObject *entry = PyDict_GetItemWithError(st->plain_classes, key);
  if (entry != NULL) {
    PyObject *now = PyDict_GetItemWithError(PyTuple_GET_ITEM(entry, 1),
                                            PyTuple_GET_ITEM(entry, 2));
    if (now == PyTuple_GET_ITEM(entry, 0)) {
      Py_DECREF(key);
      return Py_NewRef(now);
    }
  }
  PyErr_Clear();
  PyObject *cls = find_class(name, size);
  const char *sep = memchr(name, '\0', size);
  if (cls != NULL && sep != NULL &&
      memchr(sep + 1, '.', size - (size_t)(sep + 1 - name)) == NULL) {
    PyObject *modname = PyUnicode_DecodeUTF8(name, sep - name, NULL);
    PyObject *mod = modname != NULL ? PyImport_GetModule(modname) : NULL;
    PyObject *md = mod != NULL && PyModule_Check(mod) ? PyModule_GetDict(mod)
                                                      : NULL;
    PyObject *qual = PyUnicode_DecodeUTF8(sep + 1, name + size - (sep + 1),
                                          NULL);
    if (md != NULL && qual != NULL) {
      if (PyDict_GET_SIZE(st->plain_classes) >= 1024) {
        PyDict_Clear(st->plain_classes);
      }
      PyObject *t = PyTuple_Pack(3, cls, md, qual);
      if (t == NULL || PyDict_SetItem(st->plain_classes, key, t) < 0) {
        PyErr_Clear();
      }
      Py_XDECREF(t);
    }
    PyErr_Clear();
    Py_XDECREF(qual);
    Py_XDECREF(mod);
    Py_XDECREF(modname);
  }
  Py_DECREF(key);
  return cls;
}

static PyObject *dec_object(decoder_t *d) {
  uint64_t n;
  if (dec_take(d, &n, 8) < 0) {
    return NULL;
  }
  if (n > d->p->size - d->pos) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy payload is truncated");
    return NULL;
  }
  const char *name = (const char *)d->p->data + d->pos;
  d->pos += n;
  PyObject *cls = cached_class(name, (size_t)n);
  if (cls == NULL) {
    return NULL;
  }
  if (!PyType_Check(cls) || plain_name((PyTypeObject *)cls) == NULL) {
    PyErr_Format(PyExc_TypeError,
                 "cannot rebuild a value of class '%s' here: the class found "
                 "under that name in this interpreter is not the plain class "
                 "it was sent as",
                 memchr(name, '\0', (size_t)n) != NULL
                     ? (const char *)memchr(name, '\0', (size_t)n) + 1
                     : name);
    Py_DECREF(cls);
    return NULL;
  }
  PyTypeObject *tp = (PyTypeObject *)cls;
  PyObject *empty = PyTuple_New(0);
  PyObject *obj = empty != NULL ? tp->tp_new(tp, empty, NULL) : NULL;
  Py_XDECREF(empty);
  Py_DECREF(cls);
  PyObject *dict = obj != NULL ? PyObject_GenericGetDict(obj, NULL) : NULL;
  int rc = dict != NULL && dec_take(d, &n, 8) == 0 ? dec_items(d, dict, n, 1)
                                                   : -1;
  Py_XDECREF(dict);
  if (rc < 0) {
    Py_XDECREF(obj);
    return NULL;
  }
  return obj;
}

static PyObject *dec_value(decoder_t *d) {
  unsigned char tag;
  if (dec_take(d, &tag, 1) < 0) {
    return NULL;
  }
  uint64_t n;
  switch (tag) {
  case TAG_NONE:
    Py_RETURN_NONE;
  case TAG_TRUE:
    Py_RETURN_TRUE;
  case TAG_FALSE:
    Py_RETURN_FALSE;
  case TAG_INT: {
    int64_t v;
    return dec_take(d, &v, 8) < 0 ? NULL : PyLong_FromLongLong(v);
  }
  case TAG_FLOAT: {
    double v;
    return dec_take(d, &v, 8) < 0 ? NULL : PyFloat_FromDouble(v);
  }
  case TAG_STR:
  case TAG_BYTES:
  case TAG_PICKLE: {
    if (dec_take(d, &n, 8) < 0) {
      return NULL;
    }
    if (n > d->p->size - d->pos) {
      PyErr_SetString(PyExc_RuntimeError, "bocpy payload is truncated");
      return NULL;
    }
    const char *s = (const char *)d->p->data + d->pos;
    d->pos += n;
    if (tag == TAG_STR) {
      return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL);
    }
    if (tag == TAG_BYTES) {
      return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
    }
    return boc_pickle_loads(s, (Py_ssize_t)n);
  }
  case TAG_COWN: {
    if (dec_take(d, &n, 8) < 0) {
      return NULL;
    }
    if (n >= d->p->ncowns) {
      PyErr_SetString(PyExc_RuntimeError, "bocpy payload: bad cown index");
      return NULL;
    }
    return boc_handle_new(d->p->cowns[n]);
  }
  case TAG_SHARED:
    return dec_take(d, &n, 8) < 0 ? NULL : dec_shared(d, n);
  case TAG_OBJECT:
    return dec_object(d);
  case TAG_DICT: {
    if (dec_take(d, &n, 8) < 0) {
      return NULL;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL || dec_items(d, dict, n, 0) < 0) {
      Py_XDECREF(dict);
      return NULL;
    }
    return dict;
  }
  case TAG_TUPLE:
  case TAG_LIST: {
    if (dec_take(d, &n, 8) < 0) {
      return NULL;
    }
    PyObject *seq = tag == TAG_TUPLE ? PyTuple_New((Py_ssize_t)n)
                                     : PyList_New((Py_ssize_t)n);
    if (seq == NULL) {
      return NULL;
    }
    for (uint64_t i = 0; i < n; i++) {
      PyObject *item = dec_value(d);
      if (item == NULL) {
        Py_DECREF(seq);
        return NULL;
      }
      if (tag == TAG_TUPLE) {
        PyTuple_SET_ITEM(seq, (Py_ssize_t)i, item);
      } else {
        PyList_SET_ITEM(seq, (Py_ssize_t)i, item);
      }
    }
    return seq;
  }
  default:
    PyErr_Format(PyExc_RuntimeError, "bocpy payload: unknown tag 0x%02x",
                 tag);
    return NULL;
  }
}

PyObject *boc_payload_decode(const boc_payload_t *p) {
  if (p->pid != boc_process_id()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "a bocpy value cannot be used in a forked child process");
    return NULL;
  }
  decoder_t *outer = tls_decoding;
  decoder_t d = {p, 0, NULL};
  tls_decoding = &d;
  PyObject *obj = dec_value(&d);
  tls_decoding = outer;
  if (d.shared != NULL) {
    for (uint32_t i = 0; i < p->nshared; i++) {
      Py_XDECREF(d.shared[i]);
    }
    free(d.shared);
  }
  return obj;
}

boc_cown_t *boc_transport_cown_at(Py_ssize_t index) {
  const boc_payload_t *p = tls_decoding != NULL ? tls_decoding->p : NULL;
  if (p == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "cown references can only be unpickled by bocpy");
    return NULL;
  }
  if (index < 0 || (uint64_t)index >= p->ncowns) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy payload: bad cown index");
    return NULL;
  }
  return p->cowns[index];
}

void boc_payload_free(boc_payload_t *p) {
  if (p == NULL) {
    return;
  }
  for (uint32_t i = 0; i < p->ncowns; i++) {
    boc_cown_decref(p->cowns[i]);
  }
  for (uint32_t i = 0; i < p->nshared; i++) {
    ntypes[p->shared[i].type].hooks.free(p->shared[i].data);
  }
  free(p->cowns);
  free(p->shared);
  free(p);
}

/* ---- registered native types ----------------------------------------------- */

static int hooks_equal(const boc_ntype_hooks_t *a, const boc_ntype_hooks_t *b) {
  return a->kind == b->kind && a->share == b->share &&
         a->rebuild == b->rebuild && a->free == b->free &&
         a->unshare == b->unshare && a->acquire == b->acquire &&
         a->release == b->release && a->destroy == b->destroy;
}

static char *join_names(const char *module, const char *qualname) {
  size_t m = strlen(module), q = strlen(qualname);
  char *s = malloc(m + 1 + q + 1);
  if (s != NULL) {
    memcpy(s, module, m);
    s[m] = '.';
    memcpy(s + m + 1, qualname, q + 1);
  }
  return s;
}

/* The type's "<module>.<qualname>" and "<module>" (malloc'd), or -1. */
static int type_names(PyTypeObject *type, char **name, char **module) {
  *name = *module = NULL;
  PyObject *mod = PyObject_GetAttrString((PyObject *)type, "__module__");
  PyObject *qual = mod != NULL ? PyType_GetQualName(type) : NULL;
  if (qual == NULL) {
    Py_XDECREF(mod);
    return -1;
  }
  int rc = -1;
  if (!PyUnicode_Check(mod) || !PyUnicode_Check(qual)) {
    PyErr_SetString(PyExc_TypeError,
                    "a registered type needs a str __module__ and "
                    "__qualname__");
    goto done;
  }
  const char *m = PyUnicode_AsUTF8(mod);
  const char *q = m != NULL ? PyUnicode_AsUTF8(qual) : NULL;
  if (q == NULL) {
    goto done;
  }
  *name = join_names(m, q);
  *module = strdup(m);
  if (*name == NULL || *module == NULL) {
    free(*name);
    free(*module);
    *name = *module = NULL;
    PyErr_NoMemory();
    goto done;
  }
  rc = 0;
done:
  Py_DECREF(mod);
  Py_DECREF(qual);
  return rc;
}

int boc_ntype_register(PyTypeObject *type, const boc_ntype_hooks_t *hooks) {
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return -1;
  }
  if (st->ntype_map == NULL || st->ntype_list == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy._core is not initialised");
    return -1;
  }
  char *name, *module;
  if (type_names(type, &name, &module) < 0) {
    return -1;
  }
  boc_once(&ntypes_once, ntypes_init);
  boc_mutex_lock(&ntypes_mu);
  /* relaxed: registrations are serialised by the mutex we hold. */
  uint32_t n = atomic_load_explicit(&ntypes_count, BOC_RELAXED);
  int idx = -1, clash = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (strcmp(ntypes[i].name, name) == 0) {
      idx = (int)i;
      clash = !hooks_equal(&ntypes[i].hooks, hooks);
      break;
    }
  }
  int added = 0;
  if (idx < 0 && n < BOC_NTYPES_MAX) {
    ntypes[n].name = name;
    ntypes[n].module = module;
    ntypes[n].hooks = *hooks;
    idx = (int)n;
    added = 1;
    /* release: publishes the entry filled in above to lock-free readers. */
    atomic_store_explicit(&ntypes_count, n + 1, BOC_RELEASE);
  }
  boc_mutex_unlock(&ntypes_mu);
  if (clash || idx < 0) {
    if (clash) {
      PyErr_Format(PyExc_ValueError,
                   "type '%s' is already registered with bocpy with "
                   "different callbacks (or as another kind of type)",
                   name);
    } else {
      PyErr_Format(PyExc_RuntimeError,
                   "cannot register type '%s': bocpy's registry is full "
                   "(%d types)",
                   name, BOC_NTYPES_MAX);
    }
    free(name);
    free(module);
    return -1;
  }
  if (!added) {
    free(name);
    free(module);
  }
  /* This interpreter's maps: type -> index and index -> type. */
  PyObject *value = PyLong_FromLong(idx);
  if (value == NULL ||
      PyDict_SetItem(st->ntype_map, (PyObject *)type, value) < 0) {
    Py_XDECREF(value);
    return -1;
  }
  Py_DECREF(value);
  while (PyList_GET_SIZE(st->ntype_list) <= idx) {
    if (PyList_Append(st->ntype_list, Py_None) < 0) {
      return -1;
    }
  }
  /* PyList_SetItem steals the new reference. */
  return PyList_SetItem(st->ntype_list, idx, Py_NewRef((PyObject *)type));
}

PyObject *boc_ntype_reduce(PyObject *obj) {
  int idx = ntype_of(obj);
  if (idx < 0) {
    PyErr_Format(PyExc_TypeError,
                 "'%.200s' is not registered with bocpy as a shareable type",
                 Py_TYPE(obj)->tp_name);
    return NULL;
  }
  if (ntypes[idx].hooks.kind == BOC_NTYPE_PINNED) {
    pinned_value_error(idx);
    return NULL;
  }
  if (tls_encoder == NULL || tls_encoder->snapshot) {
    /* (a snapshot: the type's __reduce__ falls back to a plain copy) */
    PyErr_Format(PyExc_TypeError,
                 "values of type '%s' can only be pickled by bocpy when they "
                 "are sent to another interpreter",
                 ntypes[idx].name);
    return NULL;
  }
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return NULL;
  }
  Py_ssize_t slot = enc_note_shared(tls_encoder, obj, idx);
  if (slot < 0) {
    return NULL;
  }
  return Py_BuildValue("O(n)", st->shared_ref, slot);
}

PyObject *boc_transport_shared_at(Py_ssize_t slot) {
  if (tls_decoding == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "shared-object references can only be unpickled by "
                    "bocpy");
    return NULL;
  }
  if (slot < 0) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy payload: bad shared index");
    return NULL;
  }
  return dec_shared(tls_decoding, (uint64_t)slot);
}

int32_t boc_ntype_pinned_of(PyObject *value) {
  if (value == NULL) {
    return 0;
  }
  int idx = ntype_of(value);
  return idx >= 0 && ntypes[idx].hooks.kind == BOC_NTYPE_PINNED ? idx + 1 : 0;
}

static int pin_hook(int32_t pin, PyObject *value, int release) {
  if (pin <= 0 || value == NULL) {
    return 0;
  }
  const ntype_t *t = &ntypes[pin - 1];
  boc_pin_hook_fn fn = release ? t->hooks.release : t->hooks.acquire;
  if (fn == NULL || fn(value) == 0) {
    return 0;
  }
  if (!PyErr_Occurred()) {
    PyErr_Format(PyExc_SystemError,
                 "the %s hook of '%s' failed without setting an exception",
                 release ? "release" : "acquire", t->name);
  }
  return -1;
}

int boc_ntype_pinned_acquire(int32_t pin, PyObject *value) {
  return pin_hook(pin, value, 0);
}

int boc_ntype_pinned_release(int32_t pin, PyObject *value) {
  return pin_hook(pin, value, 1);
}

void boc_ntype_pinned_destroy(int32_t pin, PyObject *value) {
  if (pin <= 0 || value == NULL || ntypes[pin - 1].hooks.destroy == NULL) {
    return;
  }
  PyObject *exc = PyErr_GetRaisedException();
  ntypes[pin - 1].hooks.destroy(value);
  if (PyErr_Occurred()) {
    PyErr_WriteUnraisable(value);
  }
  PyErr_SetRaisedException(exc);
}

PyObject *boc_ntype_snapshot(void) {
  /* acquire: pairs with the release that published each entry. */
  uint32_t n = atomic_load_explicit(&ntypes_count, BOC_ACQUIRE);
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (uint32_t i = 0; list != NULL && i < n; i++) {
    PyObject *item = Py_BuildValue(
        "(ss)", ntypes[i].name,
        ntypes[i].hooks.kind == BOC_NTYPE_PINNED ? "pinned" : "shareable");
    if (item == NULL) {
      Py_CLEAR(list);
      break;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, item);
  }
  return list;
}
