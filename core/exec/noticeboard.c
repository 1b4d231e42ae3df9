/* noticeboard.c - the process-global noticeboard (see noticeboard.h).
 *
 * Reference rules: PyObject arguments are borrowed; PyObject results are
 * new references; the per-interpreter cache owns its mapping.  Board
 * entries hold no Python objects at all, only payloads, so any thread of
 * any interpreter may free them. */
#include "exec/noticeboard.h"

#include <stdlib.h>
#include <string.h>

#include "engine/platform.h"
#include "value/pycompat.h"
#include "engine/sched.h"
#include "value/transport.h"

/* A value on the board.  Reference counted so that a reader can keep it
 * past the board mutex (to decode it) while a writer replaces it. */
typedef struct nb_value {
  _Atomic intptr_t refs;
  boc_payload_t *payload; /* owned */
} nb_value_t;

typedef struct nb_entry {
  size_t len;                     /* key bytes */
  char key[BOC_NB_MAX_KEY + 1];   /* UTF-8, NUL-terminated */
  nb_value_t *value;              /* one reference */
} nb_entry_t;

typedef struct board {
  boc_mutex_t mu;
  nb_entry_t entries[BOC_NB_MAX_ENTRIES]; /* guarded by mu: [0, count) in
                                             insertion order */
  int count;                              /* guarded by mu */
  nb_entry_t cleared[BOC_NB_MAX_ENTRIES]; /* guarded by mu: the last clear */
  int ncleared;                           /* guarded by mu */
  _Atomic uint64_t version;               /* bumped under mu on each commit */
} board_t;

/* The board is process-global by definition: every interpreter reads and
 * writes the same entries. */
static board_t board;
static boc_once_t board_once = BOC_ONCE_INIT;

static void board_init(void) {
  boc_mutex_init(&board.mu);
  atomic_init(&board.version, 0);
}

/* Set while this thread runs a notice_update function (and so holds the
 * board mutex).  Thread-local by nature: it describes this thread's stack. */
static _Thread_local int tls_in_update;

int boc_nb_in_update(void) { return tls_in_update; }

/* Bumped at the start of each behavior this thread runs.  Thread-local: a
 * behavior runs on one thread, and the count only tells this thread's
 * behaviors apart. */
static _Thread_local uint64_t tls_behavior = 1;

void boc_noticeboard_begin_behavior(void) { tls_behavior++; }

uint64_t boc_nb_version(void) {
  boc_once(&board_once, board_init);
  /* acquire: pairs with the release bump of the commit we see. */
  return atomic_load_explicit(&board.version, BOC_ACQUIRE);
}

/* ---- values and entries ---------------------------------------------------- */

static nb_value_t *value_new(boc_payload_t *p) {
  /* malloc, not a Python allocator: the record is process-global and may
   * be freed by any thread of any interpreter. */
  nb_value_t *v = malloc(sizeof(*v));
  if (v == NULL) {
    boc_payload_free(p);
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&v->refs, 1);
  v->payload = p;
  return v;
}

static void value_incref(nb_value_t *v) {
  /* relaxed: the caller holds a reference or the board mutex. */
  atomic_fetch_add_explicit(&v->refs, 1, BOC_RELAXED);
}

/* Drops a reference; the last one frees the payload (any thread, but call
 * it with the GIL held where possible so cown values die in place). */
static void value_decref(nb_value_t *v) {
  if (v == NULL) {
    return;
  }
  /* acq_rel: whoever frees must see every other holder finished with it. */
  if (atomic_fetch_sub_explicit(&v->refs, 1, BOC_ACQ_REL) == 1) {
    boc_payload_free(v->payload);
    free(v);
  }
}

static void bump_version(void) {
  /* release: a reader that sees the new version (acquire) also sees the
   * commit; the mutex already orders everything done under it. */
  atomic_fetch_add_explicit(&board.version, 1, BOC_RELEASE);
}

/* Index of key in board.entries, or -1 (mutex held). */
static int find_locked(const char *key, size_t len) {
  for (int i = 0; i < board.count; i++) {
    if (board.entries[i].len == len &&
        memcmp(board.entries[i].key, key, len) == 0) {
      return i;
    }
  }
  return -1;
}

/* Stores v under key, taking v's reference; *old receives the replaced
 * value.  -1 when the board is full (v not taken).  Mutex held. */
static int put_locked(const char *key, size_t len, nb_value_t *v,
                      nb_value_t **old) {
  int i = find_locked(key, len);
  if (i >= 0) {
    *old = board.entries[i].value;
    board.entries[i].value = v;
  } else if (board.count == BOC_NB_MAX_ENTRIES) {
    return -1;
  } else {
    nb_entry_t *e = &board.entries[board.count++];
    e->len = len;
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    e->value = v;
  }
  bump_version();
  return 0;
}

/* Removes key; its value goes to *old (NULL if absent).  Mutex held. */
static void remove_locked(const char *key, size_t len, nb_value_t **old) {
  int i = find_locked(key, len);
  if (i < 0) {
    return;
  }
  *old = board.entries[i].value;
  memmove(&board.entries[i], &board.entries[i + 1],
          (size_t)(board.count - i - 1) * sizeof(nb_entry_t));
  board.count--;
  bump_version();
}

/* ---- locking ---------------------------------------------------------------- */

static int not_reentrant(void) {
  if (tls_in_update) {
    PyErr_SetString(PyExc_RuntimeError,
                    "the noticeboard cannot be used from inside a "
                    "notice_update() function");
    return -1;
  }
  boc_once(&board_once, board_init);
  return 0;
}

/* Takes the board mutex without holding the GIL while waiting (GIL held
 * on entry and on return). */
static void lock_board(void) {
  Py_BEGIN_ALLOW_THREADS
  boc_mutex_lock(&board.mu);
  Py_END_ALLOW_THREADS
}

/* ---- keys ------------------------------------------------------------------- */

int boc_nb_key(PyObject *key, const char **s, Py_ssize_t *n) {
  if (!PyUnicode_Check(key)) {
    PyErr_Format(PyExc_TypeError, "noticeboard key must be a str, not %.100s",
                 Py_TYPE(key)->tp_name);
    return -1;
  }
  *s = PyUnicode_AsUTF8AndSize(key, n);
  if (*s == NULL) {
    return -1;
  }
  if (*n > BOC_NB_MAX_KEY) {
    PyErr_Format(PyExc_ValueError,
                 "noticeboard key must be at most %d UTF-8 bytes, not %zd",
                 BOC_NB_MAX_KEY, *n);
    return -1;
  }
  if (memchr(*s, '\0', (size_t)*n) != NULL) {
    PyErr_SetString(PyExc_ValueError,
                    "noticeboard key must not contain NUL characters");
    return -1;
  }
  return 0;
}

static int board_full(void) {
  PyErr_Format(PyExc_KeyError, "noticeboard is full (%d keys)",
               BOC_NB_MAX_ENTRIES);
  return -1;
}

/* ---- writes ------------------------------------------------------------------ */

int boc_nb_write(PyObject *key, PyObject *value) {
  const char *k;
  Py_ssize_t n;
  if (not_reentrant() < 0 || boc_nb_key(key, &k, &n) < 0) {
    return -1;
  }
  boc_payload_t *p = boc_payload_encode_snapshot(value);
  nb_value_t *v = p != NULL ? value_new(p) : NULL;
  if (v == NULL) {
    return -1;
  }
  nb_value_t *old = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  boc_mutex_lock(&board.mu);
  rc = put_locked(k, (size_t)n, v, &old);
  boc_mutex_unlock(&board.mu);
  Py_END_ALLOW_THREADS
  value_decref(old);
  if (rc < 0) {
    value_decref(v);
    return board_full();
  }
  return 0;
}

int boc_nb_delete(PyObject *key) {
  const char *k;
  Py_ssize_t n;
  if (not_reentrant() < 0 || boc_nb_key(key, &k, &n) < 0) {
    return -1;
  }
  nb_value_t *old = NULL;
  Py_BEGIN_ALLOW_THREADS
  boc_mutex_lock(&board.mu);
  remove_locked(k, (size_t)n, &old);
  boc_mutex_unlock(&board.mu);
  Py_END_ALLOW_THREADS
  value_decref(old);
  return 0;
}

int boc_nb_update(PyObject *key, PyObject *fn, PyObject *dflt,
                  PyObject *removed) {
  const char *k;
  Py_ssize_t n;
  if (not_reentrant() < 0 || boc_nb_key(key, &k, &n) < 0) {
    return -1;
  }
  if (!PyCallable_Check(fn)) {
    PyErr_Format(PyExc_TypeError,
                 "notice_update() fn must be callable, not %.100s",
                 Py_TYPE(fn)->tp_name);
    return -1;
  }
  nb_value_t *old = NULL, *fresh = NULL;
  int rc = -1;
  lock_board();
  tls_in_update = 1;
  /* Everything below runs Python code (unpickling, fn, pickling) with the
   * board mutex held: that is what makes the update atomic. */
  int i = find_locked(k, (size_t)n);
  PyObject *current = i >= 0 ? boc_payload_decode(board.entries[i].value->payload)
                             : Py_NewRef(dflt);
  PyObject *result = current != NULL ? PyObject_CallOneArg(fn, current) : NULL;
  Py_XDECREF(current);
  if (result == NULL) {
    goto done;
  }
  if (result == removed) {
    remove_locked(k, (size_t)n, &old);
    rc = 0;
    goto done;
  }
  boc_payload_t *p = boc_payload_encode_snapshot(result);
  fresh = p != NULL ? value_new(p) : NULL;
  if (fresh == NULL) {
    goto done;
  }
  if (put_locked(k, (size_t)n, fresh, &old) < 0) {
    board_full();
    goto done;
  }
  fresh = NULL; /* the board's now */
  rc = 0;
done:
  tls_in_update = 0;
  boc_mutex_unlock(&board.mu);
  Py_XDECREF(result);
  value_decref(old);
  value_decref(fresh);
  return rc;
}

/* ---- reads -------------------------------------------------------------------- */

typedef struct nb_copy {
  int count;
  uint64_t version;
  nb_entry_t entries[BOC_NB_MAX_ENTRIES]; /* each holds a value reference */
} nb_copy_t;

/* Copies the board (keys + value references) under the mutex. */
static void copy_board(nb_copy_t *c) {
  Py_BEGIN_ALLOW_THREADS
  boc_mutex_lock(&board.mu);
  c->count = board.count;
  /* relaxed: read under the mutex that orders every bump. */
  c->version = atomic_load_explicit(&board.version, BOC_RELAXED);
  memcpy(c->entries, board.entries, (size_t)board.count * sizeof(nb_entry_t));
  for (int i = 0; i < c->count; i++) {
    value_incref(c->entries[i].value);
  }
  boc_mutex_unlock(&board.mu);
  Py_END_ALLOW_THREADS
}

/* Decodes entries[0..count) into a new dict and drops their references. */
static PyObject *decode_entries(nb_entry_t *entries, int count) {
  PyObject *d = PyDict_New();
  for (int i = 0; i < count; i++) {
    if (d == NULL) {
      break;
    }
    PyObject *k = PyUnicode_DecodeUTF8(entries[i].key,
                                       (Py_ssize_t)entries[i].len, NULL);
    PyObject *v = k != NULL ? boc_payload_decode(entries[i].value->payload)
                            : NULL;
    if (v == NULL || PyDict_SetItem(d, k, v) < 0) {
      Py_CLEAR(d);
    }
    Py_XDECREF(k);
    Py_XDECREF(v);
  }
  for (int i = 0; i < count; i++) {
    value_decref(entries[i].value);
  }
  return d;
}

PyObject *boc_nb_snapshot(void) {
  if (not_reentrant() < 0) {
    return NULL;
  }
  nb_copy_t *c = PyMem_Malloc(sizeof(*c));
  if (c == NULL) {
    return PyErr_NoMemory();
  }
  copy_board(c);
  PyObject *d = decode_entries(c->entries, c->count);
  PyMem_Free(c);
  return d;
}

/* The per-interpreter cache of a worker's snapshot.  It holds Python
 * objects of that interpreter, so it lives in the interpreter's dict (in a
 * capsule that frees it when the interpreter is finalised), never in a C
 * global; the thread-locals below only memoise the lookup. */
#define CACHE_KEY "bocpy._core.noticeboard_cache"

typedef struct nb_cache {
  PyObject *proxy;   /* MappingProxyType of the snapshot, or NULL */
  uint64_t version;  /* board version of the snapshot */
  uint64_t behavior; /* tls_behavior of the last behavior that read it */
} nb_cache_t;

static _Thread_local int64_t tls_cache_interp = -1;
static _Thread_local nb_cache_t *tls_cache;

static void cache_destroy(PyObject *cap) {
  nb_cache_t *c = PyCapsule_GetPointer(cap, CACHE_KEY);
  if (c != NULL) {
    Py_CLEAR(c->proxy);
    PyMem_RawFree(c);
  }
}

static nb_cache_t *get_cache(void) {
  int64_t id = boc_current_interp_id();
  if (tls_cache != NULL && tls_cache_interp == id) {
    return tls_cache;
  }
  PyObject *dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
  if (dict == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "no interpreter dict");
    return NULL;
  }
  PyObject *cap = PyDict_GetItemString(dict, CACHE_KEY); /* borrowed */
  nb_cache_t *c;
  if (cap != NULL) {
    c = PyCapsule_GetPointer(cap, CACHE_KEY);
    if (c == NULL) {
      return NULL;
    }
  } else {
    c = PyMem_RawCalloc(1, sizeof(*c));
    if (c == NULL) {
      PyErr_NoMemory();
      return NULL;
    }
    cap = PyCapsule_New(c, CACHE_KEY, cache_destroy);
    if (cap == NULL) {
      PyMem_RawFree(c);
      return NULL;
    }
    int rc = PyDict_SetItemString(dict, CACHE_KEY, cap);
    Py_DECREF(cap); /* the dict keeps it (or it freed c on failure) */
    if (rc < 0) {
      return NULL;
    }
  }
  tls_cache = c;
  tls_cache_interp = id;
  return c;
}

static PyObject *fresh_view(uint64_t *version) {
  nb_copy_t *c = PyMem_Malloc(sizeof(*c));
  if (c == NULL) {
    return PyErr_NoMemory();
  }
  copy_board(c);
  *version = c->version;
  PyObject *d = decode_entries(c->entries, c->count);
  PyMem_Free(c);
  if (d == NULL) {
    return NULL;
  }
  PyObject *proxy = PyDictProxy_New(d);
  Py_DECREF(d);
  return proxy;
}

/* The snapshot cache applies to behaviors on worker threads: everything
 * Python runs there belongs to a behavior. */
static int cached_reads(void) { return boc_sched_worker_index() >= 0; }

PyObject *boc_nb_view(void) {
  if (not_reentrant() < 0) {
    return NULL;
  }
  uint64_t version = 0; /* set by fresh_view before use; 0 quiets -Wmaybe-uninitialized */
  if (!cached_reads()) {
    return fresh_view(&version);
  }
  nb_cache_t *c = get_cache();
  if (c == NULL) {
    return NULL;
  }
  if (c->proxy != NULL &&
      (c->behavior == tls_behavior || c->version == boc_nb_version())) {
    c->behavior = tls_behavior;
    return Py_NewRef(c->proxy);
  }
  PyObject *proxy = fresh_view(&version);
  if (proxy == NULL) {
    return NULL;
  }
  Py_XSETREF(c->proxy, Py_NewRef(proxy));
  c->version = version;
  c->behavior = tls_behavior;
  return proxy;
}

PyObject *boc_nb_read(PyObject *key, PyObject *dflt) {
  const char *k;
  Py_ssize_t n;
  if (not_reentrant() < 0 || boc_nb_key(key, &k, &n) < 0) {
    return NULL;
  }
  if (cached_reads()) {
    PyObject *view = boc_nb_view();
    if (view == NULL) {
      return NULL;
    }
    PyObject *v = PyObject_GetItem(view, key);
    Py_DECREF(view);
    if (v == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
      PyErr_Clear();
      return Py_NewRef(dflt);
    }
    return v;
  }
  /* Fresh read of a single entry: the same answer as a fresh snapshot's
   * get(), without decoding the other entries. */
  nb_value_t *v = NULL;
  Py_BEGIN_ALLOW_THREADS
  boc_mutex_lock(&board.mu);
  int i = find_locked(k, (size_t)n);
  if (i >= 0) {
    v = board.entries[i].value;
    value_incref(v);
  }
  boc_mutex_unlock(&board.mu);
  Py_END_ALLOW_THREADS
  if (v == NULL) {
    return Py_NewRef(dflt);
  }
  PyObject *obj = boc_payload_decode(v->payload);
  value_decref(v);
  return obj;
}

/* ---- teardown ---------------------------------------------------------------- */

void boc_noticeboard_clear(void) {
  if (tls_in_update) {
    return; /* this thread holds the mutex (see noticeboard.h) */
  }
  boc_once(&board_once, board_init);
  nb_copy_t *old = malloc(sizeof(*old));
  if (old == NULL) {
    return; /* keep the board rather than lose track of the values */
  }
  lock_board();
  old->count = board.ncleared;
  memcpy(old->entries, board.cleared,
         (size_t)board.ncleared * sizeof(nb_entry_t));
  memcpy(board.cleared, board.entries,
         (size_t)board.count * sizeof(nb_entry_t));
  board.ncleared = board.count;
  board.count = 0;
  bump_version();
  boc_mutex_unlock(&board.mu);
  for (int i = 0; i < old->count; i++) {
    value_decref(old->entries[i].value);
  }
  free(old);
}

PyObject *boc_nb_take_cleared(int decode) {
  if (not_reentrant() < 0) {
    return NULL;
  }
  nb_copy_t *c = PyMem_Malloc(sizeof(*c));
  if (c == NULL) {
    return PyErr_NoMemory();
  }
  lock_board();
  c->count = board.ncleared;
  memcpy(c->entries, board.cleared,
         (size_t)board.ncleared * sizeof(nb_entry_t));
  board.ncleared = 0;
  boc_mutex_unlock(&board.mu);
  PyObject *result;
  if (decode) {
    result = decode_entries(c->entries, c->count);
  } else {
    for (int i = 0; i < c->count; i++) {
      value_decref(c->entries[i].value);
    }
    result = Py_NewRef(Py_None);
  }
  PyMem_Free(c);
  return result;
}
