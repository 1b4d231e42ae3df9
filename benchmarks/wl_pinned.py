"""Pinned dispatch throughput: behaviors per second through pump().

Usage: python wl_pinned.py N

N behaviors over one PinnedCown are scheduled, then pump() runs them on the
main thread (each completion makes the next one ready, so the pump drains
the whole chain).  Public API only: runs under our bocpy and the reference.
"""

import json
import sys
import time

from bocpy import PinnedCown, pump, start, wait, when


def bump(p):
    @when(p)
    def _(p):
        p.value[0] += 1


def main():
    n = int(sys.argv[1])
    start(1)
    p = PinnedCown([0])
    for _ in range(n):
        bump(p)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        done += pump().executed
    seconds = time.perf_counter() - t0
    wait()
    print(json.dumps({"workload": "pinned_pump", "params": {"n": n},
                      "seconds": seconds, "ops": n, "ops_per_s": n / seconds,
                      "check": p.value[0] == n}))


main()
