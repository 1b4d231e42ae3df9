"""Nothing lost at exit, and cown cycles reclaimed by Python's own collector.

Two hooks of the main interpreter (issue #26, docs/reliability.md):

* :func:`release_at_exit`, the last step of bocpy's exit sequence (after the
  pool has ended and pinned values were destroyed): every cown main borrowed
  (read ``.value`` after ``wait()``) is given back and bocpy's caches drop
  what they hold (the ``@when`` plans and module-global cache hold module
  globals dicts such as ``__main__.__dict__``), so CPython's own module
  teardown then clears the script's globals: buffered files are flushed,
  ``__del__`` runs and every ``Foreign`` destructor is called once.
* :func:`install_gc_hook`: a ``gc.callbacks`` entry that runs the cown cycle
  collector after each full (generation 2) collection, so ``gc.collect()``
  reclaims cowns kept alive only by each other's values whether the runtime
  runs or not.
"""

from __future__ import annotations

import gc
from typing import Any

from . import _core

_installed = False


def release_at_exit() -> None:
    """Exit step: give back main's borrowed cowns and empty bocpy's caches,
    then let Python's collector (and the cown collector through its
    callback) reclaim what only those caches kept alive."""
    _core._exit_release()
    from . import _worker

    # Pinned behaviors ran with the real modules' namespaces (__main__'s
    # dict among them), cached by the loader on the main interpreter too.
    _worker._namespaces.clear()
    _worker._failures.clear()
    gc.collect()


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    """``gc.callbacks`` entry: after a full collection, collect cown cycles.
    Never raises (an exception in a gc callback is reported as unraisable)."""
    if phase != "stop" or info.get("generation") != 2:
        return
    try:
        _core._collect_cycles_gc()
    except Exception:  # noqa: BLE001 - never fail Python's collection
        pass


def install_gc_hook() -> None:
    """Registers :func:`_on_gc` once (main interpreter)."""
    global _installed
    if not _installed:
        _installed = True
        gc.callbacks.append(_on_gc)
