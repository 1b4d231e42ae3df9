"""Importing bocpy from an unbuilt source checkout (issue 27): a clear
ImportError that says what happened and what to do, instead of "cannot
import name '_core' from partially initialized module"."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def checkout_copy(tmp: Path) -> Path:
    """The parts of a checkout the check looks at: the bocpy/ sources (no
    compiled modules), CMakeLists.txt and abi/."""
    root = tmp / "checkout"
    shutil.copytree(ROOT / "bocpy", root / "bocpy",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "lib", "include"))
    shutil.copy(ROOT / "CMakeLists.txt", root / "CMakeLists.txt")
    (root / "abi").mkdir()
    return root


def run_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_import_in_the_checkout_root_says_what_to_do(tmp_path: Path) -> None:
    root = checkout_copy(tmp_path)
    for args in (["-c", "import bocpy"], ["-m", "bocpy", "--cmakedir"]):
        res = run_in(root, *args)
        assert res.returncode != 0
        err = res.stderr
        assert "ImportError: bocpy was imported from its source directory" in err, err
        assert str((root / "bocpy").resolve()) in err
        assert "no compiled bocpy._core extension" in err
        assert "python -P" in err and "pip install ." in err
        assert "partially initialized" not in err.splitlines()[-1]


def test_dash_P_in_the_checkout_root_finds_the_installed_package(tmp_path: Path) -> None:
    root = checkout_copy(tmp_path)
    res = run_in(root, "-P", "-c", "import bocpy; print(bocpy.__file__)")
    assert res.returncode == 0, res.stderr
    assert not res.stdout.strip().startswith(str(root))


def test_other_import_errors_are_left_alone(tmp_path: Path) -> None:
    """A bocpy/ directory that is not a checkout (no CMakeLists.txt of
    bocpy beside it) gets Python's own error."""
    root = checkout_copy(tmp_path)
    (root / "CMakeLists.txt").write_text("project(other)\n")
    res = run_in(root, "-c", "import bocpy")
    assert res.returncode != 0
    assert "source directory" not in res.stderr
    assert "_core" in res.stderr
