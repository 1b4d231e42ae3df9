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

* ``ours``    -- this tree on CPython 3.12: ``.venv/py3.12/bin/python`` with
                 ``PYTHONPATH`` = the repository root (the extension built
                 in place, usually a Debug build), or ``--ours-path DIR``;
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

The driver itself needs only the standard library; the chart needs
matplotlib, taken from the 3.12 venv when this interpreter lacks it.
Exit status: 0 when every run succeeded and passed its own result check.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import workloads  # noqa: E402

PY312 = REPO / ".venv" / "py3.12" / "bin" / "python"
PY313 = REPO / ".venv" / "py3.13" / "bin" / "python"
REFPY = REPO / "build" / "refvenv" / "bin" / "python"
BENCH_BUILD = REPO / "build" / "bench-ours"
#: What goes on PYTHONPATH for our implementation (see --ours-path, --build-ours).
OURS_PATH = REPO

IMPL_NAMES = {
    "ours": "ours (3.12)",
    "ref": "reference 0.9.0 (3.12)",
    "ours313": "ours (3.13)",
    "thread": "threading",
    "mp_pool": "multiprocessing.Pool.map",
    "mp_pool_c1": "Pool.map chunksize=1",
    "ppe": "ProcessPoolExecutor.map",
}


#: A run during which other processes used more cores than this is "noisy".
NOISY_CORES = 0.5


# ---- running one measurement -------------------------------------------------

def _env(impl: str, workers: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if impl in ("ours", "ours313"):
        env["PYTHONPATH"] = str(OURS_PATH)
    if workers is not None:
        env["BOCPY_WORKERS"] = str(workers)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _python(impl: str) -> Path:
    if impl == "ref":
        return REFPY
    if impl == "ours313":
        return PY313
    return PY312


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


def run_one(impl: str, script: str, args: list[str], workers: int | None,
            cwd: str, timeout: float) -> dict:
    cmd = [str(_python(impl)), str(HERE / script), *args]
    busy0, kids0 = _busy_seconds(), _children_cpu()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=_env(impl, workers), capture_output=True,
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


# ---- an optimised copy of our bocpy ---------------------------------------------

def build_ours(rev: str, pythons: list[Path]) -> tuple[Path, dict]:
    """Build a Release copy of git revision ``rev`` (or of the working tree
    when ``rev`` is ``worktree``) under build/bench-ours/ for each
    interpreter; returns the folder to put on PYTHONPATH and a description."""
    src = BENCH_BUILD / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True,
                              check=True).stdout

    if rev == "worktree":
        commit = git("rev-parse", "HEAD").decode().strip() + "+worktree"
        for name in git("ls-files", "-co", "--exclude-standard", "-z").split(b"\0"):
            rel = name.decode()
            if not rel or not (REPO / rel).is_file():
                continue
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    else:
        commit = git("rev-parse", "--verify", rev + "^{commit}").decode().strip()
        with tarfile.open(fileobj=io.BytesIO(git("archive", commit))) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(src, filter="data")
            else:
                tar.extractall(src)
    env = dict(os.environ)
    env["PATH"] = f"{PY312.parent}{os.pathsep}{env.get('PATH', '')}"  # cmake, ninja
    for py in pythons:
        tag = py.parent.parent.name  # py3.12 / py3.13
        bdir = BENCH_BUILD / f"build-{tag}"
        for cmd in (["cmake", "-S", str(src), "-B", str(bdir), "-G", "Ninja",
                     "-DCMAKE_BUILD_TYPE=Release", f"-DPython_EXECUTABLE={py}",
                     "-DBOCPY_WERROR=OFF", "-DBOCPY_BUILD_TESTS=OFF"],
                    ["cmake", "--build", str(bdir)]):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        built = list((bdir / "core").glob("_core*.so"))
        if not built:
            raise RuntimeError(f"no _core extension under {bdir / 'core'}")
        for so in built:
            shutil.copy2(so, src / "bocpy" / so.name)
    return src, {"rev": rev, "commit": commit, "build_type": "Release", "path": str(src)}


def compile_flags(ext: str | None) -> str | None:
    """The compiler command line recorded in an extension's debug info (GCC
    records it), to tell a Debug build from an optimised one."""
    if not ext or not shutil.which("readelf"):
        return None
    try:
        out = subprocess.run(["readelf", "--debug-dump=info", ext], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if "DW_AT_producer" in line:
            return line.split("):", 1)[-1].strip()
    return "no debug info (not a -g build)"


# ---- machine -------------------------------------------------------------------

def _probe(python: Path, code: str, env: dict[str, str]) -> str | None:
    try:
        out = subprocess.run([str(python), "-c", code], env=env, capture_output=True,
                             text=True, timeout=60, cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info(impls: list[str]) -> dict:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cores_affinity": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "loadavg_before": list(os.getloadavg()),
        "driver_python": sys.version.split()[0],
        "implementations": {},
    }
    code = ("import sys, json, bocpy; r = {'python': sys.version.split()[0], "
            "'bocpy': bocpy.__version__, 'file': bocpy.__file__}\n"
            "try:\n from bocpy import _core; r['extension'] = _core.__file__\n"
            " r['record_sizes'] = _core.record_sizes()\n"
            "except Exception: pass\nprint(json.dumps(r))")
    for impl in impls:
        if impl in workloads.BOCPY_IMPLS:
            out = _probe(_python(impl), code, _env(impl, None))
            desc = json.loads(out) if out else None
            if desc and impl != "ref":
                desc["compile_flags"] = compile_flags(desc.get("extension"))
            info["implementations"][impl] = desc
        else:
            out = _probe(PY312, "import sys; print(sys.version.split()[0])", _env(impl, None))
            info["implementations"][impl] = {"python": out}
    return info


# ---- summarising -----------------------------------------------------------------

def _median(runs: list[dict], field: str) -> float | None:
    vals = [r[field] for r in runs if r.get("ok") and field in r]
    return statistics.median(vals) if vals else None


def summarise(point: workloads.Point, runs: dict[str, list[dict]]) -> dict:
    out = {}
    for impl, all_runs in runs.items():
        ok = [r for r in all_runs if r.get("ok")]
        # Medians over the quiet measurements when there are any: other
        # processes can only slow a run down.
        clean = [r for r in ok if (r.get("background_cores") or 0.0) <= NOISY_CORES]
        rs = clean or ok
        out[impl] = {
            "median": _median(rs, point.metric),
            "median_seconds": _median(rs, "seconds"),
            "median_cpu_seconds": _median(rs, "cpu_seconds"),
            "median_startup_seconds": _median(rs, "startup_seconds"),
            "median_cpu_per_wall": _median(
                [dict(r, cpu_per_wall=r["cpu_seconds"] / r["seconds"]) for r in rs
                 if r.get("seconds")], "cpu_per_wall"),
            "values": [r.get(point.metric) for r in rs],
            "used": len(rs),
            "noisy": bool(ok) and not clean,
            "median_background_cores": _median(rs, "background_cores"),
            "failures": sum(1 for r in all_runs if not r.get("ok")),
        }
    return out


def speed_ratio(point: workloads.Point, summary: dict, a: str, b: str) -> float | None:
    """How many times faster ``a`` is than ``b`` at this point."""
    ma = summary.get(a, {}).get("median")
    mb = summary.get(b, {}).get("median")
    if not ma or not mb:
        return None
    return ma / mb if point.metric == "ops_per_s" else mb / ma


def evaluate_targets(points: list[workloads.Point], summaries: dict[str, dict]) -> list[dict]:
    by_key = {p.key: p for p in points}
    targets = []

    def add(name: str, value: float | None, goal: float, detail: str) -> None:
        targets.append({"target": name, "value": value, "goal": goal, "detail": detail,
                        "met": None if value is None else value >= goal})

    for group in ("chain_null", "chain_linked"):
        for w in (1, 2):
            k = f"{group}/w{w}"
            if k in by_key:
                add(f"null-payload chain ring >= 3x reference ({by_key[k].label})",
                    speed_ratio(by_key[k], summaries[k], "ours", "ref"), 3.0,
                    "ours/ref behaviors/s")
    for k, p in by_key.items():
        if p.group == "fanout":
            add(f"fanout >= 2x reference ({p.label})",
                speed_ratio(p, summaries[k], "ours", "ref"), 2.0, "ours/ref children/s")
    for group in ("chain_cpu", "cpu_par"):
        k1, k2 = f"{group}/w1", f"{group}/w2"
        if k1 in by_key and k2 in by_key:
            m1 = summaries[k1].get("ours", {}).get("median")
            m2 = summaries[k2].get("ours", {}).get("median")
            add(f"{by_key[k2].label}: 2-worker throughput >= 1.8x our 1-worker",
                m2 / m1 if m1 and m2 else None, 1.8, "ours w2/w1")
    for k, p in by_key.items():
        if p.group == "tasksize" and p.params["task_us"] < 1000:
            for pool in ("mp_pool", "mp_pool_c1"):
                if pool in summaries[k]:
                    add(f"faster than {IMPL_NAMES[pool]} at {p.params['task_us']} us tasks",
                        speed_ratio(p, summaries[k], "ours", pool), 1.0,
                        f"{pool} wall / ours wall")
    return targets


def _fmt(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    if metric == "seconds":
        return f"{v:.3f}"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def _mark(summary: dict, impl: str, metric: str) -> str:
    """A median, starred when no quiet measurement was available."""
    s = summary.get(impl, {})
    return _fmt(s.get("median"), metric) + ("*" if s.get("noisy") else "")


def table(points: list[workloads.Point], summaries: dict[str, dict], impls: list[str]) -> str:
    bocpy_cols = [i for i in impls if i in workloads.BOCPY_IMPLS]
    lines = []
    head = ["point", "unit"] + [IMPL_NAMES[i] for i in bocpy_cols]
    if "ref" in bocpy_cols:
        head.append("ours/ref")
    head += ["ours cpu/wall", "bg cores"]
    rows = [head]
    for p in points:
        s = summaries[p.key]
        row = [p.label, p.unit] + [_mark(s, i, p.metric) for i in bocpy_cols]
        if "ref" in bocpy_cols:
            r = speed_ratio(p, s, "ours", "ref")
            row.append("-" if r is None else f"{r:.2f}x")
        cw = s.get("ours", {}).get("median_cpu_per_wall")
        row.append("-" if cw is None else f"{cw:.2f}")
        bgs = [s[i]["median_background_cores"] for i in s if s[i].get("median_background_cores") is not None]
        row.append(f"{max(bgs):.2f}" if bgs else "-")
        rows.append(row)
    lines += _grid(rows)
    sweep = [p for p in points if p.group == "tasksize"]
    base_cols = [i for i in impls if i in workloads.BASELINE_IMPLS]
    if sweep and base_cols:
        lines.append("")
        lines.append("task-size sweep: median wall seconds for equal total work, 2 workers")
        rows = [["task", "tasks"] + [IMPL_NAMES[i] for i in bocpy_cols + base_cols]
                + ["Pool.map/ours"]]
        for p in sweep:
            s = summaries[p.key]
            r = speed_ratio(p, s, "ours", "mp_pool")
            rows.append([f"{p.params['task_us']} us", str(p.params["tasks"])]
                        + [_mark(s, i, "seconds") for i in bocpy_cols + base_cols]
                        + ["-" if r is None else f"{r:.2f}x"])
        lines += _grid(rows)
    return "\n".join(lines)


def markdown(points: list[workloads.Point], summaries: dict[str, dict], impls: list[str],
             targets: list[dict]) -> str:
    """The same tables as :func:`table`, as Markdown (for docs/performance.md)."""
    bocpy_cols = [i for i in impls if i in workloads.BOCPY_IMPLS]
    base_cols = [i for i in impls if i in workloads.BASELINE_IMPLS]
    out = []

    def row(cells: list[str]) -> None:
        out.append("| " + " | ".join(cells) + " |")

    head = ["point", "unit"] + [IMPL_NAMES[i] for i in bocpy_cols]
    if "ref" in bocpy_cols:
        head.append("ours/ref")
    head += ["ours CPU/wall", "background cores"]
    row(head)
    row(["---"] + ["---:"] * (len(head) - 1))
    for p in points:
        s = summaries[p.key]
        cells = [p.label, p.unit] + [_mark(s, i, p.metric) for i in bocpy_cols]
        if "ref" in bocpy_cols:
            r = speed_ratio(p, s, "ours", "ref")
            cells.append("-" if r is None else f"**{r:.2f}x**")
        cw = s.get("ours", {}).get("median_cpu_per_wall")
        cells.append("-" if cw is None else f"{cw:.2f}")
        bgs = [s[i]["median_background_cores"] for i in s
               if s[i].get("median_background_cores") is not None]
        cells.append(f"{max(bgs):.2f}" if bgs else "-")
        row(cells)
    sweep = [p for p in points if p.group == "tasksize"]
    if sweep and base_cols:
        out.append("")
        head = ["task size", "tasks"] + [IMPL_NAMES[i] for i in bocpy_cols + base_cols]
        row(head)
        row(["---"] + ["---:"] * (len(head) - 1))
        for p in sweep:
            s = summaries[p.key]
            row([f"{p.params['task_us']} us", str(p.params["tasks"])]
                + [_mark(s, i, "seconds") for i in bocpy_cols + base_cols])
    if targets:
        out.append("")
        row(["target", "measured", "goal", "met"])
        row(["---", "---:", "---:", "---"])
        for t in targets:
            val = "-" if t["value"] is None else f"{t['value']:.2f}"
            met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
            row([t["target"], val, f">= {t['goal']}", met])
    return "\n".join(out) + "\n"


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                             for i, c in enumerate(r)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


# ---- chart -----------------------------------------------------------------------

def make_chart(results_path: Path, chart_path: Path) -> bool:
    """Draw the chart from a results file; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    data = json.loads(results_path.read_text())
    points = data["points"]
    colors = {"ours": "#1f77b4", "ref": "#ff7f0e", "ours313": "#17becf", "thread": "#7f7f7f",
              "mp_pool": "#2ca02c", "mp_pool_c1": "#98df8a", "ppe": "#d62728"}
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))

    def bars(ax, keys, title, ylabel, log=False):
        sel = [p for p in points if p["key"] in keys]
        impls = [i for i in ("ours", "ref", "ours313")
                 if any(i in p["summary"] for p in sel)]
        width = 0.8 / max(1, len(impls))
        for j, impl in enumerate(impls):
            xs = [n + (j - (len(impls) - 1) / 2) * width for n in range(len(sel))]
            ys = [(p["summary"].get(impl, {}).get("median") or 0) for p in sel]
            ax.bar(xs, ys, width, label=IMPL_NAMES[impl], color=colors[impl])
        ax.set_xticks(range(len(sel)))
        ax.set_xticklabels([p["short"] for p in sel], rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    bars(axes[0][0], [p["key"] for p in points
                      if p["group"] in ("chain_null", "chain_linked", "fanout")],
         "Scheduling throughput (median)", "behaviors or children per second", log=True)
    bars(axes[0][1], [p["key"] for p in points if p["group"] == "reqsize"],
         "Request-set size, 4 chains, 2 workers (median)", "behaviors per second")
    bars(axes[1][0], [p["key"] for p in points if p["group"] in ("chain_cpu", "cpu_par")],
         "CPU payload: 1 vs 2 workers (median)", "behaviors per second")
    ax = axes[1][1]
    sweep = [p for p in points if p["group"] == "tasksize"]
    if sweep:
        xs = [p["params"]["task_us"] for p in sweep]
        for impl in ("ours", "ref", "ours313", "thread", "mp_pool", "mp_pool_c1", "ppe"):
            ys = [p["summary"].get(impl, {}).get("median") for p in sweep]
            if any(y is not None for y in ys):
                ax.plot([x for x, y in zip(xs, ys) if y is not None],
                        [y for y in ys if y is not None], marker="o",
                        label=IMPL_NAMES[impl], color=colors[impl])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("task size (us of payload)")
        ax.set_ylabel("wall seconds for equal total work (lower is better)")
        ax.set_title("Equal total work split into tasks, 2 workers (median)", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    m = data["machine"]
    fig.suptitle(f"bocpy benchmarks - {m.get('cpu_model')}, {m['cores_affinity']} cores, "
                 f"load before {m['loadavg_before'][0]:.2f}"
                 + (" (quick mode)" if data["quick"] else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(chart_path, dpi=100)
    plt.close(fig)
    return True


def _short(p: workloads.Point) -> str:
    pr = p.params
    if p.group == "chain_null":
        return f"chain null w{pr['workers']}"
    if p.group == "chain_linked":
        return f"chain linked w{pr['workers']}"
    if p.group == "chain_cpu":
        return f"chain 100us w{pr['workers']}"
    if p.group == "fanout":
        return f"fanout b{pr['batch']} w{pr['workers']}"
    if p.group == "reqsize":
        return f"{pr['size']} cown{'s' if pr['size'] > 1 else ''}"
    if p.group == "cpu_par":
        return f"1ms tasks w{pr['workers']}"
    return f"{pr.get('task_us')} us"


# ---- main ------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions per implementation and point (default 3; 1 with --quick)")
    ap.add_argument("--ours-only", action="store_true", help="skip the reference implementation")
    ap.add_argument("--with-313", action="store_true", help="also run ours on CPython 3.13")
    ap.add_argument("--ours-path", default=None,
                    help="folder holding the bocpy package to measure as ours "
                         "(default: the repository root)")
    ap.add_argument("--build-ours", nargs="?", const="HEAD", default=None, metavar="REV",
                    help="build an optimised (Release) copy of git revision REV "
                         "(default HEAD; 'worktree' = the working tree) under "
                         "build/bench-ours/ and measure it as ours")
    ap.add_argument("--no-baselines", action="store_true",
                    help="skip the threading / process-pool baselines")
    ap.add_argument("--only", default=None,
                    help="comma-separated groups to run (chain_null, chain_linked, chain_cpu, fanout, "
                         "reqsize, cpu_par, tasksize)")
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
    ns = ap.parse_args(argv)

    if ns.chart_from:  # helper mode: re-invoked under an interpreter with matplotlib
        src = Path(ns.chart_from)
        return 0 if make_chart(src, Path(ns.out)) else 1

    reps = ns.reps if ns.reps is not None else (1 if ns.quick else 3)
    quiet_wait = ns.quiet_wait if ns.quiet_wait is not None else (0.0 if ns.quick else 5.0)
    quiet_budget = ns.quiet_budget
    retry_noisy = ns.retry_noisy if ns.retry_noisy is not None else (0 if ns.quick else 1)
    if reps < 1:
        ap.error("--reps must be >= 1")
    timeout = ns.timeout or (60.0 if ns.quick else 300.0)
    if not PY312.exists():
        print(f"error: {PY312} not found (see scripts/test.sh to build the venvs)", file=sys.stderr)
        return 2
    global OURS_PATH
    ours_build = {"rev": None, "build_type": "in place", "path": str(REPO)}
    if ns.ours_path and ns.build_ours:
        ap.error("--ours-path and --build-ours are exclusive")
    if ns.ours_path:
        OURS_PATH = Path(ns.ours_path).resolve()
        ours_build = {"rev": None, "build_type": "given", "path": str(OURS_PATH)}
    elif ns.build_ours:
        pythons = [PY312] + ([PY313] if ns.with_313 else [])
        try:
            OURS_PATH, ours_build = build_ours(ns.build_ours, pythons)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"error: building ours failed: {exc}", file=sys.stderr)
            return 2
        print(f"built {ours_build['commit']} (Release) in {OURS_PATH}")
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

    t_start = time.perf_counter()
    machine = machine_info(impls)
    machine["ours_build"] = ours_build
    out = Path(ns.out)
    suffix = "-quick" if ns.quick else ""
    results_path = out / f"results{suffix}.json"
    chart_path = out / f"chart{suffix}.png"
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
        cal = subprocess.run(
            [str(PY312), "-c", "import workloads; print(workloads.calibrate())"],
            cwd=str(HERE), env=_env("thread", None), capture_output=True, text=True,
            timeout=120)
        if cal.returncode != 0:
            print(cal.stderr, file=sys.stderr)
            return 2
        ns_per_iter = float(cal.stdout.strip())

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

    print(f"ours: {ours_build}")
    print(f"machine: {machine['cpu_model']}, {machine['cores_affinity']} cores in affinity, "
          f"loadavg {machine['loadavg_before']}")
    for impl in impls:
        print(f"  {impl:10s} {machine['implementations'].get(impl)}")
    print(f"calibration: {ns_per_iter:.1f} ns per payload iteration; "
          f"10 us = {iters_for_us(10)}, 100 us = {iters_for_us(100)}, "
          f"1 ms = {iters_for_us(1000)}, 10 ms = {iters_for_us(10000)} iterations")
    print(f"{len(points)} points x {reps} reps, implementations: {', '.join(impls)}", flush=True)

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
                        r = run_one(impl, script, args, workers, cwd, timeout)
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
            parts = [f"{impl}={_fmt(s[impl]['median'], p.metric)}" for impl in order]
            print(f"  {p.key:22s} {' '.join(parts)}", flush=True)

    runs_this_time = list(raw)
    if old is not None:
        # Earlier measurements are kept; this run's are added to them.
        kept = {p["key"]: p["runs"] for p in old["points"]}
        for p in all_points:
            if p.key in kept:
                new = raw.get(p.key, {})
                raw[p.key] = {impl: kept[p.key].get(impl, []) + new.get(impl, [])
                              for impl in list(kept[p.key]) + [i for i in new
                                                                if i not in kept[p.key]]}
        points = [p for p in all_points if p.key in raw]
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

    print()
    print(table(points, summaries, impls))
    print()
    print("targets:")
    for t in targets:
        status = {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]]
        val = "-" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  [{status:7s}] {t['target']}: {val} (goal >= {t['goal']}, {t['detail']})")
    retried = sum(len(r.get("noisy_attempts", [])) for runs in raw.values()
                  for rs in runs.values() for r in rs)
    still = sum(1 for runs in raw.values() for rs in runs.values() for r in rs
                if (r.get("background_cores") or 0) > NOISY_CORES)
    print(f"\ntotal {elapsed:.0f} s, loadavg after {machine['loadavg_after']}; "
          f"{retried} noisy attempt(s) re-run, {still} kept measurement(s) still noisy "
          f"(> {NOISY_CORES} background cores)")

    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "quick": ns.quick,
        "reps": reps,
        "command": " ".join([Path(sys.executable).name, "benchmarks/run.py", *(argv or sys.argv[1:])]),
        "elapsed_seconds": elapsed,
        "measured_this_run": runs_this_time if not ns.rebuild else old.get("measured_this_run"),
        "options": {k: v for k, v in vars(ns).items() if k != "chart_from"},
        "noisy_threshold_cores": NOISY_CORES,
        "machine": machine,
        "calibration": {"ns_per_iteration": ns_per_iter,
                        "iterations": {str(us): iters_for_us(us) for us in workloads.TASK_SIZES_US}},
        "points": [
            {"key": p.key, "group": p.group, "label": p.label, "short": _short(p),
             "metric": p.metric, "unit": p.unit, "params": p.params,
             "commands": {i: [c[0], *c[1]] for i, c in p.commands.items()},
             "summary": summaries[p.key],
             "ratio_ours_vs_ref": speed_ratio(p, summaries[p.key], "ours", "ref"),
             "runs": raw[p.key]}
            for p in points
        ],
        "targets": targets,
    }
    results_path.write_text(json.dumps(doc, indent=1, default=str))
    print(f"wrote {results_path}")
    md_path = out / f"tables{suffix}.md"
    md_path.write_text(markdown(points, summaries, impls, targets))
    print(f"wrote {md_path}")
    if not ns.no_chart:
        if make_chart(results_path, chart_path):
            print(f"wrote {chart_path}")
        else:
            rc = subprocess.run([str(PY312), str(Path(__file__).resolve()), "--chart-from",
                                 str(results_path), "--out", str(chart_path)],
                                capture_output=True, text=True).returncode
            if rc == 0:
                print(f"wrote {chart_path}")
            else:
                print("note: matplotlib not available: no chart "
                      f"({PY312} -m pip install matplotlib)", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
