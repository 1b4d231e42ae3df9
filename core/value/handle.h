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
/* The tp_dealloc of both handle types. */
void boc_handle_dealloc(PyObject *self);

#endif /* BOCPY_CORE_HANDLE_H */
