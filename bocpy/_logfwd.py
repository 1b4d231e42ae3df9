"""Workers follow the main interpreter's ``logging`` configuration.

When the runtime starts, the main interpreter hands every worker its root
level and the levels set on named loggers; each worker installs one handler
on its root logger that sends every record it lets through to the main
interpreter, where it is handled by the logger of the same name, so the
main interpreter's handlers, formats and filters apply.  Records travel as
pinned behaviors on one ``PinnedCown``: they are handled on the main thread
whenever it runs pinned work (``wait()``, ``quiesce()``, ``pump()``), in the
order each worker emitted them.
"""

from __future__ import annotations

import logging
from typing import Any

from . import _core

#: Main interpreter: the PinnedCown that records are delivered through.
_pin: Any = None
#: Worker: the index of this worker (for the record's threadName).
_worker_index = -1

_PLAIN = (str, int, float, bool, type(None))


def worker_config() -> tuple[int, dict[str, int], Any]:
    """Main interpreter: what each worker needs (see the module docstring)."""
    global _pin
    if _pin is None:
        _pin = _core.PinnedCown(None)
    levels = {name: lg.level for name, lg in list(logging.root.manager.loggerDict.items())
              if isinstance(lg, logging.Logger) and lg.level != logging.NOTSET}
    return (logging.root.level, levels, _pin)


def install(config: tuple[int, dict[str, int], Any], worker_index: int) -> None:
    """Worker: apply the main interpreter's levels and forward records."""
    global _worker_index
    _worker_index = worker_index
    root_level, levels, pin = config
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _Forward):
            root.removeHandler(h)
    root.addHandler(_Forward(pin))
    root.setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _record_dict(record: logging.LogRecord) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in record.__dict__.items():
        d[k] = v if isinstance(v, _PLAIN) else repr(v)
    d["msg"] = record.getMessage()
    d["args"] = None
    if record.exc_info:
        d["exc_text"] = logging.Formatter().formatException(record.exc_info)
    d["exc_info"] = None
    d["threadName"] = f"bocpy-worker-{_worker_index}"
    d["bocpy_worker"] = _worker_index
    return d


def _deliver(pin: Any, record: dict[str, Any]) -> None:
    """Pinned behavior (main thread): hand a worker's record to the logger
    of the same name here."""

    rec = logging.makeLogRecord(record)
    logging.getLogger(rec.name).handle(rec)


class _Forward(logging.Handler):
    """Sends records to the main interpreter (see the module docstring)."""

    def __init__(self, pin: Any) -> None:
        super().__init__()
        self.pin = pin

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # bocpy.whencall's own steps, without importing bocpy._when
            # (which sits above this module: docs/development.md, "Layers
            # of the Python package").
            if not _core.running():
                raise RuntimeError("runtime is not running: call start() or use @when")
            _core._whencall(_deliver, [self.pin], (_record_dict(record),))
        except Exception:
            # The runtime is stopping (or the record cannot travel): report
            # it here (logging's handleError) rather than lose it silently.
            self.handleError(record)
