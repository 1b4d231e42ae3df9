/* transport.c - interpreter-neutral payloads (see transport.h). */
#include "transport.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
  TAG_NONE = 'N',
  TAG_TRUE = 'T',
  TAG_FALSE = 'F',
  TAG_INT = 'i',
  TAG_FLOAT = 'f',
  TAG_STR = 's',
  TAG_BYTES = 'b',
  TAG_TUPLE = 't',
  TAG_LIST = 'l',
  TAG_COWN = 'c',
  TAG_PICKLE = 'p',
};

/* Containers deeper than this are pickled as a whole. */
#define NATIVE_MAX_DEPTH 8

/* ---- encoder ------------------------------------------------------------ */

typedef struct encoder {
  unsigned char *buf;
  size_t len, cap;
  boc_cown_t **cowns;
  uint32_t ncowns, cowns_cap;
  struct encoder *outer; /* the encoding this one interrupted, if any */
} encoder_t;

/* The encoding in progress on this thread.  A thread-local because pickle
 * calls the handles' __reduce__ with no way to pass our context through;
 * encodings nest (a __reduce__ may itself encode), hence the `outer` chain. */
static _Thread_local encoder_t *tls_encoder;
/* Likewise the payload being decoded, for the unpickling hook. */
static _Thread_local const boc_payload_t *tls_decoding;

static int enc_reserve(encoder_t *e, size_t extra) {
  if (e->len + extra <= e->cap) {
    return 0;
  }
  size_t cap = e->cap ? e->cap : 64;
  while (cap < e->len + extra) {
    cap *= 2;
  }
  unsigned char *buf = realloc(e->buf, cap);
  if (buf == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  e->buf = buf;
  e->cap = cap;
  return 0;
}

static int enc_bytes(encoder_t *e, const void *data, size_t n) {
  if (enc_reserve(e, n) < 0) {
    return -1;
  }
  memcpy(e->buf + e->len, data, n);
  e->len += n;
  return 0;
}

static int enc_tag(encoder_t *e, unsigned char tag) {
  return enc_bytes(e, &tag, 1);
}

static int enc_u64(encoder_t *e, uint64_t v) { return enc_bytes(e, &v, 8); }

static int enc_blob(encoder_t *e, unsigned char tag, const char *data,
                    size_t n) {
  if (enc_tag(e, tag) < 0 || enc_u64(e, (uint64_t)n) < 0) {
    return -1;
  }
  return enc_bytes(e, data, n);
}

static Py_ssize_t enc_note_cown(encoder_t *e, boc_cown_t *c) {
  for (uint32_t i = 0; i < e->ncowns; i++) {
    if (e->cowns[i] == c) {
      return (Py_ssize_t)i;
    }
  }
  if (e->ncowns == e->cowns_cap) {
    uint32_t cap = e->cowns_cap ? e->cowns_cap * 2 : 4;
    boc_cown_t **cowns = realloc(e->cowns, cap * sizeof(*cowns));
    if (cowns == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    e->cowns = cowns;
    e->cowns_cap = cap;
  }
  boc_cown_incref(c);
  e->cowns[e->ncowns] = c;
  return (Py_ssize_t)e->ncowns++;
}

/* Can obj be written natively?  Scalars and handles always; tuples and lists
 * only when made of natively writable immutable items, so that no shared
 * mutable object loses its identity (those go through pickle, which keeps
 * sharing and cycles). */
static int can_native(PyObject *obj, int depth) {
  if (obj == Py_None || PyBool_Check(obj) || PyFloat_CheckExact(obj) ||
      PyUnicode_CheckExact(obj) || PyBytes_CheckExact(obj)) {
    return 1;
  }
  if (PyLong_CheckExact(obj)) {
    int overflow = 0;
    (void)PyLong_AsLongLongAndOverflow(obj, &overflow);
    return overflow == 0;
  }
  if (boc_handle_record(obj) != NULL) {
    return 1;
  }
  if ((PyTuple_CheckExact(obj) || PyList_CheckExact(obj)) &&
      depth < NATIVE_MAX_DEPTH) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
    PyObject **items = PySequence_Fast_ITEMS(obj);
    for (Py_ssize_t i = 0; i < n; i++) {
      PyObject *item = items[i];
      if (PyList_CheckExact(item) || !can_native(item, depth + 1)) {
        return 0;
      }
    }
    return 1;
  }
  return 0;
}

static int enc_native(encoder_t *e, PyObject *obj) {
  if (obj == Py_None) {
    return enc_tag(e, TAG_NONE);
  }
  if (PyBool_Check(obj)) {
    return enc_tag(e, obj == Py_True ? TAG_TRUE : TAG_FALSE);
  }
  if (PyLong_CheckExact(obj)) {
    int64_t v = (int64_t)PyLong_AsLongLong(obj); /* checked by can_native */
    return enc_tag(e, TAG_INT) < 0 ? -1 : enc_bytes(e, &v, 8);
  }
  if (PyFloat_CheckExact(obj)) {
    double v = PyFloat_AS_DOUBLE(obj);
    return enc_tag(e, TAG_FLOAT) < 0 ? -1 : enc_bytes(e, &v, 8);
  }
  if (PyUnicode_CheckExact(obj)) {
    Py_ssize_t n = 0;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
    if (s == NULL) {
      return -1;
    }
    return enc_blob(e, TAG_STR, s, (size_t)n);
  }
  if (PyBytes_CheckExact(obj)) {
    return enc_blob(e, TAG_BYTES, PyBytes_AS_STRING(obj),
                    (size_t)PyBytes_GET_SIZE(obj));
  }
  boc_cown_t *c = boc_handle_record(obj);
  if (c != NULL) {
    Py_ssize_t index = enc_note_cown(e, c);
    if (index < 0) {
      return -1;
    }
    return enc_tag(e, TAG_COWN) < 0 ? -1 : enc_u64(e, (uint64_t)index);
  }
  /* tuple or list (can_native said so) */
  Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
  PyObject **items = PySequence_Fast_ITEMS(obj);
  if (enc_tag(e, PyTuple_CheckExact(obj) ? TAG_TUPLE : TAG_LIST) < 0 ||
      enc_u64(e, (uint64_t)n) < 0) {
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    if (enc_native(e, items[i]) < 0) {
      return -1;
    }
  }
  return 0;
}

static int enc_pickled(encoder_t *e, PyObject *obj) {
  PyObject *bytes = NULL;
  if (boc_pickle_dumps(obj, &bytes) < 0) {
    PyObject *cause = PyErr_GetRaisedException();
    PyErr_Format(PyExc_TypeError,
                 "cannot send a value of type '%.200s' to another "
                 "interpreter: it is neither natively shareable nor "
                 "picklable (%S)",
                 Py_TYPE(obj)->tp_name, cause);
    PyObject *exc = PyErr_GetRaisedException();
    PyException_SetCause(exc, cause); /* steals cause */
    PyErr_SetRaisedException(exc);
    return -1;
  }
  int rc = enc_blob(e, TAG_PICKLE, PyBytes_AS_STRING(bytes),
                    (size_t)PyBytes_GET_SIZE(bytes));
  Py_DECREF(bytes);
  return rc;
}

static void enc_discard(encoder_t *e) {
  for (uint32_t i = 0; i < e->ncowns; i++) {
    boc_cown_decref(e->cowns[i]);
  }
  free(e->cowns);
  free(e->buf);
}

boc_payload_t *boc_payload_encode(PyObject *obj) {
  encoder_t e = {0};
  e.outer = tls_encoder;
  tls_encoder = &e;
  int rc;
  if (can_native(obj, 0)) {
    rc = enc_native(&e, obj);
  } else {
    rc = enc_pickled(&e, obj);
  }
  tls_encoder = e.outer;
  if (rc < 0) {
    enc_discard(&e);
    return NULL;
  }
  boc_payload_t *p = malloc(sizeof(*p) + e.len);
  if (p == NULL) {
    enc_discard(&e);
    PyErr_NoMemory();
    return NULL;
  }
  p->size = e.len;
  p->ncowns = e.ncowns;
  p->pid = (int64_t)getpid();
  p->cowns = e.cowns; /* ownership of the references moves to p */
  memcpy(p->data, e.buf, e.len);
  free(e.buf);
  return p;
}

Py_ssize_t boc_transport_note_cown(boc_cown_t *c) {
  if (tls_encoder == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "cown handles can only be pickled by bocpy when a value "
                    "is sent to another interpreter");
    return -1;
  }
  return enc_note_cown(tls_encoder, c);
}

/* ---- decoder ------------------------------------------------------------ */

typedef struct {
  const boc_payload_t *p;
  size_t pos;
} decoder_t;

static int dec_take(decoder_t *d, void *out, size_t n) {
  if (d->pos + n > d->p->size) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy payload is truncated");
    return -1;
  }
  memcpy(out, d->p->data + d->pos, n);
  d->pos += n;
  return 0;
}

static PyObject *dec_value(decoder_t *d) {
  unsigned char tag;
  if (dec_take(d, &tag, 1) < 0) {
    return NULL;
  }
  uint64_t n;
  switch (tag) {
  case TAG_NONE:
    Py_RETURN_NONE;
  case TAG_TRUE:
    Py_RETURN_TRUE;
  case TAG_FALSE:
    Py_RETURN_FALSE;
  case TAG_INT: {
    int64_t v;
    return dec_take(d, &v, 8) < 0 ? NULL : PyLong_FromLongLong(v);
  }
  case TAG_FLOAT: {
    double v;
    return dec_take(d, &v, 8) < 0 ? NULL : PyFloat_FromDouble(v);
  }
  case TAG_STR:
  case TAG_BYTES:
  case TAG_PICKLE: {
    if (dec_take(d, &n, 8) < 0) {
      return NULL;
    }
    if (n > d->p->size - d->pos) {
      PyErr_SetString(PyExc_RuntimeError, "bocpy payload is truncated");
      return NULL;
    }
    const char *s = (const char *)d->p->data + d->pos;
    d->pos += n;
    if (tag == TAG_STR) {
      return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL);
    }
    if (tag == TAG_BYTES) {
      return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
    }
    return boc_pickle_loads(s, (Py_ssize_t)n);
  }
  case TAG_COWN: {
    if (dec_take(d, &n, 8) < 0) {
      return NULL;
    }
    if (n >= d->p->ncowns) {
      PyErr_SetString(PyExc_RuntimeError, "bocpy payload: bad cown index");
      return NULL;
    }
    return boc_handle_new(d->p->cowns[n]);
  }
  case TAG_TUPLE:
  case TAG_LIST: {
    if (dec_take(d, &n, 8) < 0) {
      return NULL;
    }
    PyObject *seq = tag == TAG_TUPLE ? PyTuple_New((Py_ssize_t)n)
                                     : PyList_New((Py_ssize_t)n);
    if (seq == NULL) {
      return NULL;
    }
    for (uint64_t i = 0; i < n; i++) {
      PyObject *item = dec_value(d);
      if (item == NULL) {
        Py_DECREF(seq);
        return NULL;
      }
      if (tag == TAG_TUPLE) {
        PyTuple_SET_ITEM(seq, (Py_ssize_t)i, item);
      } else {
        PyList_SET_ITEM(seq, (Py_ssize_t)i, item);
      }
    }
    return seq;
  }
  default:
    PyErr_Format(PyExc_RuntimeError, "bocpy payload: unknown tag 0x%02x",
                 tag);
    return NULL;
  }
}

PyObject *boc_payload_decode(const boc_payload_t *p) {
  if (p->pid != (int64_t)getpid()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "a bocpy value cannot be used in a forked child process");
    return NULL;
  }
  const boc_payload_t *outer = tls_decoding;
  tls_decoding = p;
  decoder_t d = {p, 0};
  PyObject *obj = dec_value(&d);
  tls_decoding = outer;
  return obj;
}

boc_cown_t *boc_transport_cown_at(Py_ssize_t index) {
  const boc_payload_t *p = tls_decoding;
  if (p == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "cown references can only be unpickled by bocpy");
    return NULL;
  }
  if (index < 0 || (uint64_t)index >= p->ncowns) {
    PyErr_SetString(PyExc_RuntimeError, "bocpy payload: bad cown index");
    return NULL;
  }
  return p->cowns[index];
}

void boc_payload_free(boc_payload_t *p) {
  if (p == NULL) {
    return;
  }
  for (uint32_t i = 0; i < p->ncowns; i++) {
    boc_cown_decref(p->cowns[i]);
  }
  free(p->cowns);
  free(p);
}

int boc_payload_is_none(const boc_payload_t *p) {
  return p != NULL && p->size == 1 && p->data[0] == TAG_NONE;
}
