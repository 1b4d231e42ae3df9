"""bocpy.plugins.ctypes_bridge across interpreters: Foreign memory moving
to workers without copying, destructors (last drop, exit, pinned on the main
thread), CFunction calls from workers (also on 3.12, where a worker cannot
import ctypes), and calls running in parallel.

This module must not import ctypes at top level: workers import it to run
its behaviors, and on CPython 3.12 `import ctypes` fails in a worker."""

from __future__ import annotations

import gc
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import bocpy
from bocpy import Cown, PinnedCown, notice_read, notice_write, receive, send, wait, when
from bocpy.plugins import ctypes_bridge as cb

from ctypes_bridge_support import build_helper, libc, load_helper, zlib_crc32
from test_abi_support import run_script


@pytest.fixture(scope="module")
def helper_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_helper(tmp_path_factory.mktemp("fbh"))


@pytest.fixture(scope="module")
def lib(helper_path: Path) -> Any:
    return load_helper(helper_path)


@pytest.fixture(scope="module")
def c() -> Any:
    return libc()


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


def release_borrowed_cowns() -> None:
    """Main borrows a cown whose value it reads after wait() and gives it
    back when it next schedules: schedule once, so that dropped cowns die."""
    @when()
    def nothing():
        return None

    wait()
    gc.collect()


def test_worker_sees_the_same_memory_without_a_copy(c: Any) -> None:
    f = cb.Foreign(c.malloc(64), 64, destructor=c.free)
    addr = f.address
    memoryview(f)[:5] = b"hello"
    box = Cown(f)

    @when(box)
    def edit(box):  # on a worker
        mem = box.value
        with memoryview(mem) as mv:
            seen = bytes(mv[:5])
            mv[:5] = b"HELLO"
        return (mem.address, mem.size, seen, bocpy._core.worker_index())

    @when(box, edit)
    def back(box, edit):  # send the record back to main in the result
        mem = box.value
        box.value = None  # one owner: the cown gives it up
        return mem

    wait()
    address, size, seen, worker = edit.value
    assert (address, size, seen) == (addr, 64, b"hello")
    assert worker >= 0  # it ran on a worker
    home = back.value
    assert home.address == addr
    assert bytes(memoryview(home)[:5]) == b"HELLO"


def test_message_and_noticeboard_move_the_same_record(c: Any) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    addr = f.address
    send("fb-msg", f)
    assert not f.acquired

    @when()
    def got():
        _, mem = receive("fb-msg", 10)
        return mem.address

    g = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    gaddr = g.address
    notice_write("fb-key", g)

    @when()
    def read():
        return notice_read("fb-key").address

    wait()
    assert got.value == addr
    assert read.value == gaddr


def test_destructor_runs_exactly_once_on_the_last_drop(lib: Any, c: Any) -> None:
    before = lib.fbh_frees()
    f = cb.Foreign(c.malloc(32), 32, destructor=lib.fbh_free)
    box = Cown(f)
    del f

    @when(box)
    def use(box):
        return box.value.size

    wait()
    assert use.value == 32
    assert lib.fbh_frees() == before  # the cown still holds it
    del box, use
    gc.collect()
    assert lib.fbh_frees() == before + 1
    gc.collect()
    assert lib.fbh_frees() == before + 1


def test_worker_drops_the_last_reference(lib: Any, c: Any) -> None:
    before = lib.fbh_frees()
    f = cb.Foreign(c.malloc(32), 32, destructor=lib.fbh_free)
    box = Cown(f)
    del f

    @when(box)
    def drop(box):
        box.value = None  # the worker's wrapper is the last holder

    wait()
    gc.collect()
    assert lib.fbh_frees() == before + 1


def test_cfunction_calls_from_workers(c: Any) -> None:
    import zlib
    crc = cb.CFunction(zlib_crc32())
    bufs = []
    for i in range(4):
        f = cb.Foreign(c.malloc(4096), 4096, destructor=c.free)
        with memoryview(f) as mv:
            mv[:] = bytes((i * 7 + k) % 256 for k in range(4096))
        bufs.append((bytes(memoryview(f)), Cown(f)))
    results = []
    for _, box in bufs:
        @when(box)
        def checksum(box):
            import importlib.util
            # On 3.12 a worker cannot import ctypes; the CFunction works anyway.
            # (3.10/3.11 workers share the GIL and import ctypes, as 3.13's do.)
            try:
                import ctypes  # noqa: F401
                has_ctypes = True
            except ImportError:
                has_ctypes = False
            mem = box.value
            return (crc(0, mem, mem.size), has_ctypes, crc(0, b"abc", 3))
        results.append(checksum)
    wait()
    for (data, _), r in zip(bufs, results):
        value, has_ctypes, abc = r.value
        assert value == zlib.crc32(data)
        assert abc == zlib.crc32(b"abc")
        assert has_ctypes == (not (3, 12) <= sys.version_info < (3, 13))


def test_worker_allocates_and_frees_through_cfunctions(lib: Any, c: Any) -> None:
    malloc = cb.CFunction(c.malloc)
    free = cb.CFunction(lib.fbh_free)
    fill = cb.CFunction(lib.fbh_fill)
    total = cb.CFunction(lib.fbh_sum_bytes)
    before = lib.fbh_frees()

    @when()
    def alloc():
        mem = cb.Foreign(malloc(100), 100, destructor=free)  # from an int, in a worker
        fill(mem, 100, 2)
        return (total(mem, 100), mem)

    wait()
    s, mem = alloc.value
    assert s == 200 and mem.size == 100
    assert lib.fbh_sum_bytes(mem.address, 100) == 200
    del mem, alloc
    release_borrowed_cowns()
    assert lib.fbh_frees() == before + 1


def test_matrix_argument_in_a_worker(lib: Any) -> None:
    scale = cb.CFunction(lib.fbh_scale)
    m = bocpy.Matrix([[1.0, 2.0, 3.0]])
    box = Cown(m)

    @when(box)
    def run(box):
        return scale(box.value, 3, 10.0)

    @when(box, run)
    def after(box, run):
        return box.value.tolist()

    wait()
    assert run.value == 60.0
    assert after.value == [[10.0, 20.0, 30.0]]


def test_foreign_used_where_it_is_not_held(c: Any) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    box = Cown(f)
    pinned = PinnedCown(cb.Foreign(c.malloc(8), 8, destructor=c.free, pinned=True))

    @when(box)
    def give_away(box):
        mem = box.value
        box.value = None
        send("fb-away", mem)  # moves it out of this worker's wrapper
        try:
            mem.address
        except RuntimeError as e:
            return str(e)
        return "no error"

    @when()
    def touch_pinned():
        try:
            pinned.value
        except RuntimeError as e:
            return str(e)
        return "no error"

    wait()
    assert give_away.value.startswith("The current interpreter does not own this Foreign")
    assert "does not own this cown" in touch_pinned.value
    _, again = receive("fb-away", 5)
    assert again.size == 8


def test_nogil_calls_overlap_on_two_workers(lib: Any) -> None:
    wait()
    bocpy.start(2)
    lib.fbh_reset()
    meet = cb.CFunction(lib.fbh_meet, nogil=True)
    met = []
    for _ in range(2):
        @when()
        def call():
            return meet(2, 20000)  # waits (up to 20 s) for the other call
        met.append(call)
    wait()
    assert [m.value for m in met] == [1, 1]  # both were inside at once


def test_nogil_lets_other_main_threads_run(lib: Any) -> None:
    """nogil=True releases the GIL of the calling interpreter: another thread
    of the same interpreter runs Python (and calls) during the call.  Without
    it the calling thread keeps the GIL for the whole call."""
    for nogil, expected in ((True, 2), (False, 1)):
        lib.fbh_reset()
        busy = cb.CFunction(lib.fbh_busy, nogil=nogil)
        active = cb.CFunction(lib.fbh_active)
        short = cb.CFunction(lib.fbh_busy)
        t = threading.Thread(target=busy, args=(300_000,))
        t.start()
        # Runs once this thread gets the GIL: during the call with nogil,
        # only after it without.
        while t.is_alive() and lib.fbh_max_active() < 2:
            if active() == 1:
                short(1000)
        t.join()
        assert lib.fbh_max_active() == expected, nogil


def test_foreign_cannot_move_during_a_nogil_call(lib: Any, c: Any) -> None:
    """Another thread of the interpreter cannot send a Foreign away while a
    nogil foreign call is using it."""
    lib.fbh_reset()
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    hold = cb.CFunction(lib.fbh_hold, nogil=True)
    active = cb.CFunction(lib.fbh_active)
    t = threading.Thread(target=hold, args=(f, 1_000_000))
    t.start()
    while active() == 0 and t.is_alive():  # until the call is inside the C function
        pass
    assert t.is_alive(), "the 1 s call ended before this thread got the GIL back"
    with pytest.raises(BufferError, match="cannot move a Foreign while 1 buffer export\\(s\\) "
                                          "or foreign call\\(s\\) use it"):
        Cown(f)
    t.join()
    box = Cown(f)  # free again once the call returned
    assert not f.acquired
    del box


def test_destructors_run_at_exit(helper_path: Path) -> None:
    code = textwrap.dedent(f"""
        import ctypes, threading
        from bocpy import Cown, PinnedCown, when
        from bocpy.plugins import ctypes_bridge as cb
        lib = ctypes.CDLL({str(helper_path)!r})
        lib.fbh_free.argtypes = [ctypes.c_void_p]
        lib.fbh_free.restype = None
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        kept = Cown(cb.Foreign(libc.malloc(8), 8, destructor=lib.fbh_free))
        plain = cb.Foreign(libc.malloc(8), 8, destructor=lib.fbh_free)
        pf = cb.Foreign(libc.malloc(8), 8, destructor=lib.fbh_free, pinned=True)
        print("pinned", hex(pf.address), threading.get_ident(), flush=True)
        pinned = PinnedCown(pf)
        del pf
        @when(kept)
        def touch(kept):
            return kept.value.size
    """)
    proc = run_script(code)
    assert proc.returncode == 0, proc.stderr
    frees = [ln.split() for ln in proc.stderr.splitlines() if ln.startswith("fbh_free ")]
    assert len(frees) == 3, proc.stderr
    assert len({f[1] for f in frees}) == 3  # three different blocks, each freed once
    _, pinned_address, main_thread = proc.stdout.split()
    assert [f[3] for f in frees if f[1] == pinned_address] == [main_thread]


def test_worker_side_errors(c: Any) -> None:
    f = cb.Foreign(c.malloc(8), 8, destructor=c.free)
    box = Cown(f)

    @when(box)
    def attempts(box):
        out = []
        try:
            cb.Foreign(4096, 8, pinned=True)
        except RuntimeError as e:
            out.append(str(e))
        try:
            box.value.as_ctypes(None)
        except (ImportError, TypeError) as e:
            out.append(f"{type(e).__name__}: {e}")
        return out

    wait()
    pinned_msg, as_ctypes_msg = attempts.value
    assert pinned_msg == ("a pinned Foreign can only be created on the main interpreter "
                          "(it lives in a PinnedCown)")
    if (3, 12) <= sys.version_info < (3, 13):
        assert as_ctypes_msg.startswith(
            "ImportError: Foreign.as_ctypes() needs ctypes, which cannot be imported in "
            "this interpreter (module _ctypes does not support loading in subinterpreters)")
    else:  # ctypes imports on a 3.10, 3.11 or 3.13 worker; None is not a ctypes type
        assert as_ctypes_msg.startswith("TypeError: as_ctypes() needs a ctypes type")
