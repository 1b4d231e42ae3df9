"""CPU-parallelism workload: M independent behaviors of pure-Python work.

Main schedules M behaviors, each on its own fresh cown, each running a
pure-Python arithmetic loop of L iterations.  Reports wall time, the
process's CPU time over the same interval (all threads), their ratio (how
many cores were busy on average) and tasks per second.

Usage: python wl_cpu.py WORKERS M L

Public API only; see wl_chain_ring.py for the portability rules followed.
"""

import json
import sys
import time

from bocpy import Cown, quiesce, start, wait, when


def spin(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def spawn(c, iters):
    @when(c)
    def _task(c, iters=iters):
        c.value = spin(iters)


def run_round(cowns, iters):
    for c in cowns:
        spawn(c, iters)
    quiesce()


def main():
    workers, tasks, iters = (int(a) for a in sys.argv[1:4])
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    cowns = [Cown(0) for _ in range(tasks)]
    run_round(cowns[: max(2 * workers, tasks // 50)], iters)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    run_round(cowns, iters)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    expected = spin(iters)
    ok = True
    for c in cowns[:: max(1, tasks // 64)]:
        with c as v:
            ok = ok and v == expected
    wait()
    seconds = t1 - t0
    cpu = cpu1 - cpu0
    print(json.dumps({
        "workload": "cpu",
        "params": {"workers": workers, "tasks": tasks, "iters": iters},
        "seconds": seconds,
        "cpu_seconds": cpu,
        "cpu_per_wall": cpu / seconds,
        "startup_seconds": startup,
        "ops": tasks,
        "ops_per_s": tasks / seconds,
        "check": ok,
    }))


if __name__ == "__main__":
    main()
