/* messaging_module.c - the Python-facing functions of the message queues
 * (messages.h) and the noticeboard (noticeboard.h), added to bocpy._core.
 *
 * Reference rules: arguments are borrowed from the caller; every object
 * created here is returned (new reference) or released before returning.
 * Message contents travel as transport payloads: encoded in the sender's
 * interpreter, decoded in the receiver's, freed by whoever drops them.
 */
#include <Python.h>

#include <math.h>

#include "engine/messages.h"
#include "module/messaging_module.h"
#include "exec/noticeboard.h"
#include "engine/platform.h"
#include "value/pycompat.h"
#include "value/state.h"
#include "value/transport.h"

#define TIMEOUT_TAG "__timeout__"
/* Longest uninterrupted sleep of receive() on the main interpreter, so that
 * Ctrl-C is noticed promptly. */
#define SIGNAL_SLICE_NS (50 * 1000000LL)

static void free_payload(void *item) { boc_payload_free(item); }

/* ---- tags ------------------------------------------------------------------ */

typedef struct tagset {
  Py_ssize_t n;
  PyObject **objs;     /* strong references to the tag strings */
  boc_msg_tag_t *tags; /* their UTF-8, valid while objs hold them */
  PyObject *one_obj;
  boc_msg_tag_t one_tag;
} tagset_t;

static void tags_release(tagset_t *ts) {
  for (Py_ssize_t i = 0; i < ts->n; i++) {
    Py_XDECREF(ts->objs[i]);
  }
  if (ts->objs != &ts->one_obj) {
    PyMem_Free(ts->objs);
    PyMem_Free(ts->tags);
  }
  ts->n = 0;
}

static int tag_utf8(PyObject *tag, boc_msg_tag_t *out) {
  if (!PyUnicode_Check(tag)) {
    PyErr_Format(PyExc_TypeError, "tag must be a str, not %.100s",
                 Py_TYPE(tag)->tp_name);
    return -1;
  }
  Py_ssize_t len;
  out->data = PyUnicode_AsUTF8AndSize(tag, &len);
  out->len = (size_t)len;
  return out->data != NULL ? 0 : -1;
}

/* Parses a str or a sequence of str into ts (references of its own, so a
 * list mutated by another thread while we wait cannot pull them away). */
static int tags_parse(PyObject *obj, const char *fname, int allow_empty,
                      tagset_t *ts) {
  ts->n = 0;
  ts->objs = &ts->one_obj;
  ts->tags = &ts->one_tag;
  if (PyUnicode_Check(obj)) {
    if (tag_utf8(obj, &ts->one_tag) < 0) {
      return -1;
    }
    ts->one_obj = Py_NewRef(obj);
    ts->n = 1;
    return 0;
  }
  PyObject *seq = NULL;
  if (!PyBytes_Check(obj) && !PyByteArray_Check(obj)) {
    seq = PySequence_Fast(obj, "");
    if (seq == NULL) {
      if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
        return -1; /* an iterable that failed: keep its error */
      }
      PyErr_Clear();
    }
  }
  if (seq == NULL) {
    PyErr_Format(PyExc_TypeError,
                 "%s() tags must be a str or a sequence of str, not %.100s",
                 fname, Py_TYPE(obj)->tp_name);
    return -1;
  }
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n == 0) {
    Py_DECREF(seq);
    if (allow_empty) {
      return 0;
    }
    boc_state_t *st = boc_state();
    if (st != NULL) {
      PyErr_Format(st->empty_tags_error,
                   "%s() needs at least one tag (got an empty sequence)",
                   fname);
    }
    return -1;
  }
  ts->objs = PyMem_Calloc((size_t)n, sizeof(PyObject *));
  ts->tags = PyMem_Calloc((size_t)n, sizeof(boc_msg_tag_t));
  if (ts->objs == NULL || ts->tags == NULL) {
    Py_DECREF(seq);
    PyMem_Free(ts->objs);
    PyMem_Free(ts->tags);
    ts->objs = &ts->one_obj;
    PyErr_NoMemory();
    return -1;
  }
  ts->n = n;
  for (Py_ssize_t i = 0; i < n; i++) {
    ts->objs[i] = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
  }
  Py_DECREF(seq);
  for (Py_ssize_t i = 0; i < n; i++) {
    if (tag_utf8(ts->objs[i], &ts->tags[i]) < 0) {
      tags_release(ts);
      return -1;
    }
  }
  return 0;
}

/* Raises the Python exception for a messages.h error about tag. */
static void *msg_error(int rc, PyObject *tag) {
  switch (rc) {
  case BOC_MSG_TOO_MANY_TAGS:
    /* A KeyError (ours) that is also the reference's IndexError (its
     * set_tags() past its tag limit). */
    PyErr_Format(boc_state() != NULL ? boc_state()->tag_capacity_error
                                     : PyExc_KeyError,
                 "No queue available for tag %R: tag capacity exceeded "
                 "(%zu distinct tags; set_tags() forgets them)",
                 tag, boc_msg_max_tags());
    break;
  case BOC_MSG_FULL:
    PyErr_SetString(PyExc_RuntimeError, "Message queue is full");
    break;
  default:
    PyErr_NoMemory();
    break;
  }
  return NULL;
}

/* ---- send / receive / drain / set_tags ------------------------------------ */

PyDoc_STRVAR(send_doc,
             "send(tag, contents, /)\n\n"
             "Copy contents (cown handles travel as references) onto the\n"
             "queue of tag.  Never blocks.");
static PyObject *send(PyObject *module, PyObject *const *args,
                      Py_ssize_t nargs) {
  (void)module;
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "send() takes 2 positional arguments "
                 "(%zd given)", nargs);
    return NULL;
  }
  boc_msg_tag_t tag;
  if (tag_utf8(args[0], &tag) < 0) {
    return NULL;
  }
  boc_payload_t *p = boc_payload_encode(args[1]);
  if (p == NULL) {
    return NULL;
  }
  int rc = boc_msg_send(tag.data, tag.len, p);
  if (rc != BOC_MSG_OK) {
    boc_payload_free(p);
    return msg_error(rc, args[0]);
  }
  Py_RETURN_NONE;
}

/* Seconds -> nanoseconds: < 0 or >= 1e9 (or inf) mean forever (-1). */
static int parse_seconds(PyObject *obj, const char *what, int64_t *ns) {
  if (PyBool_Check(obj) || !(PyLong_Check(obj) || PyFloat_Check(obj))) {
    PyErr_Format(PyExc_TypeError, "%s must be a number, not %.100s", what,
                 Py_TYPE(obj)->tp_name);
    return -1;
  }
  double t = PyFloat_AsDouble(obj);
  if (t == -1.0 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
      return -1;
    }
    PyErr_Clear(); /* an int too large for a double: its sign decides */
    int overflow = 0;
    (void)PyLong_AsLongLongAndOverflow(obj, &overflow);
    t = overflow < 0 ? -1.0 : INFINITY;
  }
  if (isnan(t)) {
    PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
    return -1;
  }
  *ns = (t < 0 || t >= 1e9) ? -1 : (int64_t)(t * 1e9);
  return 0;
}

PyDoc_STRVAR(receive_doc,
             "receive(tags, timeout=-1, after=None) -> (tag, contents)\n\n"
             "Take the oldest message of the first of tags (a str or a\n"
             "sequence of str) that has one, waiting up to timeout seconds\n"
             "(negative: forever; 0: poll).  On timeout return after() if\n"
             "given, else (TIMEOUT, None).");
static PyObject *receive(PyObject *module, PyObject *args, PyObject *kwds) {
  (void)module;
  static char *kwlist[] = {"tags", "timeout", "after", NULL};
  PyObject *tags_obj, *timeout_obj = NULL, *after = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:receive", kwlist,
                                   &tags_obj, &timeout_obj, &after)) {
    return NULL;
  }
  int64_t timeout_ns = -1;
  if (timeout_obj != NULL &&
      parse_seconds(timeout_obj, "receive() timeout", &timeout_ns) < 0) {
    return NULL;
  }
  if (after != Py_None && !PyCallable_Check(after)) {
    PyErr_Format(PyExc_TypeError,
                 "receive() after must be callable or None, not %.100s",
                 Py_TYPE(after)->tp_name);
    return NULL;
  }
  tagset_t ts;
  if (tags_parse(tags_obj, "receive", 0, &ts) < 0) {
    return NULL;
  }
  int error;
  size_t which = 0;
  boc_msg_receiver_t *r =
      boc_msg_receiver_open(ts.tags, (size_t)ts.n, &error, &which);
  if (r == NULL) {
    msg_error(error, ts.objs[which]);
    tags_release(&ts);
    return NULL;
  }
  int64_t deadline = timeout_ns >= 0 ? boc_now_ns() + timeout_ns : -1;
  int interruptible = boc_is_main_interp();
  void *item = NULL;
  int rc;
  for (;;) {
    int64_t slice = -1;
    if (deadline >= 0) {
      slice = deadline - boc_now_ns();
      slice = slice < 0 ? 0 : slice;
    }
    if (interruptible && (slice < 0 || slice > SIGNAL_SLICE_NS)) {
      slice = SIGNAL_SLICE_NS;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = boc_msg_receive(r, slice, &which, &item);
    Py_END_ALLOW_THREADS
    if (rc != BOC_MSG_TIMEOUT) {
      break;
    }
    if (deadline >= 0 && boc_now_ns() >= deadline) {
      break;
    }
    if (PyErr_CheckSignals() < 0) {
      boc_msg_receiver_close(r);
      tags_release(&ts);
      return NULL;
    }
  }
  boc_msg_receiver_close(r);
  PyObject *result = NULL;
  if (rc == BOC_MSG_OK) {
    PyObject *contents = boc_payload_decode(item);
    boc_payload_free(item);
    if (contents != NULL) {
      result = PyTuple_Pack(2, ts.objs[which], contents);
      Py_DECREF(contents);
    }
  } else if (rc == BOC_MSG_TIMEOUT) {
    result = after != Py_None ? PyObject_CallNoArgs(after)
                              : Py_BuildValue("(sO)", TIMEOUT_TAG, Py_None);
  } else {
    msg_error(rc, ts.objs[which]);
  }
  tags_release(&ts);
  return result;
}

PyDoc_STRVAR(drain_doc, "drain(tags, /)\n\n"
                        "Discard every pending message of tags (a str or a\n"
                        "sequence of str).");
static PyObject *drain(PyObject *module, PyObject *tags) {
  (void)module;
  tagset_t ts;
  /* drain([]) drains nothing: a no-op, as in the reference. */
  if (tags_parse(tags, "drain", 1, &ts) < 0) {
    return NULL;
  }
  for (Py_ssize_t i = 0; i < ts.n; i++) {
    boc_msg_drain(ts.tags[i].data, ts.tags[i].len, free_payload);
  }
  tags_release(&ts);
  Py_RETURN_NONE;
}

PyDoc_STRVAR(set_tags_doc,
             "set_tags(tags, /)\n\n"
             "Main interpreter only.  Discard every pending message, forget\n"
             "every tag, then create queues for tags.");
static PyObject *set_tags(PyObject *module, PyObject *tags) {
  (void)module;
  if (!boc_is_main_interp()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "set_tags() can only be called from the main interpreter");
    return NULL;
  }
  tagset_t ts;
  if (tags_parse(tags, "set_tags", 1, &ts) < 0) {
    return NULL;
  }
  size_t bad = 0;
  int rc = boc_msg_set_tags(ts.tags, (size_t)ts.n, free_payload, &bad);
  if (rc != BOC_MSG_OK) {
    msg_error(rc, ts.n > 0 ? ts.objs[bad] : Py_None);
  }
  tags_release(&ts);
  if (rc != BOC_MSG_OK) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *msg_pending(PyObject *module, PyObject *tag) {
  (void)module;
  boc_msg_tag_t t;
  if (tag_utf8(tag, &t) < 0) {
    return NULL;
  }
  return PyLong_FromSize_t(boc_msg_pending(t.data, t.len));
}

static PyObject *msg_set_limits(PyObject *module, PyObject *args) {
  (void)module;
  long long max_tags, max_pending;
  if (!PyArg_ParseTuple(args, "LL:_msg_set_limits", &max_tags,
                        &max_pending)) {
    return NULL;
  }
  boc_msg_set_limits(max_tags, max_pending);
  Py_RETURN_NONE;
}

static PyObject *msg_tag_count(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromSize_t(boc_msg_tag_count());
}

/* ---- noticeboard ------------------------------------------------------------ */

PyDoc_STRVAR(notice_write_doc,
             "notice_write(key, value)\n\n"
             "Set key to a copy of value on the noticeboard, now.");
static PyObject *notice_write(PyObject *module, PyObject *args,
                              PyObject *kwds) {
  (void)module;
  static char *kwlist[] = {"key", "value", NULL};
  PyObject *key, *value;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:notice_write", kwlist,
                                   &key, &value) ||
      boc_nb_write(key, value) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

PyDoc_STRVAR(notice_delete_doc, "notice_delete(key)\n\n"
                                "Remove key from the noticeboard (if there).");
static PyObject *notice_delete(PyObject *module, PyObject *args,
                               PyObject *kwds) {
  (void)module;
  static char *kwlist[] = {"key", NULL};
  PyObject *key;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:notice_delete", kwlist,
                                   &key) ||
      boc_nb_delete(key) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

PyDoc_STRVAR(notice_update_doc,
             "_notice_update(key, fn, default, removed)\n\n"
             "Atomically replace key's value v (default when absent) by\n"
             "fn(v); a result that is `removed` deletes the key.");
static PyObject *notice_update(PyObject *module, PyObject *args) {
  (void)module;
  PyObject *key, *fn, *dflt, *removed;
  if (!PyArg_ParseTuple(args, "OOOO:_notice_update", &key, &fn, &dflt,
                        &removed) ||
      boc_nb_update(key, fn, dflt, removed) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

PyDoc_STRVAR(noticeboard_doc,
             "noticeboard() -> Mapping[str, Any]\n\n"
             "A read-only snapshot of the noticeboard.  Inside a behavior the\n"
             "first call takes it and later calls return the same mapping.");
static PyObject *noticeboard(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return boc_nb_view();
}

PyDoc_STRVAR(notice_read_doc, "notice_read(key, default=None)\n\n"
                              "noticeboard().get(key, default).");
static PyObject *notice_read(PyObject *module, PyObject *args,
                             PyObject *kwds) {
  (void)module;
  static char *kwlist[] = {"key", "default", NULL};
  PyObject *key, *dflt = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:notice_read", kwlist,
                                   &key, &dflt)) {
    return NULL;
  }
  return boc_nb_read(key, dflt);
}

PyDoc_STRVAR(notice_sync_doc,
             "notice_sync(timeout=30.0)\n\n"
             "Kept for compatibility: writes are synchronous, so there is\n"
             "nothing to wait for.");
static PyObject *notice_sync(PyObject *module, PyObject *args,
                             PyObject *kwds) {
  (void)module;
  static char *kwlist[] = {"timeout", NULL};
  PyObject *timeout = Py_None;
  int64_t ns;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:notice_sync", kwlist,
                                   &timeout)) {
    return NULL;
  }
  if (timeout != Py_None &&
      parse_seconds(timeout, "notice_sync() timeout", &ns) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *notice_snapshot(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return boc_nb_snapshot();
}

static PyObject *notice_take_cleared(PyObject *module, PyObject *arg) {
  (void)module;
  int decode = PyObject_IsTrue(arg);
  return decode < 0 ? NULL : boc_nb_take_cleared(decode);
}

static PyObject *notice_version(PyObject *module, PyObject *Py_UNUSED(a)) {
  (void)module;
  return PyLong_FromUnsignedLongLong(boc_nb_version());
}

/* ---- registration ------------------------------------------------------------ */

#define KW(f) ((PyCFunction)(void (*)(void))(f))

/* A method table must outlive the module objects built from it: static,
 * constant after start-up, shared by every interpreter (it holds no
 * Python objects). */
static PyMethodDef messaging_methods[] = {
    {"send", KW(send), METH_FASTCALL, send_doc},
    {"receive", KW(receive), METH_VARARGS | METH_KEYWORDS, receive_doc},
    {"drain", drain, METH_O, drain_doc},
    {"set_tags", set_tags, METH_O, set_tags_doc},
    {"_msg_pending", msg_pending, METH_O, "Pending messages of a tag."},
    {"_msg_set_limits", msg_set_limits, METH_VARARGS,
     "_msg_set_limits(max_tags, max_pending): test hook; < 1 = default."},
    {"_msg_tag_count", msg_tag_count, METH_NOARGS, "Tags with a queue."},
    {"notice_write", KW(notice_write), METH_VARARGS | METH_KEYWORDS,
     notice_write_doc},
    {"notice_delete", KW(notice_delete), METH_VARARGS | METH_KEYWORDS,
     notice_delete_doc},
    {"_notice_update", notice_update, METH_VARARGS, notice_update_doc},
    {"noticeboard", noticeboard, METH_NOARGS, noticeboard_doc},
    {"notice_read", KW(notice_read), METH_VARARGS | METH_KEYWORDS,
     notice_read_doc},
    {"notice_sync", KW(notice_sync), METH_VARARGS | METH_KEYWORDS,
     notice_sync_doc},
    {"_notice_snapshot", notice_snapshot, METH_NOARGS,
     "A fresh plain dict of the noticeboard."},
    {"_notice_take_cleared", notice_take_cleared, METH_O,
     "The board as the last teardown cleared it (a dict, or None when the\n"
     "argument is false); forgets it."},
    {"_notice_version", notice_version, METH_NOARGS,
     "Noticeboard commits so far."},
    {NULL, NULL, 0, NULL},
};

int boc_messaging_add_functions(PyObject *module) {
  return PyModule_AddFunctions(module, messaging_methods);
}
