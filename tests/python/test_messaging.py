"""Tagged message queues: send / receive / drain / set_tags / TIMEOUT."""

from __future__ import annotations

import _thread
import math
import threading
import time

import pytest

import bocpy
from bocpy import (
    TIMEOUT,
    Cown,
    drain,
    receive,
    send,
    set_tags,
    start,
    wait,
    when,
)
from bocpy import _core

N_ORDERED = 1000


@pytest.fixture(autouse=True)
def clean_queues():
    """Every test starts and ends stopped, with no tag and no message."""
    wait()
    set_tags([])
    _core._msg_set_limits(0, 0)
    yield
    wait()
    set_tags([])
    _core._msg_set_limits(0, 0)


def send_numbered(tag: str, sender: str, count: int) -> None:
    for i in range(count):
        send(tag, (sender, i))


# ---- basics -------------------------------------------------------------------


def test_timeout_constant() -> None:
    assert TIMEOUT == "__timeout__"
    assert bocpy.TIMEOUT is TIMEOUT


def test_round_trip_keeps_types() -> None:
    values = [
        [1, 2, 3],
        (1, "two", 3.0),
        {"a": [1, (2, 3)]},
        [[1], [2, [3]]],
        None,
        b"bytes",
        "text",
        2**70,
        {1, 2},
    ]
    for v in values:
        send("rt", v)
    for v in values:
        tag, got = receive("rt")
        assert tag == "rt"
        assert got == v
        assert type(got) is type(v)


def test_a_list_arrives_as_a_list() -> None:
    send("lst", [1, [2, 3], "x"])
    tag, got = receive("lst", 1)
    assert (tag, got) == ("lst", [1, [2, 3], "x"])
    assert type(got) is list and type(got[1]) is list


def test_received_object_is_a_copy() -> None:
    value = [1, 2]
    send("copy", value)
    value.append(3)
    assert receive("copy") == ("copy", [1, 2])


def test_result_is_a_tuple() -> None:
    send("t", 1)
    msg = receive("t")
    assert isinstance(msg, tuple) and len(msg) == 2
    match msg:
        case [tag, contents]:
            assert (tag, contents) == ("t", 1)


def test_fifo_per_tag() -> None:
    for i in range(100):
        send("fifo", i)
    assert [receive("fifo")[1] for _ in range(100)] == list(range(100))


def test_first_tag_in_the_order_given_wins() -> None:
    send("b", "from b")
    send("a", "from a")
    assert receive(["a", "b"]) == ("a", "from a")
    assert receive(["a", "b"]) == ("b", "from b")
    send("b", 1)
    send("a", 2)
    assert receive(("b", "a")) == ("b", 1)
    assert receive(("b", "a")) == ("a", 2)


def test_receive_accepts_keywords() -> None:
    send("kw", 5)
    assert receive(tags="kw", timeout=1.0, after=None) == ("kw", 5)


def test_duplicate_tags_in_receive() -> None:
    send("dup", 1)
    assert receive(["dup", "dup"]) == ("dup", 1)


def test_cown_travels_as_a_reference() -> None:
    c = Cown(10)
    send("cown", [c])
    _, [handle] = receive("cown")
    assert handle == c

    @when(handle)
    def bump(x):
        x.value += 5

    wait()
    assert c.value == 15


# ---- timeouts --------------------------------------------------------------


def test_receive_timeout_returns_timeout_tuple() -> None:
    t0 = time.monotonic()
    assert receive("nothing", 0.2) == (TIMEOUT, None)
    elapsed = time.monotonic() - t0
    assert 0.18 <= elapsed < 30  # generous: the machine may be busy


def test_receive_poll() -> None:
    assert receive("nothing", 0) == (TIMEOUT, None)
    send("polled", 1)
    assert receive("polled", 0) == ("polled", 1)


def test_after_is_called_on_timeout() -> None:
    calls = []

    def after():
        calls.append(1)
        return "fallback"

    assert receive(["x", "y"], 0.05, after) == "fallback"
    assert calls == [1]
    # Not called when a message is there.
    send("x", 1)
    assert receive(["x", "y"], 0.05, after) == ("x", 1)
    assert calls == [1]


def test_after_exception_propagates() -> None:
    def after():
        raise LookupError("late")

    with pytest.raises(LookupError, match="late"):
        receive("x", 0, after)


def test_int_timeout_and_huge_timeout() -> None:
    send("t", 1)
    assert receive("t", 10**30) == ("t", 1)
    assert receive("t", 0) == (TIMEOUT, None)


def test_blocked_receive_is_woken_by_another_thread() -> None:
    def later():
        time.sleep(0.2)
        send("wake", "up")

    t = threading.Thread(target=later)
    t.start()
    t0 = time.monotonic()
    assert receive(["other", "wake"]) == ("wake", "up")
    assert time.monotonic() - t0 < 30  # generous: the machine may be busy
    t.join()


def test_no_lost_wakeups_between_threads() -> None:
    """Many receivers blocked on overlapping tags, many senders: every
    message is received exactly once."""
    n_senders, per_sender = 4, 500
    tags = ["w0", "w1", "w2"]
    got: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def receiver(my_tags):
        while True:
            tag, msg = receive(my_tags)
            if msg is None:
                return
            with lock:
                got.append(msg)

    def sender(k):
        for i in range(per_sender):
            send(tags[(k + i) % len(tags)], (k, i))

    receivers = [threading.Thread(target=receiver, args=(tags[i:] + tags[:i],))
                 for i in range(3)]
    senders = [threading.Thread(target=sender, args=(k,)) for k in range(n_senders)]
    for t in receivers + senders:
        t.start()
    for t in senders:
        t.join()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(got) == n_senders * per_sender:
                break
        time.sleep(0.01)
    for _ in receivers:
        send("w0", None)
    for t in receivers:
        t.join(10)
        assert not t.is_alive()
    assert sorted(got) == sorted((k, i) for k in range(n_senders) for i in range(per_sender))


def test_ctrl_c_interrupts_a_blocked_receive() -> None:
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        receive("never")
    assert time.monotonic() - t0 < 30  # generous: the machine may be busy
    timer.join()
    # The receiver unregistered cleanly: the tag still works.
    send("never", 1)
    assert receive("never", 1) == ("never", 1)


# ---- drain / set_tags ----------------------------------------------------------


def test_drain_discards_pending() -> None:
    for i in range(5):
        send("d1", i)
        send("d2", i)
    send("keep", "k")
    drain(["d1", "d2"])
    drain("unknown-tag")
    assert receive(["d1", "d2"], 0) == (TIMEOUT, None)
    assert receive("keep", 0) == ("keep", "k")
    send("d1", "after")
    assert receive("d1", 0) == ("d1", "after")


def test_set_tags_discards_everything_and_forgets_tags() -> None:
    send("a", 1)
    send("b", 2)
    assert _core._msg_tag_count() == 2
    set_tags(["x", "y", "z"])
    assert _core._msg_tag_count() == 3
    assert receive(["a", "b"], 0) == (TIMEOUT, None)
    set_tags([])
    assert _core._msg_tag_count() == 0


def test_blocked_receiver_survives_set_tags() -> None:
    result = []

    def receiver():
        result.append(receive("moving", 10))

    t = threading.Thread(target=receiver)
    t.start()
    time.sleep(0.2)
    set_tags(["other"])
    send("moving", "still delivered")
    t.join(10)
    assert result == [("moving", "still delivered")]


# ---- with behaviors --------------------------------------------------------


def test_messages_sent_before_start_are_kept() -> None:
    assert not _core.running()
    for i in range(3):
        send("early", i)
    start()

    @when()
    def relay():
        got = [receive("early", 10)[1] for _ in range(3)]
        send("relayed", got)

    assert receive("relayed", 30) == ("relayed", [0, 1, 2])
    wait()


def test_two_workers_keep_each_senders_order() -> None:
    start(2)
    a, b = Cown("A"), Cown("B")

    @when(a)
    def from_a(a):
        send_numbered("ordered", a.value, N_ORDERED)

    @when(b)
    def from_b(b):
        send_numbered("ordered", b.value, N_ORDERED)

    seen = {"A": [], "B": []}
    for _ in range(2 * N_ORDERED):
        tag, (sender, i) = receive("ordered", 30)
        assert tag == "ordered"
        seen[sender].append(i)
    wait()
    assert seen["A"] == list(range(N_ORDERED))
    assert seen["B"] == list(range(N_ORDERED))
    assert not from_a.exception and not from_b.exception


def test_behavior_receives_from_main() -> None:
    start(2)

    @when()
    def service():
        total = 0
        while True:
            _, n = receive("req", 30)
            if n is None:
                break
            total += n
        send("resp", total)

    for i in range(10):
        send("req", i)
    send("req", None)
    assert receive("resp", 30) == ("resp", 45)
    wait()


def test_timeout_inside_a_behavior() -> None:
    @when()
    def r():
        first = receive("silence", 0.05)
        second = receive("silence", 0, lambda: "after")
        return first, second

    wait()
    assert r.value == ((TIMEOUT, None), "after")


def test_set_tags_from_a_worker_raises() -> None:
    send("survivor", 1)

    @when()
    def r():
        set_tags(["x"])

    wait()
    assert r.exception
    assert isinstance(r.value, RuntimeError)
    assert "main interpreter" in str(r.value)
    assert receive("survivor", 0) == ("survivor", 1)


# ---- bad input ---------------------------------------------------------------


def _generator_value():
    return (x for x in ())


BAD_INPUT = [
    (lambda: send(1, "x"), TypeError, "tag must be a str, not int"),
    (lambda: send(b"t", "x"), TypeError, "tag must be a str, not bytes"),
    (lambda: send("t"), TypeError, "send\\(\\) takes 2 positional"),
    (lambda: send("t", _generator_value()), TypeError, "cannot send a value of type 'generator'"),
    (lambda: send("t", threading.Lock()), TypeError, "cannot send a value"),
    (lambda: receive([]), ValueError, "receive\\(\\) needs at least one tag"),
    (lambda: receive([]), RuntimeError, "receive\\(\\) needs at least one tag"),
    (lambda: receive(()), ValueError, "needs at least one tag"),
    (lambda: receive([1]), TypeError, "tag must be a str, not int"),
    (lambda: receive(["ok", None]), TypeError, "tag must be a str, not NoneType"),
    (lambda: receive(b"t"), TypeError, "tags must be a str or a sequence of str, not bytes"),
    (lambda: receive(5), TypeError, "tags must be a str or a sequence of str, not int"),
    (lambda: receive("t", None), TypeError, "timeout must be a number, not NoneType"),
    (lambda: receive("t", "1"), TypeError, "timeout must be a number, not str"),
    (lambda: receive("t", True), TypeError, "timeout must be a number, not bool"),
    (lambda: receive("t", math.nan), ValueError, "timeout must not be NaN"),
    (lambda: receive("t", 0, 5), TypeError, "after must be callable or None, not int"),
    (lambda: drain(5), TypeError, "tags must be a str or a sequence of str, not int"),
    (lambda: drain(["t", 3.0]), TypeError, "tag must be a str, not float"),
    (lambda: set_tags([1]), TypeError, "tag must be a str, not int"),
    (lambda: set_tags(None), TypeError, "tags must be a str or a sequence of str, not NoneType"),
]


@pytest.mark.parametrize("call,exc,message", BAD_INPUT)
def test_bad_input(call, exc, message) -> None:
    send("intact", "first")
    send("intact", "second")
    with pytest.raises(exc, match=message):
        call()
    assert _core._msg_pending("intact") == 2
    assert _core._msg_pending("t") == 0
    assert receive("intact", 0) == ("intact", "first")
    assert receive("intact", 0) == ("intact", "second")


def test_too_many_tags_raises_key_error_naming_the_tag() -> None:
    tags = [f"tag{i}" for i in range(1024)]
    set_tags(tags)
    send("tag7", "kept")
    with pytest.raises(KeyError, match="No queue available for tag 'one-more'"):
        send("one-more", 1)
    with pytest.raises(KeyError, match="'one-more'"):
        receive(["tag1", "one-more"], 0)
    with pytest.raises(KeyError, match="'tag-1024'"):
        set_tags(tags + ["tag-1024"])
    # Nothing changed.
    assert _core._msg_tag_count() == 1024
    assert receive("tag7", 0) == ("tag7", "kept")
    # Existing tags still work; set_tags frees the capacity.
    set_tags([])
    send("one-more", 1)
    assert receive("one-more", 0) == ("one-more", 1)


def test_full_queue_raises_and_keeps_its_messages() -> None:
    _core._msg_set_limits(0, 5)
    for i in range(5):
        send("full", i)
    with pytest.raises(RuntimeError, match="^Message queue is full$"):
        send("full", 5)
    send("other", "fine")
    assert [receive("full", 0)[1] for _ in range(5)] == [0, 1, 2, 3, 4]
    send("full", 6)
    assert receive("full", 0) == ("full", 6)
