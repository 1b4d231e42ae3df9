"""Checking runs of behaviors against the BoC ordering rules (a test aid).

A workload gives every cown a version counter; each behavior records, for
every cown it held, the version it saw (and bumps it).  :func:`check_runs`
then verifies, for those records:

* exclusivity and exactly-once per cown: the versions seen on each cown are
  exactly ``base .. base+n-1``, each once;
* one total order: the union of the per-cown successions is acyclic (the
  logs agree with a single serial order of all behaviors);
* scheduling order: within each given sequence of behaviors scheduled one
  after another by one thread or behavior, two that share a cown ran on it in
  that order.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Iterable, Mapping, Sequence


class OrderViolation(AssertionError):
    """The records contradict the ordering rules (the message says how)."""


def check_runs(runs: Mapping[int, Sequence[tuple[int, int]]],
               sequences: Iterable[Sequence[tuple[int, Iterable[int]]]] = (),
               base: Mapping[int, int] | None = None) -> dict[int, int]:
    """Check behavior records; return ``{cown: number of behaviors that held it}``.

    Args:
        runs: behavior id -> ``[(cown, version seen), ...]``.
        sequences: each a list of ``(behavior id, cowns requested)`` in the
            order one thread or behavior scheduled them.
        base: cown -> the version it held before these behaviors (0 when
            absent), for workloads checked in rounds.

    Raises:
        OrderViolation: describing the first rule broken.
    """
    per_cown: dict[int, dict[int, int]] = defaultdict(dict)
    for bid, visits in runs.items():
        seen_here: set[int] = set()
        for k, version in visits:
            if k in seen_here:
                raise OrderViolation(f"behavior {bid} recorded cown {k} twice")
            seen_here.add(k)
            if version in per_cown[k]:
                raise OrderViolation(
                    f"cown {k}: version {version} seen by behaviors "
                    f"{per_cown[k][version]} and {bid}")
            per_cown[k][version] = bid
    base = base or {}
    for k, versions in per_cown.items():
        first = base.get(k, 0)
        if sorted(versions) != list(range(first, first + len(versions))):
            raise OrderViolation(
                f"cown {k}: versions seen are not {first}..{first + len(versions) - 1}")

    succ: dict[int, set[int]] = defaultdict(set)
    indeg = {bid: 0 for bid in runs}
    for versions in per_cown.values():
        order = [versions[v] for v in sorted(versions)]
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
    if done != len(runs):
        raise OrderViolation("the per-cown orders contradict each other (cycle)")

    version_of = {bid: dict(v) for bid, v in runs.items()}
    for seq in sequences:
        last_on: dict[int, int] = {}
        for bid, ks in seq:
            for k in ks:
                prev = last_on.get(k)
                if prev is not None and version_of[prev][k] >= version_of[bid][k]:
                    raise OrderViolation(
                        f"cown {k}: behavior {bid} was scheduled after {prev} "
                        f"but ran before it")
                last_on[k] = bid
    return {k: len(v) for k, v in per_cown.items()}
