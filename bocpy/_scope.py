"""Structured scopes (issue #32): wait for exactly your own behaviors, get
their errors as a group, cancel what has not started.

``with bocpy.scope() as s:`` makes ``s`` the calling thread's current scope
for the block.  Every behavior scheduled in the block by this thread, and
everything those behaviors schedule (on workers, on the pinned thread, from
C plugins), belongs to ``s``; leaving the block waits for exactly those
behaviors.  The bookkeeping is in C (``core/exec/scope.c``); this module is
the Python face: the context manager, the ``ExceptionGroup`` and the
documentation.  See the "Scopes" section of ``docs/api.md``.
"""

from __future__ import annotations

import sys
from concurrent.futures import CancelledError
from typing import Any, Literal

from . import _core
from ._lifecycle import _interruptible

if sys.version_info >= (3, 11):
    _BaseExceptionGroup = BaseExceptionGroup  # noqa: F821 (builtin on 3.11+)
else:  # pragma: no cover - the 3.10 port installs the PyPI backport
    from exceptiongroup import BaseExceptionGroup as _BaseExceptionGroup

__all__ = ["CancelledError", "Scope", "cancel", "scope"]


class Scope(_core.Scope):
    """A structured scope; make one with :func:`scope`.

    Attributes (read-only): ``id`` (unique, also in trace events),
    ``cancelled``, ``cancel_on_error``, ``in_flight`` (behaviors of the scope
    and of nested scopes not yet retired), ``entered``, ``ended``.
    """

    def __enter__(self) -> "Scope":
        _core.check_reentry("bocpy.scope()")
        self._enter()
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> Literal[False]:
        self._exit()
        if ev is not None and not isinstance(ev, Exception):
            # KeyboardInterrupt, SystemExit, ...: drop what has not started
            # and let it propagate at once (the exit sequence handles the
            # rest, as for wait()).
            self.cancel()
            return False
        if ev is not None:
            self.cancel()  # the block failed: as asyncio.TaskGroup does
        try:
            self.wait()
        except BaseException:
            self.cancel()
            raise
        errors = [exc for _, exc in self._take_errors()]
        if not errors:
            return False  # ev (if any) propagates unchanged
        if ev is not None:
            errors.insert(0, ev)
        raise _BaseExceptionGroup(
            f"unhandled exception{'s' if len(errors) > 1 else ''} in bocpy "
            f"scope #{self.id}", errors)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every behavior of this scope (and of scopes nested in
        it) has run or been dropped; the runtime keeps running and the scope
        stays usable.  Pinned behaviors run on this thread meanwhile when it
        is the main thread, as in :func:`bocpy.wait`.  Errors are not raised
        here but when the block ends.

        Raises:
            TimeoutError: behaviors of the scope were still in flight after
                ``timeout`` seconds (the scope is unchanged).
            ValueError: ``timeout`` is negative or NaN.
            TypeError: ``timeout`` is not a number or None.
            RuntimeError: called from inside a behavior.
            KeyboardInterrupt: Ctrl-C while waiting (as for ``wait()``).
        """
        _core.check_reentry("Scope.wait()")
        _interruptible(self._wait, timeout)

    def stats(self) -> dict[str, Any]:
        """The scope's counters: ``id``, ``scheduled`` (behaviors scheduled
        in this scope itself), ``finished`` (ran without an exception),
        ``failed`` (stored an exception), ``cancelled`` (dropped without
        running), ``in_flight`` (of this scope and nested ones) and
        ``cancel_requested``."""
        result: dict[str, Any] = self._stats()
        return result


def scope(*, cancel_on_error: bool = False) -> Scope:
    """A new structured scope, to use as ``with bocpy.scope() as s:``.

    ``cancel_on_error=True``: the first behavior of the scope that raises
    cancels the scope (what has not started is dropped, with
    ``CancelledError`` in its result cown).

    When the block ends, the scope waits for its behaviors, then raises the
    exceptions nobody handled (read the result cown's ``value`` to handle
    one) as an ``ExceptionGroup``, each with the remote traceback as its
    ``__cause__``.  If the block itself raises, the scope is cancelled
    first; an ``Exception`` from the block is raised as is when no behavior
    failed, else first in the group; a ``KeyboardInterrupt`` or
    ``SystemExit`` propagates at once.

    Raises:
        RuntimeError: entered inside a behavior, entered twice, or left out
            of order.
        TypeError: ``cancel_on_error`` given positionally.
    """
    return Scope(cancel_on_error=bool(cancel_on_error))


def cancel(result: Any) -> bool:
    """Cancel the behavior whose result cown is ``result`` if it has not
    started, in the spirit of ``concurrent.futures.Future.cancel``: it is
    then retired without running when its cowns are free, its result
    holding ``CancelledError``, and the cowns pass on in order.  Returns
    True when the behavior is cancelled (now or before), False when it has
    started or finished (or ``result`` is not a pending result).

    Raises:
        TypeError: ``result`` is not a Cown.
    """
    return bool(_core.cancel(result))

