"""bocpy.plugins.opencl against bocpy.Matrix on the CPU.

    python benchmarks/bench_opencl.py [--n 1000000] [--size 512] [--repeat 5]
                                      [--dispatch 2000] [--quick] [--json]

Runs on the device opencl.Context() picks (BOCPY_OPENCL_DEVICE selects
another: an index into opencl.devices(), 'gpu', 'cpu' or part of a name).

* saxpy ``y = a*x + y`` over --n elements and a --size x --size matmul
  (a naive kernel, one work item per output element, and a 16 x 16 tiled
  one using local memory): the same computation with Matrix on the CPU
  (``x * a + y``, ``m @ n``) against the device, the device split into
  upload (Matrix -> buffer), kernel (launch + run + finish) and read-back
  (buffer -> Matrix); every device result is checked against the CPU's;
* launch overhead: an empty kernel over one work item, launch + finish;
* dispatch rate: --dispatch pinned behaviors, each launching a small kernel
  on the context in a PinnedCown, driven by pump() on the main thread (each
  behavior ends with the context's release hook waiting for the queue), and
  the same launches in a plain loop without bocpy.

Times are the best of --repeat runs.  --json prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

from bocpy import Matrix, PinnedCown, pump, wait, when
from bocpy.plugins import opencl

SOURCE = """
__kernel void saxpy(const real_t a, __global const real_t *x,
                    __global real_t *y, const int n) {
    const int i = get_global_id(0);
    if (i < n) y[i] = a * x[i] + y[i];
}

__kernel void matmul(__global const real_t *a, __global const real_t *b,
                     __global real_t *c, const int n) {
    const int row = get_global_id(0), col = get_global_id(1);
    real_t acc = 0;
    for (int k = 0; k < n; k++) acc += a[row * n + k] * b[k * n + col];
    c[row * n + col] = acc;
}

#define TILE 16
__kernel void matmul_tiled(__global const real_t *a, __global const real_t *b,
                           __global real_t *c, const int n) {
    __local real_t ta[TILE][TILE], tb[TILE][TILE];
    const int row = get_global_id(0), col = get_global_id(1);
    const int lr = get_local_id(0), lc = get_local_id(1);
    real_t acc = 0;
    for (int t = 0; t < n; t += TILE) {
        ta[lr][lc] = a[row * n + t + lc];
        tb[lr][lc] = b[(t + lr) * n + col];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TILE; k++) acc += ta[lr][k] * tb[k][lc];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    c[row * n + col] = acc;
}

__kernel void empty(__global real_t *x) { }

__kernel void bump(__global real_t *x) {
    x[get_global_id(0)] += 1;
}
"""


def best(repeat: int, fn: Callable[[], Any]) -> float:
    """The best wall time of `repeat` calls of fn, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ms(s: float) -> str:
    return f"{s * 1e3:9.3f} ms"


def bench_saxpy(ctx: opencl.Context, prog: opencl.Program, n: int,
                repeat: int) -> dict[str, Any]:
    Matrix.seed(1)
    x = Matrix.uniform(-1.0, 1.0, (1, n))
    y = Matrix.uniform(-1.0, 1.0, (1, n))
    a = 2.5
    cpu = best(repeat, lambda: x * a + y)
    expected = x * a + y
    k = prog.kernel("saxpy")
    bufs: dict[str, opencl.Buffer] = {}

    def upload() -> None:
        bufs["x"] = ctx.buffer(x)
        bufs["y"] = ctx.buffer(y)
        ctx.finish()

    def kernel() -> None:
        ctx.run(k, n, a, bufs["x"], bufs["y"], n)
        ctx.finish()

    out = Matrix(1, n)
    up = best(repeat, upload)
    run = best(1, kernel)  # runs once more below on fresh data
    bufs["y"].write(y)
    run = min(run, best(1, kernel))
    bufs["y"].write(y)
    kernel()
    down = best(repeat, lambda: bufs["y"].read(out=out))
    error = (out - expected).abs().max()
    return {"n": n, "cpu_s": cpu, "upload_s": up, "kernel_s": run,
            "read_s": down, "device_total_s": up + run + down,
            "max_abs_error": error, "check": error <= tolerance(ctx, 1.0)}


def tolerance(ctx: opencl.Context, scale: float) -> float:
    return (1e-12 if ctx.dtype == "float64" else 1e-5) * scale


def bench_matmul(ctx: opencl.Context, prog: opencl.Program, size: int,
                 repeat: int) -> dict[str, Any]:
    Matrix.seed(2)
    m = Matrix.uniform(-1.0, 1.0, (size, size))
    p = Matrix.uniform(-1.0, 1.0, (size, size))
    cpu = best(repeat, lambda: m @ p)
    expected = m @ p
    bufs: dict[str, opencl.Buffer] = {}

    def upload() -> None:
        bufs["a"] = ctx.buffer(m)
        bufs["b"] = ctx.buffer(p)
        bufs["c"] = ctx.buffer((size, size))
        ctx.finish()

    up = best(repeat, upload)
    out = Matrix(size, size)
    result: dict[str, Any] = {"size": size, "cpu_s": cpu, "upload_s": up}
    for name, local in (("matmul", None), ("matmul_tiled", (16, 16))):
        k = prog.kernel(name)

        def kernel() -> None:
            ctx.run(k, (size, size), bufs["a"], bufs["b"], bufs["c"], size,
                    local_size=local)
            ctx.finish()

        kernel()  # warm up (PoCL finishes compiling on first launch)
        result[f"{name}_kernel_s"] = best(repeat, kernel)
        result["read_s"] = best(repeat, lambda: bufs["c"].read(out=out))
        error = (out - expected).abs().max()
        result[f"{name}_max_abs_error"] = error
        result[f"{name}_check"] = error <= tolerance(ctx, size * 1e3)
    result["check"] = result["matmul_check"] and result["matmul_tiled_check"]
    return result


def bench_launch(ctx: opencl.Context, prog: opencl.Program,
                 repeat: int) -> dict[str, Any]:
    k = prog.kernel("empty")
    b = ctx.buffer(1)

    def launch() -> None:
        ctx.run(k, 1, b)
        ctx.finish()

    launch()
    return {"launch_finish_s": best(max(repeat, 20), launch)}


def bench_dispatch(gpu: PinnedCown, prog: opencl.Program, count: int) -> dict[str, Any]:
    ctx = gpu.value
    kernel = PinnedCown(prog.kernel("bump"))
    buf = PinnedCown(ctx.buffer(64))
    for _ in range(count):
        @when(gpu, kernel, buf)
        def tick(gpu, kernel, buf):
            gpu.value.run(kernel.value, 64, buf.value)

    t0 = time.perf_counter()
    done = 0
    while done < count:
        done += pump().executed
    pumped = time.perf_counter() - t0
    wait()
    ok = buf.value.read().tolist()[0] == [float(count)] * 64
    k, b = kernel.value, buf.value
    t0 = time.perf_counter()
    for _ in range(count):
        ctx.run(k, 64, b)
    ctx.finish()
    plain = time.perf_counter() - t0
    return {"behaviors": count, "pump_s": pumped, "pump_per_s": count / pumped,
            "plain_per_s": count / plain, "check": ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dispatch", type=int, default=2000)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes (a smoke run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.size, args.repeat, args.dispatch = 4096, 32, 1, 50
    if args.size % 16:
        ap.error("--size must be a multiple of 16 (the tiled kernel's tile)")
    if not opencl.devices():
        print(f"no OpenCL device: {opencl.runtime()['error'] or 'none listed'}",
              file=sys.stderr)
        return 2
    gpu = opencl.open()
    ctx = gpu.value
    t0 = time.perf_counter()
    prog = ctx.program(SOURCE)
    build = time.perf_counter() - t0
    dev = ctx.device
    print(f"device: {dev['name']} ({dev['type']}, {dev['platform']}, "
          f"{dev['compute_units']} compute units), dtype {ctx.dtype}")
    print(f"program build: {ms(build)}")
    s = bench_saxpy(ctx, prog, args.n, args.repeat)
    print(f"saxpy n={s['n']}: Matrix on the CPU {ms(s['cpu_s'])}; device: "
          f"upload {ms(s['upload_s'])}, kernel {ms(s['kernel_s'])}, "
          f"read back {ms(s['read_s'])}, total {ms(s['device_total_s'])}; "
          f"max abs error {s['max_abs_error']:.3g}")
    m = bench_matmul(ctx, prog, args.size, args.repeat)
    print(f"matmul {m['size']}x{m['size']}: Matrix on the CPU {ms(m['cpu_s'])}; "
          f"device: upload {ms(m['upload_s'])}, naive kernel "
          f"{ms(m['matmul_kernel_s'])}, tiled kernel {ms(m['matmul_tiled_kernel_s'])}, "
          f"read back {ms(m['read_s'])}; max abs error "
          f"{max(m['matmul_max_abs_error'], m['matmul_tiled_max_abs_error']):.3g}")
    launch = bench_launch(ctx, prog, args.repeat)
    print(f"launch overhead (empty kernel, launch + finish): "
          f"{launch['launch_finish_s'] * 1e6:.1f} us")
    d = bench_dispatch(gpu, prog, args.dispatch)
    print(f"dispatch: {d['behaviors']} pinned behaviors through pump(): "
          f"{d['pump_per_s']:,.0f}/s (launch + finish each); plain loop, no "
          f"bocpy: {d['plain_per_s']:,.0f} launches/s")
    ok = bool(s["check"] and m["check"] and d["check"])
    if args.json:
        print(json.dumps({"device": dev["name"], "dtype": ctx.dtype, "build_s": build,
                          "saxpy": s, "matmul": m, "launch": launch,
                          "dispatch": d, "check": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
