/* when.h - the @when decorator in C (see when.c). */
#ifndef BOCPY_MODULE_WHEN_H
#define BOCPY_MODULE_WHEN_H

#include <Python.h>

#include "value/state.h"

/* Adds when(), _whencall(), when_stats() and _set_cache_limit() to module
 * and sets up st's @when fields (its exec slot).  0, or -1 with an
 * exception. */
int boc_when_exec(PyObject *module, boc_state_t *st);

#endif /* BOCPY_MODULE_WHEN_H */
