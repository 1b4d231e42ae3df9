"""bocpy around ``os.fork()`` (main interpreter; hooks registered with
``os.register_at_fork`` when bocpy is imported there).

Sub-interpreters do not survive fork() (CPython clears them in the child and
crashes): the worker interpreters are ended first.  A stopped runtime's
parked pool simply goes (the next start() makes new ones); a running one is
paused: workers finish the body they run, their interpreters end, and the
parent makes new ones after the fork.  The child of a running runtime
cannot use it (a clear RuntimeError).
"""

from __future__ import annotations

import os
import threading

from . import _core, _lifecycle, _signals

#: The parent took the lifecycle lock before this fork.
_fork_locked = False


def _before_fork() -> None:
    global _fork_locked
    lock = _lifecycle.lock
    _fork_locked = lock is not None and lock.acquire(blocking=False)
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
            _lifecycle.lock.release()  # type: ignore[union-attr]


def _after_fork_child() -> None:
    global _fork_locked
    _fork_locked = False
    # Whoever held the lifecycle lock does not exist here.
    _lifecycle.lock = threading.Lock()
    _core._after_fork_child()
    _signals.forget_in_child()


if _lifecycle.IS_MAIN:
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
