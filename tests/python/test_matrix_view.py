"""MatrixView (API.md §14, 0.14): a 1-D read/write window onto one row or
column of a Matrix that aliases its storage and never travels."""

from __future__ import annotations

import copy
import gc
import pickle

import pytest

from bocpy import Cown, Matrix, send, wait, when
from bocpy.plugins import matrix as matrix_module
from bocpy.plugins.matrix import MatrixView


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


def M33() -> Matrix:
    return Matrix([[0, 1, 2], [3, 4, 5], [6, 7, 8]])


def test_row_and_column_views_alias_the_matrix() -> None:
    m = M33()
    r, c = m.row_view(1), m.column_view(-1)
    assert isinstance(r, MatrixView) and isinstance(c, MatrixView)
    assert r.tolist() == [3, 4, 5] and c.tolist() == [2, 5, 8]
    assert (r.rows, r.columns, r.size, r.shape, r.is_row, r.read_only) == (1, 3, 3, (1, 3), True, False)
    assert (c.rows, c.columns, c.size, c.shape, c.is_row) == (3, 1, 3, (3, 1), False)
    assert len(c) == 3 and list(c) == [2, 5, 8] and c[-1] == 8 and r[0] == 3
    r[0] = -1                      # writes go through
    assert m[1, 0] == -1
    m[2, 2] = 80                   # and the view sees the matrix's writes
    assert c[2] == 80
    c[:] = 0                       # v[:] = scalar
    assert m.column_view(2).tolist() == [0, 0, 0]
    r[:] = [10, 11, 12]            # v[:] = sequence
    assert m[1].tolist() == [[10, 11, 12]]
    r[::2] = (7, 9)
    assert m[1].tolist() == [[7, 11, 9]]
    assert r.matrix is m


def test_view_indexer_forms() -> None:
    m = M33()
    assert m.view[2].tolist() == [6, 7, 8]
    assert m.view[0, 1:].tolist() == [1, 2]
    assert m.view[::-1, 1].tolist() == [7, 4, 1]
    assert m.view[1, 1].tolist() == [4]
    m.view[::2, 0][:] = [-5, -6]
    assert m.column_view(0).tolist() == [-5, 3, -6]
    with pytest.raises(TypeError, match="1-D"):
        m.view[:, :]
    with pytest.raises(IndexError, match="row index 3 is out of range"):
        m.view[3]
    with pytest.raises(IndexError):
        m.view[0, 5:]
    with pytest.raises(KeyError):
        m.view[0, 0, 0]


def test_slices_of_a_view_are_new_matrices() -> None:
    m = M33()
    s = m.row_view(0)[1:]
    assert isinstance(s, Matrix) and s.tolist() == [[1, 2]]
    s[0, 0] = 100
    assert m[0, 1] == 1
    assert m.column_view(1)[::2].tolist() == [[1], [7]]


def test_arithmetic_materialises_and_rebinds() -> None:
    m = M33()
    c = m.column_view(1)
    assert isinstance(c + 1, Matrix) and (c + 1).tolist() == [[2], [5], [8]]
    assert (m + c).tolist() == [[1, 2, 3], [7, 8, 9], [13, 14, 15]]  # a column, broadcast
    assert (2 * m.row_view(0)).tolist() == [[0, 2, 4]]
    assert (-c).tolist() == [[-1], [-4], [-7]] and abs(c).shape == (3, 1)
    assert (m.row_view(0) @ m.column_view(0)).tolist() == [[15]]
    v = c
    v += 10                         # rebinds v to a new Matrix
    assert isinstance(v, Matrix) and m.column_view(1).tolist() == [1, 4, 7]
    assert Matrix(c).shape == (3, 1) and Matrix(m.row_view(0)).shape == (1, 3)


def test_copy_is_independent() -> None:
    m = M33()
    r = m.row_view(0)
    k = r.copy()
    assert isinstance(k, Matrix) and k.tolist() == [[0, 1, 2]]
    k[0, 0] = 99
    assert m[0, 0] == 0
    assert copy.copy(m.column_view(0)).shape == (3, 1)


def test_view_keeps_the_buffer_alive() -> None:
    gc.collect()
    base = matrix_module._live_buffers()
    v = Matrix([[1, 2], [3, 4]]).row_view(1)   # the matrix object is gone
    gc.collect()
    assert v.tolist() == [3, 4]
    assert matrix_module._live_buffers() == base + 1
    del v
    gc.collect()
    assert matrix_module._live_buffers() == base


def test_views_refuse_to_travel() -> None:
    m = M33()
    v = m.row_view(0)
    with pytest.raises(TypeError, match="cannot be pickled or sent"):
        pickle.dumps(v)
    with pytest.raises(TypeError, match="MatrixView"):
        Cown(v)
    with pytest.raises(TypeError, match="MatrixView"):
        send("view-test", v)
    with pytest.raises(TypeError, match="MatrixView"):
        @when()
        def capture(v=v):
            return v
    with pytest.raises(TypeError):
        copy.deepcopy(v)
    assert m.acquired and v.tolist() == [0, 1, 2]  # nothing moved
    with pytest.raises(TypeError, match="cannot create"):
        MatrixView()
    with pytest.raises(TypeError, match="unhashable"):
        hash(v)


def test_every_access_needs_the_owner() -> None:
    m = M33()
    v = m.row_view(0)
    Cown(m)                        # the matrix moves away (a view does not block it)
    for access in (lambda: v[0], lambda: v.tolist(), lambda: len(v), lambda: v.copy(),
                   lambda: v + 1, lambda: v.shape, lambda: v.__setitem__(0, 1.0)):
        with pytest.raises(RuntimeError, match="does not own this matrix"):
            access()
    assert "not owned" in repr(v)
    with pytest.raises(RuntimeError):
        m.row_view(0)


def test_a_reshaped_source_invalidates_its_views() -> None:
    m = Matrix([[1, 2, 3], [4, 5, 6]])
    v = m.row_view(1)
    m.transpose(in_place=True)
    with pytest.raises(RuntimeError, match=r"made for a \(2, 3\) matrix, which is now \(3, 2\)"):
        v[0]


def test_a_view_buffer_blocks_moving_the_source() -> None:
    m = M33()
    with memoryview(m.column_view(1)) as b:
        assert b.shape == (3, 1) and b.strides == (24, 8) and b.tolist() == [[1], [4], [7]]
        b[2, 0] = 70
        with pytest.raises(BufferError, match="1 buffer export"):
            Cown(m)
    assert m[2, 1] == 70
    with memoryview(m.column_view(0)) as col:
        assert not col.c_contiguous and bytes(col) == bytes(memoryview(m.column_view(0).copy()))
    assert bytes(m.row_view(0)) == bytes(memoryview(m)[0:1].tobytes())
    Cown(m)


def test_views_inside_a_behavior() -> None:
    c = Cown(M33())

    @when(c)
    def scale_row(c):
        r = c.value.row_view(1)
        r[:] = [x * 10 for x in r]
        c.value.view[:, 0][0] = -1
        return r.tolist()

    wait()
    assert scale_row.value == [30, 40, 50]
    assert c.value.tolist() == [[-1, 1, 2], [30, 40, 50], [6, 7, 8]]
