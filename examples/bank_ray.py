"""The bank on a Ray cluster: the same @when program, started on Ray.

1000 accounts, 20k transfers scheduled from this thread; a transfer that
the source cannot cover is refused (and counted on the source), so the
final balances depend on the order.  Each transfer is a behavior over two
cowns; on the Ray backend it runs as (part of) a Ray task on whichever node
Ray picks, and the order is still the one the program scheduled them in:
the script replays the transfers one by one with plain integers and
compares.

Run:  python examples/bank_ray.py                # a Ray started here
      python examples/bank_ray.py --address auto # an existing cluster
      BOCPY_BANK_TRANSFERS=2000 python examples/bank_ray.py
"""

import argparse
import os
import random
import time

import bocpy
import bocpy.ray
from bocpy import Cown, wait, when

ACCOUNTS = 1000
TRANSFERS = int(os.environ.get("BOCPY_BANK_TRANSFERS", "20000"))
OPENING = 100
MAX_AMOUNT = 80
SEED = 29


def make_plan(accounts, transfers, seed=SEED):
    """A reproducible list of (source, destination, amount)."""
    rng = random.Random(seed)
    plan = []
    for _ in range(transfers):
        i, j = rng.sample(range(accounts), 2)
        plan.append((i, j, rng.randint(1, MAX_AMOUNT)))
    return plan


def serial_replay(accounts, plan):
    """The balances, refusal counts and per-transfer outcomes of running
    the plan one at a time."""
    balance = [OPENING] * accounts
    refused = [0] * accounts
    moved = []
    for i, j, amount in plan:
        if balance[i] < amount:
            refused[i] += 1
            moved.append(False)
        else:
            balance[i] -= amount
            balance[j] += amount
            moved.append(True)
    return balance, refused, moved


def schedule(cowns, plan):
    """Schedule every transfer of the plan; returns the result cowns."""
    results = []
    for i, j, amount in plan:

        @when(cowns[i], cowns[j])
        def moved(src, dst):
            # ``amount`` is captured by value when the behavior is scheduled.
            if src.value[0] < amount:
                src.value[1] += 1
                return False
            src.value[0] -= amount
            dst.value[0] += amount
            return True

        results.append(moved)
    return results


def run(accounts=ACCOUNTS, transfers=TRANSFERS):
    """Run the bank on the started runtime; True when it matches the
    serial replay exactly."""
    plan = make_plan(accounts, transfers)
    cowns = [Cown([OPENING, 0]) for _ in range(accounts)]
    results = schedule(cowns, plan)
    wait()
    balance, refused, moved = serial_replay(accounts, plan)
    got = [c.value for c in cowns]
    # Result cowns too (a sample: each read is one ray.get).
    sample = range(0, len(plan), max(1, len(plan) // 200))
    return (got == [[b, r] for b, r in zip(balance, refused)]
            and all(results[k].value == moved[k] for k in sample))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=None,
                        help="an existing Ray cluster ('auto'), else a local Ray")
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    bocpy.start(backend="ray", address=args.address,
                num_cpus=None if args.address else args.num_cpus)
    t0 = time.perf_counter()
    ok = run()
    elapsed = time.perf_counter() - t0
    print(f"{TRANSFERS} transfers over {ACCOUNTS} accounts in {elapsed:.1f} s "
          f"({TRANSFERS / elapsed:.0f}/s)")
    print("behaviors per Ray node:", bocpy.ray.stats()["nodes"])
    print("matches serial replay:", ok)


if __name__ == "__main__":
    main()
