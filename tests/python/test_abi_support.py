"""Helpers shared by the C-ABI tests (test_abi*.py, test_files_plugin.py).

Holds no tests.  Provides: the repository paths, the interpreters and build
tools, rendering the plugin template (templates/c_abi_consumer), building
it once per session, and ctypes access to the BOCPY_ABI table of the
bocpy._core under test.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import bocpy
import bocpy._abi
from bocpy import _core

try:
    import ctypes
except ImportError:  # worker interpreters cannot load _ctypes
    ctypes = None  # type: ignore[assignment]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "templates" / "c_abi_consumer"


# ---- the manifest -------------------------------------------------------------

def gen_abi():
    """abi/gen_abi.py as a module."""
    spec = importlib.util.spec_from_file_location("gen_abi", REPO / "abi" / "gen_abi.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_abi", mod)
    spec.loader.exec_module(mod)
    return mod


# ---- tools ------------------------------------------------------------------------

def find_tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    for ver in ("3.12", "3.13"):
        cand = REPO / ".venv" / f"py{ver}" / "bin" / name
        if cand.exists():
            return str(cand)
    return shutil.which(name)


def find_python(ver: str) -> str | None:
    """A CPython `ver` interpreter: $BOCPY_PY<ver w/o dot>, the repo's venv,
    or python<ver> on PATH."""
    env = os.environ.get("BOCPY_PY" + ver.replace(".", ""))
    if env and Path(env).exists():
        return env
    if sys.version_info[:2] == tuple(int(x) for x in ver.split(".")):
        return sys.executable
    cands = [REPO / ".venv" / f"py{ver}" / "bin" / "python"]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    cands += sorted(pyenv_root.glob(f"versions/{ver}.*/bin/python{ver}"), reverse=True)
    which = shutil.which(f"python{ver}")
    cands += [Path(which)] if which else []
    for cand in cands:
        # A pyenv shim exists on PATH even when that version is not selected:
        # only an interpreter that actually runs counts.
        if cand.exists() and subprocess.run([str(cand), "-c", "pass"],
                                            capture_output=True).returncode == 0:
            return str(cand)
    return None


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


_tmp_roots: list[str] = []


def session_tmp(prefix: str) -> Path:
    d = tempfile.mkdtemp(prefix=prefix)
    _tmp_roots.append(d)
    return Path(d)


@atexit.register
def _cleanup() -> None:
    for d in _tmp_roots:
        shutil.rmtree(d, ignore_errors=True)


# ---- the template ------------------------------------------------------------------

def render_template(dest: Path, slug: str, **extra: str) -> Path:
    """Renders templates/c_abi_consumer by plain substitution of
    {{cookiecutter.<key>}} (what cookiecutter would do with these values);
    returns the project directory."""
    import json

    values = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    values.update(project_slug=slug, **extra)

    def sub(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{{cookiecutter.%s}}" % key, str(value))
            text = text.replace("{{ cookiecutter.%s }}" % key, str(value))
        return text

    src_root = TEMPLATE / "{{cookiecutter.project_slug}}"
    for src in src_root.rglob("*"):
        rel = sub(str(src.relative_to(TEMPLATE)))
        out = dest / rel
        if src.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        text = sub(src.read_text(encoding="utf-8"))
        assert "{{" not in text, f"unrendered template text in {rel}"
        out.write_text(text, encoding="utf-8")
    return dest / slug


def cc_plugin(src: Path, out_dir: Path, module: str, include_dirs: list[str],
              defines: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> Path:
    """Compiles one C file into <module>.abi3.so with the limited API (on
    CPython 3.10/3.11: a version-specific module without it, as
    bocpy_add_plugin() builds there)."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler")
    out = out_dir / f"{module}{bocpy._abi.plugin_suffix()}"
    limited = ["-DPy_LIMITED_API=0x030C0000"] if bocpy._abi.ABI3 else []
    cmd = [cc, "-std=c11", "-fPIC", "-shared", "-O1", "-g", "-Wall", "-Wextra",
           "-Werror", *limited,
           f"-I{sysconfig.get_path('include')}"]
    cmd += [f"-I{d}" for d in include_dirs]
    cmd += [f"-D{d}" for d in defines]
    cmd += list(extra)
    cmd += ["-o", str(out), str(src)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


@functools.lru_cache(maxsize=None)
def counter_plugin() -> Path:
    """The template's plugin, module `abitest_counter`, compiled once per
    session against bocpy.get_include(); returns the directory holding it."""
    root = session_tmp("bocpy-abi-counter-")
    project = render_template(root, "abitest_counter")
    cc_plugin(project / "src" / "plugin.c", root, "abitest_counter",
              [bocpy.get_include()])
    return root


# A probe plugin: thin Python wrappers of ABI entries, so that tests can call
# them in worker interpreters too (ctypes cannot be imported there).
PROBE_C = r"""
#include <Python.h>
#include <bocpy/bocpy.h>

typedef struct { const bocpy_abi *abi; } probe_state;
static const bocpy_abi *A(PyObject *m) {
  return ((probe_state *)PyModule_GetState(m))->abi;
}
static int64_t *word(PyObject *arg) {
  return (int64_t *)PyLong_AsVoidPtr(arg);
}
static PyObject *table_address(PyObject *m, PyObject *u) {
  (void)u;
  return PyLong_FromVoidPtr((void *)A(m));
}
static PyObject *interp_current(PyObject *m, PyObject *u) {
  (void)u;
  return PyLong_FromLongLong(A(m)->interp_current());
}
static PyObject *interp_main(PyObject *m, PyObject *u) {
  (void)u;
  return PyLong_FromLongLong(A(m)->interp_main());
}
static PyObject *interp_is_main(PyObject *m, PyObject *u) {
  (void)u;
  return PyLong_FromLong(A(m)->interp_is_main());
}
static PyObject *int_or_null(int rc) {
  return rc < 0 ? NULL : PyLong_FromLong(rc);
}
static PyObject *owner_take(PyObject *m, PyObject *a) {
  int64_t *w = word(a);
  return w == NULL ? NULL : int_or_null(A(m)->owner_take(w, "thing"));
}
static PyObject *owner_give(PyObject *m, PyObject *a) {
  int64_t *w = word(a);
  return w == NULL ? NULL : int_or_null(A(m)->owner_give(w, "thing"));
}
static PyObject *owner_check(PyObject *m, PyObject *a) {
  int64_t *w = word(a);
  return w == NULL ? NULL : int_or_null(A(m)->owner_check(w, "thing"));
}
static PyObject *pinned_cown_new(PyObject *m, PyObject *a) {
  return A(m)->pinned_cown_new(a);
}
static PyObject *cown_new(PyObject *m, PyObject *a) { return A(m)->cown_new(a); }
static PyObject *cown_get(PyObject *m, PyObject *a) { return A(m)->cown_get(a); }
static PyObject *cown_set(PyObject *m, PyObject *args) {
  PyObject *c, *v;
  if (!PyArg_ParseTuple(args, "OO", &c, &v)) return NULL;
  return int_or_null(A(m)->cown_set(c, v));
}
static PyObject *pump_in_progress(PyObject *m, PyObject *u) {
  (void)u;
  return int_or_null(A(m)->pump_in_progress());
}
static PyObject *pinned_queue_depth(PyObject *m, PyObject *u) {
  (void)u;
  return PyLong_FromLongLong(A(m)->pinned_queue_depth());
}
static PyObject *reduce_shared(PyObject *m, PyObject *a) {
  return A(m)->reduce_shared(a);
}
static PyObject *send(PyObject *m, PyObject *args) {
  const char *tag;
  PyObject *v;
  if (!PyArg_ParseTuple(args, "sO", &tag, &v)) return NULL;
  return int_or_null(A(m)->send(tag, v));
}
static PyObject *receive(PyObject *m, PyObject *args) {
  const char *tag;
  double timeout;
  if (!PyArg_ParseTuple(args, "sd", &tag, &timeout)) return NULL;
  return A(m)->receive(tag, timeout);
}
static PyObject *notice_write(PyObject *m, PyObject *args) {
  const char *key;
  PyObject *v;
  if (!PyArg_ParseTuple(args, "sO", &key, &v)) return NULL;
  return int_or_null(A(m)->notice_write(key, v));
}
static PyObject *notice_read(PyObject *m, PyObject *args) {
  const char *key;
  PyObject *d = NULL;
  if (!PyArg_ParseTuple(args, "s|O", &key, &d)) return NULL;
  return A(m)->notice_read(key, d);
}
static PyObject *notice_delete(PyObject *m, PyObject *args) {
  const char *key;
  if (!PyArg_ParseTuple(args, "s", &key)) return NULL;
  return int_or_null(A(m)->notice_delete(key));
}
static PyMethodDef methods[] = {
  {"table_address", table_address, METH_NOARGS, NULL},
  {"interp_current", interp_current, METH_NOARGS, NULL},
  {"interp_main", interp_main, METH_NOARGS, NULL},
  {"interp_is_main", interp_is_main, METH_NOARGS, NULL},
  {"owner_take", owner_take, METH_O, NULL},
  {"owner_give", owner_give, METH_O, NULL},
  {"owner_check", owner_check, METH_O, NULL},
  {"pinned_cown_new", pinned_cown_new, METH_O, NULL},
  {"cown_new", cown_new, METH_O, NULL},
  {"cown_get", cown_get, METH_O, NULL},
  {"cown_set", cown_set, METH_VARARGS, NULL},
  {"pump_in_progress", pump_in_progress, METH_NOARGS, NULL},
  {"pinned_queue_depth", pinned_queue_depth, METH_NOARGS, NULL},
  {"reduce_shared", reduce_shared, METH_O, NULL},
  {"send", send, METH_VARARGS, NULL},
  {"receive", receive, METH_VARARGS, NULL},
  {"notice_write", notice_write, METH_VARARGS, NULL},
  {"notice_read", notice_read, METH_VARARGS, NULL},
  {"notice_delete", notice_delete, METH_VARARGS, NULL},
  {NULL, NULL, 0, NULL},
};
static int probe_exec(PyObject *m) {
  probe_state *st = PyModule_GetState(m);
  st->abi = BOCPY_IMPORT_ABI();
  return st->abi == NULL ? -1 : 0;
}
static PyModuleDef_Slot slots[] = {
  {Py_mod_exec, probe_exec},
  {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
  {0, NULL},
};
static struct PyModuleDef def = {
  PyModuleDef_HEAD_INIT, .m_name = "abitest_probe",
  .m_size = sizeof(probe_state), .m_methods = methods, .m_slots = slots,
};
PyMODINIT_FUNC PyInit_abitest_probe(void);
PyMODINIT_FUNC PyInit_abitest_probe(void) { return PyModuleDef_Init(&def); }
"""


@functools.lru_cache(maxsize=None)
def probe_plugin() -> Path:
    """The probe plugin compiled once per session; returns its directory."""
    root = session_tmp("bocpy-abi-probe-")
    src = root / "probe.c"
    src.write_text(PROBE_C, encoding="utf-8")
    cc_plugin(src, root, "abitest_probe", [bocpy.get_include()])
    return root


def add_to_path(directory: Path) -> None:
    """Puts a plugin directory on sys.path for this process and (from the
    next start) its workers; stops the runtime so the next start sees it."""
    if str(directory) not in sys.path:
        bocpy.wait()
        sys.path.insert(0, str(directory))


# ---- ctypes view of the table --------------------------------------------------

if ctypes is not None:

    class Header(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32),
                    ("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                    ("version", ctypes.c_char_p)]


    class ShareableSpec(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                    ("type", ctypes.py_object), ("share", ctypes.c_void_p),
                    ("rebuild", ctypes.c_void_p), ("free_payload", ctypes.c_void_p),
                    ("unshare", ctypes.c_void_p)]


    class PinnedSpec(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                    ("type", ctypes.py_object), ("acquire", ctypes.c_void_p),
                    ("release", ctypes.c_void_p), ("destroy", ctypes.c_void_p)]


    _C = {
        "void": None, "int": ctypes.c_int, "int64_t": ctypes.c_int64,
        "double": ctypes.c_double,
        "Py_ssize_t": ctypes.c_ssize_t, "PyObject *": ctypes.py_object,
        "const char *": ctypes.c_char_p,
    }


    def _ctype(decl: str):
        """ctypes type of a C parameter or return type ("PyObject *value")."""
        import re

        decl = " ".join(decl.split())
        m = re.match(r"^(.*?[\s*])(\w+)$", decl)
        ctype = m.group(1) if m and m.group(1).strip() else decl
        ctype = re.sub(r"\s*\*", " *", ctype).strip()
        return _C.get(ctype, ctypes.c_void_p)  # any other pointer


    def capsule_pointer(capsule: object, name: bytes = b"bocpy._core._BOCPY_ABI") -> int:
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype = ctypes.c_void_p
        get.argtypes = [ctypes.py_object, ctypes.c_char_p]
        return get(capsule, name)


    class AbiTable:
        """The core's table through ctypes: entries are callable by name, with
        CPython's error convention turned into exceptions (PYFUNCTYPE)."""

        def __init__(self) -> None:
            self.address = capsule_pointer(_core._BOCPY_ABI)
            self.header = Header.from_address(self.address)
            self.entries = {e.name: e for e in gen_abi().load_manifest(REPO).entries}

        def pointer(self, name: str) -> int:
            e = self.entries[name]
            slot = self.address + ctypes.sizeof(Header) + e.index * ctypes.sizeof(ctypes.c_void_p)
            return ctypes.c_void_p.from_address(slot).value

        def __getattr__(self, name: str):
            if name not in self.__dict__.get("entries", {}):
                raise AttributeError(name)
            e = self.entries[name]
            params = [] if e.params == "void" else [p for p in e.params.split(",")]
            proto = ctypes.PYFUNCTYPE(_ctype(e.ret), *[_ctype(p) for p in params])
            return proto(self.pointer(name))


    @functools.lru_cache(maxsize=None)
    def abi() -> AbiTable:
        return AbiTable()


else:  # a worker interpreter: importable, but the ctypes helpers refuse

    def abi():  # type: ignore[misc]
        raise RuntimeError("ctypes is not available in this interpreter")

    def capsule_pointer(*args, **kwargs):  # type: ignore[misc]
        raise RuntimeError("ctypes is not available in this interpreter")


def run_script(code: str, *, env: dict[str, str] | None = None, timeout: float = 180,
               python: str | None = None) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter (outside the source tree) with the
    bocpy under test on its path; never raises on failure."""
    paths = [str(Path(bocpy.__file__).resolve().parents[1])]
    if env and "PYTHONPATH" in env:
        paths.insert(0, env["PYTHONPATH"])
    full = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(paths)}
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([python or sys.executable, "-c", code], env=full,
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)
