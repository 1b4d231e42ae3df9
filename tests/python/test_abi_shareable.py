"""Shareable types registered through the C ABI travel through the one value
transport by share() -> opaque payload -> rebuild(): in cowns, captures,
results and messages, top level or nested (natively in tuples/lists, through
__reduce__ -> reduce_shared inside pickled containers), keeping identity,
and giving their resource back when an encoding fails.

The plugin is the one templates/c_abi_consumer renders (module
abitest_counter: a C counter block with an owner word)."""

from __future__ import annotations

import gc
import pickle
import threading

import pytest

import bocpy
from bocpy import Cown, start, wait, when
from bocpy import _core

from test_abi_support import add_to_path, counter_plugin

NAME = "abitest_counter.Counter"


@pytest.fixture(autouse=True)
def fresh_runtime():
    add_to_path(counter_plugin())
    wait()
    yield
    wait()


@pytest.fixture()
def plug():
    import abitest_counter

    return abitest_counter


def settle() -> None:
    """Drop what the main interpreter borrowed (start() gives it back) and
    collect, so that the live-block count is exact."""
    start()
    wait()
    gc.collect()


def test_registered_in_every_interpreter(plug) -> None:
    assert (NAME, "shareable") in _core._registered_types()
    info = plug.abi_info()
    assert info["shareable"] == 1 and info["has_pump_in_progress"] == 1
    assert info["major"] == 1 and info["minor"] >= info["headers_minor"]


def test_moves_between_workers_without_pickling(plug) -> None:
    c = Cown(plug.Counter(5))
    for _ in range(300):
        @when(c)
        def bump(c):
            c.value.add(1)

    wait()
    assert c.value.value == 305
    assert c.value.owner == 0  # main holds it now
    with pytest.raises(TypeError, match="can only be pickled by bocpy"):
        pickle.dumps(c.value)  # so the transport did not pickle it


def test_many_counters_in_parallel(plug) -> None:
    counters = [Cown(plug.Counter(0)) for _ in range(16)]
    for _ in range(50):
        for c in counters:
            @when(c)
            def bump(c):
                c.value.add(2)

    @when(counters)
    def total(cs):
        return sum(c.value.value for c in cs)

    wait()
    assert total.value == 16 * 50 * 2


def test_identity_kept_natively_and_through_pickle(plug) -> None:
    k = plug.Counter(1)
    native = Cown((k, k))  # a tuple of registered objects: the native path

    @when(native)
    def same(t):
        a, b = t.value
        a.add(1)
        return a is b, b.value

    wait()
    assert same.value == (True, 2)
    k2 = plug.Counter(7)
    nested = Cown({"a": k2, "b": [k2, {"c": k2}]})  # a dict: pickled

    @when(nested)
    def same2(d):
        x = d.value
        x["a"].add(3)
        return x["a"] is x["b"][0] is x["b"][1]["c"], x["b"][1]["c"].value

    wait()
    assert same2.value == (True, 10)


def test_touching_after_sending_raises(plug) -> None:
    k = plug.Counter(3)
    c = Cown(k)  # k's block now belongs to the cown
    with pytest.raises(RuntimeError, match="The current interpreter does not own this counter"):
        k.add(1)
    with pytest.raises(RuntimeError, match="does not own this counter"):
        k.value
    assert k.owner == -2
    # sending it again: share() refuses, the value is not transferable
    with pytest.raises(RuntimeError, match="does not own this counter"):
        Cown(k)
    assert c.value.value == 3


def test_failed_encoding_gives_the_resource_back(plug) -> None:
    base = plug.live()
    k = plug.Counter(4)
    with pytest.raises(TypeError):
        Cown((k, threading.Lock()))  # k is shared, then the lock fails: unshare
    assert k.owner == 0
    assert k.add(1) == 5
    with pytest.raises(TypeError):
        Cown({"k": k, "f": threading.Lock()})  # same through pickle
    assert k.add(1) == 6
    del k
    gc.collect()
    assert plug.live() == base


def test_payloads_are_freed(plug) -> None:
    settle()
    base = plug.live()
    c = Cown(plug.Counter(0))
    d = Cown({"x": [plug.Counter(1), plug.Counter(2)]})
    for _ in range(20):
        @when(c, d)
        def step(c, d):
            c.value.add(d.value["x"][0].value)

    wait()
    assert c.value.value == 20
    assert plug.live() == base + 3
    del c, d, step
    settle()
    assert plug.live() == base


def test_results_and_captures(plug) -> None:
    @when()
    def made():  # built in a worker, rebuilt on main
        import abitest_counter

        k = abitest_counter.Counter(40)
        k.add(2)
        return k

    wait()
    assert made.value.value == 42
    captured = plug.Counter(9)

    @when()
    def reads():
        return captured.value * 2

    wait()
    assert reads.value == 18
    # the capture took the block along: main's wrapper no longer owns it
    with pytest.raises(RuntimeError, match="does not own this counter"):
        captured.add(1)


def test_c_behavior_and_its_context(plug) -> None:
    c = Cown(plug.Counter(0))
    freed = plug.ctxs_freed()
    results = [plug.add_later(c, i) for i in range(1, 11)]
    wait()
    assert c.value.value == 55
    assert all(r.value is None and not r.exception for r in results)
    assert plug.ctxs_freed() == freed + 10
    with pytest.raises(TypeError, match="can only schedule over cowns"):
        plug.add_later("not a cown", 1)
    assert plug.ctxs_freed() == freed + 11  # freed on failure too


def test_c_behavior_errors_go_to_the_result(plug) -> None:
    c = Cown("not a counter")
    r = plug.add_later(c, 1)
    wait()
    assert r.exception
    assert isinstance(r.value, AttributeError)


def test_messages_carry_shareable_values(plug) -> None:
    if not hasattr(bocpy, "send"):
        pytest.skip("messaging not available")
    bocpy.send("abi-counter", plug.Counter(11))

    @when()
    def got():
        from bocpy import receive

        tag, k = receive("abi-counter", 10)
        k.add(1)
        return k.value

    wait()
    assert got.value == 12


def test_noticeboard_carries_shareable_values(plug) -> None:
    if not hasattr(bocpy, "notice_write"):
        pytest.skip("noticeboard not available")
    k = plug.Counter(5)
    try:
        bocpy.notice_write("abi-counter", k)
        bocpy.notice_sync()
    except TypeError as e:  # a board that refuses single-owner values is fine
        assert "counter" in str(e).lower() or "Counter" in str(e)
        return
    assert k.owner == -2


def test_noticeboard_nested_shareable_without_a_plain_pickle_still_moves(plug) -> None:
    # The board stores copies where the type's pickle can make one (Matrix);
    # a type whose __reduce__ needs reduce_shared is moved, as before, even
    # inside a pickled container.
    k = plug.Counter(7)
    bocpy.notice_write("abi-counter-box", {"k": k})
    assert k.owner == -2
    wait()
