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

from bocpy import Cown, start, wait, when

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
    assert all(len(v) == len({k for k, _ in v}) for v in runs.values())

    # Exclusivity and exactly-once per cown: versions 0..n-1.
    per_cown: dict[int, dict[int, int]] = defaultdict(dict)
    for bid, visits in runs.items():
        for k, version in visits:
            assert version not in per_cown[k], f"cown {k} version {version} seen twice"
            per_cown[k][version] = bid
    for k, versions in per_cown.items():
        assert sorted(versions) == list(range(len(versions)))
        assert cowns[k].value == (k, len(versions))

    # One total order: the per-cown successions form an acyclic graph.
    succ: dict[int, set[int]] = defaultdict(set)
    indeg: dict[int, int] = {bid: 0 for bid in runs}
    for versions in per_cown.values():
        order = [versions[v] for v in range(len(versions))]
        for a, b in zip(order, order[1:]):
            if b not in succ[a]:
                succ[a].add(b)
                indeg[b] += 1
    ready = deque(bid for bid, d in indeg.items() if d == 0)
    done = 0
    while ready:
        a = ready.popleft()
        done += 1
        for b in succ[a]:
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    assert done == len(runs), "per-cown orders contradict each other"

    # Scheduling order respected on shared cowns.
    version_of = {bid: dict(v) for bid, v in runs.items()}

    def check_sequence(seq: list[tuple[int, set[int]]]) -> None:
        last_on: dict[int, int] = {}
        for bid, ks in seq:
            for k in ks:
                if k in last_on:
                    assert version_of[last_on[k]][k] < version_of[bid][k]
                last_on[k] = bid

    check_sequence(schedule_order)
    for kids in child_orders:
        check_sequence(kids)
