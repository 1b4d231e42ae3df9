"""send/receive round trips per second between the main interpreter and a
behavior on a worker.

Usage: python wl_messages.py N

A behavior receives N "ping" messages and answers each with "pong"; the main
thread sends one ping and waits for its pong, N times.  Public API only.
"""

import json
import sys
import time

from bocpy import receive, send, start, wait, when


def echo(n):
    @when()
    def _():
        for _ in range(n):
            msg = receive("ping")
            send("pong", msg[1])


def main():
    n = int(sys.argv[1])
    start(1)
    echo(n)
    t0 = time.perf_counter()
    ok = True
    for i in range(n):
        send("ping", i)
        ok = ok and receive("pong")[1] == i
    seconds = time.perf_counter() - t0
    wait()
    print(json.dumps({"workload": "send_receive", "params": {"n": n},
                      "seconds": seconds, "ops": n, "ops_per_s": n / seconds,
                      "check": ok}))


main()
