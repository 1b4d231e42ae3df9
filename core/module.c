/* module.c - the bocpy._core extension module: types and functions only.
 *
 * Multi-phase initialisation (PEP 489) with per-interpreter module state, so
 * the module can be imported in every worker sub-interpreter, each of which
 * has its own GIL.  No Python object is kept in a C global.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "platform.h"
#include "pycompat.h"

#include <stdlib.h>

/* ---- functions ----------------------------------------------------------- */

PyDoc_STRVAR(interpreter_id_doc,
             "interpreter_id() -> int\n\n"
             "The id of the interpreter that calls it (0 for the main one).");
static PyObject *interpreter_id(PyObject *module, PyObject *Py_UNUSED(arg)) {
  (void)module;
  return PyLong_FromLongLong(boc_current_interp_id());
}

PyDoc_STRVAR(is_main_interpreter_doc,
             "is_main_interpreter() -> bool\n\n"
             "True when called from the process's main interpreter.");
static PyObject *is_main_interpreter(PyObject *module,
                                     PyObject *Py_UNUSED(arg)) {
  (void)module;
  return PyBool_FromLong(boc_is_main_interp());
}

PyDoc_STRVAR(cpu_count_doc,
             "cpu_count(physical=False) -> int\n\n"
             "CPUs in this process's affinity mask; with physical=True, the\n"
             "distinct physical cores among them.");
static PyObject *cpu_count(PyObject *module, PyObject *args, PyObject *kwds) {
  (void)module;
  static char *kwlist[] = {"physical", NULL};
  int physical = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:cpu_count", kwlist,
                                   &physical)) {
    return NULL;
  }
  return PyLong_FromLong(physical ? boc_cpu_count_physical()
                                  : boc_cpu_count_logical());
}

PyDoc_STRVAR(default_worker_count_doc,
             "default_worker_count() -> int\n\n"
             "BOCPY_WORKERS when it holds an integer in [1, 4096], else the\n"
             "physical cores in the affinity mask minus one, at least 1.");
static PyObject *default_worker_count(PyObject *module,
                                      PyObject *Py_UNUSED(arg)) {
  (void)module;
  return PyLong_FromLong(boc_default_worker_count(getenv("BOCPY_WORKERS")));
}

static PyMethodDef core_methods[] = {
    {"interpreter_id", interpreter_id, METH_NOARGS, interpreter_id_doc},
    {"is_main_interpreter", is_main_interpreter, METH_NOARGS,
     is_main_interpreter_doc},
    {"cpu_count", (PyCFunction)(void (*)(void))cpu_count,
     METH_VARARGS | METH_KEYWORDS, cpu_count_doc},
    {"default_worker_count", default_worker_count, METH_NOARGS,
     default_worker_count_doc},
    {NULL, NULL, 0, NULL},
};

/* ---- module definition ---------------------------------------------------- */

static int core_exec(PyObject *module) {
  (void)module;
  return 0;
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#if BOC_HAVE_MOD_GIL_SLOT
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bocpy._core",
    .m_doc = "The bocpy runtime, written in C.",
    .m_size = 0,
    .m_methods = core_methods,
    .m_slots = core_slots,
};

PyMODINIT_FUNC PyInit__core(void); /* the one exported symbol */
PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
