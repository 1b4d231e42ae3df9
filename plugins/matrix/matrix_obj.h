/* matrix_obj.h - the Matrix wrapper and its module state: identity, the
 * owner check, making and copying matrices.  Defined in matrix_obj.c;
 * depends on matrix_buf.h and matrix_rng.h only.
 *
 * Ownership.  The numbers live in a shared record (matrix_buf.h) whose
 * owner word says which interpreter may read or write it.  A Python wrapper
 * (mx_t) holds one reference.  When bocpy moves a matrix to another
 * interpreter (a cown value, a message, a capture, a result) the share
 * hook (matrix_module.c) flips the owner to "none", takes a reference for
 * the payload and marks the wrapper as moved for good; the rebuild hook in
 * the receiving interpreter flips the owner to itself and wraps the same
 * record in that interpreter's type.  No copy.  Every accessor calls
 * mx_own().
 *
 * Holders.  A record can have several wrappers in its owning interpreter
 * (a payload decoded twice there); they count themselves in buf->holders,
 * stamped with buf->epoch.  Moving the record on (share) bumps the epoch,
 * so the other wrappers of the old epoch stay dead even if the record
 * comes back.  When the last holder dies while it still owns the record,
 * it gives the record back (owner -> none): a payload that still holds it
 * (a cown whose release failed, say) can then be rebuilt
 * by any interpreter instead of staying tied to this one.
 *
 * References: functions returning PyObject * (or mx_t *) return new
 * references; PyObject * arguments are borrowed.  Functions returning int
 * return 0 (or a documented non-negative value) or -1 with an exception
 * set.
 */
#ifndef BOCPY_PLUGIN_MATRIX_OBJ_H
#define BOCPY_PLUGIN_MATRIX_OBJ_H

#include <Python.h>

#include <bocpy/bocpy.h>

#include "matrix_buf.h"
#include "matrix_rng.h"

/* The error text of every accessor of a matrix this interpreter does not
 * own (the ABI's owner_check writes the same words). */
#define MX_WHAT "matrix"

/* ---- module state -------------------------------------------------------- */

typedef struct {
  const bocpy_abi *abi;
  PyTypeObject *type; /* strong: this interpreter's Matrix type */
  PyTypeObject *view_type;    /* strong: MatrixView (matrix_view.c) */
  PyTypeObject *indexer_type; /* strong: the type of m.view */
  mx_rng_t rng;       /* this interpreter's generator */
} mx_state_t;

/* ---- the wrapper --------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  mx_buf_t *buf;        /* one reference, never NULL after construction */
  const bocpy_abi *abi; /* the process's table (plain data) */
  int moved;            /* this wrapper gave its record away, for good */
  uint64_t epoch;       /* the record's epoch when this wrapper got it */
  /* The shape and strides handed to buffer exports of this wrapper: the
   * shape cannot change while an export is alive, so every export reads
   * the same values. */
  Py_ssize_t view_shape[2], view_strides[2];
} mx_t;

#define MX(o) ((mx_t *)(o))
#define MX_ROWS(m) ((m)->buf->rows)
#define MX_COLS(m) ((m)->buf->cols)
#define MX_DATA(m) ((m)->buf->data)
#define MX_SIZE(m) ((m)->buf->rows * (m)->buf->cols)

/* 1 when o is a Matrix (of any interpreter's type: compares tp_dealloc). */
int mx_check(PyObject *o);
/* The state of the module that made m's type. */
mx_state_t *mx_state_of(PyObject *m);
/* 0 when this interpreter owns m (and m has not been moved), else -1 with
 * RuntimeError("The current interpreter does not own this matrix"). */
int mx_own(mx_t *m);
/* A new, owned rows x cols Matrix (zeroed when `zero`), or NULL. */
mx_t *mx_new(mx_state_t *st, Py_ssize_t rows, Py_ssize_t cols, int zero);
/* Wraps record b, which this interpreter owns (steals its reference;
 * decrefs it on failure); the wrapper becomes a holder of b's epoch. */
PyObject *mx_wrap(mx_state_t *st, mx_buf_t *b);
/* A deep copy of m (owner checked by the caller). */
mx_t *mx_copy(mx_state_t *st, mx_t *m);
/* Whether this interpreter may use m now (no exception). */
int mx_owned_quiet(mx_t *m);
/* m gives its record away for good (the share hook, after the owner flip
 * was checked): every wrapper of the record in this interpreter loses it. */
void mx_retire(mx_t *m);
/* m takes its record back (the unshare hook, owner already taken). */
void mx_reinstate(mx_t *m);
/* The type's tp_dealloc (also what mx_check compares). */
void mx_dealloc(PyObject *self);

#endif /* BOCPY_PLUGIN_MATRIX_OBJ_H */
