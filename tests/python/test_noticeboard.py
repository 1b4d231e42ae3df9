"""The noticeboard: synchronous writes, atomic updates, per-behavior
snapshots, seeding, limits and bad input."""

from __future__ import annotations

import copy
import functools
import math
import operator
import pickle
import threading
import types

import pytest

import bocpy
from bocpy import (
    REMOVED,
    Cown,
    WaitResult,
    notice_delete,
    notice_read,
    notice_seed,
    notice_sync,
    notice_update,
    notice_write,
    noticeboard,
    quiesce,
    receive,
    send,
    set_tags,
    start,
    wait,
    when,
)
from bocpy import _core

BEHAVIORS = 100
INCREMENTS = 100
SEED_ROUNDS = 50


def clear_board() -> None:
    for key in list(noticeboard()):
        notice_delete(key)


@pytest.fixture(autouse=True)
def clean_board():
    """Every test starts and ends stopped, with an empty board."""
    wait()
    clear_board()
    set_tags([])
    yield
    wait()
    clear_board()
    set_tags([])


def increment(value: int) -> int:
    return value + 1


def append_to(item, value):
    return [*value, item]


def explode(value):
    raise ArithmeticError(f"cannot update {value!r}")


def unshareable(value):
    return threading.Lock()


def to_removed(value):
    return REMOVED


def reentrant(value):
    return notice_read("other")


# ---- basics on the main interpreter --------------------------------------------


def test_write_read_delete() -> None:
    notice_write("a", [1, 2])
    notice_write("b", {"x": (1, 2)})
    assert notice_read("a") == [1, 2]
    assert type(notice_read("a")) is list
    assert dict(noticeboard()) == {"a": [1, 2], "b": {"x": (1, 2)}}
    notice_write("a", "replaced")
    assert notice_read("a") == "replaced"
    notice_delete("a")
    notice_delete("a")  # absent: no-op
    notice_delete("never-there")
    assert notice_read("a") is None
    assert notice_read("a", "default") == "default"
    assert notice_read(key="b", default=0) == {"x": (1, 2)}
    assert list(noticeboard()) == ["b"]


def test_mapping_is_read_only_and_fresh_on_main() -> None:
    notice_write("k", 1)
    first = noticeboard()
    assert isinstance(first, types.MappingProxyType)
    with pytest.raises(TypeError):
        first["k"] = 2  # type: ignore[index]
    notice_write("k", 2)
    second = noticeboard()
    assert first is not second
    assert first["k"] == 1 and second["k"] == 2


def test_values_are_copies() -> None:
    value = [1]
    notice_write("copy", value)
    value.append(2)
    assert notice_read("copy") == [1]
    got = notice_read("copy")
    got.append(3)
    assert notice_read("copy") == [1]


def test_version_moves_on_every_commit() -> None:
    v0 = _core._notice_version()
    notice_write("v", 1)
    notice_update("v", increment)
    notice_delete("v")
    assert _core._notice_version() == v0 + 3


def test_notice_sync_returns_at_once_and_validates() -> None:
    assert notice_sync() is None
    assert notice_sync(None) is None
    assert notice_sync(0) is None
    assert notice_sync(timeout=1.5) is None
    with pytest.raises(TypeError, match="timeout must be a number, not str"):
        notice_sync("soon")
    with pytest.raises(ValueError, match="NaN"):
        notice_sync(math.nan)


def test_removed_sentinel() -> None:
    assert repr(REMOVED) == "REMOVED"
    assert pickle.loads(pickle.dumps(REMOVED)) is REMOVED
    assert copy.copy(REMOVED) is REMOVED
    assert copy.deepcopy([REMOVED])[0] is REMOVED
    assert type(REMOVED)() is REMOVED
    assert bocpy.REMOVED is REMOVED
    send("removed", [REMOVED])
    assert receive("removed", 0)[1][0] is REMOVED


def test_cown_values_on_the_board() -> None:
    c = Cown(3)
    notice_write("cown", {"c": c})
    handle = notice_read("cown")["c"]
    assert handle == c

    @when(handle)
    def bump(x):
        x.value *= 7

    wait()
    assert c.value == 21


def bump_cown(handle) -> None:
    @when(handle)
    def bump(x):
        x.value += 1


def test_cown_handles_read_from_the_board_in_behaviors() -> None:
    target = Cown(1)
    notice_write("target", [target])
    for _ in range(3):

        @when()
        def r():
            [handle] = notice_read("target")
            bump_cown(handle)
            return noticeboard()["target"][0] == handle

    wait()
    assert target.value == 4
    assert r.value is True


# ---- notice_update ------------------------------------------------------------


def test_update_uses_default_and_removes() -> None:
    notice_update("list", functools.partial(append_to, "a"), [])
    notice_update("list", functools.partial(append_to, "b"), [])
    assert notice_read("list") == ["a", "b"]
    notice_update("list", to_removed)
    assert "list" not in noticeboard()
    notice_update("absent", to_removed)  # deleting an absent key: no-op
    assert "absent" not in noticeboard()


def test_removed_in_a_behavior() -> None:
    notice_write("doomed", 1)
    sentinel = [REMOVED]

    @when()
    def r(sentinel=sentinel):
        notice_update("doomed", to_removed)
        return sentinel[0] is REMOVED, repr(sentinel[0])

    board = wait(noticeboard=True)
    assert r.value == (True, "REMOVED")
    assert "doomed" not in board


def test_update_accepts_lambdas_on_main() -> None:
    notice_update("n", lambda v: v * 2, 21)
    assert notice_read("n") == 42


def test_update_exception_propagates_and_leaves_entry() -> None:
    notice_write("e", 5)
    with pytest.raises(ArithmeticError, match="cannot update 5"):
        notice_update("e", explode)
    assert notice_read("e") == 5
    with pytest.raises(ArithmeticError, match="cannot update None"):
        notice_update("new", explode)
    assert "new" not in noticeboard()


def test_update_unshareable_result_leaves_entry() -> None:
    notice_write("u", 1)
    with pytest.raises(TypeError, match="cannot send a value of type"):
        notice_update("u", unshareable)
    assert notice_read("u") == 1


def test_update_reentry_is_refused_not_deadlocked() -> None:
    notice_write("r", 1)
    with pytest.raises(RuntimeError, match="inside a notice_update"):
        notice_update("r", reentrant)
    assert notice_read("r") == 1
    notice_write("r", 2)  # the board is usable again
    assert notice_read("r") == 2


def test_update_from_threads_of_main_loses_nothing() -> None:
    def worker():
        for _ in range(500):
            notice_update("threads", increment, 0)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert notice_read("threads") == 4000


def test_ten_thousand_increments_from_behaviors_lose_none() -> None:
    start(4)  # several workers racing, whatever the machine's default
    add_one = functools.partial(operator.add, 1)
    for i in range(BEHAVIORS):
        c = Cown(i)

        @when(c)
        def bump(c, add_one=add_one):
            for _ in range(INCREMENTS):
                notice_update("count", add_one, 0)
                notice_update("calls", increment, 0)

    board = wait(noticeboard=True)
    assert board["count"] == BEHAVIORS * INCREMENTS
    assert board["calls"] == BEHAVIORS * INCREMENTS


def test_update_exception_in_a_behavior() -> None:
    notice_write("e", 1)

    @when()
    def r():
        try:
            notice_update("e", explode)
        except ArithmeticError as exc:
            return str(exc), notice_read("e")

    wait()
    assert r.value == ("cannot update 1", 1)


# ---- snapshots in behaviors -------------------------------------------------------


def test_snapshot_is_stable_within_a_behavior() -> None:
    start(2)
    notice_write("x", "old")

    @when()
    def reader():
        first = noticeboard()
        send("reader-ready", first["x"])
        receive("go", 30)  # meanwhile the others write
        notice_write("own", "mine")
        again = noticeboard()
        return (again is first, dict(again), notice_read("x"),
                notice_read("own", "invisible"), notice_read("late", "absent"))

    assert receive("reader-ready", 30) == ("reader-ready", "old")

    @when()
    def writer():
        notice_write("x", "new")
        notice_write("late", 1)
        send("writer-done", True)

    notice_write("main", "also new")
    # The writer runs on the other worker: wait for its commits before
    # releasing the reader.
    assert receive("writer-done", 30) == ("writer-done", True)
    assert notice_read("x") == "new"
    send("go", True)

    @when(reader)
    def after(reader):
        return notice_read("x"), notice_read("own"), notice_read("late")

    wait()
    assert not writer.exception
    same, snap, x, own, late = reader.value
    assert same is True
    assert snap == {"x": "old"}
    assert (x, own, late) == ("old", "invisible", "absent")
    assert after.value == ("new", "mine", 1)


def test_later_behaviors_see_changes() -> None:
    start(1)
    results = []
    for i in range(5):
        notice_write("round", i)

        @when()
        def r():
            return notice_read("round")

        results.append(r)
        quiesce()
    wait()
    assert [r.value for r in results] == list(range(5))


def test_notice_seed_visible_to_the_very_next_behavior() -> None:
    """Each round seeds a new value and schedules one behavior, which must
    see it even on a worker that cached a snapshot in an earlier round."""
    for i in range(SEED_ROUNDS):
        notice_seed("cfg", i)

        @when()
        def r():
            send("seen", (notice_read("cfg"), noticeboard()["cfg"]))

        assert receive("seen", 30) == ("seen", (i, i))
    wait()


def test_notice_seed_starts_the_runtime() -> None:
    assert not _core.running()
    notice_seed("seeded", {"n": 1})
    assert _core.running()

    @when()
    def r():
        return notice_read("seeded")

    board = wait(noticeboard=True)
    assert r.value == {"n": 1}
    assert board == {"seeded": {"n": 1}}


def test_notice_seed_from_a_worker_raises() -> None:
    @when()
    def r():
        notice_seed("k", 1)

    wait()
    assert r.exception and isinstance(r.value, RuntimeError)
    assert "main interpreter" in str(r.value)


# ---- wait / quiesce ------------------------------------------------------------


def test_wait_returns_the_board_and_clears_it() -> None:
    @when()
    def w():
        notice_write("done", True)

    board = wait(noticeboard=True)
    assert board == {"done": True}
    assert type(board) is dict
    assert dict(noticeboard()) == {}
    assert wait(noticeboard=True) == {}  # stopped: the empty form


def test_wait_without_the_flag_still_clears() -> None:
    @when()
    def w():
        notice_write("gone", 1)

    assert wait() is None
    assert dict(noticeboard()) == {}


def test_quiesce_returns_the_board_and_keeps_it() -> None:
    @when()
    def w():
        notice_write("q", 1)

    assert quiesce(noticeboard=True) == {"q": 1}
    assert _core.running()
    assert notice_read("q") == 1
    result = wait(stats=True, noticeboard=True)
    assert isinstance(result, WaitResult)
    assert result.noticeboard == {"q": 1}


# ---- limits and bad input ----------------------------------------------------------


def test_sixty_fifth_key_raises() -> None:
    for i in range(64):
        notice_write(f"k{i}", i)
    before = dict(noticeboard())
    with pytest.raises(KeyError, match=r"noticeboard is full \(64 keys\)"):
        notice_write("k64", 64)
    with pytest.raises(KeyError, match="noticeboard is full"):
        notice_update("k64", increment, 0)
    notice_write("k0", "overwrite is fine")
    notice_update("k1", increment)
    before.update(k0="overwrite is fine", k1=2)
    assert dict(noticeboard()) == before
    notice_delete("k5")
    notice_write("k64", 64)
    assert len(noticeboard()) == 64


def test_sixty_fifth_key_from_a_behavior() -> None:
    for i in range(64):
        notice_write(f"k{i}", i)

    @when()
    def r():
        try:
            notice_write("extra", 1)
        except KeyError as exc:
            return exc.args[0]

    wait()
    assert r.value == "noticeboard is full (64 keys)"


def test_key_length_limit() -> None:
    notice_write("k" * 63, 1)
    assert notice_read("k" * 63) == 1
    notice_write("é" * 31 + "x", 2)  # 63 bytes
    assert notice_read("é" * 31 + "x") == 2


BAD_INPUT = [
    (lambda: notice_write(1, "v"), TypeError, "noticeboard key must be a str, not int"),
    (lambda: notice_write(b"k", "v"), TypeError, "must be a str, not bytes"),
    (lambda: notice_write("k" * 64, "v"), ValueError, "at most 63 UTF-8 bytes, not 64"),
    (lambda: notice_write("é" * 32, "v"), ValueError, "at most 63 UTF-8 bytes, not 64"),
    (lambda: notice_write("a\0b", "v"), ValueError, "must not contain NUL"),
    (lambda: notice_write("kept", (x for x in ())), TypeError, "cannot send a value of type 'generator'"),
    (lambda: notice_write("kept", threading.Lock()), TypeError, "cannot send a value"),
    (lambda: notice_write("k"), TypeError, "value"),
    (lambda: notice_delete(None), TypeError, "must be a str, not NoneType"),
    (lambda: notice_delete("k" * 64), ValueError, "at most 63"),
    (lambda: notice_update(3, increment), TypeError, "must be a str, not int"),
    (lambda: notice_update("kept", 5), TypeError, "fn must be callable, not int"),
    (lambda: notice_update("x\0", increment), ValueError, "NUL"),
    (lambda: notice_read(1.5), TypeError, "must be a str, not float"),
    (lambda: notice_read("k" * 64), ValueError, "at most 63"),
    (lambda: notice_read("\0"), ValueError, "NUL"),
    (lambda: notice_seed(7, 1), TypeError, "must be a str, not int"),
    (lambda: notice_seed("k" * 100, 1), ValueError, "at most 63"),
    (lambda: notice_sync([]), TypeError, "must be a number"),
]


@pytest.mark.parametrize("call,exc,message", BAD_INPUT)
def test_bad_input(call, exc, message) -> None:
    notice_write("kept", [1, "one"])
    notice_write("other", 2)
    version = _core._notice_version()
    with pytest.raises(exc, match=message):
        call()
    assert dict(noticeboard()) == {"kept": [1, "one"], "other": 2}
    assert _core._notice_version() == version
    assert not _core.running()  # notice_seed did not start on bad input
