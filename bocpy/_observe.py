"""A look inside a running program: :func:`stats` (live counters) and
:func:`as_completed` (iterating results as their behaviors complete).

Each cown given gets one more behavior, scheduled behind everything already
scheduled on it, which sends the cown's value (and its exception flag) to a
message tag private to the calling thread.  ``as_completed`` receives those
messages and yields them in the order they arrive, running ready pinned
behaviors while it waits (as ``wait()`` does).  A progress bar is then one
line: ``for done in tqdm(as_completed(results), total=len(results))``.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Generic, Iterable, Iterator, NamedTuple, TypedDict, TypeVar

from . import _core
from ._messaging import TIMEOUT, receive, send
from ._lifecycle import start

__all__ = ["Completed", "PinnedStats", "RuntimeStats", "WorkerStats", "as_completed", "stats"]

R = TypeVar("R")


class WorkerStats(TypedDict):
    """One worker's counters in :func:`stats`."""

    index: int
    queued: int
    running: bool
    finished: int
    failed: int


class PinnedStats(TypedDict):
    """The pinned queue in :func:`stats`."""

    queued: int
    oldest_age_s: float


class RuntimeStats(TypedDict):
    """What :func:`stats` returns (see its docstring for each key)."""

    runtime_running: bool
    scheduled: int
    finished: int
    failed: int
    dropped: int
    in_flight: int
    running: int
    queued: int
    waiting: int
    workers: list[WorkerStats]
    pinned: PinnedStats
    messages: dict[str, int]


def stats() -> RuntimeStats:
    """Live counters of the runtime, at any time, from any interpreter.

    Returns a dict (values are recent, not one consistent snapshot):

    * ``runtime_running``: whether the runtime is up;
    * ``scheduled``, ``finished``, ``failed``, ``dropped``: behaviors since
      the process started (``failed``: stored an exception in their result;
      ``dropped``: never ran, the runtime was torn down first);
    * ``in_flight``: scheduled and not yet retired; of those ``running``
      now, ``queued`` (ready, in a worker's queue), ``waiting`` (for cowns
      held by other behaviors);
    * ``workers``: per worker ``index``, ``queued``, ``running``,
      ``finished``, ``failed``;
    * ``pinned``: ``queued`` pinned behaviors and ``oldest_age_s``, how long
      the pinned queue has been non-empty (seconds);
    * ``messages``: pending messages per tag;
    * ``shared_gil``: ``True`` on CPython 3.10 and 3.11, where the workers'
      sub-interpreters share the one GIL, so behaviors run serialized (but
      correctly); ``False`` from 3.12 on (a GIL per worker: in parallel).
    """
    return _core.stats()

#: Distinguishes the messages of one as_completed() call from leftovers of
#: an earlier one on the same thread that was abandoned half-way.
_serials = itertools.count(1)
#: Longest wait in receive() before running ready pinned behaviors.
_POLL_S = 0.02


# A generic NamedTuple needs CPython 3.11 or later.
if sys.version_info >= (3, 11) or TYPE_CHECKING:
    class Completed(NamedTuple, Generic[R]):
        """One completed cown: the handle, the value it held when everything
        scheduled on it before ``as_completed`` was called had run, and whether
        that value is an exception stored by a behavior.  For the result cown of
        a body returning ``R`` (a ``Cown[R]``) it is a ``Completed[R]``; when
        ``exception`` is true ``value`` is the exception instead."""

        cown: _core.Cown[R]
        value: R
        exception: bool

        def result(self) -> R:
            """The value, or raise it when it is a stored exception (with the
            behavior's traceback as its ``__cause__``)."""
            if self.exception and isinstance(self.value, BaseException):
                raise self.value
            return self.value

else:  # CPython 3.10: a NamedTuple cannot be Generic there.  The same
    # fields and method (type checkers see the class above); Completed[R]
    # is still accepted at run time.
    class Completed(NamedTuple):
        cown: Any
        value: Any
        exception: bool

        def result(self) -> Any:
            if self.exception and isinstance(self.value, BaseException):
                raise self.value
            return self.value

        def __class_getitem__(cls, item: Any) -> Any:
            return cls

    Completed.__doc__ = "One completed cown (see the CPython 3.11+ definition above)."


def _notify(c: Any, tag: str, serial: int, index: int) -> None:
    """The behavior scheduled on each cown: report its value to ``tag``."""
    from ._errors import carry

    try:
        value, flag = c.value, c.exception
        if isinstance(value, BaseException):
            value = carry(value)  # keeps the traceback inside the tuple too
        send(tag, (serial, index, value, flag))
    except Exception as exc:  # the value could not travel: report that
        send(tag, (serial, index, carry(exc), True))


def as_completed(cowns: Iterable[_core.Cown[R]],
                 timeout: float | None = None) -> Iterator[Completed[R]]:
    """Yield a :class:`Completed` for each cown in ``cowns`` as soon as every
    behavior scheduled on it so far has run, in completion order.

    Main interpreter only; starts the runtime if needed.  Reading the value
    marks a stored exception as handled (no exit report for it).  Pinned
    behaviors run on this thread while it waits.

    Raises:
        TypeError: an item is not a ``Cown`` (names its position and type).
        TimeoutError: ``timeout`` seconds passed before every cown completed
            (says how many did not).
        RuntimeError: called from a worker; the runtime was stopped (by
            another thread) before every cown completed.
    """
    if not _core.is_main_interpreter():
        raise RuntimeError("as_completed() can only be called from the main interpreter")
    items = list(cowns)
    for i, c in enumerate(items):
        if not isinstance(c, _core.Cown):
            raise TypeError(f"as_completed() item {i} has type {type(c).__name__}: "
                            "pass result cowns (what @when returns) or other Cown objects")
    if timeout is not None and timeout < 0:
        raise ValueError(f"as_completed() timeout must be >= 0 or None, not {timeout}")
    return _iterate(items, timeout)


def _iterate(items: list[_core.Cown[R]], timeout: float | None) -> Iterator[Completed[R]]:
    from ._pump import pump
    from ._when import whencall

    if not items:
        return
    if not _core.running():
        start()
    tag = f"__bocpy_as_completed_{threading.get_ident()}"
    serial = next(_serials)
    for i, c in enumerate(items):
        whencall(_notify, [c], (tag, serial, i))
    deadline = None if timeout is None else time.monotonic() + timeout
    remaining = len(items)
    polls = 0
    while remaining:
        wait_s = _POLL_S
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"as_completed(): {remaining} of {len(items)} "
                                   f"cowns had not completed after {timeout} s")
            wait_s = min(wait_s, left)
        got_tag, contents = receive(tag, wait_s)
        polls += 1
        if got_tag == TIMEOUT or polls % 64 == 0:
            if _core.running():
                pump()  # pinned behaviors (and worker log records) run here
            elif got_tag == TIMEOUT:
                got_tag, contents = receive(tag, 0)  # stopped: all sent by now
                if got_tag == TIMEOUT:
                    raise RuntimeError(
                        f"as_completed(): the runtime stopped with {remaining} of "
                        f"{len(items)} cowns not completed (their behaviors were "
                        "dropped)")
            if got_tag == TIMEOUT:
                continue
        serial_got, index, value, exc = contents
        if serial_got != serial:
            continue  # left over from an abandoned earlier iteration
        remaining -= 1
        yield Completed(items[index], value, bool(exc))
