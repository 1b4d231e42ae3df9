"""Natural-style chain ring: bodies capture enclosing variables and call a
module-level function that schedules the next step.

K chains walk a ring of 2K int cowns; each step holds two adjacent cowns,
increments both, and calls ``step`` (a module-level function) for the next
position, until every chain has made S steps.  Unlike wl_chain_ring.py the
body takes no ``name=name`` parameters: ``ring``, ``pos`` and ``left`` are
read from the enclosing function, the way API.md section 5.5 shows.

Usage: python wl_nat_chain.py WORKERS K S
Prints one JSON line; throughput is behaviors (steps) per second.
"""

import json
import sys
import time

from bocpy import Cown, quiesce, start, wait, when


def step(a, b, ring, pos, left):
    @when(a, b)
    def _step(a, b):
        a.value = a.value + 1
        b.value = b.value + 1
        if left > 1:
            nxt = (pos + 1) % len(ring)
            step(ring[nxt], ring[(nxt + 1) % len(ring)], ring, nxt, left - 1)


def run_round(ring, chains, steps):
    n = len(ring)
    for k in range(chains):
        pos = (2 * k) % n
        step(ring[pos], ring[(pos + 1) % n], ring, pos, steps)
    quiesce()


def main():
    workers, chains, steps = (int(a) for a in sys.argv[1:4])
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    ring = tuple(Cown(0) for _ in range(2 * chains))
    warm = max(2, steps // 50)
    run_round(ring, chains, warm)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    run_round(ring, chains, steps)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    total = 0
    for c in ring:
        with c as v:
            total += v
    wait()
    seconds = t1 - t0
    ops = chains * steps
    print(json.dumps({
        "workload": "nat_chain",
        "params": {"workers": workers, "chains": chains, "steps": steps},
        "seconds": seconds, "cpu_seconds": cpu1 - cpu0, "startup_seconds": startup,
        "ops": ops, "ops_per_s": ops / seconds,
        "check": total == 2 * chains * (steps + warm),
    }))


if __name__ == "__main__":
    main()
