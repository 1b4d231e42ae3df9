"""A progress bar over 10,000 behaviors, with bocpy.as_completed and tqdm.

Each behavior checks whether a number is prime (a small CPU task).
``as_completed(results)`` yields each result as soon as its behavior has
run, so a ``tqdm`` bar moves while the work happens, and the primes are
counted as they arrive.  ``bocpy.stats()`` is printed at the end.

tqdm is in scripts/requirements.txt; if it is not installed, the example
says so and prints a plain progress line every 10% instead.

Run:  python examples/progress.py [--count N]
"""

import argparse
import sys

import bocpy
from bocpy import Cown, as_completed, wait, when

try:
    from tqdm import tqdm
except ImportError:  # optional at run time: fall back to plain output
    tqdm = None


def is_prime(n):
    if n < 2:
        return False
    f = 2
    while f * f <= n:
        if n % f == 0:
            return False
        f += 1
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000,
                        help="behaviors to run (default 10,000)")
    count = parser.parse_args().count

    results = []
    for n in range(1_000_000, 1_000_000 + count):
        @when(Cown(n))
        def check(c):
            return is_prime(c.value)
        results.append(check)

    primes = 0
    completed = as_completed(results)
    if tqdm is not None:
        for done in tqdm(completed, total=count, unit="behavior", file=sys.stderr):
            primes += done.result()
    else:
        print("tqdm is not installed (pip install tqdm): plain progress instead")
        for i, done in enumerate(completed, 1):
            primes += done.result()
            if i % max(count // 10, 1) == 0 or i == count:
                print(f"{i}/{count} behaviors done")
    s = bocpy.stats()
    wait()
    print(f"{primes} primes among {count} numbers from 1,000,000")
    print(f"stats: {s['finished']} behaviors finished (as_completed adds one per "
          f"result), {s['failed']} failed, "
          f"{s['in_flight']} still in flight when the last result arrived")


if __name__ == "__main__":
    main()
