"""Loading behavior code in an interpreter, and a worker's start-up.

Every interpreter imports this module (it is the package's loader layer,
docs/development.md).  A behavior arrives as the marshalled code of its
body plus the name (and source file) of the module that defined it;
:func:`load_function` turns that into a function whose globals are that
module's namespace in this interpreter (:func:`module_namespace`).  On the
main interpreter, where pinned behaviors run and functions pickled by value
are rebuilt too, that is the real module.  In a worker:

* an importable module is imported normally (its top-level code runs once
  per worker, as any import does);
* ``__main__`` (a script) is never re-executed: a *reduced copy* of its
  source runs instead (see :func:`reduce_module` for what is kept).
  Top-level ``@when`` statements are dropped, so nothing is scheduled
  again.  The main interpreter ships the script's source text with the
  start-up data (:func:`main_source`), so ``-c`` programs, scripts read
  from a redirected stdin and files changed on disk since work too; the
  bytes are compiled as CPython compiles a file (PEP 263 coding cookie,
  UTF-8 BOM).

What runs where: a worker calls :func:`bootstrap` and :func:`shutdown`
(from core/exec/worker.c); every interpreter calls :func:`load_function`
and :func:`module_namespace`; only the main interpreter calls
:func:`main_source` (the script it ships to the workers at start) and
:func:`main_binds` (whether the workers' reduced copy binds a name, asked
by ``@when`` in core/module/when.c).  These two stay here because they are
about the reduced copy, which this module makes.  Every worker imports this
module when it starts: it must stay cheap to import.
"""

from __future__ import annotations

import ast
import importlib
import os
import stat
import sys
import types
from typing import Any

#: Globals of each behavior module loaded in this interpreter: (name, file).
_namespaces: dict[tuple[str, str | None], dict[str, Any]] = {}
#: Errors met while loading a namespace, re-raised on each later request.
_failures: dict[tuple[str, str | None], BaseException] = {}

from . import _compat, _core, _logfwd

_IS_MAIN = _core.is_main_interpreter()

#: Index of this worker (set by bootstrap).
index: int = -1
#: The main script's (filename, source bytes), shipped by the main
#: interpreter at start-up; None when it has none (an interactive session).
_main_source: tuple[str, bytes] | None = None
#: Statements of a reduced module that raised when run here, with the
#: error: (module, line, repr(exc)).  Their names stay unbound.
skipped: list[tuple[str, int, str]] = []
#: (module, name) -> (line, repr(error)) for names a skipped statement binds.
_skipped_names: dict[tuple[str, str], tuple[int, str]] = {}
#: True while a behavior module is being loaded (``@when`` then schedules
#: nothing: importing a module must not re-run its top-level behaviors).
loading: bool = False


def bootstrap(config: tuple[Any, ...], worker_index: int) -> None:
    """Prepare this worker: the main interpreter's ``sys.path`` and
    ``sys.argv``, so the same modules import here, the main script's
    source (``config[2]``) and its logging levels (``config[3]``, see
    :mod:`bocpy._logfwd`)."""
    global index, _main_source
    path, argv = config[0], config[1]
    sys.path[:] = list(path)
    sys.argv[:] = list(argv)
    index = worker_index
    if len(config) > 3 and config[3] is not None:
        _logfwd.install(config[3], worker_index)
    source = config[2] if len(config) > 2 else None
    if source != _main_source:
        # A new script source (or the first): forget the old reduced copy.
        _main_source = source
        for key in [k for k in _namespaces if k[0] == "__main__"]:
            del _namespaces[key]
        for key in [k for k in _failures if k[0] == "__main__"]:
            del _failures[key]
        for key in [k for k in _skipped_names if k[0] == "__main__"]:
            del _skipped_names[key]


def main_source() -> tuple[str, bytes] | None:
    """On the main interpreter: the running script's (filename, source
    bytes) for the workers' reduced copy: its file, the ``-c`` program text,
    or a script redirected from a file into stdin (``python - < f.py``).
    None for an interactive session or a script piped into stdin (the bytes
    are gone; workers then know none of its module-level names)."""
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    if isinstance(file, str) and not file.startswith("<"):
        try:
            with open(file, "rb") as f:
                return (file, f.read())
        except OSError:
            return None
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 == "-c":
        orig = list(getattr(sys, "orig_argv", []))
        for i, arg in enumerate(orig[1:], 1):
            if arg == "-c" and i + 1 < len(orig):
                return ("<string>", orig[i + 1].encode("utf-8", "surrogateescape"))
            if arg.startswith("-c") and len(arg) > 2:
                return ("<string>", arg[2:].encode("utf-8", "surrogateescape"))
        return None
    if argv0 in ("-", ""):
        try:
            st = os.fstat(0)
            if stat.S_ISREG(st.st_mode):
                return ("<stdin>", os.pread(0, st.st_size, 0))
        except (OSError, ValueError):
            pass
    return None


#: main_binds()'s cache: (the script source it was computed for, the names).
_main_bound: tuple[tuple[str, bytes] | None, frozenset[str]] | None = None


def main_binds(name: str) -> bool:
    """On the main interpreter: whether the workers' reduced copy of the
    running script (:func:`reduce_module`) binds ``name`` itself, so that a
    worker has its own value for it (a lock, a logger...) and the main
    interpreter's need not travel.  Asked by ``@when`` (core/module/when.c)
    only for a module global that cannot be sent."""
    global _main_bound
    source = main_source()
    if _main_bound is None or _main_bound[0] != source:
        names: set[str] = set()
        if source is not None:
            try:
                tree = ast.parse(source[1], source[0])
            except (SyntaxError, ValueError):
                tree = ast.Module(body=[], type_ignores=[])
            for stmt in reduce_module(tree):
                names.update(_bound_names(stmt))
        _main_bound = (source, frozenset(names))
    return name in _main_bound[1]


def _bound_names(stmt: ast.stmt) -> set[str]:
    """Module-level names a kept statement binds."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    names: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def shutdown() -> None:
    """Before the interpreter is destroyed: drop the loaded namespaces, and on
    3.12 the modules whose teardown can wedge interpreter destruction."""
    _namespaces.clear()
    _failures.clear()
    threading = sys.modules.get("threading")
    local = getattr(threading, "_thread_local_info", None)
    if local is not None and hasattr(local, "_track_dummy_thread_ref"):
        # 3.13: a body that touched threading made this thread a dummy
        # Thread whose thread-local cleanup would run after the module is
        # torn down (printing "Exception ignored in _DeleteDummyThreadOnDel");
        # run it now, while the module is intact.
        try:
            del local._track_dummy_thread_ref
        except Exception:
            pass
    if sys.version_info < (3, 13):
        for name in [n for n in sys.modules if n in ("threading", "logging")
                     or n.startswith("logging.")]:
            del sys.modules[name]


def load_function(code_bytes: bytes, module: str, file: str | None) -> types.FunctionType:
    """Build the function for a behavior body shipped as marshalled code."""
    code, qualname = _compat.load_code(code_bytes)
    namespace = module_namespace(module, file)
    # Empty cells stand in for the closure; each call gets its captured ones.
    closure = tuple(types.CellType() for _ in code.co_freevars) or None
    fn = types.FunctionType(code, namespace, code.co_name, None, closure)
    fn.__qualname__ = qualname  # the code's own on 3.11+; carried on 3.10
    return fn


def module_namespace(module: str, file: str | None) -> dict[str, Any]:
    """The globals that behaviors defined in ``module`` see in this
    interpreter (the real module on the main interpreter)."""
    key = (module, file)
    ns = _namespaces.get(key)
    if ns is not None:
        return ns
    failure = _failures.get(key)
    if failure is not None:
        raise RuntimeError(
            f"bocpy could not load module {module!r} in this worker"
        ) from failure
    global loading
    loading = True
    try:
        ns = _load(module, file)
    except BaseException as exc:
        _failures[key] = exc
        raise RuntimeError(
            f"bocpy could not load module {module!r} in this worker: {exc!r}"
        ) from exc
    finally:
        loading = False
    _namespaces[key] = ns
    return ns


def _load(module: str, file: str | None) -> dict[str, Any]:
    if _IS_MAIN:
        # Pinned behaviors run on the main interpreter: the real module.
        existing = sys.modules.get(module)
        if existing is not None:
            return existing.__dict__
    if module != "__main__":
        try:
            return importlib.import_module(module).__dict__
        except ModuleNotFoundError as exc:
            # Not importable by name here (e.g. loaded from a path by a test
            # runner): fall back to a reduced copy of its file.  A module that
            # was found but raised while importing is an error, not a cue.
            if not file or exc.name != module:
                raise
    # A script (or a module only loadable from its file): a reduced copy.
    if module == "__main__":
        target = sys.modules["__main__"]
    else:
        target = types.ModuleType(module)
        sys.modules[module] = target
    ns = target.__dict__
    source: bytes | None = None
    if module == "__main__" and _main_source is not None:
        filename, source = _main_source
        if file is None:
            file = filename
    elif file is not None:
        with open(file, "rb") as f:  # bytes: compile() applies PEP 263
            source = f.read()
    if source is None:
        # An interactive session or a script piped into stdin: no source
        # is left.  Bodies may still use builtins, imports inside the body
        # and captured data; other module-level names are unbound here.
        return ns
    if file is not None and not file.startswith("<"):
        ns["__file__"] = file
    run_reduced(source, file or "<unknown>", ns, module)
    return ns


def run_reduced(source: str | bytes, filename: str, ns: dict[str, Any],
                module: str = "__main__") -> None:
    """Execute the reduced copy of a module's source into ``ns``: one kept
    statement at a time, so a statement that fails in a sub-interpreter (an
    import of an extension without sub-interpreter support, a value that
    needs something unavailable) only leaves its names unbound instead of
    losing the whole module.  ``source`` may be bytes: then it is decoded
    as CPython decodes a file (PEP 263 cookie, UTF-8 BOM)."""
    tree = ast.parse(source, filename)
    for stmt in reduce_module(tree):
        try:
            code = compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec")
            exec(code, ns)
        except Exception as exc:
            line = getattr(stmt, "lineno", 0)
            skipped.append((module, line, repr(exc)))
            try:
                names = _bound_names(stmt)
            except Exception:  # noqa: BLE001 - only used for a note
                names = set()
            for name in names:
                if name not in ns:
                    _skipped_names[(module, name)] = (line, repr(exc))


def skipped_note(module: str, name: str | None) -> str | None:
    """The note for a behavior that failed with ``NameError`` on ``name``:
    why this worker's copy of ``module`` has no binding for it (the
    statement that binds it was skipped here), or None when none was."""
    if name is None:
        return None
    found = _skipped_names.get((module, name))
    if found is None:
        return None
    line, error = found
    return (f"bocpy: this worker's copy of module {module!r} has no {name!r}: "
            f"the statement at line {line} that binds it failed here and was "
            f"skipped ({error})")


def reduce_module(tree: ast.Module) -> list[ast.stmt]:
    """The statements of a script that a worker may run:

    * imports (also inside ``try`` blocks made of imports and kept
      statements);
    * function and class definitions, except top-level behaviors (functions
      decorated with ``@when``);
    * assignments (also annotated, augmented, to subscripts of a name and to
      tuples of names) whose value only builds data: literals, names,
      operators, comprehensions, lambdas, and calls of the constructors and
      factories in ``_SAFE_CALLS`` (``dict()``, ``namedtuple(...)``,
      ``Enum("Color", ...)``, ``TypeVar``, ``threading.Lock()``,
      ``logging.getLogger(...)``...);
    * ``NAME.append/extend/update/add/...(...)`` calls that fill such a
      container with kept data;
    * ``if`` blocks whose test only reads data and does not mention
      ``__name__``, reduced the same way.

    Never kept: ``if __name__ == "__main__":`` blocks, loops, ``with``,
    other calls (``main()``, ``wait()``), assignments of their results."""
    when_names, bocpy_names = _when_aliases(tree)
    return _reduce_body(tree.body, when_names, bocpy_names)


#: Callables whose call at module level only builds a value (matched by the
#: called name or the last attribute: ``collections.namedtuple`` too).
_SAFE_CALLS = frozenset({
    # builtins that construct or compute data
    "dict", "list", "set", "frozenset", "tuple", "object", "bytearray",
    "bytes", "str", "int", "float", "complex", "bool", "range", "slice",
    "type", "property", "staticmethod", "classmethod", "len", "sorted",
    "reversed", "enumerate", "zip", "map", "filter", "min", "max", "sum",
    "abs", "round", "divmod", "pow", "ord", "chr", "hex", "oct", "bin",
    "repr", "iter", "hash", "isinstance", "issubclass", "getattr", "vars",
    "format", "memoryview",
    # collections, typing, enum, dataclasses, functools, types
    "namedtuple", "NamedTuple", "TypedDict", "defaultdict", "OrderedDict",
    "deque", "Counter", "ChainMap", "Enum", "IntEnum", "Flag", "IntFlag",
    "StrEnum", "auto", "unique", "make_dataclass", "field", "TypeVar",
    "NewType", "ParamSpec", "TypeVarTuple", "TypeAliasType", "cast",
    "partial", "partialmethod", "cache", "lru_cache", "wraps",
    "total_ordering", "SimpleNamespace", "MappingProxyType",
    # values from the standard library
    "compile", "Struct", "Fraction", "Decimal", "Path", "PurePath",
    "PurePosixPath", "PureWindowsPath", "date", "time", "datetime",
    "timedelta", "timezone", "getcontext", "Random",
    # per-interpreter resources: each worker gets its own
    "Lock", "RLock", "Event", "Condition", "Semaphore", "BoundedSemaphore",
    "Barrier", "local", "getLogger", "NullHandler",
})
#: Methods whose module-level call fills a container (``REGISTRY.update``).
_FILL_METHODS = frozenset({"append", "extend", "update", "add", "insert",
                           "setdefault", "__setitem__"})


def _reduce_body(body: list[ast.stmt], when_names: set[str],
                 bocpy_names: set[str]) -> list[ast.stmt]:
    """The kept statements of ``body``.  One statement never loses the
    others: a statement the reducer cannot handle is dropped, and every
    node it makes carries the location of the statement it stands for."""
    kept: list[ast.stmt] = []
    for stmt in body:
        try:
            node = _reduce_stmt(stmt, when_names, bocpy_names)
        except Exception:  # noqa: BLE001 - an unforeseen shape: drop it
            node = None
        if node is not None:
            kept.append(node)
    return kept


def _reduce_stmt(stmt: ast.stmt, when_names: set[str],
                 bocpy_names: set[str]) -> ast.stmt | None:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return stmt
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if any(_is_when(d, when_names, bocpy_names) for d in stmt.decorator_list):
            return None
        return stmt
    if isinstance(stmt, ast.ClassDef) or _is_data_statement(stmt):
        return stmt
    if isinstance(stmt, ast.Try) and _is_guarded_import(stmt):
        return stmt
    if isinstance(stmt, ast.If) and _is_data(stmt.test) and not _mentions_name(stmt.test):
        inner = _reduce_body(stmt.body, when_names, bocpy_names)
        orelse = _reduce_body(stmt.orelse, when_names, bocpy_names)
        if not (inner or orelse):
            return None
        if not inner:  # the kept branch is the else: keep the test's effect
            inner = [ast.copy_location(ast.Pass(), stmt)]
        node = ast.copy_location(ast.If(test=stmt.test, body=inner, orelse=orelse), stmt)
        return ast.fix_missing_locations(node)
    return None


def _mentions_name(node: ast.expr) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(node))


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_data(node: ast.AST) -> bool:
    """True when evaluating the expression only builds a value: every call in
    it (outside lambda bodies) is of a name in ``_SAFE_CALLS``."""
    if isinstance(node, ast.Lambda):
        return all(_is_data(d) for d in node.args.defaults + [
            d for d in node.args.kw_defaults if d is not None])
    if isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
        return False
    if isinstance(node, ast.Call):
        if _call_name(node.func) not in _SAFE_CALLS:
            return False
    return all(_is_data(child) for child in ast.iter_child_nodes(node))


def _is_target(t: ast.expr) -> bool:
    if isinstance(t, ast.Name):
        return True
    if isinstance(t, (ast.Tuple, ast.List)):
        return all(_is_target(e) for e in t.elts)
    if isinstance(t, ast.Subscript):  # REGISTRY["key"] = value
        return isinstance(t.value, ast.Name) and _is_data(t.slice)
    return False


def _is_data_statement(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Assign):
        return all(_is_target(t) for t in stmt.targets) and _is_data(stmt.value)
    if isinstance(stmt, ast.AnnAssign):
        return (stmt.value is not None and _is_target(stmt.target)
                and _is_data(stmt.value) and _is_data(stmt.annotation))
    if isinstance(stmt, ast.AugAssign):
        return _is_target(stmt.target) and _is_data(stmt.value)
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        return (isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name)
                and call.func.attr in _FILL_METHODS
                and all(_is_data(a) for a in call.args)
                and all(_is_data(k.value) for k in call.keywords))
    return False


def _when_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    when_names = {"when"}
    bocpy_names = {"bocpy"}
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "bocpy":
            for alias in stmt.names:
                if alias.name == "when":
                    when_names.add(alias.asname or "when")
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name == "bocpy":
                    bocpy_names.add(alias.asname or "bocpy")
    return when_names, bocpy_names


def _is_when(deco: ast.expr, when_names: set[str], bocpy_names: set[str]) -> bool:
    target = deco.func if isinstance(deco, ast.Call) else deco
    if isinstance(target, ast.Name):
        return target.id in when_names
    return (
        isinstance(target, ast.Attribute)
        and target.attr == "when"
        and isinstance(target.value, ast.Name)
        and target.value.id in bocpy_names
    )


def _is_guarded_import(stmt: ast.Try) -> bool:
    def simple(body: list[ast.stmt]) -> bool:
        return all(
            isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass))
            or _is_data_statement(s)
            for s in body
        )

    return (
        simple(stmt.body)
        and all(simple(h.body) for h in stmt.handlers)
        and simple(stmt.orelse)
        and simple(stmt.finalbody)
    )
