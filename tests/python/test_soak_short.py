"""A short run of the soak workload (benchmarks/soak.py runs >= 1,000,000)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def test_soak_short_variant(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, str(SOAK), "--behaviors", "30000", "--round", "10000",
         "--workers", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items()},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "soak OK: 30000 behaviors, 3 rounds" in out.stdout
    assert "pool cycles: 300 starts of 1-3 workers" in out.stdout
