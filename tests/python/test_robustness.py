"""Robustness, round two (issue 20) and Ctrl-C/SIGTERM at exit (issue 17).

Each test runs a small program in a fresh interpreter: the faults are about
how a whole process starts, forks, exits and is interrupted.  The stress
variants (exit race, fork) run their program many times, several at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ENV = {**os.environ, "BOCPY_WORKERS": "2", "PYTHONFAULTHANDLER": "1"}


def _write(dirname: str, source: str | bytes, name: str = "prog.py") -> Path:
    path = Path(dirname) / name
    if isinstance(source, str):
        source = textwrap.dedent(source).encode()
    path.write_bytes(source)
    return path


def run(source: str | bytes, *, timeout: float = 60, env: dict[str, str] | None = None,
        via: str = "file") -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script (``via``: "file", "stdin" redirected from a
    file, or "-c") outside the source tree; return the finished process."""
    with tempfile.TemporaryDirectory() as cwd:
        path = _write(cwd, source)
        e = {**ENV, **(env or {})}
        stdin = None
        if via == "file":
            argv = [sys.executable, str(path)]
        elif via == "stdin":
            argv = [sys.executable, "-"]
            stdin = open(path, "rb")
        else:
            assert via == "-c"
            argv = [sys.executable, "-c", path.read_text()]
        try:
            proc = subprocess.Popen(argv, stdin=stdin, cwd=cwd, env=e, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                # A hang: make every process of the program (a forked child
                # too) dump its Python stacks (faulthandler), then report.
                os.killpg(proc.pid, signal.SIGABRT)
                try:
                    out, err = proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    out, err = proc.communicate()
                raise AssertionError(f"hung for {timeout} s\nstdout:\n{out}\n"
                                     f"stderr:\n{err}") from None
        finally:
            if stdin is not None:
                stdin.close()
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def run_many(source: str, n: int, *, parallel: int = 6,
             timeout: float = 60) -> list[subprocess.CompletedProcess[str]]:
    """Run ``source`` n times, ``parallel`` at once, one worker each (the
    races are about the process, not about how many workers it has)."""
    one = {"BOCPY_WORKERS": "1"}
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda _: run(source, timeout=timeout, env=one), range(n)))


def assert_clean(proc: subprocess.CompletedProcess[str], code: int = 0) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    for bad in ("Fatal Python error", "Segmentation fault", "Assertion",
                "Exception ignored", "Traceback"):
        assert bad not in proc.stderr, proc.stderr


# ---- 1. exit while a daemon thread keeps scheduling ---------------------------

EXIT_RACE = """
    import os, threading, time
    from bocpy import Cown, when
    c = Cown(0)
    ready = threading.Event()

    def spam():
        while True:
            try:
                @when(c)
                def _(c):
                    c.value += 1
            except RuntimeError as exc:
                assert str(exc).startswith("bocpy is shutting down"), exc
                os.write(1, b"REFUSED\\n")
                return
            ready.set()

    threading.Thread(target=spam, daemon=True).start()
    ready.wait()
    time.sleep(0.05)
    print("MAIN DONE", flush=True)
"""


def test_exit_with_a_daemon_thread_scheduling() -> None:
    proc = run(EXIT_RACE, timeout=60)
    assert_clean(proc)
    assert "MAIN DONE" in proc.stdout


def test_exit_race_stress() -> None:
    # 50 runs, 6 at a time: no crash, no hang (each must end in 60 s).
    t0 = time.monotonic()
    procs = run_many(EXIT_RACE, 50)
    for proc in procs:
        assert_clean(proc)
        assert "MAIN DONE" in proc.stdout
    print(f"exit race: 50 runs in {time.monotonic() - t0:.1f} s")


def test_start_after_exit_began_is_refused() -> None:
    proc = run("""
        import atexit, threading
        out = []

        def late():
            import bocpy
            from bocpy import Cown, when
            try:
                bocpy.start(1)
            except RuntimeError as exc:
                out.append(str(exc))
            try:
                @when(Cown(1))
                def _(c):
                    pass
            except RuntimeError as exc:
                out.append(str(exc))

        go, done = threading.Event(), threading.Event()

        def in_thread():
            go.wait()
            late()
            done.set()

        def report():  # registered before bocpy's hook: runs after it
            late()
            go.set()
            done.wait(10)
            print(sum(m.startswith("bocpy is shutting down") for m in out), flush=True)

        threading.Thread(target=in_thread, daemon=True).start()
        atexit.register(report)
        from bocpy import Cown, when, wait
        c = Cown(1)
        @when(c)
        def _(c):
            c.value += 1
    """)
    assert_clean(proc)
    assert proc.stdout.strip() == "4", proc.stdout


# ---- 2. fork -----------------------------------------------------------------

FORK_AFTER_WAIT = """
    import multiprocessing as mp
    from bocpy import Cown, when, wait

    def square(x):
        return x * x

    if __name__ == "__main__":
        c = Cown(0)
        for i in range(20):
            @when(c)
            def _(c, i=i):
                c.value += i
        wait()
        assert c.value == 190
        pool = mp.get_context("fork").Pool(2)
        print(sum(pool.map(square, range(10))), flush=True)
        # close+join, not terminate(): Pool.terminate() has its own rare
        # hangs on a loaded machine that have nothing to do with bocpy
        pool.close()
        pool.join()
        # bocpy still works in the parent afterwards
        @when(c)
        def _(c):
            c.value += 1
        wait()
        print(c.value, flush=True)
"""


def test_fork_pool_after_wait() -> None:
    proc = run(FORK_AFTER_WAIT)
    assert_clean(proc)
    assert proc.stdout.split() == ["285", "191"]


FORK_WHILE_RUNNING = """
    import os, time
    from bocpy import Cown, when, wait
    c = Cown(0)

    @when(c)
    def _(c):
        import time
        time.sleep(0.3)

    pid = os.fork()
    if pid == 0:
        try:
            @when(Cown(1))
            def _(c):
                pass
        except RuntimeError as exc:
            print("CHILD", str(exc)[:40], flush=True)
        try:
            wait()
        except RuntimeError as exc:
            print("CHILD-WAIT", "forked" in str(exc), flush=True)
        raise SystemExit(0)
    _, status = os.waitpid(pid, 0)
    print("STATUS", status, flush=True)
    wait()
"""


def test_fork_while_running_child_gets_a_clear_error() -> None:
    proc = run(FORK_WHILE_RUNNING)
    assert_clean(proc)
    assert "CHILD bocpy cannot be used in this process" in proc.stdout, proc.stdout
    assert "CHILD-WAIT True" in proc.stdout
    assert "STATUS 0" in proc.stdout


def test_fork_stress() -> None:
    t0 = time.monotonic()
    both = run_many(FORK_AFTER_WAIT, 25) + run_many(FORK_WHILE_RUNNING, 25)
    for proc in both:
        assert_clean(proc)
    print(f"fork: 50 runs in {time.monotonic() - t0:.1f} s")


# ---- 3. re-entrant waits -----------------------------------------------------

def test_waits_refuse_reentry_from_pinned_behaviors_and_noticeboard() -> None:
    proc = run("""
        import threading, time
        import bocpy
        from bocpy import Cown, PinnedCown, when, wait, quiesce, pump
        p = PinnedCown(0)
        results = {}

        def attempt(name, fn, match="not reentrant"):
            t0 = time.monotonic()
            try:
                fn()
                results[name] = "returned"
            except RuntimeError as exc:
                results[name] = ("RuntimeError", match in str(exc),
                                 time.monotonic() - t0 < 1)

        @when(p)
        def _(p):
            attempt("wait", lambda: wait(timeout=2))
            attempt("quiesce", lambda: quiesce(timeout=2))
            attempt("pump", lambda: pump())
            attempt("stop", lambda: bocpy.Behaviors().stop(timeout=2))
            attempt("start", lambda: bocpy.start(7), "already running")
        wait()

        bocpy.notice_write("k", 1)
        def fn(v):
            attempt("nb-wait", lambda: wait(timeout=2))
            attempt("nb-quiesce", lambda: quiesce())
            return v + 1
        bocpy.notice_update("k", fn)
        wait()
        for k, v in sorted(results.items()):
            print(k, v)
    """, timeout=30)
    assert_clean(proc)
    lines = proc.stdout.splitlines()
    assert len(lines) == 7, proc.stdout
    for line in lines:
        assert line.endswith("('RuntimeError', True, True)"), line


def test_wait_timeout_is_honoured_while_another_thread_waits() -> None:
    proc = run("""
        import threading, time
        from bocpy import Cown, when, wait
        c = Cown(0)
        @when(c)
        def _(c):
            import time
            time.sleep(1.5)
        out = []
        def other():
            time.sleep(0.3)  # main is inside wait() by now
            t0 = time.monotonic()
            try:
                wait(timeout=0.3)
            except TimeoutError:
                out.append(time.monotonic() - t0)
        t = threading.Thread(target=other)
        t.start()
        wait()
        t.join()
        print(out[0] < 1.0 if out else "no timeout")
    """)
    assert_clean(proc)
    assert proc.stdout.strip() == "True"


# ---- 4. the worker's copy of __main__ -----------------------------------------

MAIN_SCRIPT = """\
import collections, dataclasses, enum, threading, logging
from typing import NamedTuple
from bocpy import Cown, when, wait

registry = dict()
HANDLERS = []
LOCK = threading.Lock()
LOG = logging.getLogger("prog")

def register(fn):
    registry[fn.__name__] = fn
    HANDLERS.append(fn.__name__)
    return fn

@register
def double(x):
    return 2 * x

Point = collections.namedtuple("Point", "x y")
Color = enum.Enum("Color", "RED GREEN")

class P3(NamedTuple):
    x: int
    y: int

@dataclasses.dataclass
class D:
    a: int
    b: list = dataclasses.field(default_factory=list)

def main():
    c = Cown(Point(1, 2))
    d = Cown(D(1))
    e = Cown(Color.GREEN)
    @when(c, d, e)
    def r(c, d, e):
        with LOCK:
            LOG.debug("in body")
            return (registry["double"](c.value.x), HANDLERS, Point(3, 4).y,
                    d.value.a, e.value.name, P3(5, 6).y, "\u00e9")
    wait()
    print(r.value)

if __name__ == "__main__":
    main()
"""
EXPECTED = "(2, ['double'], 4, 1, 'GREEN', 6, '\u00e9')"


@pytest.mark.parametrize("variant", ["file", "stdin", "-c", "bom", "latin-1"])
def test_worker_rebuilds_main(variant: str) -> None:
    source: str | bytes = MAIN_SCRIPT
    via = variant if variant in ("stdin", "-c") else "file"
    if variant == "bom":
        source = b"\xef\xbb\xbf" + MAIN_SCRIPT.encode("utf-8")
    elif variant == "latin-1":
        source = ("# -*- coding: latin-1 -*-\n" + MAIN_SCRIPT).encode("latin-1")
    proc = run(source, via=via)
    assert_clean(proc)
    assert proc.stdout.strip() == EXPECTED


# ---- 5. memory -----------------------------------------------------------------

def test_cown_cycles_are_reclaimed() -> None:
    proc = run("""
        import gc
        from bocpy import Cown, when, wait, _core
        base = None
        for i in range(60):
            a = Cown(None)
            b = Cown([a])
            a.value = [b]          # a -> b -> a, through the values
            s = Cown({"self": None})
            s.value = {"self": s}  # a self-cycle
            @when(a, b)
            def _(a, b):
                a.value.append(b)  # re-stored by a behavior
            wait()
            del a, b, s, _
            gc.collect()
            wait()
            if i == 2:
                base = _core.live_cowns()
        print(_core.live_cowns() - base, _core.tracked_cowns())
    """)
    assert_clean(proc)
    grow, tracked = map(int, proc.stdout.split())
    assert grow <= 0 and tracked <= 6, proc.stdout


def test_live_cycle_members_are_kept() -> None:
    proc = run("""
        from bocpy import Cown, when, wait
        a = Cown(None)
        b = Cown([a])
        a.value = [b]
        @when(a)
        def _(a):
            pass
        wait()
        b2 = a.value[0]           # reachable through a, which main holds
        print(b2.value[0] == a, len(a.value))
    """)
    assert_clean(proc)
    assert proc.stdout.split() == ["True", "1"]


def test_random_cown_graph_is_collected_exactly() -> None:
    # 3,000 cowns whose values reference random others (many cycles); one
    # handle kept: everything reachable from it survives with its value,
    # everything else is freed, and the tracking set empties at the end.
    proc = run("""
        import random
        from bocpy import Cown, start, when, wait, _core
        rng = random.Random(7)
        start(); wait()  # the runtime's own long-lived cowns exist from here
        base = _core.live_cowns()
        cs = [Cown(None) for _ in range(3000)]
        edges = {i: rng.sample(range(3000), 2) for i in range(3000)}
        for i, c in enumerate(cs):
            c.value = (i, [cs[j] for j in edges[i]])
        @when(cs[0])
        def _(c):
            pass
        wait()
        seen, todo = set(), [0]
        while todo:
            i = todo.pop()
            if i not in seen:
                seen.add(i)
                todo += edges[i]
        keep = cs[0]
        del cs, c, _
        _core.collect_cycles()  # the runtime is stopped: allowed
        alive = _core.live_cowns() - base
        # walk the kept graph through the values: all there, all intact
        found, todo = {}, [keep]
        while todo:
            c = todo.pop()
            i, nxt = c.value
            if i not in found:
                found[i] = c
                todo += nxt
        ok = set(found) == seen and all(found[i].value[0] == i for i in found)
        print(alive == len(seen), ok)
        del keep, found, todo, c, nxt
        # main borrowed every cown it read: scheduling gives them back, and
        # the wait() that follows collects them
        @when(Cown(0))
        def _(c):
            pass
        wait()
        del _  # its result cown
        print(_core.live_cowns() - base, _core.tracked_cowns())
    """)
    assert_clean(proc)
    assert proc.stdout.split() == ["True", "True", "0", "0"], proc.stdout


def test_pool_keeps_its_interpreters_across_size_changes() -> None:
    # Issue #26: ending an interpreter leaks part of its memory in CPython,
    # so a smaller run parks the extra workers and a larger one reuses them
    # (no new threads); stats show the workers of the current run only.
    # Issue 20: a program that settled on a smaller size gets them back: the
    # pool keeps the largest size of the last 8 runs.
    proc = run("""
        import os
        import bocpy
        from bocpy import Cown, when, wait, _core
        def threads():
            return len(os.listdir("/proc/self/task"))
        base = threads()
        bocpy.start(8)
        wait()
        big = threads()
        bocpy.start(2)
        @when(Cown(0))
        def _(c):
            return 1
        wait()
        small = threads()
        pooled = _core.pooled_workers()
        shown = len(bocpy.stats()["workers"])
        bocpy.start(8)
        wait()
        again = threads()
        for i in range(8):
            bocpy.start(2)
            wait()
        print(pooled, shown, big - base, small - base, again - base, threads() - base)
    """)
    assert_clean(proc)
    pooled, shown, big, small, again, settled = map(int, proc.stdout.split())
    assert (pooled, shown, big, small, again, settled) == (2, 2, 8, 8, 8, 2), proc.stdout


# ---- 6. the watchdog never loses a behavior ------------------------------------

def test_watchdog_escalation_then_exit_runs_the_behavior() -> None:
    proc = run("""
        import time
        import bocpy
        from bocpy import PinnedCown, when, pump
        bocpy.set_pump_watchdog(warn_ms=None, raise_ms=10)
        p = PinnedCown(0)
        @when(p)
        def _(p):
            print("RAN", flush=True)
        time.sleep(0.05)
        try:
            pump()
        except RuntimeError as exc:
            print("RAISED", flush=True)
        # never pumped again: the exit runs it
    """)
    assert_clean(proc)
    assert proc.stdout.split() == ["RAISED", "RAN"]


# ---- 7. exit with a behavior still running ----------------------------------------

def test_exit_reports_running_behaviors_once() -> None:
    proc = run("""
        from bocpy import Cown, when, wait
        c = Cown(0)
        @when(c)
        def slow_body(c):
            import time
            time.sleep(3.5)
        try:
            wait(timeout=0.2)
        except TimeoutError:
            print("TIMEOUT", flush=True)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["TIMEOUT"]
    assert proc.stderr.count("still running") == 1, proc.stderr
    assert "slow_body" in proc.stderr and "prog.py" in proc.stderr
    assert "running for" in proc.stderr


# ---- Ctrl-C and SIGTERM (issue 17) ----------------------------------------------

STUCK = """
    import sys
    from bocpy import Cown, when, wait, receive
    c = Cown(0)
    @when(c)
    def stuck(c):
        import time
        time.sleep(%(sleep)s)
    for i in range(100):
        @when(c)
        def later(c):
            c.value += 1
    print("READY", flush=True)
    %(tail)s
"""


def _interrupt(source: str, signals: list[tuple[float, int]], env: dict[str, str],
               timeout: float = 30) -> tuple[subprocess.Popen[bytes], float, str, str]:
    """Start the program, wait for READY, send each (delay, signal); return
    the process, the seconds from the first signal to its end, and output."""
    with tempfile.TemporaryDirectory() as cwd:
        path = _write(cwd, source)
        proc = subprocess.Popen([sys.executable, str(path)], cwd=cwd,
                                env={**ENV, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=0)
        assert proc.stdout is not None
        line = b""
        while not line.endswith(b"\n"):  # unbuffered: leave the rest in the pipe
            byte = os.read(proc.stdout.fileno(), 1)
            assert byte, "the program ended before READY"
            line += byte
        assert line.strip() == b"READY"
        time.sleep(0.3)
        t0 = time.monotonic()
        for delay, sig in signals:
            time.sleep(delay)
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=timeout)
        return proc, time.monotonic() - t0, out.decode(), err.decode()


@pytest.mark.parametrize("tail", ["wait()", "pass", "receive('nothing')"])
def test_sigint_with_a_stuck_behavior_ends_within_grace(tail: str) -> None:
    # In wait() or receive() (KeyboardInterrupt there), or at exit (the exit
    # hook waits).
    source = textwrap.dedent(STUCK % {"sleep": 60, "tail": tail})
    proc, took, out, err = _interrupt(source, [(0, signal.SIGINT)],
                                      {"BOCPY_EXIT_GRACE": "1"})
    assert proc.returncode == -signal.SIGINT, (proc.returncode, err)
    assert took < 1 + 1.5, took
    assert "interrupted by SIGINT: 100 queued behaviors dropped" in err, err
    assert "stuck" in err  # the abandoned behavior is named


def test_sigterm_with_a_stuck_behavior_ends_within_grace() -> None:
    source = textwrap.dedent(STUCK % {"sleep": 60, "tail": "wait()"})
    proc, took, out, err = _interrupt(source, [(0, signal.SIGTERM)],
                                      {"BOCPY_EXIT_GRACE": "1"})
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err)
    assert took < 1 + 1.5, took
    assert "interrupted by SIGTERM: 100 queued behaviors dropped" in err, err


def test_sigint_running_behavior_finishes_in_grace_and_output_is_flushed() -> None:
    source = textwrap.dedent(STUCK % {
        "sleep": 0.5, "tail": "sys.stdout.write('UNFLUSHED'); wait()"})
    proc, took, out, err = _interrupt(source, [(0, signal.SIGINT)],
                                      {"BOCPY_EXIT_GRACE": "5"})
    assert proc.returncode == -signal.SIGINT, (proc.returncode, err)
    assert took < 3, took
    assert "UNFLUSHED" in out
    assert "100 queued behaviors dropped" in err
    assert "Exception ignored" not in err and "Fatal" not in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_the_exit_hook_waits_ends_with_its_status(sig: int) -> None:
    # The program ended normally; the exit hook waits for a 1.5 s body; the
    # signal drops the queued ones, the body finishes within the grace
    # period, and the status is the signal's, not 0.
    source = textwrap.dedent(STUCK % {"sleep": 1.5, "tail": "pass"})
    proc, took, out, err = _interrupt(source, [(0, sig)], {"BOCPY_EXIT_GRACE": "5"})
    expected = -signal.SIGINT if sig == signal.SIGINT else 128 + signal.SIGTERM
    assert proc.returncode == expected, (proc.returncode, err)
    assert "100 queued behaviors dropped" in err, err
    assert "abandoned" not in err
    assert took < 3, took


def test_second_sigint_ends_at_once() -> None:
    source = textwrap.dedent(STUCK % {"sleep": 60, "tail": "wait()"})
    proc, took, out, err = _interrupt(
        source, [(0, signal.SIGINT), (0.5, signal.SIGINT)], {"BOCPY_EXIT_GRACE": "30"})
    assert proc.returncode == -signal.SIGINT, (proc.returncode, err)
    assert took < 0.5 + 1.0, took


def test_set_exit_grace_validation() -> None:
    import bocpy

    with pytest.raises(TypeError):
        bocpy.set_exit_grace("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        bocpy.set_exit_grace(-1)
    with pytest.raises(ValueError):
        bocpy.set_exit_grace(float("nan"))
    bocpy.set_exit_grace(2)


# ---- 8. no stderr noise from threading/logging used in bodies ---------------------

def test_no_noise_at_exit_from_threading_in_bodies() -> None:
    proc = run("""
        import logging
        from bocpy import Cown, when, wait
        cs = [Cown(i) for i in range(8)]
        for c in cs:
            @when(c)
            def _(c):
                import threading, logging
                threading.current_thread().name
                logging.getLogger("x").info("hello")
                c.value += 1
        wait()
        print(sum(c.value for c in cs))
    """)
    assert proc.returncode == 0
    assert proc.stderr == "", proc.stderr
    assert proc.stdout.strip() == "36"


# ---- 9. a write through a stale borrowed value ------------------------------------

def test_write_through_borrowed_value_after_rescheduling_raises() -> None:
    proc = run("""
        from bocpy import Cown, when, wait
        c = Cown([1])
        @when(c)
        def _(c):
            c.value.append(2)
        wait()
        v = c.value               # borrowed on main
        @when(c)                  # scheduled again: v is now a stale copy
        def _(c):
            c.value.append(3)
        v.append(100)             # this change cannot reach the cown
        try:
            wait()
        except RuntimeError as exc:
            print("RAISED", repr(c).split(",")[0] + ")" in str(exc))
        print(c.value)
        d = Cown([1])
        kept = d.value            # held but not changed: no false alarm
        @when(d)
        def _(d):
            d.value.append(2)
        wait()
        print(d.value)
    """)
    assert_clean(proc)
    assert proc.stdout.splitlines() == ["RAISED True", "[1, 2, 3]", "[1, 2]"], proc.stdout
