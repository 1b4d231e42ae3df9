"""A module whose import fails on worker interpreters (test helper)."""

from bocpy import _core, when

if not _core.is_main_interpreter():
    raise ImportError("this module refuses to load on a worker")


def schedule(c):
    @when(c)
    def body(c):
        c.value = "ran"

    return body
