/* abitest_pin.c - a test plugin for pinned values and ABI 1.1 (built by
 * tests/python/test_pinned_thread.py the way a third party builds one:
 * abi3, Py_LIMITED_API 3.12, <bocpy/bocpy.h> only).
 *
 * Ctx is a thread-affine resource registered as a pinned type.  Each of its
 * hooks (acquire, release, destroy) and its use() method checks that it
 * runs on the pinned thread, and that the Ctx is not destroyed yet; on a
 * violation it prints what happened and aborts the process, so no test can
 * miss it.  destroy prints "destroy <name> pinned=<0|1>" on stderr (through
 * write(2), also valid at exit), which the exit tests count.
 *
 * Blob is a shareable type (bytes inside) for the arguments of C behaviors.
 * The module functions exercise every ABI 1.1 entry from C.
 */
#define BOCPY_TARGET_MINOR 1
#include <Python.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bocpy/bocpy.h>

/* Built a second time with -DPIN_PINNED_ONLY as module abitest_pinonly,
 * without the Py_mod_multiple_interpreters slot: a pinned-only plugin that
 * only the main interpreter ever imports. */
#ifdef PIN_PINNED_ONLY
#define PIN_NAME "abitest_pinonly"
#define PIN_INIT PyInit_abitest_pinonly
#else
#define PIN_NAME "abitest_pin"
#define PIN_INIT PyInit_abitest_pin
#endif

typedef struct {
  const bocpy_abi *abi;
  PyTypeObject *ctx_type;
  PyTypeObject *blob_type;
  PyTypeObject *spare_type; /* registered on request (registry tests) */
} pin_state;

static struct PyModuleDef def;

/* The table is process-global data: one pointer serves every interpreter. */
static const bocpy_abi *ABI;

static pin_state *state_of(PyObject *m) { return PyModule_GetState(m); }

static void die(const char *what, const char *name) {
  char line[256];
  int n = snprintf(line, sizeof(line), "abitest_pin VIOLATION: %s (%s)\n",
                   what, name != NULL ? name : "?");
  if (n > 0) {
    ssize_t w = write(2, line, (size_t)n);
    (void)w;
  }
  abort();
}

/* ---- Ctx: the thread-affine pinned value ---------------------------------- */

typedef struct {
  PyObject_HEAD
  char name[64];
  long long acquires, releases, destroys, uses;
} ctx_t;

static void check_affinity(ctx_t *c, const char *what) {
  if (!ABI->on_pinned_thread()) {
    die(what, c->name);
  }
  if (c->destroys != 0) {
    die("used after destroy", c->name);
  }
}

static int ctx_acquire(PyObject *v) {
  ctx_t *c = (ctx_t *)v;
  check_affinity(c, "acquire hook off the pinned thread");
  c->acquires++;
  return 0;
}

static int ctx_release(PyObject *v) {
  ctx_t *c = (ctx_t *)v;
  check_affinity(c, "release hook off the pinned thread");
  c->releases++;
  return 0;
}

static void ctx_destroy(PyObject *v) {
  ctx_t *c = (ctx_t *)v;
  int pinned = ABI->on_pinned_thread();
  if (c->destroys != 0) {
    die("destroyed twice", c->name);
  }
  c->destroys++;
  char line[128];
  int n = snprintf(line, sizeof(line), "destroy %s pinned=%d\n", c->name,
                   pinned);
  if (n > 0) {
    ssize_t w = write(2, line, (size_t)n);
    (void)w;
  }
  if (!pinned) {
    die("destroy hook off the pinned thread", c->name);
  }
}

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  const char *name = "ctx";
  static char *kwlist[] = {"name", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|s", kwlist, &name)) {
    return NULL;
  }
  allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
  ctx_t *c = (ctx_t *)alloc(type, 0);
  if (c != NULL) {
    snprintf(c->name, sizeof(c->name), "%s", name);
  }
  return (PyObject *)c;
}

static void ctx_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *ctx_use(PyObject *self, PyObject *unused) {
  (void)unused;
  ctx_t *c = (ctx_t *)self;
  check_affinity(c, "use() off the pinned thread");
  c->uses++;
  return PyLong_FromLongLong(c->uses);
}

static PyObject *ctx_counts(PyObject *self, PyObject *unused) {
  (void)unused;
  ctx_t *c = (ctx_t *)self;
  return Py_BuildValue("{s:L,s:L,s:L,s:L}", "acquire", c->acquires,
                       "release", c->releases, "destroy", c->destroys, "use",
                       c->uses);
}

static PyMethodDef ctx_methods[] = {
    {"use", ctx_use, METH_NOARGS, "Touch the resource (pinned thread)."},
    {"counts", ctx_counts, METH_NOARGS, "Hook and use counts."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ctx_slots[] = {
    {Py_tp_new, ctx_new},
    {Py_tp_dealloc, ctx_dealloc},
    {Py_tp_methods, ctx_methods},
    {0, NULL},
};

static PyType_Spec ctx_spec = {
    .name = PIN_NAME ".Ctx",
    .basicsize = sizeof(ctx_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ctx_slots,
};

/* A second pinned type, registered only when a test asks (registry). */
static PyType_Slot spare_slots[] = {
    {Py_tp_new, ctx_new},
    {Py_tp_dealloc, ctx_dealloc},
    {0, NULL},
};

static PyType_Spec spare_spec = {
    .name = PIN_NAME ".Spare",
    .basicsize = sizeof(ctx_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = spare_slots,
};

/* ---- Blob: a shareable value ------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  PyObject *data; /* bytes */
} blob_t;

typedef struct {
  size_t size;
  char bytes[];
} blob_payload;

static PyObject *blob_make(PyTypeObject *type, PyObject *data) {
  allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
  blob_t *b = (blob_t *)alloc(type, 0);
  if (b != NULL) {
    b->data = Py_NewRef(data);
  }
  return (PyObject *)b;
}

static PyObject *blob_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  PyObject *data;
  static char *kwlist[] = {"data", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "S", kwlist, &data)) {
    return NULL;
  }
  return blob_make(type, data);
}

static void blob_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  Py_CLEAR(((blob_t *)self)->data);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *blob_get_data(PyObject *self, void *closure) {
  (void)closure;
  return Py_NewRef(((blob_t *)self)->data);
}

static PyObject *blob_reduce(PyObject *self, PyObject *unused) {
  (void)unused;
  return ABI->reduce_shared(self);
}

static void *blob_share(PyObject *obj) {
  char *buf;
  Py_ssize_t n;
  if (PyBytes_AsStringAndSize(((blob_t *)obj)->data, &buf, &n) < 0) {
    return NULL;
  }
  blob_payload *p = malloc(sizeof(*p) + (size_t)n);
  if (p == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  p->size = (size_t)n;
  memcpy(p->bytes, buf, (size_t)n);
  return p;
}

static PyObject *blob_rebuild(PyTypeObject *type, void *payload) {
  blob_payload *p = payload;
  PyObject *data = PyBytes_FromStringAndSize(p->bytes, (Py_ssize_t)p->size);
  if (data == NULL) {
    return NULL;
  }
  PyObject *b = blob_make(type, data);
  Py_DECREF(data);
  return b;
}

static void blob_free(void *payload) { free(payload); }

static PyMethodDef blob_methods[] = {
    {"__reduce__", blob_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef blob_getset[] = {
    {"data", blob_get_data, NULL, "The bytes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot blob_slots[] = {
    {Py_tp_new, blob_new},
    {Py_tp_dealloc, blob_dealloc},
    {Py_tp_methods, blob_methods},
    {Py_tp_getset, blob_getset},
    {0, NULL},
};

static PyType_Spec blob_spec = {
    .name = PIN_NAME ".Blob",
    .basicsize = sizeof(blob_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = blob_slots,
};

/* ---- ABI 1.1 from C ---------------------------------------------------------- */

/* A C behavior body: returns (interpreter id, on pinned thread, module is
 * the plugin's, this interpreter's Blob type check of args[0] (or None),
 * args, values of the cowns).  args[0] == "raise" raises ValueError;
 * args[0] == "busy" first spins 200 us holding the GIL, never looking at
 * signals (a C body that a Ctrl-C cannot interrupt). */
static PyObject *body(PyObject *module, PyObject **cowns, Py_ssize_t n,
                      PyObject *args, void *ctx) {
  long *calls = ctx;
  if (calls != NULL) {
    (*calls)++;
  }
  if (PyTuple_Size(args) > 0) {
    PyObject *first = PyTuple_GetItem(args, 0);
    if (PyUnicode_Check(first) &&
        PyUnicode_CompareWithASCIIString(first, "busy") == 0) {
      usleep(200);
    }
    if (PyUnicode_Check(first) &&
        PyUnicode_CompareWithASCIIString(first, "raise") == 0) {
      PyErr_SetString(PyExc_ValueError, "raised by a C behavior");
      return NULL;
    }
  }
  PyObject *values = PyList_New(0);
  if (values == NULL) {
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *v = ABI->cown_get(cowns[i]);
    if (v == NULL || PyList_Append(values, v) < 0) {
      Py_XDECREF(v);
      Py_DECREF(values);
      return NULL;
    }
    Py_DECREF(v);
  }
  PyObject *own = NULL;
  int is_mine = ABI->type_check(module, &def, &own); /* a module: 0 */
  PyObject *blob_check = Py_None;
  if (PyTuple_Size(args) > 0) {
    PyObject *m = NULL;
    int ok = ABI->type_check(PyTuple_GetItem(args, 0), &def, &m);
    blob_check = ok && m == module ? Py_True : Py_False;
  }
  return Py_BuildValue("(LiiOON)", (long long)ABI->interp_current(),
                       ABI->on_pinned_thread(),
                       PyModule_GetDef(module) == &def && !is_mine,
                       blob_check, args, values);
}

static void free_calls(void *ctx) { free(ctx); }

/* schedule_call(cowns: tuple, args: tuple | None) -> Cown */
static PyObject *m_schedule_call(PyObject *m, PyObject *a) {
  PyObject *cowns, *args;
  if (!PyArg_ParseTuple(a, "O!O", &PyTuple_Type, &cowns, &args)) {
    return NULL;
  }
  Py_ssize_t n = PyTuple_Size(cowns);
  PyObject *items[16];
  if (n > 16) {
    PyErr_SetString(PyExc_ValueError, "at most 16 cowns");
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    items[i] = PyTuple_GetItem(cowns, i);
  }
  long *calls = calloc(1, sizeof(long));
  return ABI->schedule_call(m, items, n, body, args == Py_None ? NULL : args,
                            calls, free_calls);
}

/* call_on_pinned_thread(args: tuple | None) -> Cown */
static PyObject *m_call_on_pinned_thread(PyObject *m, PyObject *args) {
  return ABI->call_on_pinned_thread(m, body, args == Py_None ? NULL : args,
                                    NULL, NULL);
}

static PyObject *m_cown_exception(PyObject *m, PyObject *c) {
  (void)m;
  int rc = ABI->cown_exception(c);
  return rc < 0 ? NULL : PyBool_FromLong(rc);
}

static PyObject *m_wait(PyObject *m, PyObject *t) {
  (void)m;
  double timeout = PyFloat_AsDouble(t);
  if (timeout == -1.0 && PyErr_Occurred()) {
    return NULL;
  }
  if (ABI->wait(timeout) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *m_quiesce(PyObject *m, PyObject *t) {
  (void)m;
  double timeout = PyFloat_AsDouble(t);
  if (timeout == -1.0 && PyErr_Occurred()) {
    return NULL;
  }
  if (ABI->quiesce(timeout) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *m_on_pinned_thread(PyObject *m, PyObject *u) {
  (void)m;
  (void)u;
  return PyBool_FromLong(ABI->on_pinned_thread());
}

/* type_check(obj) -> (result, module is this module) */
static PyObject *m_type_check(PyObject *m, PyObject *obj) {
  PyObject *found = (PyObject *)&def; /* must be overwritten */
  int rc = ABI->type_check(obj, &def, &found);
  return Py_BuildValue("(ii)", rc, found == m);
}

/* A native thread (no Python thread state of its own) that attaches with
 * PyGILState_Ensure and schedules a C behavior over one cown. */
typedef struct {
  PyObject *module, *cown, *result;
} native_job;

static void *native_main(void *arg) {
  native_job *job = arg;
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *args = Py_BuildValue("(s)", "from a native thread");
  PyObject *items[1] = {job->cown};
  job->result = args != NULL ? ABI->schedule_call(job->module, items, 1, body,
                                                  args, NULL, NULL)
                             : NULL;
  if (job->result == NULL) {
    PyErr_Print();
  }
  Py_XDECREF(args);
  PyGILState_Release(g);
  return NULL;
}

static PyObject *m_from_native_thread(PyObject *m, PyObject *cown) {
  native_job job = {m, cown, NULL};
  pthread_t t;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = pthread_create(&t, NULL, native_main, &job);
  if (rc == 0) {
    pthread_join(t, NULL);
  }
  Py_END_ALLOW_THREADS
  if (rc != 0) {
    PyErr_SetString(PyExc_OSError, "pthread_create failed");
    return NULL;
  }
  if (job.result == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "schedule_call failed on the thread");
  }
  return job.result;
}

/* register(kind, type=None): registers `type` (default: this module's
 * Spare) as "pinned" with Ctx's hooks, "pinned2" with other hooks, or
 * "shareable" with Blob's callbacks. */
static PyObject *m_register(PyObject *m, PyObject *a) {
  const char *kind;
  PyObject *type = NULL;
  if (!PyArg_ParseTuple(a, "s|O", &kind, &type)) {
    return NULL;
  }
  if (type == NULL || type == Py_None) {
    type = (PyObject *)state_of(m)->spare_type;
  }
  int rc;
  if (strcmp(kind, "shareable") == 0) {
    bocpy_shareable_spec spec = {
        .struct_size = sizeof(spec), .type = (PyTypeObject *)type,
        .share = blob_share, .rebuild = blob_rebuild,
        .free_payload = blob_free,
    };
    rc = ABI->register_shareable(&spec);
  } else {
    int other = strcmp(kind, "pinned2") == 0;
    bocpy_pinned_spec spec = {
        .struct_size = sizeof(spec), .type = (PyTypeObject *)type,
        .acquire = ctx_acquire, .release = other ? NULL : ctx_release,
        .destroy = ctx_destroy,
    };
    rc = ABI->register_pinned(&spec);
  }
  if (rc < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"schedule_call", m_schedule_call, METH_VARARGS, NULL},
    {"call_on_pinned_thread", m_call_on_pinned_thread, METH_O, NULL},
    {"cown_exception", m_cown_exception, METH_O, NULL},
    {"wait", m_wait, METH_O, NULL},
    {"quiesce", m_quiesce, METH_O, NULL},
    {"on_pinned_thread", m_on_pinned_thread, METH_NOARGS, NULL},
    {"type_check", m_type_check, METH_O, NULL},
    {"from_native_thread", m_from_native_thread, METH_O, NULL},
    {"register", m_register, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static int add_type(PyObject *m, PyType_Spec *spec, PyTypeObject **out) {
  *out = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
  return *out == NULL ? -1 : PyModule_AddType(m, *out);
}

static int pin_exec(PyObject *m) {
  pin_state *st = state_of(m);
  st->abi = BOCPY_IMPORT_ABI();
  if (st->abi == NULL) {
    return -1;
  }
  ABI = st->abi;
  if (add_type(m, &ctx_spec, &st->ctx_type) < 0 ||
      add_type(m, &blob_spec, &st->blob_type) < 0 ||
      add_type(m, &spare_spec, &st->spare_type) < 0) {
    return -1;
  }
  bocpy_pinned_spec pspec = {
      .struct_size = sizeof(pspec), .type = st->ctx_type,
      .acquire = ctx_acquire, .release = ctx_release, .destroy = ctx_destroy,
  };
  bocpy_shareable_spec sspec = {
      .struct_size = sizeof(sspec), .type = st->blob_type,
      .share = blob_share, .rebuild = blob_rebuild, .free_payload = blob_free,
  };
  if (ABI->register_pinned(&pspec) < 0 ||
      ABI->register_shareable(&sspec) < 0) {
    return -1;
  }
  return PyModule_AddIntConstant(m, "ABI_MINOR",
                                 (long)st->abi->header.minor);
}

static int pin_traverse(PyObject *m, visitproc visit, void *arg) {
  pin_state *st = state_of(m);
  Py_VISIT(st->ctx_type);
  Py_VISIT(st->blob_type);
  Py_VISIT(st->spare_type);
  return 0;
}

static int pin_clear(PyObject *m) {
  pin_state *st = state_of(m);
  Py_CLEAR(st->ctx_type);
  Py_CLEAR(st->blob_type);
  Py_CLEAR(st->spare_type);
  return 0;
}

static void pin_free(void *m) { pin_clear((PyObject *)m); }

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, pin_exec},
#ifndef PIN_PINNED_ONLY
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef def = {
    PyModuleDef_HEAD_INIT, .m_name = PIN_NAME,
    .m_size = sizeof(pin_state), .m_methods = methods, .m_slots = slots,
    .m_traverse = pin_traverse, .m_clear = pin_clear, .m_free = pin_free,
};

PyMODINIT_FUNC PIN_INIT(void);
PyMODINIT_FUNC PIN_INIT(void) { return PyModuleDef_Init(&def); }
