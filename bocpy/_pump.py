"""Pumping pinned behaviors on the main thread, and the starvation watchdog.

Behaviors that name a ``PinnedCown`` run on the main thread: inside
``pump()`` (call it from an event loop's idle or timer hook) or inside
``wait()``/``quiesce()``, which pump by themselves.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, NamedTuple

from . import _core

_MAX_MS = 9_200_000_000_000  # ~2**63 ns expressed in ms


class PumpResult(NamedTuple):
    """What one ``pump()`` call did."""

    executed: int
    """Pinned behaviors retired (their body ran, raised, or failed to start)."""
    deadline_reached: bool
    """True when ``deadline_ms`` stopped the pump with work still queued."""
    raised: int
    """Bodies that raised an ``Exception`` (stored on their result cown)."""


def _bound(name: str, value: int | None) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int or None, not {type(value).__name__}")
    if value <= 0:
        raise TypeError(f"{name} must be a positive int or None, not {value}")
    if value > _MAX_MS:
        raise OverflowError(f"{name} is too large: {value}")
    return value


# Watchdog settings: (warn_ms, raise_ms, on_starve) or None when disabled.
_watchdog: tuple[int | None, int | None, Callable[[int, str], None] | None] | None = None
_warned_episode = 0  # nonempty-since timestamp of the episode already warned
_raised_episode = 0  # ... and of the episode already escalated

#: ``on_starve`` severities (API.md 8.2 passes 0 for the warning).
WARNING = 0
ESCALATION = 1


def set_pump_watchdog(warn_ms: int | None = 1000, raise_ms: int | None = None,
                      on_starve: Callable[[int, str], None] | None = None) -> None:
    """Watch for pinned work waiting too long for the main thread.

    Off until first called; each call replaces every setting.  Checked when
    ``pump()`` or ``wait()``/``quiesce()`` is entered: if the pinned queue
    has been non-empty for at least ``warn_ms``, warn once per episode via
    ``logging.getLogger("bocpy.pump")`` or ``on_starve(0, message)``; if for
    at least ``raise_ms``, call ``on_starve(1, message)`` (when given) and
    raise ``RuntimeError`` from that call, once per episode: the next
    ``pump()``/``wait()`` runs the queue as usual, so no behavior is lost.
    The message names the age: ``pinned-cown queue non-empty for <ms> ms
    with no pump() progress (depth=<n>)``.  Programs without pinned work
    never trigger it.

    Raises:
        RuntimeError: not on the main interpreter.
        TypeError: a threshold that is not a positive int or None;
            ``on_starve`` not callable.
        OverflowError: a threshold that is too large.
    """
    global _watchdog, _warned_episode, _raised_episode
    if not _core.is_main_interpreter():
        raise RuntimeError("set_pump_watchdog() can only be called from the main interpreter")
    warn = _bound("warn_ms", warn_ms) or None
    fail = _bound("raise_ms", raise_ms) or None
    if on_starve is not None and not callable(on_starve):
        raise TypeError("on_starve must be callable or None")
    _watchdog = (warn, fail, on_starve) if (warn or fail) else None
    _warned_episode = 0
    _raised_episode = 0


def _notify(on_starve: Callable[[int, str], None], severity: int, message: str) -> None:
    try:
        on_starve(severity, message)
    except Exception:
        sys.unraisablehook(_unraisable(sys.exc_info()[1], on_starve))


def _check_watchdog() -> None:
    global _warned_episode, _raised_episode
    if _watchdog is None:
        return
    depth, age_ms, since = _core.pinned_state()
    if depth == 0 or since == 0:
        return
    warn_ms, raise_ms, on_starve = _watchdog
    message = (f"pinned-cown queue non-empty for {age_ms} ms with no pump() "
               f"progress (depth={depth})")
    if raise_ms is not None and age_ms >= raise_ms and _raised_episode != since:
        # Once per episode: the caller sees the error, and its next pump()
        # or wait() drains the queue (nothing scheduled is ever skipped).
        _raised_episode = since
        _warned_episode = since
        if on_starve is not None:
            _notify(on_starve, ESCALATION, message)
        raise RuntimeError(message)
    if warn_ms is not None and age_ms >= warn_ms and _warned_episode != since:
        _warned_episode = since
        if on_starve is None:
            logging.getLogger("bocpy.pump").warning(message)
        else:
            _notify(on_starve, WARNING, message)


def _unraisable(exc: BaseException | None, obj: object) -> Any:
    class _U:
        exc_type = type(exc)
        exc_value = exc
        exc_traceback = exc.__traceback__ if exc is not None else None
        err_msg = "Exception ignored in bocpy pump watchdog callback"
        object = obj

    return _U


def pump(deadline_ms: int | None = None, max_behaviors: int | None = None,
         raise_on_error: bool = False) -> PumpResult:
    """Run the pinned behaviors that are ready, on this (main) thread, one
    at a time, then return; never waits for new work.

    ``deadline_ms`` is checked after each behavior (one that runs is never
    interrupted; at least one runs if any is ready); ``max_behaviors`` caps
    how many start.  Body exceptions go to the result cown; with
    ``raise_on_error=True`` the first one is also re-raised once the queue
    has been drained.  ``KeyboardInterrupt``/``SystemExit`` from a body
    propagate at once (that behavior is fully retired first).  When the
    runtime is not running there is nothing to run: returns
    ``PumpResult(0, False, 0)``.

    Raises:
        RuntimeError: not on the pinned thread (the main thread of the
            main interpreter: a worker or another thread); called from inside a
            pinned behavior (pump is not reentrant); the watchdog's
            ``raise_ms`` was exceeded.
        TypeError / OverflowError: bad bounds.
    """
    deadline = _bound("deadline_ms", deadline_ms)
    limit = _bound("max_behaviors", max_behaviors)
    if not _core.on_pinned_thread():
        _core.pump(0, 1, False)  # raises the RuntimeError naming the rule
    _check_watchdog()
    return PumpResult(*_core.pump(deadline, limit, bool(raise_on_error)))


def set_wait_pump_poll(ms: int = 50) -> None:
    """Longest sleep between pinned-queue checks in ``wait()``/``quiesce()``
    (they are also woken as soon as pinned work arrives).  A running wait
    picks the new value up on its next iteration.

    Raises:
        TypeError: ``ms`` is not a positive int.
    """
    if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
        raise TypeError(f"ms must be a positive int, not {ms!r}")
    if ms > _MAX_MS:
        raise OverflowError(f"ms is too large: {ms}")
    _core.set_wait_pump_poll(ms)
