/* handle.h - cown handle objects: the Cown and PinnedCown instances.
 *
 * A handle is a small object holding a strong reference to a cown record;
 * any number of handles in any interpreters may refer to one record.  Both
 * handle types (module/cown_type.c) use boc_handle_dealloc, which is how C
 * code recognises a handle from any interpreter without looking up that
 * interpreter's module state.
 */
#ifndef BOCPY_CORE_HANDLE_H
#define BOCPY_CORE_HANDLE_H

#include <Python.h>

#include "value/cown.h"

typedef struct {
  PyObject_HEAD
  boc_cown_t *rec; /* strong reference */
} boc_handle_t;

/* A new handle for c in the current interpreter (Cown or PinnedCown after
 * c's kind), or NULL with an exception. */
PyObject *boc_handle_new(boc_cown_t *c);
/* obj's cown record (borrowed), or NULL when obj is not a handle. */
boc_cown_t *boc_handle_record(PyObject *obj);
/* The tp_dealloc of both handle types.  On the main interpreter, the last
 * handle of a cown main borrowed (read .value after wait()) gives the
 * borrow up: the record dies here and its value with it, as a plain object
 * would at `del` (docs/reliability.md, "Exit and finalisation"). */
void boc_handle_dealloc(PyObject *self);

/* Main's borrowed cowns: st->borrowed maps PyLong(record address) to a
 * capsule of this name holding one record reference. */
#define BOC_BORROWED_CAPSULE "bocpy.borrowed"
struct boc_state;
/* Remembers that main borrowed c (takes a new reference to it); a no-op
 * when it is already remembered.  0, or -1 with an exception. */
int boc_borrowed_add(struct boc_state *st, boc_cown_t *c);

#endif /* BOCPY_CORE_HANDLE_H */
