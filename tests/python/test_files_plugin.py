"""bocpy.plugins.files: pinned file handles (the first abi3 plugin).

Workers produce records; pinned behaviors (main thread) write them through a
File living in a PinnedCown.  The release hook flushes, the destroy hook
closes; a File can never reach a worker."""

from __future__ import annotations

import gc
import io
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bocpy
import bocpy._abi
from bocpy import Cown, PinnedCown, quiesce, wait, when
from bocpy.plugins import files

from test_abi_support import REPO, run_script


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_module_is_abi3_and_registered() -> None:
    assert files.__file__.endswith(bocpy._abi.plugin_suffix())  # abi3 on 3.12+
    assert ("bocpy.plugins.files.File", "pinned") in bocpy._core._registered_types()
    assert files.ABI_MINOR >= 0


def test_many_producers_one_file_no_lost_or_interleaved_records(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    log = files.open(str(path), "w")
    n = 3000
    for i in range(n):
        @when()
        def produce():  # on a worker
            body = "".join(chr(97 + (i + k) % 26) for k in range(40))
            return (i, bocpy._core.worker_index(), body)

        @when(produce, log)
        def write(rec, log):  # on the main thread, one at a time
            i, worker, body = rec.value
            # a record in three writes: must still come out whole
            log.value.write(f"{i:05d} ")
            log.value.write(f"w{worker} ")
            log.value.write(body + "\n")

    wait()
    got = lines_of(path)
    assert len(got) == n
    pat = re.compile(r"^(\d{5}) w(-?\d+) ([a-z]{40})$")
    workers = set()
    for i, line in enumerate(got):  # in scheduling order, whole
        m = pat.match(line)
        assert m is not None, line
        assert int(m.group(1)) == i
        assert m.group(3) == "".join(chr(97 + (i + k) % 26) for k in range(40))
        workers.add(m.group(2))
    assert log.value.records == 3 * n
    if bocpy.WORKER_COUNT > 1:
        assert len(workers) > 1  # produced in parallel


def test_c_behavior_writes_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    log = files.open(path, "wb")  # a PathLike, binary
    results = []
    for i in range(500):
        @when()
        def rec():
            return f"rec {i}\n".encode()

        results.append(files.write_after(log, rec))
    skipped = Cown(None)
    results.append(files.write_after(log, skipped, Cown(b"tail\n")))
    wait()
    assert all(r.value is None and not r.exception for r in results)
    assert lines_of(path) == [f"rec {i}" for i in range(500)] + ["tail"]


def test_flushed_on_release(tmp_path: Path) -> None:
    path = tmp_path / "flush.log"
    log = files.open(path, "w")

    @when(log)
    def first(log):
        log.value.write("hello\n")

    quiesce()  # the runtime is still up and the file still open...
    f = log.value
    assert not f.closed
    assert path.read_text() == "hello\n"  # ...but the release hook flushed
    assert f.flushes >= 1


def test_closed_when_the_last_handle_goes(tmp_path: Path) -> None:
    path = tmp_path / "close.log"
    log = files.open(path, "a")

    @when(log)
    def w(log):
        log.value.write("x\n")

    wait()
    f = log.value
    fd = f.fileno()
    os.fstat(fd)  # open
    del log, w
    gc.collect()
    bocpy.start()  # gives back what main borrowed
    wait()
    assert f.closed
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(ValueError, match="closed file"):
        f.write("y")
    assert path.read_text() == "x\n"


def test_closed_when_the_last_handle_dies_on_a_worker(tmp_path: Path) -> None:
    path = tmp_path / "orphan.log"
    log = files.open(path, "w")
    f = log.value
    holder = Cown([log])  # the only other handle travels to a worker

    @when(log)
    def w(log):
        log.value.write("kept\n")

    del log, w
    wait()

    @when(holder)
    def drop(h):
        h.value = None  # the last handle dies here, on a worker

    wait()
    gc.collect()
    bocpy.pump()  # main's next safe point runs the destroy hook
    assert f.closed
    assert path.read_text() == "kept\n"


def test_wraps_python_files_and_fds(tmp_path: Path) -> None:
    buf = io.StringIO()
    log = files.open(buf, closefd=False)

    @when(log)
    def w(log):
        log.value.write("into a StringIO\n")

    r, wfd = os.pipe()
    piped = files.open(wfd, "ab")

    @when(piped)
    def p(piped):
        piped.value.write(b"through a pipe\n")

    wait()
    assert buf.getvalue() == "into a StringIO\n"
    del log
    gc.collect()
    bocpy.start()
    wait()
    assert not buf.closed  # closefd=False
    del piped, p
    gc.collect()
    bocpy.start()
    wait()
    assert os.read(r, 100) == b"through a pipe\n"
    assert os.read(r, 100) == b""  # the write end was closed
    os.close(r)


def test_text_and_binary_are_checked(tmp_path: Path) -> None:
    t = files.File(tmp_path / "t", "w")
    b = files.File(tmp_path / "b", "wb")
    with pytest.raises(TypeError, match="must be str, not bytes"):
        t.write(b"x")
    with pytest.raises(TypeError, match="bytes-like object is required"):
        b.write("x")
    assert t.write("héllo") == 5
    assert b.write(memoryview(b"abc")) == 3
    t.close()
    b.close()
    assert (tmp_path / "t").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "b").read_bytes() == b"abc"


@pytest.mark.parametrize("mode", ["r", "rw", "ww", "a+", "wbt", ""])
def test_bad_modes(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ValueError, match="invalid mode"):
        files.File(tmp_path / "x", mode)


def test_bad_targets(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="needs a path, a file descriptor or a file object"):
        files.File(3.5)
    with pytest.raises(ValueError, match="bad file descriptor"):
        files.File(-1)
    with pytest.raises(FileNotFoundError):
        files.File(tmp_path / "missing" / "x", "w")
    (tmp_path / "exists").write_text("")
    with pytest.raises(FileExistsError):
        files.File(tmp_path / "exists", "x")


def test_a_file_can_only_live_in_a_pinned_cown(tmp_path: Path) -> None:
    f = files.File(tmp_path / "p", "w")
    with pytest.raises(TypeError, match="can only live in a PinnedCown"):
        Cown(f)
    with pytest.raises(TypeError, match="can only live in a PinnedCown"):
        Cown([1, (f,)])
    with pytest.raises(TypeError, match="can only live in a PinnedCown"):
        Cown({"f": f})
    with pytest.raises(TypeError, match="can only live in a PinnedCown"):
        pickle.dumps(f)
    if hasattr(bocpy, "send"):
        with pytest.raises(TypeError, match="can only live in a PinnedCown"):
            bocpy.send("files", f)
    if hasattr(bocpy, "notice_write"):
        with pytest.raises(TypeError, match="can only live in a PinnedCown"):
            bocpy.notice_write("files", f)
    p = PinnedCown(f)  # fine
    with pytest.raises(TypeError, match="can only live in a PinnedCown"):
        @when()
        def capture():
            return f  # a capture is sent too: refused when scheduling

    assert p.value is f
    f.close()


def test_touching_a_file_from_a_worker_raises(tmp_path: Path) -> None:
    log = files.open(tmp_path / "w", "w")
    holder = Cown(log)  # the handle travels; the value never does

    @when(holder)
    def touch(h):
        return h.value.value.write("nope")

    @when()
    def make():
        from bocpy.plugins import files as f

        return f.open("/tmp/never", "w")

    wait()
    assert touch.exception and isinstance(touch.value, RuntimeError)
    assert "does not own this cown" in str(touch.value)
    assert make.exception and isinstance(make.value, RuntimeError)
    assert "can only be created on the main interpreter" in str(make.value)


def test_write_after_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="file must be a PinnedCown"):
        files.write_after(Cown(1))
    with pytest.raises(TypeError, match="file must be a PinnedCown"):
        files.write_after()
    r = files.write_after(PinnedCown("not a file"), Cown("x"))
    wait()
    assert r.exception and "must hold a File" in str(r.value)
    log = files.open(tmp_path / "e", "w")
    r2 = files.write_after(log, Cown(12))
    wait()
    assert r2.exception and isinstance(r2.value, TypeError)


def test_log_writer_example(tmp_path: Path) -> None:
    out = tmp_path / "example.log"
    res = subprocess.run(
        [sys.executable, str(REPO / "examples" / "log_writer.py"), str(out), "400"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(bocpy.__file__).resolve().parents[1])})
    assert res.returncode == 0, res.stderr
    assert "checked: 400 records, in order, none interleaved" in res.stdout
    assert len(lines_of(out)) == 400


def test_plugin_imports_in_a_worker() -> None:
    res = run_script(
        "from bocpy import when, wait\n"
        "@when()\n"
        "def r():\n"
        "    from bocpy.plugins import files\n"
        "    import bocpy._core as c\n"
        "    return files.ABI_MINOR, c._registered_types()\n"
        "wait()\n"
        "print(r.value)\n")
    assert res.returncode == 0, res.stderr
    assert "('bocpy.plugins.files.File', 'pinned')" in res.stdout
