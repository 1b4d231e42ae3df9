"""bocpy: Behavior-Oriented Concurrency for CPython.

Data lives in cowns; ``@when(a, b)`` schedules a behavior that runs once it
holds every cown it names, on a pool of worker sub-interpreters that each have
their own GIL.  See ``docs/`` for the model and the API reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    from . import _core
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess
    from ._source_tree import raise_if_source_tree

    raise_if_source_tree(_exc)
    raise
from ._abi import get_cmake_dir, get_include, get_pkgconfig_dir, get_sources
from ._core import Cown, EmptyTagsError, PinnedCown, TagCapacityError
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
from ._when import when, whencall
from ._errors import RemoteTraceback, UnpicklableException
from ._observe import Completed, as_completed, stats
# bocpy.map (issue 33): not in __all__, so that ``from bocpy import *``
# never shadows the builtin map.
from ._bulk import map  # noqa: A004
from .trace import trace
from ._lifecycle import WORKER_COUNT, Behaviors, WaitResult, quiesce, start, wait
# The exit sequence and the fork hooks register themselves on the main
# interpreter when imported (atexit, os.register_at_fork).
from ._exit import set_exit_grace
from . import _fork  # noqa: F401

__all__ = [
    "Behaviors",
    "Completed",
    "Cown",
    "EmptyTagsError",
    "Matrix",
    "PinnedCown",
    "PumpResult",
    "REMOVED",
    "RemoteTraceback",
    "TIMEOUT",
    "TagCapacityError",
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

    m = re.match(r"bocpy (\S+)", str(_core._abi_info()["version"]))
    return m.group(1) if m else "0.0.0+unknown"


__version__: str = _version()
