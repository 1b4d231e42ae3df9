"""bocpy._core loads in the main interpreter and in own-GIL sub-interpreters."""

from __future__ import annotations

import os
import pytest

import bocpy
from bocpy import _core

from conftest import run_python
from subinterp import run_isolated


def test_imports_in_main_interpreter() -> None:
    assert _core.is_main_interpreter() is True
    assert _core.interpreter_id() == 0


def test_imports_in_own_gil_subinterpreter() -> None:
    out = run_isolated(
        """
        import bocpy._core as core
        emit(f"{core.is_main_interpreter()} {core.interpreter_id()}")
        """
    )
    is_main, interp_id = out.split()
    assert is_main == "False"
    assert int(interp_id) > 0


def test_two_subinterpreters_each_have_their_module() -> None:
    # The module state is per interpreter: importing it twice must not share
    # or corrupt anything.
    for _ in range(2):
        out = run_isolated("import bocpy._core as c; emit(c.cpu_count())")
        assert int(out) >= 1


def test_cpu_counts() -> None:
    logical = _core.cpu_count()
    physical = _core.cpu_count(physical=True)
    assert 1 <= physical <= logical
    assert logical == len(os.sched_getaffinity(0))


def test_cpu_count_rejects_bad_keyword() -> None:
    with pytest.raises(TypeError, match="logical"):
        _core.cpu_count(logical=True)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("env", "expected"),
    [("3", 3), ("1", 1), ("0", None), ("-1", None), ("many", None), ("", None)],
)
def test_worker_count_override(env: str, expected: int | None) -> None:
    code = "import bocpy; print(bocpy.WORKER_COUNT)"
    out = run_python(code, env={"BOCPY_WORKERS": env}).stdout
    if expected is None:
        expected = max(1, _core.cpu_count(physical=True) - 1)
    assert int(out) == expected


def test_version_is_a_string() -> None:
    assert isinstance(bocpy.__version__, str)
    assert bocpy.__version__ != ""
