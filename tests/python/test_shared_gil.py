"""CPython 3.10 and 3.11: workers are sub-interpreters sharing the one GIL.

Behaviors there run serialized by the GIL but correctly, as in the reference
implementation; from 3.12 on each worker has its own GIL.  These tests hold
on every version and assert what differs: stats() says which, and the
results with two workers are those with one.  (What a worker may import
differs too: tests/python/test_ctypes_bridge_workers.py.)
"""

from __future__ import annotations

import sys

import pytest

import bocpy
from bocpy import Cown, wait, when

SHARED = sys.version_info < (3, 12)


@pytest.fixture(autouse=True)
def stopped():
    wait()
    yield
    wait()


def test_stats_says_whether_the_gil_is_shared() -> None:
    assert bocpy.stats()["shared_gil"] is SHARED
    bocpy.start(worker_count=2)
    assert bocpy.stats()["shared_gil"] is SHARED


def test_two_workers_give_the_same_results_as_one() -> None:
    """Independent chains on two workers: every result is right whether the
    workers run in parallel (3.12+) or take turns on one GIL (3.10/3.11)."""
    results = {}
    for workers in (1, 2):
        bocpy.start(worker_count=workers)
        cowns = [Cown(0) for _ in range(8)]
        for _ in range(50):
            for c in cowns:
                @when(c)
                def bump(c):
                    c.value = c.value + sum(range(100))
        outs = []
        for c in cowns:
            @when(c)
            def read(c):
                return c.value
            outs.append(read)
        wait()
        results[workers] = [o.value for o in outs]
    assert results[1] == results[2] == [50 * sum(range(100))] * 8
