/* noticeboard.h - the process-global noticeboard: up to 64 key -> value
 * entries that every interpreter can read and write.
 *
 * Writes are synchronous: when notice_write/notice_delete/notice_update
 * return, the change is on the board.  Values are transport payloads
 * (transport.h) held in reference-counted records, so a reader copies the
 * records it needs under the board mutex and decodes them after dropping it.
 *
 * The board mutex is only ever waited for with the caller's GIL released:
 * notice_update runs the caller's Python function while holding it, and
 * another thread of the same interpreter may be waiting for the mutex.
 * A thread inside that function must not use the noticeboard again (a
 * thread-local flag turns that into RuntimeError instead of a deadlock).
 *
 * Reads made by a behavior on a worker see one snapshot per behavior: the
 * first read takes it (reusing the worker's previous one when the board's
 * version has not moved) and later reads in the same behavior return the
 * very same mapping.  Elsewhere every read takes a fresh snapshot.
 */
#ifndef BOCPY_CORE_NOTICEBOARD_H
#define BOCPY_CORE_NOTICEBOARD_H

#include <Python.h>

#define BOC_NB_MAX_ENTRIES 64
#define BOC_NB_MAX_KEY 63 /* UTF-8 bytes */

/* Marks the start of a behavior on this thread: its first read takes a
 * (possibly cached) snapshot.  Any thread; no lock or GIL needed. */
void boc_noticeboard_begin_behavior(void);

/* Empties the board at teardown (main interpreter, GIL held).  The cleared
 * entries are kept aside until boc_nb_take_cleared() (wait() reports them)
 * or the next clear.  Does nothing when called from inside a notice_update
 * function (the board mutex is held by this thread). */
void boc_noticeboard_clear(void);

/* Validates a key: a str of at most 63 UTF-8 bytes without NUL.  Sets *s
 * (valid while key lives) and *n; -1 with TypeError/ValueError otherwise. */
int boc_nb_key(PyObject *key, const char **s, Py_ssize_t *n);

/* The operations behind the Python functions (GIL held; -1 or NULL with an
 * exception on failure, the board unchanged). */
int boc_nb_write(PyObject *key, PyObject *value);
int boc_nb_delete(PyObject *key);
/* Under the board mutex: fn(current value, or dflt when absent); a result
 * that is `removed` deletes the key, anything else is stored. */
int boc_nb_update(PyObject *key, PyObject *fn, PyObject *dflt,
                  PyObject *removed);
/* A read-only mapping of the board (cached per behavior on workers). */
PyObject *boc_nb_view(void);
/* view().get(key, dflt), reading a single entry when nothing is cached. */
PyObject *boc_nb_read(PyObject *key, PyObject *dflt);
/* A fresh plain dict of the board. */
PyObject *boc_nb_snapshot(void);
/* The entries of the last clear as a dict (or None when !decode), which
 * are then forgotten; {} when nothing was cleared since the last take. */
PyObject *boc_nb_take_cleared(int decode);
/* Commits so far (every write, delete and clear bumps it). */
uint64_t boc_nb_version(void);

/* 1 while this thread runs a notice_update function (waiting calls refuse
 * to run there: the board's mutex is held). */
int boc_nb_in_update(void);

#endif /* BOCPY_CORE_NOTICEBOARD_H */
