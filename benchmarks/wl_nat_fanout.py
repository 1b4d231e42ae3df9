"""Natural-style fanout: one producer spawning children on fresh cowns, its
body reading ``left`` and ``batch`` from the enclosing function and calling
module-level functions that schedule (no ``name=name`` parameters).

Usage: python wl_nat_fanout.py WORKERS N B
Prints one JSON line; throughput is children per second.
"""

import json
import sys
import time

from bocpy import Cown, quiesce, start, wait, when


def spawn_child(c):
    @when(c)
    def _child(c):
        c.value = c.value + 1


def produce(p, left, batch):
    @when(p)
    def _produce(p):
        for _ in range(batch):
            spawn_child(Cown(0))
        p.value = p.value + batch
        if left > 1:
            produce(p, left - 1, batch)


def run_round(p, steps, batch):
    produce(p, steps, batch)
    quiesce()


def main():
    workers, steps, batch = (int(a) for a in sys.argv[1:4])
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    p = Cown(0)
    warm = max(2, steps // 50)
    run_round(p, warm, batch)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    run_round(p, steps, batch)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    with p as v:
        produced = v
    wait()
    seconds = t1 - t0
    ops = steps * batch
    print(json.dumps({
        "workload": "nat_fanout",
        "params": {"workers": workers, "steps": steps, "batch": batch},
        "seconds": seconds, "cpu_seconds": cpu1 - cpu0, "startup_seconds": startup,
        "ops": ops, "ops_per_s": ops / seconds,
        "check": produced == (steps + warm) * batch,
    }))


if __name__ == "__main__":
    main()
