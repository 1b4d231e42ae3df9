"""The code a Ray worker runs for bocpy: one batch of behaviors per task.

A batch arrives as a spec pickled on the driver (see
:mod:`bocpy.ray._driver`) and the cown values it starts from, as the task's
arguments (Ray resolves the ``ObjectRef`` ones before the task starts, which
is what orders batches).  Each behavior of the batch runs in turn, in the
order the driver's engine made them ready, over :class:`RemoteCown` objects;
the task returns the next version of every cown the batch touched, the
result of every behavior, and a status record: where it ran, which bodies
raised, and the behaviors their bodies scheduled (``@when`` inside a body),
which the driver schedules once this task has completed.

Runs in Ray worker processes (the main interpreter of each): importing it
must not start bocpy's runtime.
"""

from __future__ import annotations

import io
import pickle
import sys
import time
import types
from typing import Any, Callable

import bocpy

from .. import _byvalue, _core, _errors, _worker

#: The configuration applied in this process: (run id, sys.path entries).
_configured: Any = None


_PLAIN = (type(None), bool, int, float, str, bytes)


class RemoteCown:
    """A cown inside a behavior running on Ray: ``.value`` is the value the
    behavior holds (read and write it as in a local behavior); passing it to
    ``@when`` inside the body schedules a nested behavior on the driver."""

    __slots__ = ("_value", "_token", "_exception", "_held", "_batch")

    def __init__(self, value: Any, token: Any, exception: bool = False,
                 held: bool = True, batch: int = 0) -> None:
        self._value = value
        self._token = token
        self._exception = exception
        self._held = held
        #: the sequence number of its batch (a cown the batch names), or 0
        self._batch = batch

    def _check(self) -> None:
        if not self._held:
            raise RuntimeError(
                "this cown is not held by this behavior (it was captured, not "
                "named in @when): name it in @when to use its value")

    @property
    def value(self) -> Any:
        self._check()
        return self._value

    @value.setter
    def value(self, v: Any) -> None:
        self._check()
        self._value = v
        self._exception = False

    @property
    def acquired(self) -> bool:
        return self._held

    @property
    def exception(self) -> bool:
        return self._exception

    def __repr__(self) -> str:
        return f"RemoteCown(value={self._value!r})"

    def __reduce__(self) -> Any:
        if self._batch:
            # A cown the behavior named, stored in a value or returned: a
            # token (its batch reports it, so that the driver maps it back).
            return (token_cown, ((self._batch, self._token),))
        raise TypeError(
            "a cown a behavior running on Ray captured without naming it "
            "cannot leave the behavior (in a return value or a cown's "
            "value); name it in @when, or pass it to a nested @when"
        )


class TravelledCown(RemoteCown):
    """A cown inside a cown's value, on Ray: not held (reading its value
    raises, as for a cown a local behavior did not name); usable as an
    argument of a nested ``@when``; wherever the value goes (the next
    behavior, the driver) it stays the same cown."""

    __slots__ = ()

    def __init__(self, key: Any) -> None:
        super().__init__(None, key, held=False)

    def __repr__(self) -> str:
        return f"Cown(#{self._token}, value=<not held by this behavior>)"

    def __reduce__(self) -> Any:
        return (token_cown, (self._token,))


#: True in the driver's process (set by bocpy.ray._driver.start_run).
on_driver = False


def token_cown(key: Any) -> Any:
    """Unpickles the token of a cown inside a value (``key``: its id when
    the driver sent it, (batch, slot) when a behavior on Ray stored it):
    the Cown itself on the driver, a :class:`TravelledCown` in a Ray
    worker."""
    if on_driver:
        return driver_hooks["travelled_cown"](key)
    return TravelledCown(key)


def unheld_cown(token: int) -> RemoteCown:
    """Unpickles a cown a body captured without naming it (see
    bocpy.ray._driver._BodyPickler)."""
    return RemoteCown(None, token, held=False)


class NestedResult:
    """What ``@when`` inside a body running on Ray returns: the nested
    behavior is scheduled by the driver once this body's task completes, so
    its result cannot be read here."""

    __slots__ = ()

    @property
    def value(self) -> Any:
        raise RuntimeError(
            "the result of a @when scheduled inside a behavior running on "
            "Ray is not available inside that behavior: the nested behavior "
            "is scheduled when its parent completes (docs/distributed.md)"
        )

    def __reduce__(self) -> Any:
        raise TypeError("the result of a nested @when cannot leave its behavior")


class _SpawnPickler(_byvalue._Pickler):
    """Pickles the behaviors a body scheduled: functions by value, and each
    of the batch's cowns (as an argument or captured by the nested body) as
    its token, which the driver turns back into its Cown."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is TravelledCown:
            return (token_cown, (obj._token,))
        if type(obj) is RemoteCown:
            return (_cown_of_token, (obj._token,))
        if isinstance(obj, _core.Cown):
            # A cown this body made: its value travels; the driver makes one
            # Cown per cown made here (pickle's memo keeps it one).
            return (_new_cown, (id(obj), obj.value))
        return super().reducer_override(obj)


#: What the two functions below call: set by :mod:`bocpy.ray._driver` when
#: it is imported (it imports this module, so this one cannot import it; they
#: are only ever called on the driver, where it is loaded).
driver_hooks: dict[str, Callable[..., Any]] = {}


def _new_cown(key: int, value: Any) -> Any:
    """Unpickled on the driver: the Cown for one made in a body on Ray."""
    return driver_hooks["new_cown"](key, value)


def _cown_of_token(token: int) -> Any:
    """Unpickled on the driver (see bocpy.ray._driver._complete)."""
    return driver_hooks["cown_of_token"](token)


#: Behaviors scheduled by the body now running: (function, argument tokens).
_spawned: list[tuple[Any, Any]] | None = None


def _token_of(arg: Any, pos: int) -> Any:
    if isinstance(arg, TravelledCown):
        return arg  # pickled as itself: the driver's Cown
    if isinstance(arg, RemoteCown):
        return arg._token
    if isinstance(arg, (list, tuple)):
        return [_token_of(a, pos) for a in arg]
    if isinstance(arg, _core.Cown):
        return arg  # made in this body: travels by value, made on the driver
    raise TypeError(
        f"@when argument {pos} must be a Cown or a list of Cowns, not "
        f"{type(arg).__name__}"
    )


def remote_when(*cowns: Any) -> Callable[[Any], NestedResult]:
    """``@when`` inside a body running on Ray: records the behavior; the
    driver schedules it when this body's task has completed."""
    tokens = [_token_of(c, i) for i, c in enumerate(cowns)]

    def schedule(fn: Any) -> NestedResult:
        if _spawned is None:
            raise RuntimeError("@when on a Ray worker outside a behavior")
        _spawned.append((fn, tokens))
        return NestedResult()

    return schedule


def remote_whencall(fn: Any, args: Any, captures: Any = ()) -> NestedResult:
    """``whencall`` inside a body running on Ray (see :func:`remote_when`)."""
    if captures:
        raise TypeError("whencall() captures are not supported on the Ray backend")
    return remote_when(*args)(fn)


#: Functions that would act on this Ray worker's own, local message queues
#: or noticeboard: inside a behavior on Ray they raise instead.
_LOCAL_ONLY = ("send", "receive", "drain", "set_tags", "notice_write",
               "notice_update", "notice_delete", "notice_read", "noticeboard",
               "notice_sync", "notice_seed")


def _local_only(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{name}() is not supported inside a behavior running on the Ray "
            "backend: message queues and the noticeboard belong to one "
            "process, and this body runs in a Ray worker (see "
            "docs/distributed.md); pass data through cowns, or use a "
            "PinnedCown behavior, which runs on the driver")

    refuse.__name__ = name
    return refuse


_originals: dict[int, Any] = {}


def _patch_namespace(ns: dict[str, Any]) -> None:
    """Module-level names bound to ``when``/``whencall`` in a namespace that
    behaviors run in here now schedule nested behaviors (this process runs
    no bocpy runtime); the messaging and noticeboard functions refuse."""
    for name, value in list(ns.items()):
        if value is _core.when:
            ns[name] = remote_when
        elif value is _whencall_orig:
            ns[name] = remote_whencall
        else:
            replacement = _originals.get(id(value))
            if replacement is not None:
                ns[name] = replacement


_whencall_orig: Any = None
_patched: set[int] = set()


def _configure(cfg: tuple[Any, ...]) -> None:
    """Prepare this process for the driver's run ``cfg`` = (run id, [ref of
    the run's configuration]) or (run id, the configuration itself); the
    configuration is (run id, sys.path, main script (file, source) or
    None)."""
    global _configured, _whencall_orig
    if _configured == cfg[0]:
        return
    import ray

    conf = cfg[1]
    run_id, path, main_source = ray.get(conf[0]) if isinstance(conf, list) else conf
    for entry in path:
        if entry not in sys.path:
            sys.path.append(entry)
    if _whencall_orig is None:
        _whencall_orig = bocpy.whencall
        for name in _LOCAL_ONLY:
            original = getattr(bocpy, name)
            _originals[id(original)] = stub = _local_only(name)
            setattr(bocpy, name, stub)
        # Bodies that call bocpy.when(...) as an attribute.
        bocpy.when = remote_when  # type: ignore[assignment]
        bocpy.whencall = remote_whencall  # type: ignore[assignment]
    # Module data captured by value refreshes this process's copies, as in a
    # worker sub-interpreter.
    _byvalue._IS_MAIN = False
    # The driver's script: a reduced copy (as in a worker), never Ray's own
    # __main__.
    for key in [k for k in _worker._namespaces if k[0] == "__main__"]:
        del _worker._namespaces[key]
    if main_source is not None:
        filename, source = main_source
        module = types.ModuleType("__main__")
        ns = module.__dict__
        if not filename.startswith("<"):
            ns["__file__"] = filename
        _worker.loading = True
        try:
            _worker.run_reduced(source, filename, ns, "__main__")
        finally:
            _worker.loading = False
        _worker._namespaces[("__main__", filename)] = ns
        _worker._namespaces[("__main__", None)] = ns
    _configured = run_id


def _loads(spec: bytes) -> Any:
    return pickle.loads(spec)


class Host:
    """A Ray actor keeping one cown's value in place and running that cown's
    behaviors (``bocpy.ray.hosted``): the value never travels per behavior."""

    def __init__(self, value: Any) -> None:
        self.value = _own(value)

    def run(self, spec: bytes, cfg: tuple[Any, ...], host_slot: int,
            *inputs: Any) -> tuple[Any, ...]:
        return run_batch(spec, cfg, *inputs, _host=(self, host_slot))

    def get(self) -> Any:
        return self.value

    def set(self, value: Any) -> None:
        self.value = _own(value)


def _own(value: Any) -> Any:
    """The actor's own copy of a value Ray handed over zero-copy (a NumPy
    array from the object store is read-only): copied once, then changed in
    place by every behavior."""
    flags = getattr(value, "flags", None)
    if flags is not None and getattr(flags, "writeable", True) is False:
        return value.copy()
    return value


def task_of_run(cfg: tuple[Any, ...]) -> Callable[..., tuple[Any, ...]]:
    """The function of a run's Ray tasks: :func:`run_batch` with the run's
    configuration ``cfg`` = (run id, configuration) built in.  Ray exports a
    remote function once and each worker process loads it once, so the
    configuration reaches every worker without travelling with every task
    (as an argument it cost each task a nested ObjectRef)."""

    def bocpy_batch(spec: bytes, *inputs: Any) -> tuple[Any, ...]:
        return run_batch(spec, cfg, *inputs)

    return bocpy_batch


#: This worker's Ray node id (it never changes for a process).
_node_id: str | None = None


def run_batch(spec: bytes, cfg: tuple[Any, ...], *inputs: Any,
              _host: Any = None) -> tuple[Any, ...]:
    """The body of every bocpy Ray task (see the module docstring).

    ``spec`` = (batch sequence number, ops, input slots, output slots); an
    op = (function,
    shape, argument slots, output slots of the arguments, result slot,
    extras).  Returns the output slots' values, then the status
    (node id, indices of the ops whose body raised, pickled spawns, each
    body's (wall-clock start ns, duration ns), and the slots of the cowns
    that may have left as tokens)."""
    global _spawned
    _configure(cfg)
    seq, ops, in_slots, out_slots = _loads(spec)
    nslots = 1 + max([*in_slots, *out_slots, 0])
    vals: list[Any] = [None] * nslots
    exc_flags: list[bool] = [False] * nslots
    for slot, value in zip(in_slots, inputs):
        vals[slot] = value
    if _host is not None:  # the hosted cown: one slot, read and written in place
        host, host_slot = _host
        if host_slot >= nslots:
            vals.extend([None] * (host_slot + 1 - nslots))
            exc_flags.extend([False] * (host_slot + 1 - nslots))
        vals[host_slot] = host.value
    raised: list[int] = []
    minted: list[int] = []  # slots of cowns that may leave as tokens
    #: (wall-clock start ns, duration ns) of each body, for bocpy.trace
    times: list[tuple[int, int]] = []
    spawns: list[tuple[int, Any, Any]] = []
    for index, (fn, shape, arg_slots, arg_outs, result_slot, extras) in enumerate(ops):
        ns = getattr(fn, "__globals__", None)
        if ns is not None and id(ns) not in _patched:
            _patch_namespace(ns)
            _patched.add(id(ns))
        # One RemoteCown per distinct cown (a cown named twice is one object).
        by_slot: dict[int, RemoteCown] = {}
        flat = []
        for s in arg_slots:
            c = by_slot.get(s)
            if c is None:
                c = by_slot[s] = RemoteCown(vals[s], s, exc_flags[s], batch=seq)
            flat.append(c)
        args: list[Any] = []
        k = 0
        for n in shape:
            if n < 0:
                args.append(flat[k])
                k += 1
            else:
                args.append(flat[k:k + n])
                k += n
        _spawned = []
        started = time.time_ns()
        p0 = time.perf_counter_ns()
        try:
            result = fn(*args, *extras)
            failed = False
        except Exception as exc:  # the body's own failure: keep the cowns
            result = _errors.carry(exc, fn)
            failed = True
        finally:
            mine, _spawned = _spawned, None
            times.append((started, time.perf_counter_ns() - p0))
        if not failed and type(result) not in _PLAIN:
            # A result that cannot travel fails this behavior, not the batch.
            try:
                pickle.dumps(result, 5)
            except Exception as exc:
                result = _errors.carry(TypeError(
                    f"the result of behavior {getattr(fn, '__qualname__', '?')!r} "
                    f"cannot be sent back from Ray: {exc}"))
                failed = True
        for s, out in zip(arg_slots, arg_outs):
            c = by_slot[s]
            vals[out] = c._value
            exc_flags[out] = c._exception
        # A cown the body kept a reference to (stored in a value, returned,
        # captured by a nested behavior) may travel as a token: report it,
        # so that the driver knows the token.  Counted references: by_slot,
        # c and getrefcount's argument; anything more is the body's.
        del args, flat
        for s in by_slot:
            c = by_slot[s]
            if sys.getrefcount(c) > 3:
                minted.append(s)
        c = None
        vals[result_slot] = result
        exc_flags[result_slot] = failed
        if failed:
            raised.append(index)
        for child, tokens in mine:
            spawns.append((index, child, tokens))
    if _host is not None:
        _host[0].value = vals[_host[1]]
    blob = None
    if spawns:
        buf = io.BytesIO()
        _SpawnPickler(buf, 5).dump(spawns)
        blob = buf.getvalue()
    global _node_id
    if _node_id is None:
        import ray

        _node_id = ray.get_runtime_context().get_node_id()
    status = (_node_id, raised, blob, times, minted)
    return (*[vals[s] for s in out_slots], status)
