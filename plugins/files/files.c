/* files.c - bocpy.plugins.files: pinned file handles.
 *
 * The first plugin built on the BOCPY_ABI table: an abi3 extension module
 * (stable ABI 3.12 + <bocpy/bocpy.h> only), so this one binary loads on
 * every CPython the core supports.
 *
 * A File is an open file (a path opened here, a raw file descriptor, or a
 * Python file object, text or binary) registered as a *pinned* type: it only
 * ever lives in a PinnedCown on the main interpreter.  Worker behaviors
 * produce records; pinned behaviors (which run on the main thread) write
 * them, so records never interleave.  The pinned-type hooks do the rest:
 *   release  flushes after every behavior that held the file;
 *   destroy  closes it when the PinnedCown holding it dies.
 * Touching a File from a worker raises RuntimeError.
 *
 *   from bocpy.plugins import files
 *   log = files.open("out.log", "a")          # a PinnedCown[File]
 *
 *   @when(record, log)                         # runs on the main thread
 *   def write(record, log):
 *       log.value.write(record.value)
 *
 * files.write_after(log, *cowns) does the same with a behavior whose body is
 * C (the ABI's schedule_c): it writes each cown's str / bytes value.
 */
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bocpy/bocpy.h>

/* Text files are written in UTF-8; bytes beyond this are flushed at once. */
#define FILES_BUFFER_LIMIT (64 * 1024)

typedef struct {
  PyTypeObject *file_type;
  const bocpy_abi *abi;
} files_state;

typedef struct {
  PyObject_HEAD
  const bocpy_abi *abi; /* the process's table (plain data) */
  int64_t owner;        /* the main interpreter: checked by every method */
  int fd;               /* raw file descriptor, or -1 (wrapping pyfile) */
  int closefd;          /* close fd / pyfile when the File is closed */
  int binary;           /* 1 bytes, 0 str, -1 unknown (a Python file) */
  int closed;
  PyObject *pyfile;     /* strong: the wrapped Python file object, or NULL */
  PyObject *name;       /* strong: what the File was made from */
  PyObject *mode;       /* strong: str */
  char *buf;            /* pending bytes (fd only) */
  size_t len, cap;
  long long records;    /* write() calls that succeeded */
  long long bytes;      /* bytes (or characters, for a Python text file) */
  long long flushes;    /* flushes done by the release hook */
} file_t;

static void file_dealloc(PyObject *self);

/* TypeError "<prefix><type name of obj><suffix>" (tp_name is not part of
 * the limited API: PyType_GetName is). */
static void type_error(const char *prefix, PyObject *obj, const char *suffix) {
  PyObject *name = PyType_GetName(Py_TYPE(obj));
  if (name != NULL) {
    PyErr_Format(PyExc_TypeError, "%s%U%s", prefix, name, suffix);
    Py_DECREF(name);
  }
}

static int is_file(PyObject *obj) {
  return PyType_GetSlot(Py_TYPE(obj), Py_tp_dealloc) == (void *)file_dealloc;
}

/* ---- low level ------------------------------------------------------------------- */

/* Writes the pending bytes of an fd-backed file.  0, or -1 with OSError
 * (the unwritten rest stays pending).  The GIL stays held: any thread of
 * the main interpreter may reach this File through its PinnedCown, and the
 * buffer has no other lock. */
static int flush_buffer(file_t *f) {
  size_t done = 0;
  int err = 0;
  if (f->len == 0) {
    return 0;
  }
  while (done < f->len) {
    ssize_t n = write(f->fd, f->buf + done, f->len - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      err = errno;
      break;
    }
    done += (size_t)n;
  }
  memmove(f->buf, f->buf + done, f->len - done);
  f->len -= done;
  if (err != 0) {
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  return 0;
}

static int file_flush_impl(file_t *f) {
  if (f->closed) {
    return 0;
  }
  if (f->pyfile != NULL) {
    PyObject *r = PyObject_CallMethod(f->pyfile, "flush", NULL);
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
  }
  return flush_buffer(f);
}

static int file_close_impl(file_t *f) {
  if (f->closed) {
    return 0;
  }
  int rc = file_flush_impl(f);
  PyObject *exc = rc < 0 ? PyErr_GetRaisedException() : NULL;
  f->closed = 1;
  if (f->pyfile != NULL) {
    if (f->closefd) {
      PyObject *r = PyObject_CallMethod(f->pyfile, "close", NULL);
      if (r == NULL && exc == NULL) {
        exc = PyErr_GetRaisedException();
      }
      Py_XDECREF(r);
      PyErr_Clear();
    }
    Py_CLEAR(f->pyfile);
  } else if (f->fd >= 0) {
    if (f->closefd && close(f->fd) < 0 && exc == NULL) {
      PyErr_SetFromErrno(PyExc_OSError);
      exc = PyErr_GetRaisedException();
    }
    f->fd = -1;
  }
  free(f->buf);
  f->buf = NULL;
  f->len = f->cap = 0;
  if (exc != NULL) {
    PyErr_SetRaisedException(exc);
    return -1;
  }
  return 0;
}

/* Every method: the main interpreter only, and an open file. */
static int usable(file_t *f) {
  if (f->abi->owner_check(&f->owner, "file") < 0) {
    return -1;
  }
  if (f->closed) {
    PyErr_SetString(PyExc_ValueError, "I/O operation on closed file");
    return -1;
  }
  return 0;
}

static int append(file_t *f, const char *data, size_t n) {
  if (f->len + n > f->cap) {
    size_t cap = f->cap ? f->cap : 4096;
    while (cap < f->len + n) {
      cap *= 2;
    }
    char *buf = realloc(f->buf, cap);
    if (buf == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    f->buf = buf;
    f->cap = cap;
  }
  memcpy(f->buf + f->len, data, n);
  f->len += n;
  return f->len >= FILES_BUFFER_LIMIT ? flush_buffer(f) : 0;
}

/* Writes one record; returns what write() returns (a new int), or NULL. */
static PyObject *write_record(file_t *f, PyObject *data) {
  if (f->pyfile != NULL) {
    PyObject *r = PyObject_CallMethod(f->pyfile, "write", "O", data);
    if (r != NULL) {
      f->records++;
      long long n = PyLong_Check(r) ? PyLong_AsLongLong(r) : 0;
      if (n > 0) {
        f->bytes += n;
      }
      PyErr_Clear();
    }
    return r;
  }
  if (f->binary) {
    if (PyUnicode_Check(data)) {
      PyErr_SetString(PyExc_TypeError,
                      "a bytes-like object is required, not 'str' (this "
                      "file is binary)");
      return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
      return NULL;
    }
    int rc = append(f, view.buf, (size_t)view.len);
    Py_ssize_t n = view.len;
    PyBuffer_Release(&view);
    if (rc < 0) {
      return NULL;
    }
    f->records++;
    f->bytes += n;
    return PyLong_FromSsize_t(n);
  }
  if (!PyUnicode_Check(data)) {
    type_error("write() argument must be str, not ", data,
               " (this file is text; open it with mode 'ab' or 'wb' for "
               "bytes)");
    return NULL;
  }
  Py_ssize_t size;
  const char *utf8 = PyUnicode_AsUTF8AndSize(data, &size);
  if (utf8 == NULL || append(f, utf8, (size_t)size) < 0) {
    return NULL;
  }
  f->records++;
  f->bytes += size;
  return PyLong_FromSsize_t(PyUnicode_GetLength(data));
}

/* ---- pinned-type hooks (main thread, GIL held) ------------------------------------ */

static int hook_acquire(PyObject *value) {
  file_t *f = (file_t *)value;
  return f->abi->owner_check(&f->owner, "file");
}

static int hook_release(PyObject *value) {
  file_t *f = (file_t *)value;
  if (f->closed) {
    return 0;
  }
  f->flushes++;
  return file_flush_impl(f);
}

static void hook_destroy(PyObject *value) {
  /* The core reports an exception left here as unraisable. */
  (void)file_close_impl((file_t *)value);
}

/* ---- the File type ------------------------------------------------------------------ */

/* Parses "w" / "a" / "x" with an optional "b" or "t". */
static int parse_mode(const char *mode, int *oflags, int *binary) {
  int kind = 0, b = 0, t = 0;
  for (const char *p = mode; *p; p++) {
    switch (*p) {
    case 'w':
    case 'a':
    case 'x':
      if (kind) {
        goto bad;
      }
      kind = *p;
      break;
    case 'b':
      b++;
      break;
    case 't':
      t++;
      break;
    default:
      goto bad;
    }
  }
  if (!kind || b + t > 1) {
    goto bad;
  }
  *binary = b;
  *oflags = O_WRONLY | O_CREAT | O_CLOEXEC |
            (kind == 'w' ? O_TRUNC : kind == 'a' ? O_APPEND : O_EXCL);
  return 0;
bad:
  PyErr_Format(PyExc_ValueError,
               "invalid mode '%s': a pinned file is write-only; use 'w', 'a' "
               "or 'x', optionally with 'b'",
               mode);
  return -1;
}

static PyObject *file_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"target", "mode", "closefd", NULL};
  PyObject *target;
  const char *mode = "a";
  int closefd = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|sp:File", kwlist, &target,
                                   &mode, &closefd)) {
    return NULL;
  }
  files_state *st = PyType_GetModuleState(type);
  if (st == NULL) {
    return NULL;
  }
  if (!st->abi->interp_is_main()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "a bocpy.plugins.files.File can only be created on the "
                    "main interpreter (it lives in a PinnedCown)");
    return NULL;
  }
  int oflags = 0, binary = 0;
  if (parse_mode(mode, &oflags, &binary) < 0) {
    return NULL;
  }
  file_t *f = (file_t *)PyType_GenericAlloc(type, 0);
  if (f == NULL) {
    return NULL;
  }
  f->abi = st->abi;
  f->owner = st->abi->interp_current();
  f->fd = -1;
  f->closefd = closefd;
  f->binary = binary;
  f->mode = PyUnicode_FromString(mode);
  f->name = Py_NewRef(target);
  if (f->mode == NULL) {
    goto fail;
  }
  if (PyLong_Check(target)) { /* a raw file descriptor */
    long fd = PyLong_AsLong(target);
    if (fd == -1 && PyErr_Occurred()) {
      goto fail;
    }
    if (fd < 0 || fd > INT32_MAX) {
      PyErr_Format(PyExc_ValueError, "bad file descriptor %ld", fd);
      goto fail;
    }
    f->fd = (int)fd;
  } else if (PyUnicode_Check(target) || PyBytes_Check(target) ||
             PyObject_HasAttrString(target, "__fspath__")) {
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(target, &path)) {
      goto fail;
    }
    int fd;
    const char *cpath = PyBytes_AsString(path);
    Py_BEGIN_ALLOW_THREADS
    fd = open(cpath, oflags, 0666);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
      PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, target);
      Py_DECREF(path);
      goto fail;
    }
    Py_DECREF(path);
    f->fd = fd;
    f->closefd = 1; /* we opened it */
  } else if (PyObject_HasAttrString(target, "write")) { /* a file object */
    f->pyfile = Py_NewRef(target);
    f->binary = -1;
  } else {
    type_error("File() needs a path, a file descriptor or a file object, "
               "not ",
               target, "");
    goto fail;
  }
  return (PyObject *)f;
fail:
  f->closed = 1; /* nothing to flush or close */
  Py_DECREF(f);
  return NULL;
}

static void file_dealloc(PyObject *self) {
  file_t *f = (file_t *)self;
  PyTypeObject *tp = Py_TYPE(self);
  if (!f->closed) {
    /* Normally the destroy hook closed it; a File that never lived in a
     * PinnedCown is closed here. */
    PyObject *exc = PyErr_GetRaisedException();
    if (file_close_impl(f) < 0) {
      PyErr_WriteUnraisable(self);
    }
    PyErr_SetRaisedException(exc);
  }
  Py_CLEAR(f->pyfile);
  Py_CLEAR(f->name);
  Py_CLEAR(f->mode);
  free(f->buf);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *file_write(PyObject *self, PyObject *data) {
  file_t *f = (file_t *)self;
  if (usable(f) < 0) {
    return NULL;
  }
  return write_record(f, data);
}

static PyObject *file_writelines(PyObject *self, PyObject *lines) {
  file_t *f = (file_t *)self;
  if (usable(f) < 0) {
    return NULL;
  }
  PyObject *it = PyObject_GetIter(lines);
  if (it == NULL) {
    return NULL;
  }
  PyObject *item;
  while ((item = PyIter_Next(it)) != NULL) {
    PyObject *r = write_record(f, item);
    Py_DECREF(item);
    if (r == NULL) {
      Py_DECREF(it);
      return NULL;
    }
    Py_DECREF(r);
  }
  Py_DECREF(it);
  if (PyErr_Occurred()) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *file_flush(PyObject *self, PyObject *Py_UNUSED(a)) {
  file_t *f = (file_t *)self;
  if (usable(f) < 0 || file_flush_impl(f) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *file_close(PyObject *self, PyObject *Py_UNUSED(a)) {
  file_t *f = (file_t *)self;
  if (f->abi->owner_check(&f->owner, "file") < 0 || file_close_impl(f) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *file_fileno(PyObject *self, PyObject *Py_UNUSED(a)) {
  file_t *f = (file_t *)self;
  if (usable(f) < 0) {
    return NULL;
  }
  if (f->pyfile != NULL) {
    return PyObject_CallMethod(f->pyfile, "fileno", NULL);
  }
  return PyLong_FromLong(f->fd);
}

static PyObject *file_reduce(PyObject *self, PyObject *Py_UNUSED(a)) {
  /* Raises TypeError naming PinnedCown: a File never leaves main. */
  return ((file_t *)self)->abi->reduce_shared(self);
}

static PyObject *file_repr(PyObject *self) {
  file_t *f = (file_t *)self;
  return PyUnicode_FromFormat("<bocpy.plugins.files.File %R mode=%R%s>",
                              f->name, f->mode, f->closed ? " closed" : "");
}

static PyObject *get_closed(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((file_t *)self)->closed);
}
static PyObject *get_name(PyObject *self, void *c) {
  (void)c;
  return Py_NewRef(((file_t *)self)->name);
}
static PyObject *get_mode(PyObject *self, void *c) {
  (void)c;
  return Py_NewRef(((file_t *)self)->mode);
}
static PyObject *get_records(PyObject *self, void *c) {
  (void)c;
  return PyLong_FromLongLong(((file_t *)self)->records);
}
static PyObject *get_bytes(PyObject *self, void *c) {
  (void)c;
  return PyLong_FromLongLong(((file_t *)self)->bytes);
}
static PyObject *get_flushes(PyObject *self, void *c) {
  (void)c;
  return PyLong_FromLongLong(((file_t *)self)->flushes);
}

static PyMethodDef file_methods[] = {
    {"write", file_write, METH_O,
     "write(data) -> int\n--\n\nWrite a record (str for a text file, bytes "
     "for a binary one); buffered until the behavior releases the file."},
    {"writelines", file_writelines, METH_O, "Write each item of an iterable."},
    {"flush", file_flush, METH_NOARGS, "Write out what is buffered."},
    {"close", file_close, METH_NOARGS, "Flush and close (idempotent)."},
    {"fileno", file_fileno, METH_NOARGS, "The underlying file descriptor."},
    {"__reduce__", file_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef file_getset[] = {
    {"closed", get_closed, NULL, "True once closed.", NULL},
    {"name", get_name, NULL, "The path, fd or file object given.", NULL},
    {"mode", get_mode, NULL, "The mode given.", NULL},
    {"records", get_records, NULL, "Successful write() calls.", NULL},
    {"bytes_written", get_bytes, NULL,
     "Bytes written (characters, for a wrapped text file).", NULL},
    {"flushes", get_flushes, NULL,
     "Flushes done because a behavior released the file.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot file_slots[] = {
    {Py_tp_new, file_new},
    {Py_tp_dealloc, file_dealloc},
    {Py_tp_methods, file_methods},
    {Py_tp_getset, file_getset},
    {Py_tp_repr, file_repr},
    {Py_tp_doc,
     "File(target, mode='a', closefd=True)\n--\n\n"
     "A write-only file that lives in a PinnedCown on the main interpreter. "
     "target is a path (opened with mode 'w', 'a' or 'x', optionally with "
     "'b'), a raw file descriptor (text unless mode has 'b'), or a Python "
     "file object.  Flushed whenever a behavior releases it; closed when "
     "the PinnedCown holding it dies (if closefd)."},
    {0, NULL},
};

static PyType_Spec file_spec = {
    .name = "bocpy.plugins.files.File",
    .basicsize = sizeof(file_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = file_slots,
};

/* ---- module functions ------------------------------------------------------------ */

static files_state *mod_state(PyObject *module) {
  return (files_state *)PyModule_GetState(module);
}

PyDoc_STRVAR(open_doc,
             "open(target, mode='a', closefd=True) -> PinnedCown[File]\n\n"
             "Opens (or wraps) a file and puts it in a new PinnedCown.");
static PyObject *files_open(PyObject *module, PyObject *args, PyObject *kw) {
  files_state *st = mod_state(module);
  PyObject *file = PyObject_Call((PyObject *)st->file_type, args, kw);
  if (file == NULL) {
    return NULL;
  }
  PyObject *cown = st->abi->pinned_cown_new(file);
  Py_DECREF(file);
  return cown;
}

/* The C body of write_after: cowns[0] holds a File, the rest records. */
static int write_after_body(PyObject **cowns, Py_ssize_t n, void *ctx) {
  const bocpy_abi *abi = ctx;
  PyObject *file = abi->cown_get(cowns[0]);
  if (file == NULL) {
    return -1;
  }
  int rc = 0;
  if (!is_file(file)) {
    type_error("write_after: the first cown must hold a File, not ", file,
               "");
    rc = -1;
  } else if (usable((file_t *)file) < 0) {
    rc = -1;
  }
  for (Py_ssize_t i = 1; rc == 0 && i < n; i++) {
    PyObject *v = abi->cown_get(cowns[i]);
    if (v == NULL) {
      rc = -1;
      break;
    }
    if (v != Py_None) {
      PyObject *r = write_record((file_t *)file, v);
      rc = r != NULL ? 0 : -1;
      Py_XDECREF(r);
    }
    Py_DECREF(v);
  }
  Py_DECREF(file);
  return rc;
}

PyDoc_STRVAR(write_after_doc,
             "write_after(file, *records) -> Cown\n\n"
             "Schedules a behavior with a C body over the PinnedCown `file` and "
             "the cowns `records`: once they are all ready it writes each "
             "record's value (str / bytes; None is skipped), in order, on the "
             "main thread.  Returns the behavior's result Cown.");
static PyObject *files_write_after(PyObject *module, PyObject *args) {
  files_state *st = mod_state(module);
  Py_ssize_t n = PyTuple_Size(args);
  if (n < 1 || st->abi->cown_check(PyTuple_GetItem(args, 0)) != 2) {
    PyErr_SetString(PyExc_TypeError,
                    "write_after(file, *records): file must be a PinnedCown");
    return NULL;
  }
  PyObject *small[16];
  PyObject **cowns = small;
  if (n > 16) {
    cowns = PyMem_Malloc((size_t)n * sizeof(*cowns));
    if (cowns == NULL) {
      return PyErr_NoMemory();
    }
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    cowns[i] = PyTuple_GetItem(args, i); /* borrowed */
  }
  /* ctx: the table itself (static data, nothing to free). */
  PyObject *result = st->abi->schedule_c(cowns, n, write_after_body,
                                         (void *)st->abi, NULL);
  if (cowns != small) {
    PyMem_Free(cowns);
  }
  return result;
}

static PyMethodDef files_methods[] = {
    {"open", (PyCFunction)(void (*)(void))files_open,
     METH_VARARGS | METH_KEYWORDS, open_doc},
    {"write_after", files_write_after, METH_VARARGS, write_after_doc},
    {NULL, NULL, 0, NULL},
};

/* ---- module ---------------------------------------------------------------------------- */

static int files_exec(PyObject *module) {
  files_state *st = mod_state(module);
  /* Every interpreter: negotiate with the core, then register the type. */
  st->abi = BOCPY_IMPORT_ABI();
  if (st->abi == NULL) {
    return -1;
  }
  st->file_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &file_spec, NULL);
  if (st->file_type == NULL || PyModule_AddType(module, st->file_type) < 0) {
    return -1;
  }
  bocpy_pinned_spec spec = {
      .struct_size = sizeof(bocpy_pinned_spec),
      .reserved = 0,
      .type = st->file_type,
      .acquire = hook_acquire,
      .release = hook_release,
      .destroy = hook_destroy,
  };
  if (st->abi->register_pinned(&spec) < 0) {
    return -1;
  }
  return PyModule_AddIntConstant(module, "ABI_MINOR",
                                 (long)st->abi->header.minor);
}

static int files_traverse(PyObject *module, visitproc visit, void *arg) {
  Py_VISIT(mod_state(module)->file_type);
  return 0;
}

static int files_clear(PyObject *module) {
  Py_CLEAR(mod_state(module)->file_type);
  return 0;
}

static void files_free(void *module) { files_clear((PyObject *)module); }

static PyModuleDef_Slot files_slots[] = {
    {Py_mod_exec, files_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef files_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bocpy.plugins.files",
    .m_doc = "Pinned file handles: files written by pinned behaviors on the "
             "main thread, flushed on release, closed with their PinnedCown.",
    .m_size = sizeof(files_state),
    .m_methods = files_methods,
    .m_slots = files_slots,
    .m_traverse = files_traverse,
    .m_clear = files_clear,
    .m_free = files_free,
};

PyMODINIT_FUNC PyInit_files(void); /* the one exported symbol */
PyMODINIT_FUNC PyInit_files(void) { return PyModuleDef_Init(&files_module); }
