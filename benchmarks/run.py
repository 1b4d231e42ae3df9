"""Benchmark driver: our bocpy against the reference and plain-Python baselines.

    python benchmarks/run.py [--quick] [--reps N] [--ours-only] [--with-313]
                             [--build-ours [REV]] [--ours-path DIR]

For every point of the catalogue (``workloads.py``) it runs each
implementation in a fresh process per repetition, alternating them (rep 1:
ours, reference, ...; rep 2: reference, ours, ...), prints a table of
medians with the ratio ours/reference (as speed: >1 means ours is faster),
checks the performance targets of issue 7, and writes
``benchmarks/results/results.json`` (every run, the machine, the payload
calibration), ``tables.md`` and ``chart.png`` (``-quick`` suffixed with
``--quick``).  ``--quick --ours-only`` is the smoke run (~10 s).

The machine may be shared: for each run the driver measures how many cores
other processes used meanwhile ("background cores"), waits for quiet before
a run (``--quiet-wait``), re-runs disturbed runs (``--retry-noisy``) and takes
medians over the undisturbed runs only (a median of disturbed runs only is
starred).  See docs/performance.md.

Implementations:

* ``ours``    -- this tree on CPython 3.12: the bocpy installed in
                 ``.venv/py3.12`` (scripts/test.sh and scripts/demo.sh
                 install it; a Release build), run outside the source tree
                 so that the tree never shadows it; or the package in
                 ``--ours-path DIR`` (put on ``PYTHONPATH``);
                 ``--build-ours [REV]`` first builds an optimised (Release)
                 copy of git revision REV (default HEAD; ``worktree`` for
                 the working tree) under ``build/bench-ours/`` and measures
                 that;
* ``ref``     -- bocpy 0.9.0 from PyPI in ``build/refvenv`` (run without
                 ``PYTHONPATH``), when that venv exists and ``--ours-only``
                 is not given;
* ``ours313`` -- this tree on CPython 3.13 (only with ``--with-313``);
* ``thread``, ``mp_pool``, ``mp_pool_c1``, ``ppe`` -- wl_baseline.py on the
  3.12 interpreter (task-size sweep only; ``--no-baselines`` skips them).

The code is in three modules: ``driver_plan.py`` (implementations,
interpreters, builds, machine, calibration), ``driver_run.py`` (the
measurements) and ``driver_report.py`` (medians, targets, tables, chart,
results.json); this file reads the options and runs the three in turn.
The driver itself needs only the standard library; the chart needs
matplotlib, taken from the 3.12 venv when this interpreter lacks it.
Exit status: 0 when every run succeeded and passed its own result check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads  # noqa: E402
from driver_plan import PY312, PY313, REFPY, Setup, build_ours, calibrate, machine_info  # noqa: E402
from driver_report import (evaluate_targets, make_chart, markdown, merge_previous,  # noqa: E402
                           print_report, results_document, summarise)
from driver_run import measure  # noqa: E402


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions per implementation and point (default 3; 1 with --quick)")
    ap.add_argument("--ours-only", action="store_true", help="skip the reference implementation")
    ap.add_argument("--with-313", action="store_true", help="also run ours on CPython 3.13")
    ap.add_argument("--ours-path", default=None,
                    help="folder holding the bocpy package to measure as ours "
                         "(default: the bocpy installed in .venv/py3.12)")
    ap.add_argument("--build-ours", nargs="?", const="HEAD", default=None, metavar="REV",
                    help="build an optimised (Release) copy of git revision REV "
                         "(default HEAD; 'worktree' = the working tree) under "
                         "build/bench-ours/ and measure it as ours")
    ap.add_argument("--no-baselines", action="store_true",
                    help="skip the threading / process-pool baselines")
    ap.add_argument("--only", default=None,
                    help="comma-separated groups to run (chain_null, chain_linked, chain_cpu, fanout, bank, "
                         "reqsize, cpu_par, tasksize, nat_*, shapes, bulk)")
    ap.add_argument("--out", default=str(HERE / "results"), help="output folder")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per process")
    ap.add_argument("--quiet-wait", type=float, default=None, metavar="S",
                    help="before each run, wait up to S seconds for the rest of the "
                         "machine to go idle (< 0.3 cores busy); default 5 (0 with "
                         "--quick), at most --quiet-budget seconds in all")
    ap.add_argument("--quiet-budget", type=float, default=120.0, metavar="S",
                    help="total seconds --quiet-wait may spend (default 120)")
    ap.add_argument("--retry-noisy", type=int, default=None, metavar="N",
                    help="re-run a measurement up to N times while other processes "
                         "used > 0.5 cores during it (default 1; 0 with --quick); "
                         "the noisy attempts are kept in results.json, not in medians")
    ap.add_argument("--merge", action="store_true",
                    help="add this run's measurements to those of the existing results "
                         "file (medians then cover both), reusing its payload calibration; "
                         "with --only, re-measures some points")
    ap.add_argument("--rebuild", action="store_true",
                    help="measure nothing: recompute the medians, tables and chart of the "
                         "existing results file")
    ap.add_argument("--chart-from", default=None, help=argparse.SUPPRESS)
    return ap, ap.parse_args(argv)


def plan_ours(ap: argparse.ArgumentParser, ns: argparse.Namespace) -> tuple[Setup, dict] | None:
    """Which bocpy is "ours"; None (after an error message) when it cannot be built."""
    if ns.ours_path and ns.build_ours:
        ap.error("--ours-path and --build-ours are exclusive")
    if ns.ours_path:
        path = Path(ns.ours_path).resolve()
        return Setup(path), {"rev": None, "build_type": "given", "path": str(path)}
    if ns.build_ours:
        pythons = [PY312] + ([PY313] if ns.with_313 else [])
        try:
            path, desc = build_ours(ns.build_ours, pythons)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"error: building ours failed: {exc}", file=sys.stderr)
            return None
        print(f"built {desc['commit']} (Release) in {path}")
        return Setup(path), desc
    return Setup(None), {"rev": None, "build_type": "installed", "path": f"installed in {PY312}"}


def choose_impls(ns: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The bocpy implementations to measure, and all of them (with the
    baselines)."""
    bocpy_impls = ["ours"]
    if not ns.ours_only:
        if REFPY.exists():
            bocpy_impls.append("ref")
        else:
            print(f"note: {REFPY} not found: skipping the reference implementation "
                  "(create it with: python3.12 -m venv build/refvenv && "
                  "build/refvenv/bin/pip install bocpy==0.9.0)", file=sys.stderr)
    if ns.with_313:
        bocpy_impls.append("ours313")
    impls = list(bocpy_impls) + ([] if ns.no_baselines else list(workloads.BASELINE_IMPLS))
    return bocpy_impls, impls


def print_plan(ours_build: dict, machine: dict, impls: list[str], ns_per_iter: float,
               iters_for_us, npoints: int, reps: int) -> None:
    print(f"ours: {ours_build}")
    print(f"machine: {machine['cpu_model']}, {machine['cores_affinity']} cores in affinity, "
          f"loadavg {machine['loadavg_before']}")
    for impl in impls:
        print(f"  {impl:10s} {machine['implementations'].get(impl)}")
    print(f"calibration: {ns_per_iter:.1f} ns per payload iteration; "
          f"10 us = {iters_for_us(10)}, 100 us = {iters_for_us(100)}, "
          f"1 ms = {iters_for_us(1000)}, 10 ms = {iters_for_us(10000)} iterations")
    print(f"{npoints} points x {reps} reps, implementations: {', '.join(impls)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap, ns = parse_args(argv)
    if ns.chart_from:  # helper mode: re-invoked under an interpreter with matplotlib
        return 0 if make_chart(Path(ns.chart_from), Path(ns.out)) else 1
    reps = ns.reps if ns.reps is not None else (1 if ns.quick else 3)
    if reps < 1:
        ap.error("--reps must be >= 1")
    if not PY312.exists():
        print(f"error: {PY312} not found (see scripts/test.sh to build the venvs)", file=sys.stderr)
        return 2
    planned = plan_ours(ap, ns)
    if planned is None:
        return 2
    setup, ours_build = planned
    bocpy_impls, impls = choose_impls(ns)

    t_start = time.perf_counter()
    machine = machine_info(setup, impls)
    machine["ours_build"] = ours_build
    out = Path(ns.out)
    suffix = "-quick" if ns.quick else ""
    results_path = out / f"results{suffix}.json"
    old = None
    if ns.rebuild:
        ns.merge = True
        if not results_path.exists():
            ap.error(f"--rebuild: {results_path} does not exist")
    if ns.merge and results_path.exists():
        old = json.loads(results_path.read_text())
        ns_per_iter = float(old["calibration"]["ns_per_iteration"])
        if ns.rebuild:
            machine = dict(old["machine"])
    else:
        try:
            ns_per_iter = calibrate(setup)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 2

    def iters_for_us(us: float) -> int:
        return max(1, round(us * 1000.0 / ns_per_iter))

    all_points = workloads.build_points(ns.quick, iters_for_us, tuple(bocpy_impls),
                                        baselines=not ns.no_baselines)
    points = list(all_points)
    if ns.only:
        groups = {g.strip() for g in ns.only.split(",")}
        points = [p for p in points if p.group in groups]
    if ns.rebuild:
        points = []

    print_plan(ours_build, machine, impls, ns_per_iter, iters_for_us, len(points), reps)

    raw, failures = measure(
        setup, points, reps,
        quiet_wait=ns.quiet_wait if ns.quiet_wait is not None else (0.0 if ns.quick else 5.0),
        quiet_budget=ns.quiet_budget,
        retry_noisy=ns.retry_noisy if ns.retry_noisy is not None else (0 if ns.quick else 1),
        timeout=ns.timeout or (60.0 if ns.quick else 300.0))

    runs_this_time = list(raw)
    if old is not None:  # earlier measurements are kept; this run's are added to them
        points = merge_previous(old, raw, all_points)
    if old is not None and not ns.rebuild:
        prev = dict(old["machine"])
        history = prev.pop("history", [])
        history.append({"machine": prev, "command": old.get("command"),
                        "elapsed_seconds": old.get("elapsed_seconds"),
                        "measured": old.get("measured_this_run")})
        machine["history"] = history
    summaries = {p.key: summarise(p, raw[p.key]) for p in points}
    targets = evaluate_targets(points, summaries)
    if not ns.rebuild:
        machine["loadavg_after"] = list(os.getloadavg())
    elapsed = time.perf_counter() - t_start
    print_report(points, summaries, impls, targets, raw, elapsed, machine["loadavg_after"])
    write_outputs(ns, argv, out, suffix, reps, elapsed, machine, ns_per_iter, iters_for_us,
                  points, summaries, raw, targets, impls,
                  runs_this_time if not ns.rebuild else old.get("measured_this_run"))
    return 1 if failures else 0


def write_outputs(ns: argparse.Namespace, argv: list[str] | None, out: Path, suffix: str,
                  reps: int, elapsed: float, machine: dict, ns_per_iter: float, iters_for_us,
                  points: list, summaries: dict, raw: dict, targets: list[dict],
                  impls: list[str], measured: list[str] | None) -> None:
    """results.json, tables.md and the chart (``-quick`` suffixed)."""
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / f"results{suffix}.json"
    chart_path = out / f"chart{suffix}.png"
    header = {
        "quick": ns.quick,
        "reps": reps,
        "command": " ".join([Path(sys.executable).name, "benchmarks/run.py", *(argv or sys.argv[1:])]),
        "elapsed_seconds": elapsed,
        "measured_this_run": measured,
        "options": {k: v for k, v in vars(ns).items() if k != "chart_from"},
    }
    doc = results_document(points=points, summaries=summaries, raw=raw, targets=targets,
                           machine=machine, ns_per_iter=ns_per_iter, iters_for_us=iters_for_us,
                           header=header)
    results_path.write_text(json.dumps(doc, indent=1, default=str))
    print(f"wrote {results_path}")
    md_path = out / f"tables{suffix}.md"
    md_path.write_text(markdown(points, summaries, impls, targets))
    print(f"wrote {md_path}")
    if ns.no_chart:
        return
    if make_chart(results_path, chart_path):
        print(f"wrote {chart_path}")
        return
    rc = subprocess.run([str(PY312), str(Path(__file__).resolve()), "--chart-from",
                         str(results_path), "--out", str(chart_path)],
                        capture_output=True, text=True).returncode
    if rc == 0:
        print(f"wrote {chart_path}")
    else:
        print("note: matplotlib not available: no chart "
              f"({PY312} -m pip install matplotlib)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
