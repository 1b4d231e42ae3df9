"""bocpy.map: many small behaviors in one call (issue 33)."""

from __future__ import annotations

import threading

import pytest

import bocpy
from bocpy import Cown, RemoteTraceback, receive, send, wait, when

from conftest import run_python

OFFSET = 7


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Every test starts stopped and leaves the runtime stopped."""
    wait()
    yield
    wait()


def double(x):
    return 2 * x


def fails_on_five(x):
    if x == 5:
        raise KeyError(f"item {x}")
    return x


@pytest.mark.parametrize("chunksize", [1, 3, 4, 1000])
def test_results_in_order(chunksize: int) -> None:
    assert list(bocpy.map(double, range(23), chunksize=chunksize)) == [2 * i for i in range(23)]


def test_any_iterable_and_empty() -> None:
    assert list(bocpy.map(double, (i for i in range(5)))) == [0, 2, 4, 6, 8]
    assert list(bocpy.map(double, [])) == []
    assert list(bocpy.map(double, "ab", chunksize=2)) == ["aa", "bb"]


def test_captures_like_when() -> None:
    scale = 3
    got = list(bocpy.map(lambda x: x * scale + OFFSET, range(4), chunksize=2))
    assert got == [7, 10, 13, 16]


def test_starts_the_runtime() -> None:
    assert not bocpy._core.running()
    assert list(bocpy.map(double, [1])) == [2]
    assert bocpy._core.running()


def test_an_exception_is_raised_at_its_chunk_with_the_remote_traceback() -> None:
    it = bocpy.map(fails_on_five, range(10), chunksize=2)
    got = []
    with pytest.raises(KeyError, match="item 5") as info:
        for v in it:
            got.append(v)
    # Chunks [0, 1], [2, 3] arrived; the chunk [4, 5] failed as a whole.
    assert got == [0, 1, 2, 3]
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "fails_on_five" in cause.text
    assert "test_bulk.py" in cause.text
    assert 'raise KeyError(f"item {x}")' in cause.text


def test_the_other_chunks_still_run() -> None:
    c = Cown(0)
    list(bocpy.map(double, range(3)))  # the runtime is up

    @when(c)
    def after(c):
        c.value = 1
    it = bocpy.map(fails_on_five, range(10), chunksize=1)
    with pytest.raises(KeyError):
        list(it)
    wait()
    assert c.value == 1
    assert bocpy.stats()["failed"] >= 1


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="must be a function .* not builtin_function_or_method"):
        bocpy.map(abs, [1])
    with pytest.raises(ValueError, match="chunksize must be >= 1, not 0"):
        bocpy.map(double, [1], chunksize=0)
    with pytest.raises(TypeError, match="chunksize must be an int, not str"):
        bocpy.map(double, [1], chunksize="2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="chunksize must be an int, not bool"):
        bocpy.map(double, [1], chunksize=True)
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        bocpy.map(double, [1], timeout=-1)
    with pytest.raises(TypeError, match="timeout must be a number"):
        bocpy.map(double, [1], timeout="1")  # type: ignore[arg-type]

    def gen(x):
        yield x
    with pytest.raises(TypeError, match="generator"):
        bocpy.map(gen, [1])
    with pytest.raises(TypeError):
        bocpy.map(double, [threading.Lock()])  # an item that cannot travel


def test_a_result_that_cannot_travel_is_a_type_error() -> None:
    it = bocpy.map(lambda x: threading.Lock(), [1, 2])
    with pytest.raises(TypeError):
        list(it)


def test_timeout() -> None:
    def gate(x):
        from bocpy import receive
        receive("bulk_gate")
        return x
    it = bocpy.map(gate, [1])
    with pytest.raises(TimeoutError, match="1 of 1 chunks had not completed"):
        bocpy.map(gate, [2], timeout=0.05).__next__()
    send("bulk_gate", None)
    send("bulk_gate", None)
    assert list(it) == [1]


def test_refused_on_a_worker() -> None:
    c = Cown(None)

    @when(c)
    def inside(c):
        import bocpy
        try:
            bocpy.map(abs, [1])
        except RuntimeError as exc:
            c.value = str(exc)
    wait()
    assert "main interpreter" in c.value


def test_not_in_star_import() -> None:
    assert "map" not in bocpy.__all__
    ns: dict = {}
    exec("from bocpy import *", ns)
    assert "map" not in ns


def test_an_abandoned_failure_is_reported_at_exit() -> None:
    proc = run_python(
        "import bocpy\n"
        "def boom(x):\n"
        "    raise ValueError('never looked at')\n"
        "it = bocpy.map(boom, [1, 2])\n"
        "bocpy.wait()\n", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "never looked at" in proc.stderr


def test_results_survive_wait() -> None:
    """wait() runs every chunk; the iterator still yields them afterwards."""
    it = bocpy.map(double, range(10), chunksize=3)
    wait()
    assert not bocpy._core.running()
    assert list(it) == [2 * i for i in range(10)]


def test_many_chunks_with_two_workers() -> None:
    bocpy.start(2)
    assert sum(bocpy.map(double, range(20000), chunksize=7)) == 20000 * 19999
