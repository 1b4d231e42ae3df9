/* matrix_module.c - bocpy.plugins.matrix: the module, the shared records,
 * the per-interpreter random generator, the shareable-type hooks (ownership
 * flip) and pickling.
 *
 * See matrix.h for the ownership model.  The module runs in every
 * interpreter that imports it (main and workers): multi-phase
 * initialisation, a heap type per interpreter, state in module state.  The
 * only C globals are plain counters (no Python objects).
 */
#include "matrix.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the shared record --------------------------------------------------- */

_Static_assert(offsetof(mx_buf_t, data) % 64 == 0,
               "matrix data must start on a cache line");

/* Records alive in the process, for leak tests.  A plain counter shared by
 * every interpreter (no Python object). */
static _Atomic int64_t mx_live_records;

mx_buf_t *mx_buf_new(Py_ssize_t rows, Py_ssize_t cols, int zero,
                     int64_t owner) {
  const size_t header = offsetof(mx_buf_t, data);
  if (rows < 1 || cols < 1 ||
      (size_t)rows > (SIZE_MAX / 2 - header) / sizeof(double) / (size_t)cols ||
      (size_t)rows * (size_t)cols > (size_t)PY_SSIZE_T_MAX / sizeof(double)) {
    PyErr_Format(PyExc_ValueError, "a %zd x %zd matrix is too large", rows,
                 cols);
    return NULL;
  }
  const size_t n = (size_t)rows * (size_t)cols;
  /* Raw process-global memory: the record outlives interpreters and is freed
   * by whichever thread drops the last reference (never PyMem).  64 spare
   * bytes align the record (and so the data) on a cache line.  Zeroed
   * records come from calloc, which hands out fresh pages lazily (a large
   * zero matrix costs no page faults until it is written). */
  const size_t bytes = header + n * sizeof(double) + 64;
  void *raw = zero ? calloc(1, bytes) : malloc(bytes);
  if (raw == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  mx_buf_t *b = (mx_buf_t *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
  b->alloc = raw;
  /* Not yet visible to any other thread: plain initialisation. */
  atomic_init(&b->refs, 1);
  b->owner = owner;
  b->rows = rows;
  b->cols = cols;
  /* relaxed: a statistic, ordered with nothing. */
  atomic_fetch_add_explicit(&mx_live_records, 1, memory_order_relaxed);
  return b;
}

void mx_buf_incref(mx_buf_t *b) {
  /* relaxed: the caller already holds a reference, so the record cannot
   * die concurrently; the reference itself publishes nothing. */
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void mx_buf_decref(mx_buf_t *b) {
  /* acq_rel: the release half orders this holder's last writes before the
   * drop; the acquire half makes the thread that frees the record see the
   * writes of every other holder. */
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    free(b->alloc);
    /* relaxed: a statistic. */
    atomic_fetch_sub_explicit(&mx_live_records, 1, memory_order_relaxed);
  }
}

int64_t mx_buf_live(void) {
  /* relaxed: a statistic (tests read it at quiescence). */
  return atomic_load_explicit(&mx_live_records, memory_order_relaxed);
}

/* ---- wrappers ------------------------------------------------------------ */

mx_state_t *mx_state_of(PyObject *m) {
  return (mx_state_t *)PyType_GetModuleState(Py_TYPE(m));
}

int mx_own(mx_t *m) {
  if (m->moved) {
    PyErr_SetString(PyExc_RuntimeError,
                    "The current interpreter does not own this " MX_WHAT);
    return -1;
  }
  return m->abi->owner_check(&m->buf->owner, MX_WHAT);
}

PyObject *mx_wrap(mx_state_t *st, mx_buf_t *b) {
  mx_t *m = (mx_t *)PyType_GenericAlloc(st->type, 0);
  if (m == NULL) {
    mx_buf_decref(b);
    return NULL;
  }
  m->buf = b; /* the reference we were given */
  m->abi = st->abi;
  m->moved = 0;
  return (PyObject *)m;
}

mx_t *mx_new(mx_state_t *st, Py_ssize_t rows, Py_ssize_t cols, int zero) {
  mx_buf_t *b = mx_buf_new(rows, cols, zero, st->abi->interp_current());
  if (b == NULL) {
    return NULL;
  }
  return (mx_t *)mx_wrap(st, b);
}

mx_t *mx_copy(mx_state_t *st, mx_t *m) {
  mx_t *r = mx_new(st, MX_ROWS(m), MX_COLS(m), 0);
  if (r != NULL) {
    memcpy(MX_DATA(r), MX_DATA(m), (size_t)MX_SIZE(m) * sizeof(double));
  }
  return r;
}

/* ---- random numbers ---------------------------------------------------------
 * xoshiro256** (Blackman & Vigna) seeded through splitmix64; normal samples
 * by the Box-Muller transform, the second sample of each pair kept for the
 * next call.  One generator per interpreter, in module state. */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(mx_rng_t *r) {
  uint64_t *s = r->s;
  const uint64_t result = rotl64(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl64(s[3], 45);
  return result;
}

void mx_rng_seed(mx_rng_t *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) {
    r->s[i] = splitmix64(&x);
  }
  r->has_spare = 0;
  r->spare = 0.0;
}

/* Distinguishes generators seeded in the same nanosecond. */
static _Atomic uint64_t mx_seed_counter;

void mx_rng_seed_entropy(mx_rng_t *r) {
  struct timespec ts = {0, 0};
  (void)timespec_get(&ts, TIME_UTC);
  /* relaxed: only needs to be unique, not ordered. */
  uint64_t n = atomic_fetch_add_explicit(&mx_seed_counter, 1,
                                         memory_order_relaxed);
  uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
  x ^= (uint64_t)(uintptr_t)r * 0x9e3779b97f4a7c15ULL;
  x ^= n * 0xd1b54a32d192ed03ULL;
  x ^= (uint64_t)clock();
  mx_rng_seed(r, splitmix64(&x));
}

double mx_rng_uniform(mx_rng_t *r) {
  return (double)(rng_next(r) >> 11) * 0x1.0p-53; /* [0, 1) */
}

double mx_rng_normal(mx_rng_t *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  /* u1 in (0, 1] so that log(u1) is finite. */
  const double u1 = (double)((rng_next(r) >> 11) + 1) * 0x1.0p-53;
  const double u2 = mx_rng_uniform(r);
  const double radius = sqrt(-2.0 * log(u1));
  const double theta = 6.283185307179586476925286766559 * u2;
  r->spare = radius * sin(theta);
  r->has_spare = 1;
  return radius * cos(theta);
}

PyObject *mx_meth_seed(PyObject *cls, PyObject *value) {
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)cls);
  if (st == NULL) {
    return NULL;
  }
  if (value == Py_None) {
    mx_rng_seed_entropy(&st->rng);
    Py_RETURN_NONE;
  }
  if (!PyLong_Check(value)) {
    MX_TYPE_ERROR0("seed() needs an int or None, not '%U'", value);
    return NULL;
  }
  /* Any int: its low 64 bits (two's complement) are the seed. */
  unsigned long long v = PyLong_AsUnsignedLongLongMask(value);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    return NULL;
  }
  mx_rng_seed(&st->rng, (uint64_t)v);
  Py_RETURN_NONE;
}

/* normal(mean=0.0, stddev=1.0, size=None) / uniform(minval=0.0, maxval=1.0,
 * size=None): a float when size is None, else a Matrix of that size. */
static PyObject *sample(PyObject *cls, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames, int normal) {
  static const char *const normal_names[] = {"mean", "stddev", "size"};
  static const char *const uniform_names[] = {"minval", "maxval", "size"};
  const char *fname = normal ? "normal" : "uniform";
  PyObject *o[3] = {NULL, NULL, NULL};
  if (mx_parse(fname, args, nargs, kwnames,
               normal ? normal_names : uniform_names, 3, 3, o) < 0) {
    return NULL;
  }
  double p[2] = {0.0, 1.0};
  for (int i = 0; i < 2; i++) {
    if (o[i] == NULL) {
      continue;
    }
    int r = mx_as_double(o[i], &p[i]);
    if (r < 0) {
      return NULL;
    }
    if (r == 0) {
      MX_TYPE_ERROR1("%s() parameters must be numbers, not '%U'", fname, o[i]);
      return NULL;
    }
  }
  if (normal && !(p[1] >= 0.0)) {
    PyErr_Format(PyExc_ValueError,
                 "normal() needs stddev >= 0, got %R", o[1]);
    return NULL;
  }
  if (!normal && !(p[1] >= p[0])) {
    PyErr_SetString(PyExc_ValueError,
                    "uniform() needs minval <= maxval");
    return NULL;
  }
  mx_state_t *st = PyType_GetModuleState((PyTypeObject *)cls);
  if (st == NULL) {
    return NULL;
  }
  const double span = p[1] - p[0];
  if (o[2] == NULL || o[2] == Py_None) {
    if (normal) {
      return PyFloat_FromDouble(p[0] + p[1] * mx_rng_normal(&st->rng));
    }
    double v = p[0] + span * mx_rng_uniform(&st->rng);
    return PyFloat_FromDouble(v >= p[1] && span > 0 ? nextafter(p[1], p[0])
                                                     : v);
  }
  Py_ssize_t rows, cols;
  if (mx_parse_size(o[2], fname, &rows, &cols) < 0) {
    return NULL;
  }
  mx_t *m = mx_new(st, rows, cols, 0);
  if (m == NULL) {
    return NULL;
  }
  double *d = MX_DATA(m);
  const Py_ssize_t n = rows * cols;
  if (normal) {
    for (Py_ssize_t i = 0; i < n; i++) {
      d[i] = p[0] + p[1] * mx_rng_normal(&st->rng);
    }
  } else {
    const double top = span > 0 ? nextafter(p[1], p[0]) : p[1];
    for (Py_ssize_t i = 0; i < n; i++) {
      const double v = p[0] + span * mx_rng_uniform(&st->rng);
      d[i] = v >= p[1] && span > 0 ? top : v; /* rounding: stay below maxval */
    }
  }
  return (PyObject *)m;
}

PyObject *mx_meth_normal(PyObject *cls, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames) {
  return sample(cls, args, nargs, kwnames, 1);
}

PyObject *mx_meth_uniform(PyObject *cls, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames) {
  return sample(cls, args, nargs, kwnames, 0);
}

/* ---- shareable-type hooks: the ownership flip ---------------------------- */

/* Producing interpreter, GIL held: give the record up (owner current ->
 * none), hand the payload a reference, and retire this wrapper for good. */
static void *mx_share(PyObject *obj) {
  mx_t *m = MX(obj);
  if (m->moved) {
    PyErr_SetString(PyExc_RuntimeError,
                    "The current interpreter does not own this " MX_WHAT);
    return NULL;
  }
  if (mx_exported(m, "move") < 0) {
    return NULL; /* a view would keep pointing at memory we give away */
  }
  if (m->abi->owner_give(&m->buf->owner, MX_WHAT) < 0) {
    return NULL; /* RuntimeError: not ours to send */
  }
  mx_buf_incref(m->buf);
  m->moved = 1;
  return m->buf;
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
    m->moved = 0;
  } else {
    PyErr_Clear();
  }
  PyErr_SetRaisedException(exc);
}

/* ---- pickling ---------------------------------------------------------------
 * Inside a bocpy encoding (a Matrix nested in a container that bocpy
 * pickles) the matrix still moves by share/rebuild: reduce_shared records
 * it.  Anywhere else (pickle.dumps, copy.deepcopy through __reduce_ex__)
 * the owner gets a self-contained copy: _from_buffer(rows, columns, raw
 * native-endian bytes, byte order). */

static int native_little(void) {
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

PyObject *mx_meth_reduce(PyObject *self, PyObject *Py_UNUSED(unused)) {
  mx_t *m = MX(self);
  if (mx_own(m) < 0) {
    return NULL;
  }
  PyObject *r = m->abi->reduce_shared(self);
  if (r != NULL || !PyErr_ExceptionMatches(PyExc_TypeError)) {
    return r;
  }
  PyErr_Clear(); /* no bocpy encoding in progress: a plain pickle */
  PyObject *module = PyType_GetModule(Py_TYPE(self)); /* borrowed */
  if (module == NULL) {
    return NULL;
  }
  PyObject *fn = PyObject_GetAttrString(module, "_from_buffer");
  if (fn == NULL) {
    return NULL;
  }
  PyObject *data = PyBytes_FromStringAndSize(
      (const char *)MX_DATA(m), MX_SIZE(m) * (Py_ssize_t)sizeof(double));
  if (data == NULL) {
    Py_DECREF(fn);
    return NULL;
  }
  r = Py_BuildValue("N(nnNs)", fn, MX_ROWS(m), MX_COLS(m), data,
                    native_little() ? "little" : "big");
  return r;
}

PyDoc_STRVAR(from_buffer_doc,
             "_from_buffer(rows, columns, data, byteorder) -> Matrix\n\n"
             "Unpickling helper: a Matrix from raw float64 bytes (row-major) "
             "in the given byte order ('little' or 'big').");
static PyObject *mx_from_buffer(PyObject *module, PyObject *const *args,
                                Py_ssize_t nargs) {
  mx_state_t *st = PyModule_GetState(module);
  if (nargs != 4) {
    PyErr_Format(PyExc_TypeError,
                 "_from_buffer() takes 4 arguments (%zd given)", nargs);
    return NULL;
  }
  Py_ssize_t rows, cols;
  if (mx_parse_dim(args[0], "rows", &rows) < 0 ||
      mx_parse_dim(args[1], "columns", &cols) < 0) {
    return NULL;
  }
  if (!PyUnicode_Check(args[3])) {
    PyErr_SetString(PyExc_TypeError, "byteorder must be 'little' or 'big'");
    return NULL;
  }
  int little;
  if (PyUnicode_CompareWithASCIIString(args[3], "little") == 0) {
    little = 1;
  } else if (PyUnicode_CompareWithASCIIString(args[3], "big") == 0) {
    little = 0;
  } else {
    PyErr_SetString(PyExc_ValueError, "byteorder must be 'little' or 'big'");
    return NULL;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0) {
    return NULL;
  }
  mx_t *m = NULL;
  if (rows > PY_SSIZE_T_MAX / cols ||
      view.len / (Py_ssize_t)sizeof(double) != rows * cols ||
      view.len % (Py_ssize_t)sizeof(double) != 0) {
    PyErr_Format(PyExc_ValueError,
                 "_from_buffer(): %zd bytes cannot hold a %zd x %zd float64 "
                 "matrix",
                 view.len, rows, cols);
  } else if ((m = mx_new(st, rows, cols, 0)) != NULL) {
    memcpy(MX_DATA(m), view.buf, (size_t)view.len);
    if (little != native_little()) {
      unsigned char *p = (unsigned char *)MX_DATA(m);
      for (Py_ssize_t i = 0; i < rows * cols; i++, p += 8) {
        for (int k = 0; k < 4; k++) {
          unsigned char t = p[k];
          p[k] = p[7 - k];
          p[7 - k] = t;
        }
      }
    }
  }
  PyBuffer_Release(&view);
  return (PyObject *)m;
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
    {"_from_buffer", (PyCFunction)(void (*)(void))mx_from_buffer,
     METH_FASTCALL, from_buffer_doc},
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
  st->type = mx_type_create(module);
  if (st->type == NULL || PyModule_AddType(module, st->type) < 0) {
    return -1;
  }
  st->view_type = mx_view_type_create(module);
  if (st->view_type == NULL) {
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
  return 0;
}

static int mx_clear(PyObject *module) {
  mx_state_t *st = PyModule_GetState(module);
  Py_CLEAR(st->type);
  Py_CLEAR(st->view_type);
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
