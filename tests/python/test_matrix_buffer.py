"""Matrix.data(): the numbers as a writable, C-contiguous rows x columns
float64 memoryview, without copying; C plugins such as bocpy.plugins.opencl
read and write Matrix data in place through it.  While a view is alive the
matrix cannot move to another interpreter or change shape.  Matrix itself
does not export a buffer (so ``b"xy" + m`` stays a TypeError)."""

from __future__ import annotations

import pytest

from bocpy import Cown, Matrix, wait, when


def test_memoryview_shape_format_and_writes() -> None:
    m = Matrix(2, 3, [1, 2, 3, 4, 5, 6])
    with m.data() as v:
        assert (v.shape, v.strides, v.format, v.itemsize) == ((2, 3), (24, 8), "d", 8)
        assert v.c_contiguous and not v.readonly and v.nbytes == 48
        assert v.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
        v[1, 2] = 60.0
    assert m[1, 2] == 60.0
    assert bytes(m.data())[:8] == m.data().cast("B")[:8].tobytes()


def test_numpy_shares_the_numbers() -> None:
    import numpy as np

    m = Matrix(2, 2, [1, 2, 3, 4])
    with m.data() as v:
        a = np.asarray(v)
        a *= 10
        del a
    assert m.tolist() == [[10.0, 20.0], [30.0, 40.0]]
    with Matrix(1, 4).data() as v:
        assert v.f_contiguous  # a vector is both


def test_matrix_is_not_itself_a_buffer() -> None:
    with pytest.raises(TypeError):
        memoryview(Matrix(1, 2))
    with pytest.raises(TypeError):
        b"xy" + Matrix(1, 2)


def test_no_move_while_a_view_is_alive() -> None:
    m = Matrix(1, 3, 1.0)
    v = m.data()
    with pytest.raises(BufferError, match="cannot move a matrix while 1 view"):
        Cown(m)
    with pytest.raises(BufferError, match="cannot transpose in place a matrix"):
        m.transpose(in_place=True)
    assert m.acquired  # nothing moved
    v.release()
    c = Cown(m)  # now it moves

    @when(c)
    def double(c):
        c.value *= 2
        return c.value.tolist()

    wait()
    assert double.value == [[2.0, 2.0, 2.0]]


def test_a_moved_matrix_has_no_buffer() -> None:
    m = Matrix(1, 2)
    keep = Cown(m)
    with pytest.raises(RuntimeError, match="does not own this matrix"):
        m.data()
    del keep
