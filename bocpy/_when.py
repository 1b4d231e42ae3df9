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

The decorator itself is C (``core/module/when.c``); this module supplies
what it computes once per code object (:func:`_plan_info`), the runtime's
auto-start, and ``whencall``'s argument checks.
"""

from __future__ import annotations

import types
from typing import Any, Callable, Sequence, TypeVar

from . import _compat, _core, _errors
# ``when(*cowns)``: the decorator, in C (``core/module/when.c``).
from ._core import when as when
from ._byvalue import global_names
from ._lifecycle import start

R = TypeVar("R")

_GEN_FLAGS = 0x20 | 0x80 | 0x100 | 0x200  # generator, coroutine, iterable coroutine, async generator
_VARARGS = 0x04


def _plan_info(fn: types.FunctionType) -> tuple[Any, ...]:
    """What is fixed for ``fn``'s code object, computed once per code by the
    C decorator (``core/module/when.c``), which caches it in a bounded plan
    cache: (marshalled code, module, file, parameter names, takes *args,
    names read as globals, qualified name, names whose ``.value`` the body
    reads, and the largest cown count for which one of those may be a
    captured cown that ``@when`` must check: see
    :func:`bocpy._errors.read_plan`)."""
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
    params = code.co_varnames[: code.co_argcount]
    value_reads, read_check_max = _errors.read_plan(code, params)
    return (_compat.dump_code(code, fn.__qualname__), module, file, params,
            bool(code.co_flags & _VARARGS),
            tuple(sorted(global_names(code))), fn.__qualname__, value_reads,
            read_check_max)


def _autostart() -> None:
    """The first ``@when`` on the main interpreter starts the runtime."""
    if not _core.running():
        start()




def whencall(fn: Callable[..., R], args: Sequence[Any],
             captures: Sequence[Any] = ()) -> _core.Cown[R]:
    """Schedule ``fn`` over ``args`` (cowns or groups) without decorator
    sugar; ``captures`` are passed after the cown parameters.  Does not start
    the runtime.  Returns the result ``Cown``."""
    if isinstance(fn, str):
        raise TypeError("whencall() takes the function itself, not its name")
    if not isinstance(args, (list, tuple)):
        raise TypeError("whencall() args must be a list or tuple of cowns")
    if not _core.running():
        raise RuntimeError("runtime is not running: call start() or use @when")
    return _core._whencall(fn, args, tuple(captures))
