"""The Ray backend (#29) against hand-written Ray, side by side in one run.

Workloads (each on one ``ray.init(num_cpus=N)`` started here):

* ``bank``: A accounts, T transfers with refusals (as examples/bank_ray.py);
* ``chain``: one cown incremented K times (every behavior depends on the
  previous one: pure per-behavior overhead).

Variants:

* ``ray_tasks``: one plain ``@ray.remote`` task per operation, chained
  through ObjectRefs by hand (the floor the issue measures against);
* ``ray_actor``: one Ray actor holding all state, one call per operation;
* ``bocpy_unbatched``: ``bocpy.start(backend="ray")`` with batch_size=1;
* ``bocpy_batched``: the same program with the default batching (64).

Prints ops/s and the driver process's CPU microseconds per operation
(all its threads, Ray's included) per variant, and the ratios the issue sets goals for
(unbatched within 1.25x of the floor; batched at least 4x the floor).
Every variant's final state is checked against a serial replay.

``--cluster``: instead, 200 independent behaviors of 20 ms CPU each on a
``ray.cluster_utils.Cluster`` of one node with one CPU, then of two nodes
with one CPU each (``spread=True``); prints both times and the speed-up
(goal: at least 1.5x).  On a 2-core machine shared with other work the two
nodes compete for the same cores, so the speed-up says little there.

``--large``: an 8 MB NumPy array in one cown updated 200 times, copied
through Ray's object store for every behavior (``batch_size=1``, the body
assigns a new array) against hosted by an actor (``bocpy.ray.hosted``, the
body adds in place); prints the time per behavior of each and the ratio
(goal: at least 10x).

Usage: python benchmarks/bench_ray.py [--quick] [--json] [--num-cpus N]
       python benchmarks/bench_ray.py --cluster [--quick]
       python benchmarks/bench_ray.py --large [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

OPENING = 100


def plan_of(accounts: int, transfers: int, seed: int = 29) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(transfers):
        i, j = rng.sample(range(accounts), 2)
        out.append((i, j, rng.randint(1, 80)))
    return out


def replay(accounts: int, plan: list[tuple[int, int, int]]) -> list[list[int]]:
    state = [[OPENING, 0] for _ in range(accounts)]
    for i, j, amount in plan:
        if state[i][0] < amount:
            state[i][1] += 1
        else:
            state[i][0] -= amount
            state[j][0] += amount
    return state


# ---- hand-written Ray ---------------------------------------------------------

def ray_tasks_bank(ray, accounts, plan):
    @ray.remote(num_returns=2)
    def transfer(src, dst, amount):
        if src[0] < amount:
            return [src[0], src[1] + 1], dst
        return [src[0] - amount, src[1]], [dst[0] + amount, dst[1]]

    refs = [ray.put([OPENING, 0]) for _ in range(accounts)]
    for i, j, amount in plan:
        refs[i], refs[j] = transfer.remote(refs[i], refs[j], amount)
    return ray.get(refs)


def ray_actor_bank(ray, accounts, plan):
    @ray.remote
    class Bank:
        def __init__(self, n):
            self.state = [[OPENING, 0] for _ in range(n)]

        def transfer(self, i, j, amount):
            s = self.state
            if s[i][0] < amount:
                s[i][1] += 1
                return False
            s[i][0] -= amount
            s[j][0] += amount
            return True

        def get(self):
            return self.state

    bank = Bank.remote(accounts)
    for i, j, amount in plan:
        bank.transfer.remote(i, j, amount)
    return ray.get(bank.get.remote())


def bocpy_bank(accounts, plan):
    from bocpy import Cown, wait, when

    cowns = [Cown([OPENING, 0]) for _ in range(accounts)]
    for i, j, amount in plan:
        @when(cowns[i], cowns[j])
        def moved(src, dst):
            if src.value[0] < amount:
                src.value[1] += 1
                return False
            src.value[0] -= amount
            dst.value[0] += amount
            return True
    wait()
    return [c.value for c in cowns]


def ray_tasks_chain(ray, k):
    @ray.remote
    def inc(x):
        return x + 1

    ref = ray.put(0)
    for _ in range(k):
        ref = inc.remote(ref)
    return ray.get(ref)


def ray_actor_chain(ray, k):
    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def inc(self):
            self.n += 1

        def get(self):
            return self.n

    c = Counter.remote()
    for _ in range(k):
        c.inc.remote()
    return ray.get(c.get.remote())


def bocpy_chain(k):
    from bocpy import Cown, wait, when

    c = Cown(0)
    for _ in range(k):
        @when(c)
        def inc(c):
            c.value += 1
    wait()
    return c.value


def cpu_behaviors(n: int, ms: float) -> float:
    """Seconds to run n independent behaviors of ``ms`` ms of CPU each."""
    from bocpy import Cown, wait, when

    t0 = time.perf_counter()
    cowns = [Cown(0) for _ in range(n)]
    for c in cowns:
        @when(c)
        def spin(c):
            end = time.process_time() + ms / 1000
            x = 0
            while time.process_time() < end:
                x += 1
            c.value = x
    wait()
    return time.perf_counter() - t0


def cluster_main(quick: bool, as_json: bool) -> None:
    import ray
    from ray.cluster_utils import Cluster

    import bocpy
    import bocpy.ray

    n = 40 if quick else 200
    times = {}
    for nodes in (1, 2):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        bocpy.ray.options(spread=True, batch_size=1)
        bocpy.start(backend="ray", address="auto")
        cpu_behaviors(4, 1)  # warm the workers of every node
        bocpy.start(backend="ray", address="auto")
        times[nodes] = cpu_behaviors(n, 20)
        ray.shutdown()
        cluster.shutdown()
    speedup = times[1] / times[2]
    if as_json:
        print(json.dumps({"behaviors": n, "seconds": times, "speedup": speedup}))
        return
    print(f"{n} behaviors of 20 ms: 1 node {times[1]:.2f} s, 2 nodes "
          f"{times[2]:.2f} s, speed-up {speedup:.2f}x")


def large_main(quick: bool, as_json: bool, num_cpus: int) -> None:
    import numpy as np
    import ray

    import bocpy
    import bocpy.ray
    from bocpy import Cown, wait, when

    n = 40 if quick else 200
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    per = {}
    for mode in ("copied", "hosted"):
        bocpy.ray.options(batch_size=1 if mode == "copied" else 64)
        bocpy.start(backend="ray")
        arr = np.zeros(1_000_000)  # 8 MB
        c = bocpy.ray.hosted(arr) if mode == "hosted" else Cown(arr)
        t0 = time.perf_counter()
        for _ in range(n):
            if mode == "hosted":
                @when(c)
                def bump(c):
                    c.value += 1
            else:
                @when(c)
                def bump(c):
                    c.value = c.value + 1
        wait()
        per[mode] = (time.perf_counter() - t0) / n
        if float(c.value[0]) != n:
            sys.exit(f"bench_ray: {mode} computed a wrong result")
    ray.shutdown()
    ratio = per["copied"] / per["hosted"]
    if as_json:
        print(json.dumps({"behaviors": n, "seconds_per_behavior": per, "ratio": ratio}))
        return
    print(f"8 MB cown, {n} updates: copied {per['copied'] * 1e3:.2f} ms/behavior, "
          f"hosted {per['hosted'] * 1e3:.2f} ms/behavior, {ratio:.1f}x")


#: Driver process CPU seconds of the last timed() call (every thread of the
#: driver, Ray's own included): less disturbed by a busy machine than wall
#: time.
last_cpu = 0.0


def timed(fn, *args):
    global last_cpu
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    last_cpu = time.process_time() - c0
    return out, dt


def main() -> None:
    parser = argparse.ArgumentParser(description="bocpy on Ray vs plain Ray")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--cluster", action="store_true",
                        help="1 node vs 2 nodes for CPU-bound behaviors")
    parser.add_argument("--large", action="store_true",
                        help="an 8 MB cown: copied per behavior vs hosted by an actor")
    args = parser.parse_args()
    if args.cluster or args.large:
        os.chdir(tempfile.mkdtemp(prefix="bocpy-bench-ray-"))
        if args.cluster:
            cluster_main(args.quick, args.json)
        else:
            large_main(args.quick, args.json, args.num_cpus)
        return
    accounts, transfers, k = (100, 300, 200) if args.quick else (1000, 5000, 2000)

    # Ray workers put the driver's working directory first on sys.path: run
    # from elsewhere, so they import the installed bocpy.
    os.chdir(tempfile.mkdtemp(prefix="bocpy-bench-ray-"))
    import ray

    import bocpy
    import bocpy.ray

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    plan = plan_of(accounts, transfers)
    want = replay(accounts, plan)
    rows: dict[str, dict[str, float]] = {"bank": {}, "chain": {}}
    #: driver CPU microseconds per operation, per workload and variant
    cpu_us: dict[str, dict[str, float]] = {"bank": {}, "chain": {}}

    def check(name, got, expected):
        if got != expected:
            sys.exit(f"bench_ray: {name} computed a wrong result")

    # Warm Ray's worker pool once before timing anything.
    ray_tasks_chain(ray, 20)

    got, dt = timed(ray_tasks_bank, ray, accounts, plan)
    check("ray_tasks bank", got, want)
    rows["bank"]["ray_tasks"] = transfers / dt
    cpu_us["bank"]["ray_tasks"] = 1e6 * last_cpu / transfers
    got, dt = timed(ray_actor_bank, ray, accounts, plan)
    check("ray_actor bank", got, want)
    rows["bank"]["ray_actor"] = transfers / dt
    cpu_us["bank"]["ray_actor"] = 1e6 * last_cpu / transfers
    got, dt = timed(ray_tasks_chain, ray, k)
    check("ray_tasks chain", got, k)
    rows["chain"]["ray_tasks"] = k / dt
    cpu_us["chain"]["ray_tasks"] = 1e6 * last_cpu / k
    got, dt = timed(ray_actor_chain, ray, k)
    check("ray_actor chain", got, k)
    rows["chain"]["ray_actor"] = k / dt
    cpu_us["chain"]["ray_actor"] = 1e6 * last_cpu / k

    for name, size in (("bocpy_unbatched", 1), ("bocpy_batched", 64)):
        bocpy.ray.options(batch_size=size)
        bocpy.start(backend="ray")
        got, dt = timed(bocpy_bank, accounts, plan)
        check(name + " bank", got, want)
        rows["bank"][name] = transfers / dt
        cpu_us["bank"][name] = 1e6 * last_cpu / transfers
        bocpy.start(backend="ray")
        got, dt = timed(bocpy_chain, k)
        check(name + " chain", got, k)
        rows["chain"][name] = k / dt
        cpu_us["chain"][name] = 1e6 * last_cpu / k

    ratios = {
        f"{w}_{v}_vs_floor": rows[w][v] / rows[w]["ray_tasks"]
        for w in rows for v in ("bocpy_unbatched", "bocpy_batched")
    }
    ray.shutdown()
    if args.json:
        print(json.dumps({"ops_per_s": rows, "ratios": ratios, "driver_cpu_us": cpu_us,
                          "accounts": accounts, "transfers": transfers, "chain": k}))
        return
    for w, r in rows.items():
        print(f"{w}:")
        for v, ops in r.items():
            print(f"  {v:16s} {ops:9.0f} ops/s  {cpu_us[w][v]:7.0f} us driver CPU/op")
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
