"""The scheduling policy (docs/model.md, "Scheduling policy"): runnable work
never waits behind a busy worker while another worker is idle (issue 33)."""

from __future__ import annotations

import bocpy
from bocpy import Cown, start, stats, wait, when


def spin(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def chain(c: Cown, left: int) -> None:
    @when(c)
    def step(c, left=left):
        spin(10000)
        c.value = c.value + 1
        if left > 1:
            chain(c, left - 1)


def finished_per_worker() -> list[int]:
    return [w["finished"] for w in stats()["workers"]]


def test_two_chains_use_both_workers_in_every_run() -> None:
    """Two independent self-rescheduling chains started from main, 2
    workers: in each of 20 runs both workers run some of the steps (before,
    one worker could end up with both chains while the other stayed
    parked).  Not timed: it only looks at who did the work."""
    wait()
    runs = []
    for _ in range(20):
        start(2)
        before = finished_per_worker()
        cowns = [Cown(0), Cown(0)]
        for c in cowns:
            chain(c, 30)
        wait()
        after = finished_per_worker()
        assert [c.value for c in cowns] == [30, 30]
        runs.append([a - b for a, b in zip(after, before)])
    assert all(sum(r) == 60 for r in runs), runs
    assert all(min(r) > 0 for r in runs), runs


def test_a_body_that_schedules_lets_an_idle_worker_take_the_work() -> None:
    """A long body schedules a behavior on a free cown: the behavior does
    not wait for the body to finish (an idle worker takes it), so the two
    run on different workers.  The body waits for the message the other
    behavior sends (with a generous bound), so the test cannot pass by
    running them one after the other."""
    wait()
    start(2)
    out = Cown(None)

    @when(out)
    def long_body(out):
        from bocpy import TIMEOUT, receive, send, when as w
        from bocpy import Cown as C

        @w(C(0))
        def other(c):
            send("policy_other_ran", None)
        tag, _ = receive("policy_other_ran", 60)
        out.value = tag != TIMEOUT
    wait()
    assert out.value is True
