"""The behavior runtime: cowns, @when, captures, ordering, wait/quiesce."""

from __future__ import annotations

import threading

import pytest

import bocpy
from bocpy import Cown, PinnedCown, quiesce, start, wait, when, whencall
from bocpy import when as boc_when
import bocpy as bp

import behaviors_elsewhere
from conftest import run_python

MODULE_CONSTANT = 11
module_list = [1, 2, 3]


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Every test starts stopped and leaves the runtime stopped."""
    wait()
    yield
    wait()


def test_result_cown_holds_return_value() -> None:
    x = Cown(20)

    @when(x)
    def r(x):
        x.value += 1
        return x.value * 2

    wait()
    assert isinstance(r, Cown)
    assert (x.value, r.value, r.exception) == (21, 42, False)


def test_behaviors_chain_through_result_cowns() -> None:
    x = Cown(1)

    @when(x)
    def first(x):
        return x.value + 1

    @when(first)
    def second(first):
        return first.value * 10

    wait()
    assert second.value == 20


def test_body_exception_stored_on_result() -> None:
    @when()
    def r():
        raise ValueError("boom")

    wait()
    assert r.exception is True
    assert isinstance(r.value, ValueError)
    assert str(r.value) == "boom"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_are_stored_too(exc: type[BaseException]) -> None:
    c = Cown(5)

    @when(c)
    def r(c):
        c.value = 6
        raise exc()

    wait()
    assert r.exception and isinstance(r.value, exc)
    assert c.value == 6  # writes before the raise persist


def test_groups_arrive_as_lists() -> None:
    a, b, c = Cown(1), Cown(2), Cown(3)

    @when([a, b], (c,), a)
    def r(group, tgroup, single):
        return (type(group).__name__, [x.value for x in group],
                type(tgroup).__name__, single.value)

    wait()
    assert r.value == ("list", [1, 2], "list", 1)


def test_empty_group_is_an_empty_list() -> None:
    @when([])
    def r(group):
        return group

    wait()
    assert r.value == []


def test_zero_cowns() -> None:
    @when()
    def r():
        return "ran"

    wait()
    assert r.value == "ran"


def test_duplicate_cowns_do_not_deadlock() -> None:
    c = Cown(0)

    @when(c, c, [c, c])
    def r(x, y, group):
        x.value += 1
        y.value += 1
        return x is not None and len(group)

    wait()
    assert c.value == 2
    assert r.value == 2


def test_nested_behaviors() -> None:
    total = Cown(0)

    @when(total)
    def outer(total):
        for i in range(5):
            @when(total)
            def inner(total):
                total.value += i  # i captured per iteration

    wait()
    assert total.value == 0 + 1 + 2 + 3 + 4


def test_loop_variable_snapshot_and_default_capture() -> None:
    results = [Cown(None) for _ in range(4)]
    for i, r in enumerate(results):
        @when(r)
        def _(r):
            r.value = i * 10

    for i, r in enumerate(results):
        @when(r)
        def _(r, j=i):
            r.value += j

    wait()
    assert [r.value for r in results] == [0, 11, 22, 33]


def test_trailing_parameter_captured_by_name() -> None:
    c = Cown(2)
    factor = 21

    @when(c)
    def r(c, factor):
        return c.value * factor

    wait()
    assert r.value == 42


def test_unresolvable_trailing_parameter() -> None:
    c = Cown(2)
    with pytest.raises(RuntimeError, match="Cannot resolve capture: nowhere_to_be_found"):
        @when(c)
        def r(c, nowhere_to_be_found):
            return 1


def test_module_globals_are_captured_by_value() -> None:
    global module_list
    c = Cown(0)

    @when(c)
    def r(c):
        return MODULE_CONSTANT + sum(module_list)

    module_list = [100]  # rebinding after scheduling is not seen

    @when(c)
    def r2(c):
        return sum(module_list)

    wait()
    module_list = [1, 2, 3]
    assert r.value == 17
    assert r2.value == 100


def test_decorator_spellings() -> None:
    c = Cown(1)

    @boc_when(c)
    def a(c):
        return c.value + 1

    @bp.when(c)
    def b(c):
        return c.value + 2

    @bocpy.when(c)
    def d(c):
        return c.value + 3

    wait()
    assert (a.value, b.value, d.value) == (2, 3, 4)


def test_behaviors_from_another_module_at_any_depth() -> None:
    c = Cown(1)
    r = behaviors_elsewhere.add_later(c, 2)
    acct = Cown(behaviors_elsewhere.Account(10))
    r2 = behaviors_elsewhere.deep(acct)
    wait()
    assert c.value == 15 and r.value == 15
    assert r2.value == 15
    assert acct.value.balance == 15


def test_unresolvable_behavior_fails_cleanly() -> None:
    import types

    mod = types.ModuleType("bocpy_test_not_importable")
    exec("def body(c):\n    c.value = 'should never run'\n", mod.__dict__)
    c = Cown("kept")
    r = whencall(mod.body, [c]) if bocpy._core.running() else None
    if r is None:
        start()
        r = whencall(mod.body, [c])
    wait()
    assert r.exception is True
    assert isinstance(r.value, RuntimeError)
    assert "bocpy_test_not_importable" in str(r.value)
    assert c.value == "kept"


def test_whencall_captures_follow_cowns() -> None:
    start()
    c = Cown(3)
    r = whencall(lambda_free_body, [c], (4,))
    wait()
    assert r.value == 12


def lambda_free_body(c, k):
    return c.value * k


def test_whencall_rejects_names() -> None:
    with pytest.raises(TypeError, match="function itself"):
        whencall("body", [])  # type: ignore[arg-type]


# ---- bad input ----------------------------------------------------------------


def test_unshareable_cown_value() -> None:
    with pytest.raises(TypeError, match="lock"):
        Cown(threading.Lock())


def test_non_cown_arguments() -> None:
    with pytest.raises(TypeError, match="can only schedule over cowns"):
        when(1)
    with pytest.raises(TypeError, match="can only schedule over cowns"):
        @when([Cown(1), "x"])
        def r(g):
            pass


def test_unshareable_capture_raises_at_when() -> None:
    c = Cown(1)
    lock = threading.Lock()

    def schedule():
        @when(c)
        def r(c):
            return lock

    with pytest.raises(TypeError, match="lock"):
        schedule()
    wait()
    assert c.value == 1


def test_unshareable_return_value_is_stored_as_type_error() -> None:
    c = Cown([1])

    @when(c)
    def r(c):
        import threading as t

        c.value.append(2)
        return t.Lock()

    @when(c)
    def after(c):
        return c.value

    wait()
    assert r.exception is True
    assert isinstance(r.value, TypeError)
    assert "lock" in str(r.value)
    assert after.value == [1, 2]  # the cown was released, not stranded


def test_unshareable_cown_value_stays_in_its_worker() -> None:
    """Issue 33: a value that cannot travel stays live in the worker that
    stored it (no value is lost); only taking it elsewhere fails, with a
    TypeError naming the cown (see test_values_stay.py)."""
    start(1)
    c = Cown([1, 2])

    @when(c)
    def r(c):
        import threading as t

        c.value = t.Lock()

    @when(c)
    def after(c):
        return type(c.value).__name__

    wait()
    assert r.exception is False
    assert after.value == "lock"
    with pytest.raises(TypeError, match=r"Cown #\d+ cannot leave the worker"):
        c.value
    start(1)

    @when(c)
    def mend(c):
        c.value = [1, 2]

    wait()
    assert c.value == [1, 2]


def test_generators_cannot_be_behaviors() -> None:
    with pytest.raises(TypeError, match="generator or coroutine"):
        @when()
        def gen():
            yield 1

    with pytest.raises(TypeError, match="generator or coroutine"):
        @when()
        async def coro():
            pass


def test_arity_mismatch() -> None:
    with pytest.raises(TypeError, match="takes 1 positional"):
        @when(Cown(1), Cown(2))
        def r(only_one):
            pass


@pytest.mark.parametrize("call", ["wait()", "start()", "quiesce()"])
def test_lifecycle_calls_from_a_worker(call: str) -> None:
    @when()
    def r(call=call):
        import bocpy

        eval("bocpy." + call)

    wait()
    assert r.exception is True
    assert isinstance(r.value, RuntimeError)
    assert "main interpreter" in str(r.value)


def test_start_arguments() -> None:
    with pytest.raises(TypeError):
        start("two")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        start(0)
    start(1)
    with pytest.raises(RuntimeError, match="already running with 1"):
        start(2)
    start(1)  # same count: a no-op


def test_wait_timeout_rejects_nan() -> None:
    start(1)
    with pytest.raises(ValueError, match="NaN"):
        wait(float("nan"))
    with pytest.raises(TypeError):
        wait("soon")  # type: ignore[arg-type]


# ---- cown API -------------------------------------------------------------------


def test_cown_ownership_api() -> None:
    c = Cown([1])
    assert c.acquired is False
    with c as v:
        v.append(2)
        assert c.acquired is True
    assert c.acquired is False
    c.acquire()
    c.acquire()  # already owned: no-op
    c.value = "new"
    c.release()
    c.release()  # parked: no-op
    assert c.value == "new"  # main borrows it while idle
    with pytest.raises(TypeError):
        del c.value


def test_cown_equality_ordering_hash_repr() -> None:
    a, b = Cown(1), Cown(2)
    assert a == a and a != b
    assert (a < b) != (b < a)
    assert hash(a) == hash(a)
    assert len({a, b, a}) == 2
    assert sorted([b, a]) == sorted([a, b])
    assert repr(a).startswith("Cown(#") and "not owner" in repr(a)
    assert (a == 1) is False
    with pytest.raises(TypeError):
        a < 1  # noqa: B015


def test_cown_handles_travel_by_reference() -> None:
    inner = Cown(5)
    outer = Cown({"inner": inner, "list": [inner]})

    @when(outer)
    def r(outer):
        inner_handle = outer.value["inner"]

        @when(inner_handle)
        def bump(c):
            c.value += 1

        return outer.value["list"][0] == inner_handle

    wait()
    assert r.value is True
    assert inner.value == 6


def test_user_pickling_of_handles_is_refused() -> None:
    import pickle

    with pytest.raises(TypeError, match="can only be pickled by bocpy"):
        pickle.dumps(Cown(1))


def test_cown_cannot_be_subclassed() -> None:
    with pytest.raises(TypeError, match="cannot be subclassed"):
        class Mine(Cown):  # noqa: F841
            pass


def test_generic_alias() -> None:
    assert Cown[int] is not None


def test_unwrap() -> None:
    c = Cown(3)

    @when(c)
    def r(c):
        raise KeyError("k")

    wait()
    assert c.unwrap() == 3
    assert c.unwrap() is None
    with pytest.raises(KeyError):
        r.unwrap()


def test_values_round_trip_types() -> None:
    values = [None, True, 2**70, -5, 1.5, "é", b"\x00", (1, (2, "x")), [1, [2]],
              {"a": {1, 2}}, frozenset({3})]
    cowns = [Cown(v) for v in values]

    @when(cowns)
    def r(cs):
        return [c.value for c in cs]

    wait()
    assert r.value == values
    assert [type(v) for v in r.value] == [type(v) for v in values]


# ---- lifecycle ---------------------------------------------------------------------


def test_quiesce_is_a_checkpoint() -> None:
    c = Cown(0)
    for _ in range(3):
        @when(c)
        def _(c):
            c.value += 1

        quiesce()
        assert bocpy._core.running()
    stats = quiesce(stats=True)
    assert isinstance(stats, list) and stats
    assert {"worker_index", "popped_local", "busy_ns"} <= set(stats[0])
    both = quiesce(stats=True, noticeboard=True)
    assert isinstance(both, bocpy.WaitResult)
    wait()
    assert c.value == 3


def test_wait_when_stopped_returns_empty_forms() -> None:
    assert wait() is None
    assert wait(stats=True) == []
    assert wait(noticeboard=True) == {}
    assert wait(stats=True, noticeboard=True) == bocpy.WaitResult([], {})


def test_wait_timeout_raises_and_runtime_survives() -> None:
    c = Cown(0)

    @when(c)
    def slow(c):
        import time

        time.sleep(1.0)
        c.value = 1

    with pytest.raises(TimeoutError):
        wait(0.05)
    assert bocpy._core.running()
    wait()
    assert c.value == 1


def test_stats_account_for_every_behavior() -> None:
    start(2)
    c = [Cown(0) for _ in range(4)]
    for i in range(200):
        @when(c[i % 4])
        def _(x):
            x.value += 1

    stats = wait(stats=True)
    assert len(stats) == 2
    popped = sum(s["popped_local"] + s["popped_via_steal"] for s in stats)
    assert popped == 200
    assert sum(x.value for x in c) == 200


def test_scheduling_after_wait_starts_a_fresh_runtime() -> None:
    c = Cown(1)
    for _ in range(3):
        @when(c)
        def _(c):
            c.value *= 2

        wait()
    assert c.value == 8


def test_program_without_wait_runs_everything_and_exits() -> None:
    out = run_python(
        "from bocpy import Cown, when\n"
        "c = Cown(0)\n"
        "def bump(c):\n"
        "    @when(c)\n"
        "    def _(c):\n"
        "        c.value += 1\n"
        "        print('ran', flush=True)\n"
        "for _ in range(3):\n"
        "    bump(c)\n",
        timeout=60,
    )
    assert out.stdout.count("ran") == 3
    assert out.returncode == 0


def test_script_top_level_is_not_reexecuted_on_workers() -> None:
    import tempfile, os, sys, subprocess

    src = (
        "import os\n"
        "from bocpy import Cown, when, wait\n"
        "print('top-level ran', flush=True)\n"
        "LIMIT = 3\n"
        "data = [10, 20]\n"
        "def helper(x):\n"
        "    return x + LIMIT\n"
        "c = Cown(1)\n"
        "for k in range(2):\n"
        "    @when(c)\n"
        "    def step(c):\n"
        "        c.value = helper(c.value) + sum(data) + k\n"
        "wait()\n"
        "print('value', c.value)\n"
    )
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "script.py")
        with open(path, "w") as f:
            f.write(src)
        out = subprocess.run([sys.executable, path], cwd=d, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("top-level ran") == 1
    # ((1 + 3) + 30 + 0) = 34, then (34 + 3) + 30 + 1 = 68
    assert "value 68" in out.stdout


def test_pinned_cown_only_on_main() -> None:
    p = PinnedCown([1])
    assert p.acquired is True
    assert p.value == [1]

    @when()
    def r():
        from bocpy import PinnedCown as P

        P(1)

    wait()
    assert isinstance(r.value, RuntimeError)
    assert "main interpreter" in str(r.value)


def test_capture_before_assignment() -> None:
    c = Cown(1)
    with pytest.raises(NameError, match="captures 'later' before it is assigned"):
        @when(c)
        def r(c):
            return later

    later = 2  # noqa: F841
