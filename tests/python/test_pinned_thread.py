"""Pinned values keep their thread and their lifetime; ABI 1.1 from C.

The test plugin abitest_pin (tests/python/abitest_pin.c, built here like a
third-party abi3 plugin) has a pinned type Ctx whose every hook checks that
it runs on the pinned thread (the main thread of the main interpreter) and
aborts the process otherwise, and prints one line per destroy.  Exit
behavior is checked in subprocesses, by counting those lines."""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from pathlib import Path

import pytest

import bocpy
import bocpy._abi
from bocpy import Cown, PinnedCown, pump, quiesce, wait, when
from bocpy import _core

from test_abi_support import (PROBE_C, REPO, add_to_path, cc_plugin, probe_plugin,
                              run_script, session_tmp)

HERE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def pin_plugin() -> Path:
    """abitest_pin compiled once per session against bocpy.get_include()."""
    root = session_tmp("bocpy-abi-pin-")
    cc_plugin(HERE / "abitest_pin.c", root, "abitest_pin", [bocpy.get_include()])
    return root


@functools.lru_cache(maxsize=None)
def pinonly_plugin() -> Path:
    """The same source as abitest_pinonly, without the multiple-interpreters
    slot (a pinned-only plugin)."""
    root = session_tmp("bocpy-abi-pinonly-")
    cc_plugin(HERE / "abitest_pin.c", root, "abitest_pinonly", [bocpy.get_include()],
              defines=("PIN_PINNED_ONLY",))
    return root


@functools.lru_cache(maxsize=None)
def probe10_plugin() -> Path:
    """The probe plugin (1.0 entries only) compiled against the ABI 1.0
    headers kept in tests/abi10, as module abitest_probe10."""
    root = session_tmp("bocpy-abi-probe10-")
    src = root / "probe10.c"
    src.write_text(PROBE_C.replace("abitest_probe", "abitest_probe10"), encoding="utf-8")
    # The 1.0 headers predate CPython 3.10/3.11 support: there the 3.12 names
    # they and the probe use come from today's bocpy/compat.h.
    extra = () if bocpy._abi.ABI3 else (
        "-include", str(REPO / "abi" / "include" / "bocpy" / "compat.h"))
    cc_plugin(src, root, "abitest_probe10", [str(REPO / "tests" / "abi10" / "include")],
              extra=extra)
    return root


def env_with_plugin() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(pin_plugin()), str(HERE)])}


@pytest.fixture(autouse=True)
def fresh_runtime():
    add_to_path(pin_plugin())  # workers import the plugin too
    wait()
    yield
    wait()


def in_thread(fn):
    """Runs fn() on a new Python thread; returns what it returned or raised."""
    out: list = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            out.append(("raised", e))

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    return out[0]


# ---- the thread rules ---------------------------------------------------------------

def test_on_pinned_thread_is_main_thread_of_main_interpreter() -> None:
    import abitest_pin as P

    assert _core.on_pinned_thread() and P.on_pinned_thread()
    assert in_thread(_core.on_pinned_thread) == ("ok", False)
    assert in_thread(P.on_pinned_thread) == ("ok", False)

    @when()
    def w():
        import abitest_pin as P2
        return _core.on_pinned_thread(), P2.on_pinned_thread()

    wait()
    assert w.value == (False, False)


def test_pump_from_another_thread_raises_naming_the_rule() -> None:
    import abitest_pin as P

    ctx = PinnedCown(P.Ctx("p1"))

    @when(ctx)
    def b(ctx):
        return ctx.value.use()

    kind, exc = in_thread(pump)
    assert kind == "raised" and isinstance(exc, RuntimeError)
    assert "pinned thread (the main thread of the main interpreter)" in str(exc)
    assert _core.pinned_state()[0] >= 0
    wait()
    assert b.value == 1
    assert ctx.value.counts()["use"] == 1


def test_pump_and_wait_from_a_worker_raise() -> None:
    @when()
    def w():
        out = []
        for fn in (bocpy.pump, bocpy.wait, bocpy.quiesce):
            try:
                fn()
                out.append("no error")
            except RuntimeError as e:
                out.append(str(e))
        return out

    wait()
    assert "pinned thread" in w.value[0]
    assert all("main interpreter" in m for m in w.value[1:]), w.value


def test_pinned_cown_made_on_another_thread_runs_hooks_on_main(capfd) -> None:
    import abitest_pin as P

    kind, p = in_thread(lambda: PinnedCown(P.Ctx("made-elsewhere")))
    assert kind == "ok"

    @when(p)
    def b(p):
        return p.value.use()

    wait()
    assert b.value == 1
    del p
    assert capfd.readouterr().err.count("destroy made-elsewhere pinned=1") == 1


def test_with_value_acquire_off_the_pinned_thread_raise() -> None:
    import abitest_pin as P

    ctx = PinnedCown(P.Ctx("p2"))
    for fn in (lambda: ctx.value, lambda: ctx.acquire(), lambda: ctx.release(),
               lambda: ctx.__enter__(), lambda: setattr(ctx, "value", 1)):
        kind, exc = in_thread(fn)
        assert kind == "raised" and isinstance(exc, RuntimeError), (kind, exc)
        assert "pinned thread" in str(exc)
    assert "pinned thread only" in in_thread(lambda: repr(ctx))[1]
    with ctx as v:  # on the pinned thread: hooks run here
        v.use()
    assert ctx.value.counts() == {"acquire": 1, "release": 1, "destroy": 0, "use": 1}


def test_with_pinned_from_a_worker_raises() -> None:
    import abitest_pin as P

    ctx = PinnedCown(P.Ctx("p3"))

    @when()
    def w():
        out = []
        for fn in (lambda: ctx.value, lambda: ctx.acquire(), lambda: ctx.__enter__()):
            try:
                fn()
                out.append("no error")
            except RuntimeError as e:
                out.append(type(e).__name__)
        return out

    wait()
    assert w.value == ["RuntimeError"] * 3
    assert ctx.value.counts()["acquire"] == 0


def test_wait_from_another_thread_never_runs_pinned_work() -> None:
    import abitest_pin as P

    ctx = PinnedCown(P.Ctx("p4"))

    @when(ctx)
    def b(ctx):
        ctx.value.use()  # aborts the process off the pinned thread
        return threading.get_ident()

    # Nobody pumps: another thread's quiesce() times out instead of running it.
    kind, exc = in_thread(lambda: quiesce(0.3))
    assert kind == "raised" and isinstance(exc, TimeoutError), (kind, exc)
    assert _core.pinned_state()[0] == 1  # still queued
    # Another thread's wait() returns once the main thread pumped it.
    result: list = []
    t = threading.Thread(target=lambda: result.append(quiesce(30)))
    t.start()
    deadline = time.monotonic() + 30
    while t.is_alive() and time.monotonic() < deadline:
        pump()
        time.sleep(0.005)
    t.join()
    assert result == [None]
    assert b.value == threading.get_ident()
    assert ctx.value.counts()["use"] == 1


def test_main_wait_runs_the_pinned_work_another_threads_wait_needs() -> None:
    """Another thread's wait() holds the lifecycle and waits for a pinned
    behavior; the main thread's wait() runs it while it waits for its turn
    (no deadlock, no timeout)."""
    ctx = PinnedCown(0)

    @when(ctx)
    def bump(ctx):
        ctx.value += 1
        return threading.get_ident()

    result: list = []
    t = threading.Thread(target=lambda: result.append(wait(30)))
    t.start()
    time.sleep(0.2)  # the other thread is inside wait() by now
    wait(30)
    t.join(30)
    assert not t.is_alive()
    assert result == [None]
    assert bump.value == threading.get_ident()  # ran on this (main) thread
    assert ctx.value == 1


_in_body = 0  # pinned bodies see this module's live globals
_max_in_body = 0


def test_two_threads_pumping_never_overlap() -> None:
    import abitest_pin as P

    ctx = [PinnedCown(P.Ctx(f"q{i}")) for i in range(5)]
    for c in ctx:
        for _ in range(4):
            @when(c)
            def body(c):
                global _in_body, _max_in_body
                _in_body += 1
                _max_in_body = max(_max_in_body, _in_body)
                time.sleep(0.002)
                c.value.use()
                _in_body -= 1

    errors: list[BaseException] = []

    def other() -> None:
        for _ in range(20):
            try:
                pump()
            except RuntimeError as e:
                errors.append(e)
            time.sleep(0.001)

    t = threading.Thread(target=other)
    t.start()
    while t.is_alive():
        pump()
    t.join()
    wait()
    assert _max_in_body == 1
    assert len(errors) == 20
    assert sum(c.value.counts()["use"] for c in ctx) == 20


def test_last_handle_dropped_on_another_thread_destroys_on_pinned_thread(capfd) -> None:
    import abitest_pin as P

    holder = [PinnedCown(P.Ctx("drop-thread"))]
    assert in_thread(lambda: holder.clear()) == ("ok", None)  # last handle dies there
    assert "destroy drop-thread" not in capfd.readouterr().err
    pump()  # the next pump destroys it, here
    assert capfd.readouterr().err.count("destroy drop-thread pinned=1") == 1


def test_last_handle_dropped_on_a_worker_destroys_on_pinned_thread(capfd) -> None:
    import abitest_pin as P

    box = Cown([PinnedCown(P.Ctx("drop-worker"))])  # the only handle travels

    @when(box)
    def w(box):
        box.value = None  # the record's last reference dies on a worker

    wait()
    assert capfd.readouterr().err.count("destroy drop-worker pinned=1") == 1


def test_one_pinned_value_in_two_pinned_cowns_raises(capfd) -> None:
    import abitest_pin as P

    v = P.Ctx("twice")
    a = PinnedCown(v)
    with pytest.raises(TypeError, match=r"already the value of PinnedCown #\d+"):
        PinnedCown(v)
    b = PinnedCown(None)
    with pytest.raises(TypeError, match="already the value of PinnedCown"):
        b.value = v
    # plain values are not restricted
    shared = [1]
    PinnedCown(shared), PinnedCown(shared)
    del a
    assert capfd.readouterr().err.count("destroy twice pinned=1") == 1
    # once its PinnedCown died, the value is free again (destroyed, though)
    assert _core._pinned_live() == 0 or all(True for _ in ())
    assert "VIOLATION" not in capfd.readouterr().err


def test_replacing_a_pinned_value_destroys_the_old_one(capfd) -> None:
    import abitest_pin as P

    p = PinnedCown(P.Ctx("old"))
    p.value = P.Ctx("new")
    assert capfd.readouterr().err.count("destroy old pinned=1") == 1
    assert p.value.counts()["destroy"] == 0
    assert _core._pinned_live() >= 1
    taken = p.unwrap()  # unwrap moves the value out: no destroy
    assert taken.counts()["destroy"] == 0 and p.value is None
    assert "destroy new" not in capfd.readouterr().err


# ---- exit: every live pinned value destroyed once, on the main thread ------------

EXIT = """
import sys, threading
import bocpy
from bocpy import PinnedCown, when, wait
import abitest_pin as P
mode = sys.argv[1] if len(sys.argv) > 1 else MODE
a = PinnedCown(P.Ctx("a"))
if mode != "never":
    b = PinnedCown(P.Ctx("b"))
    box = [PinnedCown(P.Ctx("c"))]
    @when(a, b)
    def use(a, b):
        a.value.use(); b.value.use()
    @when()
    def on_worker():
        return 1
    threading.Thread(target=lambda: box.pop()).start()  # dies off the pinned thread
    if mode == "wait":
        wait()
        a.value.use()
print("end of script", flush=True)
"""


@pytest.mark.parametrize("mode", ["wait", "nowait", "never"])
def test_exit_destroys_each_live_pinned_value_once_on_main(mode: str) -> None:
    res = run_script(EXIT.replace("MODE", repr(mode)), env=env_with_plugin())
    assert res.returncode == 0, res.stderr
    assert "VIOLATION" not in res.stderr
    names = ["a"] if mode == "never" else ["a", "b", "c"]
    for n in names:
        assert res.stderr.count(f"destroy {n} pinned=1") == 1, res.stderr
    assert "pinned=0" not in res.stderr
    if mode == "never":
        assert not bocpy_started(res)


def bocpy_started(res) -> bool:
    return "destroy b" in res.stderr


PINONLY = """
import bocpy
from bocpy import Cown, PinnedCown, when, wait
import abitest_pinonly as P
p = PinnedCown(P.Ctx("solo"))
c = Cown(1)
@when(p, c)
def both(p, c):
    return p.value.use() + c.value
@when(c)
def on_worker(c):
    try:
        import abitest_pinonly
    except ImportError as e:
        return "ImportError"
    return "imported"
wait()
print(both.value, on_worker.value)
"""


def test_a_pinned_only_plugin_needs_no_multiple_interpreters_slot() -> None:
    res = run_script(PINONLY, env={"PYTHONPATH": str(pinonly_plugin())})
    assert res.returncode == 0, res.stderr
    # 3.12+: own-GIL workers cannot import it; 3.10/3.11 workers share the GIL
    # and import any module (there is no such slot to check)
    assert res.stdout.split() == ["2", "ImportError" if bocpy._abi.ABI3 else "imported"]
    assert res.stderr.count("destroy solo pinned=1") == 1, res.stderr


FILES = """
import sys
from bocpy import when, wait
from bocpy.plugins import files
log = files.open(sys.argv[1] if len(sys.argv) > 1 else PATH, "w")
@when(log)
def first(log):
    log.value.write("from a behavior\\n")
wait()
log.value.write("from main after wait\\n")
"""


def test_files_scenario_keeps_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    res = run_script(FILES.replace("PATH", repr(str(path))))
    assert res.returncode == 0, res.stderr
    assert path.read_text() == "from a behavior\nfrom main after wait\n"


# ---- registry safety -----------------------------------------------------------------

def test_registry_refuses_types_the_plugin_does_not_own() -> None:
    import abitest_pin as P
    from bocpy.plugins import files

    for tp, pattern in ((bytearray, "is a static type"),
                        (dict, "is a static type"),
                        (type("PyClass", (), {}), "not created by an extension module"),
                        (files.File, "belongs to module 'bocpy.plugins.files'"),
                        (Cown, "belongs to module 'bocpy._core'")):
        for kind in ("shareable", "pinned"):
            with pytest.raises(TypeError, match=pattern):
                P.register(kind, tp)
    names = dict(_core._registered_types())
    assert "builtins.bytearray" not in names and "bocpy.Cown" not in names
    # its own type: fine, again with the same hooks too; other hooks: refused
    P.register("pinned")
    P.register("pinned")
    with pytest.raises(ValueError, match="already registered with bocpy with different"):
        P.register("pinned2")
    with pytest.raises(ValueError, match="already registered"):
        P.register("shareable")
    assert names.get("abitest_pin.Ctx") == "pinned"
    assert dict(_core._registered_types())["abitest_pin.Spare"] == "pinned"


def test_reimport_in_a_new_interpreter_reregisters() -> None:
    from subinterp import run_isolated

    path = str(pin_plugin())
    out = run_isolated(
        f"import sys\nsys.path.insert(0, {path!r})\n"
        "import abitest_pin as P\n"
        "import bocpy._core as c\n"
        "emit(str(dict(c._registered_types())['abitest_pin.Blob']))\n"
        "P.register('pinned')\n"
        "emit(' ok')\n"
    )
    assert out == "shareable ok"
    # and in this interpreter, a fresh module object registers its new types
    import importlib

    import abitest_pin as P

    sys.modules.pop("abitest_pin")
    try:
        P2 = importlib.import_module("abitest_pin")
        assert P2 is not P and P2.Blob is not P.Blob
        c = Cown(P2.Blob(b"xyz"))

        @when(c)
        def w(c):
            return c.value.data

        wait()
        assert w.value == b"xyz"
    finally:
        sys.modules["abitest_pin"] = P


# ---- ABI 1.1 from C ------------------------------------------------------------------

def test_schedule_call_returns_a_value_with_args_and_module() -> None:
    import abitest_pin as P

    c = Cown(41)
    blob = P.Blob(b"payload")
    r = P.schedule_call((c,), (blob, 1, "two", c))
    wait()
    interp, pinned, module_ok, blob_ok, args, values = r.value
    assert interp != 0 and not pinned and module_ok and blob_ok
    assert args[0].data == b"payload" and args[1:3] == (1, "two")
    assert isinstance(args[3], Cown) and args[3] == c
    assert values == [41]
    assert P.cown_exception(r) is False


def test_schedule_call_over_a_pinned_cown_runs_on_the_pinned_thread() -> None:
    import abitest_pin as P

    p = PinnedCown("pinned value")
    r = P.schedule_call((p,), None)
    wait()
    interp, pinned, module_ok, blob_ok, args, values = r.value
    assert (interp, pinned, module_ok, blob_ok, args, values) == (
        0, 1, 1, None, (), ["pinned value"])


def test_schedule_call_exception_reaches_the_result_cown() -> None:
    import abitest_pin as P

    r = P.schedule_call((Cown(1),), ("raise",))
    wait()
    assert P.cown_exception(r) is True
    assert r.exception is True
    assert isinstance(r.value, ValueError) and "raised by a C behavior" in str(r.value)
    with pytest.raises(TypeError, match="cannot"):
        P.schedule_call((Cown(1),), (threading.Lock(),))  # an argument that cannot travel
    with pytest.raises(TypeError, match="expected a Cown|not a cown|cowns"):
        P.cown_exception(42)


def test_call_on_pinned_thread_runs_in_the_pump() -> None:
    import abitest_pin as P

    r = P.call_on_pinned_thread(("hello",))
    assert _core.pinned_state()[0] == 1  # queued for the pump
    result = pump()
    assert result.executed == 1
    quiesce()
    interp, pinned, module_ok, _, args, values = r.value
    assert (interp, pinned, module_ok, args, values) == (0, 1, 1, ("hello",), [])

    @when()
    def from_worker():
        import abitest_pin as W
        return W.call_on_pinned_thread(("from a worker",))

    wait()
    inner = from_worker.value
    assert inner.value[1] == 1 and inner.value[4] == ("from a worker",)


def test_wait_and_quiesce_from_c() -> None:
    import abitest_pin as P

    p = PinnedCown(P.Ctx("cwait"))

    @when(p)
    def b(p):
        return p.value.use()

    P.quiesce(30.0)  # runs the pinned behavior meanwhile (pinned thread)
    assert bocpy._core.running() and b.value == 1
    P.wait(-1.0)
    assert not bocpy._core.running()

    @when()
    def w():
        import abitest_pin as W
        try:
            W.wait(1.0)
        except RuntimeError as e:
            return str(e)

    wait()
    assert "main interpreter" in w.value


def test_type_check_in_every_interpreter() -> None:
    import abitest_pin as P

    assert P.type_check(P.Blob(b"")) == (1, 1)
    assert P.type_check(P.Ctx()) == (1, 1)
    assert P.type_check(b"") == (0, 0)
    assert P.type_check(Cown(1)) == (0, 0)
    c = Cown(P.Blob(b"q"))

    @when(c)
    def w(c):
        import abitest_pin as W
        return W.type_check(c.value), W.type_check(1)

    wait()
    assert w.value == ((1, 1), (0, 0))


def test_a_native_thread_schedules_after_gilstate_ensure() -> None:
    import abitest_pin as P

    c = Cown("v")
    r = P.from_native_thread(c)
    wait()
    assert r.value[4] == ("from a native thread",) and r.value[5] == ["v"]


def test_cown_get_borrows_after_wait_like_value() -> None:
    import abitest_pin as P

    r = P.schedule_call((Cown(5),), None)
    wait()
    assert P.cown_exception(r) is False  # borrowed: the runtime is idle
    assert r.value[5] == [5]


# ---- a plugin built against the ABI 1.0 headers loads on this core -------------------

def test_plugin_built_against_abi_1_0_headers_loads() -> None:
    code = (
        "import bocpy, abitest_probe10 as p\n"
        "from bocpy import Cown, PinnedCown\n"
        "print(bocpy._core._abi_info()['minor'] >= 1)\n"
        "print(p.interp_current(), p.interp_main(), p.interp_is_main())\n"
        "pc = p.pinned_cown_new([1])\n"
        "print(isinstance(pc, PinnedCown), p.cown_get(pc))\n"
        "c = p.cown_new('x')\n"
        "print(p.cown_get(c))\n"
        "print(p.send('t10', 5), p.receive('t10', 1.0)[1])\n"
    )
    res = run_script(code, env={"PYTHONPATH": str(probe10_plugin())})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["True", "0 0 1", "True [1]", "x", "0 5"]
    header = (REPO / "tests" / "abi10" / "include" / "bocpy" / "abi_header.h").read_text()
    assert "#define BOCPY_ABI_MINOR 0\n" in header
