"""Baselines for the CPU payload without bocpy.

Runs M tasks of the same pure-Python loop (L iterations) as wl_cpu.py on W
workers with one of:

* ``thread``      -- W threading.Thread objects, the tasks split evenly
                     (the GIL serialises them: expect no speed-up);
* ``mp_pool``     -- multiprocessing.Pool(W).map with its default chunking;
* ``mp_pool_c1``  -- multiprocessing.Pool(W).map with chunksize=1 (one
                     hand-off per task, like one behavior per task);
* ``ppe``         -- concurrent.futures.ProcessPoolExecutor(W).map
                     (chunksize=1, its default).

Pools are created and warmed before timing; their start-up time is reported
separately.  Prints one JSON line like the bocpy workloads.

Usage: python wl_baseline.py MODE WORKERS M L
"""

import concurrent.futures
import json
import multiprocessing
import sys
import threading
import time


def spin(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def run_threads(workers, tasks, iters):
    results = []

    def body(count):
        out = 0
        for _ in range(count):
            out = spin(iters)
        results.append(out)

    shares = [tasks // workers + (1 if i < tasks % workers else 0) for i in range(workers)]
    threads = [threading.Thread(target=body, args=(n,)) for n in shares]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    return 0.0, t1 - t0, cpu1 - cpu0, results[-1]


def run_pool(make, workers, tasks, iters, chunksize):
    s0 = time.perf_counter()
    pool = make(workers)
    list(pool.map(spin, [1] * (4 * workers)))  # warm: every process up
    s1 = time.perf_counter()
    kw = {} if chunksize is None else {"chunksize": chunksize}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    out = list(pool.map(spin, [iters] * tasks, **kw))
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    if isinstance(pool, concurrent.futures.Executor):
        pool.shutdown()
    else:
        pool.close()
        pool.join()
    # CPU time of the parent only: the children's is not visible here.
    return s1 - s0, t1 - t0, cpu1 - cpu0, out[-1]


def main():
    mode = sys.argv[1]
    workers, tasks, iters = (int(a) for a in sys.argv[2:5])
    if mode == "thread":
        startup, seconds, cpu, last = run_threads(workers, tasks, iters)
    elif mode == "mp_pool":
        startup, seconds, cpu, last = run_pool(multiprocessing.Pool, workers, tasks, iters, None)
    elif mode == "mp_pool_c1":
        startup, seconds, cpu, last = run_pool(multiprocessing.Pool, workers, tasks, iters, 1)
    elif mode == "ppe":
        startup, seconds, cpu, last = run_pool(
            lambda n: concurrent.futures.ProcessPoolExecutor(max_workers=n),
            workers, tasks, iters, None)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps({
        "workload": "baseline_" + mode,
        "params": {"mode": mode, "workers": workers, "tasks": tasks, "iters": iters},
        "seconds": seconds,
        "cpu_seconds": cpu,
        "startup_seconds": startup,
        "ops": tasks,
        "ops_per_s": tasks / seconds,
        "check": last == spin(iters),
    }))


if __name__ == "__main__":
    main()
