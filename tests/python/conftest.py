"""Shared pytest configuration for the bocpy suite."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The suite tests the *installed* package (scripts/test.sh installs it into the
# virtual environment), never the source tree, which holds no compiled modules.
if str(ROOT) in sys.path:
    sys.path.remove(str(ROOT))


def run_python(code: str, *, env: dict[str, str] | None = None,
               timeout: float = 120, check: bool = True):
    """Run ``code`` in a fresh interpreter outside the source tree (so it sees
    the installed package) and return the CompletedProcess."""
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **(env or {})},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )


EXAMPLES = ROOT / "examples"


def import_example(name: str):
    """Import ``examples/<name>.py`` as the module ``name`` (as a program
    that puts examples/ on its path would), for tests that call its
    functions in this process."""
    import importlib

    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def run_example(name: str, timeout: float = 60, stderr_ok: str | None = None) -> list[str]:
    """Run ``examples/<name>`` with two workers, outside the source tree, and
    return its stdout lines after checking that it exited cleanly and wrote
    nothing to stderr (but lines matching the regular expression
    ``stderr_ok``)."""
    import os
    import re
    import subprocess
    import tempfile

    script = EXAMPLES / name
    assert script.is_file(), f"missing example {script}"
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, "BOCPY_WORKERS": "2"},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr}"
    stderr = proc.stderr
    if stderr_ok is not None:
        stderr = "".join(ln for ln in stderr.splitlines(keepends=True)
                         if not re.search(stderr_ok, ln))
    assert stderr == "", proc.stderr
    return proc.stdout.splitlines()
