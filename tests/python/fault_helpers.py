"""Values and modules that fail on purpose, on workers only (test helpers)."""

from __future__ import annotations

from bocpy import _core


def _rebuild_everywhere_but_workers(payload):
    if not _core.is_main_interpreter():
        raise ValueError("cannot rebuild on a worker")
    return FailsOnWorkers(payload)


class FailsOnWorkers:
    """Pickles fine; unpickling raises on worker interpreters."""

    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        return (_rebuild_everywhere_but_workers, (self.payload,))


class PicklesOnce:
    """The first pickling works, later ones raise."""

    count = 0

    def __reduce__(self):
        PicklesOnce.count += 1
        if PicklesOnce.count > 1:
            raise RuntimeError("refusing to pickle twice")
        return (PicklesOnce, ())
