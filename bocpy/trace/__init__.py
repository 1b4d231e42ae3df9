"""Recording what a bocpy program does, as a Chrome/Perfetto trace.

``bocpy.trace(path)`` is a context manager: while it is open, every
behavior that runs is recorded (in C, into per-thread buffers), and on exit
the records are written to ``path`` as trace-event JSON, which
https://ui.perfetto.dev and ``chrome://tracing`` open:

* one slice per behavior on its worker's track (``worker N``), pinned
  behaviors on the ``main thread`` track; a slice's name is the behavior's
  qualified name, its arguments say where it is defined (``file:line``),
  the cowns it named, its result cown and the exception it stored, if any;
* counters with the depth of each worker's queue (sampled after every
  behavior) and of the pinned queue.

A behavior scheduled inside a ``bocpy.scope()`` has the scope's ``id`` as
its ``scope`` argument; ``trace(path, scope=s)`` keeps only the behaviors
scheduled in scope ``s`` itself (a nested scope has an id of its own).

Setting the environment variable ``BOCPY_TRACE=path`` traces a whole
program (from ``import bocpy`` to exit) without changing it.

For people who will not open Perfetto, ``python -m bocpy.trace FILE --png
OUT`` draws the timeline as a picture (needs matplotlib).

Tracing off costs one relaxed atomic load per behavior; see
``docs/observability.md`` for the cost when on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Iterator

from .. import _core
from .._compat import load_code

__all__ = ["trace", "collect", "render_png"]

#: The process id written into the trace (one process: the bocpy program).
_PID = 1
_MAIN_TID = 0
#: The worker of a behavior an external executor handled (BOC_TRACE_EXTERNAL
#: in core/exec/observe.h): recorded when the driver's executor thread handed
#: it on, on this track unless the executor reported when it ran.
_EXTERNAL = -2
_EXTERNAL_TID = 999
#: Tracks of the places an external executor reports runs on (Ray nodes):
#: track t (0, 1, ...) is written as tid _EXTERNAL_TID + 1 + t.
_external_tracks: dict[int, str] = {}
#: Run times an external executor reported while a trace is open: result
#: cown id -> (t0_ns, t1_ns, track, node), on this process's trace clock.
_external_runs: dict[int, tuple[int, int, int, str]] = {}


def record_external(result_id: int, t0_ns: int, t1_ns: int, track: int,
                    label: str, node: str) -> None:
    """An external executor (the Ray backend) reports that the behavior
    whose result cown is ``result_id`` ran from ``t0_ns`` to ``t1_ns``
    (this process's trace clock, ``_core._now_ns``) on ``track`` (a small
    number per place it runs, named ``label``) at ``node``.  Kept only
    while a trace is open: collect() puts it in place of the submission
    event."""
    if trace._open:
        _external_tracks[track] = label
        _external_runs[result_id] = (t0_ns, t1_ns, track, node)


def tracing() -> bool:
    """Whether a trace is open (an executor's reports are kept)."""
    return trace._open


class trace:
    """Context manager: record behaviors while open, write ``path`` on exit.

    Main interpreter only.  Behaviors still running when the block ends are
    not in the file: end the block after ``wait()`` or ``quiesce()`` to see
    everything.  Returns itself; after the block, ``events`` holds the
    trace events written.

    The file is opened (created or emptied) when the block starts, so a
    path that cannot be written fails at once, not at the end of the run.

    Raises:
        RuntimeError: used from a worker, or while another trace is open.
        TypeError: ``path`` is not a str or os.PathLike.
        OSError: ``path`` cannot be opened for writing (entering the block).
    """

    _open = False

    def __init__(self, path: str | os.PathLike[str], *, scope: Any = None) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"trace() path must be a str or os.PathLike, "
                            f"not {type(path).__name__}")
        self.scope_id: int | None = _scope_id(scope)
        self.path: str = os.fspath(path)
        self.events: list[dict[str, Any]] = []
        self._file: Any = None

    def __enter__(self) -> "trace":
        if not _core.is_main_interpreter():
            raise RuntimeError("bocpy.trace() can only be used on the main interpreter")
        if trace._open:
            raise RuntimeError("a bocpy.trace() is already open: traces do not nest")
        self._file = open(self.path, "w", encoding="utf-8")  # OSError: at once
        trace._open = True
        _external_runs.clear()
        _core._trace_start()
        return self

    def __exit__(self, *exc: object) -> None:
        _core._trace_stop()
        trace._open = False
        self.events = collect(scope=self.scope_id)
        f, self._file = self._file, None
        with f:
            _dump(f, self.events)


def _code_info(blob: bytes, module: str, file: str | None) -> tuple[str, str]:
    try:
        code, name = load_code(blob)
    except Exception:  # a blob this Python cannot read: name the module only
        return f"{module}.<behavior>", file or module
    return name, f"{code.co_filename}:{code.co_firstlineno}"


def _scope_id(scope: Any) -> int | None:
    """The id to filter on: None (no filter), a Scope's id, or an int."""
    if scope is None:
        return None
    if isinstance(scope, _core.Scope):
        return int(scope.id)
    if isinstance(scope, int) and not isinstance(scope, bool) and scope > 0:
        return scope
    raise TypeError(f"scope must be a bocpy.Scope, a positive scope id or None, "
                    f"not {type(scope).__name__}")


def collect(scope: Any = None) -> list[dict[str, Any]]:
    """Take the events recorded so far (and forget them) as trace-event
    dicts, ready for ``json.dump({"traceEvents": ...})``.  With ``scope``
    (a :class:`bocpy.Scope` or its ``id``) only the behaviors scheduled in
    that scope are kept (queue-depth counters are kept whatever the
    filter)."""
    want = _scope_id(scope)
    raw, codes = _core._trace_take()
    infos = {cid: _code_info(*v) for cid, v in codes.items()}
    if not raw:
        return []
    # Behaviors an external executor ran: when and where it reported.
    nodes: dict[int, str] = {}
    for i, r in enumerate(raw):
        if r[1] >= 0 and r[2] == _EXTERNAL:
            run = _external_runs.pop(r[5], None)
            if run is not None:
                t0, t1, track, node = run
                raw[i] = (t0, t1, _EXTERNAL_TID + 1 + track, *r[3:])
                nodes[i] = node
    origin = min(r[0] for r in raw)
    tracks: set[int] = set()
    out: list[dict[str, Any]] = []
    for i, r in enumerate(raw):
        tid = _MAIN_TID if r[2] == -1 else (
            _EXTERNAL_TID if r[2] == _EXTERNAL else
            r[2] if r[2] > _EXTERNAL_TID else r[2] + 1)
        tracks.add(r[2])
        ts = (r[0] - origin) / 1000.0  # microseconds
        if r[1] < 0:
            name = "pinned queue" if r[2] < 0 else f"queue worker {r[2]}"
            out.append({"name": name, "ph": "C", "ts": ts, "pid": _PID,
                        "tid": tid, "args": {"depth": r[3]}})
            continue
        t0, t1, worker, code_id, cowns, result, exc, scope_id = r
        if want is not None and scope_id != want:
            continue
        name, where = infos.get(code_id, ("<C behavior>", ""))
        args: dict[str, Any] = {"where": where, "cowns": list(cowns),
                                "result": result}
        if scope_id:
            args["scope"] = scope_id
        if i in nodes:
            args["node"] = nodes[i]
        if exc:
            args["exception"] = exc
        out.append({"name": name, "cat": "behavior", "ph": "X", "ts": ts,
                    "dur": (t1 - t0) / 1000.0, "pid": _PID, "tid": tid,
                    "args": args})
    meta = [{"name": "process_name", "ph": "M", "pid": _PID, "tid": _MAIN_TID,
             "args": {"name": "bocpy"}}]
    for w in sorted(tracks):
        if w == _EXTERNAL:
            tid, label = _EXTERNAL_TID, "driver (executor thread)"
        elif w > _EXTERNAL_TID:
            tid = w
            label = _external_tracks.get(w - _EXTERNAL_TID - 1, f"external {w}")
        else:
            tid = _MAIN_TID if w < 0 else w + 1
            label = "main thread (pinned)" if w < 0 else f"worker {w}"
        meta.append({"name": "thread_name", "ph": "M", "pid": _PID, "tid": tid,
                     "args": {"name": label}})
        meta.append({"name": "thread_sort_index", "ph": "M", "pid": _PID,
                     "tid": tid, "args": {"sort_index": tid}})
    return meta + out


def write(path: str, events: list[dict[str, Any]]) -> None:
    """Write ``events`` as a trace-event JSON file."""
    with open(path, "w", encoding="utf-8") as f:
        _dump(f, events)


def _dump(f: Any, events: list[dict[str, Any]]) -> None:
    json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)


def load(path: str) -> list[dict[str, Any]]:
    """The trace events of a file written by ``trace`` (or any trace-event
    JSON: a list, or an object with ``traceEvents``).

    Raises:
        ValueError: the file is not trace-event JSON.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise ValueError(f"{path}: not trace-event JSON (no traceEvents list)")
    return events


def _slices(events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (e for e in events if e.get("ph") == "X")


def render_png(events: list[dict[str, Any]], out: str, width: float = 12.0) -> None:
    """Draw the behaviors of ``events`` as a timeline PNG: one row per
    thread, one bar per behavior (red when it stored an exception), queue
    depths below.  Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {e["tid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
    slices = list(_slices(events))
    tids = sorted({e["tid"] for e in slices} | set(names))
    counters = [e for e in events if e.get("ph") == "C"]
    rows = max(len(tids), 1)
    fig, (ax, cax) = plt.subplots(
        2, 1, figsize=(width, 1.0 + 0.5 * rows + 1.6), sharex=True,
        gridspec_kw={"height_ratios": [max(rows, 1), 1.6]})
    palette = plt.get_cmap("tab20")
    colours: dict[str, Any] = {}
    for e in slices:
        row = tids.index(e["tid"])
        name = e["name"]
        if name not in colours:
            colours[name] = palette(len(colours) % 20)
        failed = "exception" in e.get("args", {})
        ax.broken_barh([(e["ts"] / 1000.0, max(e["dur"] / 1000.0, 1e-4))],
                       (row - 0.4, 0.8),
                       facecolors="#d62728" if failed else colours[name],
                       edgecolor="black" if failed else "none", linewidth=0.4)
    ax.set_yticks(range(len(tids)))
    ax.set_yticklabels([names.get(t, f"thread {t}") for t in tids])
    ax.invert_yaxis()
    ax.set_title(f"bocpy trace: {len(slices)} behaviors "
                 "(red: stored an exception)")
    from matplotlib.patches import Rectangle

    handles = [Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    if colours:
        ax.legend(handles[:12], list(colours)[:12], loc="upper right",
                  fontsize="small", ncol=min(len(colours), 3))
    by_track: dict[str, list[tuple[float, float]]] = {}
    for e in counters:
        by_track.setdefault(e["name"], []).append(
            (e["ts"] / 1000.0, float(e["args"].get("depth", 0))))
    for name, pts in sorted(by_track.items()):
        pts.sort()
        cax.step([p[0] for p in pts], [p[1] for p in pts], where="post",
                 label=name, linewidth=0.8)
    if by_track:
        cax.legend(loc="upper right", fontsize="small")
    cax.set_ylabel("queued")
    cax.set_xlabel("time (ms)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def summary(events: list[dict[str, Any]]) -> str:
    """One line per thread: behaviors, busy time, failures."""
    names = {e["tid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
    per: dict[int, list[dict[str, Any]]] = {}
    for e in _slices(events):
        per.setdefault(e["tid"], []).append(e)
    lines = []
    for tid in sorted(per):
        evs = per[tid]
        busy = sum(e["dur"] for e in evs) / 1000.0
        failed = sum(1 for e in evs if "exception" in e.get("args", {}))
        lines.append(f"{names.get(tid, f'thread {tid}')}: {len(evs)} behaviors, "
                     f"{busy:.3f} ms busy, {failed} failed")
    return "\n".join(lines) if lines else "no behaviors in this trace"


def _start_from_env(path: str) -> None:
    """``BOCPY_TRACE=path``: trace from now until exit.  A path that
    cannot be written ends the program at once (status 1) with the reason."""
    import atexit  # lazy: only programs traced from the environment need it

    t = trace(path)
    try:
        t.__enter__()
    except OSError as exc:
        raise SystemExit(f"bocpy: BOCPY_TRACE={path}: the trace cannot be "
                         f"written: {exc}") from None
    # Registered before bocpy's own exit hook (atexit runs last-in first-out),
    # so it runs after the remaining behaviors have run.
    atexit.register(t.__exit__, None, None, None)


def main(argv: list[str] | None = None) -> int:
    """``python -m bocpy.trace FILE [--png OUT]``: summarise a trace, and
    draw it as a PNG timeline."""
    parser = argparse.ArgumentParser(
        prog="python -m bocpy.trace",
        description="Summarise a bocpy trace (trace-event JSON) and draw it "
                    "as a PNG timeline.")
    parser.add_argument("file", help="trace written by bocpy.trace / BOCPY_TRACE")
    parser.add_argument("--png", metavar="OUT", help="write a timeline picture")
    parser.add_argument("--width", type=float, default=12.0,
                        help="picture width in inches (default 12)")
    args = parser.parse_args(argv)
    try:
        events = load(args.file)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(events))
    if args.png:
        try:
            render_png(events, args.png, args.width)
        except ImportError:
            print("error: --png needs matplotlib (pip install matplotlib)",
                  file=sys.stderr)
            return 2
        print(f"wrote {args.png}")
    return 0

