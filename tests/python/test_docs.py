"""The documentation's Python examples run, and the versions it quotes are
the build's (issue 27).

Every ```python block in README.md and docs/*.md is a complete program and
runs as a script file (behaviors need a source file) in a fresh
interpreter, in an empty directory, with two workers, unless the line
before its fence marks it:

    <!-- fragment: why -->        not run: part of a larger program, or a
                                  signature; the reason is for the reader
    <!-- raises: ExceptionName --> runs and must end with that exception
                                  (an example of an error message)

Shell, C, CMake and TOML blocks are not run here (the packaging tests
build what they describe).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bocpy

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
MARK = re.compile(r"^<!-- (fragment|raises): ?([^>]*?) ?-->$")


def blocks() -> list[tuple[str, str, str | None]]:
    """(id, code, expected exception or None) of each complete block."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[:m.start()].rstrip("\n").splitlines()
            mark = MARK.match(before[-1]) if before else None
            if mark and mark.group(1) == "fragment":
                continue
            raises = mark.group(2) if mark else None
            found.append((f"{doc.relative_to(ROOT)}:{line}", m.group(1), raises))
    return found


BLOCKS = blocks()


def test_the_docs_have_complete_examples() -> None:
    assert len(BLOCKS) >= 8, [b[0] for b in BLOCKS]
    assert any(b[0].startswith("README.md") for b in BLOCKS)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("where,code,raises", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_example_runs(where: str, code: str, raises: str | None, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(BOCPY_WORKERS="2", MPLBACKEND="Agg")
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240)
    if raises is None:
        assert res.returncode == 0, f"{where} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
        assert "Traceback" not in res.stderr, f"{where}:\n{res.stderr[-4000:]}"
    else:
        last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""
        assert res.returncode != 0 and re.match(rf"(\w+\.)*{raises}\b", last), \
            f"{where} should end with {raises}:\n{res.stderr[-4000:]}"


# ---- the versions the docs quote ---------------------------------------------

VERSION = bocpy.__version__
ABI = "{major}.{minor}".format(**bocpy._core._abi_info())
ABI_MAJOR = int(ABI.split(".")[0])
QUOTED = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
          *sorted((ROOT / "templates").rglob("*.md"))]


def quotes(pattern: str) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for doc in QUOTED:
        text = doc.read_text(encoding="utf-8")
        for m in re.finditer(pattern, text):
            line = text.count("\n", 0, m.start()) + 1
            out.append((f"{doc.relative_to(ROOT)}:{line}", m.groups()))
    return out


def test_version_strings_in_the_docs_are_the_builds() -> None:
    # "bocpy 0.1.0 (ABI 1.1, ...)": the version string of the ABI header
    found = quotes(r"\"bocpy (\d+\.\d+\.\d+) \(ABI (\d+\.\d+)")
    assert found, "no quoted version string found"
    wrong = [(w, g) for w, g in found if g != (VERSION, ABI)]
    assert not wrong, f"expected ({VERSION}, {ABI}): {wrong}"
    # wheel and sdist names
    found = quotes(r"bocpy_runtime(?:_dev)?-(\d+\.\d+\.\d+)")
    assert found
    assert [(w, g) for w, g in found if g != (VERSION,)] == []
    # requirements with the range derived from the ABI major
    found = quotes(r"bocpy-runtime(?:-dev)?>=(\d+\.\d+\.\d+),<(\d+)")
    assert found
    assert [(w, g) for w, g in found if g != (VERSION, str(ABI_MAJOR + 1))] == []


def test_abi_version_in_the_docs_is_the_builds() -> None:
    found = quotes(r"`--abi` \| [^|\n]*?\(`(\d+\.\d+)`\)")
    assert found, "docs/packaging.md documents --abi with an example"
    assert [(w, g) for w, g in found if g != (ABI,)] == []
    out = subprocess.run([sys.executable, "-P", "-m", "bocpy", "--abi"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0] == ABI
