"""Natural-style main-thread pipeline, and the cost of one ``@when``.

The main thread pushes N items through a pipeline of three stage cowns: for
each item, one behavior per stage, over that stage's cown and the next one
(two cowns), whose body reads the item and the stage number from the
enclosing function (two captures).  Throughput is behaviors per second from
the first schedule to quiescence; ``when_us`` is the main thread's time per
``@when`` (decorate and schedule), measured over the scheduling loop alone.

Usage: python wl_nat_pipeline.py WORKERS N
"""

import json
import sys
import time

from bocpy import Cown, quiesce, start, wait, when


def stage(a, b, item, k):
    @when(a, b)
    def _stage(a, b):
        a.value = a.value + item
        b.value = b.value + k


def run_round(stages, n):
    t0 = time.perf_counter()
    for item in range(n):
        stage(stages[0], stages[1], item, 1)
        stage(stages[1], stages[2], item, 2)
        stage(stages[2], stages[3], item, 3)
    t1 = time.perf_counter()
    quiesce()
    return t1 - t0


def main():
    workers, n = (int(a) for a in sys.argv[1:3])
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    stages = tuple(Cown(0) for _ in range(4))
    warm = max(10, n // 50)
    run_round(stages, warm)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    loop = run_round(stages, n)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    values = []
    for c in stages:
        with c as v:
            values.append(v)
    wait()
    seconds = t1 - t0
    ops = 3 * n
    tri = lambda m: m * (m - 1) // 2  # noqa: E731
    expect = [tri(warm) + tri(n), tri(warm) + tri(n) + (warm + n),
              tri(warm) + tri(n) + 2 * (warm + n), 3 * (warm + n)]
    print(json.dumps({
        "workload": "nat_pipeline",
        "params": {"workers": workers, "items": n},
        "seconds": seconds, "cpu_seconds": cpu1 - cpu0, "startup_seconds": startup,
        "ops": ops, "ops_per_s": ops / seconds, "when_us": loop / ops * 1e6,
        "check": values == expect,
    }))


if __name__ == "__main__":
    main()
