"""``bocpy.map``: many small behaviors in one call (issue 33).

``map(fn, iterable, chunksize=N)`` works like
:meth:`concurrent.futures.Executor.map`: the items are collected at once and
cut into chunks of ``chunksize``; each chunk is **one** behavior over no
cowns whose body (C, ``core/exec/behavior.c``) calls ``fn(item)`` for each
of its items and returns the list of results.  A plain function ``fn``
travels as a behavior body does (code by value, its closure variables and
the module globals it reads captured once, at the ``map`` call).  Any other
callable (a builtin, ``functools.partial``, ``operator.itemgetter``, a bound
method, a callable instance) becomes the captured value of a tiny body that
calls it, so it travels through the same value transport as captures do
(pickled, with functions inside it by value).  Each chunk's outcome is held
by its result cown exactly as a ``@when`` result: the list, or the first
exception the body raised, with its traceback.  The iterator returned waits
for the chunks in order and yields their results; a chunk that failed
raises its exception when the iteration reaches it (the items after it in
that chunk are not run, as in ``Executor.map``).
"""

from __future__ import annotations

import time
import types
from typing import Any, Callable, Iterable, Iterator, TypeVar

from . import _core
from ._byvalue import dumps
from ._pump import pump

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["map"]

#: Longest wait for a chunk before running ready pinned behaviors.
_POLL_S = 0.02


def map(fn: Callable[[T], R], iterable: Iterable[T], *, chunksize: int = 1,
        timeout: float | None = None) -> Iterator[R]:  # noqa: A001 (bocpy.map)
    """Run ``fn(item)`` for every item on the workers, ``chunksize`` items per
    behavior; return an iterator over the results, in order.

    Main interpreter only; starts the runtime if needed.  Pinned behaviors
    run on this thread while the iterator waits (as ``wait()`` does).

    ``fn`` may be any callable that can be sent to a worker: a function
    (``def`` or ``lambda``, sent as a behavior body), or a builtin
    (``abs``, ``str.upper``), a ``functools.partial``, an
    ``operator.itemgetter``, a bound method of a picklable object or a
    picklable callable instance (sent as a captured value is).

    Raises (at the call):
        TypeError: ``fn`` is not callable; ``fn`` is a generator or coroutine
            function; ``fn`` is not a function and cannot be sent to a worker
            (the message names its type and why); ``chunksize`` is not an
            ``int``; an item or a value ``fn`` captures cannot be sent to a
            worker.
        ValueError: ``chunksize < 1`` or ``timeout < 0``.
        RuntimeError: called from a worker; the runtime is shutting down.

    Raises (while iterating):
        the exception ``fn`` raised for an item, with the worker's traceback
        as its ``__cause__`` (as for ``@when`` results);
        TimeoutError: the results were not all there ``timeout`` seconds
        after the call.
    """
    if not _core.is_main_interpreter():
        raise RuntimeError("bocpy.map() can only be called from the main interpreter")
    body = fn
    if not isinstance(fn, types.FunctionType):
        if not callable(fn):
            raise TypeError(f"bocpy.map() fn must be callable, not {type(fn).__name__}")
        body = _calling(fn)
    if isinstance(chunksize, bool) or not isinstance(chunksize, int):
        raise TypeError(f"bocpy.map() chunksize must be an int, not {type(chunksize).__name__}")
    if chunksize < 1:
        raise ValueError(f"bocpy.map() chunksize must be >= 1, not {chunksize}")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"bocpy.map() timeout must be a number or None, "
                            f"not {type(timeout).__name__}")
        if timeout < 0:
            raise ValueError(f"bocpy.map() timeout must be >= 0 or None, not {timeout}")
    deadline = None if timeout is None else time.monotonic() + timeout
    items = iterable if isinstance(iterable, (list, tuple)) else list(iterable)
    n = len(items)
    nchunks = (n + chunksize - 1) // chunksize
    latch = _core._map_latch(nchunks)
    chunk = _core._map_chunk
    try:
        cowns = [chunk(body, tuple(items[k:k + chunksize]), latch, i)
                 for i, k in enumerate(range(0, n, chunksize))]
    except TypeError as exc:
        if body is not fn:
            _check_travels(fn, exc)
        raise
    return _results(latch, cowns, deadline, timeout)


def _calling(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A behavior body that calls ``fn``: ``fn`` is its closure variable,
    sent to the workers as any captured value is."""
    def call(item: Any) -> Any:
        return fn(item)
    call.__qualname__ = f"bocpy.map({type(fn).__name__})"
    return call


def _check_travels(fn: Any, exc: TypeError) -> None:
    """Scheduling a chunk of the non-function callable ``fn`` failed with
    ``exc``: raise a TypeError naming ``fn``'s type and why when it is
    ``fn`` that cannot be sent to a worker (else return: an item failed)."""
    try:
        dumps(fn)
    except Exception as why:  # noqa: BLE001 (any pickling failure)
        raise TypeError(
            f"bocpy.map() fn, a {type(fn).__name__}, cannot be sent to a worker "
            f"interpreter: it is not a function, so it travels pickled, and "
            f"pickling it failed ({why}); use a function (def or lambda) or a "
            f"picklable callable") from exc


def _results(latch: Any, cowns: list[Any], deadline: float | None,
             timeout: float | None) -> Iterator[Any]:
    wait, take = _core._map_wait, _core._map_take
    for i in range(len(cowns)):
        polls = 0
        while not wait(latch, i, _POLL_S if deadline is None
                       else min(_POLL_S, max(deadline - time.monotonic(), 0.0))):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"bocpy.map(): {len(cowns) - i} of {len(cowns)} "
                                   f"chunks had not completed after {timeout} s")
            polls += 1
            if _core.running():
                pump()  # pinned behaviors (and worker log records) run here
        value, exc = take(cowns[i])
        cowns[i] = None  # the chunk's record can go
        if exc:
            if isinstance(value, BaseException):
                raise value
            raise RuntimeError(f"bocpy.map(): a chunk failed: {value!r}")
        yield from value
