"""Values that stay where they are, without deadlock or delay (issue 33).

A cown's value rests live in the worker interpreter X that last used it.
When another interpreter takes the cown while X is running a behavior (or
does not answer at once), the taker encodes the value itself inside X's
interpreter (docs/model.md, "Values stay where they are").  These tests
check the two program shapes that waiting for X to serve the request could
not finish:

* deadlock: X runs a behavior that blocks in receive(); the behavior that
  would send the message takes a cown whose value rests in X;
* delay: X runs a long CPU-bound body that only ends once another behavior
  has used a cown whose value rests in X.

Each runs in a subprocess with a generous bound, so that a hang fails the
test instead of hanging the suite.  Nothing here asserts a latency: the
long body ends only through the message, whatever the machine's load.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BOUND_S = 600  # generous: the machine may be very busy

PRELUDE = textwrap.dedent(
    """
    import sys
    import time

    from bocpy import TIMEOUT, Cown, PinnedCown, receive, send, start, wait, when
    from bocpy import _core


    class Box:
        '''A plain class: not a cheap scalar, so its value rests in X.'''

        def __init__(self) -> None:
            self.n = 0
    """
)

DEADLOCK = PRELUDE + textwrap.dedent(
    """
    workers, kind, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    c = Cown(Box())
    e = Cown(Box())
    p = PinnedCown(0)
    got = []
    for r in range(rounds):
        start(workers)

        @when(c, e)
        def warm(c, e):
            # Both values now rest in this worker (X).
            c.value.n += 1
            e.value.n += 1

        @when(e)
        def waiter(e, r=r):
            # Runs where e rests (X), blocked until the sender has used c,
            # whose value rests in X too.
            send(f"waiting{r}", _core.interpreter_id())
            tag, v = receive(f"go{r}")
            return v

        # The sender gets c only once X is blocked in receive().
        receive(f"waiting{r}")
        if kind == "pinned":
            @when(p, c)
            def sender(p, c, r=r):
                c.value.n += 1
                send(f"go{r}", c.value.n)
        else:
            @when(c)
            def sender(c, r=r):
                c.value.n += 1
                send(f"go{r}", c.value.n)
        wait()
        assert sender.exception is False, sender.value
        got.append(waiter.value)
    assert got == [2 * (r + 1) for r in range(rounds)], got
    assert c.value.n == 2 * rounds, c.value.n
    print("OK")
    """
)

DELAY = PRELUDE + textwrap.dedent(
    """
    workers, kind = int(sys.argv[1]), sys.argv[2]


    def attempt(a):
        start(workers)
        c = Cown(Box())
        e = Cown(Box())
        p = PinnedCown(0)

        @when(c, e)
        def warm(c, e):
            c.value.n += 1
            e.value.n += 1
            return _core.interpreter_id()

        @when(e)
        def long_body(e):
            # CPU-bound in the worker where e rests (X, where c rests too,
            # unless the scheduler placed it elsewhere), until the other
            # behavior has used c; the bound only turns a failure into an
            # answer.
            send(f"started{a}", _core.interpreter_id())
            deadline = time.monotonic() + 300
            spins = 0
            while time.monotonic() < deadline:
                tag, v = receive(f"used{a}", 0)
                if tag != TIMEOUT:
                    return ("got", v, spins)
                for _ in range(1000):
                    spins += 1
            return ("gave up", None, spins)

        # Only now, with the long body running, does c get another taker.
        _, x = receive(f"started{a}")
        if kind == "pinned":
            @when(p, c)
            def user(p, c):
                c.value.n += 1
                send(f"used{a}", c.value.n)
                return _core.interpreter_id()
        else:
            @when(c)
            def user(c):
                c.value.n += 1
                send(f"used{a}", c.value.n)
                return _core.interpreter_id()
        wait()
        assert long_body.exception is False, long_body.value
        assert user.exception is False, user.value
        assert long_body.value[0] == "got", long_body.value
        assert long_body.value[1] == 2, long_body.value
        assert user.value != x, (user.value, x)  # not in the busy worker
        assert c.value.n == 2
        return warm.value == x  # c rested in the busy worker: the shape


    # The shape needs the long body in the worker where c rests; the
    # scheduler places it there nearly always (the same cown e), but it may
    # not: try again then.  Every attempt must finish all the same.
    shaped = [attempt(a) for a in range(10)]
    assert any(shaped), shaped
    print("OK")
    """
)


def _run(tmp_path: Path, script: str, *args: object) -> None:
    path = tmp_path / "shape.py"
    path.write_text(script)
    try:
        res = subprocess.run([sys.executable, str(path), *map(str, args)],
                             capture_output=True, text=True, timeout=BOUND_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung for {BOUND_S} s (deadlock): {exc.stdout!r} {exc.stderr!r}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("OK"), res.stdout + res.stderr


@pytest.mark.parametrize("workers,kind", [(1, "pinned"), (2, "pinned"), (2, "worker")])
def test_a_receive_in_the_home_does_not_block_a_taker(tmp_path: Path, workers: int,
                                                      kind: str) -> None:
    """X blocks in receive(); the sender takes a cown resting in X."""
    _run(tmp_path, DEADLOCK, workers, kind, 10)


@pytest.mark.parametrize("workers,kind", [(1, "pinned"), (2, "pinned"), (2, "worker")])
def test_a_busy_home_does_not_delay_a_taker(tmp_path: Path, workers: int, kind: str) -> None:
    """X runs a long body that ends only once c was used elsewhere."""
    _run(tmp_path, DELAY, workers, kind)
