"""bocpy.plugins.ctypes_bridge on the main interpreter: Foreign (foreign
memory) and CFunction (foreign C functions called through libffi), their
conversions, destructors, and every bad input with its exception."""

from __future__ import annotations

import ctypes
import gc
import pickle
import threading
from pathlib import Path

import pytest

import bocpy
import bocpy._abi
# Behaviors that run on workers live in test_ctypes_bridge_workers.py: this
# module imports ctypes, which a 3.12 worker cannot import.
from bocpy import Cown, PinnedCown, wait, when
from bocpy.plugins import ctypes_bridge as cb

from ctypes_bridge_support import build_helper, libc, load_helper, zlib_crc32


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    return load_helper(build_helper(tmp_path_factory.mktemp("fbh")))


@pytest.fixture(scope="module")
def c() -> ctypes.CDLL:
    return libc()


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


def fn(lib: ctypes.CDLL, name: str, **kw: bool) -> cb.CFunction:
    return cb.CFunction(getattr(lib, name), **kw)


# ---- the module ---------------------------------------------------------------


def test_module_is_abi3_and_registered() -> None:
    assert cb.__file__.endswith(bocpy._abi.plugin_suffix())  # abi3 on 3.12+
    reg = bocpy._core._registered_types()
    assert ("bocpy.plugins.ctypes_bridge.Foreign", "shareable") in reg
    assert ("bocpy.plugins.ctypes_bridge.CFunction", "shareable") in reg
    assert ("bocpy.plugins.ctypes_bridge.PinnedForeign", "pinned") in reg
    assert cb.MAX_ARGS == 32


# ---- CFunction conversions -------------------------------------------------------


def test_crc32_matches_zlib() -> None:
    import zlib
    crc = cb.CFunction(zlib_crc32())
    data = bytes(range(256)) * 4
    assert crc(0, data, len(data)) == zlib.crc32(data)
    assert crc.name == "crc32"
    assert crc.argtypes == ("c_ulong", "c_void_p", "c_uint")
    assert crc.restype == "c_ulong"
    assert crc.nogil is False
    assert crc.address == ctypes.cast(zlib_crc32(), ctypes.c_void_p).value
    assert repr(crc) == "<CFunction crc32(c_ulong, c_void_p, c_uint) -> c_ulong>"


def test_integer_and_float_conversions(lib: ctypes.CDLL) -> None:
    assert fn(lib, "fbh_add64")(2**40, -5) == 2**40 - 5
    assert fn(lib, "fbh_u8_inc")(255) == 0
    assert fn(lib, "fbh_s8_neg")(-128) == -128
    assert fn(lib, "fbh_s8_neg")(5) == -5
    assert fn(lib, "fbh_u16")(65535) == 65535
    assert fn(lib, "fbh_i32")(-(2**31)) == -(2**31)
    assert fn(lib, "fbh_u32")(2**32 - 1) == 2**32 - 1
    assert fn(lib, "fbh_u64")(2**64 - 1) == 2**64 - 1
    assert fn(lib, "fbh_half")(3) == 1.5
    assert fn(lib, "fbh_half")(1.0) == 0.5
    assert fn(lib, "fbh_not")(True) is False
    assert fn(lib, "fbh_not")(0) is True
    assert fn(lib, "fbh_upper")(b"a") == b"A"
    assert fn(lib, "fbh_upper")(ord("q")) == b"Q"
    assert fn(lib, "fbh_nothing")() is None


def test_pointer_arguments_and_results(lib: ctypes.CDLL) -> None:
    echo = fn(lib, "fbh_echo")
    assert echo(b"hello") == b"hello"
    assert echo(None) is None
    ptr = fn(lib, "fbh_ptr")
    assert ptr(None) is None
    assert ptr(12345) == 12345
    total = fn(lib, "fbh_sum_bytes")
    assert total(b"\x01\x02\x03", 3) == 6
    buf = bytearray(b"\x05" * 10)
    assert total(buf, 10) == 50
    assert total(memoryview(buf)[2:], 8) == 40
    fill = fn(lib, "fbh_fill")
    fill(buf, 4, 9)
    assert buf == bytearray(b"\x09" * 4 + b"\x05" * 6)


def test_foreign_and_matrix_arguments(lib: ctypes.CDLL, c: ctypes.CDLL) -> None:
    f = cb.Foreign(c.malloc(16), 16, destructor=c.free)
    fn(lib, "fbh_fill")(f, 16, 3)
    assert bytes(memoryview(f)) == b"\x03" * 16
    assert fn(lib, "fbh_sum_bytes")(f, 16) == 48
    m = bocpy.Matrix([[1.0, 2.0], [3.0, 4.0]])
    assert fn(lib, "fbh_scale")(m, 4, 2.0) == 20.0
    assert m.tolist() == [[2.0, 4.0], [6.0, 8.0]]


def test_nogil_flag_and_rewrap(lib: ctypes.CDLL) -> None:
    busy = fn(lib, "fbh_busy", nogil=True)
    assert busy.nogil is True
    assert busy(10) == 10
    again = cb.CFunction(busy, nogil=False)
    assert again.nogil is False and again(1) == 1
    assert "nogil" in repr(busy)


# ---- Foreign ---------------------------------------------------------------------------


def test_foreign_from_int_pointer_and_ctypes_object(c: ctypes.CDLL) -> None:
    p = c.malloc(64)
    f = cb.Foreign(p, 64, destructor=c.free)
    assert f.address == p and f.size == 64 and f.acquired and not f.pinned
    assert f.has_destructor
    ptr = ctypes.cast(p, ctypes.POINTER(ctypes.c_int))
    g = cb.Foreign(ptr, 8)
    assert g.address == p and g.size == 8 and not g.has_destructor
    vp = cb.Foreign(ctypes.c_void_p(p), 4)
    assert vp.address == p
    arr = (ctypes.c_char * 32).from_address(p)
    h = cb.Foreign(arr)  # size from the ctypes object
    assert h.address == p and h.size == 32
    assert repr(h) == f"<Foreign address={hex(p)} size=32>"


def test_buffer_protocol_and_as_ctypes(c: ctypes.CDLL) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    with memoryview(f) as mv:
        assert mv.nbytes == 8 and not mv.readonly
        mv[:] = b"abcdefgh"
    arr = f.as_ctypes(ctypes.c_char * 8)
    assert arr.raw == b"abcdefgh"
    arr[0] = b"z"
    assert bytes(memoryview(f))[:1] == b"z"
    ip = f.as_ctypes(ctypes.POINTER(ctypes.c_char))
    assert ip[1] == b"b"
    assert ctypes.cast(f.as_ctypes(ctypes.c_void_p), ctypes.c_void_p).value == f.address
    with pytest.raises(ValueError, match="Buffer size too small"):
        f.as_ctypes(ctypes.c_char * 9)
    with pytest.raises(TypeError, match="as_ctypes\\(\\) needs a ctypes type"):
        f.as_ctypes(int)
    del arr
    gc.collect()


def test_destructor_may_be_a_cfunction(lib: ctypes.CDLL, c: ctypes.CDLL) -> None:
    before = lib.fbh_frees()
    f = cb.Foreign(c.malloc(8), 8, destructor=cb.CFunction(lib.fbh_free))
    del f
    assert lib.fbh_frees() == before + 1


def test_libc_free_without_argtypes_is_a_destructor(c: ctypes.CDLL) -> None:
    raw = ctypes.CDLL(None)  # free with its default (unset) argtypes
    live = cb._live()[0]
    f = cb.Foreign(c.malloc(8), 8, destructor=raw.free)
    assert cb._live()[0] == live + 1
    del f
    assert cb._live()[0] == live


def test_no_leaked_records(lib: ctypes.CDLL, c: ctypes.CDLL) -> None:
    gc.collect()
    before = cb._live()
    for _ in range(50):
        f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
        k = cb.CFunction(lib.fbh_i32)
        x = Cown((f, k))
        del f, k, x
    wait()
    gc.collect()
    assert cb._live() == before


def test_pickle_outside_bocpy_is_refused(c: ctypes.CDLL, lib: ctypes.CDLL) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    with pytest.raises(TypeError, match="can only be pickled by bocpy"):
        pickle.dumps(f)
    with pytest.raises(TypeError, match="can only be pickled by bocpy"):
        pickle.dumps(fn(lib, "fbh_i32"))


# ---- pinned ----------------------------------------------------------------------------


def test_pinned_destructor_runs_on_main_thread_when_its_cown_dies(lib: ctypes.CDLL,
                                                                   c: ctypes.CDLL) -> None:
    import threading
    before = lib.fbh_frees()
    f = cb.Foreign(c.malloc(8), 8, destructor=lib.fbh_free, pinned=True)
    assert type(f).__name__ == "PinnedForeign" and f.pinned
    pc = PinnedCown(f)

    @when(pc)
    def touch(pc):  # a pinned behavior: the main thread
        return pc.value.size

    wait()
    assert touch.value == 8
    del f, touch
    assert lib.fbh_frees() == before
    del pc
    gc.collect()
    assert lib.fbh_frees() == before + 1
    assert lib.fbh_free_thread() == threading.main_thread().ident


def test_pinned_foreign_after_its_cown_died(lib: ctypes.CDLL, c: ctypes.CDLL) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=lib.fbh_free, pinned=True)
    pc = PinnedCown(f)
    del pc
    gc.collect()
    with pytest.raises(ValueError, match="destroyed with its PinnedCown"):
        f.address
    with pytest.raises(ValueError, match="destroyed with its PinnedCown"):
        fn(lib, "fbh_sum_bytes")(f, 8)
    assert repr(f) == "<PinnedForeign destroyed>"


# ---- bad input ---------------------------------------------------------------------------


def test_foreign_used_after_it_moved(c: ctypes.CDLL, lib: ctypes.CDLL) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    Cown(f)
    msg = "The current interpreter does not own this Foreign: it belongs to another interpreter"
    with pytest.raises(RuntimeError, match=msg):
        f.address
    with pytest.raises(RuntimeError, match=msg):
        f.size
    with pytest.raises(RuntimeError, match=msg):
        memoryview(f)
    with pytest.raises(RuntimeError, match=msg):
        f.as_ctypes(ctypes.c_char * 8)
    with pytest.raises(RuntimeError, match=msg):
        fn(lib, "fbh_sum_bytes")(f, 8)
    with pytest.raises(RuntimeError, match=msg):
        Cown(f)  # cannot be moved twice
    assert not f.acquired
    assert repr(f) == "<Foreign moved to another interpreter>"


def test_foreign_cannot_move_while_a_memoryview_is_alive(c: ctypes.CDLL) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    mv = memoryview(f)
    with pytest.raises(BufferError, match="cannot move a Foreign while 1 buffer export"):
        Cown(f)
    assert f.acquired  # still here, still usable
    mv.release()
    Cown(f)
    assert not f.acquired


def test_failed_encoding_gives_the_foreign_back(c: ctypes.CDLL) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    with pytest.raises(TypeError):
        Cown((f, threading.Lock()))  # the lock cannot travel
    assert f.acquired and f.size == 8


@pytest.mark.parametrize("size, exc, msg", [
    (0, ValueError, "Foreign\\(\\) size must be at least 1 byte, not 0"),
    (-4, ValueError, "Foreign\\(\\) size must be at least 1 byte, not -4"),
    ("8", TypeError, "Foreign\\(\\) size must be an int, not str"),
    (None, TypeError, "Foreign\\(\\) needs the size in bytes"),
])
def test_bad_sizes(c: ctypes.CDLL, size: object, exc: type, msg: str) -> None:
    with pytest.raises(exc, match=msg):
        cb.Foreign(4096, size)


def test_null_address_is_refused() -> None:
    msg = "Foreign\\(\\) got a NULL address \\(0\\): there is no memory there"
    with pytest.raises(ValueError, match=msg):
        cb.Foreign(0, 8)
    with pytest.raises(ValueError, match=msg):
        cb.Foreign(ctypes.c_void_p(None), 8)
    with pytest.raises(OverflowError, match="is not a valid address"):
        cb.Foreign(-1, 8)


def test_bad_memory_arguments() -> None:
    with pytest.raises(TypeError, match="Foreign\\(\\) needs an int address, a ctypes "
                                        "pointer or a ctypes object, not str"):
        cb.Foreign("0x1000", 8)
    with pytest.raises(TypeError, match="that owns its memory"):
        cb.Foreign(ctypes.create_string_buffer(16))
    with pytest.raises(TypeError, match="a function is not memory"):
        cb.Foreign(ctypes.CDLL(None).free, 8)


def test_destructor_that_is_not_a_foreign_function(lib: ctypes.CDLL) -> None:
    msg = ("destructor must be a foreign function: a ctypes function such as "
           "ctypes.CDLL\\(None\\).free, or a CFunction, not ")
    with pytest.raises(TypeError, match=msg + "function"):
        cb.Foreign(4096, 8, destructor=lambda p: None)
    with pytest.raises(TypeError, match=msg + "int"):
        cb.Foreign(4096, 8, destructor=12345)
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda p: None)
    with pytest.raises(TypeError, match="the destructor is a ctypes callback"):
        cb.Foreign(4096, 8, destructor=callback)
    with pytest.raises(TypeError, match="a destructor must take exactly one pointer "
                                        "argument .* but fbh_add64.argtypes has 2"):
        cb.Foreign(4096, 8, destructor=lib.fbh_add64)
    with pytest.raises(TypeError, match="but fbh_i32\\(\\) takes 1 argument\\(s\\) that "
                                        "is not a pointer"):
        cb.Foreign(4096, 8, destructor=cb.CFunction(lib.fbh_i32))


def test_cfunction_without_argtypes(tmp_path: Path) -> None:
    raw = ctypes.CDLL(None).abs  # argtypes never set
    with pytest.raises(TypeError, match="CFunction needs the argument types of abs\\(\\): "
                                        "set abs.argtypes = \\[...\\]"):
        cb.CFunction(raw)


def test_cfunction_of_something_else() -> None:
    with pytest.raises(TypeError, match="CFunction\\(\\) needs a ctypes foreign function .*"
                                        "not builtin_function_or_method"):
        cb.CFunction(len)
    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x)
    callback.argtypes = [ctypes.c_int]
    with pytest.raises(TypeError, match="func is a ctypes callback"):
        cb.CFunction(callback)


@pytest.mark.parametrize("argtype, name", [
    (ctypes.c_wchar_p, "c_wchar_p"),
    (ctypes.c_wchar, "c_wchar"),
    (ctypes.c_longdouble, "c_longdouble"),
    (ctypes.py_object, "py_object"),
])
def test_cfunction_with_a_type_it_cannot_pass(lib: ctypes.CDLL, argtype: type, name: str) -> None:
    f = ctypes.CDLL(str(lib._name)).fbh_i32
    f.argtypes = [argtype]
    f.restype = ctypes.c_int
    with pytest.raises(TypeError, match=f"the bridge cannot pass ctypes.{name} "
                                        "\\(argument 1 of fbh_i32\\(\\)\\)"):
        cb.CFunction(f)


def test_cfunction_with_a_structure_or_callable_restype(lib: ctypes.CDLL) -> None:
    class Pair(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int), ("b", ctypes.c_int)]

    f = ctypes.CDLL(str(lib._name)).fbh_pair_sum
    f.argtypes = [Pair]
    f.restype = ctypes.c_int
    with pytest.raises(TypeError, match="the bridge cannot pass Pair \\(argument 1 of "
                                        "fbh_pair_sum\\(\\)\\): structures, unions, arrays"):
        cb.CFunction(f)
    g = ctypes.CDLL(str(lib._name)).fbh_i32
    g.argtypes = [ctypes.c_int]
    g.restype = lambda r: r
    with pytest.raises(TypeError, match="\\(the restype of fbh_i32\\(\\)\\).*a callable "
                                        "restype is not supported"):
        cb.CFunction(g)
    h = ctypes.CDLL(str(lib._name)).fbh_i32
    h.argtypes = [ctypes.c_int]
    h.errcheck = lambda r, f, a: r
    with pytest.raises(TypeError, match="fbh_i32\\(\\) has an errcheck function"):
        cb.CFunction(h)


def test_cfunction_with_too_many_arguments(lib: ctypes.CDLL) -> None:
    f = ctypes.CDLL(str(lib._name)).fbh_i32
    f.argtypes = [ctypes.c_int] * 33
    with pytest.raises(TypeError, match="fbh_i32\\(\\) takes 33 arguments: the bridge "
                                        "passes at most 32"):
        cb.CFunction(f)


def test_wrong_argument_count(lib: ctypes.CDLL) -> None:
    crc = cb.CFunction(zlib_crc32())
    with pytest.raises(TypeError, match="crc32\\(\\) takes 3 arguments \\(c_ulong, c_void_p, "
                                        "c_uint\\) but 2 were given"):
        crc(0, b"x")
    with pytest.raises(TypeError, match="fbh_i32\\(\\) takes 1 argument \\(c_int\\) but 0 "
                                        "were given"):
        fn(lib, "fbh_i32")()
    with pytest.raises(TypeError, match="crc32\\(\\) takes no keyword arguments"):
        crc(0, b"x", len=1)


def test_wrong_argument_types(lib: ctypes.CDLL) -> None:
    with pytest.raises(TypeError, match="argument 1 of fbh_i32\\(\\) \\(c_int\\) must be an "
                                        "int, not float"):
        fn(lib, "fbh_i32")(1.5)
    with pytest.raises(TypeError, match="argument 1 of fbh_half\\(\\) \\(c_float\\) must be "
                                        "a float or an int, not str"):
        fn(lib, "fbh_half")("1")
    with pytest.raises(TypeError, match="argument 1 of fbh_echo\\(\\) \\(c_char_p\\) must be "
                                        "bytes, a Foreign, a bocpy.Matrix, a buffer, an int "
                                        "address or None, not str"):
        fn(lib, "fbh_echo")("text")
    with pytest.raises(TypeError, match="argument 1 of fbh_upper\\(\\) \\(c_char\\) must be a "
                                        "bytes of length 1 or an int, not bytes"):
        fn(lib, "fbh_upper")(b"ab")
    with pytest.raises(TypeError, match="argument 1 of fbh_not\\(\\) \\(c_bool\\) must be a "
                                        "bool or an int, not NoneType"):
        fn(lib, "fbh_not")(None)
    with pytest.raises(TypeError, match="argument 1 of fbh_i32"):
        fn(lib, "fbh_i32")(cb.Foreign(4096, 8))


@pytest.mark.parametrize("name, value, rng", [
    ("fbh_u8_inc", 256, "0..255"),
    ("fbh_u8_inc", -1, "0..255"),
    ("fbh_s8_neg", 128, "-128..127"),
    ("fbh_i32", 2**31, "-2147483648..2147483647"),
    ("fbh_u64", 2**64, "0..18446744073709551615"),
    ("fbh_u64", -(2**70), "0..18446744073709551615"),
    ("fbh_add64", 2**63, "-9223372036854775808..9223372036854775807"),
])
def test_integer_out_of_range(lib: ctypes.CDLL, name: str, value: int, rng: str) -> None:
    f = fn(lib, name)
    args = (value,) if f.argtypes and len(f.argtypes) == 1 else (value, 0)
    with pytest.raises(OverflowError, match=f"argument 1 of {name}\\(\\) \\(.*\\): "
                                            f"{value} is out of range {rng}"):
        f(*args)


def test_matrix_argument_not_owned(lib: ctypes.CDLL) -> None:
    m = bocpy.Matrix([[1.0, 2.0]])
    Cown(m)  # moved away
    with pytest.raises(RuntimeError, match="does not own this matrix"):
        fn(lib, "fbh_scale")(m, 2, 1.0)


def test_pinned_foreign_in_a_plain_cown(c: ctypes.CDLL) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free, pinned=True)
    msg = ("a value of type 'bocpy.plugins.ctypes_bridge.PinnedForeign' can only live in "
           "a PinnedCown")
    with pytest.raises(TypeError, match=msg):
        Cown(f)
    with pytest.raises(TypeError, match=msg):
        bocpy.send("fb-pinned", f)
    assert f.size == 8  # untouched


# ---- one abi3 binary ---------------------------------------------------------------------


def test_abi3audit_clean_and_the_312_binary_runs_the_example(tmp_path: Path) -> None:
    """Builds the plugin once, against CPython 3.12, checks it with abi3audit
    and for private symbols, then runs examples/ctypes_bridge.py with that
    binary under the interpreter running the tests (3.12 or 3.13)."""
    import os
    import shutil
    import subprocess
    import sys

    from test_abi_packaging import assert_stable_abi_only
    from test_abi_support import REPO, find_python, find_tool

    py312, cmake, ninja = find_python("3.12"), find_tool("cmake"), find_tool("ninja")
    assert py312 and cmake and ninja, "needs CPython 3.12, cmake and ninja"
    build = tmp_path / "build"
    for cmd in ([cmake, "-S", str(REPO), "-B", str(build), "-G", "Ninja",
                 f"-DCMAKE_MAKE_PROGRAM={ninja}", f"-DPython_EXECUTABLE={py312}",
                 "-DCMAKE_BUILD_TYPE=Release"],
                [cmake, "--build", str(build), "--target", "ctypes_bridge"]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    plugin = build / "plugins" / "ctypes_bridge" / "ctypes_bridge.abi3.so"
    assert plugin.is_file()
    assert_stable_abi_only(plugin)
    audit = subprocess.run([sys.executable, "-m", "abi3audit", "--strict", "--summary",
                            "--assume-minimum-abi3", "3.12", str(plugin)],
                           capture_output=True, text=True)
    report = " ".join((audit.stdout + audit.stderr).split())
    assert audit.returncode == 0, report
    assert "0 ABI version mismatches and 0 ABI violations found" in report, report

    # The installed package, with the plugin replaced by the 3.12 build (below
    # 3.12, the package and interpreter of 3.12: an abi3 binary needs 3.12+).
    runner, pkg = sys.executable, Path(bocpy.__file__).parent
    if not bocpy._abi.ABI3:
        runner = py312
        found = subprocess.run([py312, "-c", "import bocpy, os; print(os.path.dirname(bocpy.__file__))"],
                               cwd=tmp_path, capture_output=True, text=True,
                               env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        assert found.returncode == 0, "bocpy is not installed for CPython 3.12 (scripts/test.sh does)"
        pkg = Path(found.stdout.strip())
    site = tmp_path / "site"
    shutil.copytree(pkg, site / "bocpy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(plugin, site / "bocpy" / "plugins" / plugin.name)
    env = {**os.environ, "PYTHONPATH": str(site), "BOCPY_WORKERS": "2"}
    where = subprocess.run(
        [runner, "-c",
         "import bocpy.plugins.ctypes_bridge as m, sys; print(m.__file__, sys.version_info[:2])"],
        env=env, cwd=tmp_path, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split()[0] == str(site / "bocpy" / "plugins" / plugin.name)
    run = subprocess.run([runner, str(REPO / "examples" / "ctypes_bridge.py"), "4", "0.25"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "4 of 4 checksums match zlib.crc32"


def test_benchmark_smoke(tmp_path: Path) -> None:
    """benchmarks/bench_ctypes_bridge.py runs at tiny sizes (its figures are
    reported, not checked)."""
    import json
    import subprocess
    import sys

    from test_abi_support import REPO

    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_ctypes_bridge.py"),
                          "--quick", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["call"] for r in figures["overhead"]][:2] == ["labs(-5)", "crc32(0, bytes[64], 64)"]
    assert all(r["ctypes_ns"] > 0 and r["cfunction_ns"] > 0 for r in figures["overhead"])
    par = figures["parallel"]
    assert par["calls"] == 80 and par["buffer_bytes"] >= 4096
    assert par["workers_1_calls_per_s"] > 0 and par["workers_2_calls_per_s"] > 0


def test_types() -> None:
    assert issubclass(cb.PinnedForeign, cb.Foreign)
    p = cb.PinnedForeign(4096, 8)
    assert p.pinned and isinstance(p, cb.Foreign)

    class Mine(cb.Foreign):
        pass

    with pytest.raises(TypeError, match="Foreign cannot be subclassed: bocpy moves exact "
                                        "types only"):
        Mine(4096, 8)
    with pytest.raises(TypeError):
        class NotAllowed(cb.CFunction):  # type: ignore[misc]
            pass


def test_stub_names_match_the_module() -> None:
    import ast

    stub = Path(cb.__file__).with_name("ctypes_bridge.pyi")
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    declared: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            declared[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.FunctionDef):
            declared[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared[node.target.id] = set()
    public = {n for n in dir(cb) if not n.startswith("__")}
    assert public == set(declared), public ^ set(declared)
    for cls in ("Foreign", "CFunction"):
        members = {n for n in dir(getattr(cb, cls)) if not n.startswith("_")}
        assert members <= declared[cls], members - declared[cls]
