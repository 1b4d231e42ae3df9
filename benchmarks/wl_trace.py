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


def run(python: str, args: list[str], trace: str | None) -> float:
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
    return float(data["ops_per_s"])


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
    off: list[float] = []
    on: list[float] = []
    base: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        trace_path = str(Path(d) / "trace.json")
        for _ in range(a.reps):  # alternate, so drift hits all alike
            off.append(run(sys.executable, args, None))
            on.append(run(sys.executable, args, trace_path))
            if a.baseline:
                base.append(run(a.baseline, args, None))
        slices = sum(1 for e in json.loads(Path(trace_path).read_text())["traceEvents"]
                     if e.get("ph") == "X")
    result = {
        "workload": "chain_ring tracing cost",
        "params": vars(a),
        "off_ops_per_s": statistics.median(off),
        "on_ops_per_s": statistics.median(on),
        "on_cost_percent": 100.0 * (1 - statistics.median(on) / statistics.median(off)),
        "slices_in_last_trace": slices,
        "runs_off": off,
        "runs_on": on,
    }
    if base:
        result["baseline_ops_per_s"] = statistics.median(base)
        result["off_cost_percent_vs_baseline"] = 100.0 * (
            1 - statistics.median(off) / statistics.median(base))
        result["runs_baseline"] = base
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
