"""Messaging (tagged queues) and the noticeboard: the Python-level names.

Most functions are the C implementations from :mod:`bocpy._core`; this
module adds the two constants (``TIMEOUT``, ``REMOVED``) and the two
functions that need them or the runtime (``notice_update``,
``notice_seed``).  See ``docs/messaging.md`` and ``docs/noticeboard.md``.
"""

from __future__ import annotations

from typing import Any, Callable

from . import _core
from ._lifecycle import start
from ._core import (
    drain,
    notice_delete,
    notice_read,
    notice_sync,
    notice_write,
    noticeboard,
    receive,
    send,
    set_tags,
)

__all__ = [
    "REMOVED",
    "TIMEOUT",
    "drain",
    "notice_delete",
    "notice_read",
    "notice_seed",
    "notice_sync",
    "notice_update",
    "notice_write",
    "noticeboard",
    "receive",
    "send",
    "set_tags",
]

#: The tag of what ``receive`` returns when it times out without ``after``.
TIMEOUT: str = "__timeout__"



class _Removed:
    """The type of ``REMOVED``: one instance per interpreter, which pickles
    as a reference to the module attribute, so a copy is ``REMOVED`` itself
    in whichever interpreter unpickles it."""

    __slots__ = ()

    def __new__(cls) -> "_Removed":
        try:
            return REMOVED
        except NameError:  # creating the one instance
            return super().__new__(cls)

    def __repr__(self) -> str:
        return "REMOVED"

    def __reduce__(self) -> str:
        return "REMOVED"

    def __copy__(self) -> "_Removed":
        return self

    def __deepcopy__(self, memo: Any) -> "_Removed":
        return self


#: Returned by a ``notice_update`` function to delete the key.
REMOVED = _Removed()


def notice_update(key: str, fn: Callable[[Any], Any], default: Any = None) -> None:
    """Atomically replace the value ``v`` of ``key`` (``default`` when the key
    is absent) by ``fn(v)``; if ``fn`` returns ``REMOVED`` the key is deleted.

    ``fn`` runs now, in the calling interpreter, while the noticeboard is
    locked: keep it short, and do not use the noticeboard or wait for
    behaviors inside it (``RuntimeError``).  An exception from ``fn``
    propagates and leaves the entry unchanged.

    Raises:
        TypeError: ``key`` is not a str; ``fn`` is not callable; the result
            cannot be sent between interpreters.
        ValueError: ``key`` is longer than 63 UTF-8 bytes or contains NUL.
        KeyError: the key is new and the board already holds 64 keys.
    """
    _core._notice_update(key, fn, default, REMOVED)


def notice_seed(key: str, value: Any) -> None:
    """Main interpreter only: write ``key`` now and start the runtime if it
    is not running.  Every behavior scheduled after this returns sees the
    value (until it is changed).

    Raises:
        RuntimeError: called from a worker.
        TypeError / ValueError / KeyError: as ``notice_write``.
    """
    if not _core.is_main_interpreter():
        raise RuntimeError("notice_seed() can only be called from the main interpreter")
    _core.notice_write(key, value)
    if not _core.running():
        start()
