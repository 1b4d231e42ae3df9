"""bocpy: Behavior-Oriented Concurrency for CPython.

Data lives in cowns; ``@when(a, b)`` schedules a behavior that runs once it
holds every cown it names, on a pool of worker sub-interpreters that each have
their own GIL.
"""

from __future__ import annotations

from . import _core

__all__ = ["WORKER_COUNT", "__version__"]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("bocpy")
    except Exception as exc:  # metadata missing: never fail the import
        import logging

        logging.getLogger("bocpy").warning(
            "bocpy version metadata unavailable (%s)", type(exc).__name__
        )
        return "0.0.0+unknown"


__version__: str = _version()

#: Default number of worker sub-interpreters: ``BOCPY_WORKERS`` when it holds
#: an integer >= 1, else physical cores (in the affinity mask) minus one.
WORKER_COUNT: int = _core.default_worker_count()
