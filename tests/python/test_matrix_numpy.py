"""bocpy.Matrix and the buffer protocol (docs/numpy.md): a Matrix exports
its numbers to memoryview / NumPy without copying, in the interpreter that
owns it; while an export is alive it can neither move to another
interpreter nor change shape; Matrix.from_buffer / Matrix(array) copy any
1-D or 2-D buffer of numbers in.

NumPy runs on the main interpreter only (it cannot be imported in an
own-GIL sub-interpreter on 3.12 / 3.13), so behaviors never import this
module's globals; the worker-side checks (memoryview in a behavior) are in
test_matrix_transfer.py."""

from __future__ import annotations

import array
import gc

import numpy as np  # installed by scripts/requirements.txt
import pytest

import bocpy
from bocpy import Cown, Matrix, notice_write, send, wait, when

LIVE = r"buffer exports? of this matrix (is|are) alive"


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


# ---- exporting ------------------------------------------------------------------------------

def test_asarray_shares_memory_both_ways() -> None:
    m = Matrix([[1, 2, 3], [4, 5, 6]])
    a = np.asarray(m)
    assert a.dtype == np.float64 and a.shape == (2, 3) and a.strides == (24, 8)
    assert a.flags["C_CONTIGUOUS"] and a.flags["WRITEABLE"] and not a.flags["OWNDATA"]
    assert np.shares_memory(a, np.asarray(m))
    a[1, 2] = 42.0                 # a write through the array ...
    assert m[1, 2] == 42.0         # ... is visible in the matrix
    m[0, 0] = -7.0                 # and the other way round
    assert a[0, 0] == -7.0
    m += 1                         # in place: same memory, same shape
    assert a.tolist() == [[-6, 3, 4], [5, 6, 43]]
    assert np.array_equal(np.array(m), a)   # np.array copies
    assert not np.shares_memory(np.array(m), a)


def test_memoryview_describes_the_matrix() -> None:
    m = Matrix([[1, 2, 3], [4, 5, 6]])
    with memoryview(m) as v:
        assert v.format == "d" and v.itemsize == 8 and v.ndim == 2
        assert v.shape == (2, 3) and v.strides == (24, 8)
        assert not v.readonly and v.c_contiguous and not v.f_contiguous
        assert v.nbytes == 48 and v.tolist() == [[1, 2, 3], [4, 5, 6]]
        v[0, 1] = 9.5
    assert m[0, 1] == 9.5
    assert bytes(Matrix([[1.5]])) == np.float64(1.5).tobytes()  # a simple (byte) buffer


def test_vectors_are_also_fortran_contiguous_matrices_are_not() -> None:
    import ctypes
    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
    release = ctypes.pythonapi.PyBuffer_Release
    release.argtypes = [ctypes.c_void_p]
    PyBUF_F_CONTIGUOUS = 0x0040 | 0x0018  # | PyBUF_STRIDES
    view = ctypes.create_string_buffer(256)  # room for a Py_buffer
    assert get(Matrix([[1, 2, 3]]), view, PyBUF_F_CONTIGUOUS) == 0
    release(view)
    with pytest.raises(BufferError, match=r"a \(2, 3\) matrix is row-major"):
        get(Matrix(2, 3), view, PyBUF_F_CONTIGUOUS)
    assert np.asfortranarray(Matrix([[1, 2], [3, 4]])).tolist() == [[1, 2], [3, 4]]  # a copy
    PyBUF_C_CONTIGUOUS = 0x0020 | 0x0018
    with pytest.raises(BufferError, match="strided"):
        get(Matrix(3, 3).column_view(0), view, PyBUF_C_CONTIGUOUS)
    with pytest.raises(BufferError, match="strided"):
        get(Matrix(3, 3).column_view(0), view, 0)  # PyBUF_SIMPLE
    assert get(Matrix(3, 3).row_view(0), view, PyBUF_C_CONTIGUOUS) == 0
    release(view)
    col = Matrix([[1, 2], [3, 4]]).column_view(1)
    a = np.asarray(col)
    assert a.shape == (2, 1) and a.strides == (16, 8) and np.shares_memory(a, np.asarray(col.matrix))


@pytest.mark.parametrize("send_it", [
    lambda m: Cown(m),
    lambda m: Cown((1, (m,))),
    lambda m: send("numpy-test", m),
], ids=["cown", "nested-cown", "send"])
def test_a_live_export_stops_the_matrix_from_moving(send_it) -> None:
    m = Matrix([[1.0, 2.0]])
    a = np.asarray(m)
    v = memoryview(m)
    with pytest.raises(BufferError, match="2 " + LIVE) as info:
        send_it(m)
    assert "release them first" in str(info.value) and "m.copy()" in str(info.value)
    assert m.acquired and a[0, 1] == 2.0      # nothing moved, nothing freed
    del a
    with pytest.raises(BufferError, match="1 " + LIVE):
        send_it(m)
    v.release()
    send_it(m)                                 # no export left: it moves
    assert not m.acquired


def test_the_noticeboard_stores_a_copy_even_with_a_live_export() -> None:
    m = Matrix([[1.0, 2.0]])
    a = np.asarray(m)
    notice_write("numpy-test", m)   # readers get copies: nothing moves
    a[0, 0] = 5.0
    assert m.acquired and m[0, 0] == 5.0


def test_a_live_export_stops_a_capture() -> None:
    m = Matrix([[1.0, 2.0]])
    a = np.asarray(m)
    with pytest.raises(BufferError, match="1 " + LIVE):
        @when()
        def use(m=m):
            return m.sum()
    assert m.acquired and a.sum() == 3.0


def test_inside_a_dict_the_transport_reports_the_buffer_error() -> None:
    m = Matrix([[1.0, 2.0]])
    a = np.asarray(m)
    # Dicts are written natively since issue 33 (like tuples): the share
    # hook's BufferError arrives as it is.
    with pytest.raises(BufferError, match=LIVE):
        Cown({"m": m})
    # In a value that is pickled, the transport wraps it (cause kept).
    with pytest.raises(TypeError, match=LIVE) as info:
        Cown({"m": m, "tags": {"a", "b"}})   # a set: the dict is pickled
    assert isinstance(info.value.__cause__, BufferError)
    assert m.acquired
    del a
    assert Cown({"m": m}) is not None


def test_no_shape_change_under_an_export() -> None:
    m = Matrix([[1, 2, 3], [4, 5, 6]])
    a = np.asarray(m)
    with pytest.raises(BufferError, match="transpose this matrix in place.*1 " + LIVE):
        m.transpose(in_place=True)
    assert m.shape == (2, 3) and a.shape == (2, 3)
    sq = Matrix([[1, 2], [3, 4]])
    b = np.asarray(sq)
    sq.transpose(in_place=True)   # square: the shape stays, the data moves
    assert b.tolist() == [[1, 3], [2, 4]]
    with pytest.raises(ValueError):
        m @= Matrix(3, 2)         # in-place matmul never changes the shape
    del a
    m.transpose(in_place=True)
    assert m.shape == (3, 2)


def test_not_owned_matrices_export_nothing() -> None:
    m = Matrix([[1.0, 2.0]])
    Cown(m)
    with pytest.raises(RuntimeError, match="does not own this matrix"):
        memoryview(m)
    with pytest.raises(RuntimeError, match="does not own this matrix"):
        Matrix.from_buffer(m)


# ---- importing ------------------------------------------------------------------------------

def test_from_buffer_copies_contiguous_float64() -> None:
    a = np.arange(12.0).reshape(3, 4)
    m = Matrix.from_buffer(a)
    assert m.shape == (3, 4) and m.tolist() == a.tolist()
    a[0, 0] = 99.0
    assert m[0, 0] == 0.0                  # a copy
    assert not np.shares_memory(np.asarray(m), a)
    assert Matrix(a).tolist() == a.tolist()  # the constructor takes arrays too
    assert Matrix.from_buffer(np.arange(3.0)).shape == (1, 3)  # 1-D: a row
    assert Matrix.vector(np.arange(3.0), as_column=True).shape == (3, 1)
    assert Matrix.from_buffer(Matrix([[1, 2]])).tolist() == [[1, 2]]


@pytest.mark.parametrize("view", [
    lambda a: a[:, ::2], lambda a: a[::-1], lambda a: a.T, lambda a: a[1:3, 1:4],
    lambda a: a[:, 1], lambda a: a[::2, ::-3],
], ids=["cols-step", "rows-reversed", "transposed", "window", "column", "both"])
def test_from_buffer_any_strides(view) -> None:
    a = np.arange(30.0).reshape(5, 6)
    v = view(a)
    assert not v.flags["C_CONTIGUOUS"] or v.ndim == 1
    expected = v.tolist() if v.ndim == 2 else [v.tolist()]
    assert Matrix.from_buffer(v).tolist() == expected
    assert Matrix(v).tolist() == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.int16, np.int32, np.int64,
                                   np.uint8, np.uint16, np.uint32, np.uint64, np.bool_,
                                   ">f8", "<f8", ">i4", "<u2", ">f4"])
def test_from_buffer_converts_numbers(dtype) -> None:
    a = (np.arange(12) % 5).reshape(3, 4).astype(dtype)
    assert Matrix.from_buffer(a).tolist() == a.astype(np.float64).tolist()
    assert Matrix.from_buffer(a[:, ::-2]).tolist() == a[:, ::-2].astype(np.float64).tolist()


def test_from_buffer_edge_values() -> None:
    a = np.array([[-1.5, np.inf, -0.0], [np.nan, 6.5e-8, 65504]], dtype=np.float16)
    got = np.asarray(Matrix.from_buffer(a))
    assert np.array_equal(got, a.astype(np.float64), equal_nan=True)
    assert np.signbit(got[0, 2])
    big = np.array([np.iinfo(np.int64).min, np.iinfo(np.uint64).max], dtype=object)
    assert Matrix.from_buffer(np.array([big[0]], dtype=np.int64))[0, 0] == float(big[0])
    assert Matrix.from_buffer(np.array([big[1]], dtype=np.uint64))[0, 0] == float(big[1])


def test_from_buffer_other_buffers() -> None:
    assert Matrix.from_buffer(array.array("d", [1, 2, 3])).tolist() == [[1, 2, 3]]
    assert Matrix(array.array("i", [4, 5])).tolist() == [[4, 5]]
    assert Matrix.from_buffer(memoryview(bytes([1, 2, 255]))).tolist() == [[1, 2, 255]]
    assert Matrix.from_buffer(b"\x01\x02").tolist() == [[1, 2]]  # explicit: bytes are uint8
    mv = memoryview(np.arange(6.0).tobytes()).cast("d", (2, 3))
    assert Matrix.from_buffer(mv).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_from_buffer_bad_input() -> None:
    with pytest.raises(ValueError, match=r"3-D buffer of shape \(2, 3, 4\).*1-D or 2-D"):
        Matrix.from_buffer(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"0-D buffer"):
        Matrix.from_buffer(np.array(3.0))
    with pytest.raises(ValueError, match=r"0-D buffer"):
        Matrix(np.array(3.0))
    with pytest.raises(ValueError, match=r"empty buffer of shape \(0, 3\)"):
        Matrix.from_buffer(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"empty buffer of shape \(0,\)"):
        Matrix.from_buffer(np.zeros(0))
    with pytest.raises(TypeError, match=r"element format 'Zd'.*must be numbers"):
        Matrix.from_buffer(np.array([1 + 2j]))
    with pytest.raises(TypeError, match=r"element format '.*w'.*must be numbers"):
        Matrix.from_buffer(np.array(["a", "b"]))
    with pytest.raises(TypeError, match=r"element format 'T\{"):
        Matrix.from_buffer(np.zeros(2, dtype=[("x", "f8"), ("y", "i4")]))
    with pytest.raises(ValueError, match="3-D"):
        Matrix(np.zeros((2, 2, 2)))
    with pytest.raises(TypeError, match=r"needs an object that supports the buffer protocol.*'list'"):
        Matrix.from_buffer([1, 2, 3])
    with pytest.raises(TypeError, match="buffer protocol"):
        Matrix.from_buffer(5)
    with pytest.raises(TypeError):
        Matrix(b"abc")  # ambiguous in the constructor: refused as before
    with pytest.raises(TypeError, match="unsupported operand"):
        b"xy" + Matrix([[1.0]])  # bytes concatenation would take the buffer
    # object arrays are not buffers of numbers: the sequence protocol converts them
    assert Matrix(np.array([1, 2.5], dtype=object)).tolist() == [[1, 2.5]]


def test_operators_take_arrays() -> None:
    m = Matrix([[1, 2], [3, 4]])
    a = np.array([[10, 20], [30, 40]], dtype=np.int32)
    r = m + a                      # Matrix.__add__ converts the array (one bulk copy)
    assert isinstance(r, Matrix) and r.tolist() == [[11, 22], [33, 44]]
    assert (m * a.T).tolist() == [[10, 60], [60, 160]]  # a strided operand
    assert Matrix.allclose(m @ Matrix(a), Matrix(np.asarray(m) @ a))


def test_round_trip_large_and_no_leak() -> None:
    gc.collect()
    base = bocpy.plugins.matrix._live_buffers()
    a = np.random.default_rng(1).standard_normal((257, 129))
    for _ in range(5):
        m = Matrix.from_buffer(a)
        assert np.array_equal(np.asarray(m), a)
        b = np.asarray(m)
        del m                     # the array keeps the matrix (and its record) alive
        assert np.array_equal(b, a)
        del b
    gc.collect()
    assert bocpy.plugins.matrix._live_buffers() == base
