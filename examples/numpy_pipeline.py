"""NumPy in, behaviors in the middle, NumPy out: a 3x3 box blur of a
2048 x 2048 image, one behavior per tile.

NumPy cannot be imported in a worker (an own-GIL sub-interpreter) on
CPython 3.12 / 3.13, so the pattern is (docs/numpy.md):

1. on main, cut the NumPy image into tiles (each with a one-pixel halo) and
   copy each into a ``Matrix`` with ``Matrix.from_buffer`` (one bulk copy in
   C, any strides);
2. put each tile in a ``Cown``; a behavior per tile blurs it with ``Matrix``
   arithmetic on a worker (the tile moves there without a copy);
3. back on main, view each result with ``numpy.asarray`` (no copy) and
   place it in the output array.

The result is compared with the same blur done by NumPy on one thread
(the additions happen in the same order, so the results are identical).

    python examples/numpy_pipeline.py [--size 2048] [--tiles 4] [--time]

--time also prints the wall-clock time of both (not deterministic, so off
by default).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bocpy import Cown, Matrix, wait, when


def blur_numpy(padded: np.ndarray) -> np.ndarray:
    """The 3x3 box blur of the interior of ``padded`` (which has a one-pixel
    border), summing the nine shifted windows in row-major order."""
    h, w = padded.shape[0] - 2, padded.shape[1] - 2
    total = padded[0:h, 0:w].copy()
    for di in range(3):
        for dj in range(3):
            if di or dj:
                total += padded[di:di + h, dj:dj + w]
    return total / 9.0


def blur_tile(tile: Matrix) -> Matrix:
    """The same blur with Matrix arithmetic (runs on a worker)."""
    h, w = tile.rows - 2, tile.columns - 2
    total = tile[0:h, 0:w]
    for di in range(3):
        for dj in range(3):
            if di or dj:
                total += tile[di:di + h, dj:dj + w]
    return total / 9.0


def blur_behaviors(image: np.ndarray, tiles: int) -> np.ndarray:
    """Blur ``image`` with one behavior per tile (tiles x tiles of them)."""
    n = image.shape[0]
    step = n // tiles
    padded = np.pad(image, 1, mode="edge")
    results = {}
    for ti in range(tiles):
        for tj in range(tiles):
            r0, c0 = ti * step, tj * step
            # A strided window of the padded image, copied in C.
            tile = Cown(Matrix.from_buffer(padded[r0:r0 + step + 2, c0:c0 + step + 2]))

            @when(tile)
            def blurred(tile):
                return blur_tile(tile.value)  # the new matrix moves back as the result

            results[(r0, c0)] = blurred
    wait()
    out = np.empty_like(image)
    for (r0, c0), result in results.items():
        if result.exception:
            raise result.value
        out[r0:r0 + step, c0:c0 + step] = np.asarray(result.value)  # a view, then one copy
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tiles", type=int, default=4, help="tiles per side")
    parser.add_argument("--time", action="store_true", help="also print timings")
    args = parser.parse_args()
    if args.size % args.tiles:
        parser.error("--size must be a multiple of --tiles")

    image = np.random.default_rng(2048).random((args.size, args.size))
    t0 = time.perf_counter()
    ours = blur_behaviors(image, args.tiles)
    t1 = time.perf_counter()
    reference = blur_numpy(np.pad(image, 1, mode="edge"))
    t2 = time.perf_counter()

    step = args.size // args.tiles
    print(f"image {args.size} x {args.size}: {args.tiles * args.tiles} tiles of "
          f"{step} x {step}, one behavior each")
    print(f"max difference from single-threaded NumPy: {np.abs(ours - reference).max()}")
    print(f"identical to NumPy: {np.array_equal(ours, reference)}")
    if args.time:
        print(f"behaviors: {t1 - t0:.3f} s, NumPy (one thread): {t2 - t1:.3f} s")


if __name__ == "__main__":
    main()
