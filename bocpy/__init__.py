"""bocpy: Behavior-Oriented Concurrency for CPython.

Data lives in cowns; ``@when(a, b)`` schedules a behavior that runs once it
holds every cown it names, on a pool of worker sub-interpreters that each have
their own GIL.  See ``docs/`` for the model and the API reference.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _core
from ._abi import get_cmake_dir, get_include, get_pkgconfig_dir, get_sources
from ._core import Cown, PinnedCown
from ._messaging import (
    REMOVED,
    TIMEOUT,
    drain,
    notice_delete,
    notice_read,
    notice_seed,
    notice_sync,
    notice_update,
    notice_write,
    noticeboard,
    receive,
    send,
    set_tags,
)
from ._pump import PumpResult, pump, set_pump_watchdog, set_wait_pump_poll
from ._pump import _check_watchdog
from ._when import when, whencall
from ._errors import RemoteTraceback, UnpicklableException
from ._observe import Completed, as_completed, stats
from .trace import trace
from . import _worker

__all__ = [
    "Behaviors",
    "Completed",
    "Cown",
    "Matrix",
    "PinnedCown",
    "PumpResult",
    "REMOVED",
    "RemoteTraceback",
    "TIMEOUT",
    "UnpicklableException",
    "WORKER_COUNT",
    "WaitResult",
    "__version__",
    "as_completed",
    "drain",
    "get_cmake_dir",
    "get_include",
    "get_pkgconfig_dir",
    "get_sources",
    "notice_delete",
    "notice_read",
    "notice_seed",
    "notice_sync",
    "notice_update",
    "notice_write",
    "noticeboard",
    "pump",
    "quiesce",
    "receive",
    "send",
    "set_exit_grace",
    "set_pump_watchdog",
    "set_tags",
    "set_wait_pump_poll",
    "start",
    "stats",
    "trace",
    "wait",
    "when",
    "whencall",
]


if TYPE_CHECKING:
    from .plugins.matrix import Matrix


def __getattr__(name: str) -> Any:
    # bocpy.Matrix lives in the abi3 plugin bocpy.plugins.matrix; imported on
    # first use, so that importing bocpy (in every worker too) stays cheap.
    if name == "Matrix":
        from .plugins.matrix import Matrix

        globals()["Matrix"] = Matrix
        return Matrix
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version() -> str:
    # The version compiled into _core ("bocpy 0.1.0 (ABI 1.0, ...)"), which
    # comes from the one place it is written (project() in CMakeLists.txt);
    # the wheel's metadata (distribution "bocpy-runtime") reads the same line.
    import re

    m = re.match(r"bocpy (\S+)", _core._abi_info()["version"])
    return m.group(1) if m else "0.0.0+unknown"


__version__: str = _version()

#: Default number of worker sub-interpreters: ``BOCPY_WORKERS`` when it holds
#: an integer >= 1, else physical cores (in the affinity mask) minus one.
WORKER_COUNT: int = _core.default_worker_count()

_IS_MAIN = _core.is_main_interpreter()
# Serialises start, stop, exit and fork among the main interpreter's
# threads.  Never held while a behavior body runs on this thread (waits
# refuse re-entry first), and always taken with a timeout or in steps that
# let signals in.
_lifecycle = threading.Lock() if _IS_MAIN else None


class WaitResult(NamedTuple):
    """What ``wait``/``quiesce`` return when asked for both stats and the
    noticeboard."""

    stats: list[dict[str, int]]
    noticeboard: dict[str, Any]


def _require_main(what: str) -> None:
    if not _IS_MAIN:
        raise RuntimeError(f"{what} can only be called from the main interpreter")


def start(worker_count: int | None = None, module: tuple[str, str] | None = None,
          *, backend: str | None = None, address: str | None = None,
          num_cpus: int | None = None) -> None:
    """Start the runtime with ``worker_count`` workers (default
    ``WORKER_COUNT``).  Idempotent: a no-op when already running with the
    same count.  ``module`` is accepted for compatibility and unused:
    behaviors may live in any module.

    ``backend="ray"`` (or ``BOCPY_BACKEND=ray``) runs behaviors as Ray tasks
    instead (docs/distributed.md): on a Ray started here (``num_cpus``), or
    on the cluster at ``address`` (``"auto"``: the one this machine joined).

    Raises:
        RuntimeError: called from a worker; already running with another
            worker count; the workers could not be started.
        TypeError / ValueError: a bad ``worker_count`` or ``backend``.
        ImportError: ``backend="ray"`` without the ``ray`` package.
    """
    _require_main("start()")
    from . import ray as _ray_backend

    if _ray_backend.resolve_backend(backend) == "ray":
        _start_ray(address, num_cpus)
        return
    if _core.running() and _core._executor() != "workers":
        raise RuntimeError("the runtime is running on the Ray backend: "
                           "wait() first to start it on local workers")
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
    _take_lifecycle("start()", None)
    try:
        running = _core.worker_count()
        if running:
            if running != worker_count:
                raise RuntimeError(
                    f"the runtime is already running with {running} workers, "
                    f"not {worker_count}"
                )
            return
        from . import _logfwd  # workers follow main's logging levels

        _core.start(worker_count, (list(sys.path), list(sys.argv),
                                   _worker.main_source(), _logfwd.worker_config()))
        _install_sigterm()
    finally:
        assert _lifecycle is not None
        _lifecycle.release()


def _start_ray(address: str | None, num_cpus: int | None) -> None:
    """start() on the Ray backend: one idle local worker, behaviors to Ray."""
    from . import ray as _ray_backend

    def running_here() -> bool:
        if not _core.running():
            return False
        if _core._executor() != "external":
            raise RuntimeError("the runtime is running on local workers: "
                               "wait() first to start it on the Ray backend")
        return True

    if running_here():
        return
    _take_lifecycle("start()", None)
    try:
        if running_here():
            return
        _ray_backend.before_start(address, num_cpus)
        try:
            _core.start(1, (list(sys.path), list(sys.argv), _worker.main_source(), None))
        except BaseException:
            _ray_backend.after_stop()
            raise
    finally:
        assert _lifecycle is not None
        _lifecycle.release()


def _deadline(timeout: Any) -> float | None:
    """time.monotonic() deadline of a valid finite timeout, else None (bad
    values are left for _core.wait to reject with its documented error)."""
    if (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
            and timeout == timeout and timeout < 1e9):
        return time.monotonic() + max(float(timeout), 0.0)
    return None


def _take_lifecycle(what: str, timeout: float | None) -> None:
    """Acquire the lifecycle lock in short steps (so Ctrl-C gets in), at
    most ``timeout`` seconds (None: no limit)."""
    assert _lifecycle is not None
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    # Another thread's wait() may be waiting for pinned work that only the
    # pinned thread runs: on that thread, run it while waiting for the lock.
    pinned = _core.on_pinned_thread()
    while True:
        step = 0.01 if pinned else 0.1
        if deadline is not None:
            step = min(step, deadline - time.monotonic())
            if step <= 0:
                if _lifecycle.acquire(blocking=False):
                    return
                raise TimeoutError(
                    f"{what} timed out waiting for another thread's "
                    "start/wait to finish"
                )
        if _lifecycle.acquire(timeout=step):
            return
        if pinned and _core.running():
            _core.pump(0, 0, False)


def _empty(stats: bool, noticeboard: bool) -> Any:
    if stats and noticeboard:
        return WaitResult([], {})
    if stats:
        return []
    if noticeboard:
        return {}
    return None


def _shape(stats_list: list[dict[str, int]] | None, board: dict[str, Any] | None,
           stats: bool, noticeboard: bool) -> Any:
    if stats and noticeboard:
        return WaitResult(stats_list or [], board or {})
    if stats:
        return stats_list or []
    if noticeboard:
        return board or {}
    return None


def wait(timeout: float | None = None, *, stats: bool = False,
         noticeboard: bool = False) -> Any:
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
    _take_lifecycle("wait()", None if deadline is None else timeout)
    try:
        left = timeout if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            s = _core.wait(left, True, stats)
        except KeyboardInterrupt:
            _interrupted.add(signal.SIGINT)
            raise
        if _core._executor() != "workers":  # a Ray run ended
            from .ray import after_stop

            after_stop()
        # Teardown set the board aside before clearing it: report or free it.
        board = _core._notice_take_cleared(noticeboard)
    finally:
        assert _lifecycle is not None
        _lifecycle.release()
    _core.check_borrowed()
    return _shape(s, board, stats, noticeboard)


def quiesce(timeout: float | None = None, *, stats: bool = False,
            noticeboard: bool = False) -> Any:
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
    try:
        s = _core.wait(timeout, False, stats)
    except KeyboardInterrupt:
        _interrupted.add(signal.SIGINT)
        raise
    _core.check_borrowed()
    board = _core._notice_snapshot() if noticeboard else None
    return _shape(s, board, stats, noticeboard)


class Behaviors:
    """The runtime as an object (compatibility layer over start/wait)."""

    def __init__(self, num_workers: int | None = None) -> None:
        self.num_workers = WORKER_COUNT if num_workers is None else num_workers

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


def _report_unhandled_at_exit() -> None:
    """One report per behavior whose exception nobody handled (see
    ``bocpy._errors``); called by the exit hook while Python is whole."""
    _core._report_unhandled()


# ---- exit, interrupts, fork ---------------------------------------------------

#: Seconds that behaviors already running get to finish when the program
#: exits after Ctrl-C or SIGTERM (``set_exit_grace``; ``BOCPY_EXIT_GRACE``).
_exit_grace: float = 2.0
try:
    _exit_grace = max(0.0, float(os.environ.get("BOCPY_EXIT_GRACE", "2")))
except ValueError:
    pass
#: Seconds the exit hook waits for running behaviors before it says so.
_EXIT_REPORT_AFTER = 2.0
#: Signals that interrupted this program (SIGINT via KeyboardInterrupt out of
#: wait()/quiesce(), SIGTERM via our handler).
_interrupted: set[int] = set()
_prev_sigterm: Any = None


def set_exit_grace(seconds: float) -> None:
    """How long behaviors that are already running may take to finish when
    the program exits after Ctrl-C (SIGINT) or SIGTERM (default 2 s, or the
    ``BOCPY_EXIT_GRACE`` environment variable).  Behaviors that have not
    started are dropped at once either way.

    Raises:
        TypeError: ``seconds`` is not a number.
        ValueError: ``seconds`` is negative or NaN.
    """
    global _exit_grace
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if not seconds >= 0:
        raise ValueError(f"seconds must be >= 0, not {seconds!r}")
    _exit_grace = float(seconds)


def _on_sigterm(signum: int, frame: Any) -> None:
    # The first SIGTERM ends the program like an uncaught exception (the
    # exit hook then drops queued behaviors); a second one kills it at once.
    _interrupted.add(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signal.SIGTERM)


def _install_sigterm() -> None:
    """Turn SIGTERM into an orderly exit while bocpy is in use, unless the
    program has its own handler (main thread only)."""
    global _prev_sigterm
    if _prev_sigterm is not None or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
            _prev_sigterm = signal.SIG_DFL
    except (ValueError, OSError):  # not the main thread, or no signals here
        pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def _describe_busy() -> list[str]:
    import marshal

    lines = []
    for worker, code_bytes, seconds in _core.busy():
        try:
            code = marshal.loads(code_bytes)
            what = f"{code.co_qualname} ({code.co_filename}:{code.co_firstlineno})"
        except Exception:
            what = "a behavior"
        lines.append(f"  worker {worker}: {what}, running for {seconds:.1f} s")
    return lines


def _report_busy(header: str) -> None:
    lines = _describe_busy()
    print(f"bocpy: {header}", *lines, sep="\n", file=sys.stderr, flush=True)


def _exit_signal() -> int:
    """The signal this exit follows (0 for a normal exit)."""
    if signal.SIGTERM in _interrupted:
        return signal.SIGTERM
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if isinstance(last, KeyboardInterrupt):
        return signal.SIGINT
    return 0


def _exit_drain() -> int:
    """Run everything scheduled (the program ended without wait()); report
    once if behaviors are still running after a while.  Returns 0, or the
    signal that interrupted the drain."""
    started = time.monotonic()
    reported = False
    while True:
        try:
            _core.wait(0.25, True, False)
            return 0
        except TimeoutError:
            pass
        except KeyboardInterrupt:
            return signal.SIGINT
        except SystemExit:
            return signal.SIGTERM
        if not reported and time.monotonic() - started >= _EXIT_REPORT_AFTER:
            reported = True
            _report_busy("the program is exiting; waiting for behaviors that "
                         "are still running (Ctrl-C stops waiting):")


def _exit_interrupted(sig: int) -> None:
    """Exit after Ctrl-C or SIGTERM: drop what has not started, give what
    runs ``_exit_grace`` seconds, then end the process (at once if it gets
    the signal again)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass
    name = signal.Signals(sig).name
    _core.cancel_pending()
    busy: list[str] = []
    try:
        _core.wait(_exit_grace, True, False)
    except TimeoutError:
        busy = _describe_busy()
    # Dropped: those retired unrun, plus (when some are stuck) all that
    # still wait behind them and will now never run.
    dropped = _core.dropped() + max(0, _core.in_flight() - len(busy))
    print(f"bocpy: interrupted by {name}: {dropped} queued "
          f"behavior{'s' if dropped != 1 else ''} dropped", file=sys.stderr)
    if not busy:
        # CPython's own exit after an uncaught KeyboardInterrupt ends the
        # process without flushing what is still buffered: flush it here.
        _flush()
        return
    print(f"bocpy: still running after the {_exit_grace:g} s grace period, "
          "abandoned:", *busy, sep="\n", file=sys.stderr)
    _report_unhandled_at_exit()
    _exit_destroy_pinned()
    _flush()
    # Worker threads cannot be stopped: end the process without the
    # interpreter's finalisation (which would wait for them).
    if sig == signal.SIGINT:
        os.kill(os.getpid(), signal.SIGINT)  # SIG_DFL now: status -SIGINT
    os._exit(128 + sig)


def _exit_destroy_pinned() -> None:
    """Exit step for pinned values (after the pool has ended, or on the
    abandoned path just before the process ends): every live pinned value's
    destroy hook runs once, on this (main) thread, while the interpreter is
    still whole (docs/pinned_cowns.md)."""
    if _core.on_pinned_thread():
        _core._pinned_at_exit()


def _at_exit() -> None:
    """The exit sequence (see docs/reliability.md):

    1. exit begins: from now on other threads cannot schedule or start
       (``RuntimeError("bocpy is shutting down")``);
    2. under the lifecycle lock: run what is scheduled (normal exit), or
       after Ctrl-C/SIGTERM drop what has not started and give running
       behaviors a grace period;
    3. report each behavior whose exception nobody handled;
    4. close the runtime (it can never start again) and end the pool;
    5. destroy pinned values.
    """
    if _core.forked():
        return  # a forked child owns none of the parent's runtime
    _core.begin_exit()
    sig = _exit_signal()
    try:
        _take_lifecycle("exit", None)
    except KeyboardInterrupt:
        sig = signal.SIGINT
        _lifecycle.acquire()  # type: ignore[union-attr]
    during_exit = False  # the signal arrived while this hook waited
    try:
        if _core.running():
            if not sig:
                sig = _exit_drain()
                during_exit = bool(sig)
            if sig:
                _exit_interrupted(sig)
        _report_unhandled_at_exit()
        _core.shutdown_pool(True)
        _exit_destroy_pinned()
        if sig:
            _flush()
    finally:
        _lifecycle.release()  # type: ignore[union-attr]
    if during_exit:
        # The program itself ended normally, so CPython would exit with
        # status 0: end with the signal's conventional status instead.
        if sig == signal.SIGINT:
            os.kill(os.getpid(), signal.SIGINT)  # SIG_DFL by now
        os._exit(128 + sig)


def _before_fork() -> None:
    # Sub-interpreters do not survive fork() (CPython clears them in the
    # child and crashes): end the worker interpreters first.  A stopped
    # runtime's parked pool simply goes (the next start() makes new ones);
    # a running one is paused: workers finish the body they run, their
    # interpreters end, and the parent makes new ones after the fork.  The
    # child of a running runtime cannot use it (a clear RuntimeError).
    global _fork_locked
    _fork_locked = _lifecycle is not None and _lifecycle.acquire(blocking=False)
    if not _core.forked():
        try:
            _core._fork_prepare()
        except RuntimeError:
            pass


def _after_fork_parent() -> None:
    global _fork_locked
    try:
        _core._fork_parent()
    finally:
        if _fork_locked:
            _fork_locked = False
            _lifecycle.release()  # type: ignore[union-attr]


def _after_fork_child() -> None:
    global _fork_locked, _lifecycle
    _fork_locked = False
    _lifecycle = threading.Lock()  # whoever held it does not exist here
    _interrupted.clear()
    _core._after_fork_child()
    if _prev_sigterm is not None:
        try:
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except (ValueError, OSError):
            pass


_fork_locked = False

if _IS_MAIN:
    import os as _os

    if _os.environ.get("BOCPY_TRACE"):  # trace the whole program
        from .trace import _start_from_env

        _start_from_env(_os.environ["BOCPY_TRACE"])
    atexit.register(_at_exit)
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
