"""NumPy <-> bocpy.Matrix: conversion throughput, and the tiled blur
pipeline of examples/numpy_pipeline.py against single-threaded NumPy and
multiprocessing.Pool.

    python benchmarks/bench_numpy.py [--size 2048] [--tiles 4] [--repeat 5]
                                     [--markdown] [--quick] [--json]

Conversion (an N x N float64 image, N = --size): the best of --repeat runs
of each, in GB/s of float64 data moved:

* ``memcpy`` baselines: ``np.copyto`` into a preallocated array (a plain
  memcpy) and ``a.copy()`` (allocation + memcpy: what a conversion into a
  new matrix costs at least);
* NumPy -> Matrix: ``Matrix.from_buffer`` of a C-contiguous float64 array
  (one memcpy), of a float32 array (converted in C) and of a strided view
  (every other column);
* Matrix -> NumPy: ``np.asarray(m)`` (a view: no copy, so only its time per
  call is meaningful) and ``np.array(m)`` (a copy).

Pipeline (the 3x3 box blur of examples/numpy_pipeline.py, --tiles x --tiles
tiles with a one-pixel halo), wall-clock seconds, median of --repeat runs:

* ``numpy``: the whole image on one thread;
* ``bocpy``: tiles copied in with ``Matrix.from_buffer``, one behavior per
  tile (``start(worker_count=W)``, W = 1, 2), results viewed with
  ``np.asarray`` and copied into the output;
* ``pool``: ``multiprocessing.Pool(W).map`` over the padded tiles (pickled
  to the worker processes and back); the pool is started and warmed before
  timing.

Every pipeline result is checked against the NumPy one (identical).
--quick runs tiny sizes once (a smoke test); --json prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import time
from typing import Any, Callable

try:
    import numpy as np
except ImportError:  # in a bocpy worker: NumPy cannot load there (docs/numpy.md)
    np = None  # type: ignore[assignment]

from bocpy import Cown, Matrix, start, wait, when


# ---- the blur, three ways -------------------------------------------------------------------

def blur_numpy(padded: "np.ndarray") -> "np.ndarray":
    """3x3 box blur of the interior of ``padded`` (one-pixel border)."""
    h, w = padded.shape[0] - 2, padded.shape[1] - 2
    total = padded[0:h, 0:w].copy()
    for di in range(3):
        for dj in range(3):
            if di or dj:
                total += padded[di:di + h, dj:dj + w]
    return total / 9.0


def blur_tile(tile: Matrix) -> Matrix:
    """The same blur with Matrix arithmetic (on a worker)."""
    h, w = tile.rows - 2, tile.columns - 2
    total = tile[0:h, 0:w]
    for di in range(3):
        for dj in range(3):
            if di or dj:
                total += tile[di:di + h, dj:dj + w]
    return total / 9.0


def tile_origins(n: int, tiles: int) -> list[tuple[int, int]]:
    step = n // tiles
    return [(i * step, j * step) for i in range(tiles) for j in range(tiles)]


def pipeline_bocpy(image: "np.ndarray", tiles: int) -> "np.ndarray":
    n = image.shape[0]
    step = n // tiles
    padded = np.pad(image, 1, mode="edge")
    results = []
    for r0, c0 in tile_origins(n, tiles):
        tile = Cown(Matrix.from_buffer(padded[r0:r0 + step + 2, c0:c0 + step + 2]))

        @when(tile)
        def blurred(tile):
            return blur_tile(tile.value)

        results.append((r0, c0, blurred))
    wait()
    out = np.empty_like(image)
    for r0, c0, result in results:
        out[r0:r0 + step, c0:c0 + step] = np.asarray(result.value)
    return out


def pipeline_pool(pool: Any, image: "np.ndarray", tiles: int) -> "np.ndarray":
    n = image.shape[0]
    step = n // tiles
    padded = np.pad(image, 1, mode="edge")
    origins = tile_origins(n, tiles)
    parts = [padded[r0:r0 + step + 2, c0:c0 + step + 2] for r0, c0 in origins]
    out = np.empty_like(image)
    for (r0, c0), part in zip(origins, pool.map(blur_numpy, parts, chunksize=1)):
        out[r0:r0 + step, c0:c0 + step] = part
    return out


# ---- measuring ------------------------------------------------------------------------------

def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def median(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conversions(n: int, repeat: int) -> list[dict[str, Any]]:
    a = np.random.default_rng(1).random((n, n))
    nbytes = a.nbytes
    dst = np.empty_like(a)
    a32 = a.astype(np.float32)
    strided = np.random.default_rng(2).random((n, 2 * n))[:, ::2]
    m = Matrix.from_buffer(a)
    rows: list[dict[str, Any]] = []

    def add(name: str, fn: Callable[[], Any], copies: bool = True) -> None:
        fn()  # warm (page faults of the first allocation)
        s = best(fn, repeat)
        rows.append({"case": name, "seconds": s,
                     "gb_per_s": nbytes / s / 1e9 if copies else None})

    add("memcpy: np.copyto(dst, a)", lambda: np.copyto(dst, a))
    add("memcpy + alloc: a.copy()", a.copy)
    add("Matrix.from_buffer(a)  (float64, contiguous)", lambda: Matrix.from_buffer(a))
    add("Matrix(a)  (the constructor)", lambda: Matrix(a))
    add("Matrix.from_buffer(a32)  (float32, converted)", lambda: Matrix.from_buffer(a32))
    add("Matrix.from_buffer(a[:, ::2])  (strided view)", lambda: Matrix.from_buffer(strided))
    add("np.array(m)  (copy out)", lambda: np.array(m))
    add("np.asarray(m)  (view, no copy)", lambda: np.asarray(m), copies=False)
    return rows


def pipelines(n: int, tiles: int, repeat: int) -> list[dict[str, Any]]:
    image = np.random.default_rng(3).random((n, n))
    expected = blur_numpy(np.pad(image, 1, mode="edge"))
    rows: list[dict[str, Any]] = []

    def add(name: str, workers: int, fn: Callable[[], "np.ndarray"]) -> None:
        assert np.array_equal(fn(), expected), name  # also the warm-up run
        rows.append({"case": name, "workers": workers, "seconds": median(fn, repeat)})

    add("numpy (one thread)", 1, lambda: blur_numpy(np.pad(image, 1, mode="edge")))
    for w in (1, 2):
        wait()
        start(worker_count=w)
        add("bocpy behaviors", w, lambda: pipeline_bocpy(image, tiles))
        wait()
    ctx = multiprocessing.get_context("spawn")
    for w in (1, 2):
        with ctx.Pool(w) as pool:
            pool.map(abs, range(4 * w))  # started and warmed
            add("multiprocessing.Pool (pickled arrays)", w,
                lambda: pipeline_pool(pool, image, tiles))
    return rows


def main() -> None:
    if np is None:
        raise SystemExit("bench_numpy.py needs NumPy: pip install numpy")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (smoke test)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    if args.quick:
        args.size, args.tiles, args.repeat = 128, 2, 1
    conv = conversions(args.size, args.repeat)
    pipe = pipelines(args.size, args.tiles, args.repeat)
    base = next(r["seconds"] for r in pipe if r["case"].startswith("numpy"))
    for r in pipe:
        r["speedup_vs_numpy"] = base / r["seconds"]
    if args.json:
        print(json.dumps({"size": args.size, "tiles": args.tiles, "conversions": conv,
                          "pipelines": pipe, "check": True}))
        return
    mb = args.size * args.size * 8 / 2**20
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{args.size} x {args.size} float64 ({mb:.0f} MiB), best of {args.repeat}")
    if args.markdown:
        print("\n| conversion | time | GB/s |\n|---|---:|---:|")
        for r in conv:
            gbs = "no copy" if r["gb_per_s"] is None else f"{r['gb_per_s']:.1f}"
            print(f"| `{r['case']}` | {r['seconds'] * 1e3:.3f} ms | {gbs} |")
        print(f"\n| blur pipeline ({args.tiles * args.tiles} tiles) | workers | "
              "seconds (median) | speed-up vs NumPy |\n|---|---:|---:|---:|")
        for r in pipe:
            print(f"| {r['case']} | {r['workers']} | {r['seconds']:.3f} | "
                  f"{r['speedup_vs_numpy']:.2f} |")
        return
    for r in conv:
        gbs = "  no copy" if r["gb_per_s"] is None else f"{r['gb_per_s']:8.1f} GB/s"
        print(f"{r['case']:50s} {r['seconds'] * 1e3:9.3f} ms {gbs}")
    print()
    for r in pipe:
        print(f"{r['case']:40s} W={r['workers']} {r['seconds']:8.3f} s "
              f"x{r['speedup_vs_numpy']:.2f} vs NumPy")


if __name__ == "__main__":
    main()
