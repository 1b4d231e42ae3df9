"""Natural-style divide and conquer: a fibonacci-like recursion of nested
behaviors.  ``fib(n)`` schedules a behavior (over no cown) that, for n >= 2,
calls ``fib(n - 1)`` and ``fib(n - 2)`` from the worker; each leaf calls
``add``, which schedules the addition of its value to a total cown.  Bodies read ``n`` and ``total`` from the enclosing
function.

Usage: python wl_nat_fib.py WORKERS N
Prints one JSON line; throughput is behaviors per second (2 fib(N+1) - 1
splitting behaviors plus fib(N+1) leaf additions).
"""

import json
import sys
import time

from bocpy import Cown, quiesce, start, wait, when


def add(total, n):
    @when(total)
    def _leaf(total):
        total.value = total.value + n


def fib(n, total):
    @when()
    def _split():
        if n < 2:
            add(total, n)
        else:
            fib(n - 1, total)
            fib(n - 2, total)


def fib_ref(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def run_round(n, total):
    fib(n, total)
    quiesce()


def main():
    workers, n = (int(a) for a in sys.argv[1:3])
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    warm_total = Cown(0)
    run_round(min(n, 10), warm_total)
    total = Cown(0)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    run_round(n, total)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    with total as v:
        got = v
    wait()
    seconds = t1 - t0
    leaves = fib_ref(n + 1)
    ops = 2 * leaves - 1 + leaves
    print(json.dumps({
        "workload": "nat_fib",
        "params": {"workers": workers, "n": n},
        "seconds": seconds, "cpu_seconds": cpu1 - cpu0, "startup_seconds": startup,
        "ops": ops, "ops_per_s": ops / seconds,
        "check": got == fib_ref(n),
    }))


if __name__ == "__main__":
    main()
