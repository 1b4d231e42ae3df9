"""Behaviors for the property-based tests (kept out of the test module,
which imports hypothesis: hypothesis cannot be imported in sub-interpreters)."""

from __future__ import annotations

from bocpy import Cown, when


def visit(bid: int, single: Cown, group: list[Cown]) -> Cown:
    """Records, for each distinct cown held, the version it saw; bumps it."""

    @when(single, group)
    def b(single, group):
        record = []
        seen = []
        for c in [single, *group]:
            if c in seen:
                continue
            seen.append(c)
            k, version = c.value
            record.append((k, version))
            c.value = (k, version + 1)
        return bid, record

    return b


def chatter(tag: str, values: list[int]) -> Cown:
    """Sends values to tag, in order, from a worker."""

    @when()
    def b():
        from bocpy import send

        for v in values:
            send(tag, v)

    return b
