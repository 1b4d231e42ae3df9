/* abi_table.h - the core's side of the plugin ABI (abi/include/bocpy/bocpy.h).
 *
 * bocpy._core exports one static, process-global table of function pointers
 * (struct bocpy_abi) through the capsule "bocpy._core._BOCPY_ABI"; the
 * entries are implemented in abi_table.c and listed, in order, by
 * abi/abi.manifest (abi/gen_abi.py generates the initializer).
 */
#ifndef BOCPY_CORE_ABI_TABLE_H
#define BOCPY_CORE_ABI_TABLE_H

#include <Python.h>

#include "value/state.h"

/* Called by the module's exec slot in every interpreter: sets up this
 * interpreter's registered-type maps in st, adds the ABI's module functions
 * (_shared_ref, _abi_info, _registered_types) and the _BOCPY_ABI capsule.
 * 0, or -1 with an exception set. */
int boc_abi_exec(PyObject *module, boc_state_t *st);

#endif /* BOCPY_CORE_ABI_TABLE_H */
