"""Exceptions that cross interpreters keep their traceback.

A behavior's exception is stored in its result cown, which travels between
interpreters by value (pickle, for exceptions).  Pickling an exception keeps
its type, ``args`` and ``__dict__`` but drops ``__traceback__``, ``__cause__``
and ``__context__``, so the frames of the failing body would be lost.

bocpy does what :mod:`concurrent.futures` does: the traceback is formatted
to text where the exception was raised, and the copy that arrives gets a
:class:`RemoteTraceback` holding that text as its ``__cause__``.  Raising
the exception again (``unwrap()``, ``raise c.value``) then prints the
remote frames first, then "The above exception was the direct cause of the
following exception", then the local frames.  Rebuilding real frame
objects was rejected: CPython cannot make frames for code that is not
running, and fake ``types.TracebackType`` chains need live frames from the
receiving interpreter (see ``docs/observability.md``).

An exception that cannot be pickled, or whose copy cannot be rebuilt on
the other side (a custom ``__init__`` with other parameters than ``args``),
arrives as an :class:`UnpicklableException` that names the original type and
message, with the same traceback text as its cause.

The C transport calls :func:`carry` for every exception it pickles; the
behavior runner calls it with the body function, which adds where the
behavior was defined.  Runs in every interpreter; imports nothing heavy
until an exception actually travels.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

from . import _core, _worker

__all__ = ["RemoteTraceback", "UnpicklableException", "carry", "report_unhandled"]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another interpreter (or in a
    behavior), as text.  Attached as ``__cause__`` of the exception that
    arrives.

    Attributes:
        text: the formatted traceback (``traceback.format_exception``).
        behavior: the qualified name of the behavior body that raised, or
            ``None`` when the exception did not come from a behavior body.
        defined_at: ``"file:line"`` where the body is defined, or ``None``.
        failed_at: ``"file:line in function"`` of the innermost frame.
    """

    def __init__(self, text: str, behavior: str | None = None,
                 defined_at: str | None = None,
                 failed_at: str | None = None) -> None:
        super().__init__(text, behavior, defined_at, failed_at)
        self.text = text
        self.behavior = behavior
        self.defined_at = defined_at
        self.failed_at = failed_at

    def __str__(self) -> str:
        head = ""
        if self.behavior is not None:
            head = f"in behavior {self.behavior!r}"
            if self.defined_at:
                head += f" (defined at {self.defined_at})"
            head += ":\n"
        return '\n"""\n' + head + self.text.rstrip("\n") + '\n"""'


class UnpicklableException(Exception):
    """Stands in for an exception that could not be copied to the receiving
    interpreter (it, or something it holds, cannot be pickled, or its class
    cannot be rebuilt from its ``args``).

    Attributes:
        type_name: the original exception's qualified type name.
        message: ``str()`` of the original exception.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


def _type_name(exc: BaseException) -> str:
    t = type(exc)
    mod = getattr(t, "__module__", None)
    name = getattr(t, "__qualname__", t.__name__)
    return name if mod in (None, "builtins") else f"{mod}.{name}"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the exception
        try:
            return repr(exc.args)
        except Exception:
            return "<message could not be formatted>"


def _format(exc: BaseException) -> str:
    import traceback

    try:
        text = "".join(traceback.format_exception(exc))
        if sys.version_info < (3, 11):  # 3.10's traceback does not print notes
            text += "".join(f"{n}\n" for n in getattr(exc, "__notes__", ()))
        return text
    except Exception:  # formatting failed (broken __str__ ...): a short form
        return f"{_type_name(exc)}: {_message(exc)}\n"


class _Carried:
    """What is pickled in place of an exception: the exception's own pickle
    (rebuilt in a guarded way on arrival) plus the remote traceback."""

    __slots__ = ("exc", "remote")

    def __init__(self, exc: BaseException, remote: RemoteTraceback | None) -> None:
        self.exc = exc
        self.remote = remote

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        exc = self.exc
        try:
            # A nested pickle in the transport's encoding: cown handles
            # inside the exception are recorded in the same payload.
            blob: bytes | None = pickle.dumps(exc, 5)
        except Exception:
            blob = None
        return (_arrive, (blob, _type_name(exc), _message(exc), self.remote))


def _arrive(blob: bytes | None, type_name: str, message: str,
            remote: RemoteTraceback | None) -> BaseException:
    exc: BaseException
    try:
        if blob is None:
            raise ValueError("not picklable")
        exc = pickle.loads(blob)
        if not isinstance(exc, BaseException):
            raise TypeError("not an exception")
    except Exception:
        exc = UnpicklableException(type_name, message)
    if remote is not None:
        exc.__cause__ = remote
    return exc


def _origin(fn: Any, exc: BaseException) -> tuple[str | None, str | None, str | None]:
    behavior = defined_at = failed_at = None
    code = getattr(fn, "__code__", None)
    if code is not None:
        behavior = getattr(fn, "__qualname__", code.co_name)
        defined_at = f"{code.co_filename}:{code.co_firstlineno}"
    tb = exc.__traceback__
    if tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        f = tb.tb_frame.f_code
        failed_at = f"{f.co_filename}:{tb.tb_lineno} in {f.co_name}"
    return behavior, defined_at, failed_at


def carry(exc: BaseException, fn: Any = None) -> Any:
    """What to pickle for ``exc``: a carrier that rebuilds it with its
    traceback text as ``__cause__`` (see the module docstring).  ``fn`` is
    the behavior body that raised it, if any."""
    remote: RemoteTraceback | None = None
    if isinstance(exc, NameError) and fn is not None:
        _note_skipped(exc, fn)
    if exc.__traceback__ is not None:
        behavior, defined_at, failed_at = _origin(fn, exc)
        remote = RemoteTraceback(_format(exc), behavior, defined_at, failed_at)
    elif isinstance(exc.__cause__, RemoteTraceback):
        remote = exc.__cause__  # travelling on: keep the original text
    return _Carried(exc, remote)


def _note_skipped(exc: NameError, fn: Any) -> None:
    """A body failed on a name its module's reduced copy should bind: say
    which statement was skipped in this worker and why (docs/behavior_code.md)."""
    try:
        module = getattr(fn, "__module__", None)
        note = _worker.skipped_note(module if isinstance(module, str) else "__main__",
                                    getattr(exc, "name", None))
        if note is not None:
            if hasattr(exc, "add_note"):
                exc.add_note(note)
            else:  # CPython 3.10 (PEP 678 is 3.11): the same attribute
                setattr(exc, "__notes__", [*getattr(exc, "__notes__", ()), note])
    except Exception:  # noqa: BLE001 - a note must never replace the error
        pass


def format_unhandled(cown_id: int, exc: BaseException) -> str:
    """The exit report for one result cown holding an exception nobody
    handled: the behavior, where it was defined and where it failed, and
    the traceback."""
    remote = exc.__cause__ if isinstance(exc.__cause__, RemoteTraceback) else None
    lines = []
    if remote is not None and remote.behavior is not None:
        lines.append(f"bocpy: behavior {remote.behavior!r} raised an exception "
                     f"that nobody handled (result Cown #{cown_id})")
        if remote.defined_at:
            lines.append(f"  behavior defined at {remote.defined_at}")
        if remote.failed_at:
            lines.append(f"  failed at {remote.failed_at}")
        lines.append(remote.text.rstrip("\n"))
    else:
        lines.append(f"bocpy: Cown #{cown_id} holds an exception that nobody "
                     "handled")
        if remote is not None:
            lines.append(remote.text.rstrip("\n"))
        else:
            lines.append(f"{_type_name(exc)}: {_message(exc)}")
    lines.append("  (read the result's .value, call unwrap(), or set "
                 ".exception = False to handle it)")
    return "\n".join(lines) + "\n"


def report_unhandled(cown_id: int, exc: Any) -> None:
    """Write the report for one unhandled exception to ``sys.stderr``."""
    try:
        if isinstance(exc, BaseException):
            text = format_unhandled(cown_id, exc)
        else:
            text = f"bocpy: Cown #{cown_id} holds an unhandled exception: {exc!r}\n"
    except Exception as failure:  # never lose the report itself
        text = (f"bocpy: Cown #{cown_id} holds an unhandled exception "
                f"(the report failed: {type(failure).__name__})\n")
    stream = sys.stderr if sys.stderr is not None else sys.__stderr__
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except Exception:
        pass


# ---- a body reading a cown its @when does not name ------------------------------

_NAME_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_DEREF", "LOAD_FAST", "LOAD_FAST_CHECK",
                         "LOAD_NAME", "LOAD_CLASSDEREF", "LOAD_FAST_AND_CLEAR"})
_OWNED_ATTRS = frozenset({"value", "exception"})


def value_reads(code: Any) -> frozenset[str]:
    """The names whose ``.value`` or ``.exception`` the body's own code reads
    or writes directly (``b.value``), leaving out names it also acquires by
    hand (``b.acquire()``, ``with b``).  Computed once per body."""
    import dis

    reads: set[str] = set()
    manual: set[str] = set()
    prev_name: str | None = None
    for ins in dis.get_instructions(code):
        if prev_name is not None:
            if ins.opname in ("LOAD_ATTR", "STORE_ATTR", "LOAD_METHOD"):
                if ins.argval in _OWNED_ATTRS:
                    reads.add(prev_name)
                elif ins.argval in ("acquire", "__enter__"):
                    manual.add(prev_name)
            elif ins.opname in ("BEFORE_WITH", "SETUP_WITH"):
                manual.add(prev_name)
        prev_name = None
        if ins.opname in _NAME_LOADS and isinstance(ins.argval, str):
            prev_name = ins.argval
        elif ins.opname == "LOAD_FAST_LOAD_FAST" and isinstance(ins.argval, tuple):
            prev_name = ins.argval[-1]  # 3.13: the second load is on top
    return frozenset(reads - manual)


def read_plan(code: Any, params: tuple[str, ...]) -> tuple[frozenset[str], int]:
    """For a body: the names whose ``.value`` it reads, and the largest
    number of cown arguments for which one of them may be a captured cown
    (:func:`check_reads` is then needed): unbounded when a global or closure
    variable is read, else the highest index of a parameter read (-1: none).
    """
    reads = value_reads(code)
    # Globals and closure variables (a local of the body is never captured).
    if any(n not in params and n not in code.co_varnames for n in reads):
        return reads, sys.maxsize
    return reads, max((params.index(n) for n in reads if n in params), default=-1)


_UNBOUND = object()


def check_reads(names: frozenset[str], params: tuple[str, ...], fn: Any,
                cowns: Any, caps: Any) -> None:
    """At ``@when``: raise if the body reads ``.value`` of a cown it captured
    (a module global, a closure variable, a trailing parameter) that its
    ``@when`` does not name.  The behavior could never own that cown, so the
    read would fail when it runs; failing here instead puts the error where
    the mistake is — on the scheduling line, and for a nested behavior in
    the parent behavior's result, which the program looks at."""
    named: set[Any] = set()
    for a in cowns:
        if isinstance(a, _core.Cown):
            named.add(a)
        else:
            named.update(a)
    code = fn.__code__
    extras = caps[1] if caps else ()
    ncowns = len(cowns)
    for name in sorted(names):
        value: Any = _UNBOUND
        if name in params:
            i = params.index(name)
            if i < ncowns:
                continue  # one of the behavior's own cown parameters
            if i - ncowns < len(extras):
                value = extras[i - ncowns]
        elif name in code.co_freevars:
            try:
                value = fn.__closure__[code.co_freevars.index(name)].cell_contents
            except ValueError:
                continue
        elif name not in code.co_varnames:
            value = fn.__globals__.get(name, _UNBOUND)
        if (isinstance(value, _core.Cown) and not isinstance(value, _core.PinnedCown)
                and value not in named):
            cid = repr(value).split(",")[0].split("(")[1]
            raise RuntimeError(
                f"behavior {fn.__qualname__!r} reads {name}.{_first_attr(code, name)}, "
                f"but {name} (Cown {cid}) is not one of the cowns its @when names, "
                "so the behavior will never own it (it would fail with \"The current "
                "interpreter does not own this cown\"). Add it to the @when "
                f"arguments: @when(..., {name})")


def _first_attr(code: Any, name: str) -> str:
    import dis

    prev = None
    for ins in dis.get_instructions(code):
        if prev == name and ins.argval in _OWNED_ATTRS:
            return str(ins.argval)
        prev = ins.argval if isinstance(ins.argval, str) else (
            ins.argval[-1] if isinstance(ins.argval, tuple) and ins.argval else None)
    return "value"
