/* matrix_ops.h - Matrix arithmetic: the number protocol and the methods
 * defined in matrix_ops.c (depends on matrix_obj.h, matrix_args.h,
 * matrix_convert.h and matrix_kernels.h).
 */
#ifndef BOCPY_PLUGIN_MATRIX_OPS_H
#define BOCPY_PLUGIN_MATRIX_OPS_H

#include "matrix_obj.h"

/* number protocol */
PyObject *mx_nb_add(PyObject *a, PyObject *b);
PyObject *mx_nb_subtract(PyObject *a, PyObject *b);
PyObject *mx_nb_multiply(PyObject *a, PyObject *b);
PyObject *mx_nb_true_divide(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_add(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_subtract(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_multiply(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_true_divide(PyObject *a, PyObject *b);
PyObject *mx_nb_matmul(PyObject *a, PyObject *b);
PyObject *mx_nb_inplace_matmul(PyObject *a, PyObject *b);
PyObject *mx_nb_negative(PyObject *a);
PyObject *mx_nb_positive(PyObject *a);
PyObject *mx_nb_absolute(PyObject *a);

/* methods.  FASTCALL ones have the (self, args, nargs,
 * kwnames) signature. */
#define MX_FASTCALL_DECL(name)                                                \
  PyObject *name(PyObject *self, PyObject *const *args, Py_ssize_t nargs,     \
                 PyObject *kwnames)
MX_FASTCALL_DECL(mx_meth_sum);
MX_FASTCALL_DECL(mx_meth_mean);
MX_FASTCALL_DECL(mx_meth_min);
MX_FASTCALL_DECL(mx_meth_max);
MX_FASTCALL_DECL(mx_meth_argmin);
MX_FASTCALL_DECL(mx_meth_argmax);
MX_FASTCALL_DECL(mx_meth_magnitude);
MX_FASTCALL_DECL(mx_meth_magnitude_squared);
MX_FASTCALL_DECL(mx_meth_vecdot);
MX_FASTCALL_DECL(mx_meth_cross);
MX_FASTCALL_DECL(mx_meth_normalize);
MX_FASTCALL_DECL(mx_meth_perpendicular);
MX_FASTCALL_DECL(mx_meth_angle);
MX_FASTCALL_DECL(mx_meth_transpose);
MX_FASTCALL_DECL(mx_meth_ceil);
MX_FASTCALL_DECL(mx_meth_floor);
MX_FASTCALL_DECL(mx_meth_round);
MX_FASTCALL_DECL(mx_meth_negate);
MX_FASTCALL_DECL(mx_meth_abs);
MX_FASTCALL_DECL(mx_meth_sqrt);
MX_FASTCALL_DECL(mx_meth_clip);
MX_FASTCALL_DECL(mx_meth_take);
MX_FASTCALL_DECL(mx_meth_fma);
MX_FASTCALL_DECL(mx_meth_less);
MX_FASTCALL_DECL(mx_meth_less_equal);
MX_FASTCALL_DECL(mx_meth_greater);
MX_FASTCALL_DECL(mx_meth_greater_equal);
MX_FASTCALL_DECL(mx_meth_equal);
MX_FASTCALL_DECL(mx_meth_not_equal);
MX_FASTCALL_DECL(mx_meth_add);
MX_FASTCALL_DECL(mx_meth_subtract);
MX_FASTCALL_DECL(mx_meth_multiply);
MX_FASTCALL_DECL(mx_meth_divide);
MX_FASTCALL_DECL(mx_meth_scaled_add);
MX_FASTCALL_DECL(mx_meth_put);
/* Index lists (take, put, fancy indexing): mx_index_list converts one int
 * or a sequence of ints (not bools, floats, str / bytes or a Matrix) into
 * *idx (malloc'd, *k >= 1 items; free() it); mx_index_bounds then wraps
 * negative indices and checks them against n rows / columns / elements
 * (`what`), IndexError naming the first bad one.  -1 with an exception. */
int mx_index_list(const char *fname, PyObject *obj, Py_ssize_t **idx,
                  Py_ssize_t *k);
int mx_index_bounds(const char *fname, Py_ssize_t *idx, Py_ssize_t k,
                    Py_ssize_t n, const char *what);
/* tp_richcompare: lexicographic, like m.tolist() op n.tolist(). */
PyObject *mx_richcompare(PyObject *x, PyObject *y, int op);
/* class / static methods (cls or NULL first) */
MX_FASTCALL_DECL(mx_meth_concat);
MX_FASTCALL_DECL(mx_meth_allclose);
MX_FASTCALL_DECL(mx_meth_where);
/* the T property and length */
PyObject *mx_transposed(mx_t *m);
PyObject *mx_get_length(PyObject *self, void *closure);

#endif /* BOCPY_PLUGIN_MATRIX_OPS_H */
