"""Choosing the Ray backend (#29) without Ray: clear errors, in the default
run (no 'ray' package needed)."""

from __future__ import annotations

import pytest

import bocpy
import bocpy.ray
from conftest import run_python


def test_missing_ray_says_how_to_install():
    proc = run_python(
        "import sys; sys.modules['ray'] = None\n"
        "import bocpy\n"
        "try:\n"
        "    bocpy.start(backend='ray')\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
        "print('running:', bocpy._core.running())\n"
    )
    assert "ImportError: the Ray backend needs the 'ray' package: " \
           "pip install 'bocpy-runtime[ray]'" in proc.stdout
    assert "running: False" in proc.stdout


def test_backend_from_the_environment():
    proc = run_python(
        "import sys; sys.modules['ray'] = None\n"
        "import bocpy\n"
        "from bocpy import Cown, when\n"
        "try:\n"
        "    @when(Cown(1))\n"
        "    def b(c):\n"
        "        pass\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n",
        env={"BOCPY_BACKEND": "ray"},
    )
    assert "pip install 'bocpy-runtime[ray]'" in proc.stdout


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"backend must be one of \('local', 'ray'\), not 'dask'"):
        bocpy.start(backend="dask")
    with pytest.raises(TypeError, match="backend must be a str"):
        bocpy.start(backend=1)
    assert not bocpy._core.running()


def test_options_are_checked():
    before = bocpy.ray.options()
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        bocpy.ray.options(batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        bocpy.ray.options(batch_size=2.5)
    with pytest.raises(ValueError, match="batch_delay must be between"):
        bocpy.ray.options(batch_delay=-1)
    with pytest.raises(ValueError, match="max_retries must be"):
        bocpy.ray.options(max_retries=-2)
    assert bocpy.ray.options() == before


def test_the_executor_is_chosen_only_while_stopped():
    from bocpy import Cown, wait, when

    with pytest.raises(ValueError, match="executor must be 'workers' or 'external'"):
        bocpy._core._set_executor("threads")

    @when(Cown(0))
    def b(c):
        pass

    try:
        with pytest.raises(RuntimeError, match="only be chosen while the runtime is stopped"):
            bocpy._core._set_executor("external")
    finally:
        wait()
    assert bocpy._core._executor() == "workers"


def test_ray_backend_while_running_on_workers():
    from bocpy import Cown, wait, when

    @when(Cown(0))
    def b(c):
        pass

    try:
        with pytest.raises(RuntimeError, match="running on local workers: wait"):
            bocpy.start(backend="ray")
    finally:
        wait()
