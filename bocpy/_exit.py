"""The exit sequence of a program that used bocpy (main interpreter).

:func:`at_exit` is registered with ``atexit`` when bocpy is imported on the
main interpreter, and :func:`before_threads_joined` with
``threading._register_atexit`` (it runs when the main thread has finished,
before the non-daemon threads are joined: after a signal it runs the
sequence at once, so threads blocked in ``wait()`` are released).  The
sequence runs what is still scheduled (a normal exit) or, after Ctrl-C or
SIGTERM, drops what has not started and gives running behaviors a
grace period (:func:`set_exit_grace`); then it reports unhandled behavior
exceptions, ends the worker pool and destroys pinned values.  The steps are
listed on :func:`at_exit` and in docs/reliability.md.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time

from . import _core, _finalize, _lifecycle, _signals
from ._compat import load_code
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
            code, qualname = load_code(code_bytes)
            what = f"{qualname} ({code.co_filename}:{code.co_firstlineno})"
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


def _other_threads() -> list[threading.Thread]:
    """Non-daemon threads other than this (main) one that are alive: those
    ``threading`` joins before the interpreter ends."""
    me = threading.current_thread()
    return [t for t in threading.enumerate()
            if t is not me and not t.daemon and t.is_alive()]


def _serve_pinned_while_threads_run() -> int:
    """Step 0 of a normal exit: while other non-daemon threads run, this
    (pinned) thread runs the pinned work their ``wait()``/``quiesce()`` may
    need, as its own ``wait()`` would.  Returns 0 once they have ended, or
    the signal that interrupted it."""
    while True:
        others = _other_threads()
        if not others:
            return 0
        try:
            if _core.running() and _core.on_pinned_thread():
                try:
                    _core.wait(0.05, False, False)
                except TimeoutError:
                    pass
            else:
                others[0].join(0.05)
        except KeyboardInterrupt:
            return signal.SIGINT
        except SystemExit as e:
            if signal.SIGTERM in _signals.interrupted:  # our SIGTERM handler
                return signal.SIGTERM
            _signals.body_exit = e  # sys.exit() in a pinned body
            return 0


def before_threads_joined() -> None:
    """Registered with ``threading._register_atexit``: runs when the main
    thread has finished, before ``threading`` joins the non-daemon threads
    (``atexit`` hooks run only after that join).  After Ctrl-C or SIGTERM
    the whole exit sequence runs now, so that threads blocked in ``wait()``
    are released (they raise); otherwise pinned work is served while those
    threads run, and the exit sequence runs later from ``atexit``."""
    if _core.forked():
        return
    _signals.install_sigterm()  # SIGTERM while waiting for threads
    sig = _exit_signal()
    during_exit = False
    if not sig and _signals.body_exit is None and _other_threads():
        sig = _serve_pinned_while_threads_run()
        during_exit = bool(sig) or _signals.body_exit is not None
    if sig or _signals.body_exit is not None:
        at_exit(sig, during_exit)


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
    """Exit after Ctrl-C or SIGTERM (``sig``; 0: a pinned body's
    ``SystemExit``): every wait on another thread raises, what has not
    started is dropped, what runs gets ``_exit_grace`` seconds, then the
    process ends (at once if it gets the signal again)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass
    name = signal.Signals(sig).name if sig else "SystemExit in a pinned behavior"
    _core.interrupt(sig or signal.SIGTERM)
    busy: list[str] = []
    timed_out = False
    try:
        _core.wait(_exit_grace, True, False)
    except TimeoutError:
        timed_out = True
        busy = _describe_busy()
    # Dropped: those retired unrun, plus (when some are stuck) all that
    # still wait behind them and will now never run.
    dropped = _core.dropped() + max(0, _core.in_flight() - len(busy))
    print(f"bocpy: interrupted by {name}: {dropped} queued "
          f"behavior{'s' if dropped != 1 else ''} dropped", file=sys.stderr)
    if not timed_out:
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
    _end_process(sig)


def _end_process(sig: int) -> None:
    """End the process now with the status of ``sig`` (killed by SIGINT:
    shell status 130; 128 + sig otherwise; 0: the pinned body's
    ``SystemExit`` code)."""
    if sig == signal.SIGINT:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # SIG_DFL: status -SIGINT
    if sig:
        os._exit(128 + sig)
    code = _signals.body_exit.code if _signals.body_exit is not None else 0
    os._exit(code if isinstance(code, int) else 1)


def _exit_destroy_pinned() -> None:
    """Exit step for pinned values (after the pool has ended, or on the
    abandoned path just before the process ends): every live pinned value's
    destroy hook runs once, on this (main) thread, while the interpreter is
    still whole (docs/pinned_cowns.md)."""
    if _core.on_pinned_thread():
        _core._pinned_at_exit()


#: The exit sequence has run (from threading's hook or from atexit).
_done = False


def at_exit(sig: int | None = None, during_exit: bool = False) -> None:
    """The exit sequence (see docs/reliability.md).  Registered with
    ``atexit``; :func:`before_threads_joined` runs it earlier, with the
    signal, when the program was interrupted.

    0. (:func:`before_threads_joined`, before non-daemon threads are
       joined) serve pinned work while they run; after a signal, go on with
       the steps below at once;
    1. exit begins: from now on other threads cannot schedule or start
       (``RuntimeError("bocpy is shutting down")``); after a signal every
       ``wait()``/``quiesce()`` on another thread raises at once;
    2. under the lifecycle lock: run what is scheduled (normal exit), or
       after Ctrl-C/SIGTERM (or a pinned body's ``SystemExit``) drop what
       has not started and give running behaviors a grace period;
    3. report each behavior whose exception nobody handled;
    4. close the runtime (it can never start again) and end the pool;
    5. destroy pinned values;
    6. give back every cown main borrowed and empty bocpy's caches, so
       CPython's own teardown finalises the script's globals
       (:mod:`bocpy._finalize`, docs/reliability.md);
    7. a signal that arrived during the exit ends the process with its
       status (the program itself ended normally).
    """
    global _done
    if _done or _core.forked():
        return  # already run; or a forked child owns none of the parent's runtime
    _done = True
    # 1.
    _core.begin_exit()
    if sig is None:
        sig = _exit_signal()
    stop = bool(sig) or _signals.body_exit is not None
    if stop:
        _core.interrupt(sig or signal.SIGTERM)
    if sig == signal.SIGINT and not during_exit and not hasattr(sys, "ps1"):
        # The script's main thread raised KeyboardInterrupt: CPython then
        # ends the process by SIGINT (status 130), but it forgets that if
        # any exec()/eval() of a string runs later on any thread or
        # interpreter (collections.namedtuple does one; a worker importing a
        # module, or another thread racing this exit), and the status becomes
        # 1.  End by SIGINT ourselves, once finalisation is done.  (Not in an
        # interactive session: an old Ctrl-C there is no exit status.)
        _core._exit_by_sigint()
    try:
        _lifecycle.take_lock("exit", None)
    except KeyboardInterrupt:
        sig, stop, during_exit = signal.SIGINT, True, during_exit or not sig
        _core.interrupt(sig)
        _lifecycle.lock.acquire()  # type: ignore[union-attr]
    try:
        # 2.
        if _core.running():
            if not stop:
                sig = _exit_drain()
                stop = during_exit = bool(sig)
            if stop:
                _exit_interrupted(sig)
        # 3.
        _report_unhandled_at_exit()
        # 4.
        _core.shutdown_pool(True)
        # 5.
        _exit_destroy_pinned()
        # 6.
        _finalize.release_at_exit()
        if stop:
            _flush()
    finally:
        _lifecycle.lock.release()  # type: ignore[union-attr]
    # 7.
    if during_exit:
        # The program itself ended normally, so CPython would exit with
        # status 0: end with the signal's conventional status instead.
        _end_process(sig)


if _lifecycle.IS_MAIN:
    if os.environ.get("BOCPY_TRACE"):  # trace the whole program
        # Its writer is registered before at_exit (atexit runs last-in
        # first-out), so it runs after the remaining behaviors have run.
        _start_from_env(os.environ["BOCPY_TRACE"])
    atexit.register(at_exit)
    _finalize.install_gc_hook()  # gc.collect() also collects cown cycles
    try:
        # Private but stable since 3.9 (concurrent.futures relies on it).
        threading._register_atexit(before_threads_joined)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # threading already shutting down
        pass
