"""Planning a benchmark run (benchmarks/run.py): the implementations and the
interpreters and builds that run them, the machine, the payload calibration.

Our implementation is, by default, the bocpy installed in the repository's
CPython 3.12 environment (``.venv/py3.12``, made by scripts/test.sh or
scripts/demo.sh; ``.venv/py3.13`` for ``ours313``), run from a temporary
directory so the source tree never shadows it.  ``--ours-path DIR`` measures
the package in DIR instead (put on ``PYTHONPATH``); ``--build-ours REV``
builds a Release copy of a git revision and measures that.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import workloads

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

PY312 = REPO / ".venv" / "py3.12" / "bin" / "python"
PY313 = REPO / ".venv" / "py3.13" / "bin" / "python"
REFPY = REPO / "build" / "refvenv" / "bin" / "python"
BENCH_BUILD = REPO / "build" / "bench-ours"

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


@dataclass(frozen=True)
class Setup:
    """Where each implementation runs."""

    #: Folder put on PYTHONPATH for ours (None: the interpreter's installed bocpy).
    ours_path: Path | None = None

    def env(self, impl: str, workers: int | None) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        if impl in ("ours", "ours313") and self.ours_path is not None:
            env["PYTHONPATH"] = str(self.ours_path)
        if workers is not None:
            env["BOCPY_WORKERS"] = str(workers)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def python(self, impl: str) -> Path:
        if impl == "ref":
            return REFPY
        if impl == "ours313":
            return PY313
        return PY312


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


def machine_info(setup: Setup, impls: list[str]) -> dict:
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
            out = _probe(setup.python(impl), code, setup.env(impl, None))
            desc = json.loads(out) if out else None
            if desc and impl != "ref":
                desc["compile_flags"] = compile_flags(desc.get("extension"))
            info["implementations"][impl] = desc
        else:
            out = _probe(PY312, "import sys; print(sys.version.split()[0])", setup.env(impl, None))
            info["implementations"][impl] = {"python": out}
    return info


def calibrate(setup: Setup) -> float:
    """Nanoseconds per payload iteration on this machine (workloads.calibrate
    in a fresh 3.12 process); raises RuntimeError when that fails."""
    cal = subprocess.run(
        [str(PY312), "-c", "import workloads; print(workloads.calibrate())"],
        cwd=str(HERE), env=setup.env("thread", None), capture_output=True, text=True,
        timeout=120)
    if cal.returncode != 0:
        raise RuntimeError(cal.stderr)
    return float(cal.stdout.strip())
