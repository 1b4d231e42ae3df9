"""Running the measurements of a benchmark run (benchmarks/run.py): one fresh
process per measurement, implementations alternated, background load
measured, waits for quiet, re-runs of disturbed runs."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import workloads
from driver_plan import HERE, NOISY_CORES, Setup
from driver_report import fmt, summarise


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wait_quiet(max_wait: float, threshold: float = 0.3, sample: float = 0.25) -> float:
    """Wait (at most ``max_wait`` s) until the rest of the machine uses less
    than ``threshold`` cores; returns the seconds waited."""
    waited = 0.0
    while waited < max_wait:
        b0 = _busy_seconds()
        time.sleep(sample)
        b1 = _busy_seconds()
        waited += sample
        if b0 is None or b1 is None or (b1 - b0) / sample < threshold:
            break
    return waited


def run_one(setup: Setup, impl: str, script: str, args: list[str], workers: int | None,
            cwd: str, timeout: float) -> dict:
    cmd = [str(setup.python(impl)), str(HERE / script), *args]
    busy0, kids0 = _busy_seconds(), _children_cpu()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=setup.env(impl, workers), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s",
                "cmd": cmd, "process_seconds": time.perf_counter() - t0}
    elapsed = time.perf_counter() - t0
    busy1, kids1 = _busy_seconds(), _children_cpu()
    # Cores used by everything else on the machine while this ran: the
    # figure to distrust a measurement by.
    background = None
    if busy0 is not None and busy1 is not None and elapsed > 0:
        background = max(0.0, ((busy1 - busy0) - (kids1 - kids0)) / elapsed)
    record = None
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                pass
    if proc.returncode != 0 or record is None:
        return {"ok": False, "cmd": cmd, "returncode": proc.returncode,
                "error": (proc.stderr or proc.stdout)[-2000:], "process_seconds": elapsed}
    record["ok"] = bool(record.get("check", True))
    record["process_seconds"] = elapsed
    record["background_cores"] = background
    record["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    record["loadavg1"] = load0
    if proc.stderr.strip():
        record["stderr"] = proc.stderr[-1000:]
    if not record["ok"]:
        record["error"] = "result check failed"
    return record


def measure(setup: Setup, points: list[workloads.Point], reps: int, *, quiet_wait: float,
            quiet_budget: float, retry_noisy: int, timeout: float
            ) -> tuple[dict[str, dict[str, list[dict]]], int]:
    """Every point, ``reps`` times per implementation, in rotating order;
    returns the runs by point key and implementation, and the number of
    failed runs.  Prints each point's medians as it goes."""
    raw: dict[str, dict[str, list[dict]]] = {}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bocpy-bench-") as cwd:
        for p in points:
            order = list(p.commands)
            raw[p.key] = {impl: [] for impl in order}
            workers = p.params.get("workers")
            for rep in range(reps):
                # Alternate: rotate the order each repetition.
                rot = order[rep % len(order):] + order[: rep % len(order)]
                for impl in rot:
                    script, args = p.commands[impl]
                    noisy = []
                    while True:
                        waited = 0.0
                        if quiet_wait > 0 and quiet_budget > 0:
                            waited = wait_quiet(min(quiet_wait, quiet_budget))
                            quiet_budget -= waited
                        r = run_one(setup, impl, script, args, workers, cwd, timeout)
                        r["quiet_waited"] = waited
                        bg = r.get("background_cores")
                        if (not r.get("ok") or bg is None or bg <= NOISY_CORES
                                or len(noisy) >= retry_noisy):
                            break
                        noisy.append(r)
                    if noisy:
                        r["noisy_attempts"] = noisy
                    r["rep"] = rep
                    raw[p.key][impl].append(r)
                    if not r.get("ok"):
                        failures += 1
                        print(f"  FAILED {p.key} {impl} rep {rep}: {r.get('error', '')[-600:]}",
                              file=sys.stderr, flush=True)
            s = summarise(p, raw[p.key])
            parts = [f"{impl}={fmt(s[impl]['median'], p.metric)}" for impl in order]
            print(f"  {p.key:22s} {' '.join(parts)}", flush=True)

    return raw, failures
