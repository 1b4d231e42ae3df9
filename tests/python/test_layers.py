"""The shape of the code: core/ layers depend one way, the Python package
bocpy/ imports one way (scripts/check_layers.py PY_LAYERS), and every
extension module exports exactly one dynamic symbol (its PyInit_ function)."""
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


def test_python_layers_depend_one_way() -> None:
    found, graph = check_layers.py_problems(ROOT)
    assert found == []
    # Every layer holds a module of the package; the face is on top of the
    # runtime, and only the backends (found by name at start()) above it.
    layers = {check_layers.py_layer(m) for m in graph}
    assert layers == set(range(len(check_layers.PY_LAYERS)))
    names = [name for name, _ in check_layers.PY_LAYERS]
    assert check_layers.py_layer("bocpy") == names.index("face")
    assert names[-1] == "backend" and check_layers.py_layer("ray") == len(names) - 1


def _package_copy(tmp_path: Path) -> Path:
    """A copy of bocpy/ and core/ (sources only) to plant imports in."""
    skip = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.dylib")
    for part in ("bocpy", "core"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=skip)
    assert check_layers.py_problems(tmp_path)[0] == []
    return tmp_path


def _plant(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_checker_reports_a_new_upward_import(tmp_path: Path) -> None:
    root = _package_copy(tmp_path)
    _plant(root, "bocpy/_byvalue.py", "\nfrom ._when import whencall\n")
    found, _ = check_layers.py_problems(root)
    assert any("bocpy/_byvalue.py:" in f and "layer 'value' imports '_when' of the "
               "higher layer 'runtime'" in f for f in found), found
    assert any(f.startswith("import cycle:") and "_byvalue" in f for f in found), found


def test_checker_reports_an_import_inside_a_function(tmp_path: Path) -> None:
    # Same layer and downward imports are allowed at the top of a module;
    # inside a function only with a "# lazy: <reason>" comment.
    root = _package_copy(tmp_path)
    _plant(root, "bocpy/_bulk.py", "\n\ndef _planted():\n    from . import _errors\n")
    found, _ = check_layers.py_problems(root)
    assert len(found) == 1 and "bocpy/_bulk.py:" in found[0] \
        and "imports _errors inside a function" in found[0], found
    root2 = _package_copy(tmp_path / "marked")
    _plant(root2, "bocpy/_bulk.py",
           "\n\ndef _planted():\n    from . import _errors  # lazy: a test\n")
    assert check_layers.py_problems(root2)[0] == []


def test_checker_reports_a_same_layer_cycle(tmp_path: Path) -> None:
    root = _package_copy(tmp_path)
    _plant(root, "bocpy/_pump.py",
           "\n\ndef _planted():\n    from . import _observe  # lazy: a test\n")
    found, _ = check_layers.py_problems(root)
    assert found and all(f.startswith("import cycle:") for f in found), found
    assert any("_observe" in f and "_pump" in f for f in found), found


def test_checker_reports_modules_outside_the_table(tmp_path: Path) -> None:
    root = _package_copy(tmp_path)
    (root / "bocpy" / "_planted.py").write_text("from . import _core\n")
    (root / "core" / "exec" / "planted.c").write_text(
        'static void f(void) { PyImport_ImportModule("bocpy._lifecycle"); }\n')
    found, _ = check_layers.py_problems(root)
    assert any("module '_planted' is in no layer" in f for f in found), found
    assert any("imports bocpy._lifecycle, not in CORE_CALLS" in f for f in found), found


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
