"""Fibonacci, divide and conquer with nested behaviors.

fib(n) = fib(n - 1) + fib(n - 2). Every step of the recursion here is a
behavior running on some worker:

* ``solve(n, join)`` schedules a behavior that works out fib(n) and hands it
  to ``join``. A small ``n`` is solved directly; a larger one is split: the
  behavior makes a fresh join cown for itself and schedules two
  sub-behaviors, one for n - 1 and one for n - 2, that report into it.
* ``deliver(join, value)`` schedules a joining behavior over a join cown that
  adds one sub-result. The second delivery completes the join and passes
  the sum one level up.

No behavior ever waits for another one. A parent does not block on its
children: their deliveries carry the computation back up the tree. The two
deliveries to one join both need its cown, so they never race.

Run:  python examples/fibonacci.py
"""

from bocpy import Cown, wait, when

N = 22
CUTOFF = 10  # below this, plain recursion is cheaper than spawning behaviors


def fib_recursive(n):
    """The textbook recursion, used for the small leaves of the tree."""
    return n if n < 2 else fib_recursive(n - 1) + fib_recursive(n - 2)


def fib_iterative(n):
    """The reference answer."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def new_join(parent, parts):
    """A cown collecting ``parts`` sub-results, to be passed on to ``parent``
    (another join cown, or None at the root)."""
    return Cown({"sum": 0, "missing": parts, "leaves": 0, "parent": parent})


def deliver(join, value, leaves):
    """Schedule adding one sub-result (computed from ``leaves`` leaf tasks)
    to ``join``."""

    @when(join)
    def add(join):
        state = join.value
        state["sum"] += value
        state["leaves"] += leaves
        state["missing"] -= 1
        if state["missing"] == 0 and state["parent"] is not None:
            # This join is complete: report its sum to the level above.
            deliver(state["parent"], state["sum"], state["leaves"])


def solve(n, join):
    """Schedule the computation of fib(n), delivering the result to ``join``."""

    @when()
    def split():
        if n < CUTOFF:
            deliver(join, fib_recursive(n), 1)
        else:
            # The cown handle ``join`` is stored inside the new join's value:
            # it travels as a reference to the same cown.
            halves = new_join(join, 2)
            solve(n - 1, halves)
            solve(n - 2, halves)


root = new_join(None, 1)
solve(N, root)
wait()

result = root.value
print(f"fib({N}) with nested behaviors: {result['sum']}")
print(f"fib({N}) iterative:             {fib_iterative(N)}")
print(f"leaf tasks (n < {CUTOFF}): {result['leaves']}")
print(f"match: {result['sum'] == fib_iterative(N)}")
