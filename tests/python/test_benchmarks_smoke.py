"""A smoke run of every benchmark workload at tiny sizes (figures are not
checked here: benchmarks report, tests assert behaviour)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bocpy

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def test_benchmark_workloads_run(tmp_path: Path) -> None:
    # The driver measures "ours" with the repository's CPython 3.12
    # environment, so point it at the bocpy installed there.
    py312 = RUN.parents[1] / ".venv" / "py3.12" / "bin" / "python"
    if sys.version_info[:2] == (3, 12):
        installed = Path(bocpy.__file__).resolve().parents[1]
    else:
        if not py312.exists():
            pytest.skip("the benchmark driver needs .venv/py3.12 (scripts/test.sh makes it)")
        installed = Path(subprocess.run(
            [str(py312), "-c", "import bocpy, pathlib; "
             "print(pathlib.Path(bocpy.__file__).resolve().parents[1])"],
            capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip())
    out = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--ours-only", "--no-chart",
         "--ours-path", str(installed), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = list(tmp_path.glob("*.json"))
    assert results, out.stdout[-2000:]
    data = json.loads(results[0].read_text())
    runs = [r for p in data["points"] for r in p["runs"].get("ours", [])]
    assert runs and all(r.get("ok") for r in runs), [r for r in runs if not r.get("ok")][:3]


@pytest.mark.parametrize("script", ["wl_pinned.py", "wl_messages.py", "wl_module_data.py", "wl_when_cost.py"])
def test_pinned_and_messaging_workloads_run(script: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(RUN.parent / script), "200"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["check"] is True and figures["ops"] == 200


@pytest.mark.parametrize("shape,size", [("chains", 2005), ("tree", 3), ("philo_evenodd", 1),
                                        ("philo_ring", 1)])
def test_shape_workloads_run(shape: str, size: int, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(RUN.parent / "wl_shapes.py"), shape, "2", str(size),
                          "10"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "BOCPY_SHAPES_TRACE": "1"})
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["check"] is True and figures["ops"] > 0
    assert 0.99 <= figures["concurrency"] <= 2.01


@pytest.mark.parametrize("mode", ["map", "when", "ppe"])
def test_bulk_workload_runs(mode: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(RUN.parent / "wl_bulk.py"), mode, "2", "3000", "100"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["check"] is True and figures["ops"] == 3000


def test_opencl_benchmark_runs(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(RUN.parent / "bench_opencl.py"), "--quick", "--json"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["check"] is True
    assert figures["dispatch"]["behaviors"] == 50 and figures["dispatch"]["pump_per_s"] > 0
    for key in ("upload_s", "kernel_s", "read_s", "cpu_s"):
        assert figures["saxpy"][key] > 0
    assert figures["matmul"]["matmul_tiled_check"] is True


def test_driver_runs_from_the_source_tree_against_the_installed_bocpy(tmp_path: Path) -> None:
    """The documented command, from the repository root, without --ours-path:
    ours is the bocpy installed in .venv/py3.12, which the source tree (with
    no extension built in place) must not shadow."""
    py312 = RUN.parents[1] / ".venv" / "py3.12" / "bin" / "python"
    if not py312.exists():
        pytest.fail("the benchmark driver needs .venv/py3.12 (scripts/test.sh makes it)")
    out = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--ours-only", "--no-chart", "--no-baselines",
         "--only", "chain_null", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=RUN.parents[1],
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    data = json.loads((tmp_path / "results-quick.json").read_text())
    assert data["machine"]["ours_build"]["build_type"] == "installed"
    ours = data["machine"]["implementations"]["ours"]
    assert "site-packages" in ours["file"], ours
    runs = [r for p in data["points"] for r in p["runs"]["ours"]]
    assert runs and all(r["ok"] for r in runs)


def test_numpy_benchmark_runs(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(RUN.parent / "bench_numpy.py"), "--quick", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["check"] is True
    assert {r["case"] for r in figures["pipelines"]} >= {"bocpy behaviors", "numpy (one thread)"}
    assert all(r["seconds"] > 0 for r in figures["conversions"] + figures["pipelines"])


def test_versions_benchmark_runs() -> None:
    """benchmarks/bench_versions.py (1 vs 2 workers per CPython) at tiny
    sizes, for the interpreter running the tests (its .venv/py<ver>)."""
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    venv = RUN.parents[1] / ".venv" / f"py{ver}" / "bin" / "python"
    if not venv.exists():
        pytest.fail(f"bench_versions.py needs .venv/py{ver} (scripts/test.sh makes it)")
    out = subprocess.run([sys.executable, str(RUN.parent / "bench_versions.py"), "--versions", ver,
                          "--tasks", "8", "--iters", "100", "--repeats", "1", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    [row] = json.loads(out.stdout.strip().splitlines()[-1])["rows"]
    assert row["python"] == ver
    assert row["tasks_per_s_1"] > 0 and row["tasks_per_s_2"] > 0
