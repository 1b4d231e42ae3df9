"""Module-level data read by many behaviors: a 1M-item table (8 MB of item
pointers) at module level, read by N behaviors over one cown.  Ours encodes
the table once and each worker decodes it once while it is unchanged
(docs/behavior_code.md, "Module-level data"); an implementation that copies
module data into every behavior pays the whole table N times.

Usage: python wl_module_data.py N [list|tuple]
Prints one JSON line: behaviors per second and the peak RSS.
"""

import json
import resource
import sys
import time

from bocpy import Cown, start, wait, when

KIND = sys.argv[2] if len(sys.argv) > 2 else "list"
table = list(range(1_000_000)) if KIND == "list" else tuple(range(1_000_000))


def lookup(c, i):
    @when(c)
    def _lookup(c):
        c.value = c.value + table[i]


def main():
    n = int(sys.argv[1])
    start(2)
    c = Cown(0)
    t0 = time.perf_counter()
    for i in range(n):
        lookup(c, i)
    wait()
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "workload": "module_data", "params": {"behaviors": n, "kind": KIND},
        "seconds": seconds, "ops": n, "ops_per_s": n / seconds,
        "max_rss_mb": rss_mb, "check": c.value == sum(range(n)),
    }))


if __name__ == "__main__":
    main()
