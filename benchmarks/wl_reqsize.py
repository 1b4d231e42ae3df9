"""Request-set size workload: behaviors acquiring G cowns at once.

K independent chains, each over its own group of G int cowns; every step is
one behavior that acquires the whole group (passed to ``@when`` as a list),
increments each cown, and schedules the chain's next step, for S steps.
Throughput is behaviors per second.

Usage: python wl_reqsize.py WORKERS K G S

Public API only; see wl_chain_ring.py for the portability rules followed.
"""

import json
import sys
import time

from bocpy import Cown, quiesce, start, wait, when


def group_step(group, left):
    @when(group)
    def _step(group, left=left):
        for c in group:
            c.value = c.value + 1
        if left > 1:
            group_step(group, left - 1)


def run_round(groups, steps):
    for g in groups:
        group_step(g, steps)
    quiesce()


def main():
    workers, chains, size, steps = (int(a) for a in sys.argv[1:5])
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    groups = [[Cown(0) for _ in range(size)] for _ in range(chains)]
    warm = max(2, steps // 50)
    run_round(groups, warm)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    run_round(groups, steps)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    ok = True
    for g in groups:
        for c in g:
            with c as v:
                ok = ok and v == steps + warm
    wait()
    seconds = t1 - t0
    ops = chains * steps
    print(json.dumps({
        "workload": "reqsize",
        "params": {"workers": workers, "chains": chains, "size": size, "steps": steps},
        "seconds": seconds,
        "cpu_seconds": cpu1 - cpu0,
        "startup_seconds": startup,
        "ops": ops,
        "ops_per_s": ops / seconds,
        "check": ok,
    }))


if __name__ == "__main__":
    main()
