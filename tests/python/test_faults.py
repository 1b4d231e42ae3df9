"""Fault injection: every failure leaves every cown usable and its last good
value intact, releases everything, and reports a clear error."""

from __future__ import annotations

import threading

import pytest

from bocpy import Cown, start, wait, when
import bocpy

from conftest import run_python
from fault_helpers import FailsOnWorkers


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


def test_unpickling_failure_in_a_multi_cown_request() -> None:
    ok1, bad, ok2 = Cown([1]), Cown(FailsOnWorkers("precious")), Cown([2])

    @when(ok1, bad, ok2)
    def r(ok1, bad, ok2):
        ok1.value.append("should not run")

    @when(ok1, ok2)
    def after(ok1, ok2):
        ok1.value.append(3)
        return ok1.value + ok2.value

    @when(bad)
    def again(bad):
        return "should not run either"

    wait()
    assert r.exception is True
    assert "cannot rebuild on a worker" in str(r.value)
    assert after.value == [1, 3, 2]  # the other cowns were released
    assert again.exception is True  # a clear error, every time
    # No value was lost: the main interpreter can still rebuild it.
    assert bad.value.payload == "precious"


def test_pickling_failure_in_a_multi_cown_request() -> None:
    """A value that cannot travel rests in the worker that stored it (issue
    33): that behavior succeeds, the other cowns are released as usual, the
    worker still uses (and can mend) the value, and taking it anywhere else
    is a TypeError naming the cown (test_values_stay.py)."""
    start(1)  # one worker: `after` runs where b's value rests
    a, b, c = Cown(1), Cown("keep me"), Cown(3)

    @when(a, b, c)
    def r(a, b, c):
        import threading as t

        a.value = 10
        b.value = t.Lock()  # cannot travel: it stays live in the worker
        c.value = 30

    @when(a, b, c)
    def after(a, b, c):
        kind = type(b.value).__name__
        b.value = "mended"
        return (a.value, kind, c.value)

    wait()
    assert r.exception is False
    assert after.value == (10, "lock", 30)
    assert (a.value, b.value, c.value) == (10, "mended", 30)


def test_a_behavior_that_schedules_ten_thousand_more() -> None:
    counter = Cown(0)

    @when(counter)
    def spawner(counter):
        for _ in range(10_000):
            @when(counter)
            def _(counter):
                counter.value += 1

    wait()
    assert spawner.exception is False
    assert counter.value == 10_000


def test_module_that_fails_to_import_on_workers() -> None:
    # Imported here: importing it at the top would make this whole test
    # module unloadable on workers.
    import broken_on_workers

    c1, c2 = Cown("untouched"), Cown("untouched")
    r1 = broken_on_workers.schedule(c1)
    r2 = broken_on_workers.schedule(c2)
    wait()
    for r in (r1, r2):
        assert r.exception is True
        assert isinstance(r.value, RuntimeError)
        assert "broken_on_workers" in str(r.value)
    assert (c1.value, c2.value) == ("untouched", "untouched")


def test_scheduling_races_with_teardown() -> None:
    start(2)
    c = Cown(0)
    outcomes: list[object] = []

    def hammer() -> None:
        # Bounded: wait() is only guaranteed to finish once nobody schedules.
        for _ in range(3000):
            try:
                @when(c)
                def r(c):
                    c.value += 1

                outcomes.append(r)
            except RuntimeError as exc:
                outcomes.append(str(exc))

    t = threading.Thread(target=hammer)
    t.start()
    while True:  # tear down at least once while the hammer may be running
        wait()
        if not t.is_alive():
            break
    t.join()
    wait()
    ran = 0
    for o in outcomes:
        if isinstance(o, str):
            assert "shutting down" in o or "starting or stopping" in o
        elif o.exception:
            assert "dropped during stop()" in str(o.value)
        else:
            ran += 1
    assert len(outcomes) == 3000
    assert c.value == ran  # every behavior ran once or was dropped cleanly


SIGINT_SCRIPT = """
import os, signal, threading, time
from bocpy import Cown, when, wait

c = Cown(0)

@when(c)
def slow(c):
    import time
    time.sleep(1.0)
    c.value = 1

threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    wait()
    print("no interrupt")
except KeyboardInterrupt:
    print("interrupted")
wait()
print("value", c.value)
"""


def test_sigint_during_wait() -> None:
    out = run_python(SIGINT_SCRIPT, timeout=60)
    assert out.stdout.split() == ["interrupted", "value", "1"]
    assert out.returncode == 0


def test_exception_nobody_looked_at_is_reported() -> None:
    out = run_python(
        "from bocpy import when, wait\n"
        "def go():\n"
        "    @when()\n"
        "    def r():\n"
        "        raise ValueError('lost')\n"
        "go()\n"
        "wait()\n",
        timeout=60,
    )
    assert "behavior 'go.<locals>.r' raised an exception that nobody handled" in out.stderr
    assert "ValueError: lost" in out.stderr
    assert out.stderr.count("nobody handled") == 1
