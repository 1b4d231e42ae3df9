"""Many trivial tasks (issue 33): bocpy.map against ProcessPoolExecutor.map.

Usage: python wl_bulk.py MODE WORKERS N CHUNKSIZE

MODE:

* ``map``  -- ``bocpy.map(task, range(N), chunksize=CHUNKSIZE)`` (ours only);
* ``when`` -- one ``@when`` per item, each on a fresh cown, results read
  after ``quiesce`` (runs under the reference too: the per-item baseline);
* ``ppe``  -- ``concurrent.futures.ProcessPoolExecutor(WORKERS).map(task,
  range(N), chunksize=CHUNKSIZE)`` (the pool is started and warmed up
  before timing, as bocpy's workers are).

The task is trivial (``x * 2 + 1``), so what is measured is the cost of
getting items to the workers and the results back.  Prints one JSON line
(see workloads.py); the check is the sum of the results.
"""

import json
import sys
import time

from bocpy import Cown, quiesce, start, wait, when


def task(x):
    return x * 2 + 1


def run_map(workers, n, chunksize):
    import bocpy
    bocpy.start(workers)
    s = sum(bocpy.map(task, range(1000), chunksize=100))  # warm-up
    t0 = time.perf_counter()
    c0 = time.process_time()
    s = sum(bocpy.map(task, range(n), chunksize=chunksize))
    c1 = time.process_time()
    t1 = time.perf_counter()
    bocpy.wait()
    return t1 - t0, c1 - c0, s


def spawn(c, x):
    @when(c)
    def _t(c, x=x):
        c.value = x * 2 + 1


def run_when(workers, n):
    start(workers)
    warm = [Cown(0) for _ in range(100)]
    for i, c in enumerate(warm):
        spawn(c, i)
    quiesce()
    cowns = [Cown(0) for _ in range(n)]
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i, c in enumerate(cowns):
        spawn(c, i)
    quiesce()
    s = 0
    for c in cowns:
        with c as v:
            s += v
    c1 = time.process_time()
    t1 = time.perf_counter()
    wait()
    return t1 - t0, c1 - c0, s


def run_ppe(workers, n, chunksize):
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as ex:
        sum(ex.map(task, range(1000), chunksize=100))  # start the processes
        t0 = time.perf_counter()
        c0 = time.process_time()
        s = sum(ex.map(task, range(n), chunksize=chunksize))
        c1 = time.process_time()
        t1 = time.perf_counter()
    return t1 - t0, c1 - c0, s


def main():
    mode = sys.argv[1]
    workers, n, chunksize = (int(a) for a in sys.argv[2:5])
    if mode == "map":
        seconds, cpu, s = run_map(workers, n, chunksize)
    elif mode == "when":
        seconds, cpu, s = run_when(workers, n)
    elif mode == "ppe":
        seconds, cpu, s = run_ppe(workers, n, chunksize)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps({
        "workload": "bulk",
        "params": {"mode": mode, "workers": workers, "tasks": n, "chunksize": chunksize},
        "seconds": seconds,
        "cpu_seconds": cpu,  # this process only (ppe: its workers are not counted)
        "startup_seconds": 0.0,
        "ops": n,
        "ops_per_s": n / seconds,
        "check": s == n * n,  # sum(2x + 1) over range(n) = n(n-1) + n
    }))


if __name__ == "__main__":
    main()
