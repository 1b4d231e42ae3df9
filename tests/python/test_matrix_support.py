"""Plain-Python reference implementations for the Matrix tests
(test_matrix*.py).  Holds no tests.

Matrices are lists of rows (lists of floats); shapes follow bocpy.Matrix:
2-D only, a flat sequence is one row.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

Rows = list[list[float]]


def rows_of(values) -> Rows:
    """Nested rows of a Matrix (via tolist), a number (1 x 1) or a list."""
    if hasattr(values, "tolist"):
        return values.tolist()
    if isinstance(values, (int, float)):
        return [[float(values)]]
    if values and isinstance(values[0], (list, tuple)):
        return [[float(x) for x in row] for row in values]
    return [[float(x) for x in values]]


def shape(a: Rows) -> tuple[int, int]:
    return len(a), len(a[0])


def rand(rows: int, cols: int, rng: random.Random, lo: float = -5.0, hi: float = 5.0) -> Rows:
    return [[rng.uniform(lo, hi) for _ in range(cols)] for _ in range(rows)]


def broadcast(a: Rows, b: Rows) -> tuple[int, int]:
    (ar, ac), (br, bc) = shape(a), shape(b)

    def dim(x: int, y: int) -> int:
        if x == y or y == 1:
            return x
        if x == 1:
            return y
        raise ValueError("no broadcast")

    return dim(ar, br), dim(ac, bc)


def at(a: Rows, i: int, j: int) -> float:
    r, c = shape(a)
    return a[0 if r == 1 else i][0 if c == 1 else j]


def elementwise(a, b, fn: Callable[[float, float], float]) -> Rows:
    a, b = rows_of(a), rows_of(b)
    R, C = broadcast(a, b)
    return [[fn(at(a, i, j), at(b, i, j)) for j in range(C)] for i in range(R)]


def div(x: float, y: float) -> float:
    if y == 0.0:
        if x == 0.0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def matmul(a, b) -> Rows:
    a, b = rows_of(a), rows_of(b)
    R, K = shape(a)
    K2, N = shape(b)
    assert K == K2
    bt = list(zip(*b))
    return [[math.fsum(x * y for x, y in zip(row, col)) for col in bt] for row in a]


def transpose(a: Rows) -> Rows:
    return [list(col) for col in zip(*a)]


def reduce(a, fn: Callable[[list[float]], float], axis) -> float | Rows:
    a = rows_of(a)
    if axis is None:
        return fn([x for row in a for x in row])
    if axis in (0, -2):
        return [[fn(list(col)) for col in zip(*a)]]
    return [[fn(row)] for row in a]


def nan_min(xs: Sequence[float]) -> float:
    return math.nan if any(math.isnan(x) for x in xs) else min(xs)


def nan_max(xs: Sequence[float]) -> float:
    return math.nan if any(math.isnan(x) for x in xs) else max(xs)


def first_best(xs: Sequence[float], want_max: bool) -> int:
    """First index of the min / max; a NaN only wins when it comes first."""
    best, v = 0, xs[0]
    for i, x in enumerate(xs):
        if (x > v) if want_max else (x < v):
            best, v = i, x
    return best


def magnitude(xs: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in xs))


def close(got, expected, tol: float = 1e-9) -> bool:
    """Element-wise closeness of a Matrix / float result and a reference."""
    if isinstance(expected, (int, float)):
        if hasattr(got, "tolist"):
            return False
        return _close1(float(got), float(expected), tol)
    g = rows_of(got)
    if shape(g) != shape(expected):
        return False
    return all(_close1(x, y, tol) for gr, er in zip(g, expected) for x, y in zip(gr, er))


def _close1(x: float, y: float, tol: float) -> bool:
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= tol * max(1.0, abs(x), abs(y))
