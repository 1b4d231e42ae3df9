"""The Ray backend (#29) on one node: ``start(backend="ray")`` over a
``ray.init(num_cpus=2)`` shared by the whole module (Ray starts slowly).

Run with ``pytest -m ray`` (the default run leaves these out;
scripts/test.sh installs ray and runs them in a step of their own).
"""

from __future__ import annotations

import os
import threading

import pytest

pytestmark = pytest.mark.ray

try:  # the default run deselects these tests; `-m ray` without ray fails
    import ray
except ImportError:  # pragma: no cover - depends on the environment
    ray = None

import bocpy  # noqa: E402
import bocpy.ray  # noqa: E402
from bocpy import Cown, PinnedCown, wait, when  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_node(tmp_path_factory):
    """One local Ray for the module; each test starts bocpy on it.  Ray
    puts the driver's working directory first on its workers' sys.path: run
    from outside the source tree, so they import the installed bocpy."""
    if ray is None:
        pytest.fail("the ray marker's tests need the 'ray' package "
                    "(pip install 'bocpy-runtime[ray]')")
    wait()
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray"))
    try:
        ray.init(num_cpus=2, include_dashboard=False)
        yield
        wait()
        ray.shutdown()
    finally:
        os.chdir(cwd)


@pytest.fixture(autouse=True)
def runtime():
    bocpy.ray.options(batch_size=64, batch_delay=0.002, spread=False)
    bocpy.start(backend="ray")
    yield
    wait(120)


def bank_module():
    from conftest import import_example

    return import_example("bank_ray")


def test_bank_equals_serial_replay():
    """The oracle: 1000 accounts, 20k transfers with refusals (the final
    balances depend on the order) equal a serial replay, exactly."""
    bank = bank_module()
    assert bank.run(1000, 20000)
    s = bocpy.ray.stats()
    assert s["behaviors"] == 20000
    assert s["batches"] < 20000  # consecutive behaviors shared tasks


def test_bank_unbatched_equals_serial_replay():
    """One Ray task per behavior: the order is carried by ObjectRefs alone."""
    wait()
    bocpy.ray.options(batch_size=1)
    bocpy.start(backend="ray")
    bank = bank_module()
    assert bank.run(50, 600)
    assert bocpy.ray.stats()["batches"] == 600


def test_values_results_and_groups():
    a = Cown(1)
    b = Cown([])

    for i in range(20):
        @when(a, [b])
        def step(a, group, i=i):
            a.value += i
            group[0].value.append(i)
            return a.value

    wait()
    assert a.value == 1 + sum(range(20))
    assert b.value == list(range(20))
    assert step.value == 1 + sum(range(20))


def test_same_cown_twice_is_one_value():
    a = Cown(0)

    @when(a, a)
    def twice(x, y):
        x.value += 1
        y.value += 10
        return x is y

    wait()
    assert a.value == 11
    assert twice.value is True


def test_exception_keeps_the_chain_and_names_the_line():
    c = Cown([])

    @when(c)
    def first(c):
        c.value.append(1)

    @when(c)
    def fails(c):
        c.value.append(2)
        raise ValueError("no funds on the remote node")

    @when(c)
    def after(c):
        c.value.append(3)
        return len(c.value)

    wait()
    assert fails.exception
    err = fails.value
    assert isinstance(err, ValueError)
    assert str(err) == "no funds on the remote node"
    assert isinstance(err.__cause__, bocpy.RemoteTraceback)
    assert "fails" in err.__cause__.text
    assert "test_ray.py" in err.__cause__.text
    assert not after.exception
    assert after.value == 3
    assert c.value == [1, 2, 3]  # the failed body's change is kept, as locally


def test_nested_when_runs_after_its_parent():
    """A @when inside a body on Ray is scheduled by the driver when the
    parent's task completes: it sees the parent's writes."""
    log = Cown([])
    counter = Cown(0)

    @when(log, counter)
    def parent(log, counter):
        log.value.append("parent")
        counter.value += 1

        @when(log)
        def child(log):
            log.value.append("child")

            @when(log, counter)
            def grandchild(log, counter):
                log.value.append(f"grandchild saw {counter.value}")

    wait()
    assert log.value == ["parent", "child", "grandchild saw 1"]
    assert bocpy.ray.stats()["nested"] == 2


def test_nested_recursion():
    total = Cown(0)

    def countdown(n):
        @when(total)
        def step(total):
            total.value += n
            if n > 0:
                countdown(n - 1)

    countdown(6)
    wait()
    assert total.value == sum(range(7))


def test_pinned_behavior_runs_on_the_main_thread():
    main = threading.get_ident()
    p = PinnedCown({"thread": None})
    c = Cown(5)

    @when(c)
    def before(c):
        c.value *= 2

    @when(p, c)
    def pinned(p, c):
        p.value["thread"] = threading.get_ident()
        c.value += 1  # the remote result, read on the driver

    @when(c)
    def after(c):
        return c.value * 100

    wait()
    assert p.value["thread"] == main
    assert after.value == 1100


def test_messaging_inside_a_remote_body_raises_clearly():
    c = Cown(0)

    @when(c)
    def sends(c):
        bocpy.send("tag", 1)

    @when(c)
    def reads_board(c):
        return bocpy.notice_read("k")

    wait()
    for r in (sends, reads_board):
        assert r.exception
        assert isinstance(r.value, RuntimeError)
        assert "not supported inside a behavior running on the Ray backend" in str(r.value)


def test_cowns_that_cannot_travel_fail_their_behavior_clearly():
    c = Cown(0)
    other = Cown(1)
    box = [other]

    @when(c)
    def returns_a_cown(c):
        return box[0]  # captured, not held: usable only as a @when argument

    @when(c)
    def reads_unheld(c):
        return box[0].value

    @when(c)
    def still_runs(c):
        c.value += 1
        return c.value

    wait()
    assert returns_a_cown.exception
    assert "cannot be sent back from Ray" in str(returns_a_cown.value)
    assert reads_unheld.exception
    assert "not held by this behavior" in str(reads_unheld.value)
    assert still_runs.value == 1


def test_wait_timeout_then_wait():
    c = Cown(0)

    @when(c)
    def slow(c):
        import time

        time.sleep(2)
        c.value = 1

    with pytest.raises(TimeoutError):
        wait(0.05)
    bocpy.quiesce(120)
    assert c.value == 1


def test_as_completed_and_stats():
    finished = bocpy.stats()["finished"]
    cowns = [Cown(i) for i in range(6)]
    results = []
    for c in cowns:
        @when(c)
        def double(c):
            c.value *= 2
            return c.value

        results.append(double)
    got = sorted(done.value for done in bocpy.as_completed(results, timeout=120))
    assert got == [0, 2, 4, 6, 8, 10]
    # A result is readable as soon as Ray finished its task; the driver's
    # collector counts the node afterwards, so read the counters after wait().
    wait()
    s = bocpy.ray.stats()
    assert s["behaviors"] >= 6
    assert sum(s["nodes"].values()) >= 6
    local = bocpy.stats()  # behaviors submitted to Ray count as finished
    assert local["in_flight"] == 0
    assert local["finished"] >= finished + 6


def test_hosted_cown_keeps_a_large_value_in_place():
    """An 8 MB array hosted by a Ray actor, changed in place by 50
    behaviors that also name an ordinary cown, in scheduling order."""
    import numpy as np

    big = bocpy.ray.hosted(np.zeros(1_000_000))
    counter = Cown(0)
    seen = []
    for _ in range(50):
        @when(big, counter)
        def bump(big, counter):
            big.value += 1  # in place, inside the actor
            counter.value += 1
            return (float(big.value[0]), counter.value)

        seen.append(bump)

    @when(counter)
    def after(counter):
        return counter.value

    wait()
    assert [r.value for r in seen] == [(float(i), i) for i in range(1, 51)]
    assert after.value == 50
    arr = big.value
    assert arr.shape == (1_000_000,)
    assert float(arr.sum()) == 50 * 1_000_000

    bocpy.start(backend="ray")
    other = bocpy.ray.hosted([1])

    @when(big, other)
    def two_hosts(a, b):
        pass

    wait()
    assert two_hosts.exception
    assert "at most one hosted cown" in str(two_hosts.value)


def test_hosted_needs_the_ray_backend():
    wait()
    with pytest.raises(RuntimeError, match="needs a running Ray backend"):
        bocpy.ray.hosted(1)


def test_nested_when_over_a_cown_made_in_the_body():
    out = Cown([])

    @when(out)
    def parent(out):
        fresh = Cown({"made": "remotely"})

        @when(fresh, out)
        def child(fresh, out):
            out.value.append(fresh.value["made"])

        @when(fresh)
        def grandchild(fresh):
            fresh.value["again"] = True

    wait()
    assert out.value == ["remotely"]


def test_local_start_while_running_on_ray():
    with pytest.raises(RuntimeError, match="running on the Ray backend: wait"):
        bocpy.start(2)
    bocpy.start(backend="ray")  # already running there: a no-op


def test_dropped_results_are_forgotten():
    """The driver keeps an ObjectRef per version a program can still read:
    the results a program dropped are forgotten as the run goes (the store
    does not grow with the number of behaviors), the kept ones stay
    readable."""
    from bocpy.ray import _driver

    c = Cown(0)
    kept = []
    sizes = []
    for rnd in range(4):
        for i in range(1500):
            @when(c)
            def step(c):
                c.value += 1
                return c.value

            if i == 0:
                kept.append(step)
        bocpy.quiesce(120)
        sizes.append(len(_driver._store))
    wait()
    after = len(_driver._store)
    assert max(sizes) < 2 * _driver._SWEEP_MIN + 64, sizes
    assert after < 64, (sizes, after)
    assert [r.value for r in kept] == [1, 1501, 3001, 4501]
    assert c.value == 6000
    assert bocpy.ray.stats()["dropped_versions"] >= 6000 - 64


def test_c_behaviors_see_the_real_values():
    """C behaviors of the C ABI (schedule_call) run on the driver over the
    cowns' current values, in order with the behaviors on Ray around them;
    what they leave goes on to the next behaviors on Ray."""
    from test_abi_support import add_to_path, cc_plugin, session_tmp
    from pathlib import Path

    root = session_tmp("bocpy-ray-abi-pin-")
    cc_plugin(Path(__file__).resolve().parent / "abitest_pin.c", root,
              "abitest_pin", [bocpy.get_include()])
    add_to_path(root)
    import abitest_pin as P

    wait()
    bocpy.start(backend="ray")
    a = Cown(1)
    b = Cown([])

    @when(a, b)
    def before(a, b):
        a.value += 41
        b.value.append("ray")

    r = P.schedule_call((a, b), ("arg",))

    @when(a, b)
    def after(a, b):
        a.value += 1
        b.value.append("after")
        return (a.value, list(b.value))

    r2 = P.schedule_call((b,), None)
    wait()
    interp, pinned, module_ok, blob_ok, args, values = r.value
    assert not pinned and module_ok
    assert args == ("arg",)
    assert values == [42, ["ray"]]
    assert after.value == (43, ["ray", "after"])
    assert r2.value[5] == [["ray", "after"]]
    assert a.value == 43


def test_trace_records_when_and_where_behaviors_ran(tmp_path):
    """trace() on Ray: each behavior's slice is when its body ran in the
    Ray task (not when the driver submitted it), on the track of its Ray
    node, with the node id in its arguments."""
    c = Cown(0)
    with bocpy.trace(str(tmp_path / "ray.json")) as t:
        @when(c)
        def quick(c):
            c.value += 1

        @when(c)
        def sleeps(c):
            import time

            time.sleep(0.05)
            c.value += 1

        @when(c)
        def after(c):
            c.value += 1

        wait()
    slices = {e["name"].rsplit(".", 1)[-1]: e for e in t.events if e.get("ph") == "X"}
    assert set(slices) == {"quick", "sleeps", "after"}, t.events
    nodes = ray.nodes()
    node_ids = {n["NodeID"] for n in nodes}
    for e in slices.values():
        assert e["args"]["node"] in node_ids
        assert e["tid"] > 999  # a Ray node's track
    # A lower bound, not a latency: the body slept 50 ms.
    assert slices["sleeps"]["dur"] >= 50_000
    assert slices["quick"]["dur"] < 50_000  # the run, not submission to completion
    names = {e["tid"]: e["args"]["name"] for e in t.events
             if e.get("ph") == "M" and e["name"] == "thread_name"}
    assert names[slices["sleeps"]["tid"]].startswith("Ray node ")
    assert c.value == 3


def test_a_cown_inside_a_value_travels_as_itself():
    """A Cown inside a cown's value goes to Ray as a token: there it is not
    held (its value cannot be read, as locally in a behavior that did not
    name it), it can be passed to a nested @when, it stays in the value
    from behavior to behavior, and the driver reads it back as the same
    Cown."""
    inner = Cown(5)
    outer = Cown({"inner": inner, "n": 0})

    @when(outer)
    def step(outer):
        outer.value["n"] += 1
        c = outer.value["inner"]

        @when(c)
        def bump(c):
            c.value += 10

        try:
            c.value
        except RuntimeError as exc:
            return str(exc)
        return "read"

    @when(outer)
    def again(outer):
        outer.value["n"] += 1
        return outer.value["inner"]  # a result may hold it too

    wait()
    assert "not held by this behavior" in step.value
    assert outer.value["n"] == 2
    assert outer.value["inner"] == inner
    assert again.value == inner
    assert inner.value == 15

    bocpy.start(backend="ray")

    @when(outer, inner)
    def named_and_inside(outer, inner):
        # The cown named here is held; the copy inside the value is not.
        inner.value += 1
        return outer.value["inner"] == inner

    wait()
    assert inner.value == 16
    assert named_and_inside.exception is False


def test_a_named_cown_stored_in_a_value_travels_as_itself():
    """A body on Ray may store a cown it named in another cown's value (or
    return it): it leaves as a token that the next behaviors and the driver
    map back to the same Cown."""
    a = Cown(1)
    b = Cown([])

    @when(a, b)
    def stores(a, b):
        b.value = [a]
        return a

    @when(b)
    def uses(b):
        inner = b.value[0]

        @when(inner)
        def bump(inner):
            inner.value += 100

        return len(b.value)

    wait()
    assert not stores.exception, stores.value
    assert stores.value == a
    assert uses.value == 1
    assert b.value == [a]
    assert a.value == 101
