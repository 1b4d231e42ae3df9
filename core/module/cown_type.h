/* cown_type.h - the Python handle types Cown and PinnedCown. */
#ifndef BOCPY_CORE_COWN_TYPE_H
#define BOCPY_CORE_COWN_TYPE_H

#include <Python.h>

#include "value/state.h"

/* Creates the two heap types for this interpreter's module state. */
int boc_cown_types_init(PyObject *module, boc_state_t *st);

/* Main interpreter: gives back every cown that reading .value after
 * wait()/quiesce() borrowed, so behaviors can use them again. */
int boc_release_borrowed(boc_state_t *st);

/* Main interpreter, from Python's full collection: gives back the borrowed
 * cowns whose value mentions cowns and of which no part is referenced from
 * outside the value (no object main holds becomes stale), so that the cown
 * cycle collector sees their references (cown_type.c).
 * 0, or -1 with an exception. */
int boc_release_borrowed_unshared(boc_state_t *st);

/* Makes sure the calling interpreter holds the cown of handle self, the way
 * .value does: already held here, or (main interpreter, nothing in flight)
 * borrowed until the next schedule.  0, or -1 with RuntimeError. */
int boc_handle_ensure_owned(PyObject *self);

/* Main interpreter, after wait()/quiesce(): -1 with RuntimeError naming the
 * cowns whose borrowed value was changed through a stale object after the
 * cown was scheduled again (that change was lost); else 0. */
int boc_check_stale(boc_state_t *st);

#endif /* BOCPY_CORE_COWN_TYPE_H */
