/* transport.h - moving values between interpreters.
 *
 * A payload is an interpreter-neutral encoding of a Python value in raw
 * memory: any thread may hold or free it, and decoding it never depends on
 * the interpreter that produced it still existing.  Every cown value,
 * capture, behavior result, message and noticeboard entry travels this way.
 *
 * Encoding: None, bool, int (64-bit), float, str, bytes, tuples and lists of
 * those, and cown handles are written natively; anything else is pickled
 * (protocol 5).  A cown handle anywhere in the value, natively or inside a
 * pickle, becomes an index into the payload's table of cown references, each
 * holding a strong reference for the payload's lifetime; so a payload may be
 * decoded any number of times, or freed undecoded, without leaking or
 * dangling.  PinnedCown values are never encoded (see pinned cowns).
 * Objects of registered shareable types (below) are written natively, by
 * the plugin's share/rebuild hooks, also when nested in pickled containers.
 */
#ifndef BOCPY_CORE_TRANSPORT_H
#define BOCPY_CORE_TRANSPORT_H

#include <Python.h>

#include "value/cown.h"

/* An object of a registered shareable type, as share() left it: the index
 * of its type in the process-wide registry and the plugin's opaque payload,
 * owned by the boc_payload (freed with the type's free hook). */
typedef struct boc_shared_item {
  uint32_t type;
  void *data;
} boc_shared_item_t;

typedef struct boc_payload {
  size_t size;        /* bytes used in data */
  uint32_t ncowns;    /* entries in cowns */
  uint32_t nshared;   /* entries in shared */
  int64_t pid;        /* producing process (payloads never cross fork) */
  boc_cown_t **cowns; /* strong references, or NULL */
  boc_shared_item_t *shared; /* shareable-type objects, or NULL */
  unsigned char data[];
} boc_payload_t;

/* Encodes obj (GIL held).  NULL with an exception on failure: TypeError
 * naming the type for values that cannot travel (pickling errors are
 * chained as the cause). */
boc_payload_t *boc_payload_encode(PyObject *obj);
/* The same for a value decoded once per reader (noticeboard entries):
 * objects of registered shareable types are stored as their own pickle (a
 * self-contained copy, the object stays with the caller) when their
 * __reduce__ can make one without reduce_shared, else shared as usual. */
boc_payload_t *boc_payload_encode_snapshot(PyObject *obj);
/* Decodes a new object in the current interpreter (GIL held); the payload is
 * unchanged and may be decoded again. */
PyObject *boc_payload_decode(const boc_payload_t *p);
/* Whether obj is cheap to encode (None, bool, an int of 64 bits, float,
 * str or bytes of at most BOC_CHEAP_MAX characters/bytes, or a tuple or
 * list of at most BOC_CHEAP_ITEMS items written natively): such values are
 * encoded at release rather than kept live in a worker.  Never raises. */
#define BOC_CHEAP_MAX 1024
#define BOC_CHEAP_ITEMS 16
int boc_payload_cheap(PyObject *obj);
/* Frees a payload and drops its cown references; any thread, no GIL. */
void boc_payload_free(boc_payload_t *p);

/* Called by the handle types' __reduce__: records c in the payload being
 * encoded on this thread and returns its index, or -1 with TypeError when
 * no bocpy encoding is in progress (a handle pickled by user code). */
Py_ssize_t boc_transport_note_cown(boc_cown_t *c);
/* Called by the unpickling hook: the cown at index in the payload being
 * decoded on this thread (borrowed), or NULL with an error. */
boc_cown_t *boc_transport_cown_at(Py_ssize_t index);

/* ---- registered native types (plugins, through the C ABI) -------------------
 * A plugin registers a type, in every interpreter, as
 *   shareable: its objects travel natively as share() -> opaque payload ->
 *              rebuild(), with no pickling and no Python-level call;
 *   pinned:    its objects may only live in a PinnedCown; encoding one raises
 *              TypeError naming PinnedCown; optional hooks run when a
 *              behavior acquires / releases the PinnedCown holding one, and
 *              when that PinnedCown dies.
 * The registry is process-global and append-only, keyed by the type's
 * qualified name (type objects are per interpreter); each interpreter's
 * module state maps its own type objects to registry indexes. */
typedef void *(*boc_share_fn)(PyObject *obj);
typedef PyObject *(*boc_rebuild_fn)(PyTypeObject *type, void *data);
typedef void (*boc_free_fn)(void *data);
typedef void (*boc_unshare_fn)(PyObject *obj, void *data);
typedef int (*boc_pin_hook_fn)(PyObject *value);
typedef void (*boc_pin_destroy_fn)(PyObject *value);

enum { BOC_NTYPE_SHAREABLE = 1, BOC_NTYPE_PINNED = 2 };

typedef struct boc_ntype_hooks {
  int kind; /* BOC_NTYPE_* */
  boc_share_fn share;       /* shareable: required */
  boc_rebuild_fn rebuild;   /* shareable: required */
  boc_free_fn free;         /* shareable: required; any thread, no GIL */
  boc_unshare_fn unshare;   /* shareable: optional */
  boc_pin_hook_fn acquire;  /* pinned: optional */
  boc_pin_hook_fn release;  /* pinned: optional */
  boc_pin_destroy_fn destroy; /* pinned: optional */
} boc_ntype_hooks_t;

/* Most registered types in one process. */
#define BOC_NTYPES_MAX 256

/* Registers type (this interpreter's type object) with hooks, GIL held.
 * Same name and hooks again: no-op.  -1 with ValueError (the name is
 * registered with other hooks or another kind), RuntimeError (registry
 * full) or MemoryError. */
int boc_ntype_register(PyTypeObject *type, const boc_ntype_hooks_t *hooks);

/* The __reduce__ of a registered shareable type: notes obj in the encoding
 * in progress on this thread and returns (_shared_ref, (slot,)).  NULL with
 * TypeError when obj's type is not registered, is pinned, or no bocpy
 * encoding is in progress. */
PyObject *boc_ntype_reduce(PyObject *obj);
/* The unpickling side: the object at slot of the payload being decoded on
 * this thread (new reference; rebuilt once per decoding). */
PyObject *boc_transport_shared_at(Py_ssize_t slot);

/* The registry as a new list of (name, "shareable" | "pinned") tuples. */
PyObject *boc_ntype_snapshot(void);

/* 1 + the registry index of value's type when it is a registered pinned
 * type, else 0 (GIL held, no exception set; never fails).  A PinnedCown
 * records it with its value, so that its hooks need no lookup later (its
 * destroy hook may run while the interpreter is finalising). */
int32_t boc_ntype_pinned_of(PyObject *value);
/* The hooks for a PinnedCown's value, `pin` as recorded above (0: none);
 * main interpreter, GIL held.  acquire/release return 0 (also when there is
 * no such hook), or -1 with the hook's exception.  destroy never fails
 * (errors are reported as unraisable) and keeps any exception already set. */
int boc_ntype_pinned_acquire(int32_t pin, PyObject *value);
int boc_ntype_pinned_release(int32_t pin, PyObject *value);
void boc_ntype_pinned_destroy(int32_t pin, PyObject *value);

#endif /* BOCPY_CORE_TRANSPORT_H */
