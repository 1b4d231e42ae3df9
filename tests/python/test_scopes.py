"""Structured scopes (issue #32): isolation, transitive membership, nesting,
grouped errors, cancellation, timeouts, Ctrl-C, stats, trace and
as_completed within a scope.

Behaviors that must wait for the test use messages (``receive`` with a
generous timeout) as gates, never sleeps; nothing here asserts a latency.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

import bocpy

if sys.version_info < (3, 11):  # the PEP 654 backport bocpy depends on there
    from exceptiongroup import ExceptionGroup
from bocpy import (TIMEOUT, CancelledError, Cown, PinnedCown, Scope, as_completed,
                   cancel, receive, scope, send, start, wait, when)
from bocpy.testing import check_runs

import prop_behaviors

#: Generous bound for anything that should happen "soon" on a busy machine.
LONG = 60.0


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    start(3)  # a gate may block one worker; the others keep going
    yield
    wait()


def drain(tag: str) -> None:
    while receive(tag, 0)[0] != TIMEOUT:
        pass


def gate(c: Cown, tag: str) -> Cown:
    """A behavior that holds ``c`` until ``tag`` gets a message (or LONG
    seconds pass): what is scheduled on ``c`` after it stays pending."""

    @when(c)
    def g(c):
        from bocpy import receive, send

        send(tag + "-held", True)
        receive(tag, 60)
        return "gate"

    return g


def hold(c: Cown, tag: str) -> Cown:
    """``gate``, returning once the gate has started (so it is not pending
    any more and a cancellation cannot drop it)."""
    drain(tag)
    drain(tag + "-held")
    g = gate(c, tag)
    assert receive(tag + "-held", LONG)[0] == tag + "-held"
    return g


def ticker(c: Cown, tag: str) -> None:
    """A stream that reschedules itself until ``tag`` gets a message."""

    @when(c)
    def tick(c):
        from bocpy import TIMEOUT, receive

        c.value += 1
        if receive(tag, 0)[0] == TIMEOUT:
            ticker(c, tag)


# ---- waiting for exactly one's own work ---------------------------------------


def test_scope_waits_for_its_behaviors_and_counts_them() -> None:
    c = Cown(0)
    with scope() as s:
        assert isinstance(s, Scope) and s.entered
        for _ in range(20):
            @when(c)
            def inc(c):
                c.value += 1
    assert s.ended and s.in_flight == 0
    st = s.stats()
    assert st["scheduled"] == 20 and st["finished"] == 20
    assert st["failed"] == 0 and st["cancelled"] == 0
    assert bocpy.stats(scope=s) == s.stats()
    wait()
    assert c.value == 20


def test_isolation_two_threads_while_a_third_stream_runs() -> None:
    drain("iso-stop")
    stream = Cown(0)
    ticker(stream, "iso-stop")
    done: dict[str, dict] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            c = Cown(0)
            with scope() as s:
                for _ in range(30):
                    @when(c)
                    def inc(c):
                        c.value += 1
                @when(c)
                def report(c):
                    from bocpy import send

                    send("iso-" + name, c.value)
            done[name] = s.stats()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LONG)
    assert not any(t.is_alive() for t in threads), "a scope did not end"
    assert errors == []
    # Both scopes ended while the third stream was still running.
    assert bocpy.stats()["in_flight"] >= 1
    for name in "ab":
        assert done[name]["finished"] == 31 and done[name]["in_flight"] == 0
        assert receive("iso-" + name, 0) == ("iso-" + name, 30)
    send("iso-stop", True)
    wait()
    assert stream.value >= 1


def test_transitive_spawns_across_workers_and_pinned_belong_to_the_scope() -> None:
    drain("trans")
    p = PinnedCown([])
    with scope() as s:
        @when(Cown(0))
        def first(c):
            from bocpy import Cown as C, when as w

            @w(p)
            def on_main(p):
                p.value.append("pinned")

                @w(C(1))
                def last(c):
                    from bocpy import send

                    send("trans", "last")
    # Leaving the block ran the pinned behavior here and waited for the
    # worker behavior it scheduled: the message is already there.
    assert receive("trans", 0) == ("trans", "last")
    assert s.stats()["scheduled"] == 3 and s.stats()["finished"] == 3
    wait()
    assert p.value == ["pinned"]


def test_scope_on_another_thread_waits_for_main_to_run_pinned_work() -> None:
    p = PinnedCown(0)
    finished = threading.Event()
    seen: list[dict] = []

    def body() -> None:
        with scope() as s:
            @when(p)
            def bump(p):
                p.value += 1
        seen.append(s.stats())
        finished.set()

    t = threading.Thread(target=body)
    t.start()
    end = time.monotonic() + LONG
    while not finished.is_set() and time.monotonic() < end:
        if bocpy._core.running():
            bocpy.pump()
        finished.wait(0.01)
    t.join(LONG)
    assert finished.is_set()
    assert seen[0]["finished"] == 1
    wait()
    assert p.value == 1


def test_nesting_inner_behaviors_count_in_the_outer_scope() -> None:
    drain("nest-go")
    c = Cown(0)
    with scope() as outer:
        g = gate(c, "nest-go")
        with scope() as inner:
            @when(c)
            def inner_b(c):
                c.value += 1
            assert inner.in_flight == 1
            assert outer.in_flight == 2  # the gate and inner_b
            send("nest-go", True)
        assert inner.in_flight == 0
        @when(c)
        def outer_b(c):
            c.value += 10
    assert outer.stats()["scheduled"] == 2  # gate, outer_b: inner_b is inner's
    assert inner.stats()["scheduled"] == 1
    assert outer.id != inner.id
    del g
    wait()
    assert c.value == 11


def test_a_behavior_belongs_to_the_innermost_scope_of_its_scheduler() -> None:
    with scope() as outer:
        with scope() as inner:
            @when(Cown(0))
            def spawner(c):
                from bocpy import Cown as C, when as w

                @w(C(0))
                def child(c):
                    pass
        assert inner.stats()["scheduled"] == 2
    assert outer.stats()["scheduled"] == 0


def test_scope_wait_timeout_and_second_wait() -> None:
    drain("to-go")
    c = Cown(0)
    with scope() as s:
        gate(c, "to-go")
        with pytest.raises(TimeoutError):
            s.wait(timeout=0.2)
        assert s.in_flight == 1
        send("to-go", True)
        s.wait(timeout=LONG)
        assert s.in_flight == 0
        @when(c)
        def again(c):
            c.value = 5
        s.wait()
    wait()
    assert c.value == 5


# ---- errors ----------------------------------------------------------------------


def test_unhandled_errors_are_raised_as_an_exception_group() -> None:
    c = Cown(0)
    with pytest.raises(ExceptionGroup) as info:
        with scope() as s:
            @when(c)
            def fails_value(c):
                raise ValueError("first")

            @when(Cown(0))
            def fails_key(c):
                raise KeyError("second")

            @when(Cown(0))
            def handled(c):
                raise OSError("handled")

            @when(handled)
            def reads(r):
                assert isinstance(r.value, OSError)  # reading handles it

            @when(c)
            def fine(c):
                c.value = 1
    eg = info.value
    kinds = sorted(type(e).__name__ for e in eg.exceptions)
    assert kinds == ["KeyError", "ValueError"]
    assert f"scope #{s.id}" in str(eg)
    for e in eg.exceptions:
        remote = e.__cause__
        assert isinstance(remote, bocpy.RemoteTraceback)
        assert remote.behavior in {"test_unhandled_errors_are_raised_as_an_exception_group."
                                   "<locals>.fails_value",
                                   "test_unhandled_errors_are_raised_as_an_exception_group."
                                   "<locals>.fails_key"}
        assert "Traceback" in remote.text
    assert s.stats()["failed"] == 3
    wait()
    assert c.value == 1


def test_grouped_errors_are_not_reported_again_at_exit() -> None:
    code = textwrap.dedent("""
        import bocpy
        from bocpy import Cown, scope, when
        try:
            with scope():
                @when(Cown(0))
                def boom(c):
                    raise ValueError("grouped")
        except Exception as eg:
            print("caught", len(eg.exceptions))
        @when(Cown(0))
        def lost(c):
            raise KeyError("outside")
        bocpy.wait()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "BOCPY_WORKERS": "2"},
                          cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "caught 1"
    assert "grouped" not in proc.stderr
    assert "outside" in proc.stderr  # the unscoped one is still reported


def test_block_exception_cancels_and_is_raised_unchanged() -> None:
    drain("blk-go")
    c = Cown(0)
    with pytest.raises(ZeroDivisionError):
        with scope() as s:
            hold(c, "blk-go")
            @when(c)
            def never(c):
                c.value = 99
            send("blk-go", True)
            1 / 0
    assert s.cancelled
    wait()
    assert c.value == 0


def test_block_exception_and_behavior_errors_form_one_group() -> None:
    drain("both-go")
    c = Cown(0)
    with pytest.raises(ExceptionGroup) as info:
        with scope():
            @when(Cown(0))
            def boom(x):
                raise ValueError("behavior")
            # Wait for the behavior's failure before raising in the block.
            @when(boom)
            def signal_done(r):
                from bocpy import send
                send("both-go", True)
            assert receive("both-go", LONG)[0] == "both-go"
            raise LookupError("block")
    assert [type(e) for e in info.value.exceptions] == [LookupError, ValueError]
    del c


# ---- cancellation ---------------------------------------------------------------


def test_cancel_drops_pending_behaviors_and_keeps_cown_order() -> None:
    drain("cx-go")
    c = Cown([])
    with scope() as s:
        hold(c, "cx-go")
        results = []
        for i in range(6):
            @when(c)
            def step(c, i=i):
                c.value = c.value + [i]
                return i
            results.append(step)
        assert s.cancel() is True
        assert s.cancel() is False
        send("cx-go", True)
    st = s.stats()
    assert st["cancelled"] == 6 and st["finished"] == 1
    wait()
    assert c.value == []
    for r in results:
        assert r.exception is True
        assert isinstance(r.value, CancelledError)
        assert cancel(r) is True  # already cancelled


def test_cancel_one_behavior_through_its_result() -> None:
    drain("one-go")
    c = Cown([])
    with scope() as s:
        g = hold(c, "one-go")
        rs = []
        for i in range(5):
            @when(c)
            def step(c, i=i):
                c.value = c.value + [i]
                return i
            rs.append(step)
        assert cancel(rs[2]) is True
        assert cancel(rs[2]) is True
        send("one-go", True)
    assert s.stats()["cancelled"] == 1
    wait()
    assert c.value == [0, 1, 3, 4]  # the others in their order
    assert cancel(rs[0]) is False  # it ran
    assert cancel(g) is False
    assert cancel(Cown(1)) is False  # not a result
    assert isinstance(rs[2].value, CancelledError)
    assert rs[3].value == 3


def test_cancel_outside_any_scope() -> None:
    drain("free-go")
    c = Cown(0)
    hold(c, "free-go")
    @when(c)
    def dropped(c):
        c.value = 1
    assert cancel(dropped) is True
    send("free-go", True)
    wait()
    assert c.value == 0
    assert isinstance(dropped.value, CancelledError)


def test_cancel_on_error_drops_the_rest_and_raises_the_first_error() -> None:
    c = Cown([])
    with pytest.raises(ExceptionGroup) as info:
        with scope(cancel_on_error=True) as s:
            assert s.cancel_on_error
            @when(c)
            def boom(c):
                raise RuntimeError("first failure")
            for i in range(5):
                @when(c)
                def later(c, i=i):
                    c.value = c.value + [i]
    assert [str(e) for e in info.value.exceptions] == ["first failure"]
    assert s.stats()["cancelled"] == 5
    wait()
    assert c.value == []


def test_cancelling_an_outer_scope_cancels_nested_work() -> None:
    drain("nc-go")
    c = Cown(0)
    with scope() as outer:
        hold(c, "nc-go")
        with scope() as inner:
            @when(c)
            def b(c):
                c.value = 1
            outer.cancel()
            assert inner.cancelled
            send("nc-go", True)
    assert inner.stats()["cancelled"] == 1
    wait()
    assert c.value == 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_cancellations_keep_the_rest_serializable(seed: int) -> None:
    rng = random.Random(seed)
    n_cowns = 6
    drain("rnd-go")
    drain("rnd-held")
    cowns = [Cown((k, 0)) for k in range(n_cowns)]
    with scope() as s:
        g = None
        @when(cowns)
        def hold_all(cs):
            from bocpy import receive, send
            send("rnd-held", True)
            receive("rnd-go", 60)
        g = hold_all
        assert receive("rnd-held", LONG)[0] == "rnd-held"
        plan = []
        for i in range(60):
            single = rng.randrange(n_cowns)
            group = [rng.randrange(n_cowns) for _ in range(rng.randrange(3))]
            r = prop_behaviors.visit(i, cowns[single], [cowns[k] for k in group])
            plan.append((i, {single, *group}, r))
        cancelled = {i for i, _, _ in plan if rng.random() < 0.3}
        for i, _, r in plan:
            if i in cancelled:
                assert cancel(r) is True
        send("rnd-go", True)
    assert s.stats()["cancelled"] == len(cancelled)
    wait()
    del g
    runs = {}
    for i, _, r in plan:
        if i in cancelled:
            assert isinstance(r.value, CancelledError)
            continue
        assert r.exception is False, r.value
        bid, record = r.value
        runs[bid] = record
    order = [(i, req) for i, req, _ in plan if i not in cancelled]
    counts = check_runs(runs, [order])
    for k in range(n_cowns):
        expected = sum(1 for i, req, _ in plan if i not in cancelled and k in req)
        assert counts.get(k, 0) == expected
        assert cowns[k].value == (k, expected)


# ---- as_completed, stats, trace -------------------------------------------------


def test_as_completed_within_a_scope_reports_cancelled_results() -> None:
    drain("ac-go")
    c = Cown(0)
    with scope() as s:
        hold(c, "ac-go")
        rs = []
        for i in range(4):
            @when(c)
            def val(c, i=i):
                return i * i
            rs.append(val)
        cancel(rs[1])
        send("ac-go", True)
        got = {}
        for done in as_completed(rs, timeout=LONG):
            got[rs.index(done.cown)] = done
    assert s.in_flight == 0
    assert got[0].value == 0 and got[2].value == 4 and got[3].value == 9
    assert got[1].exception and isinstance(got[1].value, CancelledError)
    with pytest.raises(CancelledError):
        got[1].result()


def test_trace_filters_by_scope(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    with bocpy.trace(path) as tr:
        with scope() as a:
            @when(Cown(0))
            def in_a(c):
                pass
        with scope() as b:
            for _ in range(2):
                @when(Cown(0))
                def in_b(c):
                    pass
        wait()
    slices = [e for e in tr.events if e.get("ph") == "X"]
    assert {e["args"].get("scope") for e in slices} == {a.id, b.id}
    path2 = tmp_path / "t2.json"
    with bocpy.trace(path2, scope=b) as tr2:
        with scope() as other:
            @when(Cown(0))
            def elsewhere(c):
                pass
        assert other.id != b.id
        wait()
    assert [e for e in tr2.events if e.get("ph") == "X"] == []
    # The filter by id keeps only that scope's slices.
    c = scope()
    with bocpy.trace(tmp_path / "t3.json", scope=c.id) as tr3:
        with c:
            for _ in range(3):
                @when(Cown(0))
                def mine(x):
                    pass
        with scope():
            @when(Cown(0))
            def not_mine(x):
                pass
        wait()
    names = [e["name"] for e in tr3.events if e.get("ph") == "X"]
    assert len(names) == 3 and all(n.endswith(".mine") for n in names), names
    assert json.loads((tmp_path / "t3.json").read_text())["traceEvents"]


# ---- bad input --------------------------------------------------------------------


def test_bad_input_is_a_clear_exception() -> None:
    with pytest.raises(TypeError):
        scope(True)  # type: ignore[misc]
    s = scope()
    with s:
        with pytest.raises(RuntimeError, match="already entered"):
            s.__enter__()
        with pytest.raises(ValueError, match="timeout"):
            s.wait(-1)
        with pytest.raises(TypeError):
            s.wait("soon")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="NaN"):
            s.wait(float("nan"))
    with pytest.raises(RuntimeError, match="has ended"):
        s.__enter__()
    with pytest.raises(TypeError, match="result Cown"):
        cancel(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Scope"):
        bocpy.stats(scope=3)
    with pytest.raises(TypeError, match="scope"):
        bocpy.trace("x.json", scope="s")
    a = scope()
    a.__enter__()
    made_inside = scope()
    a.__exit__(None, None, None)
    with pytest.raises(RuntimeError, match="thread, and inside the scope"):
        made_inside.__enter__()


def test_leaving_scopes_out_of_order_is_refused() -> None:
    outer = scope()
    outer.__enter__()
    inner = scope()
    inner.__enter__()
    with pytest.raises(RuntimeError, match="reverse order"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)


def test_a_scope_cannot_be_entered_inside_a_behavior() -> None:
    @when(Cown(0))
    def inside(c):
        import bocpy

        with bocpy.scope():
            pass

    wait()
    assert inside.exception is True
    assert isinstance(inside.value, RuntimeError)
    assert "not reentrant" in str(inside.value)


# ---- Ctrl-C -----------------------------------------------------------------------


CTRL_C = """
    import bocpy
    from bocpy import Cown, scope, when

    c = Cown(0)
    with scope() as s:
        @when(c)
        def slow(c):
            from bocpy import receive
            receive("never", 60)
        for _ in range(3):
            @when(c)
            def queued(c):
                pass
        print("READY", flush=True)
        s.wait()
"""


CTRL_C_THREAD = """
    import threading
    from bocpy import Cown, scope, when

    def body():
        with scope():
            @when(Cown(0))
            def slow(c):
                from bocpy import receive
                receive("never", 60)
            print("READY", flush=True)  # scheduled: the block's end waits

    th = threading.Thread(target=body)
    th.start()
    th.join()
"""


@pytest.mark.parametrize("where", ["wait", "exit", "thread"])
def test_ctrl_c_while_waiting_on_a_scope_behaves_as_for_wait(where: str) -> None:
    source = {"wait": CTRL_C, "exit": CTRL_C.replace("        s.wait()\n", ""),
              "thread": CTRL_C_THREAD}[where]
    path = Path(tempfile.mkdtemp()) / "prog.py"
    path.write_text(textwrap.dedent(source))
    proc = subprocess.Popen([sys.executable, str(path)], cwd=path.parent,
                            env={**os.environ, "BOCPY_WORKERS": "2", "BOCPY_EXIT_GRACE": "1",
                                 "PYTHONFAULTHANDLER": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"READY"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=LONG)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"still running after SIGINT:\n{err.decode()[-4000:]}")
    text = err.decode()
    assert proc.returncode == -signal.SIGINT, text
    assert "KeyboardInterrupt" in text, text
    assert "bocpy: interrupted by SIGINT" in text, text


# ---- the C ABI (1.2): scheduling into the caller's scope from another thread ------


def test_abi_scope_capture_lets_another_thread_schedule_into_the_scope() -> None:
    from test_abi_support import abi

    t = abi()
    assert t.header.minor >= 2
    assert t.capability(b"scopes") == 1
    assert t.scope_capture() is None  # no current scope here
    assert t.scope_cancelled(None) == 0
    drain("abi-go")
    drain("abi-done")
    c = Cown(0)
    errors: list[BaseException] = []
    captured: list[int] = []
    ready = threading.Event()

    def plugin_thread() -> None:
        # What a plugin's completion thread does: enter the captured scope,
        # schedule, restore, release the capture.
        try:
            assert receive("abi-go", LONG)[0] == "abi-go"
            prev = t.scope_enter(captured[0])
            assert prev is None
            try:
                @when(c)
                def from_plugin(c):
                    from bocpy import send
                    c.value += 1
                    send("abi-done", c.value)
            finally:
                assert t.scope_enter(prev) == captured[0]
            t.scope_release(captured[0])
        except BaseException as e:
            errors.append(e)

    th = threading.Thread(target=plugin_thread)
    th.start()
    with scope() as s:
        captured.append(t.scope_capture())
        assert captured[0] is not None
        assert s.in_flight == 1  # the capture itself
        assert t.scope_cancelled(None) == 0
        assert t.scope_cancelled(captured[0]) == 0
        send("abi-go", True)
    # The scope waited for the capture, so the behavior scheduled through it
    # had run when the block ended.
    th.join(LONG)
    assert errors == []
    assert receive("abi-done", 0) == ("abi-done", 1)
    assert s.stats()["scheduled"] == 1 and s.stats()["finished"] == 1


def test_abi_scope_cancelled_sees_an_enclosing_cancel() -> None:
    from test_abi_support import abi

    t = abi()
    with scope() as outer:
        with scope():
            cap = t.scope_capture()
            assert t.scope_cancelled(cap) == 0
            outer.cancel()
            assert t.scope_cancelled(cap) == 1
            assert t.scope_cancelled(None) == 1
            t.scope_release(cap)
    t.scope_release(None)  # ignored


def test_a_scope_object_dropped_on_another_thread_while_entered_is_safe() -> None:
    # The entering thread's thread-local keeps the scope record alive: what
    # it schedules afterwards still runs (ASan checks the memory).
    drain("drop-done")
    holder: list[Scope] = []
    entered, dropped, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def body() -> None:
        try:
            holder.append(scope())
            holder[0].__enter__()
            entered.set()
            assert dropped.wait(LONG)

            @when(Cown(0))
            def after(c):
                from bocpy import send
                send("drop-done", True)
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=body)
    t.start()
    assert entered.wait(LONG)
    holder.clear()  # the last reference to the Scope object: freed here
    dropped.set()
    assert done.wait(LONG)
    t.join(LONG)
    assert errors == []
    assert receive("drop-done", LONG) == ("drop-done", True)


def _random_scope_round(rng: random.Random, shared: list[Cown]) -> dict:
    """One scope of random work: behaviors over random shared cowns, some
    failing, some spawning children; random cancels and timed waits."""
    with scope(cancel_on_error=rng.random() < 0.3) as s:
        results = []
        for _ in range(rng.randrange(1, 12)):
            picks = rng.sample(shared, rng.randrange(1, 3))
            fail = rng.random() < 0.1
            spawn = rng.random() < 0.3

            @when(picks)
            def work(cs, fail=fail, spawn=spawn):
                for c in cs:
                    c.value += 1
                if spawn:
                    from bocpy import Cown as C, when as w

                    @w(C(0))
                    def child(c):
                        c.value = 1
                if fail:
                    raise ValueError("random failure")
            results.append(work)
        if rng.random() < 0.2:
            cancel(rng.choice(results))
        if rng.random() < 0.1:
            s.cancel()
        if rng.random() < 0.3:
            try:
                s.wait(timeout=rng.choice([0.0, 0.001, 0.01]))
            except TimeoutError:
                pass
    return s.stats()


@pytest.mark.parametrize("seed", [11, 12])
def test_stress_threads_mixing_scopes_cancels_and_timed_waits(seed: int) -> None:
    shared = [Cown(0) for _ in range(4)]
    stats: list[dict] = []
    errors: list[BaseException] = []
    end = time.monotonic() + 3.0

    def run(k: int) -> None:
        rng = random.Random(seed * 100 + k)
        while time.monotonic() < end:
            try:
                stats.append(_random_scope_round(rng, shared))
            except ExceptionGroup as eg:
                if not all(isinstance(e, ValueError) for e in eg.exceptions):
                    errors.append(eg)
            except BaseException as e:
                errors.append(e)
                return

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LONG * 2)
    assert not any(t.is_alive() for t in threads), "a scope never ended"
    assert errors == []
    assert stats
    for st in stats:
        assert st["in_flight"] == 0
        assert st["scheduled"] == st["finished"] + st["failed"] + st["cancelled"], st
    wait()
