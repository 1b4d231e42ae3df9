/* when.c - the @when decorator in C: decoration, capture, encoding of the
 * captured values and scheduling, in one path shared by @when and whencall.
 *
 *   when(*cowns)         validates the arguments and returns a decorator
 *                        object holding them;
 *   decorator(fn)        looks fn's code object up in the plan cache (what
 *                        is fixed per code: the shared code blob, the
 *                        parameter layout, the names the body reads as
 *                        globals), captures the per-call values, encodes
 *                        them and schedules the behavior.
 *
 * Per call the work is: one dict lookup for the plan; the closure cells;
 * the trailing parameters (defaults, or for parameters without a default a
 * lookup in the calling frames); the module globals the body reads, each
 * through the module-global cache below; one encoding of (cells, extras);
 * one allocation for the behavior record.
 *
 * Module-global cache.  A module-level value a body reads is encoded once
 * into a shared, reference-counted record (boc_gval_t, exec/behavior.h) and
 * reused by every later behavior while the global still names the same
 * object with the same contents: deeply immutable values by identity, and
 * lists and dicts of deeply immutable items by comparing their items'
 * identities with a shallow copy kept here.  Workers decode a record once
 * (behavior.c, apply_globals).  Anything else is encoded per behavior, as a
 * snapshot.  A value that cannot travel is an error at @when for a script
 * (__main__: the worker has no binding of its own for it) and is left to
 * the worker's own import of the module otherwise (docs/behavior_code.md).
 */
#include "module/when.h"

#include <string.h>

#include "exec/behavior.h"
#include "exec/runtime.h"
#include "module/cown_type.h"
#include "value/handle.h"
#include "value/pycompat.h"
#include "value/transport.h"

/* ---- plans ------------------------------------------------------------------ */

/* What is fixed for one code object.  Held by a capsule (no name) in
 * st->plans; freed by the capsule's destructor in the same interpreter. */
typedef struct plan {
  boc_code_t *code;    /* the shared code blob (one reference) */
  PyObject *codeobj;   /* the code object (strong: its id is the cache key) */
  PyObject *qualname;  /* str */
  PyObject *params;    /* tuple: the first co_argcount parameter names */
  Py_ssize_t nparams;
  int varargs;         /* the body takes *args */
  int in_main;         /* defined in __main__ (a script) */
  PyObject *gnames;    /* tuple of str: names the body reads as globals */
  PyObject *gdict;     /* the globals dict gentries is for, or NULL */
  PyObject *gentries;  /* dict: name -> entry capsule, or NULL */
  PyObject *value_reads;     /* frozenset: names whose .value the body reads */
  Py_ssize_t read_check_max; /* check those reads when ncowns <= this */
} plan_t;

static void plan_free(PyObject *cap) {
  plan_t *p = PyCapsule_GetPointer(cap, NULL);
  if (p == NULL) {
    PyErr_Clear();
    return;
  }
  if (p->code != NULL) {
    boc_code_decref(p->code);
  }
  Py_XDECREF(p->codeobj);
  Py_XDECREF(p->qualname);
  Py_XDECREF(p->params);
  Py_XDECREF(p->gnames);
  Py_XDECREF(p->gdict);
  Py_XDECREF(p->gentries);
  Py_XDECREF(p->value_reads);
  PyMem_Free(p);
}

/* A new plan capsule for fn, from bocpy._when._plan_info(fn). */
static PyObject *plan_make(boc_state_t *st, PyObject *fn) {
  if (st->plan_info == NULL) {
    PyObject *mod = PyImport_ImportModule("bocpy._when");
    if (mod == NULL) {
      return NULL;
    }
    st->plan_info = PyObject_GetAttrString(mod, "_plan_info");
    Py_DECREF(mod);
    if (st->plan_info == NULL) {
      return NULL;
    }
  }
  PyObject *info = PyObject_CallOneArg(st->plan_info, fn);
  if (info == NULL) {
    return NULL;
  }
  const char *bytes, *module, *file;
  Py_ssize_t size;
  PyObject *params, *gnames, *qualname, *value_reads;
  Py_ssize_t read_check_max;
  int varargs;
  if (!PyArg_ParseTuple(info, "y#szO!pO!UO!n:plan", &bytes, &size, &module,
                        &file, &PyTuple_Type, &params, &varargs, &PyTuple_Type,
                        &gnames, &qualname, &PyFrozenSet_Type, &value_reads,
                        &read_check_max)) {
    Py_DECREF(info);
    return NULL;
  }
  plan_t *p = PyMem_Calloc(1, sizeof(*p));
  if (p == NULL) {
    Py_DECREF(info);
    return PyErr_NoMemory();
  }
  p->code = boc_code_new(bytes, (size_t)size, module, file);
  p->codeobj = Py_NewRef(PyFunction_GetCode(fn));
  p->qualname = Py_NewRef(qualname);
  p->params = Py_NewRef(params);
  p->nparams = PyTuple_GET_SIZE(params);
  p->varargs = varargs;
  p->in_main = strcmp(module, "__main__") == 0;
  p->gnames = Py_NewRef(gnames);
  p->value_reads = Py_NewRef(value_reads);
  p->read_check_max = read_check_max;
  Py_DECREF(info);
  PyObject *cap = p->code != NULL ? PyCapsule_New(p, NULL, plan_free) : NULL;
  if (cap == NULL) {
    if (p->code != NULL) {
      boc_code_decref(p->code);
    }
    Py_DECREF(p->codeobj);
    Py_DECREF(p->qualname);
    Py_DECREF(p->params);
    Py_DECREF(p->gnames);
    Py_DECREF(p->value_reads);
    PyMem_Free(p);
  }
  return cap;
}

/* The plan capsule of fn's code (new reference: the caller keeps it alive
 * while it uses the plan, whatever the cache drops meanwhile).  Keyed by the
 * code object's address (hashing a code object hashes its contents); the
 * plan keeps the code object alive, so the address is not reused while the
 * entry exists. */
static PyObject *plan_get(boc_state_t *st, PyObject *fn) {
  PyObject *code = PyLong_FromVoidPtr(PyFunction_GetCode(fn));
  if (code == NULL) {
    return NULL;
  }
  PyObject *cap = PyDict_GetItemWithError(st->plans, code); /* borrowed */
  if (cap != NULL) {
    Py_DECREF(code);
    return Py_NewRef(cap);
  }
  if (PyErr_Occurred() || (cap = plan_make(st, fn)) == NULL) {
    Py_DECREF(code);
    return NULL;
  }
  /* Bounded: programs that generate behaviors would grow it forever. */
  if ((PyDict_GET_SIZE(st->plans) >= boc_cache_limit() &&
       boc_cache_trim(st->plans) < 0) ||
      PyDict_SetItem(st->plans, code, cap) < 0) {
    Py_DECREF(cap);
    Py_DECREF(code);
    return NULL;
  }
  Py_DECREF(code);
  return cap;
}

/* ---- module-global cache ----------------------------------------------------- */

/* What was last decided for one global of one module, while it names obj:
 *   skip        nothing is shipped: the worker's module has its own binding
 *               (a module-level function it can find by name, or a value
 *               that cannot travel, in an importable module);
 *   gval set    reuse gval while boc_gval_unchanged(obj, shallow);
 *   neither     encode obj for every behavior (a snapshot each time). */
typedef struct gentry {
  PyObject *obj;     /* the value (strong) */
  PyObject *shallow; /* boc_gval_shallow of it, or None */
  boc_gval_t *gval;  /* its shared encoding (one reference), or NULL */
  int skip;
} gentry_t;

static void gentry_free(PyObject *cap) {
  gentry_t *e = PyCapsule_GetPointer(cap, NULL);
  if (e == NULL) {
    PyErr_Clear();
    return;
  }
  Py_XDECREF(e->obj);
  Py_XDECREF(e->shallow);
  if (e->gval != NULL) {
    boc_gval_decref(e->gval);
  }
  PyMem_Free(e);
}

/* The {name: entry} dict for a module's globals dict (borrowed from the
 * plan, which caches it for its functions' globals). */
static PyObject *gentries_for(boc_state_t *st, plan_t *p, PyObject *globals) {
  if (p->gdict == globals) {
    return p->gentries;
  }
  PyObject *key = PyLong_FromVoidPtr(globals);
  if (key == NULL) {
    return NULL;
  }
  PyObject *pair = PyDict_GetItemWithError(st->gcache, key); /* borrowed */
  PyObject *entries;
  if (pair != NULL) {
    entries = PyTuple_GET_ITEM(pair, 1);
  } else {
    if (PyErr_Occurred()) {
      Py_DECREF(key);
      return NULL;
    }
    /* The tuple keeps the globals dict alive, so its id is not reused. */
    entries = PyDict_New();
    pair = entries != NULL ? PyTuple_Pack(2, globals, entries) : NULL;
    Py_XDECREF(entries);
    if (pair == NULL || PyDict_SetItem(st->gcache, key, pair) < 0) {
      Py_XDECREF(pair);
      Py_DECREF(key);
      return NULL;
    }
    Py_DECREF(pair); /* st->gcache keeps it */
  }
  Py_DECREF(key);
  if (p->gdict == NULL) {
    p->gdict = Py_NewRef(globals);
    p->gentries = Py_NewRef(entries);
  }
  return entries;
}

static int gval_kind(PyObject *v) {
  enum { DEPTH = 8 };
  if (boc_deeply_immutable(v, DEPTH)) {
    return BOC_GVAL_IMMUTABLE;
  }
  if (PyList_CheckExact(v)) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
      if (!boc_deeply_immutable(PyList_GET_ITEM(v, i), DEPTH)) {
        return BOC_GVAL_OTHER;
      }
    }
    return BOC_GVAL_LIST;
  }
  if (PyDict_CheckExact(v)) {
    Py_ssize_t pos = 0;
    PyObject *k, *x;
    while (PyDict_Next(v, &pos, &k, &x)) {
      if (!boc_deeply_immutable(k, DEPTH) || !boc_deeply_immutable(x, DEPTH)) {
        return BOC_GVAL_OTHER;
      }
    }
    return BOC_GVAL_DICT;
  }
  return BOC_GVAL_OTHER;
}

/* Code, not data: found in the worker's own copy of the module. */
static int not_data(PyObject *v) {
  return PyModule_Check(v) || PyFunction_Check(v) || PyCFunction_Check(v) ||
         PyMethod_Check(v) || PyType_Check(v);
}

/* Records the decision for global `name` = value (see gentry_t); takes a
 * new reference to gval when not NULL.  0, or -1 with an exception. */
static int set_entry(PyObject *entries, PyObject *name, PyObject *value,
                     int kind, boc_gval_t *gval, int skip) {
  gentry_t *e = PyMem_Calloc(1, sizeof(*e));
  if (e == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  e->shallow = gval != NULL ? boc_gval_shallow(value, kind) : Py_NewRef(Py_None);
  PyObject *cap = e->shallow != NULL ? PyCapsule_New(e, NULL, gentry_free) : NULL;
  if (cap == NULL) {
    Py_XDECREF(e->shallow);
    PyMem_Free(e);
    return -1;
  }
  e->obj = Py_NewRef(value);
  e->skip = skip;
  if (gval != NULL) {
    boc_gval_incref(gval);
    e->gval = gval;
  }
  int rc = PyDict_SetItem(entries, name, cap);
  Py_DECREF(cap);
  return rc;
}

/* bocpy._worker.main_binds(name): 1 when the workers' reduced copy of the
 * running script binds name itself, 0 when not, -1 with an exception. */
static int main_binds(PyObject *name) {
  PyObject *mod = PyImport_ImportModule("bocpy._worker");
  if (mod == NULL) {
    return -1;
  }
  PyObject *r = PyObject_CallMethod(mod, "main_binds", "O", name);
  Py_DECREF(mod);
  if (r == NULL) {
    return -1;
  }
  int own = PyObject_IsTrue(r);
  Py_DECREF(r);
  return own;
}

/* The record to ship for global `name` = value: *out gets a new reference,
 * or NULL when nothing is shipped (the worker's module has its own).  0, or
 * -1 with an exception (TypeError naming the global when a script's value
 * cannot travel). */
static int capture_global(boc_state_t *st, plan_t *p, PyObject *entries,
                          PyObject *name, PyObject *value, boc_gval_t **out) {
  *out = NULL;
  PyObject *cap = PyDict_GetItemWithError(entries, name); /* borrowed */
  if (cap != NULL) {
    gentry_t *e = PyCapsule_GetPointer(cap, NULL);
    if (e == NULL) {
      return -1;
    }
    if (e->obj == value && e->skip) {
      return 0; /* the worker's module has its own */
    }
    if (e->obj == value && e->gval != NULL &&
        boc_gval_unchanged(value, e->shallow)) {
      boc_gval_incref(e->gval);
      *out = e->gval;
      st->g_reused++;
      return 0;
    }
  } else if (PyErr_Occurred()) {
    return -1;
  }
  int kind = gval_kind(value);
  boc_payload_t *payload = boc_payload_encode(value);
  boc_gval_t *g = NULL;
  if (payload == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
      return -1;
    }
    if (p->in_main) {
      /* A script: the worker's reduced copy may bind the name itself (a
       * module-level lock or logger): then the worker uses its own. */
      PyObject *cause = PyErr_GetRaisedException();
      int own = main_binds(name);
      if (own < 0) {
        Py_XDECREF(cause);
        return -1;
      }
      if (own) {
        Py_XDECREF(cause);
        goto own_binding;
      }
      PyErr_Format(
          PyExc_TypeError,
          "behavior %R reads the module global %R, a value of type '%s' that "
          "cannot be sent to a worker interpreter (a script's globals are "
          "copied into each behavior); create it inside the body, define it "
          "in an importable module (each worker then imports its own), or "
          "keep it in a PinnedCown",
          p->qualname, name, Py_TYPE(value)->tp_name);
      PyObject *exc = PyErr_GetRaisedException();
      PyException_SetCause(exc, cause); /* steals cause */
      PyErr_SetRaisedException(exc);
      return -1;
    }
    PyErr_Clear(); /* an importable module: the worker's import binds it */
  own_binding:
    kind = BOC_GVAL_OTHER;
  } else {
    const char *cname = PyUnicode_AsUTF8(name);
    g = cname != NULL ? boc_gval_new(cname, payload, kind)
                      : (boc_payload_free(payload), NULL);
    if (g == NULL) {
      return -1;
    }
    st->g_encoded++;
  }
  /* Not reusable (OTHER): a snapshot per behavior; the entry only
   * remembers that decision.  Skipped: g is NULL, the entry says so. */
  int rc = set_entry(entries, name, value, kind,
                     kind == BOC_GVAL_OTHER ? NULL : g, g == NULL);
  if (rc < 0) {
    if (g != NULL) {
      boc_gval_decref(g);
    }
    return -1;
  }
  *out = g;
  return 0;
}

/* A module-level function the body reads: 0 when the worker finds it by
 * module and qualified name in its own copy of the module (skipped), 1 when
 * it must travel by value (a lambda or a local function bound to a module
 * name); -1 with an exception. */
static int function_travels(boc_state_t *st, PyObject *entries, PyObject *name,
                            PyObject *fn) {
  PyObject *cap = PyDict_GetItemWithError(entries, name); /* borrowed */
  if (cap != NULL) {
    gentry_t *e = PyCapsule_GetPointer(cap, NULL);
    if (e == NULL) {
      return -1;
    }
    if (e->obj == fn) {
      return e->skip ? 0 : 1;
    }
  } else if (PyErr_Occurred()) {
    return -1;
  }
  if (st->fn_importable == NULL) {
    PyObject *mod = PyImport_ImportModule("bocpy._byvalue");
    if (mod == NULL) {
      return -1;
    }
    st->fn_importable = PyObject_GetAttrString(mod, "_importable");
    Py_DECREF(mod);
    if (st->fn_importable == NULL) {
      return -1;
    }
  }
  PyObject *r = PyObject_CallOneArg(st->fn_importable, fn);
  int importable = r != NULL ? PyObject_IsTrue(r) : -1;
  Py_XDECREF(r);
  if (importable < 0) {
    return -1;
  }
  if (importable) {
    return set_entry(entries, name, fn, BOC_GVAL_OTHER, NULL, 1) < 0 ? -1 : 0;
  }
  return 1; /* capture_global encodes it and records that */
}

/* ---- trailing parameters ------------------------------------------------------ */

static PyObject *mapping_get(PyObject *map, PyObject *key) {
  if (PyDict_Check(map)) {
    return Py_XNewRef(PyDict_GetItemWithError(map, key));
  }
  PyObject *v = PyObject_GetItem(map, key);
  if (v == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
    PyErr_Clear();
  }
  return v;
}

/* A trailing parameter without a default: the scheduling frame's locals,
 * then its globals, then the calling frames outwards (new reference). */
static PyObject *lookup_capture(PyObject *name) {
  PyFrameObject *f = (PyFrameObject *)Py_XNewRef(PyEval_GetFrame());
  while (f != NULL) {
    PyObject *locals = PyFrame_GetLocals(f);
    PyObject *v = locals != NULL ? mapping_get(locals, name) : NULL;
    Py_XDECREF(locals);
    if (v == NULL && !PyErr_Occurred()) {
      PyObject *globals = PyFrame_GetGlobals(f);
      v = mapping_get(globals, name);
      Py_DECREF(globals);
    }
    if (v != NULL || PyErr_Occurred()) {
      Py_DECREF(f);
      return v;
    }
    PyFrameObject *back = PyFrame_GetBack(f);
    Py_DECREF(f);
    f = back;
  }
  PyErr_Format(PyExc_RuntimeError, "Cannot resolve capture: %U", name);
  return NULL;
}

/* The values of the trailing positional parameters (new tuple). */
static PyObject *trailing(plan_t *p, PyObject *fn, Py_ssize_t ncowns) {
  Py_ssize_t n = p->nparams - ncowns;
  if (n <= 0) {
    if (n < 0 && !p->varargs) {
      PyErr_Format(PyExc_TypeError,
                   "behavior %R takes %zd positional parameter(s) but @when "
                   "names %zd cown argument(s)",
                   p->qualname, p->nparams, ncowns);
      return NULL;
    }
    return PyTuple_New(0);
  }
  PyObject *defaults = PyFunction_GetDefaults(fn); /* borrowed, or NULL */
  Py_ssize_t ndef = defaults != NULL ? PyTuple_GET_SIZE(defaults) : 0;
  Py_ssize_t first_default = p->nparams - ndef;
  PyObject *extras = PyTuple_New(n);
  if (extras == NULL) {
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    Py_ssize_t k = ncowns + i;
    PyObject *v = k >= first_default
                      ? Py_NewRef(PyTuple_GET_ITEM(defaults, k - first_default))
                      : lookup_capture(PyTuple_GET_ITEM(p->params, k));
    if (v == NULL) {
      Py_DECREF(extras);
      return NULL;
    }
    PyTuple_SET_ITEM(extras, i, v);
  }
  return extras;
}

/* ---- scheduling -------------------------------------------------------------- */

static int any_pinned(PyObject *args) {
  Py_ssize_t n = PySequence_Fast_GET_SIZE(args);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *a = PySequence_Fast_GET_ITEM(args, i);
    boc_cown_t *c = boc_handle_record(a);
    if (c != NULL) {
      if (boc_cown_is_pinned(c)) {
        return 1;
      }
      continue;
    }
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(a); j++) {
      c = boc_handle_record(PySequence_Fast_GET_ITEM(a, j));
      if (c != NULL && boc_cown_is_pinned(c)) {
        return 1;
      }
    }
  }
  return 0;
}

/* Starts the runtime on first use from main (bocpy.start's defaults). */
static int autostart(boc_state_t *st) {
  if (st->autostart == NULL) {
    PyObject *mod = PyImport_ImportModule("bocpy._when");
    if (mod == NULL) {
      return -1;
    }
    st->autostart = PyObject_GetAttrString(mod, "_autostart");
    Py_DECREF(mod);
    if (st->autostart == NULL) {
      return -1;
    }
  }
  PyObject *r = PyObject_CallNoArgs(st->autostart);
  Py_XDECREF(r);
  return r != NULL ? 0 : -1;
}

/* Encoding the captures failed with TypeError (set): replaces it by a
 * TypeError naming the first captured variable that cannot travel, with
 * the original error as its cause.  Leaves the error as it is when no
 * single value fails on its own. */
static void name_capture_error(plan_t *p, PyObject *fn, PyObject *cells,
                               PyObject *extras, Py_ssize_t ncowns) {
  PyObject *cause = PyErr_GetRaisedException();
  PyObject *freevars =
      cells != NULL ? PyObject_GetAttrString(PyFunction_GetCode(fn),
                                             "co_freevars")
                    : NULL;
  PyErr_Clear();
  Py_ssize_t ncells = cells != NULL ? PyTuple_GET_SIZE(cells) : 0;
  Py_ssize_t nextra = PyTuple_GET_SIZE(extras);
  for (Py_ssize_t i = 0; i < ncells + nextra; i++) {
    PyObject *v = i < ncells ? PyTuple_GET_ITEM(cells, i)
                             : PyTuple_GET_ITEM(extras, i - ncells);
    boc_payload_t *one = boc_payload_encode(v);
    if (one != NULL) {
      boc_payload_free(one);
      continue;
    }
    PyObject *inner = PyErr_GetRaisedException();
    PyObject *name = NULL;
    if (i < ncells) {
      if (freevars != NULL && PyTuple_Check(freevars) &&
          PyTuple_GET_SIZE(freevars) == ncells) {
        name = Py_NewRef(PyTuple_GET_ITEM(freevars, i));
      }
    } else if (ncowns + (i - ncells) < p->nparams) {
      name = Py_NewRef(PyTuple_GET_ITEM(p->params, ncowns + (i - ncells)));
    }
    if (name == NULL) {
      name = PyUnicode_FromFormat("captures[%zd]", i - ncells);
    }
    if (name != NULL) {
      PyErr_Format(PyExc_TypeError,
                   "cannot send captured variable %R (a %s) of behavior %R "
                   "to a worker interpreter: %S; create it inside the body, "
                   "or keep it in a Cown or PinnedCown",
                   name, Py_TYPE(v)->tp_name, p->qualname, inner);
      Py_DECREF(name);
      PyObject *exc = PyErr_GetRaisedException();
      PyException_SetCause(exc, inner); /* steals inner */
      PyErr_SetRaisedException(exc);
      Py_XDECREF(freevars);
      Py_DECREF(cause);
      return;
    }
    Py_XDECREF(inner);
    break;
  }
  PyErr_Clear();
  Py_XDECREF(freevars);
  PyErr_SetRaisedException(cause);
}

enum { SMALL_GLOBALS = 16 };

/* Schedules fn over args (a tuple or list of cowns and groups, already
 * validated).  extras: the trailing values (whencall), or NULL to capture
 * them from fn's defaults and the calling frames.  Returns the result Cown. */
/* The body reads .value of a name that may be a captured cown (a global, a
 * closure variable, a trailing parameter): bocpy._errors.check_reads raises
 * RuntimeError at the @when line when that cown is not one @when names (the
 * behavior could never own it).  0, or -1 with that error. */
static int check_reads(boc_state_t *st, plan_t *p, PyObject *fn,
                       PyObject *args, PyObject *extras) {
  if (st->check_reads == NULL) {
    PyObject *mod = PyImport_ImportModule("bocpy._errors");
    if (mod == NULL) {
      return -1;
    }
    st->check_reads = PyObject_GetAttrString(mod, "check_reads");
    Py_DECREF(mod);
    if (st->check_reads == NULL) {
      return -1;
    }
  }
  PyObject *caps = PyTuple_Pack(2, Py_None, extras);
  PyObject *r = caps != NULL
                    ? PyObject_CallFunctionObjArgs(st->check_reads,
                                                   p->value_reads, p->params,
                                                   fn, args, caps, NULL)
                    : NULL;
  Py_XDECREF(caps);
  Py_XDECREF(r);
  return r != NULL ? 0 : -1;
}

/* A chunk of bocpy.map: fn is called on each of items (a tuple) by one
 * behavior over no cowns (schedule_fn with bulk != NULL). */
typedef struct bulk_req {
  PyObject *items;          /* tuple (borrowed) */
  boc_bulk_latch_t *latch;  /* borrowed: the behavior takes a reference */
  int64_t index;
} bulk_req_t;

static PyObject *schedule_fn(boc_state_t *st, PyObject *fn, PyObject *args,
                             PyObject *extras, int start_if_needed,
                             const bulk_req_t *bulk) {
  if (!PyFunction_Check(fn)) {
    return PyErr_Format(PyExc_TypeError, "@when decorates functions, not %s",
                        Py_TYPE(fn)->tp_name);
  }
  PyObject *pcap = plan_get(st, fn);
  if (pcap == NULL) {
    return NULL;
  }
  plan_t *p = PyCapsule_GetPointer(pcap, NULL);
  PyObject *result = NULL, *cells = NULL;
  boc_gval_t *small[SMALL_GLOBALS];
  boc_gval_t **gv = small;
  int32_t ng = 0;
  Py_ssize_t ncowns = PySequence_Fast_GET_SIZE(args);

  if (extras != NULL) {
    Py_INCREF(extras);
  } else if ((extras = trailing(p, fn, ncowns)) == NULL) {
    goto done;
  }
  if (bulk == NULL && ncowns <= p->read_check_max &&
      check_reads(st, p, fn, args, extras) < 0) {
    goto done;
  }
  PyObject *closure = PyFunction_GetClosure(fn); /* borrowed, or NULL */
  Py_ssize_t ncells = closure != NULL ? PyTuple_GET_SIZE(closure) : 0;
  if (ncells > 0) {
    cells = PyTuple_New(ncells);
    if (cells == NULL) {
      goto done;
    }
    for (Py_ssize_t i = 0; i < ncells; i++) {
      PyObject *v = PyCell_GET(PyTuple_GET_ITEM(closure, i));
      if (v == NULL) {
        PyObject *names = PyObject_GetAttrString(PyFunction_GetCode(fn),
                                                 "co_freevars");
        if (names != NULL && PyTuple_Check(names) &&
            PyTuple_GET_SIZE(names) == ncells) {
          PyErr_Format(PyExc_NameError,
                       "behavior %R captures %R before it is assigned",
                       p->qualname, PyTuple_GET_ITEM(names, i));
        } else if (!PyErr_Occurred()) {
          PyErr_Format(PyExc_NameError,
                       "behavior %R captures a variable before it is assigned",
                       p->qualname);
        }
        Py_XDECREF(names);
        goto done;
      }
      PyTuple_SET_ITEM(cells, i, Py_NewRef(v));
    }
  }
  /* Module globals the body reads (data only).  Pinned behaviors run with
   * the real module on main, so they need none. */
  Py_ssize_t nnames = PyTuple_GET_SIZE(p->gnames);
  if (nnames > 0 && !any_pinned(args)) {
    PyObject *globals = PyFunction_GetGlobals(fn); /* borrowed */
    PyObject *entries = gentries_for(st, p, globals);
    if (entries == NULL) {
      goto done;
    }
    Py_INCREF(entries); /* capture_global may run user code (pickling) */
    if (nnames > SMALL_GLOBALS) {
      gv = PyMem_Malloc((size_t)nnames * sizeof(*gv));
      if (gv == NULL) {
        Py_DECREF(entries);
        PyErr_NoMemory();
        goto done;
      }
    }
    for (Py_ssize_t i = 0; i < nnames; i++) {
      PyObject *name = PyTuple_GET_ITEM(p->gnames, i);
      PyObject *v = PyDict_GetItemWithError(globals, name); /* borrowed */
      if (v == NULL) {
        if (PyErr_Occurred()) {
          Py_DECREF(entries);
          goto done;
        }
        continue; /* a builtin, or bound later */
      }
      if (PyFunction_Check(v)) {
        int travels = function_travels(st, entries, name, v);
        if (travels < 0) {
          Py_DECREF(entries);
          goto done;
        }
        if (!travels) {
          continue;
        }
      } else if (not_data(v)) {
        continue;
      }
      Py_INCREF(v);
      boc_gval_t *g;
      int rc = capture_global(st, p, entries, name, v, &g);
      Py_DECREF(v);
      if (rc < 0) {
        Py_DECREF(entries);
        goto done;
      }
      if (g != NULL) {
        gv[ng++] = g;
      }
    }
    Py_DECREF(entries);
  }
  if (start_if_needed && !boc_runtime_running() && boc_is_main_interp() &&
      autostart(st) < 0) {
    goto done;
  }
  boc_payload_t *caps = NULL;
  if (cells != NULL || PyTuple_GET_SIZE(extras) > 0) {
    PyObject *empty = cells == NULL ? PyTuple_New(0) : NULL;
    PyObject *t = cells != NULL || empty != NULL
                      ? PyTuple_Pack(2, cells != NULL ? cells : empty, extras)
                      : NULL;
    Py_XDECREF(empty);
    caps = t != NULL ? boc_payload_encode(t) : NULL;
    Py_XDECREF(t);
    if (caps == NULL) {
      if (t != NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
        name_capture_error(p, fn, cells, extras, ncowns);
      }
      goto done;
    }
  }
  if (PyDict_GET_SIZE(st->borrowed) > 0 && boc_release_borrowed(st) < 0) {
    boc_payload_free(caps);
    goto done;
  }
  boc_behavior_t *b = boc_behavior_new(p->code, args, caps, gv, ng);
  ng = 0; /* the behavior (or its failure path) owns them now */
  if (b == NULL) {
    goto done;
  }
  if (bulk != NULL) {
    boc_payload_t *items = boc_payload_encode(bulk->items);
    if (items == NULL ||
        boc_behavior_set_bulk(b, items, bulk->latch, bulk->index) < 0) {
      boc_behavior_drop_unscheduled(b);
      goto done;
    }
  }
  boc_cown_t *rc = boc_behavior_schedule(b, boc_runtime_dispatch());
  if (rc != NULL) {
    result = boc_handle_new(rc);
    boc_cown_decref(rc);
  }
done:
  for (int32_t i = 0; i < ng; i++) {
    boc_gval_decref(gv[i]);
  }
  if (gv != small) {
    PyMem_Free(gv);
  }
  Py_XDECREF(cells);
  Py_XDECREF(extras);
  Py_DECREF(pcap);
  return result;
}

/* ---- the decorator object ------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject *args; /* tuple of cowns and groups, validated */
} when_obj_t;

static PyObject *when_call(PyObject *self, PyObject *const *args,
                           size_t nargsf, PyObject *kwnames) {
  Py_ssize_t n = PyVectorcall_NARGS(nargsf);
  if (n != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
    PyErr_SetString(PyExc_TypeError,
                    "the @when decorator takes the function to schedule");
    return NULL;
  }
  /* The state of the module that made this decorator's type: this
   * interpreter's (decorators never cross interpreters). */
  boc_state_t *st = PyType_GetModuleState(Py_TYPE(self));
  if (st == NULL) {
    return NULL;
  }
  /* Importing a module on a worker (bocpy._worker.loading): its top-level
   * behaviors are not scheduled again there. */
  if (st->worker_dict == NULL) {
    PyObject *mod = PyImport_ImportModule("bocpy._worker");
    if (mod == NULL) {
      return NULL;
    }
    st->worker_dict = Py_NewRef(PyModule_GetDict(mod));
    Py_DECREF(mod);
  }
  PyObject *loading = PyDict_GetItemWithError(st->worker_dict, st->s_loading);
  if (loading == Py_True) {
    Py_RETURN_NONE;
  }
  if (loading == NULL && PyErr_Occurred()) {
    return NULL;
  }
  return schedule_fn(st, args[0], ((when_obj_t *)self)->args, NULL, 1, NULL);
}

static void when_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  Py_XDECREF(((when_obj_t *)self)->args);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyMemberDef when_members[] = {
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(when_obj_t, vectorcall),
     Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot when_slots[] = {
    {Py_tp_dealloc, when_dealloc},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, when_members},
    {Py_tp_doc, "The decorator when(*cowns) returns: schedules the function "
                "it decorates over those cowns and returns the result Cown."},
    {0, NULL},
};

static PyType_Spec when_spec = {
    .name = "bocpy._core.When",
    .basicsize = sizeof(when_obj_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = when_slots,
};

PyDoc_STRVAR(when_doc,
"when($module, /, *cowns)\n--\n\n"
"Schedule the decorated function as a behavior over ``cowns``.\n\n"
"Each argument is a cown or a list/tuple of cowns (a *group*, delivered to\n"
"the body as one list).  The body runs once it holds every cown named, on a\n"
"worker (or on the main thread when a ``PinnedCown`` is named).  The\n"
"decorated name is bound to the behavior's result ``Cown``.\n\n"
"Raises:\n"
"    TypeError: an argument is not a cown or a group of cowns; a capture\n"
"        cannot be sent to another interpreter; the function is a\n"
"        generator or coroutine.\n"
"    RuntimeError: the runtime is shutting down; a trailing parameter\n"
"        cannot be resolved (``Cannot resolve capture: NAME``).");
static PyObject *when_fn(PyObject *module, PyObject *const *args, Py_ssize_t n) {
  boc_state_t *st = PyModule_GetState(module);
  for (Py_ssize_t i = 0; i < n; i++) {
    if (boc_behavior_check_arg(args[i], i) < 0) {
      return NULL;
    }
  }
  PyObject *t = PyTuple_New(n);
  if (t == NULL) {
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyTuple_SET_ITEM(t, i, Py_NewRef(args[i]));
  }
  when_obj_t *w = PyObject_New(when_obj_t, st->when_type);
  if (w == NULL) {
    Py_DECREF(t);
    return NULL;
  }
  w->vectorcall = when_call;
  w->args = t;
  return (PyObject *)w;
}

PyDoc_STRVAR(whencall_doc,
"_whencall(fn, args, extras) -> Cown\n\n"
"whencall's scheduling: fn over args (a list or tuple of cowns and groups),\n"
"with the trailing values extras (a tuple).  Does not start the runtime.");
static PyObject *whencall(PyObject *module, PyObject *const *args,
                          Py_ssize_t n) {
  if (n != 3 || !(PyList_Check(args[1]) || PyTuple_Check(args[1])) ||
      !PyTuple_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError,
                    "_whencall(fn, args: list | tuple, extras: tuple)");
    return NULL;
  }
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(args[1]); i++) {
    if (boc_behavior_check_arg(PySequence_Fast_GET_ITEM(args[1], i), i) < 0) {
      return NULL;
    }
  }
  return schedule_fn(PyModule_GetState(module), args[0], args[1], args[2], 0,
                     NULL);
}

/* ---- bocpy.map ------------------------------------------------------------------ */

static const char LATCH_NAME[] = "bocpy._core.map_latch";

static void latch_capsule_free(PyObject *cap) {
  boc_bulk_latch_t *l = PyCapsule_GetPointer(cap, LATCH_NAME);
  if (l == NULL) {
    PyErr_Clear();
    return;
  }
  boc_bulk_latch_decref(l);
}

static boc_bulk_latch_t *latch_of(PyObject *cap) {
  return PyCapsule_GetPointer(cap, LATCH_NAME); /* TypeError/ValueError */
}

PyDoc_STRVAR(map_latch_doc,
"_map_latch(n) -> capsule\n\n"
"The completion latch of a bocpy.map call with n chunks.");
static PyObject *map_latch(PyObject *module, PyObject *arg) {
  (void)module;
  Py_ssize_t n = PyLong_AsSsize_t(arg);
  if (n == -1 && PyErr_Occurred()) {
    return NULL;
  }
  if (n < 0) {
    return PyErr_Format(PyExc_ValueError, "_map_latch(n): n must be >= 0");
  }
  boc_bulk_latch_t *l = boc_bulk_latch_new((int64_t)n);
  if (l == NULL) {
    return NULL;
  }
  PyObject *cap = PyCapsule_New(l, LATCH_NAME, latch_capsule_free);
  if (cap == NULL) {
    boc_bulk_latch_decref(l);
  }
  return cap;
}

PyDoc_STRVAR(map_chunk_doc,
"_map_chunk(fn, items, latch, index) -> Cown\n\n"
"Schedules one chunk of bocpy.map: a behavior over no cowns that calls\n"
"fn(item) for each of items (a tuple) and returns the list of results.\n"
"Starts the runtime if needed.  Returns the chunk's result Cown.");
static PyObject *map_chunk(PyObject *module, PyObject *const *args,
                           Py_ssize_t n) {
  if (n != 4 || !PyTuple_CheckExact(args[1])) {
    PyErr_SetString(PyExc_TypeError,
                    "_map_chunk(fn, items: tuple, latch, index: int)");
    return NULL;
  }
  boc_bulk_latch_t *l = latch_of(args[2]);
  if (l == NULL) {
    return NULL;
  }
  Py_ssize_t index = PyLong_AsSsize_t(args[3]);
  if (index == -1 && PyErr_Occurred()) {
    return NULL;
  }
  boc_state_t *st = PyModule_GetState(module);
  PyObject *noargs = PyTuple_New(0);
  if (noargs == NULL) {
    return NULL;
  }
  bulk_req_t req = {.items = args[1], .latch = l, .index = (int64_t)index};
  PyObject *r = schedule_fn(st, args[0], noargs, noargs, 1, &req);
  Py_DECREF(noargs);
  return r;
}

PyDoc_STRVAR(map_wait_doc,
"_map_wait(latch, index, timeout) -> bool\n\n"
"Waits (the GIL released) until chunk index of the latch is done, at most\n"
"timeout seconds (negative: forever).  True when it is done.");
static PyObject *map_wait(PyObject *module, PyObject *const *args,
                          Py_ssize_t n) {
  (void)module;
  if (n != 3) {
    PyErr_SetString(PyExc_TypeError, "_map_wait(latch, index, timeout)");
    return NULL;
  }
  boc_bulk_latch_t *l = latch_of(args[0]);
  if (l == NULL) {
    return NULL;
  }
  Py_ssize_t index = PyLong_AsSsize_t(args[1]);
  double t = PyFloat_AsDouble(args[2]);
  if ((index == -1 || t == -1.0) && PyErr_Occurred()) {
    return NULL;
  }
  int64_t ns = t < 0 ? -1 : (t >= 1e9 ? (int64_t)1e18 : (int64_t)(t * 1e9));
  int done;
  Py_BEGIN_ALLOW_THREADS
  done = boc_bulk_latch_wait(l, (int64_t)index, ns);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong(done);
}

PyDoc_STRVAR(map_take_doc,
"_map_take(cown) -> (value, exception)\n\n"
"Takes the outcome out of a finished map chunk's result cown (which then\n"
"holds None): the list of results, or the stored exception with True.\n"
"Reading an exception this way counts as handling it.");
static PyObject *map_take(PyObject *module, PyObject *arg) {
  (void)module;
  boc_cown_t *c = boc_handle_record(arg);
  if (c == NULL) {
    PyErr_SetString(PyExc_TypeError, "_map_take(cown)");
    return NULL;
  }
  if (boc_cown_acquire(c) < 0) {
    return NULL;
  }
  PyObject *v = boc_cown_take_value(c);
  /* relaxed: the flags travel with the value, which we now hold. */
  uint32_t flags = atomic_load_explicit(&c->flags, BOC_RELAXED);
  int exc = (flags & BOC_COWN_EXCEPTION) != 0;
  if (exc) {
    /* Handed to the caller, who raises it: handled (no exit report). */
    atomic_fetch_or_explicit(&c->flags, BOC_COWN_REPORTED, BOC_RELAXED);
  }
  PyObject *err = NULL;
  boc_cown_release_or_replace(c, &err); /* None: always encodes */
  Py_XDECREF(err);
  if (v == NULL) {
    return NULL;
  }
  PyObject *r = Py_BuildValue("(NO)", v, exc ? Py_True : Py_False);
  return r;
}

static PyObject *when_stats(PyObject *module, PyObject *Py_UNUSED(a)) {
  boc_state_t *st = PyModule_GetState(module);
  return Py_BuildValue(
      "{s:n,s:n,s:K,s:K,s:K,s:K,s:n}", "plans", PyDict_GET_SIZE(st->plans),
      "functions", PyDict_GET_SIZE(st->fn_cache), "globals_encoded",
      (unsigned long long)st->g_encoded, "globals_reused",
      (unsigned long long)st->g_reused, "globals_decoded",
      (unsigned long long)st->g_decoded, "globals_skipped",
      (unsigned long long)st->g_skipped, "cache_limit", boc_cache_limit());
}

static PyObject *set_cache_limit(PyObject *module, PyObject *arg) {
  (void)module;
  Py_ssize_t n = PyLong_AsSsize_t(arg);
  if (n == -1 && PyErr_Occurred()) {
    return NULL;
  }
  boc_set_cache_limit(n);
  Py_RETURN_NONE;
}

/* Clears d (a cache dict), if there is one; errors are cleared: at exit a
 * cache that cannot be cleared is only memory. */
static void clear_cache(PyObject *d) {
  if (d != NULL && PyDict_Check(d)) {
    PyDict_Clear(d);
  }
}

PyDoc_STRVAR(exit_release_doc,
             "_exit_release() -> None\n\n"
             "At exit, after the pool has ended (main interpreter): gives "
             "back every cown main borrowed and drops every value this "
             "interpreter's caches hold (the @when plans and module-global "
             "cache, which reference module globals dicts such as "
             "__main__.__dict__, the function cache, the stale-value "
             "snapshots), so that CPython's own module teardown finalises "
             "them (docs/reliability.md).");
static PyObject *exit_release(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  boc_state_t *st = boc_state();
  if (st == NULL) {
    return NULL;
  }
  if (!boc_is_main_interp()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "_exit_release() can only be called from the main "
                    "interpreter");
    return NULL;
  }
  if (st->borrowed != NULL && boc_release_borrowed(st) < 0) {
    PyErr_Clear(); /* a value that cannot be encoded is freed all the same */
  }
  if (st->stale != NULL && PyList_GET_SIZE(st->stale) > 0 &&
      PyList_SetSlice(st->stale, 0, PyList_GET_SIZE(st->stale), NULL) < 0) {
    PyErr_Clear();
  }
  clear_cache(st->plans);
  clear_cache(st->gcache);
  clear_cache(st->gapplied);
  clear_cache(st->fn_cache);
  boc_cown_collect_orphans();
  Py_RETURN_NONE;
}

static PyMethodDef when_methods[] = {
    {"_exit_release", exit_release, METH_NOARGS, exit_release_doc},
    {"when", (PyCFunction)(void (*)(void))when_fn, METH_FASTCALL, when_doc},
    {"_whencall", (PyCFunction)(void (*)(void))whencall, METH_FASTCALL,
     whencall_doc},
    {"_map_latch", map_latch, METH_O, map_latch_doc},
    {"_map_chunk", (PyCFunction)(void (*)(void))map_chunk, METH_FASTCALL,
     map_chunk_doc},
    {"_map_wait", (PyCFunction)(void (*)(void))map_wait, METH_FASTCALL,
     map_wait_doc},
    {"_map_take", map_take, METH_O, map_take_doc},
    {"when_stats", when_stats, METH_NOARGS,
     "This interpreter's @when caches and module-global shipping counters."},
    {"_set_cache_limit", set_cache_limit, METH_O,
     "Entries kept by each per-code cache (tests); at least 4."},
    {NULL, NULL, 0, NULL},
};

int boc_when_exec(PyObject *module, boc_state_t *st) {
  st->when_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &when_spec, NULL);
  st->plans = PyDict_New();
  st->gcache = PyDict_New();
  st->gapplied = PyDict_New();
  st->s_loading = PyUnicode_InternFromString("loading");
  if (st->when_type == NULL || st->plans == NULL || st->gcache == NULL ||
      st->gapplied == NULL || st->s_loading == NULL) {
    return -1;
  }
  return PyModule_AddFunctions(module, when_methods);
}
