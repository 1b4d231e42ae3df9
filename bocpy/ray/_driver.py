"""The Ray executor on the driver: submit, batch, collect.

The C engine decides the order, as on local workers: a behavior reaches
this executor (``core/exec/executor.h``) only once it holds every cown it
names.  Running it here means *submitting* it: each cown's value on the
driver is a small placeholder (:class:`_Ref`) naming the ``ObjectRef`` of
its current version in Ray's object store; the behavior is added to the open
batch, whose Ray task takes those refs as arguments and returns the cowns'
next versions and the behavior's result; the placeholders are replaced by
keys of those outputs and the behavior is released at once.  Ray starts a
task only when its argument refs are ready, so the order the engine decided
is carried by the refs, and the driver never waits for a round trip.

Consecutive ready behaviors share one Ray task (a batch) until it holds
``batch_size`` behaviors, ``batch_delay`` seconds have passed since it
opened, or nothing else is ready.  Each open or running batch is counted in
on the runtime's termination count, so ``wait()``/``quiesce()`` return only
when every submitted task has completed and the behaviors it scheduled
(``@when`` inside a body) are scheduled.

Reading ``c.value`` on the driver (after ``wait()``, or in a pinned
behavior) resolves a placeholder with ``ray.get``.
"""

from __future__ import annotations

import atexit
import io
import itertools
import os
import pickle
import sys
import threading
import time
import types
from collections import Counter
from typing import Any

from .. import _byvalue, _core, _lifecycle, _observe, _worker
from ..trace import record_external as _record_external
from ..trace import tracing as _tracing
from . import _remote

_INSTALL_HINT = ("the Ray backend needs the 'ray' package: "
                 "pip install 'bocpy-runtime[ray]'")


def import_ray() -> Any:
    """``ray``, or ImportError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return ray


class _Ref:
    """A cown's value on the driver under the Ray backend: the key of the
    ``ObjectRef`` of its current version.  Decoded on the executor's thread
    it stays a placeholder; anywhere else it resolves to the value."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key

    def __reduce__(self) -> Any:
        return (_resolve, (self.key,))

    def __repr__(self) -> str:
        return f"<value in Ray's object store #{self.key}>"


class _Hosted:
    """A hosted cown's value on the driver: the value lives in its actor.
    Decoded on the executor's thread it stays a placeholder; anywhere else
    it is fetched from the actor (after every behavior submitted so far)."""

    __slots__ = ("host_id",)

    def __init__(self, host_id: int) -> None:
        self.host_id = host_id

    def __reduce__(self) -> Any:
        return (_resolve_hosted, (self.host_id,))


#: hosted Cown handle -> its actor; id(actor) -> actor.
_hosts: dict[Any, Any] = {}
_actors: dict[int, Any] = {}


def _resolve_hosted(host_id: int) -> Any:
    ex = _executor
    if ex is not None and threading.get_ident() == ex.thread_ident:
        return _Hosted(host_id)
    ray = import_ray()
    actor = _actors.get(host_id)
    if actor is None or not ray.is_initialized():
        raise RuntimeError("bocpy: this hosted cown's actor is gone")
    # An open batch goes out within batch_delay: reading during a run sees
    # what was submitted before this call.
    return ray.get(actor.get.remote())


def hosted(value: Any, **actor_options: Any) -> Any:
    """A Cown whose value a Ray actor keeps in place (see bocpy.ray.hosted)."""
    ray = import_ray()
    ex = _executor
    if ex is None:
        raise RuntimeError("bocpy.ray.hosted() needs a running Ray backend: "
                           "call bocpy.start(backend='ray') first")
    _check_travels(value)
    actor = ray.remote(_remote.Host).options(**actor_options).remote(value)
    _actors[id(actor)] = actor
    c: _core.Cown[Any] = _core.Cown(None)
    c.value = _Hosted(id(actor))
    _hosts[c] = actor
    return c


_keys = itertools.count(1)
#: key -> ObjectRef of the version it names (absent while its batch is open).
_store: dict[int, Any] = {}
_store_cv = threading.Condition()
#: The executor of the current run (None when not on Ray).
_executor: "RayExecutor | None" = None
#: Where behaviors ran: node id -> behaviors (over every run of the process).
node_counts: Counter[str] = Counter()
#: Counters of the last run (see bocpy.ray.stats()).
_counters: Counter[str] = Counter()


def _resolve(key: int) -> Any:
    ex = _executor
    if ex is not None and threading.get_ident() == ex.thread_ident:
        return _Ref(key)
    return materialize(key)


def materialize(key: int) -> Any:
    """The value of version ``key`` (driver; blocks until it is computed)."""
    ray = import_ray()
    with _store_cv:
        while key not in _store:
            ex = _executor
            if ex is None or not ex.alive:
                raise RuntimeError(
                    f"bocpy: the value of this cown (version #{key}) was lost: "
                    "its Ray task was never submitted")
            _store_cv.wait(0.05)
        ref = _store[key]
    if not ray.is_initialized():
        raise RuntimeError(
            "bocpy: this cown's value lived in Ray's object store, and Ray "
            "has been shut down")
    return ray.get(ref)


class _Batch:
    """Behaviors submitted together as one Ray task."""

    def __init__(self, host: Any = None) -> None:
        #: the actor of the hosted cown this batch runs on, or None (a task)
        self.host = host
        self.host_slot = -1
        #: unique in the process: names the batch in cown tokens
        self.seq = next(_keys)
        self.opened = time.monotonic()
        self.ops: list[tuple[Any, ...]] = []
        self.nslots = 0
        self.in_slots: list[int] = []
        self.inputs: list[Any] = []
        #: key -> the slot holding that version (produced in this batch).
        self.slot_of_key: dict[int, int] = {}
        #: the live key of each slot produced here, in order.
        self.live: dict[int, int] = {}
        #: slot -> the driver's Cown handle it belongs to (nested @when).
        self.cown_of_slot: dict[int, Any] = {}
        self.results: list[Any] = []  # result handle per op
        self.result_keys: list[int] = []  # its version key per op

    def slot(self, cown: Any) -> int:
        s = self.nslots
        self.nslots += 1
        self.cown_of_slot[s] = cown
        return s


def _spec_dumps(batch: _Batch, out_slots: list[int]) -> bytes:
    """Pickle a batch spec: behavior bodies always by value (a Ray worker
    has no copy of the driver's ``__main__``), captured cowns as tokens,
    anything else as :mod:`bocpy._byvalue` does."""
    buf = io.BytesIO()
    pickler = _BodyPickler(buf, 5)
    pickler.batch = batch
    pickler.dump((batch.seq, batch.ops, batch.in_slots, out_slots))
    return buf.getvalue()


class _BodyPickler(_byvalue._Pickler):
    batch: _Batch

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.FunctionType and obj.__module__ == "__main__":
            return _byvalue._reduce_function(obj)
        if isinstance(obj, _core.Cown):
            # A cown a body captured without naming it: a token there, usable
            # as an argument of a nested @when (its value is not held).
            return (_remote.unheld_cown, (self.batch.slot(obj),))
        return super().reducer_override(obj)


#: Versions tracked before the first sweep (see RayExecutor.sweep).
_SWEEP_MIN = 1024
_sweep_at = _SWEEP_MIN
#: Published version key -> a handle of its cown (see RayExecutor.sweep).
_owners: dict[int, Any] = {}


class RayExecutor:
    """The executor thread and the completion thread of one run."""

    def __init__(self, ray: Any, *, batch_size: int, batch_delay: float,
                 spread: bool, max_retries: int | None,
                 scheduling_strategy: Any = None) -> None:
        self.ray = ray
        self.batch_size = batch_size
        self.batch_delay = batch_delay
        self.alive = True
        self.thread_ident = -1
        self.batch: _Batch | None = None
        self.pending: dict[Any, _Batch] = {}  # status ref -> batch
        self.pending_cv = threading.Condition()
        self.error: BaseException | None = None
        options: dict[str, Any] = {}
        if scheduling_strategy is not None:
            options["scheduling_strategy"] = scheduling_strategy
        elif spread:
            options["scheduling_strategy"] = "SPREAD"
        if max_retries is not None:
            options["max_retries"] = max_retries
        self.task_options = options
        self._tasks: dict[int, Any] = {}
        #: published version key -> a handle of the cown it is a version
        #: of (touched by the submitter thread, or between runs): see
        #: sweep().  Kept over runs: a cown dropped after its run is
        #: forgotten by the next run's sweeps.
        self.owners = _owners
        run_id = os.urandom(8).hex()
        conf = (run_id, list(sys.path), _worker.main_source())
        # The run's configuration is built into its task function (Ray
        # exports it once; each worker loads it once: _remote.task_of_run);
        # actor calls take it as a ref nested in a list, which is not
        # resolved with every call (see _remote._configure).
        self.task = ray.remote(_remote.task_of_run((run_id, conf)))
        self.cfg = (run_id, [ray.put(conf)])
        _counters.clear()
        self.submitter = threading.Thread(target=self._submit_loop,
                                          name="bocpy-ray-submit", daemon=True)
        self.collector = threading.Thread(target=self._collect_loop,
                                          name="bocpy-ray-collect", daemon=True)
        self.started = threading.Event()

    def start(self) -> None:
        self.submitter.start()
        self.started.wait()
        self.collector.start()

    # ---- the executor thread: submit and batch ---------------------------

    def _submit_loop(self) -> None:
        self.thread_ident = threading.get_ident()
        self.started.set()
        while self.alive:
            batch = self.batch
            if batch is None:
                timeout = 0.1
            else:
                timeout = max(0.0, batch.opened + self.batch_delay - time.monotonic())
                if len(batch.ops) >= self.batch_size:
                    timeout = 0.0
            try:
                ran = _core._external_run(self._call, timeout)
            except BaseException as exc:  # never expected: keep serving
                self.error = exc
                ran = False
            batch = self.batch
            if batch is not None and (
                    not ran or len(batch.ops) >= self.batch_size
                    or time.monotonic() - batch.opened >= self.batch_delay):
                self._flush()

    def _call(self, fn: Any, args: tuple[Any, ...], nargs: int, result: Any) -> Any:
        """The call hook of core/exec: runs (submits) one behavior.  With
        ``fn`` None, a C behavior of the C ABI is about to run on this
        thread over the cowns ``args``: make their values real here."""
        if fn is None:
            self._fetch_here(args)
            return None
        if not isinstance(fn, types.FunctionType):
            raise TypeError("only Python behaviors can run on the Ray backend")
        if fn.__code__ in _driver_side():
            return self._run_here(fn, args, nargs)
        shape: list[int] = []
        handles: list[Any] = []
        for a in args[:nargs]:
            if isinstance(a, list):
                shape.append(len(a))
                handles.extend(a)
            else:
                shape.append(-1)
                handles.append(a)
        extras = list(args[nargs:])
        # First the values, so that a value that cannot travel fails this
        # behavior (its cowns untouched), never the batch.
        values: dict[Any, Any] = {}
        for h in handles:
            if h not in values:
                v = values[h] = h.value
                if not isinstance(v, (_Ref, _Hosted)):
                    _check_travels(v)
        hosts = {_hosts[h] for h in values if h in _hosts}
        if len(hosts) > 1:
            raise TypeError("a behavior can name at most one hosted cown "
                            "(bocpy.ray.hosted) on the Ray backend")
        host = hosts.pop() if hosts else None
        batch = self.batch
        if batch is not None and batch.host is not host:
            self._flush()  # a batch runs on one host (or none)
            batch = None
        if batch is None:
            _core._external_hold()  # until the batch's task completes
            batch = self.batch = _Batch(host)
        arg_slots: list[int] = []
        arg_outs: list[int] = []
        seen: dict[Any, tuple[int, int]] = {}
        for h in handles:
            if h in seen:  # the same cown named twice: one value
                s, o = seen[h]
                arg_slots.append(s)
                arg_outs.append(o)
                continue
            v = values[h]
            if h in _hosts:
                if batch.host_slot < 0:
                    batch.host_slot = batch.slot(h)
                if not isinstance(v, _Hosted):
                    assert host is not None  # a hosted cown names its actor
                    # Set on the driver since: the actor takes it first
                    # (actor calls from here run in submission order).
                    host.set.remote(v)
                    h.value = _Hosted(id(host))
                seen[h] = (batch.host_slot, batch.host_slot)
                arg_slots.append(batch.host_slot)
                arg_outs.append(batch.host_slot)
                continue
            if isinstance(v, _Ref) and v.key in batch.slot_of_key:
                s = batch.slot_of_key.pop(v.key)
                batch.live.pop(s, None)
            else:
                s = batch.slot(h)
                batch.in_slots.append(s)
                if isinstance(v, _Ref):
                    batch.inputs.append(self._take_version(v.key))
                else:
                    batch.inputs.append(v)
            o = batch.slot(h)
            key = next(_keys)
            batch.slot_of_key[key] = o
            batch.live[o] = key
            h.value = _Ref(key)
            seen[h] = (s, o)
            arg_slots.append(s)
            arg_outs.append(o)
        r = batch.slot(result)
        rkey = next(_keys)
        batch.slot_of_key[rkey] = r
        batch.live[r] = rkey
        batch.ops.append((fn, shape, arg_slots, arg_outs, r, tuple(extras)))
        batch.results.append(result)
        batch.result_keys.append(rkey)
        return _Ref(rkey)

    def _run_here(self, fn: Any, args: tuple[Any, ...], nargs: int) -> Any:
        """Runs one of bocpy's own driver-side behaviors (as_completed's
        report) here, on the cowns' current values."""
        self._fetch_here([h for a in args[:nargs]
                          for h in (a if isinstance(a, list) else [a])])
        return fn(*args)

    def _take_version(self, key: int) -> Any:
        """The ObjectRef of the published version ``key``, which its one
        reader now takes (None if it was lost); the sweep forgets it too."""
        with _store_cv:
            ref = _store.pop(key, None)
        self.owners.pop(key, None)
        return ref

    def _fetch_here(self, handles: Any) -> None:
        """Make the held cowns' values real on the driver, in order: submit
        what is open, then fetch each current version (blocking this thread
        until it exists; a hosted cown's from its actor, after the calls
        already made to it).  The behaviors after this one take the values
        from the driver again (sent with their task, or to the actor)."""
        self._flush()
        for h in handles:
            v = h.value
            if isinstance(v, _Ref):
                ref = self._take_version(v.key)
                if ref is None:
                    raise RuntimeError("bocpy: a cown's value was lost")
            elif isinstance(v, _Hosted):
                ref = _hosts[h].get.remote()
            else:
                continue
            try:
                h.value = self.ray.get(ref)
            except Exception as exc:
                h.value = RuntimeError(f"bocpy: this cown's value was lost: {exc}")
                h.exception = True

    def _task(self, num_returns: int) -> Any:
        """The task with these options (made once per count of returns)."""
        task = self._tasks.get(num_returns)
        if task is None:
            if len(self._tasks) > 256:
                self._tasks.clear()
            task = self._tasks[num_returns] = self.task.options(
                num_returns=num_returns, **self.task_options)
        return task

    def _flush(self) -> None:
        batch, self.batch = self.batch, None
        if batch is None:
            return
        if not batch.ops:
            _core._external_unhold()
            return
        out_slots = list(batch.live)
        out_keys = [batch.live[s] for s in out_slots]
        try:
            spec = _spec_dumps(batch, out_slots)
            if batch.host is not None:
                refs = batch.host.run.options(num_returns=len(out_slots) + 1).remote(
                    spec, self.cfg, batch.host_slot, *batch.inputs)
            else:
                refs = self._task(len(out_slots) + 1).remote(spec, *batch.inputs)
        except Exception as exc:
            # Nothing of the batch can run: every version it would have made
            # holds the error, so no cown is silently stale.
            err = RuntimeError(f"bocpy: a batch of behaviors could not be "
                               f"submitted to Ray: {exc!r}")
            err.__cause__ = exc
            refs = [self.ray.put(err) for _ in out_slots] + [None]
            for h in batch.results:
                _core._mark_exception(h)
        # Counted before the versions are published: a reader that sees a
        # new version also sees the batch counted.
        _counters["batches"] += 1
        _counters["behaviors"] += len(batch.ops)
        with _store_cv:
            for key, ref in zip(out_keys, refs):
                _store[key] = ref
            _store_cv.notify_all()
        owners = self.owners
        for s, key in zip(out_slots, out_keys):
            owners[key] = batch.cown_of_slot[s]
        if len(owners) >= _sweep_at:
            self.sweep()
        status = refs[-1]
        if status is None:
            _core._external_unhold()
            return
        batch.inputs = []  # Ray holds what the task needs
        with self.pending_cv:
            self.pending[status] = batch
            self.pending_cv.notify()

    def sweep(self) -> int:
        """Forget the versions whose cown can no longer be read: the
        program dropped it (a result it did not keep, a cown it let go) and
        no behavior names it.  Submitter thread (or after the run).  Runs
        when the tracked versions have doubled since the last sweep, so its
        cost per behavior is constant; returns how many it dropped."""
        dead = [key for key, h in self.owners.items() if _core._cown_unshared(h)]
        with _store_cv:
            for key in dead:
                _store.pop(key, None)
        for key in dead:
            del self.owners[key]
        _counters["dropped_versions"] += len(dead)
        global _sweep_at
        _sweep_at = max(_SWEEP_MIN, 2 * len(self.owners))
        return len(dead)

    # ---- the completion thread -------------------------------------------

    def _collect_loop(self) -> None:
        ray = self.ray
        while True:
            with self.pending_cv:
                while not self.pending and self.alive:
                    self.pending_cv.wait(0.1)
                if not self.pending and not self.alive:
                    return
                # The oldest few: tasks finish roughly in submission order,
                # and ray.wait costs time in the length of its list.
                waiting = list(itertools.islice(self.pending, 128))
            done, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0.02,
                               fetch_local=True)
            # One ray.get for every status that is ready (fewer calls into
            # Ray); one by one if any of them holds an error.
            statuses: list[Any] = [None] * len(done)
            try:
                statuses = ray.get(done)
            except Exception:
                pass
            for ref, status in zip(done, statuses):
                with self.pending_cv:
                    batch = self.pending.pop(ref)
                try:
                    self._complete(ref, batch, status)
                except BaseException as exc:  # report, never stop collecting
                    self.error = exc
                finally:
                    _core._external_unhold()

    def _complete(self, ref: Any, batch: _Batch, status: Any = None) -> None:
        try:
            node, raised, spawns, times, minted = (self.ray.get(ref) if status is None
                                                   else status)
        except Exception as exc:
            # The task was lost (retries off or exhausted), or an input it
            # needed was: its behaviors' result cowns hold a RuntimeError that
            # says so; the versions of its argument cowns raise Ray's error
            # when read (never a stale value).
            _counters["lost_batches"] += 1
            err = RuntimeError(
                "bocpy: this behavior was lost: its Ray task failed "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            lost = self.ray.put(err)
            with _store_cv:
                for key in batch.result_keys:
                    if key in _store:
                        _store[key] = lost
            for h in batch.results:
                _core._mark_exception(h)
            if _counters["lost_batches"] == 1:
                sys.stderr.write(
                    f"bocpy: a Ray task of {len(batch.ops)} behaviors failed "
                    f"({type(exc).__name__}); the result cowns of lost "
                    "behaviors hold a RuntimeError (bocpy.ray.stats() counts "
                    "lost tasks)\n")
            return
        if minted:
            with _store_cv:
                for slot in minted:
                    _travelled[(batch.seq, slot)] = batch.cown_of_slot[slot]
                _store_cv.notify_all()
        node_counts[node] += len(batch.ops)
        _counters["node:" + node] += len(batch.ops)
        if _tracing():
            _trace_runs(node, batch, times)
        for index in raised:
            _core._mark_exception(batch.results[index])
        if spawns is not None:
            _unpickling.batch = batch
            _unpickling.made = {}
            try:
                nested = pickle.loads(spawns)
            finally:
                _unpickling.batch = None
                _unpickling.made = {}
            for index, fn, tokens in nested:
                args = [_cowns(batch, t) for t in tokens]
                _core._whencall(fn, args, ())
                _counters["nested"] += 1

    def stop(self) -> None:
        """After the runtime stopped (nothing in flight): end both threads."""
        self.alive = False
        with self.pending_cv:
            self.pending_cv.notify_all()
        self.submitter.join()
        self.collector.join()
        self.sweep()


#: Ray node id -> its track in bocpy.trace (0, 1, ... in the order seen).
_node_tracks: dict[str, int] = {}


def _trace_runs(node: str, batch: _Batch, times: list[tuple[int, int]]) -> None:
    """Report to bocpy.trace when and where each behavior of a completed
    batch ran.  The task measured each body's start on its node's wall
    clock and its duration there; the start is moved to this process's
    trace clock through the wall clock (nodes' clocks are as synchronised
    as the machines are; a duration is exact)."""
    track = _node_tracks.setdefault(node, len(_node_tracks))
    label = f"Ray node {track} ({node[:8]})"
    offset = _core._now_ns() - time.time_ns()
    for h, (started, dur) in zip(batch.results, times):
        t0 = started + offset
        _record_external(_core._cown_id(h), t0, t0 + dur, track, label, node)


#: The batch whose spawned behaviors are being unpickled (collector thread).
_unpickling = threading.local()


def cown_of_token(token: int) -> Any:
    """The driver's Cown for a cown a body on Ray captured in a nested
    behavior (see bocpy.ray._remote._SpawnPickler)."""
    batch = getattr(_unpickling, "batch", None)
    if batch is None:
        raise RuntimeError("a cown token outside a Ray batch's completion")
    return batch.cown_of_slot[token]


_driver_codes: frozenset[Any] | None = None


def _driver_side() -> frozenset[Any]:
    """Code of bocpy's own behaviors that must run on the driver (they talk
    to the main thread through its message queues)."""
    global _driver_codes
    if _driver_codes is None:
        _driver_codes = frozenset({_observe._notify.__code__})
    return _driver_codes


def new_cown(key: int, value: Any) -> Any:
    """The driver's Cown for one a body on Ray made (one per cown there)."""
    made = _unpickling.made
    c = made.get(key)
    if c is None:
        c = made[key] = _core.Cown(value)
    return c


def _cowns(batch: _Batch, token: Any) -> Any:
    if isinstance(token, list):
        return [_cowns(batch, t) for t in token]
    if isinstance(token, _core.Cown):
        return token
    return batch.cown_of_slot[token]


class _TravelCheck(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _core.Cown):
            return (int, ())  # travels as a token (_cown_serializer)
        return NotImplemented


def _check_travels(value: Any) -> None:
    """TypeError unless ``value`` (a cown's value set on the driver, sent
    to Ray on its first use) can be sent to a Ray worker."""
    if type(value) in (type(None), bool, int, float, str, bytes):
        return
    try:
        _TravelCheck(io.BytesIO(), 5).dump(value)
    except TypeError:
        raise
    except Exception as exc:
        raise TypeError(f"a cown's value cannot be sent to a Ray worker: {exc!r}") from exc


#: Cowns that went to Ray inside a value: token key (the cown's id when the
#: driver sent it; (batch, slot) when a behavior on Ray stored a cown it
#: named) -> a handle.  Kept for the life of the process (a token in Ray's
#: object store may come back to the driver at any time).
_travelled: dict[Any, Any] = {}


def _cown_serializer(cown: Any) -> Any:
    """Ray's serializer for a Cown inside a value sent from the driver: its
    id, a token that means this cown wherever the value goes (see
    _remote.token_cown)."""
    cid: int = _core._cown_id(cown)
    if cid not in _travelled:
        _travelled[cid] = cown
    return cid


def travelled_cown(key: Any) -> Any:
    """The driver's Cown for the token ``key`` (a cown inside a value).  A
    token a behavior on Ray made is known once its batch's completion is
    processed (it can be read before that, mid-run): waits for it."""
    deadline = time.monotonic() + 60.0
    with _store_cv:
        while key not in _travelled:
            ex = _executor
            if (ex is None or not ex.alive or threading.get_ident()
                    == getattr(ex.collector, "ident", None)
                    or time.monotonic() > deadline):
                raise RuntimeError(
                    f"bocpy: a cown token ({key!r}) this driver does not know "
                    "(its behavior's Ray task was lost)")
            _store_cv.wait(0.05)
        return _travelled[key]


def start_run(*, address: str | None, num_cpus: int | None, batch_size: int,
              batch_delay: float, spread: bool, max_retries: int | None,
              scheduling_strategy: Any = None) -> None:
    """Connect to (or start) Ray and make the executor of the next run
    (main interpreter, runtime stopped)."""
    global _executor
    ray = import_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False,
                                  "log_to_driver": True}
        if address is not None:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    ray.util.register_serializer(_core.Cown, serializer=_cown_serializer,
                                 deserializer=_remote.token_cown)
    _remote.on_driver = True
    global _exit_hook
    if not _exit_hook:
        # Registered after ray.init(), so it runs before Ray's own exit hook
        # shuts Ray down: a program that ends without wait() still drains.
        atexit.register(_drain_at_exit)
        _exit_hook = True
    ex = RayExecutor(ray, batch_size=batch_size, batch_delay=batch_delay,
                     spread=spread, max_retries=max_retries,
                     scheduling_strategy=scheduling_strategy)
    _executor = ex
    ex.start()


_exit_hook = False


def _drain_at_exit() -> None:
    if _executor is not None and _core.running():
        try:
            _lifecycle.wait()
        except BaseException as exc:  # at exit: say so, never hang
            sys.stderr.write(f"bocpy: draining the Ray run at exit failed: {exc!r}\n")


def stop_run() -> None:
    """After ``wait()`` stopped the runtime: end the executor's threads
    (the placeholders stay resolvable while Ray runs)."""
    global _executor
    ex = _executor
    if ex is None:
        return
    ex.stop()
    _executor = None
    if ex.error is not None:
        raise RuntimeError("bocpy's Ray executor failed") from ex.error


_remote.driver_hooks.update(new_cown=new_cown, cown_of_token=cown_of_token,
                            travelled_cown=travelled_cown)
