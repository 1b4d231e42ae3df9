"""Primes below a limit: a segmented sieve of Eratosthenes, in parallel.

The numbers below LIMIT are cut into SEGMENTS ranges. The main thread
sieves the small "base" primes up to sqrt(LIMIT) itself; each range is then
sieved by its own behavior, which crosses out the multiples of the base
primes inside its range and sends the primes it found back as a message:
``(segment index, [primes...])``. A list sent is a list received.

The behaviors share no cown, so they run in parallel on the workers and
finish in any order; the main thread receives one message per segment
and puts them back in order by index. Everything printed is checked
against a plain sequential sieve.

Run:  python examples/primes.py
"""

import math

from bocpy import receive, send, wait, when

LIMIT = 1_000_000
SEGMENTS = 16


def simple_sieve(limit):
    """All primes below ``limit``, sequentially."""
    flags = bytearray([1]) * limit
    flags[:2] = b"\x00\x00"
    for p in range(2, math.isqrt(limit - 1) + 1):
        if flags[p]:
            flags[p * p :: p] = bytes(len(range(p * p, limit, p)))
    return [n for n in range(limit) if flags[n]]


def sieve_segment(lo, hi, base_primes):
    """The primes in [lo, hi), given every prime up to sqrt(hi - 1)."""
    flags = bytearray([1]) * (hi - lo)
    for p in base_primes:
        if p * p >= hi:
            break
        first = max(p * p, (lo + p - 1) // p * p)
        flags[first - lo :: p] = bytes(len(range(first, hi, p)))
    return [lo + i for i, flag in enumerate(flags) if flag and lo + i >= 2]


base = simple_sieve(math.isqrt(LIMIT - 1) + 1)
size = -(-LIMIT // SEGMENTS)  # ceiling division

for index in range(SEGMENTS):
    lo, hi = index * size, min(LIMIT, (index + 1) * size)

    @when()
    def segment(index=index, lo=lo, hi=hi, base=base):
        send("segment", (index, sieve_segment(lo, hi, base)))


parts = [None] * SEGMENTS
for _ in range(SEGMENTS):
    _, (index, found) = receive("segment", 60)
    parts[index] = found
wait()

primes = [p for part in parts for p in part]
print(f"primes below {LIMIT}: {len(primes)} (sieved in {SEGMENTS} segments)")
print(f"first ten: {primes[:10]}")
print(f"largest: {primes[-1]}")
print(f"sum: {sum(primes)}")
print(f"per segment: {[len(part) for part in parts[:4]]} ...")
print(f"every segment arrived as a list: {all(type(p) is list for p in parts)}")
print(f"matches a sequential sieve: {primes == simple_sieve(LIMIT)}")
