"""Repeated start/wait cycles leak no cowns, threads or memory."""

from __future__ import annotations

from conftest import run_python

CYCLES = 200

SCRIPT = f"""
import gc, os
import bocpy
from bocpy import Cown, when, wait, start

def threads():
    return len(os.listdir('/proc/self/task'))

def rss_kib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])

def cycle():
    c = Cown([0])
    @when(c)
    def r(c):
        c.value.append(1)
        return len(c.value)
    wait()
    assert r.value == 2

for _ in range(10):  # warm up caches, allocator pools and the worker pool
    cycle()
gc.collect()
base_threads = threads()
cowns0, rss0 = bocpy._core.live_cowns(), rss_kib()
for _ in range({CYCLES}):
    cycle()
gc.collect()
print("threads", base_threads, threads())
print("cowns", cowns0, bocpy._core.live_cowns())
print("rss_growth_kib", rss_kib() - rss0)
"""


def test_start_wait_cycles_do_not_leak() -> None:
    out = run_python(SCRIPT, env={"BOCPY_WORKERS": "1"}, timeout=300)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    before, after = map(int, lines["threads"].split())
    assert after == before
    c0, c1 = map(int, lines["cowns"].split())
    assert c1 == c0
    # Each cycle creates and destroys a sub-interpreter; allow allocator
    # noise but not per-cycle growth (a leaked interpreter is several MiB).
    assert int(lines["rss_growth_kib"]) < 16 * 1024
    # The pooled worker interpreter is ended at exit without error.
    assert out.stderr == ""
