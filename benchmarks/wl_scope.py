"""The cost of structured scopes (issue #32).

Three shapes, each timed unscoped (then ``quiesce()``) and inside a
``bocpy.scope()`` (whose end is the wait), best of R rounds:

* ``fanout``: the main thread schedules N behaviors over fresh cowns;
* ``spawn``: N/10 behaviors each schedule 10 children from a worker (the
  children inherit the scope there);
* ``empty``: entering and leaving a scope with nothing in it (per scope).

Usage: python wl_scope.py WORKERS N [ROUNDS]
Prints one JSON line with microseconds per behavior (or per empty scope)
for each shape, unscoped and scoped, and the scoped/unscoped ratios.
"""

import json
import sys
import time

import bocpy
from bocpy import Cown, quiesce, start, wait, when


def leaf(c):
    @when(c)
    def _leaf(c):
        c.value = c.value + 1


def spawner(c, k):
    @when(c)
    def _spawn(c, k=k):
        for _ in range(k):
            leaf(Cown(0))


def fanout(n):
    for _ in range(n):
        leaf(Cown(0))


def spawn(n):
    for _ in range(n // 10):
        spawner(Cown(0), 10)


def timed(fn, n, scoped, rounds):
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        if scoped:
            with bocpy.scope():
                fn(n)
        else:
            fn(n)
            quiesce()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def empty_scopes(n, rounds):
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            with bocpy.scope():
                pass
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main():
    workers, n = int(sys.argv[1]), int(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    start(workers)
    timed(fanout, max(100, n // 10), False, 1)  # warm up
    timed(fanout, max(100, n // 10), True, 1)
    out = {"workload": "scope", "params": {"workers": workers, "n": n, "rounds": rounds}}
    for name, fn in (("fanout", fanout), ("spawn", spawn)):
        # Alternate so that a noisy moment hits both the same way.
        plain = min(timed(fn, n, False, rounds), timed(fn, n, False, rounds))
        scoped = min(timed(fn, n, True, rounds), timed(fn, n, True, rounds))
        out[f"{name}_us"] = plain
        out[f"{name}_scoped_us"] = scoped
        out[f"{name}_ratio"] = scoped / plain
    out["empty_scope_us"] = empty_scopes(max(100, n // 10), rounds)
    wait()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
