"""A look inside a running program (issue 17): live stats(), trace files
and their PNG timeline, as_completed(), and workers' log records reaching
the main interpreter's handlers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import bocpy
from bocpy import Cown, PinnedCown, as_completed, quiesce, wait, when

HERE = Path(__file__).resolve()


def run_script(source: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "prog.py"
        path.write_text(source)
        return subprocess.run([sys.executable, str(path)], cwd=d, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _gate(tag: str) -> None:
    bocpy.receive(tag, 30)


# ---- stats() ---------------------------------------------------------------------


def _two_workers() -> None:
    """Tests that keep one worker busy need a second one."""
    wait()
    bocpy.start(2)


def test_stats_while_work_runs() -> None:
    _two_workers()
    before = bocpy.stats()

    @when(Cown())
    def fails(c):
        raise ValueError("counted")

    deadline = time.monotonic() + 20
    while bocpy.stats()["failed"] == before["failed"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    blocker, waiter = Cown(0), Cown(0)

    @when(blocker)
    def hold(b):
        _gate("obs-gate")  # keeps its worker busy until released

    queued = []
    for _ in range(5):
        @when(blocker, waiter)
        def behind(b, w):  # wait for the cown `hold` has
            w.value += 1
        queued.append(behind)

    bocpy.send("obs-stats-tag", 1)
    bocpy.send("obs-stats-tag", 2)
    deadline = time.monotonic() + 20
    while True:
        live = bocpy.stats()
        if live["running"] >= 1 and live["in_flight"] >= 6:
            break
        assert time.monotonic() < deadline, live
        time.sleep(0.01)
    try:
        assert live["runtime_running"] is True
        assert live["scheduled"] - before["scheduled"] == 7
        assert live["in_flight"] >= 6  # hold + the five behind it
        assert live["waiting"] >= 5 - live["queued"]
        assert any(w["running"] for w in live["workers"])
        assert sum(w["queued"] for w in live["workers"]) == live["queued"]
        assert live["messages"]["obs-stats-tag"] == 2
        assert live["failed"] - before["failed"] == 1
    finally:
        bocpy.drain("obs-stats-tag")
        bocpy.send("obs-gate", "go")
        wait()
    done = bocpy.stats()
    assert done["runtime_running"] is False
    assert done["finished"] - before["finished"] == 7
    assert done["in_flight"] == 0 and done["running"] == 0
    assert fails.exception and isinstance(fails.value, ValueError)


def test_stats_show_the_pinned_queue_depth_and_age() -> None:
    for i in range(3):  # three pinned cowns: all three are ready at once
        @when(PinnedCown([]))
        def on_main(p):
            p.value.append(1)
    time.sleep(0.05)  # the pinned queue waits for this thread to pump
    live = bocpy.stats()
    assert live["pinned"]["queued"] == 3
    assert live["pinned"]["oldest_age_s"] >= 0.04
    wait()
    assert bocpy.stats()["pinned"] == {"queued": 0, "oldest_age_s": 0.0}


def test_stats_from_a_behavior() -> None:
    @when(Cown())
    def inside(c):
        s = bocpy.stats()
        return s["running"] >= 1 and s["runtime_running"]

    wait()
    assert inside.value is True


# ---- trace ---------------------------------------------------------------------------


def _traced_program(n: int) -> tuple[list[Cown], list[Cown]]:
    cowns = [Cown(i) for i in range(4)]
    results = []
    for i in range(n):
        @when(cowns[i % 4])
        def step(c):
            c.value += 1
            if c.value == 5:  # once per cown (values start at 0..3)
                raise KeyError("traced")
            return c.value
        results.append(step)
    return cowns, results


def test_trace_of_a_known_program(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    with bocpy.trace(path) as t:
        cowns, results = _traced_program(40)
        pin = PinnedCown(0)

        @when(pin, cowns[0])
        def pinned(p, c):
            p.value += 1

        wait()
    data = json.loads(path.read_text())  # valid JSON
    events = data["traceEvents"]
    assert events == t.events
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == 41
    steps = [e for e in slices if e["name"].endswith("_traced_program.<locals>.step")]
    assert len(steps) == 40
    assert all(set(e) >= {"name", "ph", "ts", "dur", "pid", "tid", "args"} for e in slices)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in slices)
    where = steps[0]["args"]["where"]
    assert where.startswith(f"{HERE}:") and int(where.rsplit(":", 1)[1]) > 0
    assert all(len(e["args"]["cowns"]) == 1 for e in steps)
    failed = [e for e in steps if "exception" in e["args"]]
    assert len(failed) == 4 and failed[0]["args"]["exception"] == "KeyError"
    (pinned_slice,) = [e for e in slices if e["name"].endswith("pinned")]
    names = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names[pinned_slice["tid"]] == "main thread (pinned)"
    assert all(names[e["tid"]].startswith("worker ") for e in steps)
    counters = [e for e in events if e["ph"] == "C"]
    assert any(e["name"].startswith("queue worker") for e in counters)
    assert any(e["name"] == "pinned queue" for e in counters)
    for r in results:
        r.exception = False


def test_nothing_is_recorded_outside_a_trace(tmp_path: Path) -> None:
    with bocpy.trace(tmp_path / "a.json"):
        pass
    _traced_program(8)
    wait()
    with bocpy.trace(tmp_path / "b.json") as t:
        pass
    assert [e for e in t.events if e["ph"] == "X"] == []


def test_trace_rejects_bad_use(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, not int"):
        bocpy.trace(5)  # type: ignore[arg-type]
    with bocpy.trace(tmp_path / "outer.json"):
        with pytest.raises(RuntimeError, match="traces do not nest"):
            with bocpy.trace(tmp_path / "inner.json"):
                pass


TRACED_SCRIPT = """\
import bocpy
from bocpy import Cown, when, wait
c = Cown(0)
for i in range(25):
    @when(c)
    def inc(c):
        c.value += 1
wait()
print(c.value)
"""


def test_trace_environment_variable_and_png(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    out = run_script(TRACED_SCRIPT, env={"BOCPY_TRACE": str(path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "25"
    events = json.loads(path.read_text())["traceEvents"]
    assert len([e for e in events if e["ph"] == "X" and e["name"] == "inc"]) == 25
    png = tmp_path / "timeline.png"
    cli = subprocess.run([sys.executable, "-m", "bocpy.trace", str(path), "--png", str(png)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert "25 behaviors" in cli.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_trace_cli_reports_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"no": 1}')
    cli = subprocess.run([sys.executable, "-m", "bocpy.trace", str(bad)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert cli.returncode == 2
    assert "not trace-event JSON" in cli.stderr


# ---- as_completed ---------------------------------------------------------------


def test_as_completed_yields_every_result_in_completion_order() -> None:
    _two_workers()
    slow, fast = Cown(0), Cown(0)

    @when(slow)
    def late(c):
        _gate("obs-late")
        return "late"

    @when(fast)
    def early(c):
        return "early"

    it = as_completed([late, early])
    first = next(it)
    assert first.cown is early and first.value == "early" and not first.exception
    bocpy.send("obs-late", 1)
    second = next(it)
    assert second.cown is late and second.result() == "late"
    with pytest.raises(StopIteration):
        next(it)
    wait()


def test_as_completed_delivers_exceptions_with_their_traceback() -> None:
    @when(Cown())
    def broken(c):
        raise ArithmeticError("in body")

    (done,) = list(as_completed([broken]))
    assert done.exception
    with pytest.raises(ArithmeticError) as info:
        done.result()
    assert "in broken" in info.value.__cause__.text
    wait()


def test_as_completed_many_and_progress_counts() -> None:
    cs = [Cown(i) for i in range(50)]
    results = []
    for c in cs:
        @when(c)
        def sq(c):
            return c.value * c.value
        results.append(sq)
    values = sorted(d.value for d in as_completed(results))
    assert values == [i * i for i in range(50)]
    wait()


def test_as_completed_errors() -> None:
    with pytest.raises(TypeError, match="item 1 has type int"):
        as_completed([Cown(), 3])
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        as_completed([Cown()], timeout=-1)
    _two_workers()
    blocked = Cown()

    @when(blocked)
    def stuck(c):
        _gate("obs-stuck")

    with pytest.raises(TimeoutError, match="1 of 1 cowns had not completed"):
        list(as_completed([stuck], timeout=0.1))
    bocpy.send("obs-stuck", 1)
    wait()
    assert list(as_completed([])) == []


# ---- logging ------------------------------------------------------------------------

LOGGING_SCRIPT = """\
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                    format="MAIN|%(levelname)s|%(name)s|%(message)s")
logging.getLogger("noisy").setLevel(logging.ERROR)
from bocpy import Cown, when, wait

@when(Cown(7))
def work(c):
    log = logging.getLogger("app.worker")
    log.debug("hidden debug")
    log.info("info from worker %d", c.value)
    logging.getLogger("noisy").warning("hidden warning")
    logging.getLogger("noisy").error("shown error")
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("with traceback")

wait()
print("END")
"""


def test_worker_log_records_reach_main_handlers_with_main_format() -> None:
    out = run_script(LOGGING_SCRIPT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "MAIN|INFO|app.worker|info from worker 7" in lines
    assert "MAIN|ERROR|noisy|shown error" in lines
    assert "MAIN|ERROR|app.worker|with traceback" in lines
    assert "ZeroDivisionError: division by zero" in out.stdout
    assert "hidden" not in out.stdout + out.stderr
    assert lines[-1] == "END"


# ---- the progress example ---------------------------------------------------------

PROGRESS = Path(__file__).resolve().parents[2] / "examples" / "progress.py"


def _run_progress(tmp_path: Path, extra_path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOCPY_WORKERS": "2"}
    if extra_path is not None:
        env["PYTHONPATH"] = extra_path
    return subprocess.run([sys.executable, str(PROGRESS), "--count", "2000"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)


def test_progress_example_with_tqdm(tmp_path: Path) -> None:
    import tqdm  # noqa: F401  (a requirement: scripts/requirements.txt)

    out = _run_progress(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2000/2000" in out.stderr  # the bar reached the end
    assert "152 primes among 2000 numbers from 1,000,000" in out.stdout
    assert "0 failed" in out.stdout


def test_progress_example_without_tqdm(tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "tqdm.py").write_text("raise ImportError('tqdm hidden by the test')\n")
    out = _run_progress(tmp_path, str(blocker))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("tqdm is not installed")
    assert "2000/2000 behaviors done" in lines
    assert "152 primes among 2000 numbers from 1,000,000" in out.stdout


def test_trace_cost_benchmark_runs(tmp_path: Path) -> None:
    """A smoke run of benchmarks/wl_trace.py (figures are reported by the
    benchmark, not checked here)."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "wl_trace.py"
    out = subprocess.run([sys.executable, str(script), "--steps", "50", "--reps", "1"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["slices_in_last_trace"] == 8 * (50 + 2)  # 8 chains, steps + warm-up
    assert data["off_ops_per_cpu_s"] > 0 and data["on_ops_per_cpu_s"] > 0
