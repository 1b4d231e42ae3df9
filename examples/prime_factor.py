"""Factoring with racing behaviors: Pollard's rho, first answer wins.

Pollard's rho finds a factor of n by iterating x -> x*x + c (mod n) and
watching for a repeat modulo an unknown prime factor. How soon that happens
depends on c, so several racers with different c try each number at once;
the first to find a factor posts it on the noticeboard, and the others
notice and stop.

Two things about the noticeboard shape this program:

* ``notice_update`` is an atomic read-modify-write, so "post my factor
  unless someone already did" is a single call (``first_wins``), even when
  two racers finish at the same moment.
* A behavior sees one snapshot of the board for its whole run: reading the
  board again inside the same behavior never shows newer posts. So a racer
  works in bounded chunks: each chunk is a behavior over the racer's own
  cown that first reads the board (a fresh snapshot, since it is a new
  behavior), stops if the number is already factored, and otherwise runs
  CHUNK steps and schedules the next chunk.

Racers for the same number share no cown, so they run in parallel. The
printed results do not depend on which racer wins: any factor found of a
product of two primes is one of the two primes.

Run:  python examples/prime_factor.py
"""

import functools
import math

from bocpy import Cown, notice_read, notice_update, wait, when

NUMBERS = [
    1000003 * 1000033,
    99999989 * 99999971,
    2147483647 * 4294967291,
]
RACERS = 4
CHUNK = 2000


def key(n):
    return f"factor:{n}"


def first_wins(found, current):
    """notice_update function: keep the factor already posted, if any."""
    return found if current is None else current


def rho_steps(state, steps):
    """Run up to ``steps`` steps of Floyd's cycle finding.  Returns a
    factor of n (possibly n itself: this c failed), or None to go on."""
    n, c = state["n"], state["c"]
    x, y = state["x"], state["y"]
    for _ in range(steps):
        x = (x * x + c) % n
        y = (y * y + c) % n
        y = (y * y + c) % n
        d = math.gcd(abs(x - y), n)
        if d != 1:
            return d
    state["x"], state["y"] = x, y
    return None


def race(racer):
    """Schedule the next chunk of work for one racer."""

    @when(racer)
    def chunk(racer):
        state = racer.value
        if notice_read(key(state["n"])) is not None:
            state["outcome"] = "stopped: factor already posted"
            return
        d = rho_steps(state, CHUNK)
        state["steps"] += CHUNK
        if d is None:
            race(racer)  # not yet: the next chunk sees a fresh board
        elif d == state["n"]:
            state["outcome"] = "gave up: this c cycles without a factor"
        else:
            notice_update(key(state["n"]), functools.partial(first_wins, d))
            state["outcome"] = "found a factor"


racers = []
for n in NUMBERS:
    for c in range(1, RACERS + 1):
        racer = Cown({"n": n, "c": c, "x": 2, "y": 2, "steps": 0, "outcome": None})
        racers.append(racer)
        race(racer)

board = wait(noticeboard=True)

for n in NUMBERS:
    p = board[key(n)]
    q = n // p
    p, q = min(p, q), max(p, q)
    print(f"{n} = {p} x {q}  (verified: {p * q == n and 1 < p < n})")
print(f"every racer finished: {all(r.value['outcome'] for r in racers)}")
print(f"some racer found each number's factor: "
      f"{all(any(r.value['n'] == n and r.value['outcome'] == 'found a factor' for r in racers) for n in NUMBERS)}")
