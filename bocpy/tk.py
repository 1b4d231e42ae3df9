"""Tk integration: pump pinned behaviors from Tk's event loop with after().

    root = tkinter.Tk()
    bocpy.tk.pump_with(root)      # every 16 ms, at most 8 ms per round
    root.mainloop()

Pinned behaviors over widgets (``PinnedCown(label)``) then run on the Tk
thread, between events, without ever blocking the UI for long.
"""

from __future__ import annotations

from typing import Any

from ._pump import pump


def pump_with(root: Any, interval_ms: int = 16, deadline_ms: int = 8) -> None:
    """Pump pinned behaviors every ``interval_ms`` from ``root.after``, for
    as long as ``root`` lives.  Main thread only (as Tk itself)."""
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or interval_ms <= 0:
        raise TypeError("interval_ms must be a positive int")

    def tick() -> None:
        pump(deadline_ms=deadline_ms)
        root.after(interval_ms, tick)

    root.after(interval_ms, tick)
