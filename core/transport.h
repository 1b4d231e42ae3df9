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
 */
#ifndef BOCPY_CORE_TRANSPORT_H
#define BOCPY_CORE_TRANSPORT_H

#include <Python.h>

#include "cown.h"

typedef struct boc_payload {
  size_t size;        /* bytes used in data */
  uint32_t ncowns;    /* entries in cowns */
  int64_t pid;        /* producing process (payloads never cross fork) */
  boc_cown_t **cowns; /* strong references, or NULL */
  unsigned char data[];
} boc_payload_t;

/* Encodes obj (GIL held).  NULL with an exception on failure: TypeError
 * naming the type for values that cannot travel (pickling errors are
 * chained as the cause). */
boc_payload_t *boc_payload_encode(PyObject *obj);
/* Decodes a new object in the current interpreter (GIL held); the payload is
 * unchanged and may be decoded again. */
PyObject *boc_payload_decode(const boc_payload_t *p);
/* Frees a payload and drops its cown references; any thread, no GIL. */
void boc_payload_free(boc_payload_t *p);
/* Whether the payload is exactly the encoding of None. */
int boc_payload_is_none(const boc_payload_t *p);

/* Per-interpreter hooks the transport needs, set by the module's exec slot:
 * making a handle object for a cown record, recognising one, and the pickle
 * functions of this interpreter.  Defined in module.c. */
PyObject *boc_handle_new(boc_cown_t *c);      /* new reference */
boc_cown_t *boc_handle_record(PyObject *obj); /* borrowed; NULL if not one */
int boc_pickle_dumps(PyObject *obj, PyObject **bytes_out);
PyObject *boc_pickle_loads(const char *data, Py_ssize_t size);

/* Called by the handle types' __reduce__: records c in the payload being
 * encoded on this thread and returns its index, or -1 with TypeError when
 * no bocpy encoding is in progress (a handle pickled by user code). */
Py_ssize_t boc_transport_note_cown(boc_cown_t *c);
/* Called by the unpickling hook: the cown at index in the payload being
 * decoded on this thread (borrowed), or NULL with an error. */
boc_cown_t *boc_transport_cown_at(Py_ssize_t index);

#endif /* BOCPY_CORE_TRANSPORT_H */
