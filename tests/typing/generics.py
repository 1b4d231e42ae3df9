"""Checked by ``mypy --strict`` and ``pyright`` (scripts/test.sh), never run:
the types bocpy's public API gives (issue 27).  ``assert_type`` fails the
type check when an inferred type differs (e.g. ``Cown[Any]``)."""

from __future__ import annotations

from typing import Any, assert_type

import bocpy
from bocpy import Completed, Cown, WaitResult, as_completed, quiesce, receive, wait, when
from bocpy._observe import RuntimeStats


def behaviors() -> None:
    c = Cown(3)
    assert_type(c, Cown[int])

    @when(c)
    def name(c: Cown[int]) -> str:
        return str(c.value)

    assert_type(name, Cown[str])
    assert_type(name.value, str)
    assert_type(name.unwrap(), str)

    @when()
    def nothing() -> None:
        pass

    assert_type(nothing, Cown[None])
    def double(c: Cown[int]) -> float:
        return c.value * 2.0

    assert_type(bocpy.whencall(double, [c]), Cown[float])

    for done in as_completed([name]):
        assert_type(done, Completed[str])
        assert_type(done.value, str)
        assert_type(done.result(), str)
        assert_type(done.cown, Cown[str])


def messaging() -> None:
    assert_type(receive("tag"), tuple[str, Any])
    assert_type(receive(["a", "b"], 0.5), tuple[str, Any])
    assert_type(receive("tag", 1.0, lambda: 7), tuple[str, Any] | int)
    assert_type(receive("tag", after=lambda: "late"), tuple[str, Any] | str)


def waits() -> None:
    assert_type(wait(), None)
    assert_type(wait(1.0, stats=True), list[dict[str, int]])
    assert_type(wait(noticeboard=True), dict[str, Any])
    assert_type(wait(stats=True, noticeboard=True), WaitResult)
    assert_type(quiesce(stats=True), list[dict[str, int]])
    s = bocpy.stats()
    assert_type(s, RuntimeStats)
    assert_type(s["workers"][0]["running"], bool)
    assert_type(s["pinned"]["oldest_age_s"], float)


async def awaits() -> None:
    import bocpy.aio

    c = Cown(b"x")
    assert_type(await bocpy.aio.result(c), bytes)
