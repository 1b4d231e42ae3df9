"""Paired measurements for issue 33: speed-ups and comparisons measured side
by side, one fresh process per run, alternating within each repetition.

    python benchmarks/paired.py [--reps N] [--base REV | --base-path DIR]
                                [--with-base] [--no-ref]
                                [--sections shapes,bulk,regress]

* ``shapes``: the parallel program shapes of ``wl_shapes.py`` (2 and 4
  independent self-rescheduling chains, a recursive tree, dining
  philosophers in ring order and even-then-odd), 100 us of payload per
  step: one worker against two in every repetition (the order alternates),
  for ours and for the reference (bocpy 0.9.0 in ``build/refvenv``).  The
  ratio is reported per repetition: the goal is met only if every
  repetition meets it.  For ours each run is also traced and the line gives
  the *concurrency* at 2 workers (``wl_shapes.py``: how many workers the
  schedule kept busy on average), a figure that other processes on the
  machine disturb much less than the wall-clock ratio.
* ``bulk``: 200k trivial tasks, ``bocpy.map(chunksize=1000)`` at 2 workers
  against ``ProcessPoolExecutor(2).map(chunksize=1000)`` (``wl_bulk.py``).
* ``regress``: ours against a build of git revision ``--base`` (default
  ``main``; built Release under ``build/bench-ours/``): one ``@when``
  (``wl_when_cost.py``), a single chain's step latency (one chain, null
  payload, 1 worker), the main-thread pipeline and the fanout at 2 workers.

The machine may be shared: each run also records the process's CPU seconds
and how many cores the rest of the machine used meanwhile (see
``driver_run.run_one``); read the figures with that column in mind.
Prints markdown tables; writes ``benchmarks/results/paired.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from driver_plan import REFPY, Setup, build_ours, calibrate, PY312  # noqa: E402
from driver_run import run_one  # noqa: E402

SHAPES = (  # (label, shape, size, goal of w2/w1)
    # Rounds of 0.15-0.25 s at one worker: long enough that one stall of
    # the machine (a few ms) does not decide a repetition's ratio.
    ("2 chains x 900 steps", "chains", 2900, 1.8),
    ("4 chains x 400 steps", "chains", 4400, 1.8),
    ("tree of depth 11 (2048 leaves)", "tree", 11, 1.8),
    ("philosophers even-then-odd, 24 meals", "philo_evenodd", 24, 1.7),
    ("philosophers ring order, 24 meals", "philo_ring", 24, None),
)


def one(setup: Setup, impl: str, script: str, args: list, workers: int | None,
        cwd: str) -> dict:
    # "base" is our code at another revision: run as ours, from its folder.
    run_as = "ours" if impl == "base" else impl
    r = run_one(setup, run_as, script, [str(a) for a in args], workers, cwd, 300.0)
    if not r.get("ok"):
        print(f"  FAILED {impl} {script} {args}: {r.get('error', '')[-400:]}", file=sys.stderr)
    return r


def shapes(setups: dict[str, Setup], reps: int, iters: int, cwd: str) -> list[dict]:
    rows = []
    for label, shape, size, goal in SHAPES:
        for impl, setup in setups.items():
            ratios, cpu, conc = [], [], []
            # Ours is traced (both worker counts alike) for the concurrency
            # figure; the reference has no bocpy.trace.
            if impl in ("ours", "base"):
                os.environ["BOCPY_SHAPES_TRACE"] = "1"
            try:
                for rep in range(reps):
                    order = (1, 2) if rep % 2 == 0 else (2, 1)
                    got = {w: one(setup, impl, "wl_shapes.py", [shape, w, size, iters], w, cwd)
                           for w in order}
                    if all(g.get("ok") for g in got.values()):
                        ratios.append(got[1]["seconds"] / got[2]["seconds"])
                        cpu.append((got[1]["cpu_seconds"], got[2]["cpu_seconds"],
                                    got[1].get("background_cores"),
                                    got[2].get("background_cores")))
                        conc.append(got[2].get("concurrency"))
            finally:
                os.environ.pop("BOCPY_SHAPES_TRACE", None)
            row = {"section": "shapes", "label": label, "impl": impl, "goal": goal,
                   "ratios": ratios, "cpu": cpu, "concurrency_w2": conc,
                   "met": None if goal is None or not ratios else min(ratios) >= goal}
            rows.append(row)
            bg = [max(c[2] or 0, c[3] or 0) for c in cpu]
            extra = ""
            if impl in ("ours", "base"):
                extra = "; concurrency at w2: " + ", ".join(
                    "-" if c is None else f"{c:.2f}" for c in conc)
            print(f"  {label:38s} {impl:5s} w2/w1 per rep: "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}{extra}; background cores: "
                  f"{', '.join(f'{b:.1f}' for b in bg)}", flush=True)
    return rows


def bulk(setups: dict[str, Setup], reps: int, cwd: str) -> list[dict]:
    ours = setups["ours"]
    runs: dict[str, list[float]] = {"map": [], "ppe": [], "map_w1": []}
    for rep in range(reps):
        order = ["map", "ppe", "map_w1"]
        order = order[rep % 3:] + order[:rep % 3]
        for mode in order:
            w = 1 if mode == "map_w1" else 2
            r = one(ours, "ours", "wl_bulk.py", [mode.split("_")[0], w, 200000, 1000], w, cwd)
            if r.get("ok"):
                runs[mode].append(r["ops_per_s"])
    print("  bulk tasks/s: " + "; ".join(
        f"{m}: {', '.join(f'{v / 1e6:.2f}M' for v in vs)}" for m, vs in runs.items()), flush=True)
    return [{"section": "bulk", "runs": runs}]


def regress(setups: dict[str, Setup], base: Setup, reps: int, cwd: str) -> list[dict]:
    pts = (
        ("one @when (us, lower is better)", "wl_when_cost.py", [20000], 1, "when_us"),
        ("single chain, null payload, 1 worker (steps/s)", "wl_chain_ring.py",
         [1, 1, 20000, 0], 1, "ops_per_s"),
        ("chain ring, 8 chains, null payload, 2 workers (steps/s)", "wl_chain_ring.py",
         [2, 8, 4000, 0], 2, "ops_per_s"),
        ("pipeline, 2 workers (behaviors/s)", "wl_nat_pipeline.py", [2, 30000], 2, "ops_per_s"),
        ("fanout, 1 child/step, 2 workers (children/s)", "wl_fanout.py", [2, 60000, 1], 2,
         "ops_per_s"),
        ("fanout, 8 children/step, 2 workers (children/s)", "wl_fanout.py", [2, 7500, 8], 2,
         "ops_per_s"),
    )
    rows = []
    both = {"ours": setups["ours"], "base": base}
    for label, script, args, w, field in pts:
        vals: dict[str, list[float]] = {"ours": [], "base": []}
        for rep in range(reps):
            order = ["ours", "base"] if rep % 2 == 0 else ["base", "ours"]
            for who in order:
                r = one(both[who], "ours", script, args, w, cwd)
                if r.get("ok"):
                    vals[who].append(r[field])
        rows.append({"section": "regress", "label": label, "field": field, "runs": vals})
        print(f"  {label:58s} ours: {', '.join(f'{v:,.2f}' for v in vals['ours'])} | "
              f"base: {', '.join(f'{v:,.2f}' for v in vals['base'])}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--base", default="main", help="git revision to compare with (regress)")
    ap.add_argument("--base-path", default=None,
                    help="an already built base (folder to put on PYTHONPATH)")
    ap.add_argument("--no-ref", action="store_true")
    ap.add_argument("--with-base", action="store_true",
                    help="also measure the shapes with the base build")
    ap.add_argument("--sections", default="shapes,bulk,regress")
    ns = ap.parse_args(argv)
    if not PY312.exists():
        print(f"error: {PY312} not found", file=sys.stderr)
        return 2
    sections = {s.strip() for s in ns.sections.split(",")}
    setups = {"ours": Setup(None)}
    if not ns.no_ref and REFPY.exists():
        setups["ref"] = Setup(None)
    ns_per_iter = calibrate(setups["ours"])
    iters = max(1, round(100_000 / ns_per_iter))
    print(f"calibration: {ns_per_iter:.1f} ns/iteration, 100 us = {iters} iterations; "
          f"loadavg {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows: list[dict] = []
    t0 = time.time()
    base = None
    if "regress" in sections or ns.with_base:
        if ns.base_path:
            base = Setup(Path(ns.base_path).resolve())
        else:
            path, desc = build_ours(ns.base, [PY312])
            print(f"base: {desc}")
            base = Setup(path)
    with tempfile.TemporaryDirectory(prefix="bocpy-paired-") as cwd:
        if "shapes" in sections:
            shape_setups = dict(setups)
            if ns.with_base and base is not None:
                shape_setups["base"] = base
            rows += shapes(shape_setups, ns.reps, iters, cwd)
        if "bulk" in sections:
            rows += bulk(setups, ns.reps, cwd)
        if "regress" in sections:
            rows += regress(setups, base, ns.reps, cwd)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "paired.json").write_text(json.dumps(
        {"rows": rows, "iters_100us": iters, "seconds": time.time() - t0,
         "at": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
