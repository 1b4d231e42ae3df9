"""bocpy.Matrix bad input: clear exceptions, never a crash.

Where bocpy 0.9.0 raised AssertionError / KeyError / NotImplementedError
(or crashed), Matrix raises: ValueError naming both shapes for shape
mismatches, TypeError for wrong types, IndexError for out-of-range
indices, ValueError for a bad axis and for rows / columns < 1."""

from __future__ import annotations

import operator

import pytest

from bocpy import Matrix
from bocpy.plugins import matrix as matrix_module


def shapes(a: tuple[int, int], b: tuple[int, int]) -> str:
    """A regex matching a message that names both shapes."""
    return rf"\({a[0]}, {a[1]}\).*\({b[0]}, {b[1]}\)"


A23 = lambda: Matrix(2, 3, list(range(6)))  # noqa: E731
A32 = lambda: Matrix(3, 2, list(range(6)))  # noqa: E731


# ---- construction -----------------------------------------------------------------------

@pytest.mark.parametrize("args", [(0, 3), (3, 0), (-1, 2), (2, -5)])
def test_nonpositive_dimensions(args) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Matrix(*args)
    with pytest.raises(ValueError, match="at least 1"):
        Matrix.zeros(args)
    with pytest.raises(ValueError):
        Matrix.normal(size=args)


@pytest.mark.parametrize("args", [(2.0, 3), (2, "3"), (None, 1), ([2], 2)])
def test_dimension_types(args) -> None:
    with pytest.raises(TypeError):
        Matrix(*args)


def test_huge_dimensions() -> None:
    with pytest.raises((ValueError, MemoryError)):
        Matrix(2 ** 40, 2 ** 40)
    with pytest.raises(ValueError):
        Matrix(2 ** 70, 1)


def test_bad_values() -> None:
    with pytest.raises(ValueError, match=shapes((1, 5), (2, 3))):
        Matrix(2, 3, [1, 2, 3, 4, 5])  # wrong length
    with pytest.raises(ValueError, match=shapes((3, 2), (2, 3))):
        Matrix(2, 3, [[1, 2], [3, 4], [5, 6]])  # nested, wrong shape
    with pytest.raises(ValueError):
        Matrix(2, 2, Matrix.zeros((3, 3)))
    with pytest.raises(TypeError, match="numbers"):
        Matrix(1, 2, ["a", "b"])
    with pytest.raises(TypeError):
        Matrix(1, 2, "ab")
    with pytest.raises(TypeError):
        Matrix(1, 2, {"a": 1})
    with pytest.raises(TypeError):
        Matrix(1, 2, [1, None])
    with pytest.raises(TypeError):
        Matrix(1, 2, [1, 1j])
    with pytest.raises(OverflowError):
        Matrix(1, 1, [10 ** 400])


def test_bad_sequences() -> None:
    with pytest.raises(ValueError, match="empty"):
        Matrix([])
    with pytest.raises(ValueError, match="empty"):
        Matrix([[]])
    with pytest.raises(ValueError, match="ragged"):
        Matrix([[1, 2], [3]])
    with pytest.raises(TypeError):
        Matrix([[1, 2], 3])
    with pytest.raises(TypeError):
        Matrix([1, [2, 3]])
    with pytest.raises(TypeError):
        Matrix([[[1]]])  # 3-D
    with pytest.raises(TypeError):
        Matrix("12")
    with pytest.raises(TypeError):
        Matrix(3)  # no columns
    with pytest.raises(TypeError):
        Matrix(2, values=[1, 2])
    with pytest.raises(TypeError):
        Matrix(x for x in [1, 2])  # not a sequence


def test_bad_class_method_arguments() -> None:
    with pytest.raises(TypeError):
        Matrix.zeros(3)
    with pytest.raises(ValueError):
        Matrix.zeros((1, 2, 3))
    with pytest.raises(TypeError):
        Matrix.ones()
    with pytest.raises(TypeError):
        Matrix.ones(("a", 2))
    with pytest.raises(ValueError, match="stddev"):
        Matrix.normal(0, -1)
    with pytest.raises(ValueError, match="minval"):
        Matrix.uniform(2, 1)
    with pytest.raises(TypeError):
        Matrix.uniform("a")
    with pytest.raises(TypeError):
        Matrix.normal(size=5)
    with pytest.raises(TypeError):
        Matrix.seed(1.5)
    with pytest.raises(TypeError):
        Matrix.seed("x")
    with pytest.raises(ValueError):
        Matrix.vector([[1, 2], [3, 4]])
    with pytest.raises(ValueError):
        Matrix.vector([])
    with pytest.raises(TypeError):
        Matrix.vector()
    with pytest.raises(TypeError):
        Matrix.vector([1], bogus=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        Matrix.zeros(shape=(1, 1))


def test_concat_errors() -> None:
    a = Matrix.zeros((2, 2))
    with pytest.raises(ValueError, match=shapes((2, 2), (1, 3))):
        Matrix.concat([a, Matrix.zeros((1, 3))])
    with pytest.raises(ValueError, match=shapes((2, 2), (3, 1))):
        Matrix.concat([a, Matrix.zeros((3, 1))], axis=1)
    with pytest.raises(ValueError):
        Matrix.concat([])
    with pytest.raises(ValueError, match="axis"):
        Matrix.concat([a], axis=2)
    with pytest.raises(ValueError, match="axis"):
        Matrix.concat([a], axis=None)
    with pytest.raises(TypeError):
        Matrix.concat([a, 3])
    with pytest.raises(TypeError):
        Matrix.concat(a)
    with pytest.raises(TypeError):
        Matrix.concat([a], axis="0")


# ---- indexing ------------------------------------------------------------------------------------

def test_out_of_range_indices() -> None:
    m = A23()
    for key in (2, -3, (2, 0), (0, 3), (-3, 0), (0, -4), (10 ** 30, 0)):
        with pytest.raises(IndexError):
            m[key]
        with pytest.raises(IndexError):
            m[key] = 1.0
    with pytest.raises(IndexError):
        m[5:]  # selects nothing
    with pytest.raises(IndexError):
        m[:, 3:3]
    m.w = 1  # 6 elements: w exists
    with pytest.raises(IndexError, match="'w'"):
        Matrix([[1, 2, 3]]).w
    with pytest.raises(IndexError, match="'y'"):
        Matrix([[1]]).y = 2


def test_bad_keys() -> None:
    m = A23()
    with pytest.raises(IndexError, match="1 or 2 indices"):
        m[0, 0, 0]  # v0.9.0: KeyError
    with pytest.raises(KeyError, match="1 or 2 indices"):
        m[0, 0, 0]  # ... and both catch it
    with pytest.raises(IndexError):
        m[()]
    for key in (1.0, "a", None, [0.5, 1], [True], (0, 1.5), (slice(None), "x")):
        with pytest.raises(TypeError):
            m[key]
        with pytest.raises(TypeError):
            m[key] = 0.0
    with pytest.raises(IndexError, match="one axis at a time"):
        m[[0], [1]]
    with pytest.raises(IndexError, match="index 5 is out of range for 2 rows"):
        m[[0, 5]]
    with pytest.raises(ValueError):
        m[::0]
    with pytest.raises(TypeError):
        del m[0]
    with pytest.raises(TypeError):
        del m.x


def test_mismatched_slice_assignment() -> None:
    m = Matrix.zeros((3, 3))
    with pytest.raises(ValueError, match=shapes((1, 2), (1, 3))):
        m[0] = [1, 2]  # v0.9.0 aborted the process
    with pytest.raises(ValueError, match=shapes((2, 2), (3, 1))):
        m[:, 0] = [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match=shapes((1, 4), (2, 2))):
        m[0:2, 0:2] = [1, 2, 3, 4]
    with pytest.raises(ValueError):
        m[:, :] = Matrix.zeros((2, 3))
    with pytest.raises(TypeError):
        m[0] = "abc"
    with pytest.raises(TypeError):
        m[0] = [1, "x", 3]
    with pytest.raises(TypeError):
        m.x = "x"
    assert m.tolist() == [[0.0] * 3] * 3  # nothing was written


# ---- operators ---------------------------------------------------------------------------------

@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv])
def test_shape_mismatch_names_both_shapes(op) -> None:
    with pytest.raises(ValueError, match=shapes((2, 3), (3, 2))):
        op(A23(), A32())
    with pytest.raises(ValueError, match=shapes((2, 3), (1, 2))):
        op(A23(), [1, 2])
    with pytest.raises(ValueError, match=shapes((1, 2), (2, 3))):
        op([1, 2], A23())


@pytest.mark.parametrize("iop", [operator.iadd, operator.isub, operator.imul, operator.itruediv])
def test_inplace_cannot_change_shape(iop) -> None:
    small = Matrix([[1, 2, 3]])
    with pytest.raises(ValueError, match=shapes((1, 3), (2, 3))):
        iop(small, A23())  # v0.9.0 misbehaved
    assert small.tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError):
        iop(Matrix([[1], [2]]), Matrix([[1, 2]]))  # outer would grow it


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv,
                                operator.matmul, operator.iadd, operator.imatmul])
@pytest.mark.parametrize("other", ["a", None, {"a": 1}, object(), b"xy", 1j])
def test_wrong_operand_types(op, other) -> None:
    with pytest.raises(TypeError):
        op(A23(), other)
    with pytest.raises(TypeError):
        op(other, A23())


def test_non_numbers_in_list_operands() -> None:
    with pytest.raises(TypeError):
        A23() + [1, "a", 3]
    with pytest.raises(TypeError):
        A23() @ [[1], ["x"], [3]]


def test_matmul_errors() -> None:
    with pytest.raises(ValueError, match=shapes((2, 3), (2, 3))):
        A23() @ A23()
    with pytest.raises(TypeError):
        A23() @ 2
    with pytest.raises(TypeError):
        2 @ A23()
    m = A23()
    with pytest.raises(ValueError, match=shapes((2, 3), (2, 2))):
        m @= A32()  # the result would be 2 x 2
    assert m.tolist() == A23().tolist()


# ---- methods ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sum", "mean", "min", "max", "argmin", "argmax", "magnitude",
                                  "magnitude_squared", "normalize", "angle", "perpendicular"])
def test_bad_axis(name) -> None:
    m = Matrix.ones((2, 2))
    for axis in (2, -3, 100):
        with pytest.raises(ValueError, match="axis"):
            getattr(m, name)(axis)
    for axis in ("0", 1.0, [0]):
        with pytest.raises(TypeError):
            getattr(m, name)(axis=axis)
    with pytest.raises(TypeError):
        getattr(m, name)(0, axis=0)  # given twice
    with pytest.raises(TypeError):
        getattr(m, name)(bogus=1)


def test_vecdot_cross_errors() -> None:
    with pytest.raises(ValueError, match=shapes((2, 3), (3, 2))):
        A23().vecdot(A32())
    with pytest.raises(ValueError, match="axis"):
        A23().vecdot(A23(), 5)
    with pytest.raises(TypeError):
        A23().vecdot("x")
    with pytest.raises(TypeError):
        A23().vecdot()
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        Matrix.zeros((4, 4)).cross(Matrix.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"\(1, 5\)"):
        Matrix.zeros((1, 5)).cross(Matrix.zeros((1, 5)))
    with pytest.raises(ValueError, match=shapes((5, 3), (5, 2))):
        Matrix.zeros((5, 3)).cross(Matrix.zeros((5, 2)))
    with pytest.raises(ValueError, match=shapes((1, 3), (2, 3))):
        Matrix.zeros((1, 3)).cross(Matrix.zeros((2, 3)))  # the batch must be self
    with pytest.raises(TypeError):
        Matrix.zeros((1, 3)).cross(3.0)
    with pytest.raises(ValueError):
        Matrix.zeros((3, 3)).perpendicular()
    with pytest.raises(ValueError):
        Matrix.zeros((1, 3)).angle()


def test_clip_errors() -> None:
    m = Matrix.ones((2, 2))
    with pytest.raises(ValueError, match="lower bound"):
        m.clip(2, 1)  # v0.9.0: AssertionError
    with pytest.raises(ValueError):
        m.clip(-1)  # [0, -1]
    with pytest.raises(ValueError):
        m.clip(min=3, max=2)
    with pytest.raises(TypeError):
        m.clip()
    with pytest.raises(TypeError):
        m.clip(min=None, max=None)
    with pytest.raises(TypeError):
        m.clip(1, max=2)  # positional and keyword forms mixed
    with pytest.raises(TypeError):
        m.clip("a")
    with pytest.raises(TypeError):
        m.clip(1, 2, 3)


def test_take_errors() -> None:
    m = Matrix(3, 2, list(range(6)))
    with pytest.raises(IndexError, match="3 rows"):
        m.take([0, 3])  # v0.9.0 read out of bounds
    with pytest.raises(IndexError):
        m.select([-4])
    with pytest.raises(IndexError, match="2 columns"):
        m.take([2], axis=1)
    with pytest.raises(IndexError):
        m.take([6], axis=None)
    with pytest.raises(IndexError):
        m.take([2 ** 80])
    with pytest.raises(ValueError):
        m.take([])
    with pytest.raises(ValueError, match="axis"):
        m.take([0], axis=2)
    with pytest.raises(TypeError):
        m.take([0.0])
    with pytest.raises(TypeError):
        m.take("01")
    with pytest.raises(TypeError):
        m.take(None)
    with pytest.raises(TypeError):
        m.take()


def test_misc_method_errors() -> None:
    m = A23()
    with pytest.raises(ValueError, match=shapes((2, 3), (3, 2))):
        m.fma(A32(), 1)
    with pytest.raises(ValueError):
        m.fma(1, A32())
    with pytest.raises(TypeError):
        m.fma(1)
    with pytest.raises(TypeError):
        m.fma("a", 1)
    with pytest.raises(ValueError):
        Matrix.where(Matrix.ones((2, 2)), A23(), 0)
    with pytest.raises(TypeError):
        Matrix.where(m, 1)
    with pytest.raises(TypeError):
        Matrix.where("m", 1, 2)
    with pytest.raises(ValueError, match=shapes((2, 3), (3, 2))):
        m.less(A32())
    with pytest.raises(TypeError):
        m.equal("a")
    with pytest.raises(TypeError):
        Matrix.allclose(m, "a")
    with pytest.raises(TypeError):
        Matrix.allclose(m, m, rtol="x")
    for name in ("ceil", "floor", "round", "negate", "abs", "sqrt", "transpose"):
        with pytest.raises(TypeError):
            getattr(m, name)(True, False)
        with pytest.raises(TypeError):
            getattr(m, name)(inplace=True)
    with pytest.raises(TypeError):
        m.copy(1)


def test_unpickling_bad_buffers() -> None:
    f = matrix_module._from_buffer
    with pytest.raises(ValueError):
        f(2, 2, b"\0" * 31, "little")
    with pytest.raises(ValueError):
        f(0, 2, b"", "little")
    with pytest.raises(ValueError):
        f(1, 1, b"\0" * 8, "middle")
    with pytest.raises(TypeError):
        f(1, 1, "x" * 8, "little")
    with pytest.raises(TypeError):
        f(1, 1, b"\0" * 8)
    assert f(1, 1, b"\0" * 8, "little").tolist() == [[0.0]]


def test_equality_is_by_value_and_unhashable() -> None:
    m = Matrix([[1.0]])
    assert m == m and m == m.copy() and m != Matrix([[2.0]])  # 0.12: by value
    with pytest.raises(TypeError, match="unhashable"):
        hash(m)
    with pytest.raises(TypeError):
        {m: 1}
