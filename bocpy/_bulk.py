"""``bocpy.map``: many small behaviors in one call (issue 33).

``map(fn, iterable, chunksize=N)`` works like
:meth:`concurrent.futures.Executor.map`: the items are collected at once and
cut into chunks of ``chunksize``; each chunk is **one** behavior over no
cowns whose body (C, ``core/exec/behavior.c``) calls ``fn(item)`` for each
of its items and returns the list of results.  ``fn`` travels as a behavior
body does (code by value, its closure variables and the module globals it
reads captured once, at the ``map`` call), and each chunk's outcome is held
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

    Raises (at the call):
        TypeError: ``fn`` is not a plain function (``def`` or ``lambda``; a
            builtin or a generator function cannot travel as a behavior
            body), ``chunksize`` is not an ``int``, an item or a captured
            value cannot be sent to a worker.
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
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"bocpy.map() fn must be a function (def or lambda), not "
                        f"{type(fn).__name__}: its code travels to the workers as "
                        "a behavior body does")
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
    cowns = [chunk(fn, tuple(items[k:k + chunksize]), latch, i)
             for i, k in enumerate(range(0, n, chunksize))]
    return _results(latch, cowns, deadline, timeout)


def _results(latch: Any, cowns: list[Any], deadline: float | None,
             timeout: float | None) -> Iterator[Any]:
    from ._pump import pump

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
