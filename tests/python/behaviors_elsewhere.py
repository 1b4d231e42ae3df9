"""Behaviors defined in an ordinary importable module (not __main__), at
several function depths; used by test_runtime.py."""

from __future__ import annotations

from bocpy import Cown, when

SCALE = 7


def add_later(c: Cown, amount: int) -> Cown:
    @when(c)
    def add(c):
        c.value += amount * SCALE
        return c.value

    return add


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance

    def deposit(self, amount: int) -> None:
        self.balance += amount


def deep(c: Cown) -> Cown:
    def level1():
        def level2():
            @when(c)
            def inner(c):
                c.value.deposit(5)
                return c.value.balance

            return inner

        return level2()

    return level1()


import threading

#: An unshareable module global: each worker's import of this module makes
#: its own, so a body reading it works (docs/behavior_code.md).
GUARD = threading.Lock()


def guarded_increment(c: Cown) -> Cown:
    @when(c)
    def inc(c):
        with GUARD:
            c.value += 1
        return type(GUARD).__name__

    return inc
