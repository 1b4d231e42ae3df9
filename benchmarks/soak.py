"""Soak: a long mixed workload checked by the serializability oracle.

    python benchmarks/soak.py [--behaviors 1000000] [--round 50000] [--workers 2]

Each round schedules behaviors over random request sets (1-4 of 64 cowns,
some as groups), a quarter of which schedule two nested behaviors from their
bodies; every tenth sends a numbered message to the main interpreter and
every seventh bumps a noticeboard counter.  After each round the records go
through bocpy.testing.check_runs (exactly once, exclusivity, one total order,
scheduling order), the messages are checked (all arrived, each sender's order
kept) and so is the counter; then the records are dropped, so memory must
stay flat from round to round: the resident set size is printed per round and
the run fails if it grows by more than --rss-slack-mib after round 2.

Then --pool-cycles (300) cycles of ``start(1 + i % 3)``, one behavior and
``wait()``: changing the worker count must not leak (the pool keeps its
interpreters and reuses them), so the resident set size at the end must be
within 10% of the size after the first 30 cycles (issue #26).
"""

from __future__ import annotations

import argparse
import operator
import random
import sys
import time
from functools import partial

from bocpy import (Cown, TIMEOUT, notice_read, notice_update, receive, send, start,
                   wait, when)
from bocpy.testing import check_runs

N_COWNS = 64


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def behave(bid, single, group, children, talk, bump):
    @when(single, group)
    def b(single, group):
        unique = []
        for c in [single, *group]:
            if c not in unique:
                unique.append(c)
        record = []
        for c in unique:
            k, version = c.value
            record.append((k, version))
            c.value = (k, version + 1)
        if talk:
            send("soak", bid)
        if bump:
            notice_update("soak-bumps", partial(operator.add, 1), 0)
        kids = [behave(cbid, cs, cg, [], False, False) for cbid, cs, cg in children]
        return bid, record, kids

    return b


def run_round(rng: random.Random, cowns: list[Cown], first_id: int, count: int):
    """Schedules one round; returns (records, sequences, senders, bumps)."""
    next_id = first_id
    main_order = []
    child_orders = []
    results = []
    talkers = []
    bumps = 0

    def pick():
        ks = [rng.randrange(N_COWNS) for _ in range(rng.randint(1, 4))]
        return cowns[ks[0]], [cowns[k] for k in ks[1:]], set(ks)

    while next_id < first_id + count:
        single, group, ks = pick()
        bid = next_id
        next_id += 1
        children = []
        if bid % 4 == 0:
            kids = []
            for _ in range(2):
                cs, cg, cks = pick()
                children.append((next_id, cs, cg))
                kids.append((next_id, cks))
                next_id += 1
            child_orders.append(kids)
        talk, bump = bid % 10 == 0, bid % 7 == 0
        talkers += [bid] if talk else []
        bumps += bump
        main_order.append((bid, ks))
        results.append(behave(bid, single, group, children, talk, bump))
    return results, [main_order, *child_orders], talkers, bumps, next_id


def pool_cycles(cycles: int) -> None:
    """``start(1 + i % 3)`` cycles: RSS flat within 10% after the first 30
    (every pool size has been made by then)."""
    if cycles <= 0:
        return
    counter = Cown(0)
    base = None
    for i in range(cycles):
        start(1 + i % 3)

        @when(counter)
        def _(c):
            c.value += 1

        wait()
        if i == min(29, cycles - 1):
            base = rss_mib()
    end = rss_mib()
    if counter.value != cycles:
        raise SystemExit(f"pool cycles: {counter.value} of {cycles} behaviors ran")
    print(f"pool cycles: {cycles} starts of 1-3 workers, rss {base:.1f} -> {end:.1f} MiB",
          flush=True)
    if base is not None and end > base * 1.10:
        raise SystemExit(f"pool cycles: resident memory grew from {base:.1f} to {end:.1f} MiB")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--behaviors", type=int, default=1_000_000)
    ap.add_argument("--round", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rss-slack-mib", type=float, default=64.0)
    ap.add_argument("--pool-cycles", type=int, default=300)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    start(args.workers)
    cowns = [Cown((k, 0)) for k in range(N_COWNS)]
    totals = [0] * N_COWNS
    done = 0
    rss_base = None
    t0 = time.perf_counter()
    rnd = 0
    while done < args.behaviors:
        rnd += 1
        results, sequences, talkers, bumps, next_id = run_round(
            rng, cowns, done, min(args.round, args.behaviors - done))
        board = wait(noticeboard=True)
        runs = {}
        pending = list(results)
        while pending:
            r = pending.pop()
            if r.exception:
                raise SystemExit(f"behavior failed: {r.value!r}")
            bid, record, kids = r.value
            runs[bid] = record
            pending.extend(kids)
        if len(runs) != next_id - done:
            raise SystemExit(f"round {rnd}: {next_id - done - len(runs)} behaviors lost")
        counts = check_runs(runs, sequences, dict(enumerate(totals)))
        for k, n in counts.items():
            totals[k] += n
            if cowns[k].value != (k, totals[k]):
                raise SystemExit(f"cown {k} holds {cowns[k].value}, expected {totals[k]}")
        got = []
        while True:
            tag, bid = receive("soak", 0)
            if tag == TIMEOUT:
                break
            got.append(bid)
        if sorted(got) != talkers:
            raise SystemExit(f"round {rnd}: messages lost or duplicated")
        if board.get("soak-bumps", 0) != bumps:
            raise SystemExit(f"round {rnd}: noticeboard counter {board.get('soak-bumps')} != {bumps}")
        done = next_id
        del results, runs, pending, sequences
        rss = rss_mib()
        if rnd == 2:
            rss_base = rss
        print(f"round {rnd}: {done} behaviors checked, rss {rss:.1f} MiB, "
              f"{done / (time.perf_counter() - t0):.0f} behaviors/s", flush=True)
        if rss_base is not None and rss - rss_base > args.rss_slack_mib:
            raise SystemExit(f"resident memory grew by {rss - rss_base:.1f} MiB")
    wait()
    pool_cycles(args.pool_cycles)
    print(f"soak OK: {done} behaviors, {rnd} rounds, "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
