/* pinned.c - the main-thread pump: running pinned behaviors (those naming
 * a PinnedCown) from an event loop or script.  The queue itself lives in
 * runtime.c beside dispatch; wait() drains it too. */
#include "pinned.h"

#include "pycompat.h"
#include "runtime.h"

int boc_pump(boc_state_t *st, int64_t deadline_ms, int64_t max_behaviors,
             int raise_on_error, boc_pump_result_t *out) {
  out->executed = 0;
  out->raised = 0;
  out->deadline_reached = 0;
  if (!boc_is_main_interp()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "pump() can only be called from the main interpreter");
    return -1;
  }
  if (st->pumping) {
    PyErr_SetString(PyExc_RuntimeError,
                    "pump() is not reentrant: it was called from inside a "
                    "pinned behavior");
    return -1;
  }
  boc_cown_collect_orphans();
  int64_t deadline = deadline_ms > 0 ? boc_now_ns() + deadline_ms * 1000000LL
                                     : -1;
  PyObject *first = NULL; /* first body exception, for raise_on_error */
  st->pumping = 1;
  for (;;) {
    if (max_behaviors > 0 && out->executed >= max_behaviors) {
      break;
    }
    if (deadline >= 0 && out->executed > 0 && boc_now_ns() >= deadline) {
      out->deadline_reached = boc_pinned_depth() > 0;
      break;
    }
    boc_behavior_t *b = boc_pinned_pop();
    if (b == NULL) {
      break;
    }
    PyObject *exc = NULL;
    int raised = boc_behavior_run(b, &exc);
    out->executed++;
    if (!raised) {
      continue;
    }
    if (exc != NULL && !PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_Exception)) {
      /* KeyboardInterrupt, SystemExit...: stop pumping and propagate (the
       * behavior itself was fully retired; the rest stay queued). */
      st->pumping = 0;
      Py_XDECREF(first);
      PyErr_SetRaisedException(exc);
      return -1;
    }
    out->raised++;
    if (raise_on_error && first == NULL) {
      first = exc;
    } else {
      Py_XDECREF(exc);
    }
  }
  st->pumping = 0;
  if (first != NULL) {
    PyErr_SetRaisedException(first);
    return -1;
  }
  return 0;
}
