/* ocl_kind.h - element types of buffers and kernel arguments: names, sizes,
 * the dtype names users pass, and conversions from and to Matrix doubles.
 * A leaf: Python only, no OpenCL and no other plugin header.
 *
 * int functions return 0 or -1 with an exception set. */
#ifndef BOCPY_PLUGIN_OCL_KIND_H
#define BOCPY_PLUGIN_OCL_KIND_H

#include <Python.h>
#include <bocpy/compat.h> /* 3.11/3.12 names on CPython 3.10/3.11 */

#include <stddef.h>

typedef enum {
  OCL_F32 = 0,
  OCL_F64,
  OCL_I32,
  OCL_I64,
  OCL_U32,
  OCL_U64,
  OCL_I8,
  OCL_U8,
  OCL_I16,
  OCL_U16,
  OCL_OTHER /* a vector, struct, image... (not settable from Python) */
} ocl_kind;

/* "float32", "int64"...; "other" for OCL_OTHER. */
const char *ocl_kind_name(ocl_kind k);
/* Bytes per element; 0 for OCL_OTHER. */
size_t ocl_kind_size(ocl_kind k);
/* The buffer element types a user may ask for by name ('float64',
 * 'float32', 'int32', 'int64'): TypeError / ValueError otherwise. */
int ocl_parse_dtype(PyObject *o, ocl_kind *out);

/* Converts n doubles to the element type k (into dst): floats round to
 * nearest (beyond float's range: infinity), integers truncate toward zero.
 * -1 with ValueError naming the first element an integer type cannot hold
 * (NaN, infinite or out of range: a C conversion would be undefined). */
int ocl_from_doubles(ocl_kind k, const double *src, void *dst, size_t n);
/* Converts n elements of type k (f32, f64, i32, i64) to doubles. */
void ocl_to_doubles(ocl_kind k, const void *src, double *dst, size_t n);

#endif /* BOCPY_PLUGIN_OCL_KIND_H */
