"""Property-based tests (hypothesis): random request sets against the
serializability oracle, random noticeboard operation sequences against a
dict model, and random message traffic against per-tag FIFO queues."""

from __future__ import annotations

import operator
from functools import partial

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bocpy import (REMOVED, TIMEOUT, Cown, drain, notice_delete, notice_update,
                   notice_write, noticeboard, receive, send, start, wait)
from bocpy.testing import check_runs

import prop_behaviors

N_COWNS = 8
request_sets = st.lists(
    st.tuples(st.integers(0, N_COWNS - 1), st.lists(st.integers(0, N_COWNS - 1), max_size=3)),
    min_size=1, max_size=60)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(request_sets)
def test_random_request_sets_are_serializable(sets) -> None:
    start(2)
    cowns = [Cown((k, 0)) for k in range(N_COWNS)]
    results = [prop_behaviors.visit(i, cowns[s], [cowns[g] for g in group])
               for i, (s, group) in enumerate(sets)]
    wait()
    runs = {}
    for r in results:
        assert r.exception is False, r.value
        bid, record = r.value
        runs[bid] = record
    order = [(i, {s, *group}) for i, (s, group) in enumerate(sets)]
    counts = check_runs(runs, [order])
    for k, c in enumerate(cowns):
        assert c.value == (k, counts.get(k, 0))


def _minus_one_or_remove(v):
    return REMOVED if v <= 1 else v - 1


board_ops = st.lists(st.tuples(
    st.sampled_from(["write", "delete", "inc", "dec"]),
    st.sampled_from(["a", "b", "c", "é", "k" * 63]),
    st.integers(-5, 5)), max_size=40)


@SETTINGS
@given(board_ops)
def test_noticeboard_matches_a_dict_model(ops) -> None:
    start(1)
    model: dict[str, int] = {}
    try:
        for op, key, value in ops:
            if op == "write":
                notice_write(key, value)
                model[key] = value
            elif op == "delete":
                notice_delete(key)
                model.pop(key, None)
            elif op == "inc":
                notice_update(key, partial(operator.add, 1), 0)
                model[key] = model.get(key, 0) + 1
            else:
                notice_update(key, _minus_one_or_remove, 0)
                cur = model.get(key, 0)
                if cur <= 1:
                    model.pop(key, None)
                else:
                    model[key] = cur - 1
            assert dict(noticeboard()) == model
    finally:
        wait()


traffic = st.lists(st.tuples(st.sampled_from(["p.x", "p.y", "p.z"]),
                             st.lists(st.integers(), max_size=20)), max_size=6)


@SETTINGS
@given(traffic)
def test_random_message_traffic_keeps_fifo_per_sender(plan) -> None:
    start(2)
    drain(["p.x", "p.y", "p.z"])
    senders = [prop_behaviors.chatter(tag, [(i, v) for v in values])
               for i, (tag, values) in enumerate(plan)]
    wait()
    assert all(s.exception is False for s in senders)
    got: dict[str, list] = {"p.x": [], "p.y": [], "p.z": []}
    for tag in got:
        while True:
            t, v = receive(tag, 0)
            if t == TIMEOUT:
                break
            got[tag].append(tuple(v))
    for i, (tag, values) in enumerate(plan):
        mine = [v for s, v in got[tag] if s == i]
        assert mine == values  # nothing lost, duplicated or reordered
    assert sum(map(len, got.values())) == sum(len(v) for _, v in plan)
    # Main-thread traffic too.
    for tag, values in plan:
        for v in values:
            send(tag, v)
    for tag, values in plan:
        assert [receive(tag, 0)[1] for _ in values] == values
