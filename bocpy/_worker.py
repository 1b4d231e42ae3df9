"""Worker-side support: start-up and loading behavior code by value.

Each worker sub-interpreter imports this module.  A behavior arrives as the
marshalled code of its body plus the name (and source file) of the module
that defined it; :func:`load_function` turns that into a function whose
globals are that module's namespace in this worker:

* an importable module is imported normally (its top-level code runs once
  per worker, as any import does);
* ``__main__`` (a script) is never re-executed: a *reduced copy* of its
  source runs instead, holding only its imports, function and class
  definitions, literal constants and import-only ``try`` blocks.  Top-level
  ``@when`` statements are dropped, so nothing is scheduled again.

This module runs in workers only; it must stay cheap to import.
"""

from __future__ import annotations

import ast
import importlib
import marshal
import sys
import types
from typing import Any

#: Globals of each behavior module loaded in this interpreter: (name, file).
_namespaces: dict[tuple[str, str | None], dict[str, Any]] = {}
#: Errors met while loading a namespace, re-raised on each later request.
_failures: dict[tuple[str, str | None], BaseException] = {}

from . import _core

_IS_MAIN = _core.is_main_interpreter()

#: Index of this worker (set by bootstrap).
index: int = -1
#: True while a behavior module is being loaded (``@when`` then schedules
#: nothing: importing a module must not re-run its top-level behaviors).
loading: bool = False


def bootstrap(config: tuple[Any, ...], worker_index: int) -> None:
    """Prepare this worker: the main interpreter's ``sys.path`` and
    ``sys.argv``, so the same modules import here, and its logging levels
    (``config[2]``, see :mod:`bocpy._logfwd`)."""
    global index
    path, argv = config[0], config[1]
    sys.path[:] = list(path)
    sys.argv[:] = list(argv)
    index = worker_index
    if len(config) > 2 and config[2] is not None:
        from . import _logfwd  # follow the main interpreter's logging

        _logfwd.install(config[2], worker_index)


def shutdown() -> None:
    """Before the interpreter is destroyed: drop the loaded namespaces, and on
    3.12 the modules whose teardown can wedge interpreter destruction."""
    _namespaces.clear()
    _failures.clear()
    if sys.version_info < (3, 13):
        for name in [n for n in sys.modules if n in ("threading", "logging")
                     or n.startswith("logging.")]:
            del sys.modules[name]


def load_function(code_bytes: bytes, module: str, file: str | None) -> types.FunctionType:
    """Build the function for a behavior body shipped as marshalled code."""
    code = marshal.loads(code_bytes)
    if not isinstance(code, types.CodeType):
        raise TypeError("behavior code is not a code object")
    namespace = module_namespace(module, file)
    # Empty cells stand in for the closure; each call gets its captured ones.
    closure = tuple(types.CellType() for _ in code.co_freevars) or None
    return types.FunctionType(code, namespace, code.co_name, None, closure)


def module_namespace(module: str, file: str | None) -> dict[str, Any]:
    """The globals that behaviors defined in ``module`` see in this worker."""
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
    if file is None:  # -c, REPL, stdin: no source to reduce
        return ns
    ns["__file__"] = file
    with open(file, encoding="utf-8") as f:
        source = f.read()
    run_reduced(source, file, ns)
    return ns


def run_reduced(source: str, filename: str, ns: dict[str, Any]) -> None:
    """Execute the reduced copy of a module's source into ``ns``: one kept
    statement at a time, so an import that fails in a sub-interpreter only
    leaves its names unbound instead of losing the whole module."""
    tree = ast.parse(source, filename)
    for stmt in reduce_module(tree):
        code = compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec")
        try:
            exec(code, ns)
        except ImportError:
            if not isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Try)):
                raise


def reduce_module(tree: ast.Module) -> list[ast.stmt]:
    """The statements of a script that a worker may run: imports, function
    and class definitions (not top-level behaviors), literal constants, and
    ``try`` blocks made only of imports and such constants."""
    when_names, bocpy_names = _when_aliases(tree)
    kept: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            kept.append(stmt)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not any(_is_when(d, when_names, bocpy_names) for d in stmt.decorator_list):
                kept.append(stmt)
        elif isinstance(stmt, ast.ClassDef):
            kept.append(stmt)
        elif _is_literal_assignment(stmt):
            kept.append(stmt)
        elif isinstance(stmt, ast.Try) and _is_guarded_import(stmt):
            kept.append(stmt)
    return kept


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


def _is_literal(node: ast.expr | None) -> bool:
    if node is None:
        return False
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _is_literal_assignment(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Assign):
        return all(isinstance(t, ast.Name) for t in stmt.targets) and _is_literal(stmt.value)
    if isinstance(stmt, ast.AnnAssign):
        return isinstance(stmt.target, ast.Name) and _is_literal(stmt.value)
    return False


def _is_guarded_import(stmt: ast.Try) -> bool:
    def simple(body: list[ast.stmt]) -> bool:
        return all(
            isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass))
            or _is_literal_assignment(s)
            for s in body
        )

    return (
        simple(stmt.body)
        and all(simple(h.body) for h in stmt.handlers)
        and simple(stmt.orelse)
        and simple(stmt.finalbody)
    )
