"""Parallel program shapes (issue 33): does every shape use every worker?

Usage: python wl_shapes.py SHAPE WORKERS SIZE ITERS

SHAPE is one of:

* ``chains`` -- SIZE/1000 independent self-rescheduling chains (SIZE % 1000
  steps each, e.g. 2400 = 2 chains of 400 steps), started from main: each
  step runs the payload and schedules the next step on its own cown;
* ``tree`` -- a recursive binary tree of depth SIZE: each inner node
  schedules its two children on fresh cowns, each leaf runs the payload;
* ``philo_ring`` / ``philo_evenodd`` -- 100 dining philosophers, SIZE meals
  each; a meal holds (left fork, right fork, hunger), runs the payload and
  schedules the philosopher's next meal.  ``ring`` starts them in ring
  order (0, 1, 2, ...), ``evenodd`` the even ones first, then the odd ones.

ITERS is the payload (spin iterations; benchmarks/run.py calibrates 100 us).
Runs one untimed warm-up round, then ``BOCPY_SHAPES_ROUNDS`` (default 3)
timed rounds, and reports the median round.
Prints one JSON line (see workloads.py).  With ``BOCPY_SHAPES_TRACE=1``
(ours only: it uses ``bocpy.trace``) the timed round is traced and the line
also gives ``concurrency``: the behaviors' total running time divided by
the time during which at least one ran, i.e. how many workers the schedule
kept busy on average.  Unlike a wall-clock speed-up it does not depend much
on other processes taking the machine's cores (a worker descheduled by the
OS in the middle of a behavior still counts as running it).  Public API only, with behaviors
inside functions and captures as ``name=name`` parameters, so that the
same file runs under the reference implementation (see wl_chain_ring.py).
"""

import json
import os
import sys
import time

from bocpy import TIMEOUT, Cown, quiesce, receive, send, start, wait, when


def spin(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def chain(c, left, iters):
    @when(c)
    def _step(c, left=left, iters=iters):
        spin(iters)
        c.value = c.value + 1
        if left > 1:
            chain(c, left - 1, iters)


def node(c, depth, iters):
    @when(c)
    def _node(c, depth=depth, iters=iters):
        if depth == 0:
            spin(iters)
            c.value = 1
            send("shapes_leaf", 1)
        else:
            node(Cown(0), depth - 1, iters)
            node(Cown(0), depth - 1, iters)


def meal(left, right, hunger, iters):
    @when(left, right, hunger)
    def _meal(left, right, hunger, iters=iters):
        spin(iters)
        left.value = left.value + 1
        right.value = right.value + 1
        hunger.value = hunger.value - 1
        if hunger.value > 0:
            meal(left, right, hunger, iters)


PHILOSOPHERS = 100


def run_shape(shape, size, iters):
    """Runs one round; returns (ops, cowns to check, expected sum)."""
    if shape == "chains":
        k, steps = divmod(size, 1000)
        cowns = [Cown(0) for _ in range(k)]
        for c in cowns:
            chain(c, steps, iters)
        quiesce()
        return k * steps, cowns, k * steps
    if shape == "tree":
        node(Cown(0), size, iters)
        quiesce()
        return 2 ** size, [], 2 ** size  # leaves: counted by leaves_sent()
    if shape in ("philo_ring", "philo_evenodd"):
        n = PHILOSOPHERS
        forks = [Cown(0) for _ in range(n)]
        hunger = [Cown(size) for _ in range(n)]
        order = list(range(n))
        if shape == "philo_evenodd":
            order = order[0::2] + order[1::2]
        for i in order:
            meal(forks[i], forks[(i + 1) % n], hunger[i], iters)
        quiesce()
        return n * size, forks, 2 * n * size
    raise SystemExit(f"unknown shape {shape!r}")


def concurrency(events):
    """Sum of the behavior slices' durations over the length of their union."""
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("ph") == "X" and e.get("dur", 0) > 0)
    if not spans:
        return None
    busy = sum(b - a for a, b in spans)
    union, cur_a, cur_b = 0.0, spans[0][0], spans[0][1]
    for a, b in spans[1:]:
        if a > cur_b:
            union += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    union += cur_b - cur_a
    return busy / union if union > 0 else None


def leaves_sent(expected):
    """The leaves' messages (the check of the tree shape): receives up to
    ``expected`` of them, so that no idle timeout separates the warm-up
    from the timed round (a machine left idle for seconds runs the next
    milliseconds slower); a missing message ends the count after 5 s."""
    n = 0
    while n < expected and receive("shapes_leaf", 5)[0] != TIMEOUT:
        n += 1
    return n


def total(cowns):
    s = 0
    for c in cowns:
        with c as v:
            s += v
    return s


def main():
    shape = sys.argv[1]
    workers, size, iters = (int(a) for a in sys.argv[2:5])
    s0 = time.perf_counter()
    start(workers)
    startup = time.perf_counter() - s0
    # Warm-up: one untimed round of the same size, so that every worker has
    # imported this module and loaded the behavior code before timing (a
    # worker's first behavior imports it: several milliseconds, which a
    # smaller round could leave to the timed one on a worker it never
    # reached).
    run_shape(shape, size, iters)
    if shape == "tree":
        leaves_sent(2 ** size)
    # ROUNDS timed rounds (default 3) in this process; the line reports the
    # median round, so that one stall of the machine (a few milliseconds,
    # seen on this VM now and then) does not decide the run.  Only the
    # first round is traced (concurrency).
    rounds = int(os.environ.get("BOCPY_SHAPES_ROUNDS", "3"))
    times, cpus, ok, conc = [], [], True, None
    for r in range(rounds):
        tracer = None
        if r == 0 and os.environ.get("BOCPY_SHAPES_TRACE"):
            import tempfile

            import bocpy
            tracer = bocpy.trace(os.path.join(tempfile.mkdtemp(), "shapes.json"))
            tracer.__enter__()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        ops, cowns, expected = run_shape(shape, size, iters)
        t1 = time.perf_counter()
        cpu1 = time.process_time()
        if tracer is not None:
            tracer.__exit__(None, None, None)
            conc = concurrency(tracer.events)
        got = leaves_sent(expected) if shape == "tree" else total(cowns)
        ok = ok and got == expected
        times.append(t1 - t0)
        cpus.append(cpu1 - cpu0)
    wait()
    order = sorted(range(rounds), key=lambda i: times[i])
    mid = order[rounds // 2]
    seconds = times[mid]
    print(json.dumps({
        "workload": "shapes",
        "params": {"shape": shape, "workers": workers, "size": size, "iters": iters},
        "seconds": seconds,
        "cpu_seconds": cpus[mid],
        "rounds_seconds": times,
        "startup_seconds": startup,
        "ops": ops,
        "ops_per_s": ops / seconds,
        "check": ok,
        "concurrency": conc,
    }))


if __name__ == "__main__":
    main()
