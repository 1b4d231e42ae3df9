/* matrix_module.c - bocpy.plugins.matrix: the module and the
 * shareable-type hooks (the ownership flip).
 *
 * bocpy.plugins.matrix.Matrix is a dense, row-major rows x columns matrix
 * of C doubles.  The module is an abi3 plugin: stable ABI 3.12 plus the
 * BOCPY_ABI table, nothing else.  It runs in every interpreter that imports
 * it (main and workers): multi-phase initialisation, a heap type per
 * interpreter, state in module state.  The only C globals are plain
 * counters (no Python objects).  PyInit_matrix is the one exported symbol
 * (hidden visibility for everything else).
 *
 * Layout (each file includes only the headers below it; each declaration
 * sits in the header of the file that defines it):
 *   matrix_module.c   the module, the shareable-type hooks;
 *   matrix_type.c     the type: construction (also random), properties,
 *                     indexing, repr/str, the method and slot tables;
 *   matrix_view.c     MatrixView and m.view (windows onto a row / column);
 *   matrix_pickle.c   __reduce__ and the _from_buffer unpickler;
 *   matrix_ops.c      operators with broadcasting, matmul, reductions,
 *                     element-wise and vector methods;
 *   matrix_convert.c  new matrices from Python sequences;
 *   matrix_buffer.c   the buffer protocol both ways (exports, from_buffer);
 *   matrix_obj.c      the wrapper: identity, owner check, new / copy
 *                     (matrix_obj.h explains ownership);
 *   leaves (no plugin header):
 *   matrix_args.c     argument parsing, the error classes;
 *   matrix_buf.c      the shared record of the numbers;
 *   matrix_rng.c      the per-interpreter random generator;
 *   matrix_kernels.c  the numeric loops (restrict pointers, -O3, optionally
 *                     an AVX2 clone picked at load time).
 */
#include "matrix_obj.h"

#include "matrix_args.h"
#include "matrix_buffer.h"
#include "matrix_kernels.h"
#include "matrix_pickle.h"
#include "matrix_type.h"
#include "matrix_view.h"

/* ---- shareable-type hooks: the ownership flip ---------------------------- */

/* Producing interpreter, GIL held: give the record up (owner current ->
 * none), hand the payload a reference, and retire this wrapper for good. */
static void *mx_share(PyObject *obj) {
  mx_t *m = MX(obj);
  if (mx_own(m) < 0) {
    return NULL; /* RuntimeError: not ours to send */
  }
  if (mx_no_exports(m, "send this matrix to another interpreter (a cown "
                        "value, a message, a capture or a result)") < 0) {
    return NULL; /* BufferError: the exported memory must stay here */
  }
  mx_buf_t *b = m->buf;
  mx_retire(m); /* before the flip: after it the record is not ours */
  if (m->abi->owner_give(&b->owner, MX_WHAT) < 0) {
    mx_reinstate(m); /* cannot happen after mx_own; keep m usable */
    return NULL;
  }
  mx_buf_incref(b);
  return b;
}

/* Consuming interpreter, GIL held: take the record (none -> current) and
 * wrap it in this interpreter's type.  The payload keeps its reference. */
static PyObject *mx_rebuild(PyTypeObject *type, void *payload) {
  mx_buf_t *b = payload;
  mx_state_t *st = PyType_GetModuleState(type);
  if (st == NULL) {
    return NULL;
  }
  int taken = st->abi->owner_take(&b->owner, MX_WHAT);
  if (taken < 0) {
    return NULL; /* another interpreter holds it (decoded twice) */
  }
  if (taken == 0) {
    /* Ours now (the flip published the last owner's writes): a new
     * ownership, with no holder yet. */
    b->epoch++;
    b->holders = 0;
  }
  mx_buf_incref(b); /* the wrapper's reference */
  PyObject *m = mx_wrap(st, b);
  if (m == NULL && taken == 0) {
    /* Put the owner back to "none" so the payload can still be rebuilt. */
    PyObject *exc = PyErr_GetRaisedException();
    if (st->abi->owner_give(&b->owner, MX_WHAT) < 0) {
      PyErr_Clear();
    }
    PyErr_SetRaisedException(exc);
  }
  return m;
}

/* Any thread, no GIL. */
static void mx_free_payload(void *payload) { mx_buf_decref(payload); }

/* Producing interpreter: the rest of the value failed to encode; take the
 * record back so the sender's object works again. */
static void mx_unshare(PyObject *obj, void *payload) {
  mx_t *m = MX(obj);
  if (m->buf != payload) {
    return;
  }
  PyObject *exc = PyErr_GetRaisedException();
  if (m->abi->owner_take(&m->buf->owner, MX_WHAT) >= 0) {
    mx_reinstate(m);
  } else {
    PyErr_Clear();
  }
  PyErr_SetRaisedException(exc);
}

static PyObject *mx_live(PyObject *module, PyObject *Py_UNUSED(unused)) {
  (void)module;
  return PyLong_FromLongLong((long long)mx_buf_live());
}

static PyObject *mx_kernels_name(PyObject *module,
                                 PyObject *Py_UNUSED(unused)) {
  (void)module;
  return PyUnicode_FromString(mx_kernels()->name);
}

static PyMethodDef mx_module_methods[] = {
    {"_from_buffer", (PyCFunction)(void (*)(void))mx_unpickle,
     METH_FASTCALL, mx_unpickle_doc},
    {"_live_buffers", mx_live, METH_NOARGS,
     "Matrix records alive in the process (for leak tests)."},
    {"_kernels", mx_kernels_name, METH_NOARGS,
     "The numeric kernels in use: 'x86-64-v3' (AVX2, FMA) or 'base'."},
    {NULL, NULL, 0, NULL},
};

/* ---- module -------------------------------------------------------------- */

static int mx_exec(PyObject *module) {
  mx_state_t *st = PyModule_GetState(module);
  /* Every interpreter: negotiate with the core (ImportError on mismatch),
   * make this interpreter's type, register it as shareable. */
  st->abi = BOCPY_IMPORT_ABI();
  if (st->abi == NULL) {
    return -1;
  }
  if (mx_errors_add(module) < 0) {
    return -1;
  }
  st->type = mx_type_create(module);
  if (st->type == NULL || PyModule_AddType(module, st->type) < 0) {
    return -1;
  }
  if (mx_view_types_create(module, st) < 0) {
    return -1;
  }
  mx_rng_seed_entropy(&st->rng);
  bocpy_shareable_spec spec = {
      .struct_size = sizeof(bocpy_shareable_spec),
      .reserved = 0,
      .type = st->type,
      .share = mx_share,
      .rebuild = mx_rebuild,
      .free_payload = mx_free_payload,
      .unshare = mx_unshare,
  };
  return st->abi->register_shareable(&spec);
}

static int mx_traverse(PyObject *module, visitproc visit, void *arg) {
  mx_state_t *st = PyModule_GetState(module);
  Py_VISIT(st->type);
  Py_VISIT(st->view_type);
  Py_VISIT(st->indexer_type);
  return 0;
}

static int mx_clear(PyObject *module) {
  mx_state_t *st = PyModule_GetState(module);
  Py_CLEAR(st->type);
  Py_CLEAR(st->view_type);
  Py_CLEAR(st->indexer_type);
  return 0;
}

static void mx_free(void *module) { mx_clear((PyObject *)module); }

static PyModuleDef_Slot mx_slots[] = {
    {Py_mod_exec, mx_exec},
    /* Without this a worker interpreter cannot import the plugin. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef mx_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bocpy.plugins.matrix",
    .m_doc = "Dense float64 matrices that move between bocpy interpreters "
             "without copying (bocpy.Matrix).",
    .m_size = sizeof(mx_state_t),
    .m_methods = mx_module_methods,
    .m_slots = mx_slots,
    .m_traverse = mx_traverse,
    .m_clear = mx_clear,
    .m_free = mx_free,
};

PyMODINIT_FUNC PyInit_matrix(void); /* the one exported symbol */
PyMODINIT_FUNC PyInit_matrix(void) { return PyModuleDef_Init(&mx_module); }
