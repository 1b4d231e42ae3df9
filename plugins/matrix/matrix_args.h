/* matrix_args.h - argument parsing shared by the Matrix methods (a leaf:
 * Python only, no other plugin header).  Defined in matrix_args.c.
 *
 * References: PyObject * arguments are borrowed.  Functions returning int
 * return 0 (or a documented non-negative value) or -1 with an exception
 * set.
 */
#ifndef BOCPY_PLUGIN_MATRIX_ARGS_H
#define BOCPY_PLUGIN_MATRIX_ARGS_H

#include <Python.h>
#include <bocpy/compat.h> /* PyType_GetName on CPython 3.10 */

/* Converts a real number (float, int, __index__ or __float__) to a double:
 * 1 converted, 0 not a number (nothing raised), -1 error (e.g. overflow). */
int mx_as_double(PyObject *o, double *out);
/* Parses METH_FASTCALL | METH_KEYWORDS arguments into out[0..nall): the
 * first npos may be positional, all may be keywords (names[i]).  Slots not
 * given are left untouched (preset them to NULL).  Borrowed references. */
int mx_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames, const char *const *names, Py_ssize_t npos,
             Py_ssize_t nall, PyObject **out);
/* axis: NULL/None -> MX_AXIS_ALL; 0/-2 -> 0 (per column); 1/-1 -> 1 (per
 * row).  -1 with TypeError (not an int, or a bool), MX_ERR_AXIS_RANGE
 * (beyond a C int, as the reference) or MX_ERR_AXIS (another int). */
#define MX_AXIS_ALL 2
int mx_parse_axis(PyObject *o, int *axis);
/* A truth value (NULL -> 0); -1 on error. */
int mx_parse_flag(PyObject *o);
/* A size argument: a (rows, columns) tuple/list of ints >= 1. */
int mx_parse_size(PyObject *o, const char *fname, Py_ssize_t *rows,
                  Py_ssize_t *cols);
/* A dimension: an int >= 1 (TypeError / MX_ERR_DIM / ValueError when too
 * large, naming `what`). */
int mx_parse_dim(PyObject *o, const char *what, Py_ssize_t *out);
/* TypeError with the type name of o as the last (%U) argument of fmt. */
#define MX_TYPE_ERROR0(fmt, o)                                                \
  do {                                                                        \
    PyObject *mx_tn_ = PyType_GetName(Py_TYPE(o));                            \
    if (mx_tn_ != NULL) {                                                     \
      PyErr_Format(PyExc_TypeError, fmt, mx_tn_);                             \
      Py_DECREF(mx_tn_);                                                      \
    }                                                                         \
  } while (0)
#define MX_TYPE_ERROR1(fmt, s, o)                                             \
  do {                                                                        \
    PyObject *mx_tn_ = PyType_GetName(Py_TYPE(o));                            \
    if (mx_tn_ != NULL) {                                                     \
      PyErr_Format(PyExc_TypeError, fmt, s, mx_tn_);                          \
      Py_DECREF(mx_tn_);                                                      \
    }                                                                         \
  } while (0)

/* ---- error classes ----------------------------------------------------------
 * Where the reference (bocpy 0.9 - 0.14) raises another type than ours for
 * the same bad input, we raise a class deriving from both (ours first), so
 * that an `except` written for either catches it.  The classes live in the
 * module (bocpy.plugins.matrix.MatrixShapeError, ...), one set per
 * interpreter, made by mx_errors_add from Py_mod_exec. */
typedef enum {
  MX_ERR_SHAPE,       /* ValueError + NotImplementedError: shapes that do
                         not match or are not supported */
  MX_ERR_AXIS,        /* ValueError + NotImplementedError: an axis value
                         that is not -2, -1, 0 or 1 */
  MX_ERR_AXIS_RANGE,  /* ValueError + OverflowError: an axis beyond a C
                         int */
  MX_ERR_COUNT,       /* ValueError + TypeError: the wrong number of
                         constructor values */
  MX_ERR_DIM,         /* ValueError + AssertionError: a dimension < 1 */
  MX_ERR_BOUNDS,      /* ValueError + AssertionError: clip bounds */
  MX_ERR_KEY,         /* IndexError + KeyError: a key tuple of length
                         other than 2 */
  /* Subclasses of one of the above (named as parent below) that also
   * derive from the reference's type: */
  MX_ERR_AXIS_KEY,    /* MX_ERR_AXIS + KeyError: a bad axis of take /
                         select / put / concat */
  MX_ERR_CONCAT,      /* MX_ERR_SHAPE + AssertionError: concat() of
                         items whose shapes do not stack */
  MX_ERR_KINDS
} mx_err_t;

/* Adds the classes to module (0, or -1 with an exception). */
int mx_errors_add(PyObject *module);
/* Raises class k with a PyUnicode_FromFormat message (ValueError when the
 * module cannot be found).  Always NULL. */
PyObject *mx_raise(mx_err_t k, const char *fmt, ...);
/* mx_parse_axis, raising class `bad` instead of MX_ERR_AXIS for an int
 * other than -2, -1, 0, 1 (take / put / concat: MX_ERR_AXIS_KEY, as the
 * reference raises KeyError there). */
int mx_parse_axis_as(PyObject *o, int *axis, mx_err_t bad);

/* The reference's words, part of our messages where it documents some. */
#define MX_REF_AXIS "axis must be -2, -1, 0, or 1"
#define MX_REF_MISMATCH "Dimension mismatch between operands"
#define MX_REF_CROSS                                                          \
  "cross requires a 2D or 3D vector or Nx2 or 2xN or Nx3 or 3xN matrix"
#define MX_REF_VEC2 "requires a 2D vector or Nx2 or 2xN matrix"
#define MX_REF_INT_RANGE "out of int range"

/* MX_ERR_SHAPE "<prefix>: shapes (a, b) and (c, d)<suffix> (Dimension
 * mismatch between operands)". */
void mx_shape_error(const char *prefix, Py_ssize_t ar, Py_ssize_t ac,
                    Py_ssize_t br, Py_ssize_t bc, const char *suffix);
/* The same message, raised as class k (MX_ERR_SHAPE or a subclass). */
void mx_shape_error_as(mx_err_t k, const char *prefix, Py_ssize_t ar,
                       Py_ssize_t ac, Py_ssize_t br, Py_ssize_t bc,
                       const char *suffix);

#endif /* BOCPY_PLUGIN_MATRIX_ARGS_H */
