"""The cost of structured scopes (issue #32).

Three shapes, each timed unscoped (then ``quiesce()``) and inside a
``bocpy.scope()`` (whose end is the wait), best of R rounds:

* ``fanout``: the main thread schedules N behaviors over fresh cowns;
* ``spawn``: N/10 behaviors each schedule 10 children from a worker (the
  children inherit the scope there);
* ``empty``: entering and leaving a scope with nothing in it (per scope).

Usage: python wl_scope.py WORKERS N [ROUNDS]
Prints one JSON line with microseconds per behavior (or per empty scope)
for each shape, unscoped and scoped, wall-clock and process CPU time (all
threads), and the scoped/unscoped ratios.
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
    """Best wall-clock and best process CPU time (all threads) per behavior,
    in microseconds: CPU time is the steadier one on a shared machine."""
    best = cpu_best = float("inf")
    for _ in range(rounds):
        c0 = time.process_time()
        t0 = time.perf_counter()
        if scoped:
            with bocpy.scope():
                fn(n)
        else:
            fn(n)
            quiesce()
        best = min(best, time.perf_counter() - t0)
        cpu_best = min(cpu_best, time.process_time() - c0)
    return best / n * 1e6, cpu_best / n * 1e6


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
        # Interleaved, so that a noisy moment hits both the same way.
        plain, scoped = [], []
        for _ in range(3):
            plain.append(timed(fn, n, False, rounds))
            scoped.append(timed(fn, n, True, rounds))
        for key, runs in (("", plain), ("_scoped", scoped)):
            out[f"{name}{key}_us"] = min(r[0] for r in runs)
            out[f"{name}{key}_cpu_us"] = min(r[1] for r in runs)
        out[f"{name}_ratio"] = out[f"{name}_scoped_us"] / out[f"{name}_us"]
        out[f"{name}_cpu_ratio"] = out[f"{name}_scoped_cpu_us"] / out[f"{name}_cpu_us"]
    out["empty_scope_us"] = empty_scopes(max(100, n // 10), rounds)
    wait()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
