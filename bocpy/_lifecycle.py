"""The runtime's lifecycle on the main interpreter: ``start``, ``wait``,
``quiesce`` and the ``Behaviors`` object over them.

One lock (:data:`lock`) serialises start, stop, exit and fork among the
main interpreter's threads; the exit sequence (:mod:`bocpy._exit`) and the
fork hooks (:mod:`bocpy._fork`) take it too.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any, Literal, NamedTuple, overload

from . import _core, _logfwd, _signals, _worker
from ._pump import _check_watchdog

#: Default number of worker sub-interpreters: ``BOCPY_WORKERS`` when it holds
#: an integer >= 1, else physical cores (in the affinity mask) minus one.
WORKER_COUNT: int = _core.default_worker_count()

IS_MAIN = _core.is_main_interpreter()
# Serialises start, stop, exit and fork among the main interpreter's
# threads.  Never held while a behavior body runs on this thread (waits
# refuse re-entry first), and always taken with a timeout or in steps that
# let signals in.  A forked child gets a new one (bocpy._fork).
lock = threading.Lock() if IS_MAIN else None


class WaitResult(NamedTuple):
    """What ``wait``/``quiesce`` return when asked for both stats and the
    noticeboard."""

    stats: list[dict[str, int]]
    noticeboard: dict[str, Any]


def _require_main(what: str) -> None:
    if not IS_MAIN:
        raise RuntimeError(f"{what} can only be called from the main interpreter")


def start(worker_count: int | None = None, module: tuple[str, str] | None = None) -> None:
    """Start the runtime with ``worker_count`` workers (default
    ``WORKER_COUNT``).  Idempotent: a no-op when already running with the
    same count.  ``module`` is accepted for compatibility and unused:
    behaviors may live in any module.

    Raises:
        RuntimeError: called from a worker; already running with another
            worker count; the workers could not be started.
        TypeError / ValueError: a bad ``worker_count``.
    """
    _require_main("start()")
    if worker_count is None:
        worker_count = WORKER_COUNT
    elif isinstance(worker_count, bool) or not isinstance(worker_count, int):
        raise TypeError(f"worker_count must be an int, not {type(worker_count).__name__}")
    elif worker_count < 1:
        raise ValueError(f"worker_count must be at least 1, not {worker_count}")
    if module is not None and not (
        isinstance(module, tuple) and len(module) == 2
        and all(isinstance(m, str) for m in module)
    ):
        raise TypeError("module must be a (module_name, source_path) tuple")
    running = _core.worker_count()
    if running:  # decided without the lock (a pinned behavior run by
        # wait() may call start(), and wait() holds the lock)
        if running != worker_count:
            raise RuntimeError(
                f"the runtime is already running with {running} workers, "
                f"not {worker_count}"
            )
        return
    take_lock("start()", None)
    try:
        running = _core.worker_count()
        if running:
            if running != worker_count:
                raise RuntimeError(
                    f"the runtime is already running with {running} workers, "
                    f"not {worker_count}"
                )
            return
        # Workers follow main's logging levels (bocpy._logfwd).
        _core.start(worker_count, (list(sys.path), list(sys.argv),
                                   _worker.main_source(), _logfwd.worker_config()))
        _signals.install_sigterm()
    finally:
        assert lock is not None
        lock.release()


def _deadline(timeout: Any) -> float | None:
    """time.monotonic() deadline of a valid finite timeout, else None (bad
    values are left for _core.wait to reject with its documented error)."""
    if (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
            and timeout == timeout and timeout < 1e9):
        return time.monotonic() + max(float(timeout), 0.0)
    return None


def take_lock(what: str, timeout: float | None) -> None:
    """Acquire the lifecycle lock in short steps (so Ctrl-C gets in), at
    most ``timeout`` seconds (None: no limit)."""
    assert lock is not None
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    # Another thread's wait() may be waiting for pinned work that only the
    # pinned thread runs: on that thread, run it while waiting for the lock.
    pinned = _core.on_pinned_thread()
    while True:
        # The exit after a signal holds the lock until the process ends:
        # other threads must not wait for it (docs/reliability.md).
        _signals.raise_if_interrupted()
        step = 0.01 if pinned else 0.1
        if deadline is not None:
            step = min(step, deadline - time.monotonic())
            if step <= 0:
                if lock.acquire(blocking=False):
                    return
                raise TimeoutError(
                    f"{what} timed out waiting for another thread's "
                    "start/wait to finish"
                )
        if lock.acquire(timeout=step):
            return
        if pinned and _core.running():
            _core.pump(0, 0, False)


def _empty(stats: bool, noticeboard: bool) -> WaitResult | list[dict[str, int]] | dict[str, Any] | None:
    if stats and noticeboard:
        return WaitResult([], {})
    if stats:
        return []
    if noticeboard:
        return {}
    return None


def _shape(stats_list: list[dict[str, int]] | None, board: dict[str, Any] | None,
           stats: bool, noticeboard: bool,
           ) -> WaitResult | list[dict[str, int]] | dict[str, Any] | None:
    if stats and noticeboard:
        return WaitResult(stats_list or [], board or {})
    if stats:
        return stats_list or []
    if noticeboard:
        return board or {}
    return None


def _interruptible(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` (``_core.wait``), noting what interrupted it for the
    exit sequence: a Ctrl-C (the signal or a pinned body's
    ``KeyboardInterrupt``), or a pinned body's ``SystemExit``."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        if threading.current_thread() is threading.main_thread():
            _signals.interrupted.add(signal.SIGINT)
        raise
    except SystemExit as e:
        if (threading.current_thread() is threading.main_thread()
                and signal.SIGTERM not in _signals.interrupted
                and not _core.interrupted()):
            _signals.body_exit = e
        raise


@overload
def wait(timeout: float | None = None, *, stats: Literal[False] = False,
         noticeboard: Literal[False] = False) -> None: ...
@overload
def wait(timeout: float | None = None, *, stats: Literal[True],
         noticeboard: Literal[False] = False) -> list[dict[str, int]]: ...
@overload
def wait(timeout: float | None = None, *, stats: Literal[False] = False,
         noticeboard: Literal[True]) -> dict[str, Any]: ...
@overload
def wait(timeout: float | None = None, *, stats: Literal[True],
         noticeboard: Literal[True]) -> WaitResult: ...
@overload
def wait(timeout: float | None = None, *, stats: bool = False,
         noticeboard: bool = False) -> WaitResult | list[dict[str, int]] | dict[str, Any] | None: ...
def wait(timeout: float | None = None, *, stats: bool = False,
         noticeboard: bool = False) -> WaitResult | list[dict[str, int]] | dict[str, Any] | None:
    """Block until every behavior (including ones scheduled by behaviors)
    has run, then stop the runtime; the next ``@when`` starts a fresh one.
    Pinned behaviors run on this thread meanwhile.  Afterwards the main
    thread can read any cown's value directly.

    Returns ``None``; with ``stats=True`` a list of per-worker counter
    dicts; with ``noticeboard=True`` a dict snapshot of the noticeboard;
    with both a ``WaitResult``.  Not running: the empty form.

    Raises:
        TimeoutError: behaviors were still in flight after ``timeout``
            seconds (the runtime is left running; call ``wait`` again).
        RuntimeError: called from a worker.
    """
    _require_main("wait()")
    _core.check_reentry("wait()")
    if not _core.running():
        if _core.forked():
            _core.wait(timeout, True, False)  # raises the fork error
        return _empty(stats, noticeboard)
    _check_watchdog()
    deadline = _deadline(timeout)
    take_lock("wait()", None if deadline is None else timeout)
    try:
        left = timeout if deadline is None else max(deadline - time.monotonic(), 0.0)
        s = _interruptible(_core.wait, left, True, stats)
        # Teardown set the board aside before clearing it: report or free it.
        board = _core._notice_take_cleared(noticeboard)
    finally:
        assert lock is not None
        lock.release()
    _core.check_borrowed()
    return _shape(s, board, stats, noticeboard)


@overload
def quiesce(timeout: float | None = None, *, stats: Literal[False] = False,
         noticeboard: Literal[False] = False) -> None: ...
@overload
def quiesce(timeout: float | None = None, *, stats: Literal[True],
         noticeboard: Literal[False] = False) -> list[dict[str, int]]: ...
@overload
def quiesce(timeout: float | None = None, *, stats: Literal[False] = False,
         noticeboard: Literal[True]) -> dict[str, Any]: ...
@overload
def quiesce(timeout: float | None = None, *, stats: Literal[True],
         noticeboard: Literal[True]) -> WaitResult: ...
@overload
def quiesce(timeout: float | None = None, *, stats: bool = False,
         noticeboard: bool = False) -> WaitResult | list[dict[str, int]] | dict[str, Any] | None: ...
def quiesce(timeout: float | None = None, *, stats: bool = False,
         noticeboard: bool = False) -> WaitResult | list[dict[str, int]] | dict[str, Any] | None:
    """Like ``wait`` but the runtime stays up: a checkpoint, not a shutdown.

    Raises:
        TimeoutError: behaviors were still in flight after ``timeout``.
        RuntimeError: called from a worker.
    """
    _require_main("quiesce()")
    _core.check_reentry("quiesce()")
    if not _core.running():
        if _core.forked():
            _core.wait(timeout, False, False)  # raises the fork error
        return _empty(stats, noticeboard)
    _check_watchdog()
    s = _interruptible(_core.wait, timeout, False, stats)
    _core.check_borrowed()
    board = _core._notice_snapshot() if noticeboard else None
    return _shape(s, board, stats, noticeboard)


class Behaviors:
    """The runtime as an object (compatibility layer over start/wait)."""

    def __init__(self, num_workers: int | None = None) -> None:
        self.num_workers: int = WORKER_COUNT if num_workers is None else num_workers

    def start(self, module: tuple[str, str] | None = None) -> None:
        start(self.num_workers, module)

    def stop(self, timeout: float | None = None) -> None:
        wait(timeout)

    def quiesce(self, timeout: float | None = None) -> bool:
        try:
            quiesce(timeout)
        except TimeoutError:
            return False
        return True

    def __enter__(self) -> "Behaviors":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
