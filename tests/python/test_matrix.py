"""bocpy.Matrix (the abi3 plugin bocpy.plugins.matrix): construction,
properties, indexing, operators with broadcasting, matmul, reductions and
the element-wise / vector methods, each checked against a plain-Python
reference (test_matrix_support.py), and against NumPy when it is installed.

Ownership transfer is in test_matrix_transfer.py, bad input in
test_matrix_errors.py."""

from __future__ import annotations

import copy
import math
import operator
import pickle
import random
import shutil
import subprocess

import pytest

import bocpy
import bocpy._abi
from bocpy import Matrix
from bocpy.plugins import matrix as matrix_module

import test_matrix_support as ref
from test_matrix_support import close, rows_of

SHAPES = [(1, 1), (1, 5), (5, 1), (2, 3), (4, 4), (3, 7), (16, 16), (9, 33)]


@pytest.fixture()
def rng() -> random.Random:
    return random.Random(20240611)


def M(rows: list[list[float]]) -> Matrix:
    return Matrix(rows)


# ---- the module ------------------------------------------------------------------------

def test_reexported_abi3_and_registered() -> None:
    assert bocpy.Matrix is Matrix is matrix_module.Matrix
    assert "Matrix" in bocpy.__all__
    assert matrix_module.__file__.endswith(bocpy._abi.plugin_suffix())  # abi3 on 3.12+
    assert ("bocpy.plugins.matrix.Matrix", "shareable") in bocpy._core._registered_types()
    assert Matrix.__module__ == "bocpy.plugins.matrix"
    with pytest.raises(TypeError):
        class Sub(Matrix):  # type: ignore[misc]  # the transport moves exact types only
            pass


def test_only_stable_abi_symbols() -> None:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not available")
    so = matrix_module.__file__
    out = subprocess.run([nm, "-D", "--undefined-only", so], check=True,
                         capture_output=True, text=True).stdout
    syms = [line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()]
    allowed = {"_Py_IncRef", "_Py_DecRef", "_Py_Dealloc", "_Py_NoneStruct",
               "_Py_NotImplementedStruct", "_Py_TrueStruct", "_Py_FalseStruct"}
    assert [s for s in syms if s.startswith("_Py") and s not in allowed] == []
    assert not [s for s in syms if s.startswith("PyUnstable_")]
    assert "PyInterpreterState_Main" not in syms
    exported = subprocess.run([nm, "-D", "--defined-only", so], check=True,
                              capture_output=True, text=True).stdout.split()
    assert [s for s in exported if s.startswith("mx_")] == []  # internals stay hidden


def test_exports_only_the_module_init() -> None:
    """Hidden visibility: the one dynamic symbol the plugin defines is
    PyInit_matrix."""
    nm = shutil.which("nm")
    assert nm is not None, "nm (binutils) is needed to check the exports"
    out = subprocess.run([nm, "-D", "--defined-only", matrix_module.__file__], check=True,
                         capture_output=True, text=True).stdout
    names = sorted(line.split()[-1].split("@")[0] for line in out.splitlines()
                   if line.strip() and line.split()[-2] in "TDBRVW")
    assert names == ["PyInit_matrix"]


def test_source_files_depend_one_way() -> None:
    """plugins/matrix: no include cycle, the leaves include no other plugin
    header, and each .c includes its own header first (the module, the top,
    has none)."""
    import pathlib
    import re
    src = pathlib.Path(__file__).resolve().parents[2] / "plugins" / "matrix"
    assert src.is_dir(), f"the plugin sources are expected next to the tests: {src}"
    inc = re.compile(r'^#include "(matrix_[a-z0-9_]+)\.[ch]"', re.M)
    deps: dict[str, set[str]] = {}
    for path in sorted(src.glob("matrix_*.[ch]")):
        unit = path.stem
        if unit == "matrix_kernels_v3":
            continue  # the kernels compiled a second time (includes the .c)
        deps.setdefault(unit, set()).update(
            d for d in inc.findall(path.read_text()) if d != unit)
    leaves = {"matrix_args", "matrix_buf", "matrix_rng", "matrix_kernels"}
    for leaf in leaves:
        assert deps[leaf] == set(), (leaf, deps[leaf])
    state: dict[str, int] = {}

    def visit(u: str, trail: list[str]) -> None:
        if state.get(u) == 2:
            return
        assert state.get(u) != 1, "include cycle: " + " -> ".join(trail + [u])
        state[u] = 1
        for d in sorted(deps.get(u, ())):
            visit(d, trail + [u])
        state[u] = 2

    for unit in sorted(deps):
        visit(unit, [])
    for path in sorted(src.glob("matrix_*.c")):
        first = inc.search(path.read_text())
        if path.stem not in ("matrix_kernels_v3", "matrix_module"):  # no header of their own
            assert first is not None and first.group(1) == path.stem, path.name


# ---- construction ----------------------------------------------------------------------

def test_construct_zeros_fill_flat_nested() -> None:
    assert Matrix(2, 3).tolist() == [[0.0] * 3] * 2
    assert Matrix(2, 3, None).shape == (2, 3)
    assert Matrix(2, 2, 7).tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert Matrix(2, 2, 2.5).tolist() == [[2.5, 2.5], [2.5, 2.5]]
    assert Matrix(2, 3, [1, 2, 3, 4, 5, 6]).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert Matrix(2, 3, (1, 2, 3, 4, 5, 6)).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert Matrix(2, 2, range(4)).tolist() == [[0, 1], [2, 3]]
    assert Matrix(2, 3, [[1, 2, 3], [4, 5, 6]]).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert Matrix(rows=1, columns=2, values=[True, 3]).tolist() == [[1.0, 3.0]]
    # a Matrix as values: same number of elements, reshaped copy
    src = Matrix([1, 2, 3, 4])
    m = Matrix(2, 2, src)
    assert m.tolist() == [[1, 2], [3, 4]]
    m[0, 0] = 9
    assert src[0, 0] == 1


def test_construct_from_sequences() -> None:
    m = Matrix([[1, 2], [3, 4]])
    assert m.shape == (2, 2) and m.tolist() == [[1, 2], [3, 4]]
    assert Matrix([1, 2, 3]).shape == (1, 3)
    assert Matrix(((1.5,),)).tolist() == [[1.5]]
    assert Matrix([range(3), range(3, 6)]).tolist() == [[0, 1, 2], [3, 4, 5]]
    rows = Matrix([Matrix([1, 2]), [3, 4]])  # vector rows
    assert rows.tolist() == [[1, 2], [3, 4]]
    copied = Matrix(m)
    copied[0, 0] = 100
    assert m[0, 0] == 1


def test_construct_accepts_number_like() -> None:
    from decimal import Decimal
    from fractions import Fraction

    class Idx:
        def __index__(self) -> int:
            return 4

    m = Matrix([Decimal("1.5"), Fraction(1, 4), Idx(), True])
    assert m.tolist() == [[1.5, 0.25, 4.0, 1.0]]


def test_zeros_ones_vector_concat() -> None:
    assert Matrix.zeros((2, 3)).tolist() == [[0.0] * 3] * 2
    assert Matrix.zeros([3, 1]).shape == (3, 1)  # a list works (v0.9.0: SystemError)
    assert Matrix.zeros(2, 2).shape == (2, 2)
    assert Matrix.ones(size=(1, 2)).tolist() == [[1.0, 1.0]]
    v = Matrix.vector([1, 2, 3])
    assert v.shape == (1, 3) and v.tolist() == [[1, 2, 3]]
    c = Matrix.vector([1, 2, 3], as_column=True)
    assert c.shape == (3, 1) and c.tolist() == [[1], [2], [3]]
    assert Matrix.vector(values=(4, 5), as_column=True).shape == (2, 1)
    assert Matrix.vector(c).shape == (1, 3)  # a vector matrix is reoriented
    a, b = Matrix([[1, 2], [3, 4]]), Matrix([[5, 6]])
    assert Matrix.concat([a, b]).tolist() == [[1, 2], [3, 4], [5, 6]]
    assert Matrix.concat([a, [7, 8]], axis=0).tolist() == [[1, 2], [3, 4], [7, 8]]
    assert Matrix.concat((a, Matrix([[9], [10]])), axis=1).tolist() == [[1, 2, 9], [3, 4, 10]]
    assert Matrix.concat([a, a], axis=-1).shape == (2, 4)
    assert Matrix.concat([a, a], axis=-2).shape == (4, 2)
    assert Matrix.concat([[1, 2]]).tolist() == [[1, 2]]


def test_seed_normal_uniform() -> None:
    Matrix.seed(42)
    first = Matrix.normal(size=(4, 5))
    f1 = Matrix.uniform()
    Matrix.seed(42)
    assert Matrix.normal(size=(4, 5)).tolist() == first.tolist()
    assert Matrix.uniform() == f1
    Matrix.seed(43)
    assert Matrix.normal(size=(4, 5)).tolist() != first.tolist()
    Matrix.seed(-1)
    Matrix.seed(2 ** 100)
    Matrix.seed(None)
    assert isinstance(Matrix.normal(), float)
    assert isinstance(Matrix.uniform(2, 3), float)
    # statistics of many samples
    Matrix.seed(7)
    n = Matrix.normal(10.0, 2.0, (200, 200))
    assert abs(n.mean() - 10.0) < 0.05
    sd = math.sqrt(((n - n.mean()) * (n - n.mean())).mean())
    assert abs(sd - 2.0) < 0.05
    u = Matrix.uniform(-3.0, 5.0, size=(200, 200))
    assert u.min() >= -3.0 and u.max() < 5.0
    assert abs(u.mean() - 1.0) < 0.05
    assert Matrix.uniform(2.0, 2.0) == 2.0
    assert Matrix.normal(1.0, 0.0, size=(2, 2)).tolist() == [[1.0, 1.0], [1.0, 1.0]]


# ---- properties --------------------------------------------------------------------------

def test_properties() -> None:
    m = Matrix(2, 3, [1, 2, 3, 4, 5, 6])
    assert (m.rows, m.columns, m.shape, m.size, len(m)) == (2, 3, (2, 3), 6, 2)
    assert m.T.tolist() == [[1, 4], [2, 5], [3, 6]]
    assert m.length == pytest.approx(math.sqrt(91))
    assert m.acquired is True
    assert (m.x, m.y, m.z, m.w) == (1, 2, 3, 4)
    m.x, m.y, m.z, m.w = 10, 20, 30.5, 40
    assert m.tolist() == [[10, 20, 30.5], [40, 5, 6]]
    v = Matrix([1, 2])
    assert v.y == 2
    with pytest.raises(IndexError, match="'z'"):
        v.z
    with pytest.raises(IndexError):
        v.w = 1


# ---- indexing, iteration, formatting ---------------------------------------------------------

def test_getitem() -> None:
    m = Matrix(3, 4, list(range(12)))
    assert m[1].tolist() == [[4, 5, 6, 7]]
    assert m[-1].tolist() == [[8, 9, 10, 11]]
    assert m[1, 2] == 6.0 and m[-1, -1] == 11.0
    assert m[0:2].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert m[::2].tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert m[::-1, 0].tolist() == [[8], [4], [0]]
    assert m[1, 1:3].tolist() == [[5, 6]]
    assert m[:, 3].tolist() == [[3], [7], [11]]
    assert m[1:, ::-2].tolist() == [[7, 5], [11, 9]]
    assert m[:, :].tolist() == m.tolist()
    col = Matrix([[1], [2], [3]])
    assert col[1] == 2.0  # one column: a row is its value
    assert col[1:].tolist() == [[2], [3]]
    sub = m[0:1]
    sub[0, 0] = 99
    assert m[0, 0] == 0  # slices are copies


def test_setitem() -> None:
    m = Matrix.zeros((3, 3))
    m[0, 0] = 1
    m[1] = [1, 2, 3]
    m[2] = 5
    assert m.tolist() == [[1, 0, 0], [1, 2, 3], [5, 5, 5]]
    m[:, 0] = [7, 8, 9]  # a row vector into a column: same length
    assert m[:, 0].tolist() == [[7], [8], [9]]
    m[:, 1] = Matrix([[4], [5], [6]])
    m[0:2, 1:3] = [[1, 2], [3, 4]]
    assert m.tolist() == [[7, 1, 2], [8, 3, 4], [9, 6, 5]]
    m[:, :] = [0, 1, 2]  # a row broadcast over every row of the region
    assert m.tolist() == [[0, 1, 2]] * 3
    m[::2, ::2] = -1
    assert m.tolist() == [[-1, 1, -1], [0, 1, 2], [-1, 1, -1]]
    n = Matrix(3, 1, [1, 2, 3])
    n[::-1] = n  # the source is this very matrix: copied first
    assert n.tolist() == [[3], [2], [1]]
    k = Matrix([[1, 2], [3, 4]])
    k[:, :] = k.T
    assert k.tolist() == [[1, 3], [2, 4]]


def test_iteration_len_repr_str() -> None:
    m = Matrix([[1, 2], [3, 4.5]])
    rows = list(m)
    assert [r.tolist() for r in rows] == [[[1, 2]], [[3, 4.5]]]
    assert list(Matrix([[1], [2]])) == [1.0, 2.0]
    assert len(m) == 2
    assert repr(m) == "Matrix(2, 2, [1, 2, 3, 4.5])"
    assert str(m) == "[[  1   2]\n [  3 4.5]]"
    assert str(Matrix([[1, -2, 3]])) == "[[ 1 -2  3]]"
    assert repr(Matrix([[1e20, float("nan"), -float("inf"), 1 / 3]])) == \
        "Matrix(1, 4, [1e+20, nan, -inf, 0.333333])"
    assert "Matrix" in Matrix.__doc__


def test_tolist_roundtrip(rng) -> None:
    for r, c in SHAPES:
        rows = ref.rand(r, c, rng)
        assert Matrix(rows).tolist() == rows


# ---- operators -----------------------------------------------------------------------------

OPS = [
    (operator.add, lambda x, y: x + y),
    (operator.sub, lambda x, y: x - y),
    (operator.mul, lambda x, y: x * y),
    (operator.truediv, ref.div),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op,fn", OPS)
def test_elementwise_same_shape_scalar_and_reflected(shape, op, fn, rng) -> None:
    r, c = shape
    a, b = ref.rand(r, c, rng), ref.rand(r, c, rng)
    A, B = M(a), M(b)
    assert close(op(A, B), ref.elementwise(a, b, fn))
    assert close(op(A, 2.5), ref.elementwise(a, 2.5, fn))
    assert close(op(-3, A), ref.elementwise(-3, a, fn))
    assert close(op(A, True), ref.elementwise(a, 1.0, fn))
    flat = [x for row in b for x in row]
    if r == 1:
        assert close(op(A, flat), ref.elementwise(a, [flat], fn))  # list = 1 x n
        assert close(op(flat, A), ref.elementwise([flat], a, fn))
    assert close(op(A, b), ref.elementwise(a, b, fn))  # nested list
    assert A.tolist() == a and B.tolist() == b  # operands untouched


@pytest.mark.parametrize("shape", [(3, 4), (1, 4), (4, 1), (5, 5), (7, 33)])
@pytest.mark.parametrize("op,fn", OPS)
def test_broadcasting(shape, op, fn, rng) -> None:
    r, c = shape
    a = ref.rand(r, c, rng)
    row, col, one = ref.rand(1, c, rng), ref.rand(r, 1, rng), ref.rand(1, 1, rng)
    A = M(a)
    for other in (row, col, one):
        assert close(op(A, M(other)), ref.elementwise(a, other, fn))
        assert close(op(M(other), A), ref.elementwise(other, a, fn))
    # outer: 1 x C with R x 1
    assert close(op(M(row), M(col)), ref.elementwise(row, col, fn))
    assert close(op(M(col), M(row)), ref.elementwise(col, row, fn))
    assert op(M(row), M(col)).shape == (r, c)


@pytest.mark.parametrize("op,iop,fn", [
    (operator.add, operator.iadd, lambda x, y: x + y),
    (operator.sub, operator.isub, lambda x, y: x - y),
    (operator.mul, operator.imul, lambda x, y: x * y),
    (operator.truediv, operator.itruediv, ref.div),
])
def test_inplace_operators(op, iop, fn, rng) -> None:
    a = ref.rand(4, 3, rng)
    for other in (ref.rand(4, 3, rng), ref.rand(1, 3, rng), ref.rand(4, 1, rng), 1.75, [0.5, 2, 3]):
        A = M(a)
        before = A
        operand = M(other) if isinstance(other, list) and isinstance(other[0], list) else other
        A = iop(A, operand)
        assert A is before  # mutated, not rebound
        assert close(A, ref.elementwise(a, other, fn))
    # x op= x
    A = M(a)
    A = iop(A, A)
    assert close(A, ref.elementwise(a, a, fn))


def test_division_by_zero_is_ieee() -> None:
    m = Matrix([[1.0, -1.0, 0.0]]) / 0
    assert m[0, 0] == math.inf and m[0, 1] == -math.inf and math.isnan(m[0, 2])
    assert (1 / Matrix([[0.0, -0.0]])).tolist() == [[math.inf, -math.inf]]


def test_unary() -> None:
    m = Matrix([[1, -2], [0, 3.5]])
    assert (-m).tolist() == [[-1, 2], [-0.0, -3.5]]
    assert abs(m).tolist() == [[1, 2], [0, 3.5]]
    p = +m
    assert p.tolist() == m.tolist() and p is not m


@pytest.mark.parametrize("dims", [(1, 1, 1), (1, 4, 1), (4, 1, 4), (2, 3, 4), (4, 4, 4),
                                  (16, 16, 16), (5, 8, 3), (65, 70, 80), (37, 150, 300)])
def test_matmul(dims, rng) -> None:
    r, k, n = dims
    a, b = ref.rand(r, k, rng), ref.rand(k, n, rng)
    assert close(M(a) @ M(b), ref.matmul(a, b), 1e-10)
    assert close(M(a) @ b, ref.matmul(a, b), 1e-10)  # nested list on the right
    assert close(a @ M(b), ref.matmul(a, b), 1e-10)  # and on the left


def test_matmul_lists_and_inplace(rng) -> None:
    m = Matrix([[1, 2], [3, 4]])
    assert (Matrix([[1, 2]]) @ m).tolist() == [[7, 10]]
    assert ([1, 2] @ m).tolist() == [[7, 10]]  # a flat list is 1 x n
    assert (m @ Matrix([[1], [1]])).tolist() == [[3], [7]]
    assert (m * range(1, 3)).tolist() == [[1, 4], [3, 8]]  # any sequence
    before = m
    m @= Matrix([[0, 1], [1, 0]])
    assert m is before and m.tolist() == [[2, 1], [4, 3]]
    m @= m
    assert m.tolist() == [[8, 5], [20, 13]]


# ---- reductions ------------------------------------------------------------------------------

AXES = [None, 0, 1, -1, -2]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("axis", AXES)
def test_reductions(shape, axis, rng) -> None:
    a = ref.rand(*shape, rng)
    A = M(a)
    mean = lambda xs: math.fsum(xs) / len(xs)  # noqa: E731
    assert close(A.sum(axis), ref.reduce(a, math.fsum, axis))
    assert close(A.sum(axis=axis), ref.reduce(a, math.fsum, axis))
    assert close(A.mean(axis), ref.reduce(a, mean, axis))
    assert close(A.min(axis), ref.reduce(a, min, axis))
    assert close(A.max(axis), ref.reduce(a, max, axis))
    assert close(A.magnitude(axis), ref.reduce(a, ref.magnitude, axis))
    assert close(A.magnitude_squared(axis), ref.reduce(a, lambda xs: math.fsum(x * x for x in xs), axis))
    am = A.argmin(axis)
    ax = A.argmax(axis)
    if axis is None:
        assert isinstance(am, int) and isinstance(ax, int)
    assert close(am, ref.reduce(a, lambda xs: ref.first_best(xs, False), axis))
    assert close(ax, ref.reduce(a, lambda xs: ref.first_best(xs, True), axis))
    if axis is None:
        assert isinstance(A.sum(), float)
    else:
        expected_shape = (1, shape[1]) if axis in (0, -2) else (shape[0], 1)
        assert A.sum(axis).shape == expected_shape


def test_reductions_nan_and_ties() -> None:
    nan = math.nan
    m = Matrix([[1, nan, 3], [0, 5, 5]])
    assert math.isnan(m.min()) and math.isnan(m.max()) and math.isnan(m.sum())
    assert close(m.min(axis=0), [[0, nan, 3]])
    assert close(m.max(axis=1), [[nan], [5]])
    t = Matrix([[2, 7, 7, 1, 1]])
    assert t.argmax() == 1 and t.argmin() == 3  # first occurrence
    assert Matrix([[1, nan, 0]]).argmin() == 2  # NaN skipped...
    assert Matrix([[nan, 1, 0]]).argmin() == 0  # ...unless first
    assert Matrix([[3, 1], [1, 3]]).argmin(axis=0).tolist() == [[1, 0]]
    assert Matrix([[3, 1], [1, 3]]).argmax(axis=1).tolist() == [[0], [1]]
    assert Matrix([[3, 4]]).length == 5.0


@pytest.mark.parametrize("n", list(range(1, 20)) + [64, 67])
def test_reductions_every_length_and_nan_position(n, rng) -> None:
    """The kernels keep 8 partial results plus a scalar tail: every length
    and every NaN position (in the vector part or the tail) must agree with
    the plain reference."""
    xs = [rng.uniform(-9, 9) for _ in range(n)]
    m = Matrix([xs])
    assert close(m.sum(), math.fsum(xs), 1e-12)
    assert close(m.magnitude_squared(), math.fsum(x * x for x in xs), 1e-12)
    assert m.min() == min(xs) and m.max() == max(xs)
    assert m.argmin() == xs.index(min(xs)) and m.argmax() == xs.index(max(xs))
    assert close(m.vecdot(m), math.fsum(x * x for x in xs), 1e-12)
    col = Matrix([[x] for x in xs])
    assert col.max(axis=0)[0, 0] == max(xs) and col.argmin(axis=0)[0, 0] == xs.index(min(xs))
    for k in range(n):
        ys = list(xs)
        ys[k] = math.nan
        y = Matrix([ys])
        assert math.isnan(y.min()) and math.isnan(y.max()) and math.isnan(y.sum())
        assert y.argmax() == ref.first_best(ys, True)
        assert y.argmin() == ref.first_best(ys, False)


@pytest.mark.parametrize("axis", AXES)
def test_vecdot(axis, rng) -> None:
    a, b = ref.rand(4, 3, rng), ref.rand(4, 3, rng)
    prod = ref.elementwise(a, b, lambda x, y: x * y)
    assert close(M(a).vecdot(M(b), axis), ref.reduce(prod, math.fsum, axis))
    row = ref.rand(1, 3, rng)
    prod = ref.elementwise(a, row, lambda x, y: x * y)
    assert close(M(a).vecdot(row[0], axis=axis), ref.reduce(prod, math.fsum, axis))
    assert close(M(a).vecdot(2.0, axis), ref.reduce(ref.elementwise(a, 2.0, lambda x, y: x * y),
                                                   math.fsum, axis))


# ---- 2-D / 3-D vectors -------------------------------------------------------------------------

def cross3(u, v):
    return [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]


def cross2(u, v):
    return u[0] * v[1] - u[1] * v[0]


def test_cross(rng) -> None:
    u, v = ref.rand(1, 3, rng)[0], ref.rand(1, 3, rng)[0]
    assert close(Matrix([u]).cross(Matrix([v])), [cross3(u, v)])  # 1 x 3
    col = Matrix([u]).T.cross(Matrix([v]).T)
    assert col.shape == (3, 1) and close(col, [[x] for x in cross3(u, v)])
    assert close(Matrix([u]).cross(v), [cross3(u, v)])  # a list operand
    u2, v2 = u[:2], v[:2]
    z = Matrix([u2]).cross(Matrix([v2]))
    assert isinstance(z, float) and z == pytest.approx(cross2(u2, v2))
    assert Matrix([u2]).T.cross(Matrix([v2]).T) == pytest.approx(cross2(u2, v2))
    # batches along rows (N x 3, N x 2) and columns (3 x N, 2 x N)
    A, B = ref.rand(5, 3, rng), ref.rand(5, 3, rng)
    assert close(M(A).cross(M(B)), [cross3(x, y) for x, y in zip(A, B)])
    assert close(M(A).T.cross(M(B).T), ref.transpose([cross3(x, y) for x, y in zip(A, B)]))
    assert close(M(A).cross(Matrix([v])), [cross3(x, v) for x in A])  # one vector broadcast
    assert close(M(A).cross(Matrix([v]).T), [cross3(x, v) for x in A])
    A2, B2 = ref.rand(5, 2, rng), ref.rand(5, 2, rng)
    assert close(M(A2).cross(M(B2)), [[cross2(x, y)] for x, y in zip(A2, B2)])
    assert close(M(A2).T.cross(M(B2).T), [[cross2(x, y) for x, y in zip(A2, B2)]])
    # square shapes: rows by default, columns with axis=0
    S, T = ref.rand(3, 3, rng), ref.rand(3, 3, rng)
    assert close(M(S).cross(M(T)), [cross3(x, y) for x, y in zip(S, T)])
    assert close(M(S).cross(M(T), axis=1), [cross3(x, y) for x, y in zip(S, T)])
    by_cols = [cross3(x, y) for x, y in zip(ref.transpose(S), ref.transpose(T))]
    assert close(M(S).cross(M(T), axis=0), ref.transpose(by_cols))
    S2, T2 = ref.rand(2, 2, rng), ref.rand(2, 2, rng)
    assert close(M(S2).cross(M(T2)), [[cross2(x, y)] for x, y in zip(S2, T2)])
    assert close(M(S2).cross(M(T2), axis=0),
                 [[cross2(x, y) for x, y in zip(ref.transpose(S2), ref.transpose(T2))]])
    # 2 x 3 / 3 x 2: always batches of 2-D vectors
    W = ref.rand(2, 3, rng)
    X = ref.rand(2, 3, rng)
    assert close(M(W).cross(M(X)), [[cross2(x, y) for x, y in zip(ref.transpose(W), ref.transpose(X))]])
    assert close(M(W).T.cross(M(X).T), [[cross2(x, y)] for x, y in zip(ref.transpose(W), ref.transpose(X))])


def test_perpendicular_angle_normalize(rng) -> None:
    assert Matrix([[3, 4]]).perpendicular().tolist() == [[-4, 3]]
    assert Matrix([[3], [4]]).perpendicular().tolist() == [[-4], [3]]
    B = ref.rand(4, 2, rng)
    assert close(M(B).perpendicular(), [[-y, x] for x, y in B])
    assert close(M(B).T.perpendicular(), ref.transpose([[-y, x] for x, y in B]))
    sq = Matrix([[1, 2], [3, 4]])
    assert sq.perpendicular().tolist() == [[-2, 1], [-4, 3]]
    assert sq.perpendicular(axis=0).tolist() == [[-3, -4], [1, 2]]
    p = sq.copy()
    assert p.perpendicular(in_place=True) is p and p.tolist() == [[-2, 1], [-4, 3]]
    assert Matrix([[1, 1]]).angle() == pytest.approx(math.pi / 4)
    assert close(M(B).angle(), [[math.atan2(y, x)] for x, y in B])
    assert close(M(B).T.angle(), [[math.atan2(y, x) for x, y in B]])
    assert close(sq.angle(axis=0), [[math.atan2(3, 1), math.atan2(4, 2)]])
    # normalize
    a = ref.rand(3, 4, rng)
    total = ref.magnitude([x for row in a for x in row])
    assert close(M(a).normalize(), [[x / total for x in row] for row in a])
    cols = [ref.magnitude(c) for c in zip(*a)]
    assert close(M(a).normalize(axis=0), [[x / cols[j] for j, x in enumerate(row)] for row in a])
    assert close(M(a).normalize(axis=1), [[x / ref.magnitude(row) for x in row] for row in a])
    z = Matrix([[0, 0], [3, 4]])
    assert z.normalize(axis=1).tolist() == [[0, 0], [0.6, 0.8]]  # zero stays zero, no NaN
    assert Matrix.zeros((2, 2)).normalize().tolist() == [[0, 0], [0, 0]]
    n = M(a)
    assert n.normalize(in_place=True) is n and n.length == pytest.approx(1.0)


# ---- element-wise methods ------------------------------------------------------------------------

def test_transpose(rng) -> None:
    for r, c in SHAPES + [(40, 70)]:
        a = ref.rand(r, c, rng)
        assert M(a).transpose().tolist() == ref.transpose(a)
        assert M(a).T.tolist() == ref.transpose(a)
        m = M(a)
        assert m.transpose(in_place=True) is m
        assert m.shape == (c, r) and m.tolist() == ref.transpose(a)


@pytest.mark.parametrize("name,fn", [
    ("ceil", math.ceil), ("floor", math.floor), ("round", round),
    ("negate", operator.neg), ("abs", abs),
])
def test_rounding_and_sign(name, fn, rng) -> None:
    a = ref.rand(5, 6, rng, -10, 10) + [[0.5, 1.5, 2.5, -0.5, -1.5, -2.5]]
    A = M(a)
    expected = [[float(fn(x)) for x in row] for row in a]
    assert getattr(A, name)().tolist() == expected
    assert A.tolist() == a
    assert getattr(A, name)(in_place=True) is A
    assert A.tolist() == expected


def test_round_half_even_keeps_negative_zero() -> None:
    r = Matrix([[0.5, 1.5, 2.5, -0.5, -0.4, 3.5000001]]).round()
    assert r.tolist() == [[0.0, 2.0, 2.0, -0.0, -0.0, 4.0]]
    assert math.copysign(1.0, r[0, 3]) == -1.0 and math.copysign(1.0, r[0, 4]) == -1.0


def test_sqrt(rng) -> None:
    a = ref.rand(4, 4, rng, 0, 100)
    assert close(M(a).sqrt(), [[math.sqrt(x) for x in row] for row in a])
    s = Matrix([[4, -1]]).sqrt()
    assert s[0, 0] == 2.0 and math.isnan(s[0, 1])
    m = Matrix([[9.0]])
    assert m.sqrt(in_place=True) is m and m[0, 0] == 3.0


def test_clip() -> None:
    m = Matrix([[-2, -0.5, 0.5, 2, math.nan]])
    assert close(m.clip(1), [[0, 0, 0.5, 1, math.nan]])  # [0, a]
    assert close(m.clip(-1, 1), [[-1, -0.5, 0.5, 1, math.nan]])
    assert close(m.clip(min_or_maxval=-1, maxval=1), [[-1, -0.5, 0.5, 1, math.nan]])
    assert close(m.clip(min=0), [[0, 0, 0.5, 2, math.nan]])
    assert close(m.clip(max=0), [[-2, -0.5, 0, 0, math.nan]])
    assert close(m.clip(min=-1, max=1), [[-1, -0.5, 0.5, 1, math.nan]])
    assert close(m.clip(1, None), [[0, 0, 0.5, 1, math.nan]])
    assert m[0, 0] == -2  # a copy


def test_copy_is_independent() -> None:
    m = Matrix([[1, 2], [3, 4]])
    for c in (m.copy(), copy.copy(m), copy.deepcopy(m), copy.deepcopy([m])[0]):
        assert c is not m and c.tolist() == m.tolist()
        assert c._buffer_address != m._buffer_address
        c[0, 0] = 100
        assert m[0, 0] == 1


def test_take_select() -> None:
    m = Matrix(3, 3, list(range(9)))
    assert m.take([2, 0, 2]).tolist() == [[6, 7, 8], [0, 1, 2], [6, 7, 8]]
    assert m.select([-1]).tolist() == [[6, 7, 8]]
    assert m.take([1, 1], axis=1).tolist() == [[1, 1], [4, 4], [7, 7]]
    assert m.select((0, 2), 1).tolist() == [[0, 2], [3, 5], [6, 8]]
    assert m.take(range(2), axis=-1).tolist() == [[0, 1], [3, 4], [6, 7]]
    assert m.take([8, 0, -1], axis=None).tolist() == [[8, 0, 8]]
    assert m.take(1).tolist() == [[3, 4, 5]]


def test_fma_where_comparisons(rng) -> None:
    a, b, c = ref.rand(3, 4, rng), ref.rand(3, 4, rng), ref.rand(1, 4, rng)
    assert close(M(a).fma(M(b), M(c)), ref.elementwise(ref.elementwise(a, b, lambda x, y: x * y),
                                                       c, lambda x, y: x + y))
    assert close(M(a).fma(2, 1), ref.elementwise(a, 0, lambda x, _: x * 2 + 1))
    # fused: one rounding
    eps = 2.0 ** -30
    f = Matrix([[1 + eps]]).fma(Matrix([[1 - eps]]), -1.0)
    assert f[0, 0] == -eps * eps
    m = M(a)
    for name, fn in [("less", operator.lt), ("less_equal", operator.le),
                     ("greater", operator.gt), ("greater_equal", operator.ge),
                     ("equal", operator.eq), ("not_equal", operator.ne)]:
        for other in (M(b), 0.0, c[0]):
            o = rows_of(other)
            expected = ref.elementwise(a, o, lambda x, y: 1.0 if fn(x, y) else 0.0)
            assert getattr(m, name)(other).tolist() == expected
    assert Matrix([[1, 2]]).equal(Matrix([[1, 3]])).tolist() == [[1, 0]]
    mask = m.greater(0)
    w = Matrix.where(mask, m, 0)
    assert w.tolist() == [[x if x > 0 else 0.0 for x in row] for row in a]
    assert Matrix.where([[1, 0]], Matrix([[1, 2], [3, 4]]), -1).tolist() == [[1, -1], [3, -1]]
    assert Matrix.where(Matrix([[math.nan, 0]]), 1, 2).tolist() == [[1, 2]]  # NaN is true
    assert m.where(mask, 1, 0).tolist() == mask.tolist()


def test_allclose() -> None:
    a = Matrix([[1.0, 2.0], [3.0, math.inf]])
    assert Matrix.allclose(a, a.copy())
    assert Matrix.allclose(a, a + 1e-9)
    assert not Matrix.allclose(a, a + 1e-3)
    assert Matrix.allclose(a, a + 1e-3, rtol=1e-2)
    assert Matrix.allclose(a, a + 1e-3, atol=1e-2, rtol=0)
    assert not Matrix.allclose(a, Matrix([[1.0, 2.0, 3.0]]))  # shape mismatch -> False
    assert Matrix.allclose([[1, 2]], [1, 2])
    n = Matrix([[math.nan, 1]])
    assert not Matrix.allclose(n, n)
    assert Matrix.allclose(n, n, equal_nan=True)
    assert not Matrix.allclose(Matrix([[math.inf]]), Matrix([[-math.inf]]))
    assert a.allclose(a, a)  # reachable from an instance too


# ---- pickling ------------------------------------------------------------------------------------

def test_pickle_and_deepcopy(rng) -> None:
    a = ref.rand(5, 7, rng)
    m = M(a)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        p = pickle.loads(pickle.dumps(m, proto))
        assert p.tolist() == a and p.shape == (5, 7) and p is not m
    nested = pickle.loads(pickle.dumps({"k": [m, m]}))
    assert nested["k"][0] is nested["k"][1]  # pickle's memo keeps identity
    fn, args = m.__reduce__()
    assert fn is matrix_module._from_buffer
    rows, cols, data, order = args
    assert (rows, cols, len(data), order) == (5, 7, 5 * 7 * 8, __import__("sys").byteorder)
    # the other byte order is swapped on load
    import struct
    other = "big" if order == "little" else "little"
    swapped = b"".join(data[i:i + 8][::-1] for i in range(0, len(data), 8))
    assert matrix_module._from_buffer(rows, cols, swapped, other).tolist() == a
    assert struct.unpack("=d", data[:8])[0] == a[0][0]


# ---- the kernel builds ---------------------------------------------------------------------------

BASELINE_CHECK = """
import pickle
from bocpy import Matrix
from bocpy.plugins import matrix
Matrix.seed(3)
a = Matrix.normal(size=(67, 45))
b = Matrix.normal(size=(45, 71))
c = Matrix.normal(size=(67, 71))
p = a @ b
r = [p, p.fma(c, c), a.sum(axis=0), a.sum(axis=1), a.magnitude(axis=0), a.T,
     abs(a).sqrt(), (a * 3).round(), a.floor(), a.ceil(), a.clip(-0.5, 0.5),
     a.normalize(axis=1), a.normalize(axis=0), a.max(axis=0), a.min(axis=1),
     a.argmax(axis=0), Matrix.where(a.greater(0), a, -a), a / 3,
     a - a.mean(axis=0), a * a.T.T, a.vecdot(a, axis=1),
     Matrix([[a.sum(), a.min(), a.max(), a.argmax(), a.argmin(), a.vecdot(a), a.length]])]
print(matrix._kernels())
print(pickle.dumps([x.__reduce__()[1] for x in r]).hex())
"""


def test_every_kernel_build_gives_the_same_bits() -> None:
    """The x86-64-v3 kernels (AVX2, FMA) and the baseline ones compute
    bit-identical results: no reassociation, no implicit contraction."""
    from conftest import run_python

    chosen = run_python(BASELINE_CHECK).stdout.split()
    base = run_python(BASELINE_CHECK, env={"BOCPY_MATRIX_KERNELS": "base"}).stdout.split()
    assert base[0] == "base" and chosen[0] in ("base", "x86-64-v3")
    assert base[1] == chosen[1]


# ---- NumPy cross-check (only where NumPy is installed) -----------------------------------------------

def test_against_numpy(rng) -> None:
    import numpy as np  # installed by scripts/requirements.txt
    gen = np.random.default_rng(5)
    arr = gen.normal(size=(3, 4))
    # arrays in: the constructor, and the right side of operators
    assert Matrix(arr).tolist() == arr.tolist()
    assert Matrix(3, 4, arr.ravel()).tolist() == arr.tolist()
    assert Matrix([np.float64(1.5), np.int64(2)]).tolist() == [[1.5, 2.0]]
    assert np.allclose((Matrix(arr) + arr).tolist(), arr + arr)
    assert np.allclose((Matrix(arr) @ arr.T).tolist(), arr @ arr.T)
    for r, c in [(1, 1), (4, 4), (16, 16), (7, 31), (64, 65)]:
        a, b = gen.normal(size=(r, c)), gen.normal(size=(r, c))
        A, B = Matrix(a.tolist()), Matrix(b.tolist())
        row, col = gen.normal(size=(1, c)), gen.normal(size=(r, 1))
        for op in (operator.add, operator.sub, operator.mul, operator.truediv):
            assert np.allclose((op(A, B)).tolist(), op(a, b), rtol=1e-13)
            assert np.allclose((op(A, Matrix(row.tolist()))).tolist(), op(a, row), rtol=1e-13)
            assert np.allclose((op(Matrix(col.tolist()), A)).tolist(), op(col, a), rtol=1e-13)
        k = gen.normal(size=(c, r + 3))
        assert np.allclose((A @ Matrix(k.tolist())).tolist(), a @ k, rtol=1e-10, atol=1e-12)
        for axis in (None, 0, 1):
            kd = {} if axis is None else {"keepdims": True}
            for name in ("sum", "mean", "min", "max", "argmin", "argmax"):
                got = getattr(A, name)(axis)
                exp = getattr(a, name)(axis=axis, **kd)
                assert np.allclose(got if axis is None else got.tolist(), exp, rtol=1e-12)
            assert np.allclose(np.asarray(A.magnitude(axis) if axis is None else A.magnitude(axis).tolist()),
                               np.sqrt((a * a).sum(axis=axis, **kd)))
        assert np.allclose(A.T.tolist(), a.T)
        assert np.array_equal(A.round().tolist(), np.round(a))
        assert np.allclose(A.clip(-0.5, 0.5).tolist(), np.clip(a, -0.5, 0.5))
        assert np.allclose(A.normalize(axis=1).tolist(), a / np.linalg.norm(a, axis=1, keepdims=True))
        if c == 3 or c == 2:
            assert np.allclose(A.cross(B).tolist(), np.cross(a, b))
