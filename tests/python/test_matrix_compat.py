"""bocpy.Matrix as a drop-in for programs written against the reference
(API.md §12 and §14, bocpy 0.9 - 0.14; issue 19).

* Every Matrix error whose type differs from the reference's is an instance
  of both: an ``except`` written for the reference's type and one written
  for ours both catch it, and the message keeps naming the shapes and
  contains the reference's words where it documents some.
* The §14 surface: fancy indexing and scatter assignment, take/put
  (accumulate=), comparison masks, lexicographic comparisons (unhashable),
  where, fma, sqrt, add/subtract/multiply/divide(out=), out= on element-wise
  and unary methods, scaled_add; old and new spellings (select/take,
  positional and keyword clip).  MatrixView is in test_matrix_view.py.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import pytest

from bocpy import Matrix
from bocpy.plugins import matrix as matrix_module


def A23() -> Matrix:
    return Matrix([[1, 2, 3], [4, 5, 6]])


# ---- errors: both types catch ----------------------------------------------------------------

# (what, call, our type, the reference's type, words the message contains)
CASES: list[tuple[str, Callable[[], Any], type, type, list[str]]] = [
    ("rows < 1", lambda: Matrix(0, 2), ValueError, AssertionError, ["rows must be at least 1"]),
    ("columns < 1", lambda: Matrix(2, -1), ValueError, AssertionError, ["columns must be at least 1"]),
    ("zeros((0, 1))", lambda: Matrix.zeros((0, 1)), ValueError, AssertionError, ["at least 1"]),
    ("value count", lambda: Matrix(2, 2, [1, 2, 3]), ValueError, TypeError,
     ["values do not fit", "(1, 3)", "(2, 2)"]),
    ("value count (matrix)", lambda: Matrix(2, 2, Matrix([[1, 2, 3]])), ValueError, TypeError,
     ["(1, 3)", "(2, 2)"]),
    ("add mismatch", lambda: A23() + Matrix(3, 2), ValueError, NotImplementedError,
     ["(2, 3)", "(3, 2)", "Dimension mismatch between operands"]),
    ("sub mismatch", lambda: A23() - [1, 2], ValueError, NotImplementedError,
     ["(2, 3)", "(1, 2)", "Dimension mismatch between operands"]),
    ("mul mismatch", lambda: A23() * Matrix(4, 4), ValueError, NotImplementedError,
     ["Dimension mismatch between operands"]),
    ("div mismatch", lambda: A23() / Matrix(3, 3), ValueError, NotImplementedError,
     ["Dimension mismatch between operands"]),
    ("iadd mismatch", lambda: operator.iadd(Matrix([[1, 2, 3]]), A23()), ValueError,
     NotImplementedError, ["(1, 3)", "(2, 3)", "Dimension mismatch between operands"]),
    ("matmul mismatch", lambda: A23() @ A23(), ValueError, NotImplementedError,
     ["(2, 3)", "Dimension mismatch between operands"]),
    ("vecdot mismatch", lambda: A23().vecdot(Matrix(3, 3)), ValueError, NotImplementedError,
     ["Dimension mismatch between operands"]),
    ("fma mismatch", lambda: A23().fma(Matrix(3, 3), 1), ValueError, NotImplementedError,
     ["Dimension mismatch between operands"]),
    ("where mismatch", lambda: Matrix.where(A23(), Matrix(3, 3), 0), ValueError,
     NotImplementedError, ["Dimension mismatch between operands"]),
    ("concat mismatch", lambda: Matrix.concat([A23(), Matrix(2, 2)]), ValueError,
     NotImplementedError, ["Dimension mismatch between operands"]),
    ("region mismatch", lambda: A23().__setitem__(0, [1, 2]), ValueError, NotImplementedError,
     ["(1, 2)", "(1, 3)"]),
    ("cross 4-D", lambda: Matrix([[1, 2, 3, 4]]).cross(Matrix([[1, 2, 3, 4]])), ValueError,
     NotImplementedError, ["cross requires a 2D or 3D vector", "(1, 4)"]),
    ("cross 1-D", lambda: Matrix([[1]]).cross(Matrix([[1]])), ValueError, NotImplementedError,
     ["cross requires a 2D or 3D vector"]),
    ("perpendicular 3-D", lambda: Matrix([[1, 2, 3]]).perpendicular(), ValueError,
     NotImplementedError, ["(1, 3)"]),
    ("angle 4x4", lambda: Matrix(4, 4).angle(), ValueError, NotImplementedError, ["(4, 4)"]),
    ("axis 2", lambda: A23().sum(axis=2), ValueError, NotImplementedError,
     ["axis must be -2, -1, 0, or 1"]),
    ("axis -3", lambda: A23().max(axis=-3), ValueError, NotImplementedError,
     ["axis must be -2, -1, 0, or 1"]),
    ("axis 2 (take)", lambda: A23().take([0], axis=2), ValueError, NotImplementedError,
     ["axis must be -2, -1, 0, or 1"]),
    ("axis 2 (normalize)", lambda: A23().normalize(axis=2), ValueError, NotImplementedError,
     ["axis must be -2, -1, 0, or 1"]),
    ("axis huge", lambda: A23().mean(axis=2**80), ValueError, OverflowError,
     ["axis must be -2, -1, 0, or 1"]),
    ("axis -huge", lambda: A23().argmin(axis=-2**70), ValueError, OverflowError,
     ["axis must be -2, -1, 0, or 1"]),
    ("clip bounds", lambda: A23().clip(3, 1), ValueError, AssertionError, ["lower bound"]),
    ("key of 3", lambda: A23()[0, 0, 0], IndexError, KeyError, ["1 or 2 indices"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_both_exception_types_catch(case) -> None:
    _, call, ours, theirs, words = case
    with pytest.raises(ours) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    try:
        call()
    except theirs as e:  # an except clause written for the reference
        assert isinstance(e, ours)
    else:  # pragma: no cover - the call raises
        pytest.fail("no exception")


@pytest.mark.parametrize("axis", [True, False])
def test_bool_axes_are_a_type_error(axis) -> None:
    with pytest.raises(TypeError, match="axis must be an int or None, not 'bool'"):
        A23().sum(axis=axis)
    with pytest.raises(TypeError):
        A23().take([0], axis=axis)


def test_the_error_classes_are_public() -> None:
    m = matrix_module
    assert issubclass(m.MatrixShapeError, ValueError) and issubclass(m.MatrixShapeError, NotImplementedError)
    assert issubclass(m.MatrixAxisError, ValueError) and issubclass(m.MatrixAxisError, NotImplementedError)
    assert issubclass(m.MatrixAxisOverflowError, OverflowError)
    assert issubclass(m.MatrixValueCountError, TypeError)
    assert issubclass(m.MatrixDimensionError, AssertionError)
    assert issubclass(m.MatrixBoundsError, AssertionError)
    assert issubclass(m.MatrixKeyError, IndexError) and issubclass(m.MatrixKeyError, KeyError)
    with pytest.raises(m.MatrixShapeError):
        A23() + Matrix(3, 3)


# ---- fancy indexing and scatter assignment ---------------------------------------------------

def test_fancy_indexing() -> None:
    m = Matrix([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    assert m[[2, 0]].tolist() == [[6, 7, 8], [0, 1, 2]]
    assert m[[1]].tolist() == [[3, 4, 5]]
    assert m[[-1, -1]].tolist() == [[6, 7, 8], [6, 7, 8]]
    assert m[:, [2, 0]].tolist() == [[2, 0], [5, 3], [8, 6]]
    assert m[[0, 2], 1].tolist() == [[1], [7]]
    assert m[1, [0, 2]].tolist() == [[3, 5]]
    assert m[[2, 1], ::2].tolist() == [[6, 8], [3, 5]]
    assert m[(0, 2), :].tolist() == [[0, 1, 2], [6, 7, 8]]  # a tuple inside the key is a list
    assert m[range(1, 3)].tolist() == [[3, 4, 5], [6, 7, 8]]
    assert m[[0, 2]].tolist() == m.take([0, 2]).tolist() == m.select([0, 2]).tolist()


def test_scatter_assignment() -> None:
    m = Matrix.zeros((3, 3))
    m[[0, 2]] = 1.0
    assert m.tolist() == [[1, 1, 1], [0, 0, 0], [1, 1, 1]]
    m[:, [1]] = [[7], [8], [9]]
    assert m.tolist() == [[1, 7, 1], [0, 8, 0], [1, 9, 1]]
    m[[2, 0], 0] = [5, 6]
    assert m.column_view(0).tolist() == [6, 0, 5]
    m[[1, 1]] = [[1, 2, 3], [4, 5, 6]]  # repeated: the last one wins
    assert m[1].tolist() == [[4, 5, 6]]
    m[[0, 1, 2]] = m[[2, 1, 0]]  # from itself: read first
    assert m.tolist()[0] == [5, 9, 1]
    with pytest.raises(ValueError, match=r"\(1, 2\) and \(2, 3\)"):
        m[[0, 1]] = [1, 2]


# ---- take / put --------------------------------------------------------------------------------

def test_put_and_accumulate() -> None:
    m = Matrix.zeros((3, 2))
    assert m.put([0, 2], [[1, 2], [3, 4]]) is None
    assert m.tolist() == [[1, 2], [0, 0], [3, 4]]
    m.put([1], 9, axis=1)
    assert m.tolist() == [[1, 9], [0, 9], [3, 9]]
    m.put([0, 5], [-1, -2], axis=None)
    assert m.tolist() == [[-1, 9], [0, 9], [3, -2]]
    m.put([0, 0, 2], 1.0, accumulate=True)      # repeated indices add up
    assert m.tolist() == [[1, 11], [0, 9], [4, -1]]
    m.put([0, 0], [10, 20], axis=None)          # without accumulate: the last wins
    assert m[0, 0] == 20
    m.put([1], m[[0]], accumulate=True)
    assert m[1].tolist() == [[20, 20]]
    m.put([0, 1, 2], m, accumulate=True)        # m into itself: read a copy
    assert m.tolist() == [[40, 22], [40, 40], [8, -2]]
    with pytest.raises(IndexError, match="put\\(\\): index 3 is out of range for 3 rows"):
        m.put([3], 0)
    with pytest.raises(ValueError, match="put\\(\\): values do not fit"):
        m.put([0, 1], [1, 2, 3])
    with pytest.raises(TypeError):
        m.put([0.5], 1)
    with pytest.raises(ValueError, match="at least one index"):
        m.put([], 1)


def test_take_and_select_are_both_spelled() -> None:
    m = A23()
    assert m.take([1, 0]).tolist() == m.select([1, 0]).tolist() == [[4, 5, 6], [1, 2, 3]]
    assert m.take([2], axis=1).tolist() == [[3], [6]]
    assert m.take([5, 0], axis=None).tolist() == [[6, 1]]


# ---- comparisons ---------------------------------------------------------------------------------

def test_comparison_masks_and_where() -> None:
    m = A23()
    assert m.less(3).tolist() == [[1, 1, 0], [0, 0, 0]]
    assert m.greater_equal([[1], [5]]).tolist() == [[1, 1, 1], [0, 1, 1]]
    assert m.equal(m).sum() == 6 and m.not_equal(m).sum() == 0
    assert Matrix.where(m.greater(3), m, 0).tolist() == [[0, 0, 0], [4, 5, 6]]


@pytest.mark.parametrize("a,b", [
    ([[1, 2]], [[1, 3]]), ([[1, 2]], [[1, 2]]), ([[2, 0]], [[1, 9]]),
    ([[1, 2]], [[1, 2, 3]]), ([[1, 2], [3, 4]], [[1, 2]]), ([[1, 2, 3]], [[1, 2], [3, 4]]),
    ([[1], [2]], [[1], [2], [0]]), ([[math.nan]], [[math.nan]]), ([[math.nan, 1]], [[0, 2]]),
    ([[0.0]], [[-0.0]]),
])
def test_lexicographic_comparisons_follow_tolist(a, b) -> None:
    x, y = Matrix(a), Matrix(b)
    for op in (operator.lt, operator.le, operator.eq, operator.ne, operator.gt, operator.ge):
        assert op(x, y) is op(x.tolist(), y.tolist()), (op, a, b)
        assert op(y, x) is op(y.tolist(), x.tolist()), (op, b, a)


def test_matrices_are_unhashable_and_compare_only_with_matrices() -> None:
    m = A23()
    with pytest.raises(TypeError, match="unhashable"):
        hash(m)
    with pytest.raises(TypeError):
        {m}
    assert m != m.tolist() and not (m == 1)
    with pytest.raises(TypeError):
        m < [[1, 2, 3]]
    assert sorted([Matrix([[3]]), Matrix([[1]]), Matrix([[2]])])[0].tolist() == [[1]]


# ---- named operations and out= -------------------------------------------------------------------

@pytest.mark.parametrize("name,op", [("add", operator.add), ("subtract", operator.sub),
                                     ("multiply", operator.mul), ("divide", operator.truediv)])
def test_named_operations(name, op) -> None:
    m, n = A23(), Matrix([[2, 4, 8]])
    assert getattr(m, name)(n).tolist() == op(m, n).tolist()
    assert getattr(m, name)(Matrix([[2]])).tolist() == op(m, 2).tolist()  # 1 x 1 is a scalar
    assert getattr(m, name)(3).tolist() == op(m, 3).tolist()
    out = Matrix(2, 3)
    r = getattr(m, name)(n, out=out)
    assert r is out and out.tolist() == op(m, n).tolist()
    expected = op(m, m).tolist()
    assert getattr(m, name)(m, out=m) is m and m.tolist() == expected  # out= may be self
    k = Matrix([[1, 2, 3]])
    expected = op(Matrix(2, 3, 1.0), k).tolist()
    ones = Matrix(2, 3, 1.0)
    assert ones.__getattribute__(name)(k, out=ones).tolist() == expected
    with pytest.raises(ValueError, match=r"out= has shape \(3, 3\) but the result has shape \(2, 3\)"):
        getattr(A23(), name)(n, out=Matrix(3, 3))
    with pytest.raises(NotImplementedError):
        getattr(A23(), name)(n, out=Matrix(3, 3))
    with pytest.raises(TypeError, match="out= must be a Matrix"):
        getattr(A23(), name)(n, out=[0])
    with pytest.raises(TypeError):
        getattr(A23(), name)(n, Matrix(2, 3))  # out= is keyword-only
    with pytest.raises(TypeError):
        getattr(A23(), name)("x")


def test_out_aliasing_the_other_operand() -> None:
    a, b = Matrix([[1, 2], [3, 4]]), Matrix([[10, 20], [30, 40]])
    a.subtract(b, out=b)
    assert b.tolist() == [[-9, -18], [-27, -36]]


@pytest.mark.parametrize("name", ["ceil", "floor", "round", "negate", "abs", "sqrt"])
def test_out_on_unary_methods(name) -> None:
    m = Matrix([[1.5, 2.25], [4.0, 0.5]])
    expected = getattr(m, name)().tolist()
    out = Matrix(2, 2)
    assert getattr(m, name)(out=out) is out and out.tolist() == expected
    assert getattr(m, name)(out=m) is m and m.tolist() == expected
    with pytest.raises(TypeError, match="in_place=True and out= are exclusive"):
        getattr(m, name)(True, out=out)
    with pytest.raises(ValueError, match="out= has shape"):
        getattr(m, name)(out=Matrix(1, 4))
    assert getattr(m, name)(in_place=True, out=None) is m


def test_out_on_clip_and_fma() -> None:
    m = Matrix([[-2, 0.5, 3]])
    out = Matrix(1, 3)
    assert m.clip(0, 1, out=out) is out and out.tolist() == [[0, 0.5, 1]]
    assert m.clip(min=-1, out=m) is m and m.tolist() == [[-1, 0.5, 3]]
    assert m.fma(2, 1, out=out) is out and out.tolist() == [[-1, 2, 7]]
    assert m.fma(m, m, out=m) is m and m.tolist() == [[0, 0.75, 12]]
    with pytest.raises(ValueError, match="out= has shape"):
        m.fma(1, 1, out=Matrix(3, 1))


def test_clip_spellings() -> None:
    m = Matrix([[-2, 0.5, 3]])
    assert m.clip(1).tolist() == [[0, 0.5, 1]]          # 0.9: clip(max) -> [0, max]
    assert m.clip(-1, 1).tolist() == [[-1, 0.5, 1]]     # 0.9: clip(min, max)
    assert m.clip(min=0).tolist() == [[0, 0.5, 3]]      # 0.12 keywords
    assert m.clip(max=0).tolist() == [[-2, 0, 0]]
    assert m.clip(min=-1, max=1).tolist() == [[-1, 0.5, 1]]


def test_scaled_add() -> None:
    m, x = A23(), Matrix([[1, 0, -1]])
    assert m.scaled_add(2, x).tolist() == [[3, 2, 1], [6, 5, 4]]
    assert m.tolist() == [[1, 2, 3], [4, 5, 6]]
    out = Matrix(2, 3)
    assert m.scaled_add(-1, m, out=out) is out and out.tolist() == [[0] * 3] * 2
    assert m.scaled_add(0.5, [[2], [4]], in_place=True) is m
    assert m.tolist() == [[2, 3, 4], [6, 7, 8]]
    assert m.scaled_add(1, m, out=m) is m and m.tolist() == [[4, 6, 8], [12, 14, 16]]
    with pytest.raises(TypeError, match="s must be a number"):
        m.scaled_add("2", x)
    with pytest.raises(TypeError, match="exclusive"):
        m.scaled_add(1, x, True, out=out)
    with pytest.raises(ValueError, match="would change the shape"):
        Matrix([[1, 2, 3]]).scaled_add(1, A23(), in_place=True)
    with pytest.raises(NotImplementedError):
        m.scaled_add(1, Matrix(3, 3))


def test_sqrt_fma_where() -> None:
    m = Matrix([[4, 9], [-1, 0]])
    r = m.sqrt()
    assert r[0].tolist() == [[2, 3]] and math.isnan(r[1, 0])
    assert m.fma(2, 1).tolist() == [[9, 19], [-1, 1]]
    assert Matrix.where([[1, 0]], m, -m).tolist() == [[4, -9], [-1, 0]]
    assert m.sqrt(in_place=True) is m
