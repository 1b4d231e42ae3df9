"""Pinned cowns, pump(), the watchdog and event-loop integration."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import weakref

import pytest

import bocpy
from bocpy import Cown, PinnedCown, PumpResult, pump, quiesce, start, wait, when
from bocpy import set_pump_watchdog, set_wait_pump_poll

from conftest import run_example


class Box:
    def __init__(self) -> None:
        self.items: list[int] = []


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    set_pump_watchdog(None, None)
    yield
    wait()
    set_pump_watchdog(None, None)
    set_wait_pump_poll(50)


def test_identity_is_kept_across_acquires() -> None:
    box = Box()  # not picklable by value semantics: identity must hold
    p = PinnedCown(box)
    for i in range(3):
        @when(p)
        def _(p):
            p.value.items.append(id(p.value))

    wait()
    assert p.value is box
    assert box.items == [id(box)] * 3


def test_unpicklable_values_are_fine() -> None:
    p = PinnedCown(lambda: 42)

    @when(p)
    def r(p):
        return p.value()

    wait()
    assert r.value == 42


def test_acquisition_from_a_worker_is_refused() -> None:
    p = PinnedCown([1])
    holder = Cown(p)  # the handle travels; the value does not

    @when(holder)
    def r(holder):
        holder.value.acquire()

    @when(holder)
    def r2(holder):
        return holder.value.value

    wait()
    assert isinstance(r.value, RuntimeError) and "main interpreter" in str(r.value)
    assert isinstance(r2.value, RuntimeError) and "does not own" in str(r2.value)


def test_pinned_after_worker_and_worker_after_pinned() -> None:
    p = PinnedCown([])
    c = Cown(0)

    @when(c)
    def w1(c):
        c.value = 10
        return "worker"

    @when(c, p)
    def m(c, p):
        import bocpy

        p.value.append((c.value, bocpy._core.is_main_interpreter()))
        c.value += 1

    @when(c)
    def w2(c):
        import bocpy

        return (c.value, bocpy._core.is_main_interpreter())

    wait()
    assert p.value == [(10, True)]
    assert w2.value == (11, False)


def test_pump_runs_ready_pinned_behaviors() -> None:
    start(1)
    p = PinnedCown([])
    for i in range(5):
        @when(p)
        def _(p):
            p.value.append(i)

    assert pump() == PumpResult(5, False, 0)
    assert p.value == [0, 1, 2, 3, 4]
    assert pump() == PumpResult(0, False, 0)


def test_max_behaviors_and_deadline() -> None:
    start(1)
    p = PinnedCown([])
    for i in range(6):
        @when(p)
        def _(p):
            import time

            time.sleep(0.02)
            p.value.append(i)

    assert pump(max_behaviors=2) == PumpResult(2, False, 0)
    r = pump(deadline_ms=1)
    assert r.executed == 1 and r.deadline_reached is True
    r = pump()
    assert r == PumpResult(3, False, 0)
    assert p.value == list(range(6))


def test_body_exceptions_and_raise_on_error() -> None:
    start(1)
    p = PinnedCown(0)

    @when(p)
    def bad(p):
        raise ValueError("first")

    @when(p)
    def worse(p):
        raise KeyError("second")

    @when(p)
    def fine(p):
        p.value = 1

    with pytest.raises(ValueError, match="first"):
        pump(raise_on_error=True)
    assert p.value == 1  # drained before raising
    assert bad.exception is True and isinstance(worse.value, KeyError)

    @when(p)
    def again(p):
        raise ValueError("x")

    assert pump() == PumpResult(1, False, 1)


def test_keyboard_interrupt_propagates_from_pump() -> None:
    start(1)
    p = PinnedCown(0)

    @when(p)
    def stop(p):
        raise KeyboardInterrupt

    @when(p)
    def later(p):
        p.value = 2

    with pytest.raises(KeyboardInterrupt):
        pump()
    assert pump().executed == 1
    assert p.value == 2


def test_pump_is_not_reentrant() -> None:
    start(1)
    p = PinnedCown(0)

    @when(p)
    def r(p):
        import bocpy

        bocpy.pump()

    pump()
    assert isinstance(r.value, RuntimeError)
    assert "not reentrant" in str(r.value)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
def test_pump_bounds_are_validated(bad: object) -> None:
    with pytest.raises(TypeError):
        pump(deadline_ms=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pump(max_behaviors=bad)  # type: ignore[arg-type]


def test_pump_overflow() -> None:
    with pytest.raises(OverflowError):
        pump(deadline_ms=10**15)


def test_pump_from_a_worker_is_refused() -> None:
    @when()
    def r():
        import bocpy

        bocpy.pump()

    wait()
    assert isinstance(r.value, RuntimeError) and "main interpreter" in str(r.value)


def test_pump_when_stopped_is_a_no_op() -> None:
    assert pump() == PumpResult(0, False, 0)


def test_wait_and_quiesce_pump_by_themselves() -> None:
    p = PinnedCown(0)
    c = Cown(0)

    def chain(n: int) -> None:
        @when(c, p)
        def _(c, p):
            p.value += 1
            c.value += 1

    for _ in range(20):
        chain(0)
    quiesce()
    assert p.value == 20
    for _ in range(5):
        chain(0)
    wait()
    assert p.value == 25 and c.value == 25


def test_set_wait_pump_poll_validation() -> None:
    set_wait_pump_poll(5)
    for bad in (0, -3, True, 2.0, "50"):
        with pytest.raises(TypeError):
            set_wait_pump_poll(bad)  # type: ignore[arg-type]


def _starve(seconds: float) -> PinnedCown:
    start(1)
    p = PinnedCown(0)

    @when(p)
    def _(p):
        p.value = 1

    time.sleep(seconds)
    return p


def test_watchdog_warns_through_logging(caplog: pytest.LogCaptureFixture) -> None:
    set_pump_watchdog(warn_ms=20)
    _starve(0.08)
    with caplog.at_level(logging.WARNING, logger="bocpy.pump"):
        pump()
    assert any("pinned-cown queue non-empty" in r.message and "depth=1" in r.message
               for r in caplog.records)


def test_watchdog_callback() -> None:
    # API.md 8.2: on_starve(severity, message), 0 for the warning; the age
    # is in the message.
    calls = []
    set_pump_watchdog(warn_ms=20, on_starve=lambda sev, msg: calls.append((sev, msg)))
    _starve(0.08)
    pump()
    assert len(calls) == 1 and calls[0][0] == 0
    age = int(re.search(r"non-empty for (\d+) ms", calls[0][1]).group(1))
    assert age >= 20


def test_watchdog_raise() -> None:
    set_pump_watchdog(warn_ms=None, raise_ms=20)
    p = _starve(0.08)
    with pytest.raises(RuntimeError, match="pinned-cown queue non-empty"):
        pump()
    set_pump_watchdog(None, None)
    pump()
    assert p.value == 1


def test_watchdog_escalation_severity_and_no_starvation() -> None:
    # The escalation calls on_starve(1, message) and raises once per
    # episode; the next pump() (same settings) drains the queue.
    calls = []
    set_pump_watchdog(warn_ms=None, raise_ms=20,
                      on_starve=lambda sev, msg: calls.append((sev, msg)))
    p = _starve(0.08)
    with pytest.raises(RuntimeError, match="pinned-cown queue non-empty"):
        pump()
    assert [sev for sev, _ in calls] == [1]
    r = pump()
    assert r.executed == 1 and p.value == 1
    set_pump_watchdog(None, None)


def test_watchdog_quiet_without_pinned_work() -> None:
    calls = []
    set_pump_watchdog(warn_ms=1, raise_ms=2, on_starve=lambda a, m: calls.append(m))
    c = Cown(0)

    @when(c)
    def _(c):
        import time

        time.sleep(0.05)

    wait()
    pump()
    assert calls == []


def test_watchdog_validation() -> None:
    with pytest.raises(TypeError):
        set_pump_watchdog(warn_ms=0)
    with pytest.raises(TypeError):
        set_pump_watchdog(on_starve=42)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        set_pump_watchdog(warn_ms=10**16)


def test_no_pinned_value_left_alive_after_wait() -> None:
    class Thing:
        pass

    def scope() -> weakref.ref:
        t = Thing()
        p = PinnedCown(t)
        carrier = Cown([p])  # the handle travels to a worker and back

        @when(carrier)
        def _(carrier):
            carrier.value.append(len(carrier.value))

        @when(p)
        def _(p):
            p.value.touched = True

        return weakref.ref(t)

    ref = scope()
    wait()
    gc.collect()
    assert ref() is None


def test_asyncio_integration() -> None:
    from bocpy import aio

    async def main() -> tuple[int, str]:
        pumper = aio.start_pumping()
        c = Cown(20)

        @when(c)
        def r(c):
            return c.value + 1

        @when()
        def bad():
            raise ValueError("from a worker")

        value = await asyncio.wait_for(aio.result(r), 30)
        with pytest.raises(ValueError):
            await asyncio.wait_for(aio.result(bad), 30)
        pumper.cancel()
        return value, "done"

    assert asyncio.run(main()) == (21, "done")


TK_SCRIPT = r"""
import tkinter
import bocpy, bocpy.tk
from bocpy import Cown, PinnedCown, when

root = tkinter.Tk()
label = tkinter.Label(root, text="waiting")
label.pack()
pinned = PinnedCown(label)
result = Cown(None)

@when(result)
def work(result):
    result.value = sum(range(1000))

seen = PinnedCown([])

@when(result, pinned, seen)
def show(result, pinned, seen):
    pinned.value.config(text=f"sum={result.value}")
    seen.value.append(pinned.value.cget("text"))
    pinned.value.after(50, pinned.value.winfo_toplevel().destroy)

bocpy.tk.pump_with(root)
root.after(20000, root.destroy)  # safety net
root.mainloop()
bocpy.wait()
print("text", show.exception, seen.value)
"""


@pytest.mark.skipif(shutil.which("xvfb-run") is None,
                    reason="xvfb-run missing: scripts/test.sh installs Debian's xvfb")
def test_tk_integration_under_xvfb(tmp_path) -> None:
    script = tmp_path / "tk_app.py"
    script.write_text(TK_SCRIPT)
    out = subprocess.run(["xvfb-run", "-a", sys.executable, str(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                         | ({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}))
    assert out.returncode == 0, out.stderr
    assert "text False ['sum=499500']" in out.stdout


def test_pinned_frames_example() -> None:
    assert run_example("pinned_frames.py", timeout=120) == [
        "frames drawn: 20",
        "lines logged: 20, particles per frame: 400",
        "checksum: 71229",
    ]
