"""The example programs in examples/ run to completion and print what they
should.

Each example runs as a script in a fresh interpreter (the one running the
tests), from a temporary directory outside the source tree, with two
workers. Every example prints only deterministic lines, so the whole output
is compared.
"""

from __future__ import annotations

import sys

from conftest import run_example


def test_bank() -> None:
    assert run_example("bank.py") == [
        "transfers: 500 scheduled, 401 completed, 99 refused",
        " alice:   24  (refused 25)",
        "   bob:   96  (refused 10)",
        " carol:   30  (refused 26)",
        "  dave:  194  (refused 4)",
        "  erin:   18  (refused 10)",
        " frank:  238  (refused 24)",
        "total: 600 (opening total 600)",
        "audit behavior saw total: 600",
        "matches sequential replay: True",
    ]


def test_dining_philosophers() -> None:
    names = ["Aristotle", "Kant", "Spinoza", "Marx", "Russell"]
    assert run_example("dining_philosophers.py") == (
        [f"{name} ate 20 meals" for name in names]
        + [f"fork {n} was used 40 times (expected 40)" for n in range(5)]
        + ["no fork was ever held by two philosophers at once: True"]
    )


def test_fibonacci() -> None:
    assert run_example("fibonacci.py") == [
        "fib(22) with nested behaviors: 17711",
        "fib(22) iterative:             17711",
        "leaf tasks (n < 10): 610",
        "match: True",
    ]


def test_cooking() -> None:
    assert run_example("cooking.py") == [
        "order  1: omelette made by Ana",
        "order  2: pizza    made by Bruno",
        "order  3: salad    made by Chen",
        "order  4: pancakes made by Ana",
        "order  5: bread    made by Bruno",
        "order  6: lasagne  made by Chen",
        "order  7: omelette made by Ana",
        "order  8: salad    made by Bruno",
        "order  9: pizza    not made, out of cheese",
        "order 10: bread    not made, out of butter",
        "order 11: pancakes not made, out of butter",
        "order 12: salad    made by Chen",
        "order 13: lasagne  not made, out of cheese, tomatoes",
        "order 14: omelette not made, out of butter, eggs",
        "order 15: pizza    not made, out of cheese, tomatoes",
        "Ana cooked: omelette, pancakes, omelette",
        "Bruno cooked: pizza, bread, salad",
        "Chen cooked: salad, lasagne, salad",
        "stations used: counter 4, oven 3, stove 4",
        "pantry left: butter 0, cheese 1, eggs 2, flour 5, lettuce 0, milk 2, tomatoes 0",
        "dishes made: 9 of 15",
    ]


def test_sketches() -> None:
    assert run_example("sketches.py") == [
        "apples  supermarket   0.99",
        "bread   corner shop   0.95",
        "cheese  supermarket   2.75",
        "coffee  corner shop   4.50",
        "eggs    supermarket   1.85",
        "milk    corner shop   0.89",
        "cheapest basket: 11.93",
        "overlapped: True",
    ]


def test_ctypes_bridge() -> None:
    import importlib.util
    import zlib

    from conftest import EXAMPLES

    spec = importlib.util.spec_from_file_location("ctypes_bridge_example",
                                                  EXAMPLES / "ctypes_bridge.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)  # defines pattern(); main() does not run
    size = 1 << 20
    assert run_example("ctypes_bridge.py") == [
        f"buffer {i}: {size} bytes, crc32 {zlib.crc32(example.pattern(i, size)):#010x} "
        "(matches zlib.crc32)"
        for i in range(8)
    ] + ["8 of 8 checksums match zlib.crc32"]


def test_gpu_saxpy() -> None:
    # Runs on whatever OpenCL device is there (PoCL on the CPU in CI).
    (line,) = run_example("gpu_saxpy.py")
    assert line.startswith("max abs error: "), line
    assert float(line.split(": ")[1]) <= 1e-5


def test_gpu_pipeline() -> None:
    assert run_example("gpu_pipeline.py") == (
        [f"batch {b}: 256 row sums match" for b in range(8)]
        + ["8 batches of 256x512: all match the CPU"]
    )


def test_gpu_examples_exit_2_without_a_device() -> None:
    import os
    import subprocess
    import sys

    from conftest import EXAMPLES

    for name in ("gpu_saxpy.py", "gpu_pipeline.py"):
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / name)],
            env={**os.environ, "BOCPY_OPENCL_LIBRARY": "/nonexistent/libOpenCL.so.1"},
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "no OpenCL device: no OpenCL runtime" in proc.stderr


#: NumPy < 2.3's own warning when a CPython 3.10/3.11 worker (a sub-interpreter
#: sharing the GIL, where NumPy imports) runs the example's `import numpy`;
#: 3.12+ workers cannot import NumPy, and the behaviors never use it.
NUMPY_SUBINTERP_WARNING = (r"NumPy was imported from a Python sub-interpreter|"
                           r"Improvements in the case of bugs are welcome|^\s+import numpy as np$")


def test_numpy_pipeline() -> None:
    ok = NUMPY_SUBINTERP_WARNING if sys.version_info < (3, 12) else None
    assert run_example("numpy_pipeline.py", timeout=120, stderr_ok=ok) == [
        "image 2048 x 2048: 16 tiles of 512 x 512, one behavior each",
        "max difference from single-threaded NumPy: 0.0",
        "identical to NumPy: True",
    ]
