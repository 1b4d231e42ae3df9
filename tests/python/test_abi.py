"""The BOCPY_ABI table exported by bocpy._core: the capsule, the header, the
entries (called through ctypes) and the import negotiation's errors."""

from __future__ import annotations

import textwrap
import threading

import pytest

import bocpy
from bocpy import Cown, PinnedCown, wait, when
from bocpy import _core

from test_abi_support import REPO, abi, add_to_path, gen_abi, probe_plugin, run_script

try:
    import ctypes
except ImportError:  # this module is also imported by workers: no _ctypes there
    ctypes = None  # type: ignore[assignment]

MANIFEST = gen_abi().load_manifest(REPO)
NO_OWNER = -2
SUPPORT = {"PYTHONPATH": str(REPO / "tests" / "python")}


@pytest.fixture(autouse=True)
def fresh_runtime():
    add_to_path(probe_plugin())  # workers import the probe plugin
    wait()
    yield
    wait()


# ---- capsule and header -------------------------------------------------------

def test_capsule_has_the_documented_name() -> None:
    assert "bocpy._core._BOCPY_ABI" in repr(_core._BOCPY_ABI)
    assert abi().address != 0


def test_header_matches_the_manifest() -> None:
    h = abi().header
    entries = MANIFEST.entries
    assert h.major == MANIFEST.major == 1
    assert h.minor == max(e.minor for e in entries)
    ptr = ctypes.sizeof(ctypes.c_void_p)
    assert h.struct_size == ctypes.sizeof(abi().header) + len(entries) * ptr
    assert h.version.decode().startswith("bocpy ")
    assert f"ABI {h.major}.{h.minor}" in h.version.decode()
    info = _core._abi_info()
    assert (info["major"], info["minor"], info["struct_size"]) == (h.major, h.minor, h.struct_size)
    assert info["entries"] == len(entries)


def test_every_entry_is_set() -> None:
    for e in MANIFEST.entries:
        assert abi().pointer(e.name), e.name


def test_capsule_is_per_interpreter_but_table_is_shared() -> None:
    import abitest_probe

    @when()
    def seen():  # a worker: its own bocpy._core module and capsule
        import abitest_probe
        import bocpy._core as core

        return abitest_probe.table_address(), id(core), abitest_probe.interp_current()

    wait()
    address, module_id, interp = seen.value
    assert address == abitest_probe.table_address() == abi().address
    assert interp > 0


# ---- entries ----------------------------------------------------------------------

def test_capability() -> None:
    for name in (b"shareable_types", b"pinned_types", b"c_behaviors", b"pump_state",
                 b"reduce_shared", b"messaging", b"noticeboard"):
        assert abi().capability(name) >= 1
    assert abi().capability(b"time_travel") == 0
    assert abi().capability(None) == 0


def test_interpreter_ids() -> None:
    assert abi().interp_current() == 0
    assert abi().interp_main() == 0
    assert abi().interp_is_main() == 1


def test_owner_flip() -> None:
    t = abi()
    word = ctypes.c_int64(NO_OWNER)
    p = ctypes.addressof(word)
    assert t.owner_load(p) == NO_OWNER
    with pytest.raises(RuntimeError, match="does not own this widget"):
        t.owner_check(p, b"widget")
    with pytest.raises(RuntimeError, match="does not own this widget"):
        t.owner_give(p, b"widget")
    assert t.owner_take(p, b"widget") == 0
    assert word.value == 0 and t.owner_load(p) == 0
    assert t.owner_take(p, b"widget") == 1  # already ours
    assert t.owner_check(p, b"widget") == 0
    assert t.owner_give(p, b"widget") == 0
    assert word.value == NO_OWNER
    word.value = 12345  # a stale owner
    with pytest.raises(RuntimeError, match="cannot take this widget: interpreter 12345"):
        t.owner_take(p, b"widget")
    with pytest.raises(RuntimeError, match="does not own this resource"):
        t.owner_check(p, None)


def test_owner_flip_between_interpreters() -> None:
    # main owns the word; a worker can neither check nor give it, nor take it
    # until main gives it up; then the worker owns it and main does not.
    word = ctypes.c_int64(NO_OWNER)
    addr = ctypes.addressof(word)
    assert abi().owner_take(addr, b"thing") == 0
    a = Cown(addr)

    @when(a)
    def first(a):
        import abitest_probe as p

        out = []
        for fn in (p.owner_check, p.owner_give, p.owner_take):
            try:
                fn(a.value)
            except RuntimeError as e:
                out.append(str(e))
        return out, p.interp_is_main(), p.interp_current(), p.interp_main()

    wait()
    errors, is_main, interp, main = first.value
    assert errors[0] == errors[1] == "The current interpreter does not own this thing"
    assert errors[2] == "The current interpreter cannot take this thing: interpreter 0 owns it"
    assert (is_main, main) == (0, 0) and interp > 0
    assert abi().owner_give(addr, b"thing") == 0

    @when(a)
    def second(a):
        import abitest_probe as p

        return p.owner_take(a.value), p.interp_current()

    wait()
    taken, worker = second.value
    assert taken == 0 and word.value == worker
    with pytest.raises(RuntimeError, match="does not own this thing"):
        abi().owner_check(addr, b"thing")


def test_cown_entries() -> None:
    t = abi()
    c = t.cown_new([1, 2])
    assert isinstance(c, Cown) and not isinstance(c, PinnedCown)
    assert t.cown_check(c) == 1
    assert t.cown_check(42) == 0
    p = t.pinned_cown_new({"x": 1})
    assert isinstance(p, PinnedCown) and t.cown_check(p) == 2
    assert t.cown_get(p) == {"x": 1}
    assert t.cown_set(p, "new") == 0 and p.value == "new"
    # A parked Cown on the idle main interpreter: cown_get borrows it like
    # .value does (ABI 1.1; 1.0 raised); cown_exception reads its state.
    assert t.cown_get(c) == [1, 2]
    assert t.cown_exception(c) == 0
    with pytest.raises(TypeError, match="expected a Cown"):
        t.cown_exception(42)
    with pytest.raises(TypeError, match="expected a Cown"):
        t.cown_get(42)
    with pytest.raises(TypeError, match="expected a Cown"):
        t.cown_set("nope", 1)
    with pytest.raises(TypeError):
        t.cown_new(threading.Lock())  # cannot travel
    assert c.value == [1, 2]  # main may borrow it when idle


def test_cown_entries_in_a_worker() -> None:
    c = Cown(10)

    @when(c)
    def r(c):
        import abitest_probe as p

        out = [p.cown_get(c)]
        p.cown_set(c, 11)
        made = p.cown_new("fresh")
        try:
            p.pinned_cown_new(1)
        except RuntimeError as e:
            out.append(str(e))
        return out, made

    wait()
    out, made = r.value
    assert out == [10, "PinnedCown must be constructed on the main interpreter"]
    assert c.value == 11 and made.value == "fresh"


def test_pump_state_entries() -> None:
    t = abi()
    assert t.pinned_queue_depth() == 0
    assert t.pinned_queue_age_ms() == 0
    assert t.pump_in_progress() == 0
    p = PinnedCown([])

    @when(p)
    def inside(p):  # runs on this thread, inside pump()
        import abitest_probe as probe

        p.value.append((probe.pump_in_progress(), probe.pinned_queue_depth()))

    assert t.pinned_queue_depth() == 1  # ready at once: p was idle
    assert t.pinned_queue_age_ms() >= 0
    assert bocpy.pump().executed == 1
    assert p.value == [(1, 0)]
    assert t.pump_in_progress() == 0
    wait()


def test_pump_in_progress_off_main() -> None:
    @when()
    def r():
        import abitest_probe as p

        try:
            p.pump_in_progress()
        except RuntimeError as e:
            return str(e)

    wait()
    assert r.value == "pump_in_progress() can only be called from the main interpreter"


def test_reduce_shared_of_unregistered_type() -> None:
    import abitest_probe as p

    with pytest.raises(TypeError, match="'list' is not registered with bocpy"):
        p.reduce_shared([])


def test_schedule_c_validates_its_arguments() -> None:
    t = abi()
    with pytest.raises(ValueError, match="body function"):
        t.schedule_c(None, 0, None, None, None)
    with pytest.raises(ValueError, match="body function"):
        t.schedule_c(None, -1, t.pointer("interp_main"), None, None)


def test_messaging_entries() -> None:
    t = abi()
    assert t.send(b"abi-msg", (1, "two")) == 0
    assert bocpy.receive("abi-msg", 0) == ("abi-msg", (1, "two"))
    bocpy.send("abi-msg", [3])
    assert t.receive(b"abi-msg", 0.0) == ("abi-msg", [3])
    assert t.receive(b"abi-msg", 0.0) == (bocpy.TIMEOUT, None)
    with pytest.raises(TypeError):
        t.send(b"abi-msg", threading.Lock())
    with pytest.raises(TypeError, match="tag must not be NULL"):
        t.send(None, 1)
    with pytest.raises(UnicodeDecodeError):
        t.send(b"\xff", 1)

    @when()
    def worker_side():  # a worker receives what main sent through the ABI
        import abitest_probe as p

        tag, value = p.receive("abi-msg2", 10.0)
        p.send("abi-msg3", value * 2)
        return value

    t.send(b"abi-msg2", 21)
    wait()
    assert worker_side.value == 21
    assert bocpy.receive("abi-msg3", 0) == ("abi-msg3", 42)


def test_noticeboard_entries() -> None:
    t = abi()
    assert t.notice_write(b"abi-key", {"v": 1}) == 0
    assert bocpy.notice_read("abi-key") == {"v": 1}
    assert t.notice_read(b"abi-key", None) == {"v": 1}
    assert t.notice_read(b"abi-missing", "dflt") == "dflt"
    assert t.notice_read(b"abi-missing", None) is None
    with pytest.raises(ValueError):
        t.notice_write(b"k" * 64, 1)  # keys are at most 63 bytes
    with pytest.raises(TypeError):
        t.notice_write(b"abi-key", threading.Lock())

    @when()
    def worker_side():
        import abitest_probe as p

        seen = p.notice_read("abi-key")
        p.notice_write("abi-key2", seen["v"] + 1)
        p.notice_delete("abi-key")
        return seen

    bocpy.quiesce()  # (wait() would clear the board at teardown)
    assert worker_side.value == {"v": 1}
    assert bocpy.notice_read("abi-key2") == 2
    assert bocpy.notice_read("abi-key") is None
    assert t.notice_delete(b"abi-key2") == 0
    assert t.notice_delete(b"abi-key2") == 0  # absent: fine


# ---- registration: bad specs (in a subprocess: the registry is append-only) ---

REGISTRATION = textwrap.dedent(
    """
    import ctypes
    from test_abi_support import abi, ShareableSpec, PinnedSpec
    t = abi()
    fn1, fn2, fn3, fn4 = (t.pointer(n) for n in
                          ("interp_main", "interp_current", "capability", "owner_load"))

    class Thing: pass
    class Other: pass

    def shareable(tp, size=ctypes.sizeof(ShareableSpec), reserved=0, share=fn1,
                  rebuild=fn2, free=fn3, unshare=None):
        spec = ShareableSpec(size, reserved, tp, share, rebuild, free, unshare)
        return t.register_shareable(ctypes.addressof(spec))

    def pinned(tp, size=ctypes.sizeof(PinnedSpec), reserved=0, hooks=(None, None, None)):
        spec = PinnedSpec(size, reserved, tp, *hooks)
        return t.register_pinned(ctypes.addressof(spec))

    def attempt(label, fn, *args, **kw):
        try:
            print(label, "ok", fn(*args, **kw))
        except Exception as e:
            print(label, type(e).__name__, e)

    attempt("null", t.register_shareable, None)
    attempt("small", shareable, Thing, size=8)
    attempt("zero", shareable, Thing, size=0)
    attempt("huge", shareable, Thing, size=1 << 20)
    attempt("reserved", shareable, Thing, reserved=7)
    attempt("notype", shareable, 42)
    attempt("nocallback", shareable, Thing, share=None)
    # a bigger spec from newer headers: fine while the extra bytes are zero
    buf = (ctypes.c_char * 128)()
    spec = ShareableSpec.from_buffer(buf)
    spec.struct_size, spec.type = 128, Thing
    spec.share, spec.rebuild, spec.free_payload = fn1, fn2, fn3
    attempt("bigzero", t.register_shareable, ctypes.addressof(buf))
    buf[100] = b"x"
    attempt("bigjunk", t.register_shareable, ctypes.addressof(buf))
    # Only a plugin's own heap types may be registered (test_pinned_thread.py
    # registers real ones from C): from ctypes every type is someone else's.
    attempt("pyclass", shareable, Thing)
    attempt("builtin", shareable, bytearray)
    attempt("pinned_builtin", pinned, dict, hooks=(fn1, None, None))
    attempt("pinned_reserved", pinned, Other, reserved=1)
    attempt("pinned_small", pinned, Other, size=4)
    import bocpy._core as core
    print("registry", core._registered_types())
    """
)


def test_registration_rejects_bad_input() -> None:
    res = run_script(REGISTRATION, env=SUPPORT)
    assert res.returncode == 0, res.stderr
    out = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert out["null"].startswith("ValueError bocpy_shareable_spec is NULL")
    for key in ("small", "zero", "huge"):
        assert out[key].startswith("ValueError bocpy_shareable_spec.struct_size is"), out[key]
        assert "set it to sizeof(bocpy_shareable_spec)" in out[key]
    assert out["reserved"] == "ValueError bocpy_shareable_spec.reserved must be 0"
    assert out["notype"].startswith("TypeError bocpy_shareable_spec.type must be a type")
    assert out["nocallback"].startswith("ValueError bocpy_shareable_spec needs share")
    # A bigger spec with zero extra bytes passes the size check; the type
    # check refuses it next (a Python class is no plugin's heap type).
    assert out["bigzero"].startswith("TypeError bocpy_shareable_spec.type 'Thing' was not "
                                     "created by an extension module"), out["bigzero"]
    assert out["bigjunk"].startswith("ValueError bocpy_shareable_spec uses fields")
    assert out["pyclass"].startswith("TypeError bocpy_shareable_spec.type 'Thing' was not "
                                     "created by an extension module")
    assert out["builtin"].startswith("TypeError bocpy_shareable_spec.type 'bytearray' is a "
                                     "static type")
    assert out["pinned_builtin"].startswith("TypeError bocpy_pinned_spec.type 'dict' is a "
                                            "static type")
    assert out["pinned_reserved"] == "ValueError bocpy_pinned_spec.reserved must be 0"
    assert out["pinned_small"].startswith("ValueError bocpy_pinned_spec.struct_size")
    assert out["registry"] == "[]"  # nothing was registered


# ---- the import helper's errors, through a real plugin -----------------------

FAKE_CAPSULE = textwrap.dedent(
    """
    import ctypes, sys
    import bocpy._core as core
    from test_abi_support import capsule_pointer, Header
    real = capsule_pointer(core._BOCPY_ABI)
    size = Header.from_address(real).struct_size
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    keep = []

    def fake(name=b"bocpy._core._BOCPY_ABI", **fields):
        buf = ctypes.create_string_buffer(size)
        ctypes.memmove(buf, real, size)
        h = Header.from_buffer(buf)
        for k, v in fields.items():
            setattr(h, k, v)
        keep.extend([buf, h, name])
        return new_capsule(ctypes.addressof(buf), name, None)

    case = sys.argv[1] if len(sys.argv) > 1 else CASE
    if case == "wrong_name":
        core._BOCPY_ABI = fake(name=b"numpy.core._ARRAY_API")
    elif case == "major":
        core._BOCPY_ABI = fake(major=2, version=b"bocpy 9.0 (fake)")
    elif case == "old_major":
        core._BOCPY_ABI = fake(major=0)
    elif case == "truncated":
        core._BOCPY_ABI = fake(struct_size=32)
    elif case == "missing":
        del core._BOCPY_ABI
    elif case == "not_capsule":
        core._BOCPY_ABI = 42
    elif case == "newer_minor":
        core._BOCPY_ABI = fake(minor=7, struct_size=size + 64)
    try:
        import bocpy.plugins.files as files
    except ImportError as e:
        print("ImportError:", e)
    else:
        print("loaded", files.ABI_MINOR)
    """
)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong_name", ['expected a capsule named "bocpy._core._BOCPY_ABI"',
                        '"numpy.core._ARRAY_API"']),
        ("major", ["bocpy ABI mismatch", "built for bocpy ABI 1.0",
                   "provides ABI 2.", "(bocpy 9.0 (fake))", "rebuild the plugin"]),
        ("old_major", ["bocpy ABI mismatch", "provides ABI 0."]),
        ("truncated", ["corrupt bocpy ABI table", "struct_size is 32"]),
        ("missing", ["has no attribute _BOCPY_ABI", "predates the C ABI"]),
        ("not_capsule", ["is not a capsule"]),
        ("newer_minor", ["loaded 7"]),
    ],
)
def test_import_negotiation_errors(case: str, expected: list[str]) -> None:
    code = FAKE_CAPSULE.replace("CASE", repr(case))
    res = run_script(code, env=SUPPORT)
    assert res.returncode == 0, res.stderr
    for part in expected:
        assert part in res.stdout, (part, res.stdout)
    if case != "newer_minor":
        assert res.stdout.startswith("ImportError:")
