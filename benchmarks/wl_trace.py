"""What tracing costs: the chain ring with tracing off and on.

Runs ``wl_chain_ring.py WORKERS K S 0`` (null payload, ring captured)
alternately without and with ``BOCPY_TRACE`` set, REPS times each, and
prints the median throughputs and the cost of tracing as one JSON line.
With ``--baseline PYTHON`` it also runs the same workload under another
interpreter (e.g. a virtual environment holding a bocpy built before the
tracing hooks existed) to show what tracing *off* costs.

Usage: python wl_trace.py [--workers W] [--chains K] [--steps S] [--reps N]
                          [--baseline PYTHON]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(python: str, args: list[str], trace: str | None) -> tuple[float, float]:
    """(ops per wall second, ops per CPU second of the whole process)."""
    env = {k: v for k, v in os.environ.items() if k != "BOCPY_TRACE"}
    if trace is not None:
        env["BOCPY_TRACE"] = trace
    with tempfile.TemporaryDirectory() as cwd:  # outside the source tree
        out = subprocess.run([python, str(HERE / "wl_chain_ring.py"), *args],
                             capture_output=True, text=True, env=env, cwd=cwd,
                             check=True, timeout=600)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    if not data["check"]:
        raise SystemExit("chain ring check failed")
    return float(data["ops_per_s"]), data["ops"] / data["cpu_seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--baseline", default=None, metavar="PYTHON",
                    help="an interpreter with another bocpy build (tracing off only)")
    a = ap.parse_args()
    args = [str(a.workers), str(a.chains), str(a.steps), "0"]
    off: list[tuple[float, float]] = []
    on: list[tuple[float, float]] = []
    base: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as d:
        trace_path = str(Path(d) / "trace.json")
        for _ in range(a.reps):  # alternate, so drift hits all alike
            off.append(run(sys.executable, args, None))
            on.append(run(sys.executable, args, trace_path))
            if a.baseline:
                base.append(run(a.baseline, args, None))
        slices = sum(1 for e in json.loads(Path(trace_path).read_text())["traceEvents"]
                     if e.get("ph") == "X")
    def med(runs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(r[i] for r in runs)

    def cost(a: list[tuple[float, float]], b: list[tuple[float, float]], i: int) -> float:
        return 100.0 * (1 - med(a, i) / med(b, i))

    result: dict[str, object] = {
        "workload": "chain_ring tracing cost",
        "params": vars(a),
        "off_ops_per_s": med(off, 0),
        "on_ops_per_s": med(on, 0),
        "on_cost_percent_wall": cost(on, off, 0),
        # CPU time is less disturbed by other processes on a shared machine.
        "off_ops_per_cpu_s": med(off, 1),
        "on_ops_per_cpu_s": med(on, 1),
        "on_cost_percent_cpu": cost(on, off, 1),
        "slices_in_last_trace": slices,
        "runs_off": off,
        "runs_on": on,
    }
    if base:
        result["baseline_ops_per_s"] = med(base, 0)
        result["baseline_ops_per_cpu_s"] = med(base, 1)
        result["off_cost_percent_vs_baseline_wall"] = cost(off, base, 0)
        result["off_cost_percent_vs_baseline_cpu"] = cost(off, base, 1)
        result["runs_baseline"] = base
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
