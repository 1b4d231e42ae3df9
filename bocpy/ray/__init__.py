"""bocpy on a Ray cluster: ``bocpy.start(backend="ray")``.

The same ``@when`` program runs with its behaviors executed as Ray tasks
(see docs/distributed.md).  The C engine on the driver decides the order
(two-phase locking over per-cown queues, as on local workers); this package
is the executor that hands ready behaviors to Ray (:mod:`._driver`) and the
code a Ray worker runs for them (:mod:`._remote`).  Importing it does not
import ``ray``.
"""

from __future__ import annotations

from typing import Any

from .. import _core
from .._lifecycle import BACKENDS as BACKENDS  # what start(backend=...) accepts
from . import _driver

__all__ = ["BACKENDS", "hosted", "options", "stats"]

#: Settings of the next Ray run (see :func:`options`).
_options: dict[str, Any] = {
    "batch_size": 64,
    "batch_delay": 0.002,
    "spread": False,
    "max_retries": None,
    "scheduling_strategy": None,
}


def options(*, batch_size: int | None = None, batch_delay: float | None = None,
            spread: bool | None = None, max_retries: int | None = None,
            scheduling_strategy: Any = None) -> dict[str, Any]:
    """Set how the next ``start(backend="ray")`` submits behaviors; returns
    the settings now in force.

    Args:
        batch_size: most behaviors in one Ray task (1: one task each).
        batch_delay: seconds a batch may wait for more ready behaviors
            before it is submitted (the bound on added latency).
        spread: submit with Ray's ``"SPREAD"`` scheduling strategy, so that
            tasks go to every node instead of packing the driver's.
        max_retries: Ray's task retries on a lost worker or node (``None``:
            Ray's default, 3; ``0``: off).
        scheduling_strategy: any Ray scheduling strategy for the tasks (for
            example a ``NodeAffinitySchedulingStrategy``); overrides
            ``spread``.  ``"default"`` clears it.

    Raises:
        TypeError / ValueError: a bad setting.
    """
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError("batch_size must be an int")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        _options["batch_size"] = batch_size
    if batch_delay is not None:
        if isinstance(batch_delay, bool) or not isinstance(batch_delay, (int, float)):
            raise TypeError("batch_delay must be a number")
        if not 0 <= batch_delay <= 10:
            raise ValueError("batch_delay must be between 0 and 10 seconds")
        _options["batch_delay"] = float(batch_delay)
    if spread is not None:
        _options["spread"] = bool(spread)
    if max_retries is not None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise TypeError("max_retries must be an int")
        if max_retries < -1:
            raise ValueError("max_retries must be -1 (forever) or more")
        _options["max_retries"] = max_retries
    if scheduling_strategy is not None:
        _options["scheduling_strategy"] = (None if scheduling_strategy == "default"
                                           else scheduling_strategy)
    return dict(_options)


def before_start(address: str | None, num_cpus: int | None) -> None:
    """``start(backend="ray")``, before the runtime starts: connect to (or
    start) Ray, make this run's executor and choose it in the engine."""

    if address is not None and not isinstance(address, str):
        raise TypeError("address must be a str such as 'auto'")
    if num_cpus is not None and (isinstance(num_cpus, bool)
                                 or not isinstance(num_cpus, int) or num_cpus < 1):
        raise ValueError("num_cpus must be a positive int")
    _driver.import_ray()  # ImportError with the install hint
    _core._set_executor("external")
    try:
        _driver.start_run(address=address, num_cpus=num_cpus, **_options)
    except BaseException:
        _core._set_executor("workers")
        raise


def after_stop() -> None:
    """After ``wait()`` stopped a Ray run: end the executor's threads and
    give the next start() local workers again."""

    if _core._executor() != "external":
        return
    _core._set_executor("workers")
    _driver.stop_run()


def stats() -> dict[str, Any]:
    """Counters of the current (or last) Ray run: ``batches`` (Ray tasks
    submitted), ``behaviors``, ``nested`` (behaviors scheduled by bodies on
    Ray), ``lost_batches``, ``dropped_versions`` (versions the driver
    forgot because their cown could no longer be read: a dropped result),
    and ``nodes``: behaviors run per Ray node id."""

    c = _driver._counters
    return {
        "batches": c["batches"],
        "behaviors": c["behaviors"],
        "nested": c["nested"],
        "lost_batches": c["lost_batches"],
        "dropped_versions": c["dropped_versions"],
        "nodes": {k[5:]: v for k, v in c.items() if k.startswith("node:")},
    }


def hosted(value: Any, **actor_options: Any) -> Any:
    """A ``Cown`` whose value a Ray actor keeps in place: every behavior
    naming it runs on that actor (in scheduling order, with the other cowns'
    values sent to it), so a large value (an 8 MB array) is not copied per
    behavior, and it can be changed in place.  A behavior may name at most
    one hosted cown.  Reading ``.value`` on the driver fetches it from the
    actor; setting it sends it there before the next behavior.
    ``actor_options`` go to Ray (``num_cpus``, ``scheduling_strategy``...).

    Raises:
        RuntimeError: the Ray backend is not running.
        TypeError: the value cannot be sent to a Ray worker.
    """

    return _driver.hosted(value, **actor_options)
