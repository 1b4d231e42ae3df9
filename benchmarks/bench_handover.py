"""What one hand-over of a value between interpreters costs, per kind of value.

A hand-over is one encoding (in the interpreter the value leaves) plus one
decoding (in the one it enters).  Both are measured on the main
interpreter through the public API, so that the same script measures any
build: ``Cown(v)`` encodes ``v``; the first ``.value`` read of a parked cown
(nothing running) decodes it.  The cost of a ``Cown(None)`` and of reading
it is subtracted, leaving the codec alone.  Prints one JSON line per kind
(``encode_us``, ``decode_us``, ``handover_us``), best of ``--reps`` rounds.

Since issue 33 most hand-overs do not happen at all (a value rests in the
worker that last used it); this measures the ones that still do.  A move
between two workers also pays the request to the worker holding the value
(see docs/performance.md).

Usage: python bench_handover.py [--reps N] [--only KIND,...]
"""

from __future__ import annotations

import argparse
import json
import time

from bocpy import Cown


class Account:
    """The README's account: a value of the program's own class."""

    def __init__(self, holder, balance):
        self.holder = holder
        self.balance = balance
        self.refused = 0


class Custom:
    """A class with its own __reduce__: always pickled."""

    def __init__(self, holder, balance):
        self.holder = holder
        self.balance = balance

    def __reduce__(self):
        return (Custom, (self.holder, self.balance))


def kinds() -> dict:
    out = {
        "int": lambda: 12345,
        "str (100 chars)": lambda: "x" * 100,
        "bytes (100 B)": lambda: b"x" * 100,
        "bytes (1 MiB)": lambda: b"x" * (1 << 20),
        "list (100 ints)": lambda: list(range(100)),
        "dict (20 str: int)": lambda: {f"k{i}": i for i in range(20)},
        "user class (Account)": lambda: Account("alice", 100),
        "user class with __reduce__": lambda: Custom("alice", 100),
        "list of 10 Accounts": lambda: [Account(f"h{i}", i) for i in range(10)],
    }
    try:
        import numpy as np

        out["NumPy float64 (1000)"] = lambda: np.arange(1000, dtype=np.float64)
        out["NumPy float64 (1M)"] = lambda: np.arange(1 << 20, dtype=np.float64)
    except ImportError:
        pass
    try:
        from bocpy import Matrix

        out["Matrix 512x512"] = lambda: Matrix.zeros((512, 512))
    except Exception:  # noqa: BLE001 - the plugin is optional
        pass
    return out


def measure(make, n: int) -> tuple[float, float]:
    """Seconds per Cown(v) and per first read of a parked cown."""
    values = [make() for _ in range(n)]
    t0 = time.perf_counter()
    cowns = [Cown(v) for v in values]
    t1 = time.perf_counter()
    for c in cowns:
        c.value
    t2 = time.perf_counter()
    return (t1 - t0) / n, (t2 - t1) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    table = kinds()
    only = [k for k in args.only.split(",") if k]
    for name, make in table.items():
        if only and not any(o in name for o in only):
            continue
        big = "1M" in name or "1 MiB" in name or "Matrix" in name
        n = 40 if big else 4000
        best_e = best_d = float("inf")
        base_e = base_d = float("inf")
        for _ in range(args.reps):
            e, d = measure(make, n)
            best_e, best_d = min(best_e, e), min(best_d, d)
            e0, d0 = measure(lambda: None, n)
            base_e, base_d = min(base_e, e0), min(base_d, d0)
        enc = max(0.0, best_e - base_e) * 1e6
        dec = max(0.0, best_d - base_d) * 1e6
        print(json.dumps({"kind": name, "encode_us": round(enc, 3),
                          "decode_us": round(dec, 3),
                          "handover_us": round(enc + dec, 3)}), flush=True)


if __name__ == "__main__":
    main()
