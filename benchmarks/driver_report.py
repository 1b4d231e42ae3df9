"""Reporting a benchmark run (benchmarks/run.py): medians over the quiet
runs, ratios, the targets of issue 7, the text and Markdown tables, the
chart, and results.json."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import workloads
from driver_plan import IMPL_NAMES, NOISY_CORES


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
    # Issue 33: values of the program's own classes stay where they are.
    ki, ka = "bank/int", "bank/account"
    if ka in by_key:
        add("bank with Account objects >= 3x reference",
            speed_ratio(by_key[ka], summaries[ka], "ours", "ref"), 3.0,
            "ours/ref transfers/s")
        if ki in by_key:
            mi = summaries[ki].get("ours", {}).get("median")
            ma = summaries[ka].get("ours", {}).get("median")
            add("bank with Account objects >= 0.5x the int-balance bank",
                ma / mi if mi and ma else None, 0.5, "ours account/int transfers/s")
    return targets


def fmt(v: float | None, metric: str) -> str:
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
    return fmt(s.get("median"), metric) + ("*" if s.get("noisy") else "")


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


def short_label(p: workloads.Point) -> str:
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


# ---- the run's outputs --------------------------------------------------------------

def merge_previous(old: dict, raw: dict[str, dict[str, list[dict]]],
                   all_points: list[workloads.Point]) -> list[workloads.Point]:
    """Adds the earlier measurements of ``old`` (a results.json) to ``raw``
    in place; returns the points that now have measurements."""
    kept = {p["key"]: p["runs"] for p in old["points"]}
    for p in all_points:
        if p.key in kept:
            new = raw.get(p.key, {})
            raw[p.key] = {impl: kept[p.key].get(impl, []) + new.get(impl, [])
                          for impl in list(kept[p.key]) + [i for i in new
                                                            if i not in kept[p.key]]}
    return [p for p in all_points if p.key in raw]


def print_report(points: list[workloads.Point], summaries: dict[str, dict], impls: list[str],
                 targets: list[dict], raw: dict[str, dict[str, list[dict]]],
                 elapsed: float, loadavg_after: list[float]) -> None:
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
    print(f"\ntotal {elapsed:.0f} s, loadavg after {loadavg_after}; "
          f"{retried} noisy attempt(s) re-run, {still} kept measurement(s) still noisy "
          f"(> {NOISY_CORES} background cores)")


def results_document(*, points: list[workloads.Point], summaries: dict[str, dict],
                     raw: dict[str, dict[str, list[dict]]], targets: list[dict],
                     machine: dict, ns_per_iter: float, iters_for_us, header: dict) -> dict:
    """The content of results.json: ``header`` (quick, reps, command, ...)
    followed by the machine, the calibration and every point's runs."""
    return {
        **header,
        "noisy_threshold_cores": NOISY_CORES,
        "machine": machine,
        "calibration": {"ns_per_iteration": ns_per_iter,
                        "iterations": {str(us): iters_for_us(us) for us in workloads.TASK_SIZES_US}},
        "points": [
            {"key": p.key, "group": p.group, "label": p.label, "short": short_label(p),
             "metric": p.metric, "unit": p.unit, "params": p.params,
             "commands": {i: [c[0], *c[1]] for i, c in p.commands.items()},
             "summary": summaries[p.key],
             "ratio_ours_vs_ref": speed_ratio(p, summaries[p.key], "ours", "ref"),
             "runs": raw[p.key]}
            for p in points
        ],
        "targets": targets,
    }
