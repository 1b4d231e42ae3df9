"""Ctrl-C and SIGTERM while bocpy is in use (main interpreter only).

SIGINT arrives as CPython's own ``KeyboardInterrupt``; SIGTERM, once the
runtime has started and unless the program has its own handler, becomes
``SystemExit(143)`` through :func:`_on_sigterm`.  Either way the signal is
remembered in :data:`interrupted`, which the exit sequence
(:mod:`bocpy._exit`) reads to choose between running what is scheduled and
dropping it (docs/reliability.md, "Ctrl-C and SIGTERM").
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from . import _core

#: Signals that interrupted this program (SIGINT via KeyboardInterrupt out of
#: wait()/quiesce(), SIGTERM via our handler).
interrupted: set[int] = set()
#: The ``SystemExit`` a pinned body raised out of ``wait()``/``quiesce()``
#: (``sys.exit()`` in a pinned behavior): the exit then drops what is queued,
#: as after a signal.
body_exit: SystemExit | None = None
#: What SIGTERM was before bocpy installed its handler (None: not installed).
_prev_sigterm: Any = None


def _on_sigterm(signum: int, frame: Any) -> None:
    # The first SIGTERM ends the program like an uncaught exception (the
    # exit hook then drops queued behaviors); a second one kills it at once.
    interrupted.add(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signal.SIGTERM)


def install_sigterm() -> None:
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


def raise_if_interrupted() -> None:
    """On a thread other than the main one, once the exit after a signal
    has begun (``_core.interrupt``): raise what that thread's ``wait()``
    raises (``KeyboardInterrupt`` for SIGINT, else ``SystemExit(128 +
    signal)``), so that nothing waits for a lock the exit holds."""
    sig = _core.interrupted()
    if not sig or threading.current_thread() is threading.main_thread():
        return
    if sig == signal.SIGINT:
        raise KeyboardInterrupt("bocpy: the program was interrupted (SIGINT) "
                                "and is exiting")
    raise SystemExit(128 + sig)


def forget_in_child() -> None:
    """After fork(), in the child: the parent's interrupts are not the
    child's, and SIGTERM goes back to its default if bocpy set it."""
    global body_exit
    interrupted.clear()
    body_exit = None
    if _prev_sigterm is not None:
        try:
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except (ValueError, OSError):
            pass
