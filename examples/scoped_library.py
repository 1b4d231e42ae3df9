"""A library function with a plain synchronous face that fans out into
behaviors internally (issue #32: structured scopes).

``longest_words(texts)`` schedules one behavior per text inside a
``bocpy.scope()``, gathers the results with ``as_completed`` and returns.
It waits for exactly its own behaviors: the program's unrelated background
stream (a counter that keeps rescheduling itself) runs on meanwhile and is
not waited for.  ``total_words(texts)`` fans out without reading the
results one by one: a failing text surfaces as an ``ExceptionGroup`` from
the call, with the behavior's traceback attached, and ``cancel_on_error``
drops the work that had not started yet.

Run: python examples/scoped_library.py
"""

from __future__ import annotations

import bocpy
from bocpy import Cown, receive, send, when


# ---- the library --------------------------------------------------------------


def longest_words(texts: list[str]) -> list[str]:
    """The longest word of each text, computed in parallel."""
    with bocpy.scope():
        results = []
        for text in texts:
            @when(Cown(text))
            def longest(t):
                return max(t.value.split(), key=len)
            results.append(longest)
        # as_completed reads each result as soon as it is ready, even while
        # unrelated behaviors keep the runtime busy.
        found = {}
        for done in bocpy.as_completed(results):
            found[results.index(done.cown)] = done.result()
    return [found[i] for i in range(len(texts))]


def total_words(texts: list[str]) -> int:
    """How many words the texts hold; an empty text is an error."""
    tag = f"total-words-{id(texts)}"
    total = Cown(0)
    with bocpy.scope(cancel_on_error=True):
        for text in texts:
            @when(Cown(text), total)
            def count(t, total):
                n = len(t.value.split())
                if n == 0:
                    raise ValueError(f"empty text: {t.value!r}")
                total.value += n

        @when(total)
        def report(total):
            from bocpy import send

            send(tag, total.value)
    # The scope has ended: every behavior of it ran (or was dropped after a
    # failure, which the scope raised as an ExceptionGroup).
    got, value = receive(tag, 0)
    assert got == tag
    return value


# ---- a program that uses it while other work runs ---------------------------------


def background(counter: Cown) -> None:
    """Unrelated work: reschedules itself until told to stop."""

    @when(counter)
    def tick(c):
        from bocpy import TIMEOUT, receive

        c.value += 1
        if receive("stop-background", 0)[0] == TIMEOUT:
            background(c)


def main() -> None:
    counter = Cown(0)
    background(counter)

    print(longest_words(["the quick brown fox", "jumps over the lazy dog",
                         "behavior oriented concurrency"]))
    print("background still running:", bocpy.stats()["in_flight"] > 0)

    print("words:", total_words(["one two", "three four five"]))
    try:
        total_words(["fine text here", "   ", "more text"])
    except Exception as group:  # an ExceptionGroup (the backport on 3.10)
        (error,) = group.exceptions
        print("caught:", error)
        print("from behavior:", error.__cause__.behavior.rsplit(".", 1)[-1])

    send("stop-background", True)
    bocpy.wait()
    print("background ran:", counter.value > 0)
    receive("stop-background", 0)  # nothing left over


if __name__ == "__main__":
    main()
