"""bocpy.Matrix ownership: a matrix stored in a cown, sent as a message,
captured or returned MOVES to the receiving interpreter without a copy (the
same buffer), and the sender's object can no longer read or write it.
copy() makes an independent matrix."""

from __future__ import annotations

import copy
import gc
import pickle
import threading

import pytest

import bocpy
from bocpy import Cown, Matrix, notice_read, notice_seed, notice_update, notice_write, receive, send, start, wait, when
from bocpy.plugins import matrix as matrix_module

NOT_OWNED = "The current interpreter does not own this matrix"


@pytest.fixture(autouse=True)
def fresh_runtime():
    wait()
    yield
    wait()


def settle() -> None:
    """Let the runtime hand back what it borrowed, then collect, so that the
    live-buffer count is exact."""
    start()
    wait()
    gc.collect()


def assert_moved(m: Matrix) -> None:
    """Every data access of the sender's object raises RuntimeError."""
    assert m.acquired is False
    accesses = [
        lambda: m.sum(), lambda: m[0, 0], lambda: m[0], lambda: m.tolist(),
        lambda: m.rows, lambda: m.columns, lambda: m.shape, lambda: m.size,
        lambda: len(m), lambda: list(m), lambda: m.T, lambda: m.x, lambda: m.length,
        lambda: m + 1, lambda: 1 + m, lambda: m @ m, lambda: -m, lambda: abs(m),
        lambda: m.copy(), lambda: copy.deepcopy(m), lambda: pickle.dumps(m),
        lambda: m.clip(1), lambda: m.take([0]), lambda: m.transpose(in_place=True),
        lambda: m.normalize(), lambda: m.max(axis=0), lambda: m.vecdot(m),
        lambda: Matrix(m), lambda: Matrix.concat([m]), lambda: m.fma(1, 1),
        lambda: Matrix.where(m, 1, 0), lambda: Matrix.allclose(m, m),
        lambda: Cown(m), lambda: send("matrix-test", m),
    ]
    for access in accesses:
        with pytest.raises(RuntimeError, match=NOT_OWNED):
            access()

    def assign() -> None:
        m[0, 0] = 1.0

    def iadd() -> None:
        nonlocal m
        m += 1

    def setx() -> None:
        m.x = 3.0

    for access in (assign, iadd, setx):
        with pytest.raises(RuntimeError, match=NOT_OWNED):
            access()
    # formatting never raises (debuggers, tracebacks)
    assert "not owned" in repr(m) and "not owned" in str(m)


# ---- cowns ---------------------------------------------------------------------------------

def test_cown_moves_the_buffer_and_a_behavior_mutates_it() -> None:
    m = Matrix([[1, 2], [3, 4]])
    address = m._buffer_address
    c = Cown(m)
    assert_moved(m)

    @when(c)
    def mutate(c, address=address):
        v = c.value
        same = v._buffer_address == address and v.acquired
        v += 10                      # in place
        v[0, 0] = -1.0
        v.transpose(in_place=True)
        return same, bocpy._core.is_main_interpreter()

    wait()
    assert mutate.value == (True, False)  # on a worker, same buffer
    assert c.value.tolist() == [[-1, 13], [12, 14]]
    assert c.value._buffer_address == address  # back on main: still no copy
    assert c.value.acquired
    assert_moved(m)  # the old object stays dead, even now the buffer is back


def test_many_behaviors_over_one_matrix() -> None:
    c = Cown(Matrix.zeros((8, 8)))
    for i in range(200):
        @when(c)
        def bump(c, i=i):
            c.value += 1
            c.value[i % 8, i % 8] += 1

    wait()
    v = c.value
    assert v.sum() == 200 * 64 + 200
    assert v.min() == 200.0


def test_parallel_matrices_and_matmul_between_cowns() -> None:
    cowns = [Cown(Matrix(4, 4, float(i))) for i in range(8)]
    for _ in range(25):
        for c in cowns:
            @when(c)
            def step(c):
                c.value *= 1.0
                c.value += 1.0

    a = Cown(Matrix([[1, 2], [3, 4]]))
    b = Cown(Matrix([[0, 1], [1, 0]]))

    @when(a, b)
    def product(a, b):
        return a.value @ b.value  # a new matrix, moved out as the result

    @when(cowns)
    def totals(cs):
        return [c.value.sum() for c in cs]

    wait()
    assert totals.value == [16 * (i + 25) for i in range(8)]
    assert product.value.tolist() == [[2, 1], [4, 3]]
    assert product.value.acquired


def test_result_and_capture_move() -> None:
    @when()
    def make():
        return Matrix.ones((2, 3)) * 3

    wait()
    r = make.value
    assert isinstance(r, Matrix) and r.tolist() == [[3, 3, 3], [3, 3, 3]] and r.acquired
    m = Matrix([[5, 6]])
    address = m._buffer_address

    @when()
    def use(m=m, address=address):  # a capture moves the matrix too
        return m.sum(), m._buffer_address == address

    assert_moved(m)
    wait()
    assert use.value == (11.0, True)


def test_nested_values_keep_identity() -> None:
    m = Matrix([[1, 2, 3]])
    c = Cown({"a": m, "b": [m, (m,)]})
    assert not m.acquired

    @when(c)
    def work(c):
        d = c.value
        d["a"] *= 2
        return d["a"] is d["b"][0] is d["b"][1][0]

    t = Cown((Matrix([[1.0]]), Matrix([[2.0]])))

    @when(t)
    def pair(t):
        x, y = t.value
        return (x + y)[0, 0]

    wait()
    assert work.value is True
    assert c.value["b"][1][0].tolist() == [[2, 4, 6]]
    assert pair.value == 3.0


def test_copy_before_moving_keeps_an_independent_matrix() -> None:
    m = Matrix([[1, 2], [3, 4]])
    keep = m.copy()
    c = Cown(m)

    @when(c)
    def zero(c):
        c.value *= 0

    wait()
    assert keep.tolist() == [[1, 2], [3, 4]] and keep.acquired
    assert c.value.tolist() == [[0, 0], [0, 0]]
    keep[0, 0] = 9
    assert c.value[0, 0] == 0


def test_failed_encoding_gives_the_matrix_back() -> None:
    m = Matrix([[1, 2]])
    with pytest.raises(TypeError):
        Cown((m, threading.Lock()))  # m is shared, then the lock fails
    assert m.acquired and m.sum() == 3.0
    with pytest.raises(TypeError):
        Cown({"m": m, "f": threading.Lock()})  # through pickle's reduce
    assert m.acquired
    m += 1
    assert m.tolist() == [[2, 3]]


# ---- messages ---------------------------------------------------------------------------------

def test_send_receive_moves() -> None:
    start()
    m = Matrix([[1.5, 2.5]])
    address = m._buffer_address
    send("matrix-test", m)
    assert_moved(m)
    tag, r = receive("matrix-test", 10)
    assert tag == "matrix-test"
    assert r.tolist() == [[1.5, 2.5]] and r._buffer_address == address and r.acquired


def test_worker_sends_a_matrix_to_main() -> None:
    start()

    @when()
    def produce():
        x = Matrix.ones((3, 3)) * 7
        address = x._buffer_address
        send("matrix-back", x)
        try:
            x.sum()
        except RuntimeError as e:
            return address, str(e), x.acquired
        return address, None, x.acquired

    tag, r = receive("matrix-back", 30)
    wait()
    address, error, acquired = produce.value
    assert error == NOT_OWNED and acquired is False
    assert r._buffer_address == address
    assert r.sum() == 63.0


def test_main_sends_to_a_worker() -> None:
    start()
    m = Matrix.vector([1, 2, 3])
    send("matrix-out", m)

    @when()
    def consume():
        tag, v = receive("matrix-out", 30)
        v *= 2
        return v  # moves back as the result

    wait()
    assert consume.value.tolist() == [[2, 4, 6]]


# ---- misc --------------------------------------------------------------------------------------

def test_seed_is_per_interpreter_and_deterministic() -> None:
    Matrix.seed(123)
    expected = Matrix.normal(size=(3, 3)).tolist()

    @when()
    def draw():
        Matrix.seed(123)
        return Matrix.normal(size=(3, 3)).tolist()

    wait()
    assert draw.value == expected


def test_pickle_inside_a_behavior() -> None:
    @when()
    def roundtrip():
        m = Matrix([[1, 2], [3, 4]])
        return pickle.loads(pickle.dumps(m)).tolist(), copy.deepcopy(m).sum()

    wait()
    assert roundtrip.value == ([[1, 2], [3, 4]], 10.0)


def test_buffers_are_freed() -> None:
    settle()
    base = matrix_module._live_buffers()
    c = Cown(Matrix.zeros((10, 10)))
    d = Cown({"x": [Matrix([[1.0]]), Matrix([[2.0]])]})
    for _ in range(20):
        @when(c, d)
        def step(c, d):
            c.value += d.value["x"][0]
            tmp = c.value @ c.value  # temporaries die on the worker
            return tmp.shape

    send("matrix-leak", Matrix([[1.0]]))
    receive("matrix-leak", 10)
    wait()
    assert c.value.sum() == 20 * 100
    del c, d, step
    settle()
    assert matrix_module._live_buffers() == base


# ---- buffer exports in behaviors (NumPy itself is in test_matrix_numpy.py) ----------------

def test_buffers_in_a_behavior_and_an_export_alive_at_release() -> None:
    start(worker_count=1)  # the follow-up behavior must run where the view lives
    c = Cown(Matrix([[1.0, 2.0]]))

    @when(c)
    def scoped(c):
        with memoryview(c.value) as v:  # released before the behavior ends
            v[0, 0] = 5.0
            return v.tolist()

    @when(c)
    def keep(c):
        import builtins
        builtins._bocpy_test_view = memoryview(c.value)  # outlives the behavior
        c.value[0, 1] = 8.0
        return "kept"

    wait()
    assert scoped.value == [[5.0, 2.0]]
    # Issue 33: the matrix rests in the worker after `keep`, so nothing is
    # encoded while the view lives; `keep` succeeds ...
    assert keep.exception is False and keep.value == "kept"
    # ... but the matrix cannot leave the worker while the export is alive:
    # main's read is a TypeError naming the cown, the matrix stays there.
    with pytest.raises(TypeError, match="1 buffer export of this matrix is alive"):
        c.value
    start(worker_count=1)

    @when(c)
    def drop(c):
        import builtins
        view = builtins.__dict__.pop("_bocpy_test_view", None)
        return view is not None and view.tolist()

    wait()
    # `drop`, on the same worker, saw the writes and released the view.
    assert drop.value == [[5.0, 8.0]]
    assert c.value.tolist() == [[5.0, 8.0]]


# ---- the noticeboard: every reader gets its own copy ----------------------------------------

def test_a_matrix_on_the_noticeboard_is_readable_by_every_behavior() -> None:
    start(worker_count=2)
    m = Matrix([[1.0, 2.0], [3.0, 4.0]])
    notice_seed("weights", m)
    assert m.acquired and m.sum() == 10.0     # stored as a copy: the writer keeps m
    m[0, 0] = 100.0                           # and later writes do not reach the board
    results = []
    for i in range(8):
        @when()
        def reader(i=i):
            import time

            import bocpy
            w = bocpy.notice_read("weights")  # (board values are read-only by contract)
            time.sleep(0.01)                  # overlap the readers
            return w.sum(), w.acquired
        results.append(reader)
    wait()
    assert [r.value for r in results] == [(10.0, True)] * 8


def test_noticeboard_matrices_in_containers_and_updates() -> None:
    start(worker_count=2)
    notice_seed("box", {"m": Matrix([[1.0]]), "ms": [Matrix([[2.0]])]})

    @when()
    def read_box():
        import bocpy
        box = bocpy.notice_read("box")
        return box["m"].sum() + box["ms"][0].sum()

    @when()
    def bump():
        import bocpy
        bocpy.notice_update("acc", lambda old: old + 1.0, Matrix([[0.0, 0.0]]))

    wait()
    assert read_box.value == 3.0
    assert not bump.exception
