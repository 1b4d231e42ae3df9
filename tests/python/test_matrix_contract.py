"""bocpy.Matrix keeps the reference's contract (issue 30): the same result
for a vector dot product whatever the orientations, and the reference's
exception types and words for cross, perpendicular, angle, vecdot, a bad or
huge axis, and concat / take.  Every error is an instance of our type and of
the reference's, and its message contains the reference's phrase.

The property tests at the end compare vecdot, cross, perpendicular and
angle with NumPy for every orientation of self and other."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np  # installed by scripts/requirements.txt (main interpreter only)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bocpy import Matrix
from bocpy.plugins import matrix as mm

CROSS_WORDS = "cross requires a 2D or 3D vector or Nx2 or 2xN or Nx3 or 3xN matrix"
MISMATCH = "Dimension mismatch between operands"


def seq(rows: int, cols: int, start: float = 1.0) -> Matrix:
    return Matrix(rows, cols, [start + k for k in range(rows * cols)])


def raises_both(call: Callable[[], Any], ours: type, theirs: type, *words: str) -> BaseException:
    """call() raises an instance of both types, whose message holds words."""
    with pytest.raises(ours) as info:
        call()
    assert isinstance(info.value, theirs), type(info.value).__mro__
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    return info.value


# ---- vecdot: a row and a column of the same length ------------------------------------------

def test_vecdot_of_a_row_and_a_column_is_their_dot_product() -> None:
    row, col = Matrix(1, 3, [1, 2, 3]), Matrix(3, 1, [1, 2, 3])
    assert row.vecdot(col) == 14.0
    assert col.vecdot(row) == 14.0
    assert row.vecdot([[1], [2], [3]]) == 14.0  # a nested list is a column too
    assert col.vecdot([1, 2, 3]) == 14.0        # a flat list is a row
    # with an axis, other is read in self's orientation
    assert row.vecdot(col, axis=0).tolist() == [[1.0, 4.0, 9.0]]
    assert row.vecdot(col, axis=1).tolist() == [[14.0]]
    assert col.vecdot(row, axis=0).tolist() == [[14.0]]
    assert col.vecdot(row, axis=-1).tolist() == [[1.0], [4.0], [9.0]]


def test_vecdot_other_shapes_still_broadcast() -> None:
    m = seq(2, 3)
    assert m.vecdot(Matrix(1, 3, [1, 0, 1])) == 1 + 3 + 4 + 6
    assert m.vecdot(Matrix(2, 1, [1, 2])) == 6 + 2 * 15
    assert m.vecdot(2) == 2 * 21
    # a row and a column of different lengths: the outer broadcast (NumPy's rule)
    assert Matrix(1, 3, [1, 2, 3]).vecdot(Matrix(2, 1, [1, 2])) == 6 + 12


@pytest.mark.parametrize("a,b", [((1, 2), (1, 3)), ((3, 2), (1, 3)), ((2, 3), (4, 5)),
                                 ((2, 2), (3, 1)), ((2, 3), (3, 2))])
def test_vecdot_mismatch_names_both_shapes(a, b) -> None:
    raises_both(lambda: seq(*a).vecdot(seq(*b)), ValueError, NotImplementedError,
                f"vecdot: lhs {a[0]}x{a[1]} incompatible with rhs {b[0]}x{b[1]}",
                f"({a[0]}, {a[1]})", f"({b[0]}, {b[1]})", MISMATCH)


# ---- cross -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 4), (4, 1), (1, 1), (1, 5), (4, 4), (4, 5), (5, 4)])
def test_cross_unsupported_shape(shape) -> None:
    e = raises_both(lambda: seq(*shape).cross(seq(*shape)), mm.MatrixShapeError,
                    NotImplementedError, CROSS_WORDS, f"({shape[0]}, {shape[1]})")
    assert isinstance(e, ValueError)


@pytest.mark.parametrize("a,b,kind", [
    ((1, 2), (1, 3), "2D vector"), ((2, 1), (4, 1), "2D vector"),
    ((1, 3), (5, 3), "3D vector"), ((3, 1), (1, 2), "3D vector"),
    ((5, 2), (7, 2), "Nx2 batch"), ((5, 2), (1, 3), "Nx2 batch"),
    ((2, 5), (2, 4), "2xN batch"), ((2, 5), (3, 1), "2xN batch"),
    ((5, 3), (7, 3), "Nx3 batch"), ((5, 3), (3, 3), "Nx3 batch"), ((5, 3), (1, 2), "Nx3 batch"),
    ((3, 5), (3, 4), "3xN batch"), ((3, 5), (5, 3), "3xN batch"),
])
def test_cross_operands_that_do_not_match(a, b, kind) -> None:
    raises_both(lambda: seq(*a).cross(seq(*b)), mm.MatrixShapeError, NotImplementedError,
                f"cross: {kind} lhs {a[0]}x{a[1]} incompatible with rhs {b[0]}x{b[1]}",
                MISMATCH)


# ---- perpendicular and angle --------------------------------------------------------------

VEC2_SHAPES_BAD = [(3, 3), (1, 5), (5, 1), (3, 4), (1, 1), (1, 3), (4, 4)]


@pytest.mark.parametrize("shape", VEC2_SHAPES_BAD)
@pytest.mark.parametrize("in_place", [False, True])
def test_perpendicular_unsupported_shape(shape, in_place) -> None:
    m = seq(*shape)
    before = m.tolist()
    raises_both(lambda: m.perpendicular(in_place=in_place), mm.MatrixShapeError,
                NotImplementedError, "perpendicular requires a 2D vector or Nx2 or 2xN matrix",
                f"({shape[0]}, {shape[1]})")
    assert m.tolist() == before


@pytest.mark.parametrize("shape", VEC2_SHAPES_BAD)
def test_angle_unsupported_shape(shape) -> None:
    raises_both(lambda: seq(*shape).angle(), mm.MatrixShapeError, NotImplementedError,
                "angle requires a 2D vector or Nx2 or 2xN matrix", f"({shape[0]}, {shape[1]})")


# ---- an axis that contradicts the orientation the shape fixes -----------------------------

# (shape, the only axis it accepts besides None, the method's dimension)
FIXED_2D = [((1, 2), 1), ((2, 1), 0), ((5, 2), 1), ((2, 5), 0)]
FIXED_3D = [((1, 3), 1), ((3, 1), 0), ((5, 3), 1), ((3, 5), 0)]


@pytest.mark.parametrize("shape,good", FIXED_2D)
@pytest.mark.parametrize("method", ["perpendicular", "angle"])
def test_vec2_axis_must_agree_with_the_shape(shape, good, method) -> None:
    m = seq(*shape)
    for bad in ((1 - good), (1 - good) - 2):  # e.g. 0 and -2
        raises_both(lambda: getattr(m, method)(axis=bad), mm.MatrixShapeError,
                    NotImplementedError, f"{method} requires a 2D vector or Nx2 or 2xN matrix",
                    "contradicts")
    expected = getattr(m, method)()
    for ok in (good, good - 2):
        got = getattr(m, method)(axis=ok)
        assert (got == expected) if isinstance(got, float) else got.tolist() == expected.tolist()


@pytest.mark.parametrize("shape,good", FIXED_2D + FIXED_3D)
def test_cross_axis_must_agree_with_the_shape(shape, good) -> None:
    m, other = seq(*shape), seq(*shape, start=-2.0)
    raises_both(lambda: m.cross(other, axis=1 - good), mm.MatrixShapeError,
                NotImplementedError, CROSS_WORDS, "contradicts")
    expected = m.cross(other)
    got = m.cross(other, axis=good)
    assert (got == expected) if isinstance(got, float) else got.tolist() == expected.tolist()


def test_square_and_mixed_shapes_take_any_axis() -> None:
    sq2, sq3 = seq(2, 2), seq(3, 3)
    assert sq2.perpendicular(axis=0).tolist() == sq2.T.perpendicular().T.tolist()
    assert sq2.angle(axis=0).tolist() == sq2.T.angle().T.tolist()
    assert sq3.cross(sq3.T, axis=0).tolist() == sq3.T.cross(sq3).T.tolist()
    # for cross, 2 x 3 and 3 x 2 hold 2-D vectors along their side of length 2,
    # whatever the axis (for perpendicular and angle their orientation is fixed)
    for shape in ((2, 3), (3, 2)):
        m, other = seq(*shape), seq(*shape, start=-3.0)
        for axis in (0, 1):
            assert m.cross(other, axis=axis).tolist() == m.cross(other).tolist()
    assert seq(2, 3).cross(seq(2, 3, start=-3.0)).shape == (1, 3)
    assert seq(3, 2).cross(seq(3, 2, start=-3.0)).shape == (3, 1)
    with pytest.raises(mm.MatrixShapeError, match="contradicts"):
        seq(3, 2).perpendicular(axis=0)


# ---- an axis beyond a C int --------------------------------------------------------------

AXIS_CALLS: dict[str, Callable[[Matrix, Any], Any]] = {
    name: (lambda name: lambda m, axis: getattr(m, name)(axis=axis))(name)
    for name in ("normalize", "perpendicular", "angle", "sum", "mean", "magnitude",
                 "magnitude_squared", "min", "max", "argmin", "argmax")
}
AXIS_CALLS.update({
    "vecdot": lambda m, axis: m.vecdot(m, axis=axis),
    "cross": lambda m, axis: m.cross(m, axis=axis),
    "take": lambda m, axis: m.take([0], axis=axis),
    "select": lambda m, axis: m.select([0], axis),
    "put": lambda m, axis: m.put([0], 1.0, axis=axis),
    "concat": lambda m, axis: Matrix.concat([m, m], axis),
})


@pytest.mark.parametrize("axis", [2**31, 2**32, -2**31 - 1, 2**80, -2**100])
@pytest.mark.parametrize("name", sorted(AXIS_CALLS))
def test_axis_beyond_c_int_is_an_overflow_error(name, axis) -> None:
    m = seq(2, 2)
    before = m.tolist()
    e = raises_both(lambda: AXIS_CALLS[name](m, axis), mm.MatrixAxisOverflowError, OverflowError,
                    "out of int range", "axis must be -2, -1, 0, or 1", str(axis))
    assert isinstance(e, ValueError)
    assert m.tolist() == before


@pytest.mark.parametrize("axis", [2**31 - 1, -2**31, 2, -3])
@pytest.mark.parametrize("name", ["sum", "normalize", "vecdot", "cross", "perpendicular"])
def test_axis_within_c_int_is_an_axis_error(name, axis) -> None:
    e = raises_both(lambda: AXIS_CALLS[name](seq(2, 2), axis), mm.MatrixAxisError,
                    NotImplementedError, "axis must be -2, -1, 0, or 1")
    assert not isinstance(e, OverflowError)


# ---- take / select / put / concat --------------------------------------------------------

@pytest.mark.parametrize("name", ["take", "select", "put", "concat"])
@pytest.mark.parametrize("axis", [2, -3, 7])
def test_take_and_concat_bad_axis_is_also_a_key_error(name, axis) -> None:
    e = raises_both(lambda: AXIS_CALLS[name](seq(2, 2), axis), mm.MatrixAxisKeyError, KeyError,
                    "axis must be -2, -1, 0, or 1")
    assert isinstance(e, mm.MatrixAxisError) and isinstance(e, NotImplementedError)


@pytest.mark.parametrize("items,axis", [
    ([(2, 3), (2, 4)], 0), ([(2, 3), (3, 3)], 1), ([(1, 2), (1, 2), (3, 3)], 0)])
def test_concat_mismatch_is_also_an_assertion_error(items, axis) -> None:
    e = raises_both(lambda: Matrix.concat([seq(*s) for s in items], axis), mm.MatrixConcatError,
                    AssertionError, MISMATCH)
    assert isinstance(e, mm.MatrixShapeError) and isinstance(e, ValueError)
    assert isinstance(e, NotImplementedError)


def test_concat_axis_1_reads_a_flat_sequence_as_a_column() -> None:
    a = seq(3, 2)
    assert Matrix.concat([a, [10, 20, 30]], 1).tolist() == [
        [1, 2, 10], [3, 4, 20], [5, 6, 30]]
    assert Matrix.concat([a, np.array([7.0, 8.0, 9.0])], axis=1)[:, 2].tolist() == [[7], [8], [9]]
    assert Matrix.concat([[1, 2], [3, 4]], axis=1).tolist() == [[1, 3], [2, 4]]
    # nested rows keep their shape; axis 0 still reads a flat sequence as a row
    assert Matrix.concat([a, [[7], [8], [9]]], axis=1).shape == (3, 3)
    assert Matrix.concat([a, [7, 8]]).tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    with pytest.raises(mm.MatrixConcatError, match=r"\(1, 2\).*\(2, 1\)"):
        Matrix.concat([Matrix(1, 2, [1, 2]), [3, 4]], axis=1)


def test_the_new_classes_are_public() -> None:
    assert issubclass(mm.MatrixAxisKeyError, mm.MatrixAxisError)
    assert issubclass(mm.MatrixAxisKeyError, KeyError)
    assert issubclass(mm.MatrixConcatError, mm.MatrixShapeError)
    assert issubclass(mm.MatrixConcatError, AssertionError)
    assert issubclass(mm.MatrixAxisOverflowError, ValueError)
    assert issubclass(mm.MatrixAxisOverflowError, OverflowError)


# ---- properties: the same numbers as NumPy for every orientation --------------------------

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False)


def draw_matrix(data: st.DataObject, rows: int, cols: int) -> np.ndarray:
    values = data.draw(st.lists(finite, min_size=rows * cols, max_size=rows * cols))
    return np.array(values, dtype=np.float64).reshape(rows, cols)


def close(got: Any, expected: np.ndarray | float) -> bool:
    if isinstance(got, float):
        return np.ndim(expected) == 0 and math.isclose(got, float(expected), rel_tol=1e-10, abs_tol=1e-8)
    arr = np.array(got.tolist())
    return arr.shape == np.shape(expected) and np.allclose(arr, expected, rtol=1e-10, atol=1e-8)


# A vector is a row (1 x n) or a column (n x 1); a batch of N vectors of n
# components runs along rows (N x n) or along columns (n x N).
ORIENTATIONS = ["row", "column", "rows", "columns"]


def shape_of(orientation: str, n: int, count: int) -> tuple[int, int]:
    return {"row": (1, n), "column": (n, 1), "rows": (count, n), "columns": (n, count)}[orientation]


def vectors(arr: np.ndarray, orientation: str) -> np.ndarray:
    """The vectors of arr, one per row."""
    return arr.T if orientation in ("column", "columns") else arr


def axes_for(orientation: str, shape: tuple[int, int], max_dim: int) -> list[int | None]:
    """The axes the layout accepts: None, and the one that names its
    orientation (any for the shapes that could hold both: squares, and for
    cross 2x3 and 3x2)."""
    r, c = shape
    if r == c or (max_dim == 3 and (r, c) in ((2, 3), (3, 2))):
        return [None] if orientation in ("row", "column") else [None, 0, 1]
    return [None, 0 if orientation in ("column", "columns") else 1]


@SETTINGS
@given(st.data())
def test_vecdot_matches_numpy(data) -> None:
    n = data.draw(st.integers(1, 6), label="n")
    mode = data.draw(st.sampled_from(["row.row", "row.column", "column.row", "column.column",
                                      "matrix.same", "matrix.row", "matrix.column",
                                      "row.matrix", "column.matrix", "matrix.scalar"]))
    rows = data.draw(st.integers(1, 5), label="rows")
    s_kind, o_kind = mode.split(".")
    s_shape = {"row": (1, n), "column": (n, 1), "matrix": (rows, n)}[s_kind]
    o_shape = {"row": (1, n), "column": (rows, 1) if s_kind == "matrix" else (n, 1),
               "same": s_shape, "scalar": (1, 1),
               "matrix": (rows, n) if s_kind == "row" else (n, rows)}[o_kind]
    a, b = draw_matrix(data, *s_shape), draw_matrix(data, *o_shape)
    axis = data.draw(st.sampled_from([None, 0, 1, -1, -2]), label="axis")
    # two vectors of the same length: other read in self's orientation
    both_vectors = 1 in s_shape and 1 in o_shape and a.size == b.size
    b_used = b.reshape(a.shape) if both_vectors else b
    expected = (a * b_used).sum() if axis is None else (a * b_used).sum(axis=axis, keepdims=True)
    assert close(Matrix(a.tolist()).vecdot(Matrix(b.tolist()), axis=axis), expected)


def cross2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The z of the cross product of 2-D vectors (rows), through NumPy's
    3-D cross (its 2-D form is deprecated)."""
    pad = lambda v: np.concatenate([v, np.zeros((v.shape[0], 1))], axis=1)  # noqa: E731
    return np.cross(pad(x), pad(y))[:, 2]


@SETTINGS
@given(st.data())
def test_cross_matches_numpy(data) -> None:
    dim = data.draw(st.sampled_from([2, 3]), label="dim")
    orientation = data.draw(st.sampled_from(ORIENTATIONS), label="self")
    count = data.draw(st.integers(1, 6).filter(
        lambda k: orientation in ("row", "column") or (k != 1 and (dim == 2 or k != 2))),
        label="count")
    shape = shape_of(orientation, dim, count)
    if orientation in ("row", "column"):
        other_orientation = data.draw(st.sampled_from(["row", "column"]), label="other")
        o_shape = shape_of(other_orientation, dim, 1)
    else:
        other_orientation = data.draw(st.sampled_from(["same", "row", "column"]), label="other")
        o_shape = shape if other_orientation == "same" else shape_of(other_orientation, dim, 1)
    axis = data.draw(st.sampled_from(axes_for(orientation, shape, 3)), label="axis")
    if shape[0] == shape[1]:
        orientation = "columns" if axis == 0 else "rows"  # a square holds rows unless axis=0
    a, b = draw_matrix(data, *shape), draw_matrix(data, *o_shape)
    va = vectors(a, orientation)
    vb = vectors(b, orientation) if o_shape == shape and orientation not in ("row", "column") \
        else np.broadcast_to(b.reshape(1, dim), va.shape)
    got = Matrix(a.tolist()).cross(Matrix(b.tolist()), axis=axis)
    if dim == 3:
        out = np.cross(va, vb)
        expected = out.T if orientation in ("column", "columns") else out
    else:
        z = cross2(va, vb)
        expected = (float(z[0]) if orientation in ("row", "column")
                    else z.reshape(1, -1) if orientation == "columns" else z.reshape(-1, 1))
    assert close(got, expected), (shape, o_shape, axis, got, expected)


@SETTINGS
@given(st.data())
def test_perpendicular_and_angle_match_numpy(data) -> None:
    orientation = data.draw(st.sampled_from(ORIENTATIONS), label="self")
    count = data.draw(st.integers(2, 6), label="count")
    shape = shape_of(orientation, 2, count)
    axis = data.draw(st.sampled_from(axes_for(orientation, shape, 2)), label="axis")
    if shape == (2, 2):
        orientation = "columns" if axis == 0 else "rows"
    a = draw_matrix(data, *shape)
    va = vectors(a, orientation)
    rot = np.array([[0.0, 1.0], [-1.0, 0.0]])  # (x, y) @ rot = (-y, x)
    perp = va @ rot
    expected_perp = perp.T if orientation in ("column", "columns") else perp
    m = Matrix(a.tolist())
    assert close(m.perpendicular(axis=axis), expected_perp)
    angles = np.arctan2(va[:, 1], va[:, 0])
    expected_angle = (float(angles[0]) if orientation in ("row", "column")
                      else angles.reshape(1, -1) if orientation == "columns"
                      else angles.reshape(-1, 1))
    assert close(m.angle(axis=axis), expected_angle)
    m.perpendicular(axis=axis, in_place=True)
    assert close(m, expected_perp)
