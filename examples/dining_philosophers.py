"""Dining philosophers, without deadlock.

Five philosophers sit round a table, with one fork between each pair of
neighbours. To eat, a philosopher needs both the fork on their left and the
fork on their right. With locks this is the textbook deadlock: everybody
picks up their left fork and waits for ever for the right one.

With behaviors there is nothing to get wrong. A meal is a behavior over the
philosopher and both forks; the runtime hands it all three together, so
nobody ever holds one fork while waiting for the other. Philosophers who
share no fork eat at the same time.

After each meal the philosopher books the next one from inside the
behavior (a nested ``@when``), until they have eaten MEALS times.

Every fork counts how often it was used, with a deliberately slow
read-pause-write. Had two philosophers ever held the same fork at once,
both would have read the same count and one use would have been lost.

Run:  python examples/dining_philosophers.py
"""

import time

from bocpy import Cown, wait, when

NAMES = ["Aristotle", "Kant", "Spinoza", "Marx", "Russell"]
MEALS = 20
EATING_TIME = 0.001  # seconds, per fork use


def dine(philosopher, left, right):
    """Schedule the philosopher's next meal, with the forks either side."""

    @when(philosopher, left, right)
    def meal(philosopher, left, right):
        for fork in (left, right):
            uses = fork.value
            time.sleep(EATING_TIME)
            fork.value = uses + 1
        philosopher.value += 1
        if philosopher.value < MEALS:
            # Runs on the worker: the next meal is queued behind everything
            # already waiting for these forks, so neighbours get their turn.
            dine(philosopher, left, right)


forks = [Cown(0) for _ in NAMES]
philosophers = [Cown(0) for _ in NAMES]

for seat, philosopher in enumerate(philosophers):
    left = forks[seat]
    right = forks[(seat + 1) % len(forks)]
    dine(philosopher, left, right)

wait()

for name, philosopher in zip(NAMES, philosophers):
    print(f"{name} ate {philosopher.value} meals")
for number, fork in enumerate(forks):
    print(f"fork {number} was used {fork.value} times (expected {2 * MEALS})")
print("no fork was ever held by two philosophers at once:",
      all(fork.value == 2 * MEALS for fork in forks))
