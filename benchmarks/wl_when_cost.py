"""The cost of one ``@when`` on the main thread: decorate and schedule a body
that reads two variables of its enclosing function, over two cowns.

Times a loop calling ``sched(a, b, x, y)`` (a function whose body is the
``@when``) and the same loop calling ``plain(a, b, x, y)`` (same function,
same ``def``, no ``@when``); the difference per call is what ``@when``
itself costs.  Best of 7 rounds of N calls, with one worker running the
behaviors meanwhile; a ``quiesce()`` after each round is not timed.

Usage: python wl_when_cost.py N
Prints one JSON line (``when_us``, ``call_us``, ``plain_us``).
"""

import json
import sys
import time

from bocpy import Cown, quiesce, start, wait, when


def sched(a, b, x, y):
    @when(a, b)
    def _body(a, b):
        a.value = x + y


def plain(a, b, x, y):
    def _body(a, b):
        a.value = x + y


def best_of(fn, a, b, n, rounds=7):
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            fn(a, b, i, 2)
        best = min(best, time.perf_counter() - t0)
        quiesce()
    return best / n * 1e6


def main():
    n = int(sys.argv[1])
    start(1)
    a, b = Cown(0), Cown(0)
    best_of(sched, a, b, max(100, n // 10), rounds=1)  # warm up
    call_us = best_of(sched, a, b, n)
    plain_us = best_of(plain, a, b, n)
    with a as v:
        last = v
    wait()
    print(json.dumps({
        "workload": "when_cost", "params": {"calls": n},
        "call_us": call_us, "plain_us": plain_us, "when_us": call_us - plain_us,
        "ops": n, "check": last == n - 1 + 2,
    }))


if __name__ == "__main__":
    main()
