"""The coarse-grained GPU pattern: workers prepare, one pinned behavior per
batch runs the device, workers consume.

For each batch:

1. a worker behavior builds the batch's input, a ``Matrix`` of samples;
2. one pinned behavior over (context, kernel, input) uploads the whole
   batch, runs the kernel over every row and reads the result back into a
   ``Matrix`` (one trip to the main thread per batch, not per row);
3. a worker behavior over (input, result) checks the device's row sums
   against ``Matrix`` arithmetic on the CPU and reports.

The context and the compiled kernel live in ``PinnedCown``s: they never
leave the main interpreter, and only pinned behaviors touch them.  Exits 0
when every batch matches, 1 on a mismatch, 2 without an OpenCL device.

    python examples/gpu_pipeline.py [batches]
"""

from __future__ import annotations

import sys

from bocpy import Matrix, PinnedCown, wait, when
from bocpy.plugins import opencl

ROWS, COLS = 256, 512

# out[r] = sum over the row of 3x^2 - 2x + 1
SOURCE = """
__kernel void poly_rowsum(__global const real_t *x, __global real_t *out,
                          const int cols) {
    const int r = get_global_id(0);
    __global const real_t *row = x + (size_t)r * cols;
    real_t acc = 0;
    for (int c = 0; c < cols; c++) {
        const real_t v = row[c];
        acc += 3 * v * v - 2 * v + 1;
    }
    out[r] = acc;
}
"""


def main(batches: int) -> int:
    if not opencl.devices():
        why = opencl.runtime()["error"] or "the OpenCL runtime lists no device"
        print(f"no OpenCL device: {why}", file=sys.stderr)
        return 2
    gpu = opencl.open()  # PinnedCown[Context]
    ctx = gpu.value  # the main thread may use it directly, before behaviors
    kernel = PinnedCown(ctx.program(SOURCE).kernel("poly_rowsum"))
    tolerance = 1e-9 if ctx.dtype == "float64" else 1e-2
    reports = []
    for b in range(batches):

        @when()
        def batch():  # 1. a worker prepares the input
            Matrix.seed(1000 + b)
            return Matrix.uniform(-1.0, 1.0, (ROWS, COLS))

        @when(gpu, kernel, batch)
        def device(gpu, kernel, batch):  # 2. pinned: the main thread
            ctx = gpu.value
            x = ctx.buffer(batch.value)
            out = ctx.buffer((ROWS, 1))
            ctx.run(kernel.value, ROWS, x, out, COLS)
            return out.read()  # a Matrix: moves on to the consumer

        @when(batch, device)
        def check(batch, device):  # 3. a worker consumes
            x = batch.value
            expected = (x * x * 3.0 - x * 2.0 + 1.0).sum(axis=1)
            error = (device.value - expected).abs().max()
            return b, device.value.shape, error <= tolerance

        reports.append(check)
    wait()
    ok = True
    for r in reports:
        if r.exception:
            raise r.value
        b, shape, good = r.value
        ok = ok and good
        print(f"batch {b}: {shape[0]} row sums {'match' if good else 'DIFFER'}")
    print(f"{batches} batches of {ROWS}x{COLS}: "
          f"{'all match the CPU' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8))
