"""The exit sequence of a program that used bocpy (main interpreter).

:func:`at_exit` is registered with ``atexit`` when bocpy is imported on the
main interpreter.  It runs what is still scheduled (a normal exit) or, after
Ctrl-C or SIGTERM, drops what has not started and gives running behaviors a
grace period (:func:`set_exit_grace`); then it reports unhandled behavior
exceptions, ends the worker pool and destroys pinned values.  The steps are
listed on :func:`at_exit` and in docs/reliability.md.
"""

from __future__ import annotations

import atexit
import marshal
import os
import signal
import sys
import time

from . import _core, _lifecycle, _signals
from .trace import _start_from_env

#: Seconds that behaviors already running get to finish when the program
#: exits after Ctrl-C or SIGTERM (``set_exit_grace``; ``BOCPY_EXIT_GRACE``).
_exit_grace: float = 2.0
try:
    _exit_grace = max(0.0, float(os.environ.get("BOCPY_EXIT_GRACE", "2")))
except ValueError:
    pass
#: Seconds the exit hook waits for running behaviors before it says so.
_EXIT_REPORT_AFTER = 2.0


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


def _report_unhandled_at_exit() -> None:
    """One report per behavior whose exception nobody handled (see
    ``bocpy._errors``); called by the exit hook while Python is whole."""
    _core._report_unhandled()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def _describe_busy() -> list[str]:
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
    if signal.SIGTERM in _signals.interrupted:
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


def at_exit() -> None:
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
        _lifecycle.take_lock("exit", None)
    except KeyboardInterrupt:
        sig = signal.SIGINT
        _lifecycle.lock.acquire()  # type: ignore[union-attr]
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
        _lifecycle.lock.release()  # type: ignore[union-attr]
    if during_exit:
        # The program itself ended normally, so CPython would exit with
        # status 0: end with the signal's conventional status instead.
        if sig == signal.SIGINT:
            os.kill(os.getpid(), signal.SIGINT)  # SIG_DFL by now
        os._exit(128 + sig)


if _lifecycle.IS_MAIN:
    if os.environ.get("BOCPY_TRACE"):  # trace the whole program
        # Its writer is registered before at_exit (atexit runs last-in
        # first-out), so it runs after the remaining behaviors have run.
        _start_from_env(os.environ["BOCPY_TRACE"])
    atexit.register(at_exit)
