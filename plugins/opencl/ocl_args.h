/* ocl_args.h - checks of Python arguments shared by the methods: sizes,
 * work sizes, and the TypeError that names what was given.  A leaf: Python
 * and cl_abi.h only.
 *
 * int functions return 0 or -1 with an exception set. */
#ifndef BOCPY_PLUGIN_OCL_ARGS_H
#define BOCPY_PLUGIN_OCL_ARGS_H

#include <Python.h>
#include <bocpy/compat.h> /* 3.11/3.12 names on CPython 3.10/3.11 */

#include <stddef.h>

#include "cl_abi.h"

/* Raises exc (TypeError for the callers so far) "<fmt...>, not <the type
 * of obj>" and returns -1; obj NULL: "<fmt...>" alone. */
int ocl_not_type(PyObject *exc, PyObject *obj, const char *fmt, ...);

/* One positive size: -1 with TypeError / ValueError / OverflowError naming
 * `what`. */
int ocl_parse_size(PyObject *o, const char *what, size_t *out);

/* An int or a tuple/list of 1 to 3 ints: the work sizes of a launch. */
int ocl_parse_work(PyObject *o, const char *what, size_t out[3],
                   cl_uint *dims);

#endif /* BOCPY_PLUGIN_OCL_ARGS_H */
