"""Table-driven bad input over the public API: each case raises the
documented exception type with a message naming the problem, and leaves the
runtime usable."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

import bocpy
from bocpy import (Behaviors, Cown, PinnedCown, pump, quiesce, set_pump_watchdog,
                   set_wait_pump_poll, start, wait, when, whencall)


def _body(c):
    return c


CASES: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    ("Cown(lock)", lambda: Cown(threading.Lock()), TypeError, "lock"),
    ("Cown(value=..., extra)", lambda: Cown(1, 2), TypeError, "at most 1"),
    ("PinnedCown(two args)", lambda: PinnedCown(1, 2), TypeError, "at most 1"),
    ("when(int)", lambda: when(1), TypeError, "can only schedule over cowns"),
    ("when(str)", lambda: when("c"), TypeError, "can only schedule over cowns"),
    ("when([int])", lambda: when([1])(_body), TypeError, "can only schedule over cowns"),
    ("when(...)(not a function)", lambda: when()(42), TypeError, "decorates functions"),
    ("whencall(name)", lambda: whencall("_body", []), TypeError, "function itself"),
    ("whencall(args=cown)", lambda: whencall(_body, Cown(1)), TypeError, "list or tuple"),
    ("start(str)", lambda: start("2"), TypeError, "worker_count must be an int"),
    ("start(bool)", lambda: start(True), TypeError, "worker_count must be an int"),
    ("start(0)", lambda: start(0), ValueError, "at least 1"),
    ("start(too many)", lambda: start(bocpy._lifecycle.max_workers() + 1), ValueError,
     "worker_count must be at most .* BOCPY_MAX_WORKERS"),
    ("start(module=str)", lambda: start(1, "mod"), TypeError, "module must be"),
    ("pump(deadline 0)", lambda: pump(deadline_ms=0), TypeError, "deadline_ms"),
    ("pump(max -1)", lambda: pump(max_behaviors=-1), TypeError, "max_behaviors"),
    ("pump(max True)", lambda: pump(max_behaviors=True), TypeError, "max_behaviors"),
    ("pump(huge)", lambda: pump(deadline_ms=2**62), OverflowError, "too large"),
    ("watchdog(0)", lambda: set_pump_watchdog(0), TypeError, "warn_ms"),
    ("watchdog(raise -5)", lambda: set_pump_watchdog(10, -5), TypeError, "raise_ms"),
    ("watchdog(on_starve=1)", lambda: set_pump_watchdog(on_starve=1), TypeError, "callable"),
    ("wait_pump_poll(0)", lambda: set_wait_pump_poll(0), TypeError, "positive int"),
    ("wait_pump_poll(str)", lambda: set_wait_pump_poll("5"), TypeError, "positive int"),
    ("exit_grace(str)", lambda: bocpy.set_exit_grace("1"), TypeError, "must be a number"),
    ("exit_grace(-1)", lambda: bocpy.set_exit_grace(-1), ValueError, ">= 0"),
    ("exit_grace(nan)", lambda: bocpy.set_exit_grace(float("nan")), ValueError, ">= 0"),
    ("cown < int", lambda: Cown(1) < 1, TypeError, "not supported"),
    ("del value", lambda: delattr(Cown(1), "value"), TypeError, "cannot be deleted"),
]


@pytest.mark.parametrize("name,call,exc,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name: str, call: Callable[[], Any], exc: type[BaseException],
                   match: str) -> None:
    with pytest.raises(exc, match=match):
        call()
    # The runtime still works afterwards.
    c = Cown(1)

    @when(c)
    def r(c):
        return c.value + 1

    wait()
    assert r.value == 2


RUNNING_CASES: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    ("wait(nan)", lambda: wait(float("nan")), ValueError, "NaN"),
    ("wait(str)", lambda: wait("1"), TypeError, "timeout must be a number"),
    ("quiesce(nan)", lambda: quiesce(float("nan")), ValueError, "NaN"),
    ("quiesce([])", lambda: quiesce([]), TypeError, "timeout must be a number"),
    ("start(other count)", lambda: start(bocpy._core.worker_count() + 1), RuntimeError,
     "already running"),
]


@pytest.mark.parametrize("name,call,exc,match", RUNNING_CASES,
                         ids=[c[0] for c in RUNNING_CASES])
def test_bad_input_while_running(name: str, call: Callable[[], Any],
                                 exc: type[BaseException], match: str) -> None:
    start(1)
    try:
        with pytest.raises(exc, match=match):
            call()
        assert bocpy._core.running()
    finally:
        wait()


WORKER_CASES = [
    ("wait()", "main interpreter"),
    ("quiesce()", "main interpreter"),
    ("start()", "main interpreter"),
    ("pump()", "main interpreter"),
    ("set_pump_watchdog()", "main interpreter"),
    ("PinnedCown(1)", "main interpreter"),
]


@pytest.mark.parametrize("call,match", WORKER_CASES, ids=[c[0] for c in WORKER_CASES])
def test_wrong_interpreter(call: str, match: str) -> None:
    @when()
    def r(call=call):
        import bocpy

        eval("bocpy." + call)

    wait()
    assert r.exception is True
    assert isinstance(r.value, RuntimeError)
    assert match in str(r.value)


def test_worker_count_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOCPY_MAX_WORKERS", raising=False)
    cpus = bocpy._core.cpu_count()
    assert bocpy._lifecycle.max_workers() == max(64, 8 * cpus)
    with pytest.raises(ValueError, match=f"must be at most {max(64, 8 * cpus)}, not 2400000"):
        start(2400000)  # a typo must not start millions of interpreters
    monkeypatch.setenv("BOCPY_MAX_WORKERS", "2")
    with pytest.raises(ValueError, match="worker_count must be at most 2, not 3"):
        start(3)
    for bad in ("abc", "0", "-4", "1.5"):
        monkeypatch.setenv("BOCPY_MAX_WORKERS", bad)
        with pytest.raises(ValueError, match=f"BOCPY_MAX_WORKERS must be an integer >= 1, "
                           f"not '{bad}'"):
            start(1)
    # Raising the bound lets a larger count start.
    wanted = max(64, 8 * cpus) + 1
    monkeypatch.setenv("BOCPY_MAX_WORKERS", str(wanted))
    assert bocpy._lifecycle.max_workers() == wanted
    monkeypatch.setenv("BOCPY_MAX_WORKERS", "3")
    assert not bocpy._core.running()
    start(3)
    try:
        assert bocpy._core.worker_count() == 3
    finally:
        wait()


def test_a_default_count_over_the_bound_is_refused() -> None:
    import textwrap

    from conftest import run_python
    proc = run_python(textwrap.dedent("""
        from bocpy import Cown, when
        try:
            @when(Cown(1))
            def _(c):
                pass
        except ValueError as exc:
            print(exc)
    """), env={"BOCPY_WORKERS": "3", "BOCPY_MAX_WORKERS": "2"})
    assert "worker_count must be at most 2, not 3" in proc.stdout, proc


def test_behaviors_class_round_trip() -> None:
    with Behaviors(1) as b:
        c = Cown(0)

        @when(c)
        def _(c):
            c.value = 5

        assert b.quiesce(30) is True
    assert c.value == 5
