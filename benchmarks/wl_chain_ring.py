"""Chain-ring workload: K chains over a ring of 2K int cowns.

Each behavior holds a window of two adjacent cowns, increments both, runs an
optional pure-Python payload of L iterations, and schedules the chain's next
step one position further round the ring, until every chain has made S
steps.  Prints one JSON line; throughput is behaviors (steps) per second.

Usage: python wl_chain_ring.py WORKERS K S L [MODE]

MODE says how a step finds the next cown of the ring:

* ``captured`` (default) -- the ring, a tuple of the 2K cown handles, is a
  captured value of every step (like reading a ring published on a
  noticeboard: each step receives the whole ring);
* ``linked`` -- each cown holds ``[count, next_cown]``; a step reads the
  next cown from the window's second cown, so what a step carries is
  constant-size whatever K is.

Written against the public API only, so it runs unchanged under any bocpy
that provides ``Cown``, ``when``, ``start``, ``quiesce`` and ``wait``.  The
behaviors live in this script (``__main__``), sit inside functions, and take
their captured values as explicit ``name=name`` trailing parameters.
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


def chain_step(a, b, ring, pos, left, payload):
    @when(a, b)
    def _step(a, b, ring=ring, pos=pos, left=left, payload=payload):
        a.value = a.value + 1
        b.value = b.value + 1
        if payload:
            spin(payload)
        if left > 1:
            n = len(ring)
            nxt = (pos + 1) % n
            chain_step(ring[nxt], ring[(nxt + 1) % n], ring, nxt, left - 1, payload)


def linked_step(a, b, left, payload):
    @when(a, b)
    def _step(a, b, left=left, payload=payload):
        va = a.value
        va[0] = va[0] + 1
        vb = b.value
        vb[0] = vb[0] + 1
        if payload:
            spin(payload)
        if left > 1:
            linked_step(b, vb[1], left - 1, payload)


def run_round(ring, chains, steps, payload, mode):
    n = len(ring)
    for k in range(chains):
        pos = (2 * k) % n
        if mode == "linked":
            linked_step(ring[pos], ring[(pos + 1) % n], steps, payload)
        else:
            chain_step(ring[pos], ring[(pos + 1) % n], ring, pos, steps, payload)
    quiesce()


def make_ring(size, mode):
    if mode != "linked":
        return tuple(Cown(0) for _ in range(size))
    ring = tuple(Cown([0, None]) for _ in range(size))
    for i, c in enumerate(ring):
        with c as v:
            v[1] = ring[(i + 1) % size]
    return ring


def count(c, mode):
    with c as v:
        return v[0] if mode == "linked" else v


def main():
    workers, chains, steps, payload = (int(a) for a in sys.argv[1:5])
    mode = sys.argv[5] if len(sys.argv) > 5 else "captured"
    if mode not in ("captured", "linked"):
        raise SystemExit(f"unknown mode {mode!r}")
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    ring = make_ring(2 * chains, mode)
    # Warm-up: load the behavior code in every worker before timing.
    warm = max(2, steps // 50)
    run_round(ring, chains, warm, payload, mode)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    run_round(ring, chains, steps, payload, mode)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    # Read the ring while the runtime is up (after quiesce no behavior holds
    # a cown); the reference cannot deserialise worker-written values after
    # wait() has torn the workers down.
    total = sum(count(c, mode) for c in ring)
    wait()
    seconds = t1 - t0
    ops = chains * steps
    print(json.dumps({
        "workload": "chain_ring",
        "params": {"workers": workers, "chains": chains, "steps": steps,
                   "payload": payload, "mode": mode},
        "seconds": seconds,
        "cpu_seconds": cpu1 - cpu0,
        "startup_seconds": startup,
        "ops": ops,
        "ops_per_s": ops / seconds,
        "check": total == 2 * chains * (steps + warm),
    }))


if __name__ == "__main__":
    main()
