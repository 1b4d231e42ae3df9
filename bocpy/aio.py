"""asyncio integration: pump pinned behaviors from a running event loop and
await result cowns from coroutines.

    async def main():
        pumper = bocpy.aio.start_pumping()       # a task on this loop
        r = compute(...)                          # a result Cown from @when
        value = await bocpy.aio.result(r)         # suspends, never blocks
        pumper.cancel()

Awaiting works through the pinned-cown machinery itself: ``result(c)``
schedules a pinned behavior over ``c`` and a ``PinnedCown`` holding an
``asyncio.Future``; the pump task runs it on the loop's thread once ``c``
is ready, and it completes the future.  The loop must run on the pinned
thread (the main thread of the main interpreter): pump() raises
RuntimeError anywhere else.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from . import _core
from ._pump import pump
from ._when import when

R = TypeVar("R")


async def pump_forever(interval: float = 0.005, deadline_ms: int = 10) -> None:
    """Pump pinned behaviors every ``interval`` seconds until cancelled,
    spending at most about ``deadline_ms`` per round."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    while True:
        pump(deadline_ms=deadline_ms)
        await asyncio.sleep(interval)


def start_pumping(interval: float = 0.005, deadline_ms: int = 10) -> asyncio.Task[None]:
    """Start :func:`pump_forever` as a task of the running loop."""
    return asyncio.get_running_loop().create_task(pump_forever(interval, deadline_ms))


def _deliver(c: _core.Cown[Any], box: _core.PinnedCown[Any]) -> None:
    @when(c, box)
    def _(c: Any, box: Any) -> None:
        future = box.value
        if not future.done():
            if c.exception:
                future.set_exception(c.value)
            else:
                future.set_result(c.value)


async def result(c: _core.Cown[R]) -> R:
    """Await the value of cown ``c`` once every behavior scheduled on it so
    far has run (typically a result cown).  A stored exception is raised.
    Needs the loop to pump (see :func:`start_pumping`)."""
    if not isinstance(c, _core.Cown):
        raise TypeError(f"result() awaits a Cown, not {type(c).__name__}")
    future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
    _deliver(c, _core.PinnedCown(future))
    return await future
