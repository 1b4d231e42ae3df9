"""Pickling functions *by value* for the value transport.

The transport pickles whatever it cannot write natively.  Plain pickle
stores a function by reference (module and qualified name), which fails for
local functions, lambdas and closures (``Can't get local object``) and
would find nothing in a worker anyway.  The pickler here stores such a
function the way a behavior's own body travels: its marshalled code, the
name of its defining module (whose namespace in the receiving interpreter
becomes its globals, see :mod:`bocpy._worker`), its defaults, keyword
defaults, qualified name, ``__dict__``, the contents of its closure cells
and the module-level data it reads.  Cell contents are pickled the same
way, so helpers calling helpers, decorators stacked under ``@when`` and
recursive local functions travel too; cycles (a function whose cell holds
itself) are resolved by pickle's memo, because the function is created
before its state is restored.

Functions reachable by their module and qualified name are still pickled by
reference.  Runs in every interpreter; keep it cheap to import.
"""

from __future__ import annotations

import dis
import io
import marshal
import pickle
import sys
import types
from typing import Any, Callable

from . import _core

_FunctionType = types.FunctionType
_IS_MAIN = _core.is_main_interpreter()
#: Bound on the per-code caches below (generated code must not grow them).
_CACHE_MAX = 1024
_marshalled: dict[types.CodeType, bytes] = {}
_global_names_cache: dict[types.CodeType, tuple[str, ...]] = {}
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_NOT_DATA = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
             types.MethodType, type)
_SCALARS = (int, float, complex, str, bytes, bool, type(None))


class _EmptyCell:
    """Stands for a closure cell that holds nothing yet."""


def global_names(code: types.CodeType) -> set[str]:
    """Names ``code`` (and code nested in it) reads as globals, without
    dunder names: only these can be module-level data a body needs."""
    names = {ins.argval for ins in dis.get_instructions(code)
             if ins.opname in _GLOBAL_LOADS and not ins.argval.startswith("__")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_names(const)
    return names


def _cached(cache: dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    value = cache.get(key)
    if value is None:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        value = cache[key] = make()
    return value


def _importable(fn: types.FunctionType) -> bool:
    """True when pickle can find ``fn`` again by module and qualified name."""
    module = sys.modules.get(fn.__module__) if isinstance(fn.__module__, str) else None
    obj: Any = module
    if obj is None:
        return False
    for part in fn.__qualname__.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return obj is fn


def _plain_data(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _SCALARS) or isinstance(value, _core.Cown):
        return True
    if depth > 4:
        return False
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_plain_data(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_plain_data(k, depth + 1) and _plain_data(v, depth + 1)
                   for k, v in value.items())
    return False


def _data_globals(fn: types.FunctionType) -> tuple[Any, ...]:
    """(name, value, ...) of the plain module-level data ``fn`` reads."""
    names = _cached(_global_names_cache, fn.__code__,
                    lambda: tuple(sorted(global_names(fn.__code__))))
    g = fn.__globals__
    out: list[Any] = []
    for name in names:
        value = g.get(name, _EmptyCell)
        if value is not _EmptyCell and not isinstance(value, _NOT_DATA) \
                and _plain_data(value):
            out += (name, value)
    return tuple(out)


def _reduce_function(fn: types.FunctionType) -> tuple[Any, ...]:
    code = fn.__code__
    module = fn.__module__ if isinstance(fn.__module__, str) else "__main__"
    file = fn.__globals__.get("__file__")
    if not isinstance(file, str):
        file = None
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(_EmptyCell)
    state = (fn.__defaults__, fn.__kwdefaults__, fn.__qualname__,
             fn.__dict__ or None, tuple(cells), _data_globals(fn))
    blob = _cached(_marshalled, code, lambda: marshal.dumps(code))
    return (_make_function, (blob, module, file, fn.__name__, len(code.co_freevars)),
            state, None, None, _set_function_state)


def _make_function(blob: bytes, module: str, file: str | None, name: str,
                   nfree: int) -> types.FunctionType:
    """The unpickling side: the function, with empty cells for now."""
    from . import _worker

    code = marshal.loads(blob)
    if not isinstance(code, types.CodeType):
        raise TypeError("a function pickled by value holds no code object")
    namespace = _worker.module_namespace(module, file)
    closure = tuple(types.CellType() for _ in range(nfree)) or None
    return types.FunctionType(code, namespace, name, None, closure)


def _set_function_state(fn: types.FunctionType, state: tuple[Any, ...]) -> None:
    defaults, kwdefaults, qualname, attrs, cells, data = state
    fn.__defaults__ = defaults
    fn.__kwdefaults__ = kwdefaults
    fn.__qualname__ = qualname
    if attrs:
        fn.__dict__.update(attrs)
    for cell, value in zip(fn.__closure__ or (), cells):
        if value is not _EmptyCell:
            cell.cell_contents = value
    if data and not _IS_MAIN:
        # A worker's copy of the module: the data as it was when sent.  On
        # the main interpreter the namespace is the real module, left alone.
        ns = fn.__globals__
        for i in range(0, len(data), 2):
            ns[data[i]] = data[i + 1]


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is _FunctionType and not _importable(obj):
            return _reduce_function(obj)
        return NotImplemented


def dumps(obj: Any, protocol: int = 5) -> bytes:
    """``pickle.dumps`` with local functions, lambdas and closures by value."""
    buf = io.BytesIO()
    _Pickler(buf, protocol).dump(obj)
    return buf.getvalue()
