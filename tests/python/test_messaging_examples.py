"""The messaging and noticeboard examples run to completion and print
exactly what they should.

Each example runs as a script in a fresh interpreter (the one running the
tests), from a temporary directory, with two workers and this process's
environment (so PYTHONPATH reaches the package under test).
"""

from __future__ import annotations

from conftest import run_example


def test_calculator() -> None:
    assert run_example("calculator.py") == [
        "1 + 2 = 3",
        "10 - 4 = 6",
        "6 * 7 = 42",
        "22 / 7 = 3.142857",
        "22 // 7 = 3",
        "22 % 7 = 1",
        "2 ** 10 = 1024",
        "7 / 0 -> error: division by zero",
        "2 ^ 3 -> error: unknown operator '^'",
        "client behavior: 1 + 2 + ... + 10 = 55",
        "service answered 19 requests (9 from main, 10 from the client behavior)",
        "service behavior returned: 19",
    ]


def test_primes() -> None:
    assert run_example("primes.py") == [
        "primes below 1000000: 78498 (sieved in 16 segments)",
        "first ten: [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]",
        "largest: 999983",
        "sum: 37550402023",
        "per segment: [6275, 5459, 5230, 5080] ...",
        "every segment arrived as a list: True",
        "matches a sequential sieve: True",
    ]


def test_prime_factor() -> None:
    assert run_example("prime_factor.py") == [
        "1000036000099 = 1000003 x 1000033  (verified: True)",
        "9999996000000319 = 99999971 x 99999989  (verified: True)",
        "9223372021822390277 = 2147483647 x 4294967291  (verified: True)",
        "every racer finished: True",
        "some racer found each number's factor: True",
    ]
