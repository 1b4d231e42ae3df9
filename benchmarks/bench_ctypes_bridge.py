"""The ctypes bridge: per-call overhead, and foreign code on parallel workers.

    python benchmarks/bench_ctypes_bridge.py [--calls 2000] [--repeat 5]
                                             [--quick] [--json]

1. Per-call overhead on the main interpreter: the same foreign function
   called through ctypes and through a ``CFunction`` (best of --repeat runs
   of many calls; the function itself does almost nothing, so the time is
   the bridge's).
2. Parallel throughput of a foreign function that takes about 100 us
   (zlib's crc32 over a buffer sized at start-up so that one call takes
   ~100 us): --calls calls, in behaviors of 20 calls each spread over two
   buffers (two cowns holding a ``Foreign`` each), with 1 and with 2
   workers; for reference the same calls through ctypes on the main thread
   alone and from two Python threads (ctypes releases the GIL too).

--json prints one JSON line with every figure (the smoke test reads it).
ctypes is imported inside functions that run on main only: workers import
this file to run its behaviors, and on 3.12 ``import ctypes`` fails there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import timeit
from typing import Any, Callable

import bocpy
from bocpy import Cown, wait, when
from bocpy.plugins.ctypes_bridge import CFunction, Foreign

BATCH = 20  # foreign calls per behavior


def best_per_call(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Seconds per call: the best of `repeat` runs of `number` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def declare() -> dict[str, Any]:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(None)
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    libc.memset.restype = ctypes.c_void_p
    libc.labs.argtypes = [ctypes.c_long]
    libc.labs.restype = ctypes.c_long
    name = ctypes.util.find_library("z")
    if name is None:
        sys.exit("bench_ctypes_bridge.py needs zlib's shared library (libz)")
    crc32 = ctypes.CDLL(name).crc32
    crc32.argtypes = [ctypes.c_ulong, ctypes.c_void_p, ctypes.c_uint]
    crc32.restype = ctypes.c_ulong
    return {"libc": libc, "crc32": crc32}


def overhead(fns: dict[str, Any], repeat: int, number: int) -> list[dict[str, Any]]:
    libc, crc32 = fns["libc"], fns["crc32"]
    labs = CFunction(libc.labs)
    ccrc = CFunction(crc32)
    ccrc_nogil = CFunction(crc32, nogil=True)
    data = bytes(64)
    mem = Foreign(libc.malloc(64), 64, destructor=libc.free)
    addr = mem.address
    rows = [
        ("labs(-5)", lambda: libc.labs(-5), lambda: labs(-5)),
        ("crc32(0, bytes[64], 64)", lambda: crc32(0, data, 64), lambda: ccrc(0, data, 64)),
        ("crc32(0, Foreign[64], 64)", lambda: crc32(0, addr, 64), lambda: ccrc(0, mem, 64)),
        ("crc32, nogil=True", lambda: crc32(0, data, 64), lambda: ccrc_nogil(0, data, 64)),
    ]
    out = []
    for name, by_ctypes, by_bridge in rows:
        t_ct = best_per_call(by_ctypes, number, repeat)
        t_cf = best_per_call(by_bridge, number, repeat)
        out.append({"call": name, "ctypes_ns": t_ct * 1e9, "cfunction_ns": t_cf * 1e9,
                    "speedup": t_ct / t_cf})
    return out


def sized_for(crc32: Any, libc: Any, target_us: float) -> int:
    """A buffer size for which one crc32 call takes about target_us."""
    size = 64 * 1024
    buf = libc.malloc(1 << 24)
    try:
        while True:
            t = best_per_call(lambda: crc32(0, buf, size), 20, 3)
            if t * 1e6 >= target_us / 2 or size >= (1 << 24):
                break
            size *= 2
        return max(4096, min(1 << 24, int(size * target_us / (t * 1e6))))
    finally:
        libc.free(buf)


def run_workers(workers: int, crc: CFunction, lanes: list[Cown], calls: int) -> float:
    """Seconds for `calls` foreign calls in behaviors of BATCH calls over
    the lane cowns, with `workers` workers."""
    wait()
    bocpy.start(workers)

    @when()
    def warm():  # workers up and the module imported before timing
        return None

    bocpy.quiesce()
    start = time.perf_counter()
    for i in range(calls // BATCH):
        lane = lanes[i % len(lanes)]

        @when(lane)
        def batch(lane):
            mem = lane.value
            for _ in range(BATCH):
                crc(0, mem, mem.size)

    bocpy.quiesce()
    elapsed = time.perf_counter() - start
    wait()
    return elapsed


def parallel(fns: dict[str, Any], calls: int, target_us: float) -> dict[str, Any]:
    libc, crc32 = fns["libc"], fns["crc32"]
    size = sized_for(crc32, libc, target_us)
    bufs = [libc.malloc(size) for _ in range(2)]
    for b in bufs:
        libc.memset(b, 7, size)
    per_call = best_per_call(lambda: crc32(0, bufs[0], size), 50, 5)
    # Through ctypes on main: one thread, then two threads.
    t0 = time.perf_counter()
    for _ in range(calls):
        crc32(0, bufs[0], size)
    serial = time.perf_counter() - t0

    def hammer(buf: int, n: int) -> None:
        for _ in range(n):
            crc32(0, buf, size)

    threads = [threading.Thread(target=hammer, args=(b, calls // 2)) for b in bufs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    threaded = time.perf_counter() - t0
    crc = CFunction(crc32, nogil=True)
    lanes = [Cown(Foreign(b, size, destructor=libc.free)) for b in bufs]
    one = run_workers(1, crc, lanes, calls)
    two = run_workers(2, crc, lanes, calls)
    return {
        "buffer_bytes": size, "call_us": per_call * 1e6, "calls": calls,
        "ctypes_main_1_thread_calls_per_s": calls / serial,
        "ctypes_main_2_threads_calls_per_s": calls / threaded,
        "workers_1_calls_per_s": calls / one,
        "workers_2_calls_per_s": calls / two,
        "speedup_2_over_1": one / two,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--json", action="store_true", help="one JSON line with every figure")
    a = p.parse_args()
    number, calls, target = 20000, a.calls, 100.0
    if a.quick:
        number, calls, a.repeat = 200, 2 * BATCH * 2, 1
    fns = declare()
    rows = overhead(fns, a.repeat, number)
    par = parallel(fns, calls, target)
    if a.json:
        print(json.dumps({"overhead": rows, "parallel": par}))
        return
    print(f"# CPython {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print()
    print("| call (main interpreter) | ctypes | CFunction | ctypes / CFunction |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['call']}` | {r['ctypes_ns']:.0f} ns | {r['cfunction_ns']:.0f} ns "
              f"| {r['speedup']:.2f}x |")
    print()
    print(f"crc32 over {par['buffer_bytes']} bytes: {par['call_us']:.0f} us per call; "
          f"{par['calls']} calls")
    print()
    print("| how | calls/s |")
    print("|---|---:|")
    print(f"| ctypes, main thread | {par['ctypes_main_1_thread_calls_per_s']:.0f} |")
    print(f"| ctypes, 2 threads on main | {par['ctypes_main_2_threads_calls_per_s']:.0f} |")
    print(f"| CFunction, 1 worker | {par['workers_1_calls_per_s']:.0f} |")
    print(f"| CFunction, 2 workers | {par['workers_2_calls_per_s']:.0f} |")
    print()
    print(f"2 workers / 1 worker: {par['speedup_2_over_1']:.2f}x")


if __name__ == "__main__":
    main()
