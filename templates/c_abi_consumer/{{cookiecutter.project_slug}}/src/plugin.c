/* plugin.c - {{cookiecutter.project_name}}: a bocpy plugin.
 *
 * An abi3 extension module: the stable ABI (Py_LIMITED_API=0x030C0000) and
 * <bocpy/bocpy.h> only, so one binary loads on CPython 3.12 and later.
 *
 * Counter is a *shareable* type: its state is a C block (not a Python
 * object) with an owner word.  When a Counter travels between interpreters
 * (put in a Cown, captured, returned...), bocpy calls
 *   share(obj)             producing interpreter: flip owner current -> none
 *                          and hand over a reference to the block;
 *   rebuild(type, block)   consuming interpreter: flip owner none -> current
 *                          and wrap the block in this interpreter's type;
 *   free_payload(block)    any thread: drop the payload's reference;
 *   unshare(obj, block)    the encoding failed after share: take it back.
 * No pickling and no Python-level call happens on the way.  Every accessor
 * checks that the calling interpreter owns the block.
 */
#include <Python.h>

#include <stdatomic.h>
#include <stdlib.h>

/* The lowest core minor this plugin needs (entries of ABI 1.0 only); a
 * newer core is fine.  Entries added later are tested with BOCPY_ABI_HAS. */
#ifndef BOCPY_TARGET_MINOR
#define BOCPY_TARGET_MINOR 0
#endif
#include <bocpy/bocpy.h>

/* ---- the C block -------------------------------------------------------------- */

typedef struct block {
  atomic_llong refs; /* wrappers and payloads holding the block */
  int64_t owner;     /* interpreter id or BOCPY_NO_OWNER: the ABI's owner_* */
  long long value;
} block_t;

/* Blocks alive in the process (for leak checks).  A C global holding no
 * Python object: a plain counter shared by every interpreter. */
static atomic_llong live_blocks;
/* C-behavior contexts freed so far (for tests of free_ctx); likewise. */
static atomic_llong freed_ctxs;

static block_t *block_new(long long value, int64_t owner) {
  block_t *b = malloc(sizeof(*b));
  if (b == NULL) {
    return NULL;
  }
  /* relaxed: not yet shared with any other thread. */
  atomic_init(&b->refs, 1);
  b->owner = owner;
  b->value = value;
  atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
  return b;
}

static void block_incref(block_t *b) {
  /* relaxed: the caller already holds a reference. */
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

static void block_decref(block_t *b) {
  /* acq_rel: the last holder must see every other holder's writes. */
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    free(b);
    /* relaxed: a statistic. */
    atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
  }
}

/* ---- the Counter type ---------------------------------------------------------- */

typedef struct {
  const bocpy_abi *abi;
  PyTypeObject *counter_type;
} plugin_state;

typedef struct {
  PyObject_HEAD
  const bocpy_abi *abi; /* the process's table (plain data) */
  block_t *block;       /* one reference */
} counter_t;

static PyObject *counter_wrap(PyTypeObject *type, const bocpy_abi *abi,
                              block_t *block) {
  counter_t *c = (counter_t *)PyType_GenericAlloc(type, 0);
  if (c == NULL) {
    return NULL;
  }
  c->abi = abi;
  c->block = block;
  return (PyObject *)c;
}

static PyObject *counter_new(PyTypeObject *type, PyObject *args,
                             PyObject *kw) {
  static char *kwlist[] = {"value", NULL};
  long long value = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|L:Counter", kwlist, &value)) {
    return NULL;
  }
  plugin_state *st = PyType_GetModuleState(type);
  if (st == NULL) {
    return NULL;
  }
  block_t *b = block_new(value, st->abi->interp_current());
  if (b == NULL) {
    return PyErr_NoMemory();
  }
  PyObject *c = counter_wrap(type, st->abi, b);
  if (c == NULL) {
    block_decref(b);
  }
  return c;
}

static void counter_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  counter_t *c = (counter_t *)self;
  if (c->block != NULL) {
    block_decref(c->block);
  }
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *counter_add(PyObject *self, PyObject *arg) {
  counter_t *c = (counter_t *)self;
  long long n = PyLong_AsLongLong(arg);
  if (n == -1 && PyErr_Occurred()) {
    return NULL;
  }
  if (c->abi->owner_check(&c->block->owner, "counter") < 0) {
    return NULL;
  }
  c->block->value += n;
  return PyLong_FromLongLong(c->block->value);
}

static PyObject *counter_get_value(PyObject *self, void *closure) {
  (void)closure;
  counter_t *c = (counter_t *)self;
  if (c->abi->owner_check(&c->block->owner, "counter") < 0) {
    return NULL;
  }
  return PyLong_FromLongLong(c->block->value);
}

static PyObject *counter_get_owner(PyObject *self, void *closure) {
  (void)closure;
  counter_t *c = (counter_t *)self;
  return PyLong_FromLongLong(c->abi->owner_load(&c->block->owner));
}

static PyObject *counter_reduce(PyObject *self, PyObject *unused) {
  (void)unused;
  /* Inside a container that bocpy pickles: still travels by share/rebuild. */
  return ((counter_t *)self)->abi->reduce_shared(self);
}

static PyMethodDef counter_methods[] = {
    {"add", counter_add, METH_O, "add(n) -> int: add n, return the value."},
    {"__reduce__", counter_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef counter_getset[] = {
    {"value", counter_get_value, NULL, "The count (owner only).", NULL},
    {"owner", counter_get_owner, NULL,
     "The owning interpreter's id, or -2 while in transit.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot counter_slots[] = {
    {Py_tp_new, counter_new},
    {Py_tp_dealloc, counter_dealloc},
    {Py_tp_methods, counter_methods},
    {Py_tp_getset, counter_getset},
    {Py_tp_doc, "Counter(value=0): a C counter that moves between "
                "interpreters without pickling."},
    {0, NULL},
};

static PyType_Spec counter_spec = {
    .name = "{{cookiecutter.project_slug}}.Counter",
    .basicsize = sizeof(counter_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = counter_slots,
};

/* ---- shareable-type hooks ------------------------------------------------------------ */

static void *counter_share(PyObject *obj) {
  counter_t *c = (counter_t *)obj;
  if (c->abi->owner_give(&c->block->owner, "counter") < 0) {
    return NULL; /* RuntimeError: not ours to send */
  }
  block_incref(c->block); /* the payload's reference */
  return c->block;
}

static PyObject *counter_rebuild(PyTypeObject *type, void *payload) {
  block_t *b = payload;
  plugin_state *st = PyType_GetModuleState(type);
  if (st == NULL) {
    return NULL;
  }
  if (st->abi->owner_take(&b->owner, "counter") < 0) {
    return NULL;
  }
  block_incref(b); /* the wrapper's reference */
  PyObject *c = counter_wrap(type, st->abi, b);
  if (c == NULL) {
    block_decref(b);
    (void)st->abi->owner_give(&b->owner, "counter");
  }
  return c;
}

static void counter_free_payload(void *payload) { block_decref(payload); }

static void counter_unshare(PyObject *obj, void *payload) {
  (void)payload;
  counter_t *c = (counter_t *)obj;
  (void)c->abi->owner_take(&c->block->owner, "counter");
}

/* ---- a C behavior ------------------------------------------------------------------- */

typedef struct {
  const bocpy_abi *abi;
  long long n;
} add_ctx;

static int add_body(PyObject **cowns, Py_ssize_t ncowns, void *ctx) {
  add_ctx *a = ctx;
  for (Py_ssize_t i = 0; i < ncowns; i++) {
    PyObject *v = a->abi->cown_get(cowns[i]);
    if (v == NULL) {
      return -1;
    }
    PyObject *arg = PyLong_FromLongLong(a->n);
    PyObject *r = arg != NULL ? PyObject_CallMethod(v, "add", "O", arg) : NULL;
    Py_XDECREF(arg);
    Py_DECREF(v);
    if (r == NULL) {
      return -1;
    }
    Py_DECREF(r);
  }
  return 0;
}

static void add_free(void *ctx) {
  free(ctx);
  /* relaxed: a statistic. */
  atomic_fetch_add_explicit(&freed_ctxs, 1, memory_order_relaxed);
}

static PyObject *add_later(PyObject *module, PyObject *args) {
  plugin_state *st = PyModule_GetState(module);
  PyObject *cown;
  long long n;
  if (!PyArg_ParseTuple(args, "OL:add_later", &cown, &n)) {
    return NULL;
  }
  add_ctx *ctx = malloc(sizeof(*ctx));
  if (ctx == NULL) {
    return PyErr_NoMemory();
  }
  ctx->abi = st->abi;
  ctx->n = n;
  /* schedule_c owns ctx from here: add_free runs once, also on failure. */
  return st->abi->schedule_c(&cown, 1, add_body, ctx, add_free);
}

static PyObject *live(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  return PyLong_FromLongLong(atomic_load_explicit(&live_blocks,
                                                  memory_order_relaxed));
}

static PyObject *ctxs_freed(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  return PyLong_FromLongLong(atomic_load_explicit(&freed_ctxs,
                                                  memory_order_relaxed));
}

static PyObject *abi_info(PyObject *module, PyObject *unused) {
  (void)unused;
  const bocpy_abi *abi = ((plugin_state *)PyModule_GetState(module))->abi;
  return Py_BuildValue(
      "{s:I,s:I,s:I,s:s,s:i,s:i,s:L}", "major", (unsigned)abi->header.major,
      "minor", (unsigned)abi->header.minor, "struct_size",
      (unsigned)abi->header.struct_size, "version", abi->header.version,
      "headers_minor", BOCPY_ABI_MINOR, "has_pump_in_progress",
      (int)BOCPY_ABI_HAS(abi, pump_in_progress), "shareable",
      (long long)abi->capability("shareable_types"));
}

static PyMethodDef plugin_methods[] = {
    {"add_later", add_later, METH_VARARGS,
     "add_later(cown, n) -> Cown: a C behavior adding n to the Counter in "
     "cown."},
    {"live", live, METH_NOARGS, "Counter blocks alive in the process."},
    {"ctxs_freed", ctxs_freed, METH_NOARGS, "C-behavior contexts freed."},
    {"abi_info", abi_info, METH_NOARGS, "The core's ABI header, as seen here."},
    {NULL, NULL, 0, NULL},
};

/* ---- module ---------------------------------------------------------------------------- */

static int plugin_exec(PyObject *module) {
  plugin_state *st = PyModule_GetState(module);
  /* In every interpreter: negotiate versions (ImportError on mismatch)... */
  st->abi = BOCPY_IMPORT_ABI();
  if (st->abi == NULL) {
    return -1;
  }
  /* ...create this interpreter's type and register it. */
  st->counter_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &counter_spec, NULL);
  if (st->counter_type == NULL ||
      PyModule_AddType(module, st->counter_type) < 0) {
    return -1;
  }
  bocpy_shareable_spec spec = {
      .struct_size = sizeof(bocpy_shareable_spec),
      .reserved = 0,
      .type = st->counter_type,
      .share = counter_share,
      .rebuild = counter_rebuild,
      .free_payload = counter_free_payload,
      .unshare = counter_unshare,
  };
  return st->abi->register_shareable(&spec);
}

static int plugin_traverse(PyObject *module, visitproc visit, void *arg) {
  plugin_state *st = PyModule_GetState(module);
  Py_VISIT(st->counter_type);
  return 0;
}

static int plugin_clear(PyObject *module) {
  plugin_state *st = PyModule_GetState(module);
  Py_CLEAR(st->counter_type);
  return 0;
}

static void plugin_free(void *module) { plugin_clear((PyObject *)module); }

static PyModuleDef_Slot plugin_slots[] = {
    {Py_mod_exec, plugin_exec},
    /* Without this a worker interpreter cannot import the plugin. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef plugin_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "{{cookiecutter.project_slug}}",
    .m_doc = "{{cookiecutter.description}}",
    .m_size = sizeof(plugin_state),
    .m_methods = plugin_methods,
    .m_slots = plugin_slots,
    .m_traverse = plugin_traverse,
    .m_clear = plugin_clear,
    .m_free = plugin_free,
};

PyMODINIT_FUNC PyInit_{{cookiecutter.project_slug}}(void);
PyMODINIT_FUNC PyInit_{{cookiecutter.project_slug}}(void) {
  return PyModuleDef_Init(&plugin_module);
}
