"""Bank workload: transfers between accounts, each account in its own cown.

The main thread schedules T transfers between random pairs of A accounts;
a transfer is a behavior over (source, destination) that moves the amount
if the source covers it.  KIND says what an account cown holds:

* ``int``     -- the balance, an int;
* ``account`` -- an ``Account`` object as in the README (holder, balance,
  refused count): a value of the program's own class, which before issue 33
  was pickled at every hand-over between interpreters.

Throughput is transfers per second, from the first schedule to quiescence;
the check is that money is conserved.

Usage: python wl_bank.py WORKERS ACCOUNTS TRANSFERS KIND

Public API only (runs under the reference too): behaviors inside functions,
captured values passed as ``name=name`` parameters.
"""

import json
import random
import sys
import time

from bocpy import Cown, quiesce, start, wait, when

OPENING = 1000


class Account:
    """An account: its holder, its balance, its refused transfers."""

    def __init__(self, holder, balance):
        self.holder = holder
        self.balance = balance
        self.refused = 0


def transfer_int(src, dst, amount):
    @when(src, dst)
    def _t(src, dst, amount=amount):
        if src.value >= amount:
            src.value = src.value - amount
            dst.value = dst.value + amount


def transfer_account(src, dst, amount):
    @when(src, dst)
    def _t(src, dst, amount=amount):
        if src.value.balance < amount:
            src.value.refused += 1
        else:
            src.value.balance -= amount
            dst.value.balance += amount


def total_int(accounts):
    @when(accounts)
    def _total(accounts):
        return sum(a.value for a in accounts)
    return _total


def total_account(accounts):
    @when(accounts)
    def _total(accounts):
        return sum(a.value.balance for a in accounts)
    return _total


def run_round(accounts, plan, kind):
    transfer = transfer_int if kind == "int" else transfer_account
    for i, j, amount in plan:
        transfer(accounts[i], accounts[j], amount)
    quiesce()


def main():
    workers, n, transfers = (int(a) for a in sys.argv[1:4])
    kind = sys.argv[4]
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    if kind == "int":
        accounts = [Cown(OPENING) for _ in range(n)]
    else:
        accounts = [Cown(Account(f"holder{k}", OPENING)) for k in range(n)]
    rng = random.Random(33)

    def make_plan(count):
        plan = []
        for _ in range(count):
            i, j = rng.sample(range(n), 2)
            plan.append((i, j, rng.randint(1, 200)))
        return plan

    run_round(accounts, make_plan(max(100, transfers // 20)), kind)  # warm-up
    plan = make_plan(transfers)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    run_round(accounts, plan, kind)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    total = (total_int if kind == "int" else total_account)(accounts)
    wait()
    seconds = t1 - t0
    print(json.dumps({
        "workload": "bank",
        "params": {"workers": workers, "accounts": n, "transfers": transfers,
                   "kind": kind},
        "seconds": seconds,
        "cpu_seconds": cpu1 - cpu0,
        "startup_seconds": startup,
        "ops": transfers,
        "ops_per_s": transfers / seconds,
        "check": total.value == OPENING * n,
    }))


if __name__ == "__main__":
    main()
