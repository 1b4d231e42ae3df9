/* ocl_kind.c - element types: names, sizes, conversions (see ocl_kind.h). */
#include "ocl_kind.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

const char *ocl_kind_name(ocl_kind k) {
  switch (k) {
  case OCL_F32:
    return "float32";
  case OCL_F64:
    return "float64";
  case OCL_I32:
    return "int32";
  case OCL_I64:
    return "int64";
  case OCL_U32:
    return "uint32";
  case OCL_U64:
    return "uint64";
  case OCL_I8:
    return "int8";
  case OCL_U8:
    return "uint8";
  case OCL_I16:
    return "int16";
  case OCL_U16:
    return "uint16";
  default:
    return "other";
  }
}

size_t ocl_kind_size(ocl_kind k) {
  switch (k) {
  case OCL_F64:
  case OCL_I64:
  case OCL_U64:
    return 8;
  case OCL_F32:
  case OCL_I32:
  case OCL_U32:
    return 4;
  case OCL_I16:
  case OCL_U16:
    return 2;
  case OCL_I8:
  case OCL_U8:
    return 1;
  default:
    return 0;
  }
}

/* The buffer element types a user may ask for by name. */
int ocl_parse_dtype(PyObject *o, ocl_kind *out) {
  if (!PyUnicode_Check(o)) {
    PyErr_SetString(PyExc_TypeError,
                    "dtype must be a str: 'float64', 'float32', 'int32' or "
                    "'int64'");
    return -1;
  }
  static const ocl_kind kinds[] = {OCL_F64, OCL_F32, OCL_I32, OCL_I64};
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    if (PyUnicode_CompareWithASCIIString(o, ocl_kind_name(kinds[i])) == 0) {
      *out = kinds[i];
      return 0;
    }
  }
  PyErr_Format(PyExc_ValueError,
               "unknown dtype %R: use 'float64', 'float32', 'int32' or "
               "'int64'",
               o);
  return -1;
}

int ocl_from_doubles(ocl_kind k, const double *src, void *dst, size_t n) {
  size_t i = 0;
  switch (k) {
  case OCL_F32: {
    float *d = dst;
    for (; i < n; i++) {
      const double v = src[i];
      d[i] = v > FLT_MAX    ? INFINITY
             : v < -FLT_MAX ? -INFINITY
                            : (float)v; /* NaN stays NaN */
    }
    return 0;
  }
  case OCL_I32: {
    int32_t *d = dst;
    for (; i < n; i++) {
      const double v = src[i];
      if (!(v > -2147483649.0 && v < 2147483648.0)) {
        goto range;
      }
      d[i] = (int32_t)v;
    }
    return 0;
  }
  case OCL_I64: {
    int64_t *d = dst;
    for (; i < n; i++) {
      const double v = src[i];
      if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) {
        goto range;
      }
      d[i] = (int64_t)v;
    }
    return 0;
  }
  default:
    memcpy(dst, src, n * sizeof(double));
    return 0;
  }
range: {
  PyObject *value = PyFloat_FromDouble(src[i]);
  if (value != NULL) {
    PyErr_Format(PyExc_ValueError,
                 "element %zu of the Matrix (%R) does not fit in %s", i,
                 value, ocl_kind_name(k));
    Py_DECREF(value);
  }
  return -1;
}
}

void ocl_to_doubles(ocl_kind k, const void *src, double *dst, size_t n) {
  switch (k) {
  case OCL_F32: {
    const float *s = src;
    for (size_t i = 0; i < n; i++) {
      dst[i] = (double)s[i];
    }
    break;
  }
  case OCL_I32: {
    const int32_t *s = src;
    for (size_t i = 0; i < n; i++) {
      dst[i] = (double)s[i];
    }
    break;
  }
  case OCL_I64: {
    const int64_t *s = src;
    for (size_t i = 0; i < n; i++) {
      dst[i] = (double)s[i];
    }
    break;
  }
  default:
    memcpy(dst, src, n * sizeof(double));
  }
}
