"""``@when`` and ``whencall``: turning a Python function into a behavior.

A behavior is shipped *by value*: the marshalled code of its body, plus the
values it needs, captured when ``@when`` runs:

* the contents of its closure cells (variables of enclosing functions), so a
  loop variable keeps the value it had at that iteration;
* trailing positional parameters beyond the cown parameters: their default
  (``def b(c, i=i)``) or, with no default, the value of the variable of the
  same name in the scheduling frame (``def b(c, factor)``);
* module-level variables the body reads (data only: functions, classes and
  modules are found in the worker's copy of the module instead).

The worker rebuilds the function from the code and the module's namespace
(see :mod:`bocpy._worker`), so a behavior is found by what it is, never by
where it sits in the source.
"""

from __future__ import annotations

import dis
import marshal
import sys
import types
from typing import Any, Callable, Sequence

from . import _core, _errors, _worker

_GEN_FLAGS = 0x20 | 0x80 | 0x100 | 0x200  # generator, coroutine, iterable coroutine, async generator
_VARARGS = 0x04
_IS_MAIN = _core.is_main_interpreter()
_CAPTURABLE_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_NOT_DATA = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
             types.MethodType, type)


class _Plan:
    """What is fixed for one code object: its blob and parameter layout."""

    __slots__ = ("blob", "params", "varargs", "global_names", "name", "value_reads",
                 "read_check_max")

    def __init__(self, fn: types.FunctionType) -> None:
        code = fn.__code__
        if code.co_flags & _GEN_FLAGS:
            raise TypeError(
                f"behavior {fn.__qualname__!r} must be a plain function, "
                "not a generator or coroutine (async def)"
            )
        module = fn.__module__ if isinstance(fn.__module__, str) else "__main__"
        file = fn.__globals__.get("__file__")
        if not isinstance(file, str):
            file = None
        self.blob = _core.code_blob(marshal.dumps(code), module, file)
        self.params = code.co_varnames[: code.co_argcount]
        self.varargs = bool(code.co_flags & _VARARGS)
        self.global_names = tuple(sorted(_global_names(code)))
        self.name = fn.__qualname__
        # Names whose .value the body reads: checked against @when's cowns
        # when one may be captured, i.e. when len(cowns) <= read_check_max.
        self.value_reads, self.read_check_max = _errors.read_plan(code, self.params)


_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})


def _global_names(code: types.CodeType) -> set[str]:
    """Names the code (and code nested in it) reads as globals: only these
    can be module-level data worth capturing (attribute names are not)."""
    names = {ins.argval for ins in dis.get_instructions(code)
             if ins.opname in _GLOBAL_LOADS}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


_plans: dict[types.CodeType, _Plan] = {}


def _lookup(name: str, frame: types.FrameType | None) -> Any:
    """A trailing parameter's value: the scheduling frame's locals, then its
    globals, then the calling frames outwards."""
    while frame is not None:
        if name in frame.f_locals:
            return frame.f_locals[name]
        if name in frame.f_globals:
            return frame.f_globals[name]
        frame = frame.f_back
    raise RuntimeError(f"Cannot resolve capture: {name}")


_SLOW = object()
# Types of module-level bindings that are code, not data: never captured.
_NOT_DATA_TYPES = frozenset({types.ModuleType, types.FunctionType,
                             types.BuiltinFunctionType, types.MethodType, type})


def _captures(fn: types.FunctionType, plan: _Plan, ncowns: int,
              frame: types.FrameType | None, extras: tuple[Any, ...] | None,
              fast: bool = False) -> Any:
    """The (cells, extras, globals) to ship with a behavior, or None.

    With ``fast`` (the decorator's fast path, no frame at hand) returns
    ``_SLOW`` instead of looking a trailing parameter up in the calling
    frames, raising, or capturing module data (whose opaque values
    ``_schedule`` may have to drop)."""
    if extras is None:
        extras = ()
        nparams = len(plan.params)
        if nparams > ncowns:
            defaults = fn.__defaults__ or ()
            first_default = nparams - len(defaults)
            if fast and first_default > ncowns:
                return _SLOW
            extras = tuple(defaults[i - first_default] if i >= first_default
                           else _lookup(plan.params[i], frame)
                           for i in range(ncowns, nparams))
        elif nparams < ncowns and not plan.varargs:
            if fast:
                return _SLOW
            raise TypeError(
                f"behavior {plan.name!r} takes {nparams} positional "
                f"parameter(s) but @when names {ncowns} cown argument(s)"
            )
    cells: tuple[Any, ...] = ()
    closure = fn.__closure__
    if closure:
        try:
            cells = tuple([c.cell_contents for c in closure])
        except ValueError:
            if fast:
                return _SLOW
            for name, cell in zip(fn.__code__.co_freevars, closure):
                try:
                    cell.cell_contents
                except ValueError:
                    raise NameError(f"behavior {plan.name!r} captures {name!r} "
                                    "before it is assigned") from None
            raise
    glob: list[Any] = []
    if plan.global_names:
        g = fn.__globals__
        for name in plan.global_names:
            value = g.get(name, _SLOW)
            if (value is _SLOW or type(value) in _NOT_DATA_TYPES
                    or isinstance(value, _NOT_DATA) or name.startswith("__")):
                continue
            if fast:
                return _SLOW
            glob += (name, value)
    if not cells and not extras and not glob:
        return None
    return (cells, extras, tuple(glob))


def _without_opaque_globals(caps: tuple) -> tuple:
    """Drop captured globals that are not plain data (a lock, a logger...):
    the worker then uses its own module's binding of that name."""
    cells, extras, glob = caps
    kept: list[Any] = []
    for i in range(0, len(glob), 2):
        if _plain_data(glob[i + 1]):
            kept += glob[i : i + 2]
    return (cells, extras, tuple(kept))


def _plain_data(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _CAPTURABLE_SCALARS) or isinstance(value, _core.Cown):
        return True
    if depth > 4:
        return False
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_plain_data(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_plain_data(k, depth + 1) and _plain_data(v, depth + 1)
                   for k, v in value.items())
    return False


def _schedule(fn: Any, cowns: Sequence[Any], frame: types.FrameType | None,
              extras: tuple[Any, ...] | None = None) -> _core.Cown:
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"@when decorates functions, not {type(fn).__name__}")
    plan = _plans.get(fn.__code__)
    if plan is None:
        plan = _plans[fn.__code__] = _Plan(fn)
    caps = _captures(fn, plan, len(cowns), frame, extras)
    if len(cowns) <= plan.read_check_max:
        _errors.check_reads(plan.value_reads, plan.params, fn, cowns, caps)
    if _IS_MAIN and not _core.running():
        from . import start

        start()
    try:
        return _core.schedule(plan.blob, cowns, caps)
    except TypeError:
        if caps is None or not caps[2]:
            raise
        reduced = _without_opaque_globals(caps)
        if reduced == caps:
            raise
        return _core.schedule(plan.blob, cowns, reduced)


def when(*cowns: Any) -> Callable[[Callable[..., Any]], _core.Cown]:
    """Schedule the decorated function as a behavior over ``cowns``.

    Each argument is a cown or a list/tuple of cowns (a *group*, delivered to
    the body as one list).  The body runs once it holds every cown named,
    on a worker (or on the main thread when a ``PinnedCown`` is named).  The
    decorated name is bound to the behavior's result ``Cown``.

    Raises:
        TypeError: an argument is not a cown or a group of cowns; a capture
            cannot be sent to another interpreter; the function is a
            generator or coroutine.
        RuntimeError: the runtime is shutting down; a trailing parameter
            cannot be resolved (``Cannot resolve capture: NAME``).
    """
    for c in cowns:
        if not isinstance(c, _core.Cown):
            # A group, or a mistake: the C check looks inside groups and
            # names the argument, its type and what is accepted, here at
            # the @when line rather than when the body is scheduled.
            _core._check_when_args(cowns)
            break

    def decorator(fn: Callable[..., Any]) -> _core.Cown:
        if _worker.loading:  # importing a module on a worker: schedule nothing
            return None  # type: ignore[return-value]
        # Fast path: a known body on a running runtime whose captures need
        # no frame lookup (closure cells, trailing parameters with defaults,
        # module-level data read by name); anything else takes _schedule.
        plan = _plans.get(getattr(fn, "__code__", None))
        if plan is not None and _core.running():
            caps = _captures(fn, plan, len(cowns), None, None, fast=True)
            if caps is not _SLOW:
                if len(cowns) <= plan.read_check_max:
                    _errors.check_reads(plan.value_reads, plan.params, fn, cowns, caps)
                return _core.schedule(plan.blob, cowns, caps)
        return _schedule(fn, cowns, sys._getframe(1))

    return decorator


def whencall(fn: Callable[..., Any], args: Sequence[Any],
             captures: Sequence[Any] = ()) -> _core.Cown:
    """Schedule ``fn`` over ``args`` (cowns or groups) without decorator
    sugar; ``captures`` are passed after the cown parameters.  Does not start
    the runtime.  Returns the result ``Cown``."""
    if isinstance(fn, str):
        raise TypeError("whencall() takes the function itself, not its name")
    if not isinstance(args, (list, tuple)):
        raise TypeError("whencall() args must be a list or tuple of cowns")
    if not _core.running():
        raise RuntimeError("runtime is not running: call start() or use @when")
    return _schedule(fn, list(args), None, tuple(captures))
