"""Bank transfers: moving money atomically between accounts.

Every account lives in its own cown. A transfer is a behavior over two
cowns, the source and the destination, so it starts only once it holds
both: no other behavior can see the money after it has left one account
and before it has reached the other. Transfers between unrelated accounts
run in parallel on the workers.

All transfers are scheduled from this thread, one after another. Behaviors
that share an account run in the order they were scheduled, so the final
balances are exactly those of replaying the transfers one by one; the
script checks that at the end.

Run:  python examples/bank.py
"""

import random

from bocpy import Cown, wait, when

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank"]
OPENING_BALANCE = 100
TRANSFERS = 500
MAX_AMOUNT = 60
SEED = 2024


class Account:
    """An account: its holder, its balance, and how many of its outgoing
    transfers were refused for lack of funds."""

    def __init__(self, holder, balance):
        self.holder = holder
        self.balance = balance
        self.refused = 0


def transfer(src, dst, amount):
    """Schedule moving ``amount`` from account ``src`` to account ``dst``.

    Returns the behavior's result cown: True once the money has moved, or
    False if ``src`` could not cover the amount (nothing moves then)."""

    @when(src, dst)
    def moved(src, dst):
        # ``amount`` comes from the enclosing call: it was captured, by
        # value, when this behavior was scheduled.
        if src.value.balance < amount:
            src.value.refused += 1
            return False
        src.value.balance -= amount
        dst.value.balance += amount
        return True

    return moved


accounts = [Cown(Account(name, OPENING_BALANCE)) for name in NAMES]

# A reproducible list of (source index, destination index, amount).
rng = random.Random(SEED)
plan = []
for _ in range(TRANSFERS):
    i, j = rng.sample(range(len(NAMES)), 2)
    plan.append((i, j, rng.randint(1, MAX_AMOUNT)))

results = [transfer(accounts[i], accounts[j], amount) for i, j, amount in plan]


# An audit over *all* accounts at once (a group: the body gets a list of
# cowns). It is scheduled after every transfer, so it sees the final state.
@when(accounts)
def audit(accounts):
    return sum(account.value.balance for account in accounts)


wait()

# The same transfers, one at a time, with plain integers.
expected = [OPENING_BALANCE] * len(NAMES)
for i, j, amount in plan:
    if expected[i] >= amount:
        expected[i] -= amount
        expected[j] += amount

completed = sum(1 for r in results if r.value is True)
print(f"transfers: {len(plan)} scheduled, {completed} completed, "
      f"{len(plan) - completed} refused")
for account in accounts:
    a = account.value
    print(f"{a.holder:>6}: {a.balance:4d}  (refused {a.refused})")
total = sum(account.value.balance for account in accounts)
print(f"total: {total} (opening total {OPENING_BALANCE * len(NAMES)})")
print(f"audit behavior saw total: {audit.value}")
print(f"matches sequential replay: "
      f"{[account.value.balance for account in accounts] == expected}")
