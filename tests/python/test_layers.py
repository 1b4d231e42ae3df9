"""The shape of the C code: core/ layers depend one way, and every extension
module exports exactly one dynamic symbol (its PyInit_ function)."""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import check_layers  # noqa: E402


def test_core_layers_depend_one_way() -> None:
    found, graph = check_layers.problems(ROOT)
    assert found == []
    assert {Path(f).parts[0] for f in graph} == set(check_layers.LAYERS)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / "core" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_checker_reports_an_upward_include(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "engine/a.h": '#include "exec/b.h"\n',
        "exec/b.h": "\n",
    })
    found, _ = check_layers.problems(root)
    assert any("layer 'engine' includes \"exec/b.h\"" in f for f in found), found


def test_checker_reports_python_in_engine_and_cycles(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "engine/a.c": "#include <Python.h>\n",
        "exec/x.h": '#include "exec/y.h"\n',
        "exec/y.h": '#include "exec/x.h"\n',
        "value/p.h": '#include "value/q.h"\n',
        "value/q.h": '#include "value/p.h"\n',
        "stray.c": "\n",
    })
    found, _ = check_layers.problems(root)
    assert any("must not include <Python.h>" in f for f in found), found
    assert any(f.startswith("include cycle: exec/") for f in found), found
    assert not any("value/p" in f for f in found), found  # allowed inside value
    assert any("not inside a layer folder" in f for f in found), found


def _extension_files() -> list[Path]:
    names = ["bocpy._core", "bocpy.plugins.files", "bocpy.plugins.matrix"]
    for extra in ["bocpy.plugins.opencl", "bocpy.plugins.ctypes_bridge"]:
        if importlib.util.find_spec(extra) is not None:
            names.append(extra)
    return [Path(importlib.import_module(n).__file__) for n in names]


@pytest.mark.parametrize("path", _extension_files(), ids=lambda p: p.name)
def test_one_exported_symbol(path: Path) -> None:
    nm = shutil.which("nm")
    assert nm is not None, "nm (binutils) is needed: apt-get install binutils"
    out = subprocess.run([nm, "-D", "--defined-only", str(path)], check=True,
                         capture_output=True, text=True).stdout
    symbols = [line.split()[-1] for line in out.splitlines() if line.strip()]
    module = path.name.split(".", 1)[0]
    assert symbols == [f"PyInit_{module}"], symbols
