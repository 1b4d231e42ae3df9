"""1 vs 2 workers on each CPython: what a shared GIL (3.10/3.11) costs.

Runs benchmarks/wl_cpu.py (M independent behaviors of pure-Python work)
with 1 and 2 workers under each interpreter's environment .venv/py<ver>
(bocpy installed there: scripts/env.sh's bocpy_install_package), R times
each, alternating, and reports the median tasks/s and the speed-up of 2
workers over 1.  Expected: about 2x on 3.12/3.13 (a GIL per worker) on an
idle 2-core machine; about 1x on 3.10/3.11 (one GIL shared: no speed-up, and
no slow-down beyond the switching between the two workers' threads).

    python benchmarks/bench_versions.py [--versions 3.11 3.12 3.13]
        [--tasks 200] [--iters 20000] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WL = ROOT / "benchmarks" / "wl_cpu.py"


def run_once(python: Path, workers: int, tasks: int, iters: int) -> dict:
    out = subprocess.run([str(python), str(WL), str(workers), str(tasks), str(iters)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT / "benchmarks")
    if out.returncode != 0:
        raise RuntimeError(f"{python} wl_cpu.py failed:\n{out.stderr[-2000:]}")
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    if not fig["check"]:
        raise RuntimeError(f"{python}: wrong results")
    return fig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", nargs="+", default=["3.11", "3.12", "3.13"])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = ap.parse_args()
    rows = []
    for ver in args.versions:
        python = ROOT / ".venv" / f"py{ver}" / "bin" / "python"
        if not python.exists():
            print(f"no {python}: make it with scripts/env.sh (bocpy_venv {ver})", file=sys.stderr)
            return 2
        rates: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for w in (1, 2):  # alternate, so that load changes hit both alike
                fig = run_once(python, w, args.tasks, args.iters)
                rates[w].append(fig["ops_per_s"])
                cpu[w].append(fig["cpu_per_wall"])
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        rows.append({"python": ver, "tasks_per_s_1": one, "tasks_per_s_2": two,
                     "speedup": two / one, "cpu_per_wall_2": statistics.median(cpu[2])})
    if args.json:
        print(json.dumps({"tasks": args.tasks, "iters": args.iters,
                          "repeats": args.repeats, "rows": rows}))
        return 0
    print(f"wl_cpu: {args.tasks} behaviors x {args.iters} iterations, median of {args.repeats}")
    print("| CPython | 1 worker (tasks/s) | 2 workers (tasks/s) | 2 vs 1 | CPU/wall, 2 workers |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['python']} | {r['tasks_per_s_1']:,.0f} | {r['tasks_per_s_2']:,.0f} "
              f"| {r['speedup']:.2f}x | {r['cpu_per_wall_2']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
