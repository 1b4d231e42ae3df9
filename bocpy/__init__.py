"""bocpy: Behavior-Oriented Concurrency for CPython.

Data lives in cowns; ``@when(a, b)`` schedules a behavior that runs once it
holds every cown it names, on a pool of worker sub-interpreters that each have
their own GIL.  See ``docs/`` for the model and the API reference.
"""

from __future__ import annotations

import atexit
import sys
import threading
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
# Serialises start and stop among the main interpreter's threads.
_lifecycle = threading.Lock() if _IS_MAIN else None


class WaitResult(NamedTuple):
    """What ``wait``/``quiesce`` return when asked for both stats and the
    noticeboard."""

    stats: list[dict[str, int]]
    noticeboard: dict[str, Any]


def _require_main(what: str) -> None:
    if not _IS_MAIN:
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
    assert _lifecycle is not None
    with _lifecycle:
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
                                   _logfwd.worker_config()))


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
    if not _core.running():
        return _empty(stats, noticeboard)
    _check_watchdog()
    assert _lifecycle is not None
    with _lifecycle:
        s = _core.wait(timeout, True, stats)
        # Teardown set the board aside before clearing it: report or free it.
        board = _core._notice_take_cleared(noticeboard)
    return _shape(s, board, stats, noticeboard)


def quiesce(timeout: float | None = None, *, stats: bool = False,
            noticeboard: bool = False) -> Any:
    """Like ``wait`` but the runtime stays up: a checkpoint, not a shutdown.

    Raises:
        TimeoutError: behaviors were still in flight after ``timeout``.
        RuntimeError: called from a worker.
    """
    _require_main("quiesce()")
    if not _core.running():
        return _empty(stats, noticeboard)
    _check_watchdog()
    s = _core.wait(timeout, False, stats)
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


def _at_exit() -> None:
    # A program that never calls wait() still runs every behavior it
    # scheduled, then exits cleanly.
    if _core.running():
        wait()
    _report_unhandled_at_exit()
    # Worker interpreters are pooled across start/wait cycles; end them
    # before the main interpreter finalises.
    _core.shutdown_pool()
    # Then every live pinned value's destroy hook, once, on this (main)
    # thread, while the interpreter is still whole (docs/pinned_cowns.md).
    if _core.on_pinned_thread():
        _core._pinned_at_exit()


if _IS_MAIN:
    import os as _os

    if _os.environ.get("BOCPY_TRACE"):  # trace the whole program
        from .trace import _start_from_env

        _start_from_env(_os.environ["BOCPY_TRACE"])
    atexit.register(_at_exit)
