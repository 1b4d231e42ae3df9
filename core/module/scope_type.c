/* scope_type.c - the Python type _core.Scope over a scope record
 * (exec/scope.h), and _core.cancel (issue #32).  bocpy/_scope.py builds the
 * public context manager on top: the ExceptionGroup, the nesting checks and
 * the documentation live there. */
#include "module/scope_type.h"

#include "exec/behavior.h"
#include "exec/runtime.h"
#include "exec/scope.h"
#include "value/handle.h"
#include "value/pycompat.h"

typedef struct {
  PyObject_HEAD
  boc_scope_t *scope;  /* owned */
  boc_scope_t *prev;   /* the entering thread's scope before _enter */
  unsigned long thread; /* ident of the thread that entered it */
  int state;           /* 0 new, 1 entered, 2 exited */
} ScopeObject;

static PyObject *scope_new(PyTypeObject *type, PyObject *args,
                           PyObject *kwds) {
  static char *kwlist[] = {"cancel_on_error", NULL};
  int cancel_on_error = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$p:Scope", kwlist,
                                   &cancel_on_error)) {
    return NULL;
  }
  ScopeObject *self = (ScopeObject *)type->tp_alloc(type, 0);
  if (self == NULL) {
    return NULL;
  }
  /* The enclosing scope is the creating thread's current one. */
  self->scope = boc_scope_new(boc_scope_current(), cancel_on_error);
  if (self->scope == NULL) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static void scope_dealloc(PyObject *op) {
  ScopeObject *self = (ScopeObject *)op;
  PyTypeObject *tp = Py_TYPE(op);
  if (self->scope != NULL) {
    if (self->state == 1 &&
        PyThread_get_thread_ident() == self->thread &&
        boc_scope_current() == self->scope) {
      boc_scope_swap(self->prev); /* never left: do not leave it dangling */
      boc_scope_decref(self->scope); /* the thread-local's reference */
    }
    /* Entered on another thread and never left: that thread's
     * thread-local keeps its own reference (the record outlives us). */
    boc_scope_decref(self->scope);
  }
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyObject *scope_enter(PyObject *op, PyObject *Py_UNUSED(a)) {
  ScopeObject *self = (ScopeObject *)op;
  if (self->state != 0) {
    PyErr_SetString(PyExc_RuntimeError,
                    self->state == 1
                        ? "this scope is already entered: a scope is entered "
                          "once (make a new bocpy.scope() for each block)"
                        : "this scope has ended: a scope is entered once "
                          "(make a new bocpy.scope() for each block)");
    return NULL;
  }
  if (self->scope->parent != boc_scope_current()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "a scope must be entered on the thread, and inside the "
                    "scope, where it was made (scopes nest as blocks do)");
    return NULL;
  }
  /* The thread-local gets a reference of its own: the object may die on
   * another thread while this one still has the scope current. */
  boc_scope_incref(self->scope);
  self->prev = boc_scope_swap(self->scope);
  self->thread = PyThread_get_thread_ident();
  self->state = 1;
  Py_RETURN_NONE;
}

static PyObject *scope_exit(PyObject *op, PyObject *Py_UNUSED(a)) {
  ScopeObject *self = (ScopeObject *)op;
  if (self->state != 1 || PyThread_get_thread_ident() != self->thread) {
    PyErr_SetString(PyExc_RuntimeError,
                    "this scope is not entered on this thread");
    return NULL;
  }
  if (boc_scope_current() != self->scope) {
    PyErr_SetString(PyExc_RuntimeError,
                    "scopes must be left in the reverse order they were "
                    "entered");
    return NULL;
  }
  boc_scope_swap(self->prev);
  boc_scope_decref(self->scope); /* the thread-local's reference */
  self->prev = NULL;
  self->state = 2;
  Py_RETURN_NONE;
}

static PyObject *scope_wait(PyObject *op, PyObject *arg) {
  ScopeObject *self = (ScopeObject *)op;
  double timeout = -1.0;
  if (arg != Py_None) {
    timeout = PyFloat_AsDouble(arg);
    if (timeout == -1.0 && PyErr_Occurred()) {
      return NULL;
    }
    if (timeout < 0) {
      PyErr_SetString(PyExc_ValueError, "timeout must be >= 0 or None");
      return NULL;
    }
  }
  if (boc_runtime_wait_term(&self->scope->term, timeout, "Scope.wait") < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *scope_cancel(PyObject *op, PyObject *Py_UNUSED(a)) {
  ScopeObject *self = (ScopeObject *)op;
  return PyBool_FromLong(boc_scope_cancel(self->scope));
}

/* The unhandled failures as a list of (result cown id, exception), marking
 * each reported (the scope raises it; no exit report).  A failure whose
 * result was read (or its flag cleared) is handled and left out. */
static PyObject *scope_take_errors(PyObject *op, PyObject *Py_UNUSED(a)) {
  ScopeObject *self = (ScopeObject *)op;
  size_t n;
  boc_scope_failure_t *f = boc_scope_take_failed(self->scope, &n);
  PyObject *list = PyList_New(0);
  for (size_t i = 0; list != NULL && i < n; i++) {
    boc_cown_t *c = f[i].result;
    /* relaxed: the scope has been waited for; the flags of a result are
     * published with its release, which that wait synchronised with. */
    uint32_t flags = atomic_load_explicit(&c->flags, BOC_RELAXED);
    if (!(flags & BOC_COWN_EXCEPTION) || (flags & BOC_COWN_REPORTED)) {
      continue; /* handled */
    }
    PyObject *exc = f[i].exc != NULL ? boc_payload_decode(f[i].exc) : NULL;
    if (exc == NULL) {
      PyErr_Clear();
      exc = PyObject_CallFunction(
          PyExc_RuntimeError, "s",
          "a behavior of this scope raised an exception that could not be "
          "copied to this thread (read its result cown to see it)");
    }
    PyObject *item = exc != NULL
                         ? Py_BuildValue("(KN)", (unsigned long long)c->id, exc)
                         : NULL;
    if (item == NULL || PyList_Append(list, item) < 0) {
      Py_XDECREF(item);
      Py_CLEAR(list);
      break;
    }
    Py_DECREF(item);
    atomic_fetch_or_explicit(&c->flags, BOC_COWN_REPORTED, BOC_RELAXED);
  }
  boc_scope_failures_free(f, n);
  return list;
}

static PyObject *scope_stats(PyObject *op, PyObject *Py_UNUSED(a)) {
  boc_scope_t *s = ((ScopeObject *)op)->scope;
  /* relaxed: statistics, recent values */
  return Py_BuildValue(
      "{s:K,s:L,s:L,s:L,s:L,s:L,s:O}", "id", (unsigned long long)s->id,
      "scheduled",
      (long long)atomic_load_explicit(&s->n_scheduled, BOC_RELAXED),
      "finished", (long long)atomic_load_explicit(&s->n_finished, BOC_RELAXED),
      "failed", (long long)atomic_load_explicit(&s->n_failed, BOC_RELAXED),
      "cancelled",
      (long long)atomic_load_explicit(&s->n_cancelled, BOC_RELAXED),
      "in_flight", (long long)boc_scope_in_flight(s), "cancel_requested",
      boc_scope_cancelled(s) ? Py_True : Py_False);
}

static PyObject *scope_get_id(PyObject *op, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLongLong(((ScopeObject *)op)->scope->id);
}

static PyObject *scope_get_cancelled(PyObject *op, void *closure) {
  (void)closure;
  return PyBool_FromLong(boc_scope_cancelled(((ScopeObject *)op)->scope));
}

static PyObject *scope_get_in_flight(PyObject *op, void *closure) {
  (void)closure;
  return PyLong_FromLongLong(boc_scope_in_flight(((ScopeObject *)op)->scope));
}

static PyObject *scope_get_cancel_on_error(PyObject *op, void *closure) {
  (void)closure;
  return PyBool_FromLong(((ScopeObject *)op)->scope->cancel_on_error);
}

static PyObject *scope_get_entered(PyObject *op, void *closure) {
  (void)closure;
  return PyBool_FromLong(((ScopeObject *)op)->state == 1);
}

static PyObject *scope_get_ended(PyObject *op, void *closure) {
  (void)closure;
  return PyBool_FromLong(((ScopeObject *)op)->state == 2);
}

static PyMethodDef scope_methods[] = {
    {"_enter", scope_enter, METH_NOARGS,
     "Make this scope the calling thread's current scope."},
    {"_exit", scope_exit, METH_NOARGS,
     "Restore the scope that was current before _enter."},
    {"_wait", scope_wait, METH_O,
     "Wait (timeout in seconds or None) until no behavior of the scope is "
     "in flight."},
    {"cancel", scope_cancel, METH_NOARGS,
     "Cancel the scope: its behaviors that have not started are retired "
     "without running (CancelledError in their result).  True if this call "
     "cancelled it, False if it already was."},
    {"_take_errors", scope_take_errors, METH_NOARGS,
     "The unhandled failures so far as (result cown id, exception) pairs."},
    {"_stats", scope_stats, METH_NOARGS, "The scope's counters."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef scope_getset[] = {
    {"id", scope_get_id, NULL, "Unique id of the scope (in trace events).",
     NULL},
    {"cancelled", scope_get_cancelled, NULL,
     "True once the scope (or an enclosing one) is cancelled.", NULL},
    {"in_flight", scope_get_in_flight, NULL,
     "Behaviors of the scope (and nested scopes) not yet retired.", NULL},
    {"cancel_on_error", scope_get_cancel_on_error, NULL,
     "Whether the first failure cancels the scope.", NULL},
    {"entered", scope_get_entered, NULL, "True inside the block.", NULL},
    {"ended", scope_get_ended, NULL, "True after the block.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot scope_slots[] = {
    {Py_tp_new, scope_new},
    {Py_tp_dealloc, scope_dealloc},
    {Py_tp_methods, scope_methods},
    {Py_tp_getset, scope_getset},
    {Py_tp_doc, "A structured scope (see bocpy.scope)."},
    {0, NULL},
};

static PyType_Spec scope_spec = {
    .name = "bocpy._core.Scope",
    .basicsize = sizeof(ScopeObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = scope_slots,
};

static PyObject *cancel(PyObject *module, PyObject *arg) {
  (void)module;
  boc_cown_t *c = boc_handle_record(arg);
  if (c == NULL) {
    PyErr_Format(PyExc_TypeError,
                 "cancel() takes the result Cown of a behavior (what @when "
                 "returns), not %.100s",
                 Py_TYPE(arg)->tp_name);
    return NULL;
  }
  return PyBool_FromLong(boc_behavior_cancel(c));
}

/* _scope_detach(): no current scope on this thread from now on; returns
 * the previous one as a capsule for _scope_attach (the scope it points to
 * is kept alive by whoever entered it, which outlives the pair). */
static PyObject *scope_detach(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  boc_scope_t *prev = boc_scope_swap(NULL);
  if (prev == NULL) {
    Py_RETURN_NONE;
  }
  PyObject *cap = PyCapsule_New(prev, "bocpy.scope", NULL);
  if (cap == NULL) {
    boc_scope_swap(prev);
  }
  return cap;
}

static PyObject *scope_attach(PyObject *module, PyObject *arg) {
  (void)module;
  boc_scope_t *s = NULL;
  if (arg != Py_None) {
    s = PyCapsule_GetPointer(arg, "bocpy.scope");
    if (s == NULL) {
      return NULL;
    }
  }
  boc_scope_swap(s);
  Py_RETURN_NONE;
}

static PyMethodDef scope_functions[] = {
    {"cancel", cancel, METH_O,
     "Cancel the behavior whose result cown this is, if it has not started "
     "(Future.cancel): True when cancelled, False when it started, "
     "finished or the cown is not a pending result."},
    {"_scope_detach", scope_detach, METH_NOARGS,
     "Leave no current scope on this thread; returns a token for "
     "_scope_attach."},
    {"_scope_attach", scope_attach, METH_O,
     "Restore the current scope saved by _scope_detach."},
    {NULL, NULL, 0, NULL},
};

int boc_scope_type_init(PyObject *module) {
  PyObject *type = PyType_FromModuleAndSpec(module, &scope_spec, NULL);
  if (type == NULL) {
    return -1;
  }
  int rc = PyModule_AddType(module, (PyTypeObject *)type);
  Py_DECREF(type);
  if (rc < 0) {
    return -1;
  }
  return PyModule_AddFunctions(module, scope_functions);
}
