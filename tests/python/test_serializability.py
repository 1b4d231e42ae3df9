"""Serializability oracle: >= 100,000 behaviors over random request sets.

Every cown holds a version counter.  A behavior records, for each cown it
holds, the version it saw, then bumps it.  Afterwards:

* exactly once: every behavior ran once (its result holds its record);
* exclusivity: on each cown the versions seen are exactly 0..n-1;
* one total order: the union of the per-cown orders is acyclic;
* scheduling order: two behaviors scheduled one after the other (from the
  main thread, or by the same parent behavior) that share a cown run in that
  order on it.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque

import pytest

from bocpy import Cown, start, wait, when
from bocpy.testing import OrderViolation, check_runs

N_COWNS = 64
N_MAIN = 80_000   # scheduled from the main thread
CHILD_EVERY = 4   # every 4th behavior schedules two children: +40,000


def visit(bid: int, cowns: list[Cown]) -> list[tuple[int, int, int]]:
    seen = []
    for c in cowns:
        k, version = c.value
        seen.append((bid, k, version))
        c.value = (k, version + 1)
    return seen


def behave(bid, single, group, children):
    """Schedules behavior `bid` over `single` (a cown) and `group` (a list)."""

    @when(single, group)
    def b(single, group):
        cowns = [single] + list(group)
        unique = []
        for c in cowns:
            if c not in unique:
                unique.append(c)
        record = visit(bid, unique)
        kids = [behave(cbid, cs, cg, []) for cbid, cs, cg in children]
        return record, kids

    return b


def test_serializability_oracle() -> None:
    rng = random.Random(1234)
    start(2)
    cowns = [Cown((k, 0)) for k in range(N_COWNS)]
    next_id = 0
    schedule_order: list[tuple[int, set[int]]] = []  # main thread order
    child_orders: list[list[tuple[int, set[int]]]] = []
    results = []

    def pick() -> tuple[Cown, list[Cown], set[int]]:
        ks = [rng.randrange(N_COWNS) for _ in range(rng.randint(1, 4))]
        return cowns[ks[0]], [cowns[k] for k in ks[1:]], set(ks)

    for _ in range(N_MAIN):
        single, group, ks = pick()
        bid = next_id
        next_id += 1
        children = []
        if bid % CHILD_EVERY == 0:
            kids = []
            for _ in range(2):
                cs, cg, cks = pick()
                children.append((next_id, cs, cg))
                kids.append((next_id, cks))
                next_id += 1
            child_orders.append(kids)
        schedule_order.append((bid, ks))
        results.append(behave(bid, single, group, children))
    wait()

    # Collect every record (children's results come back as cowns).
    runs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    pending = deque(results)
    while pending:
        r = pending.popleft()
        assert r.exception is False, r.value
        record, kids = r.value
        for bid, k, version in record:
            runs[bid].append((k, version))
        pending.extend(kids)
    assert len(runs) == next_id >= 100_000  # nothing lost
    counts = check_runs(runs, [schedule_order, *child_orders])
    for k, n in counts.items():
        assert cowns[k].value == (k, n)



def test_the_oracle_catches_violations() -> None:
    good = {0: [(1, 0)], 1: [(1, 1), (2, 0)], 2: [(2, 1)]}
    check_runs(good, [[(0, {1}), (1, {1, 2}), (2, {2})]])
    with pytest.raises(OrderViolation, match="versions seen"):
        check_runs({0: [(1, 0)], 1: [(1, 2)]})
    with pytest.raises(OrderViolation, match="seen by behaviors"):
        check_runs({0: [(1, 0)], 1: [(1, 0)]})
    with pytest.raises(OrderViolation, match="cycle"):
        check_runs({0: [(1, 0), (2, 1)], 1: [(1, 1), (2, 0)]})
    with pytest.raises(OrderViolation, match="ran before it"):
        check_runs(good, [[(1, {1}), (0, {1})]])
