"""bocpy.plugins.opencl against PoCL (a CPU OpenCL implementation).

One Context and one compiled program serve the whole module (PoCL compiles
slowly the first time); tests that need a fresh or closed context open their
own.  Every bad input of the plugin's contract has a test here, and each
checks that the context is still usable afterwards."""

from __future__ import annotations

import gc
import pickle
import re
import threading

import pytest

import bocpy
import bocpy._abi
from bocpy import Cown, Matrix, PinnedCown, pump, quiesce, wait, when
from bocpy.plugins import opencl

from test_abi_support import run_script

SOURCE = """
__kernel void saxpy(const real_t a, __global const real_t *x,
                    __global real_t *y, const int n) {
    const int i = get_global_id(0);
    if (i < n) y[i] = a * x[i] + y[i];
}
__kernel void fill_f(__global float *out, const float v) {
    out[get_global_id(0)] = v;
}
__kernel void scale_i(__global int *out, const int k) {
    const int i = get_global_id(0);
    out[i] = out[i] * k + i;
}
__kernel void typed(const uchar a, const short b, const uint c,
                    const long d, const ulong e, __global long *out) {
    out[0] = a; out[1] = b; out[2] = c; out[3] = d; out[4] = (long)e;
}
__kernel void with_local(__local float *scratch, __global float *out) {
    out[0] = 0;
}
__kernel void grid(__global real_t *out, const int cols) {
    const int r = get_global_id(0), c = get_global_id(1);
    out[r * cols + c] = r * 100 + c;
}
"""


@pytest.fixture(scope="module")
def ctx():
    c = opencl.Context()
    yield c
    c.close()


@pytest.fixture(scope="module")
def prog(ctx):
    return ctx.program(SOURCE)


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


def saxpy_works(ctx, prog) -> None:
    """The context still runs kernels correctly."""
    k = prog.kernel("saxpy")
    y = ctx.buffer(Matrix(1, 4, [1.0, 1.0, 1.0, 1.0]))
    ctx.run(k, 4, 2.0, Matrix(1, 4, [0.0, 1.0, 2.0, 3.0]), y, 4)
    assert y.read().tolist() == [[1.0, 3.0, 5.0, 7.0]]


# ---- module and devices ------------------------------------------------------------------

def test_module_is_abi3_and_types_are_pinned() -> None:
    assert opencl.__file__.endswith(bocpy._abi.plugin_suffix())  # abi3 on 3.12+
    registered = set(bocpy._core._registered_types())
    for name in ("Context", "Program", "Kernel", "Buffer"):
        assert (f"bocpy.plugins.opencl.{name}", "pinned") in registered
    assert issubclass(opencl.BuildError, opencl.Error)
    assert issubclass(opencl.NoDeviceError, opencl.Error)
    assert issubclass(opencl.Error, RuntimeError)


def test_devices_lists_pocl() -> None:
    devs = opencl.devices()
    assert devs, opencl.runtime()
    d = devs[0]
    assert set(d) >= {"index", "platform", "name", "vendor", "type", "memory",
                      "fp64", "max_alloc", "compute_units", "version"}
    assert any("Portable Computing Language" in x["platform"] for x in devs)
    assert d["index"] == 0 and d["type"] in ("gpu", "cpu", "accelerator", "other")
    assert isinstance(d["fp64"], bool) and d["memory"] > 0
    assert opencl.runtime()["loaded"] is True and opencl.runtime()["error"] == ""


def test_no_runtime_imports_and_lists_nothing() -> None:
    res = run_script(
        "from bocpy.plugins import opencl\n"
        "print(opencl.devices(), opencl.runtime()['loaded'])\n"
        "try:\n"
        "    opencl.open()\n"
        "except opencl.NoDeviceError as e:\n"
        "    print('NoDeviceError:', e)\n",
        env={"BOCPY_OPENCL_LIBRARY": "/nonexistent/libOpenCL.so.1"})
    assert res.returncode == 0, res.stderr
    assert "[] False" in res.stdout
    assert "NoDeviceError: no OpenCL runtime" in res.stdout
    assert "BOCPY_OPENCL_LIBRARY" in res.stdout


def test_no_device(tmp_path) -> None:
    # The ICD loader finds no driver in an empty vendors directory.
    res = run_script(
        "from bocpy.plugins import opencl\n"
        "print(opencl.devices(), opencl.runtime()['loaded'])\n"
        "try:\n"
        "    opencl.Context()\n"
        "except opencl.NoDeviceError as e:\n"
        "    print('NoDeviceError:', e)\n",
        env={"OCL_ICD_VENDORS": str(tmp_path), "OCL_ICD_FILENAMES": ""})
    assert res.returncode == 0, res.stderr
    assert "[] True" in res.stdout
    assert "NoDeviceError: no OpenCL device" in res.stdout
    assert "pocl-opencl-icd" in res.stdout


def test_device_selection(monkeypatch) -> None:
    first = opencl.devices()[0]
    for sel in (0, "0", first["type"], first["name"][:6].upper(), first["platform"][:8]):
        c = opencl.Context(sel)
        assert c.device["name"] == first["name"]
        c.close()
    monkeypatch.setenv(opencl.DEVICE_ENV, first["type"])
    c = opencl.Context()
    assert c.device["index"] == 0
    c.close()
    monkeypatch.setenv(opencl.DEVICE_ENV, "no-such-device-xyz")
    with pytest.raises(opencl.NoDeviceError, match="BOCPY_OPENCL_DEVICE='no-such-device-xyz'"):
        opencl.Context()
    c = opencl.Context(0)  # an argument wins over the variable
    c.close()


@pytest.mark.parametrize("sel", [99, -1, "99", "no-such-device-xyz", "accelerator-xyz"])
def test_no_matching_device(sel) -> None:
    with pytest.raises(opencl.NoDeviceError, match="no OpenCL device matches") as info:
        opencl.Context(sel)
    first = opencl.devices()[0]
    assert f"the devices are: ['0: {first['name']} ({first['type']}, " in str(info.value)


def test_bad_device_and_dtype_arguments() -> None:
    with pytest.raises(TypeError, match="device must be None, an index"):
        opencl.Context(1.5)
    with pytest.raises(ValueError, match="unknown dtype"):
        opencl.Context(dtype="float16")
    with pytest.raises(ValueError, match="'float64' or 'float32'"):
        opencl.Context(dtype="int32")
    with pytest.raises(TypeError, match="dtype must be a str"):
        opencl.Context(dtype=4)


# ---- kernels, buffers, Matrix data ------------------------------------------------------

def test_saxpy_float64_with_matrix_and_buffer_arguments(ctx, prog) -> None:
    assert ctx.dtype == ("float64" if ctx.fp64 else "float32")
    n = 1000
    x = Matrix(1, n, [float(i) for i in range(n)])
    y = ctx.buffer(Matrix(1, n, 0.5))
    assert (y.shape, y.size, y.dtype) == ((1, n), n, ctx.dtype)
    k = prog.kernel("saxpy")
    assert k.num_args == 4 and k.name == "saxpy"
    assert [name for name, _ in k.arg_types] == ["a", "x", "y", "n"]
    ctx.run(k, n, 3.0, x, y, n)
    out = Matrix(1, n)
    assert y.read(out=out) is out
    assert out.tolist()[0] == [3.0 * i + 0.5 for i in range(n)]
    assert y.read().tolist() == out.tolist()  # a new Matrix each time
    assert x.acquired  # the Matrix argument was only copied


def test_float32_context_converts(prog) -> None:
    c = opencl.Context(dtype="float32")
    assert c.dtype == "float32"
    p = c.program(SOURCE)  # real_t is float here
    x = Matrix(2, 3, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = c.buffer(Matrix(2, 3, 1.0))
    assert y.dtype == "float32" and y.nbytes == 24
    c.run(p.kernel("saxpy"), 6, 2.0, x, y, 6)
    got = y.read()
    assert got.shape == (2, 3)
    expected = [2.0 * v + 1.0 for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    assert all(abs(a - b) < 1e-6 for a, b in zip(got.tolist()[0] + got.tolist()[1], expected))
    assert got.tolist()[0][0] != 2.0 * 0.1 + 1.0  # really rounded to float32
    c.close()


def test_buffers_by_size_are_zeroed_and_typed(ctx, prog) -> None:
    b = ctx.buffer(5, dtype="int32")
    assert (b.shape, b.dtype, b.nbytes) == ((1, 5), "int32", 20)
    ctx.run(prog.kernel("scale_i"), 5, b, 7)
    assert b.read().tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0]]
    b.write(Matrix(1, 5, [1, 2, 3, 4, 5]))
    ctx.run(prog.kernel("scale_i"), 5, b, 10)
    assert b.read().tolist() == [[10.0, 21.0, 32.0, 43.0, 54.0]]
    f = ctx.buffer((2, 2), dtype="float32")
    ctx.run(prog.kernel("fill_f"), 4, f, 1.5)
    assert f.read().tolist() == [[1.5, 1.5], [1.5, 1.5]]
    z = ctx.buffer((3, 2))
    assert z.read().tolist() == [[0.0] * 2] * 3


def test_two_dimensional_launch_and_local_size(ctx, prog) -> None:
    out = ctx.buffer((4, 8))
    ctx.run(prog.kernel("grid"), (4, 8), out, 8, local_size=(2, 4))
    assert out.read().tolist() == [[r * 100.0 + c for c in range(8)] for r in range(4)]


def test_scalar_types_are_converted_exactly(ctx, prog) -> None:
    out = ctx.buffer(5, dtype="int64")
    ctx.run(prog.kernel("typed"), 1, 255, -32768, 4294967295, -(2**62), 2**62, out)
    assert out.read().tolist() == [[255.0, -32768.0, 4294967295.0, -(2.0**62), 2.0**62]]


def test_matrix_exports_its_buffer_while_the_kernel_reads_it(ctx, prog) -> None:
    m = Matrix(1, 3, [1.0, 2.0, 3.0])
    b = ctx.buffer(m)
    m[0, 0] = 100.0  # the buffer is a copy
    assert b.read().tolist() == [[1.0, 2.0, 3.0]]
    b.write(m)
    assert b.read().tolist() == [[100.0, 2.0, 3.0]]


# ---- bad input: each leaves the context usable ----------------------------------------

def test_build_error_carries_the_log(ctx, prog) -> None:
    with pytest.raises(opencl.BuildError) as info:
        ctx.program("__kernel void broken(__global float *x) { x[0] = undefined_name; }")
    e = info.value
    assert "undefined_name" in e.log and "did not compile" in str(e)
    assert "undefined_name" in str(e)
    assert e.code == -11  # CL_BUILD_PROGRAM_FAILURE
    with pytest.raises(ValueError, match="source is empty"):
        ctx.program("")
    with pytest.raises(TypeError):
        ctx.program(b"__kernel void f() {}")
    saxpy_works(ctx, prog)


def test_unknown_kernel_name(ctx, prog) -> None:
    with pytest.raises(ValueError, match=r"no kernel named 'nope'; its kernels are \[.*'saxpy'"):
        prog.kernel("nope")
    with pytest.raises(TypeError):
        prog.kernel(3)
    assert "saxpy" in prog.kernel_names
    saxpy_works(ctx, prog)


def test_wrong_argument_count(ctx, prog) -> None:
    k = prog.kernel("saxpy")
    y = ctx.buffer(4)
    with pytest.raises(TypeError, match=r"kernel 'saxpy' takes 4 arguments \(3 given\)"):
        ctx.run(k, 4, 2.0, y, y)
    with pytest.raises(TypeError, match=r"takes 4 arguments \(5 given\)"):
        ctx.run(k, 4, 2.0, y, y, 4, 5)
    with pytest.raises(TypeError, match="needs a kernel and a global size"):
        ctx.run(k)
    with pytest.raises(TypeError, match="first argument must be a Kernel"):
        ctx.run("saxpy", 4)
    with pytest.raises(TypeError, match="unexpected keyword argument 'global_size'"):
        ctx.run(k, 4, 2.0, y, y, 4, global_size=4)
    saxpy_works(ctx, prog)


def test_wrong_argument_types(ctx, prog) -> None:
    k = prog.kernel("saxpy")
    y = ctx.buffer(4)
    x = ctx.buffer(4)
    with pytest.raises(TypeError, match=r"argument 0 \('a', a 'real_t'\) of kernel 'saxpy' needs a number, not str"):
        ctx.run(k, 4, "2", x, y, 4)
    with pytest.raises(TypeError, match="argument 0 .* needs a number, not Buffer"):
        ctx.run(k, 4, y, x, y, 4)
    with pytest.raises(TypeError, match="argument 1 .* needs a Buffer or a bocpy.Matrix, not float"):
        ctx.run(k, 4, 2.0, 1.0, y, 4)
    with pytest.raises(TypeError, match="argument 2 .* needs a Buffer or a bocpy.Matrix, not list"):
        ctx.run(k, 4, 2.0, x, [1, 2], 4)
    with pytest.raises(TypeError, match="argument 3 .* needs an int, not float"):
        ctx.run(k, 4, 2.0, x, y, 4.0)
    with pytest.raises(OverflowError, match="argument 3 .* does not fit in a int32"):
        ctx.run(k, 4, 2.0, x, y, 2**31)
    with pytest.raises(TypeError, match="argument 3 .* needs a number, not Matrix"):
        ctx.run(k, 4, 2.0, x, y, Matrix(1, 1))
    f32 = ctx.buffer(4, dtype="float32")
    if ctx.dtype == "float64":
        with pytest.raises(TypeError, match="points to float64 but the buffer holds float32"):
            ctx.run(k, 4, 2.0, x, f32, 4)
    with pytest.raises(TypeError, match="a Matrix can only be passed to a float or double pointer"):
        ctx.run(prog.kernel("scale_i"), 4, Matrix(1, 4), 2)
    with pytest.raises(TypeError, match="is __local memory"):
        ctx.run(prog.kernel("with_local"), 1, 16, f32)
    typed = prog.kernel("typed")
    out = ctx.buffer(5, dtype="int64")
    for bad, err in ((256, OverflowError), (-1, OverflowError)):
        with pytest.raises(err, match="does not fit in a uint8"):
            ctx.run(typed, 1, bad, 0, 0, 0, 0, out)
    with pytest.raises(OverflowError, match="does not fit in a uint64"):
        ctx.run(typed, 1, 0, 0, 0, 0, -1, out)
    with pytest.raises(OverflowError, match="does not fit in a int64"):
        ctx.run(typed, 1, 0, 0, 0, 2**63, 0, out)
    saxpy_works(ctx, prog)


@pytest.mark.parametrize("size, err, msg", [
    (0, ValueError, "global_size must be at least 1, got 0"),
    (-3, ValueError, "global_size must be at least 1, got -3"),
    (-(2**70), ValueError, "global_size must be at least 1"),
    (2**70, OverflowError, "global_size 1180591620717411303424 is too large"),
    ((4, 0), ValueError, "global_size must be at least 1, got 0"),
    ((2**40, 2**40), OverflowError, "more work items than fit in a size_t"),
    ((1, 1, 1, 1), ValueError, "1 to 3 dimensions, got 4"),
    ((), ValueError, "1 to 3 dimensions, got 0"),
    ("4", TypeError, "global_size must be an int or a tuple"),
    (4.0, TypeError, "global_size must be an int or a tuple"),
    ((4, 2.0), TypeError, "global_size must be an int, not float"),
    (True, TypeError, "global_size must be an int, not bool"),
])
def test_bad_global_sizes(ctx, prog, size, err, msg) -> None:
    out = ctx.buffer(4)
    with pytest.raises(err, match=re.escape(msg)):
        ctx.run(prog.kernel("fill_f"), size, ctx.buffer(4, dtype="float32"), 1.0)
    del out
    saxpy_works(ctx, prog)


def test_bad_local_sizes(ctx, prog) -> None:
    k = prog.kernel("grid")
    out = ctx.buffer((4, 8))
    with pytest.raises(ValueError, match="must divide global_size"):
        ctx.run(k, (4, 8), out, 8, local_size=(3, 4))
    with pytest.raises(ValueError, match="local_size has 1 dimensions but global_size has 2"):
        ctx.run(k, (4, 8), out, 8, local_size=4)
    with pytest.raises(ValueError, match="local_size must be at least 1"):
        ctx.run(k, (4, 8), out, 8, local_size=(0, 4))
    big = k.work_group_size * 2
    with pytest.raises(ValueError, match="allows at most"):
        ctx.run(k, (big, 1), out, 8, local_size=(big, 1))
    saxpy_works(ctx, prog)


@pytest.mark.parametrize("source, err, msg", [
    (0, ValueError, "buffer size must be at least 1, got 0"),
    (-5, ValueError, "buffer size must be at least 1, got -5"),
    (2**70, OverflowError, "is too large"),
    ((0, 4), ValueError, "buffer rows must be at least 1"),
    ((4, -1), ValueError, "buffer columns must be at least 1"),
    ((2**40, 2**40), OverflowError, "do not fit in a size_t"),
    (2**62, OverflowError, "overflow a size_t"),
    (2**40, ValueError, "larger than the device's largest allocation"),
    ((1, 2, 3), ValueError, "a shape is a (rows, columns) tuple"),
    ("big", TypeError, "needs a bocpy.Matrix, a number of elements or a (rows, columns) tuple, not str"),
    ([1.0, 2.0], TypeError, "not list"),
])
def test_bad_buffer_sizes(ctx, prog, source, err, msg) -> None:
    with pytest.raises(err, match=re.escape(msg)):
        ctx.buffer(source)
    saxpy_works(ctx, prog)


def test_bad_buffer_dtype(ctx, prog) -> None:
    with pytest.raises(ValueError, match="unknown dtype 'complex'"):
        ctx.buffer(4, dtype="complex")
    with pytest.raises(TypeError, match="dtype must be a str"):
        ctx.buffer(4, dtype=float)
    saxpy_works(ctx, prog)


def test_integer_buffers_refuse_values_they_cannot_hold(ctx, prog) -> None:
    with pytest.raises(ValueError, match=r"element 1 of the Matrix \(3000000000.0\) does not fit in int32"):
        ctx.buffer(Matrix(1, 3, [1.0, 3e9, 2.0]), dtype="int32")
    b = ctx.buffer(3, dtype="int64")
    with pytest.raises(ValueError, match=r"element 2 of the Matrix \(nan\) does not fit in int64"):
        b.write(Matrix(1, 3, [1.0, 2.0, float("nan")]))
    b.write(Matrix(1, 3, [1.9, -1.9, 2.0**40]))  # truncated toward zero
    assert b.read().tolist() == [[1.0, -1.0, 2.0**40]]
    f = ctx.buffer(Matrix(1, 2, [1e300, -1e300]), dtype="float32")
    assert f.read().tolist() == [[float("inf"), float("-inf")]]
    saxpy_works(ctx, prog)


def test_read_and_write_need_the_buffers_shape(ctx, prog) -> None:
    b = ctx.buffer((2, 3))
    with pytest.raises(ValueError, match=r"cannot read a buffer of shape \(2, 3\) into a Matrix of shape \(3, 2\)"):
        b.read(out=Matrix(3, 2))
    with pytest.raises(ValueError, match=r"shape \(2, 3\) into a Matrix of shape \(1, 6\)"):
        b.read(Matrix(1, 6))
    with pytest.raises(ValueError, match=r"cannot write a buffer of shape \(2, 3\) from a Matrix of shape \(2, 2\)"):
        b.write(Matrix(2, 2))
    with pytest.raises(TypeError, match="out must be a bocpy.Matrix"):
        b.read(out=[0.0] * 6)
    with pytest.raises(TypeError, match="source must be a bocpy.Matrix"):
        b.write(b"123456")
    saxpy_works(ctx, prog)


def test_a_moved_matrix_is_refused(ctx, prog) -> None:
    m = Matrix(1, 4, 1.0)
    holder = Cown(m)  # m moved into the cown
    with pytest.raises(RuntimeError, match="does not own this matrix"):
        ctx.buffer(m)
    with pytest.raises(RuntimeError, match="does not own this matrix"):
        ctx.buffer(4).read(out=m)
    del holder
    saxpy_works(ctx, prog)


def test_buffers_and_kernels_belong_to_their_context(ctx, prog) -> None:
    other = opencl.Context()
    foreign = other.buffer(4)
    k = prog.kernel("saxpy")
    with pytest.raises(ValueError, match="got a Buffer of another OpenCL context"):
        ctx.run(k, 4, 2.0, foreign, ctx.buffer(4), 4)
    with pytest.raises(ValueError, match="kernel 'saxpy' belongs to another OpenCL context"):
        other.run(k, 4, 2.0, foreign, foreign, 4)
    assert foreign.context is other and k.context is ctx
    other.close()
    saxpy_works(ctx, prog)


def test_closed_context_and_released_objects(prog) -> None:
    c = opencl.Context()
    p = c.program(SOURCE)
    k = p.kernel("saxpy")
    b = c.buffer(Matrix(1, 4, 1.0))
    gone = c.buffer(4)
    gone.release()
    gone.release()  # idempotent
    assert gone.released and not b.released
    with pytest.raises(ValueError, match="this OpenCL buffer was released"):
        gone.read()
    assert c.stats["live_objects"] == 3
    c.close()
    c.close()  # idempotent
    assert c.closed and b.released and k.released and p.released
    assert c.stats["live_objects"] == 0
    with pytest.raises(ValueError, match="this OpenCL context is closed"):
        c.buffer(4)
    with pytest.raises(ValueError, match="this OpenCL context is closed"):
        c.program(SOURCE)
    with pytest.raises(ValueError, match="this OpenCL context is closed"):
        c.run(k, 4, 2.0, b, b, 4)
    with pytest.raises(ValueError, match="buffer belongs to an OpenCL context that is closed"):
        b.read()
    with pytest.raises(ValueError, match="buffer belongs to an OpenCL context that is closed"):
        b.write(Matrix(1, 4))
    with pytest.raises(ValueError, match="program belongs to an OpenCL context that is closed"):
        p.kernel("saxpy")
    with pytest.raises(ValueError, match="this OpenCL context is closed"):
        c.finish()
    assert "closed" in repr(c) and "released" in repr(b)


def test_context_closed_while_behaviors_hold_buffers() -> None:
    gpu = opencl.open()
    ctx = gpu.value
    held = PinnedCown(ctx.buffer(Matrix(1, 3, [1.0, 2.0, 3.0])))

    @when(held)
    def before(held):
        return held.value.read().tolist()

    @when(gpu)
    def close(gpu):
        gpu.value.close()

    @when(held)
    def after(held):
        return held.value.read()

    wait()
    assert before.value == [[1.0, 2.0, 3.0]]
    assert not close.exception
    assert after.exception and isinstance(after.value, ValueError)
    assert "belongs to an OpenCL context that is closed" in str(after.value)


# ---- pinned: main interpreter, main thread, lifetime ------------------------------------

def test_pinned_behaviors_use_the_context(prog) -> None:
    gpu = opencl.open()
    kernel = PinnedCown(gpu.value.program(SOURCE).kernel("saxpy"))
    results = []
    for i in range(6):
        @when()
        def data():  # a worker
            return Matrix(1, 8, float(i))

        @when(gpu, kernel, data)
        def run(gpu, kernel, data):  # the main thread
            c = gpu.value
            y = c.buffer(data.value)
            c.run(kernel.value, 8, 2.0, data.value, y, 8)
            return y.read()

        results.append(run)
    wait()
    for i, r in enumerate(results):
        assert not r.exception, r.value
        assert r.value.tolist() == [[3.0 * i] * 8]
    assert gpu.value.stats["launches"] == 6


def test_opencl_objects_can_only_live_in_a_pinned_cown(ctx, prog) -> None:
    b = ctx.buffer(2)
    k = prog.kernel("saxpy")
    for value in (ctx, b, k, prog):
        with pytest.raises(TypeError, match="can only live in a PinnedCown"):
            Cown(value)
        with pytest.raises(TypeError, match="can only live in a PinnedCown"):
            Cown([1, (value,)])
        with pytest.raises(TypeError, match="can only live in a PinnedCown"):
            pickle.dumps(value)
    with pytest.raises(TypeError, match="can only live in a PinnedCown"):
        bocpy.send("opencl", b)
    with pytest.raises(TypeError, match="can only live in a PinnedCown"):
        @when()
        def capture():
            return b


def test_touching_the_context_or_a_buffer_from_a_worker_raises() -> None:
    gpu = opencl.open()
    buf = PinnedCown(gpu.value.buffer(3))
    holder = Cown([gpu, buf])  # the handles travel; the values never do

    @when(holder)
    def touch_ctx(h):
        return h.value[0].value.buffer(3)

    @when(holder)
    def touch_buf(h):
        return h.value[1].value.read()

    @when()
    def make():
        from bocpy.plugins import opencl as o
        return o.Context()

    @when()
    def listing():
        from bocpy.plugins import opencl as o
        return len(o.devices())

    wait()
    for r in (touch_ctx, touch_buf):
        assert r.exception and isinstance(r.value, RuntimeError)
        assert "does not own this cown" in str(r.value)
    assert make.exception and isinstance(make.value, RuntimeError)
    assert "can only be created on the main interpreter" in str(make.value)
    assert listing.value == len(opencl.devices())  # devices() works anywhere
    saxpy_ok = gpu.value.buffer(Matrix(1, 2, 1.0)).read().tolist()
    assert saxpy_ok == [[1.0, 1.0]]  # still usable


def test_other_threads_are_refused(ctx, prog) -> None:
    b = ctx.buffer(2)
    errors = []

    def other() -> None:
        for call in (lambda: ctx.buffer(2), b.read, ctx.finish):
            try:
                call()
            except RuntimeError as e:
                errors.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 3
    assert all("thread that opened its context" in e for e in errors)
    saxpy_works(ctx, prog)


def test_destroyed_with_its_pinned_cown() -> None:
    gpu = opencl.open()
    ctx = gpu.value
    buf = ctx.buffer(4)

    @when(gpu)
    def use(gpu):
        gpu.value.finish()

    wait()
    assert not ctx.closed
    del gpu, use
    gc.collect()
    bocpy.start()
    wait()
    assert ctx.closed and buf.released


def test_a_buffer_outlives_its_pinned_cown(ctx) -> None:
    buf = ctx.buffer(Matrix(1, 2, 5.0))
    holder = PinnedCown(buf)

    @when(holder)
    def use(holder):
        return holder.value.read().tolist()

    wait()
    assert use.value == [[5.0, 5.0]]
    del holder, use
    gc.collect()
    bocpy.start()
    wait()
    assert not buf.released  # still referenced: freed with its last reference
    assert buf.read().tolist() == [[5.0, 5.0]]


def test_launch_in_one_behavior_read_later(prog) -> None:
    gpu = opencl.open()
    ctx = gpu.value
    kernel = PinnedCown(ctx.program(SOURCE).kernel("grid"))
    out = PinnedCown(ctx.buffer(64))

    @when(gpu, kernel, out)
    def launch(gpu, kernel, out):  # the release hook waits for the queue
        gpu.value.run(kernel.value, (8, 8), out.value, 8)

    quiesce()
    assert not launch.exception
    assert out.value.read().tolist()[0][:3] == [0.0, 1.0, 2.0]


def test_closed_at_exit_after_pending_behaviors() -> None:
    res = run_script(
        "import atexit\n"
        "seen = []\n"
        "atexit.register(lambda: print('closed at exit:', seen[0].closed, seen[1]))\n"
        "from bocpy import Matrix, when\n"
        "from bocpy.plugins import opencl\n"
        "gpu = opencl.open()\n"
        "seen.append(gpu.value)\n"
        "@when(gpu)\n"
        "def late(gpu):\n"
        "    seen.append(gpu.value.buffer(Matrix(1, 2, 7.0)).read().tolist())\n"
        "# no wait(): the plugin's atexit runs the behavior, then closes\n")
    assert res.returncode == 0, res.stderr
    assert "closed at exit: True [[7.0, 7.0]]" in res.stdout


def test_dispatch_through_pump(prog) -> None:
    gpu = opencl.open()
    kernel = PinnedCown(gpu.value.program(SOURCE).kernel("fill_f"))
    out = PinnedCown(gpu.value.buffer(16, dtype="float32"))
    for i in range(20):
        @when(gpu, kernel, out)
        def tick(gpu, kernel, out):
            gpu.value.run(kernel.value, 16, out.value, float(i))

    done = 0
    while done < 20:
        done += pump().executed
    assert out.value.read().tolist() == [[19.0] * 16]
    wait()
