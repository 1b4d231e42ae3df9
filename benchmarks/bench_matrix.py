"""bocpy.Matrix against NumPy, operation by operation.

    python benchmarks/bench_matrix.py [--sizes 4 16 256] [--repeat 5]
                                      [--min-time 0.05] [--markdown]

For every operation and square size N (default 4, 16, 256) it times the
bocpy expression and the closest NumPy expression (timeit: the best of
--repeat runs of enough calls to fill --min-time seconds) and prints the
time per call of each and the ratio numpy/bocpy (> 1: bocpy is faster).
--markdown prints the table for docs/matrix.md.

Needs NumPy (not a bocpy dependency): run it with an interpreter that has
it, e.g. ``pip install numpy`` into a separate venv with bocpy installed.
Where NumPy returns a view (transpose, slicing) the NumPy side copies, so
both sides produce a new, independent matrix.
"""

from __future__ import annotations

import argparse
import pickle
import platform
import sys
import timeit
from typing import Any, Callable

try:
    import numpy as np
except ImportError:  # pragma: no cover - documented requirement
    sys.exit("bench_matrix.py needs NumPy: pip install numpy")

from bocpy import Matrix

Case = tuple[str, Callable[[dict[str, Any]], Callable[[], Any]],
             Callable[[dict[str, Any]], Callable[[], Any]]]


def cases() -> list[Case]:
    """(name, bocpy thunk factory, numpy thunk factory); each factory gets
    the fixtures of one size (m, n: matrices; a, b: arrays; ...)."""
    return [
        ("Matrix(list)", lambda f: lambda: Matrix(f["rows"]), lambda f: lambda: np.array(f["rows"])),
        ("zeros", lambda f: lambda: Matrix.zeros(f["shape"]), lambda f: lambda: np.zeros(f["shape"])),
        ("copy", lambda f: f["m"].copy, lambda f: f["a"].copy),
        ("m[i, j]", lambda f: lambda: f["m"][1, 2], lambda f: lambda: f["a"][1, 2]),
        ("m[i] (row copy)", lambda f: lambda: f["m"][1], lambda f: lambda: f["a"][1:2].copy()),
        ("m[i, j] = x", lambda f: lambda: f["m"].__setitem__((1, 2), 3.0),
         lambda f: lambda: f["a"].__setitem__((1, 2), 3.0)),
        ("m + n", lambda f: lambda: f["m"] + f["n"], lambda f: lambda: f["a"] + f["b"]),
        ("m + 2.0", lambda f: lambda: f["m"] + 2.0, lambda f: lambda: f["a"] + 2.0),
        ("m + row (broadcast)", lambda f: lambda: f["m"] + f["row"], lambda f: lambda: f["a"] + f["arow"]),
        ("m + col (broadcast)", lambda f: lambda: f["m"] + f["col"], lambda f: lambda: f["a"] + f["acol"]),
        ("m * n", lambda f: lambda: f["m"] * f["n"], lambda f: lambda: f["a"] * f["b"]),
        ("m / n", lambda f: lambda: f["m"] / f["n"], lambda f: lambda: f["a"] / f["b"]),
        ("m += n", lambda f: lambda: f["m"].__iadd__(f["n"]), lambda f: lambda: f["a"].__iadd__(f["b"])),
        ("m *= -1.0", lambda f: lambda: f["m"].__imul__(-1.0), lambda f: lambda: f["a"].__imul__(-1.0)),
        ("m @ n", lambda f: lambda: f["m"] @ f["n"], lambda f: lambda: f["a"] @ f["b"]),
        ("m.T (copy)", lambda f: lambda: f["m"].T, lambda f: lambda: f["a"].T.copy()),
        ("-m", lambda f: f["m"].__neg__, lambda f: f["a"].__neg__),
        ("abs(m)", lambda f: f["m"].__abs__, lambda f: f["a"].__abs__),
        ("m.sqrt()", lambda f: f["pos"].sqrt, lambda f: lambda: np.sqrt(f["apos"])),
        ("m.round()", lambda f: f["m"].round, lambda f: lambda: np.round(f["a"])),
        ("m.floor()", lambda f: f["m"].floor, lambda f: lambda: np.floor(f["a"])),
        ("m.clip(-1, 1)", lambda f: lambda: f["m"].clip(-1, 1), lambda f: lambda: np.clip(f["a"], -1, 1)),
        ("m.sum()", lambda f: f["m"].sum, lambda f: f["a"].sum),
        ("m.sum(axis=0)", lambda f: lambda: f["m"].sum(0), lambda f: lambda: f["a"].sum(axis=0, keepdims=True)),
        ("m.sum(axis=1)", lambda f: lambda: f["m"].sum(1), lambda f: lambda: f["a"].sum(axis=1, keepdims=True)),
        ("m.mean()", lambda f: f["m"].mean, lambda f: f["a"].mean),
        ("m.max()", lambda f: f["m"].max, lambda f: f["a"].max),
        ("m.argmax()", lambda f: f["m"].argmax, lambda f: f["a"].argmax),
        ("m.magnitude()", lambda f: f["m"].magnitude, lambda f: lambda: np.linalg.norm(f["a"])),
        ("m.vecdot(n)", lambda f: lambda: f["m"].vecdot(f["n"]), lambda f: lambda: np.vdot(f["a"], f["b"])),
        ("m.normalize(axis=1)", lambda f: lambda: f["m"].normalize(1),
         lambda f: lambda: f["a"] / np.linalg.norm(f["a"], axis=1, keepdims=True)),
        ("m.fma(n, m)", lambda f: lambda: f["m"].fma(f["n"], f["m"]), lambda f: lambda: f["a"] * f["b"] + f["a"]),
        ("m.greater(0)", lambda f: lambda: f["m"].greater(0), lambda f: lambda: (f["a"] > 0).astype(float)),
        ("where(mask, m, n)", lambda f: lambda: Matrix.where(f["mask"], f["m"], f["n"]),
         lambda f: lambda: np.where(f["amask"], f["a"], f["b"])),
        ("m.take([0, -1])", lambda f: lambda: f["m"].take([0, -1]),
         lambda f: lambda: np.take(f["a"], [0, -1], axis=0)),
        ("allclose(m, m)", lambda f: lambda: Matrix.allclose(f["m"], f["m"]),
         lambda f: lambda: np.allclose(f["a"], f["a"])),
        ("concat([m, n])", lambda f: lambda: Matrix.concat([f["m"], f["n"]]),
         lambda f: lambda: np.concatenate([f["a"], f["b"]])),
        ("tolist()", lambda f: f["m"].tolist, lambda f: f["a"].tolist),
        ("pickle round trip", lambda f: lambda: pickle.loads(pickle.dumps(f["m"])),
         lambda f: lambda: pickle.loads(pickle.dumps(f["a"]))),
        ("normal(size)", lambda f: lambda: Matrix.normal(size=f["shape"]),
         lambda f: lambda: f["gen"].normal(size=f["shape"])),
    ]


def fixtures(n: int) -> dict[str, Any]:
    gen = np.random.default_rng(0)
    a = gen.uniform(-2, 2, size=(n, n))
    b = gen.uniform(0.5, 2, size=(n, n))  # no zeros: division stays finite
    arow, acol = gen.uniform(size=(1, n)), gen.uniform(size=(n, 1))
    apos = np.abs(a)
    return {
        "shape": (n, n), "rows": a.tolist(), "gen": gen,
        "a": a, "b": b, "arow": arow, "acol": acol, "apos": apos, "amask": a > 0,
        "m": Matrix(a.tolist()), "n": Matrix(b.tolist()), "row": Matrix(arow.tolist()),
        "col": Matrix(acol.tolist()), "pos": Matrix(apos.tolist()),
        "mask": Matrix((a > 0).astype(float).tolist()),
    }


def best_time(fn: Callable[[], Any], repeat: int, min_time: float) -> float:
    """Seconds per call: the best of `repeat` runs of `number` calls."""
    timer = timeit.Timer(fn)
    number = 1
    while True:
        t = timer.timeit(number)
        if t >= min_time:
            break
        number = max(number * 2, int(number * min_time / max(t, 1e-9) * 1.1))
    return min([t] + timer.repeat(repeat - 1, number)) / number


def fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:.2f}" if us < 100 else f"{us:.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 256])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.05)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    results: dict[str, dict[int, tuple[float, float]]] = {}
    for n in args.sizes:
        for name, ours, theirs in cases():
            f = fixtures(n)  # in-place cases change values: start afresh
            t_ours = best_time(ours(f), args.repeat, args.min_time)
            t_np = best_time(theirs(f), args.repeat, args.min_time)
            results.setdefault(name, {})[n] = (t_ours, t_np)
            if not args.markdown:
                print(f"{name:22s} {n:4d}x{n:<4d} bocpy {fmt_us(t_ours):>9s} us  "
                      f"numpy {fmt_us(t_np):>9s} us  numpy/bocpy {t_np / t_ours:6.2f}",
                      flush=True)
    if args.markdown:
        print(f"NumPy {np.__version__}, CPython {platform.python_version()}, "
              f"{platform.machine()}; times in microseconds per call, ratio = "
              f"numpy / bocpy (> 1: bocpy faster).\n")
        head = "| operation | " + " | ".join(
            f"{n}x{n} bocpy | {n}x{n} numpy | ratio" for n in args.sizes) + " |"
        print(head)
        print("|" + "---|" * (1 + 3 * len(args.sizes)))
        for name, per in results.items():
            cells = []
            for n in args.sizes:
                t_ours, t_np = per[n]
                cells += [fmt_us(t_ours), fmt_us(t_np), f"{t_np / t_ours:.2f}"]
            print(f"| `{name}` | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
