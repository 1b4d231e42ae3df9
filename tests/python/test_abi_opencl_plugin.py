"""bocpy.plugins.opencl is a third-party-style abi3 plugin: stable ABI only
(abi3audit and nm agree), no link-time dependency on libOpenCL, and one
binary compiled against CPython 3.12 runs the GPU examples on 3.13."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import bocpy._abi
from bocpy.plugins import files, matrix, opencl

from test_abi_packaging import assert_stable_abi_only
from test_abi_support import REPO, compiler, find_python, find_tool

PLUGINS = [Path(m.__file__) for m in (opencl, matrix, files)]


@pytest.mark.parametrize("so", PLUGINS, ids=lambda p: p.name)
def test_abi3audit_is_clean(so: Path) -> None:
    if not bocpy._abi.ABI3:
        # 3.10/3.11 plugins are version-specific modules: nothing abi3 to audit
        # here (the 3.12 build is audited on the 3.12 and 3.13 runs)
        assert not so.name.endswith(".abi3.so") and so.name.endswith(bocpy._abi.plugin_suffix())
        pytest.skip("abi3audit audits abi3 builds; CPython < 3.12 builds version-specific plugins")
    tool = find_tool("abi3audit")
    assert tool is not None, "abi3audit is missing: pip install -r scripts/requirements.txt"
    res = subprocess.run([tool, "--strict", "--summary", "--assume-minimum-abi3", "3.12",
                          str(so)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 ABI version mismatches and" in res.stdout + res.stderr
    assert "0 ABI violations found" in " ".join((res.stdout + res.stderr).split())


def test_stable_abi_only_and_no_opencl_link() -> None:
    so = Path(opencl.__file__)
    assert_stable_abi_only(so)
    readelf = shutil.which("readelf")
    assert readelf is not None
    dyn = subprocess.run([readelf, "-d", str(so)], check=True, capture_output=True,
                         text=True).stdout
    needed = [line for line in dyn.splitlines() if "(NEEDED)" in line]
    assert not [n for n in needed if "OpenCL" in n], needed  # dlopen()ed instead


def build_with_312(out: Path) -> Path:
    """Compiles plugins/opencl once, against CPython 3.12's headers."""
    py312 = find_python("3.12")
    cc = compiler()
    assert py312 and cc, "needs CPython 3.12 and a C compiler"
    inc = subprocess.run([py312, "-c", "import sysconfig; print(sysconfig.get_path('include'))"],
                         check=True, capture_output=True, text=True).stdout.strip()
    so = out / "opencl.abi3.so"
    src = REPO / "plugins" / "opencl"
    subprocess.run([cc, "-std=c11", "-O2", "-fPIC", "-shared", "-fvisibility=hidden",
                    "-Wall", "-Wextra", "-Werror", "-DPy_LIMITED_API=0x030C0000",
                    f"-I{inc}", f"-I{REPO / 'abi' / 'include'}", "-o", str(so),
                    *[str(c) for c in sorted(src.glob("*.c"))], "-ldl", "-lpthread"],
                   check=True, capture_output=True, text=True)
    return so


def installed_bocpy(python: str) -> Path | None:
    with tempfile.TemporaryDirectory() as cwd:
        res = subprocess.run([python, "-P", "-c", "import bocpy, os; print(os.path.dirname(bocpy.__file__))"],
                             cwd=cwd, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return Path(res.stdout.strip()) if res.returncode == 0 else None


def test_one_binary_built_on_312_runs_the_examples_on_313(tmp_path: Path) -> None:
    py313 = find_python("3.13")
    assert py313 is not None, "needs CPython 3.13 (scripts/env.sh finds it with pyenv)"
    pkg313 = Path(opencl.__file__).parents[1] if sys.version_info[:2] == (3, 13) \
        else installed_bocpy(py313)
    assert pkg313 is not None, ("bocpy is not installed for CPython 3.13: scripts/test.sh "
                                "installs it into every venv before any test runs")
    so = build_with_312(tmp_path)
    assert_stable_abi_only(so)
    site = tmp_path / "site"
    shutil.copytree(pkg313, site / "bocpy", ignore=shutil.ignore_patterns("__pycache__"))
    for old in (site / "bocpy" / "plugins").glob("opencl*.so"):
        old.unlink()
    shutil.copy(so, site / "bocpy" / "plugins" / so.name)
    env = {**os.environ, "PYTHONPATH": str(site), "BOCPY_WORKERS": "2"}
    check = subprocess.run(
        [py313, "-c", "import sys; from bocpy.plugins import opencl; "
                      "print(sys.version_info[:2], opencl.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split(")")[0] == "(3, 13"
    assert check.stdout.strip().endswith(str(site / "bocpy" / "plugins" / "opencl.abi3.so"))
    for name, want in (("gpu_saxpy.py", "max abs error: "),
                       ("gpu_pipeline.py", "8 batches of 256x512: all match the CPU")):
        res = subprocess.run([py313, str(REPO / "examples" / name)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert want in res.stdout
