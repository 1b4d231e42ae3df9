"""a * x + y for 1,000,000 elements on an OpenCL device, checked on the CPU.

The context lives in a ``PinnedCown`` (``opencl.open()``): it never leaves
the main interpreter.  One pinned behavior uploads ``x`` and ``y``, runs the
kernel and reads the result back into a ``bocpy.Matrix``; the main thread
then compares it with the same sum computed by ``Matrix`` on the CPU.

Prints ``max abs error: <value>`` and exits 0; exits 1 when the device's
answer differs from the CPU's, 2 when there is no OpenCL device.  Pick the
device with ``BOCPY_OPENCL_DEVICE`` (an index into ``opencl.devices()``,
``gpu``, ``cpu`` or part of the device's name).

    python examples/gpu_saxpy.py
"""

from __future__ import annotations

import sys

from bocpy import Matrix, wait, when
from bocpy.plugins import opencl

N = 1_000_000
A = 2.5

SOURCE = """
__kernel void saxpy(const real_t a, __global const real_t *x,
                    __global real_t *y, const int n) {
    const int i = get_global_id(0);
    if (i < n) {
        y[i] = a * x[i] + y[i];
    }
}
"""


def main() -> int:
    if not opencl.devices():
        why = opencl.runtime()["error"] or "the OpenCL runtime lists no device"
        print(f"no OpenCL device: {why}", file=sys.stderr)
        return 2
    gpu = opencl.open()  # PinnedCown[Context]
    Matrix.seed(12345)
    x = Matrix.uniform(-1.0, 1.0, (1, N))
    y = Matrix.uniform(-1.0, 1.0, (1, N))
    expected = x * A + y  # the CPU's answer, before x and y move

    @when(gpu)
    def saxpy(gpu):  # a pinned behavior: runs on the main thread
        ctx = gpu.value
        kernel = ctx.program(SOURCE).kernel("saxpy")
        ybuf = ctx.buffer(y)  # Matrix -> device (converted if float32)
        ctx.run(kernel, N, A, x, ybuf, N)  # x goes up as a read-only copy
        return ybuf.read()  # device -> a new Matrix

    wait()
    if saxpy.exception:
        raise saxpy.value
    got = saxpy.value
    error = (got - expected).abs().max()
    # float32 devices round each element to 24 bits
    tolerance = 1e-12 if gpu.value.dtype == "float64" else 1e-5
    print(f"max abs error: {error:.3g}")
    return 0 if error <= tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
