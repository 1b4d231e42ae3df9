"""The benchmark catalogue: which workload runs at which sizes, under whom.

The workloads themselves are the ``wl_*.py`` scripts beside this file.  Each
is a small self-contained program written against bocpy's public API only
(``Cown``, ``when``, ``start``, ``quiesce``, ``wait``), so the very same file
runs under our bocpy and under the reference (bocpy 0.9.0 from PyPI), whose
transpiler wants every behavior in the script that starts the runtime, inside
a function, with captured values passed as ``name=name`` parameters.  Each
run of a script is one measurement in a fresh process and prints one JSON
line (``workload``, ``params``, ``seconds``, ``cpu_seconds``, ``ops``,
``ops_per_s``, ``startup_seconds``, ``check``).

This module only describes the points (:func:`build_points`) and calibrates
the CPU payload (:func:`calibrate`); ``run.py`` drives them.  It imports no
bocpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

#: bocpy implementations: they all run the same wl_*.py script and arguments.
BOCPY_IMPLS = ("ours", "ref", "ours313")
#: Plain-Python baselines (wl_baseline.py modes).
BASELINE_IMPLS = ("thread", "mp_pool", "mp_pool_c1", "ppe")

#: Task sizes (microseconds of payload per task) of the task-size sweep.
TASK_SIZES_US = (10, 100, 1000, 10000)


def spin(n: int) -> int:
    """The CPU payload: a pure-Python arithmetic loop of ``n`` iterations.

    Every wl_*.py script carries an identical copy (a behavior body can only
    call functions of its own script under the reference implementation)."""
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def calibrate(iters: int = 100_000, repeats: int = 25) -> float:
    """Nanoseconds per :func:`spin` iteration on this interpreter (best of
    ``repeats``, so that one undisturbed repeat is enough)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        spin(iters)
        best = min(best, time.perf_counter() - t0)
    return best * 1e9 / iters


@dataclass
class Point:
    """One measured configuration, run by every implementation it lists."""

    group: str  # chain_null, chain_linked, chain_cpu, fanout, reqsize, cpu_par, tasksize,
    #             bank, nat_chain, nat_fanout, nat_fib, nat_pipeline
    key: str  # unique id, e.g. "chain_null/w2"
    label: str  # human-readable
    metric: str  # "ops_per_s" (higher is better) or "seconds" (lower is better)
    unit: str  # what ops are, e.g. "behaviors/s"
    params: dict
    # implementation -> (script file name, argv after the script)
    commands: dict[str, tuple[str, list[str]]] = field(default_factory=dict)


def _bocpy(point: Point, script: str, args: list, impls: tuple[str, ...]) -> Point:
    for impl in impls:
        point.commands[impl] = (script, [str(a) for a in args])
    return point


def build_points(quick: bool, iters_for_us: Callable[[float], int],
                 bocpy_impls: tuple[str, ...], baselines: bool = True) -> list[Point]:
    """Every point of a run.  ``iters_for_us(us)`` gives the payload length
    (spin iterations) of a task of ``us`` microseconds."""
    pts: list[Point] = []
    chains = 8
    cpu_payload = iters_for_us(100)
    ms_task = iters_for_us(1000)

    # (a) chain ring at 1 and 2 workers: null payload with the ring captured
    # by every step, null payload with the ring linked through the cowns'
    # values (constant-size hand-off), and a 100 us CPU payload.
    steps_null = 200 if quick else 4000
    steps_cpu = 30 if quick else 600
    variants = (("chain_null", "captured", steps_null, 0, "null payload, ring captured"),
                ("chain_linked", "linked", steps_null, 0, "null payload, ring linked"),
                ("chain_cpu", "captured", steps_cpu, cpu_payload, "100 us payload"))
    for group, mode, steps, payload, what in variants:
        for w in (1, 2):
            pts.append(_bocpy(Point(
                group, f"{group}/w{w}",
                f"chain ring, {what}, {w} worker{'s' if w > 1 else ''}",
                "ops_per_s", "behaviors/s",
                {"workers": w, "chains": chains, "steps": steps, "payload": payload,
                 "mode": mode}),
                "wl_chain_ring.py", [w, chains, steps, payload, mode], bocpy_impls))

    # (b) fanout: one producer, one child per step (the shape), and
    # 4 x workers children per step (RUNTIME.md section 14's shape).
    children = 2000 if quick else 60000
    for w in (1, 2):
        for batch in (1, 4 * w):
            steps = children // batch
            pts.append(_bocpy(Point(
                "fanout", f"fanout/w{w}/b{batch}",
                f"fanout, {batch} child{'ren' if batch > 1 else ''}/step, {w} worker{'s' if w > 1 else ''}",
                "ops_per_s", "children/s",
                {"workers": w, "steps": steps, "batch": batch}),
                "wl_fanout.py", [w, steps, batch], bocpy_impls))

    # (c) request-set size: 4 independent chains acquiring G cowns per step.
    sizes = (1, 8) if quick else (1, 2, 4, 8)
    steps_req = 500 if quick else 15000
    for g in sizes:
        pts.append(_bocpy(Point(
            "reqsize", f"reqsize/g{g}",
            f"request set of {g} cown{'s' if g > 1 else ''}, 2 workers",
            "ops_per_s", "behaviors/s",
            {"workers": 2, "chains": 4, "size": g, "steps": steps_req}),
            "wl_reqsize.py", [2, 4, g, steps_req], bocpy_impls))

    # (d) CPU parallelism: M independent 1 ms behaviors at 1 and 2 workers.
    tasks = 40 if quick else 600
    for w in (1, 2):
        pts.append(_bocpy(Point(
            "cpu_par", f"cpu_par/w{w}",
            f"independent 1 ms behaviors, {w} worker{'s' if w > 1 else ''}",
            "ops_per_s", "tasks/s",
            {"workers": w, "tasks": tasks, "iters": ms_task}),
            "wl_cpu.py", [w, tasks, ms_task], bocpy_impls))

    # (e) equal total work split into tasks of 10 us .. 10 ms, 2 workers:
    # bocpy against threads and process pools.  Total payload ~0.8 s of one
    # core (0.5 s at 10 us, where the slowest baseline pays ~100 us a task).
    task_sizes = (100, 1000) if quick else TASK_SIZES_US
    for us in task_sizes:
        budget_us = (50_000 if quick else (500_000 if us < 100 else 800_000))
        n = max(4, budget_us // us)
        iters = iters_for_us(us)
        p = _bocpy(Point(
            "tasksize", f"tasksize/{us}us",
            f"{n} tasks of {us} us, 2 workers",
            "seconds", "s wall",
            {"workers": 2, "task_us": us, "tasks": n, "iters": iters}),
            "wl_cpu.py", [2, n, iters], bocpy_impls)
        if baselines:
            for mode in BASELINE_IMPLS:
                p.commands[mode] = ("wl_baseline.py", [mode, "2", str(n), str(iters)])
        pts.append(p)

    # (f) bank (issue 33): transfers between 256 accounts from main, the
    # accounts holding ints or README-style Account objects (values of the
    # program's own class), at 2 workers.
    transfers = 5000 if quick else 100000
    for kind in ("int", "account"):
        pts.append(_bocpy(Point(
            "bank", f"bank/{kind}",
            f"bank, 256 accounts of {kind}{'s' if kind == 'int' else ' objects'}, 2 workers",
            "ops_per_s", "transfers/s",
            {"workers": 2, "accounts": 256, "transfers": transfers, "kind": kind}),
            "wl_bank.py", [2, 256, transfers, kind], bocpy_impls))

    pts += natural_points(quick, bocpy_impls)
    pts += shape_points(quick, iters_for_us, bocpy_impls, baselines)
    return pts


def shape_points(quick: bool, iters_for_us: Callable[[float], int],
                 bocpy_impls: tuple[str, ...], baselines: bool = True) -> list[Point]:
    """Issue 33: parallel program shapes (wl_shapes.py) at 1 and 2 workers,
    and many trivial tasks through ``bocpy.map`` (wl_bulk.py) against
    ``ProcessPoolExecutor.map`` and one ``@when`` per item.  The per-
    repetition 2-worker/1-worker ratios are ``benchmarks/paired.py``'s."""
    pts: list[Point] = []
    payload = iters_for_us(100)
    shapes = (("chains", 1030 if quick else 2400, "2 independent chains"),
              ("chains", 4010 if quick else 4200, "4 independent chains"),
              ("tree", 4 if quick else 9, "recursive tree"),
              ("philo_evenodd", 1 if quick else 8, "philosophers even-then-odd"),
              ("philo_ring", 1 if quick else 8, "philosophers ring order"))
    for shape, size, what in shapes:
        for w in (1, 2):
            pts.append(_bocpy(Point(
                "shapes", f"shapes/{shape}{size}/w{w}",
                f"{what} ({shape} {size}), 100 us steps, {w} worker{'s' if w > 1 else ''}",
                "ops_per_s", "steps/s",
                {"workers": w, "shape": shape, "size": size, "payload": payload}),
                "wl_shapes.py", [shape, w, size, payload], bocpy_impls))
    n = 20000 if quick else 200000
    ours = tuple(i for i in bocpy_impls if i != "ref")
    p = _bocpy(Point("bulk", "bulk/map/w2", f"{n} trivial tasks, bocpy.map(chunksize=1000), 2 workers",
                     "ops_per_s", "tasks/s", {"workers": 2, "tasks": n, "chunksize": 1000}),
               "wl_bulk.py", ["map", 2, n, 1000], ours)
    if baselines:
        p.commands["ppe"] = ("wl_bulk.py", ["ppe", "2", str(n), "1000"])
    pts.append(p)
    pts.append(_bocpy(Point("bulk", "bulk/when/w2", f"{n} trivial tasks, one @when each, 2 workers",
                            "ops_per_s", "tasks/s", {"workers": 2, "tasks": n}),
                      "wl_bulk.py", ["when", 2, n, 1], bocpy_impls))
    return pts


def natural_points(quick: bool, bocpy_impls: tuple[str, ...]) -> list[Point]:
    """The natural-style workloads (wl_nat_*.py): bodies read enclosing
    variables and call module-level functions that schedule, with no
    ``name=name`` parameters, the way API.md section 5 shows."""
    pts: list[Point] = []
    steps = 200 if quick else 3000
    children = 2000 if quick else 40000
    for w in (1, 2):
        pts.append(_bocpy(Point(
            "nat_chain", f"nat_chain/w{w}",
            f"natural chain ring (captured ring, pos, left), {w} worker{'s' if w > 1 else ''}",
            "ops_per_s", "behaviors/s", {"workers": w, "chains": 8, "steps": steps}),
            "wl_nat_chain.py", [w, 8, steps], bocpy_impls))
        for batch in (1, 4 * w):
            pts.append(_bocpy(Point(
                "nat_fanout", f"nat_fanout/w{w}/b{batch}",
                f"natural fanout, {batch} child{'ren' if batch > 1 else ''}/step, "
                f"{w} worker{'s' if w > 1 else ''}",
                "ops_per_s", "children/s",
                {"workers": w, "steps": children // batch, "batch": batch}),
                "wl_nat_fanout.py", [w, children // batch, batch], bocpy_impls))
        n = 12 if quick else 20
        pts.append(_bocpy(Point(
            "nat_fib", f"nat_fib/w{w}",
            f"natural divide and conquer, fib({n}) nested behaviors, {w} worker{'s' if w > 1 else ''}",
            "ops_per_s", "behaviors/s", {"workers": w, "n": n}),
            "wl_nat_fib.py", [w, n], bocpy_impls))
        items = 2000 if quick else 30000
        pts.append(_bocpy(Point(
            "nat_pipeline", f"nat_pipeline/w{w}",
            f"main-thread pipeline, 3 stages x 2 cowns, 2 captures, {w} worker{'s' if w > 1 else ''}",
            "ops_per_s", "behaviors/s", {"workers": w, "items": items}),
            "wl_nat_pipeline.py", [w, items], bocpy_impls))
    return pts
