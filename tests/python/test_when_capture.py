"""What @when captures and ships: local functions, lambdas, closures and
decorators by value; module-level data shipped once while unchanged; the
bounded plan cache; unshareable module globals named at @when."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from bocpy import Cown, _core, receive, send, start, wait, when, whencall

import behaviors_elsewhere

#: Module-level data read by bodies below (shipped once per worker).
TABLE = tuple(range(20_000))
module_rows = [1, 2, 3]
module_prices = {"tea": 3, "cake": 5}


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


def test_local_decorators_stacked_below_when_apply_in_order() -> None:
    def tag(label):
        def deco(fn):
            def wrapper(*args):
                return [label] + fn(*args)
            return wrapper
        return deco

    def schedule(c):
        @when(c)
        @tag("outer")
        @tag("inner")
        def r(c):
            return [c.value]
        return r

    r = schedule(Cown(5))
    wait()
    assert (r.exception, r.value) == (False, ["outer", "inner", 5])


def test_local_helper_calls_local_helper() -> None:
    offset = 100

    def double(x):
        return 2 * x

    def helper(x):
        return double(x) + offset

    c = Cown(4)

    @when(c)
    def r(c):
        return helper(c.value)

    wait()
    assert (r.exception, r.value) == (False, 108)


def test_lambdas_travel_in_captures_values_and_messages() -> None:
    square = lambda x: x * x  # noqa: E731
    c = Cown(lambda: 3)

    @when(c)
    def r(c):
        return square(c.value())

    wait()
    assert (r.exception, r.value) == (False, 9)
    send("fn", lambda y: y + 1)
    tag, fn = receive("fn", 5)
    assert (tag, fn(1)) == ("fn", 2)


def test_recursive_and_mutually_recursive_local_functions() -> None:
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    def is_even(n):
        return True if n == 0 else is_odd(n - 1)

    def is_odd(n):
        return False if n == 0 else is_even(n - 1)

    c = Cown(15)

    @when(c)
    def r(c):
        return fib(c.value), is_even(c.value), is_odd(c.value)

    wait()
    assert (r.exception, r.value) == (False, (610, False, True))


def test_nested_when_inside_a_local_function_runs() -> None:
    def bump(c, by):
        @when(c)
        def _(c):
            c.value += by

    c = Cown(0)

    @when(c)
    def outer(c):
        bump(c, 10)   # schedules from the worker, through a local function
        bump(c, 5)

    wait()
    assert c.value == 15


def test_local_divide_and_conquer() -> None:
    def fib(n, total):
        @when()
        def _():
            if n < 2:
                @when(total)
                def _(total):
                    total.value += n
                return
            fib(n - 1, total)  # a local function scheduling from the worker
            fib(n - 2, total)

    total = Cown(0)
    fib(12, total)
    wait()
    assert total.value == 144


def test_module_data_is_encoded_once_while_unchanged() -> None:
    start(2)
    before = _core.when_stats()
    results = []
    for i in range(40):
        @when(Cown(i))
        def r(c):
            s = _core.when_stats()
            return (_core.worker_index(), TABLE[c.value], s["globals_decoded"])
        results.append(r)
    wait()
    after = _core.when_stats()
    assert after["globals_encoded"] - before["globals_encoded"] == 1
    assert after["globals_reused"] - before["globals_reused"] == 39
    values = [r.value for r in results]
    assert [v[1] for v in values] == list(range(40))
    per_worker: dict[int, set[int]] = {}
    for worker, _, decoded in values:
        per_worker.setdefault(worker, set()).add(decoded)
    # Each worker decoded the table at most once: the same count throughout.
    assert all(len(counts) == 1 for counts in per_worker.values()), per_worker


def test_module_data_keeps_snapshot_semantics() -> None:
    start(1)
    seen = []
    for _ in range(3):
        @when(Cown(0))
        def r(c):
            rows = list(module_rows)
            module_rows.append(99)  # the body's copy only
            return rows
        seen.append(r)
        module_rows.append(len(module_rows) + 1)  # rebinding-free mutation
    wait()
    assert [r.value for r in seen] == [[1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4, 5]]
    del module_rows[3:]


def test_plan_cache_is_bounded() -> None:
    start(1)
    _core._set_cache_limit(32)
    try:
        results = []
        for i in range(300):
            ns: dict = {"when": when}
            exec(f"def make(c):\n  @when(c)\n  def b{i}(c):\n    return {i}\n  return b{i}", ns)
            results.append(ns["make"](Cown(0)))
        assert _core.when_stats()["plans"] <= 32

        @when()
        def worker_functions():
            return _core.when_stats()["functions"]
        wait()
        assert [r.value for r in results] == list(range(300))
        assert worker_functions.value <= 32
    finally:
        _core._set_cache_limit(4096)


def test_unshareable_global_of_an_importable_module_uses_the_workers_own() -> None:
    r = behaviors_elsewhere.guarded_increment(Cown(1))
    wait()
    assert (r.exception, r.value) == (False, "lock")


def _run_script(tmp_path: Path, source: str) -> "subprocess.CompletedProcess[str]":
    import os
    import subprocess

    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BOCPY_WORKERS": "1"})


def test_unshareable_global_of_a_script_fails_at_when(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, """
        import threading
        from bocpy import Cown, wait, when

        def make_lock():
            return threading.Lock()

        # Not rebuilt by the workers' copy of the script (a call of the
        # script's own function), so it would have to travel, and cannot.
        LOCK = make_lock()

        def schedule(c):
            @when(c)
            def step(c):
                with LOCK:
                    c.value += 1

        try:
            schedule(Cown(0))
        except TypeError as exc:
            print("raised:", exc)
        wait()
        """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "raised:" in out and "'LOCK'" in out and "'_thread.lock'" in out, out
    assert "step" in out


def test_pinned_body_may_read_unshareable_script_global(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, """
        import threading
        from bocpy import PinnedCown, wait, when

        LOCK = threading.Lock()
        p = PinnedCown(0)

        @when(p)
        def step(p):
            with LOCK:
                p.value += 1

        wait()
        print("value", p.value)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "value 1"


def test_script_local_functions_and_decorators(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, """
        import functools
        from bocpy import Cown, wait, when

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return ("logged", fn(*args))
            return wrapper

        def main():
            scale = 3

            def retry(times):
                def deco(fn):
                    def again(*args):
                        for _ in range(times - 1):
                            try:
                                return fn(*args)
                            except ZeroDivisionError:
                                pass
                        return fn(*args)
                    return again
                return deco

            c = Cown(2)

            @when(c)
            @logged
            @retry(2)
            def r(c):
                return c.value * scale

            wait()
            print(r.exception, r.value)

        main()
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False ('logged', 6)"


def test_script_module_level_lambda_travels_by_value(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, """
        import logging
        from bocpy import Cown, wait, when

        square = lambda x: x * x  # noqa: E731  (not kept by the reduced copy)
        log = logging.getLogger("prog")  # a logger pickles by name

        def make_adder(k):
            def add(x):
                return x + k
            return add

        add_ten = make_adder(10)  # a closure bound to a module name

        def schedule(c):
            @when(c)
            def step(c):
                log.debug("step")
                return add_ten(square(c.value))
            return step

        r = schedule(Cown(3))
        wait()
        print(r.exception, r.value)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False 19"


def test_module_dict_changes_and_rebinding_are_seen() -> None:
    global module_prices
    start(1)
    seen = []

    def price_of_tea():
        @when(Cown(0))
        def r(c):
            value = dict(module_prices)
            module_prices["tea"] = -1  # the worker's copy only
            return value
        seen.append(r)

    before = _core.when_stats()
    price_of_tea()
    price_of_tea()                      # unchanged: reused
    module_prices["tea"] = 4            # changed in place: shipped again
    price_of_tea()
    saved = module_prices
    module_prices = {"tea": 9}          # rebound: shipped again
    price_of_tea()
    wait()
    module_prices = saved
    module_prices["tea"] = 3
    after = _core.when_stats()
    assert [r.value for r in seen] == [{"tea": 3, "cake": 5}, {"tea": 3, "cake": 5},
                                       {"tea": 4, "cake": 5}, {"tea": 9}]
    assert after["globals_encoded"] - before["globals_encoded"] == 3
    assert after["globals_reused"] - before["globals_reused"] == 1


def test_whencall_takes_local_functions_as_captures() -> None:
    start(1)

    def body(c, fn):
        return fn(c.value)

    r = whencall(body, [Cown(6)], [lambda v: v * 7])
    wait()
    assert (r.exception, r.value) == (False, 42)
