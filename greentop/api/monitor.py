"""``greentop.Monitor``: the compiled sampler in the calling process, with measurement windows.

>>> mon = greentop.Monitor(rate=1000)              # every source found, or sources=[...]
>>> with mon.window("train", sync="torch"):        # or mon.begin("train") ... mon.end("train")
...     train()
>>> m = mon.measurement("train")                  # an attribution.PhaseSummary
>>> m.total.energy_j, m.domain("gpu-0").peak_w
>>> mon.save("run.h5")                             # the trace format of ``greentop record``

The sampler's lanes are C threads that never take the GIL (``greentop.sampler``); a daemon Python
thread moves their ring buffers into memory every ``DRAIN_S``. Windows and ``greentop.phase`` calls
become the same start/end events a launcher logs, and a measurement is the ledger's answer for
them: the samples and events so far become a ``Trace`` (what ``greentop.load`` returns for a
recorded run) and ``Trace.summary()`` turns it into a ``RunSummary``, so a Monitor's figures and
a recording's come from one computation.

Memory: every sample is kept (16 bytes a sample: 58 MB per channel per hour at 1 kHz).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import threading
import time
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

from greentop import gpusync, phases
from greentop.api import _router
from greentop.api.display import monitor_html, monitor_text, register_if_ipython, show_in_notebook
from greentop.api.save import monitor_metadata, write_trace
from greentop.attribution import KIND_PHASE, PhaseSummary, RunSummary
from greentop.channel import Channel
from greentop.events import Event, build_phases
from greentop.loaded import Trace
from greentop.sampler import DEFAULT_RATE_HZ, DEFAULT_SLOW_RATE_HZ, Sampler, SamplerError, SamplerHealth, Samples
from greentop.sources import DiscoveryOptions, SourceResult, discover
from greentop.tracedata import ChannelData

F = TypeVar("F", bound=Callable[..., Any])

DRAIN_S = 0.25  # the rings hold sampler.BUFFER_S (4 s): a drain this often never lets one fill


class MonitorError(SamplerError):
    """A Monitor that cannot start or cannot answer (no channel, no samples yet, no such window)."""


def select_channels(channels: Sequence[Channel], sources: Sequence[str] | None) -> list[Channel]:
    """The channels ``sources`` asks for: each entry is a source ("nvml", "rapl-sysfs", "hwmon",
    "cpu-estimate", ...), a domain ("gpu-0", "cpu-package-0") or its family before the dash
    ("gpu", "cpu", "dram"), or a channel name. None: all. An entry that matches nothing is a
    ``MonitorError`` naming what exists."""
    if sources is None:
        return list(channels)
    if isinstance(sources, str):
        sources = [sources]
    chosen: list[Channel] = []
    for want in sources:
        hits = [c for c in channels if want in (c.source, c.domain, c.name, c.domain.split("-")[0])]
        if not hits:
            known = sorted({c.source for c in channels} | {c.domain for c in channels})
            raise MonitorError(f"no channel matches source {want!r}; here: {', '.join(known) or 'none'}")
        chosen += [c for c in hits if c not in chosen]
    return chosen


class _Store:
    """What a Monitor has collected: samples per channel and the event log. Shared by the Monitor,
    its drain thread and the router, so the thread and the router never keep the Monitor alive."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.lock = threading.Lock()
        self.t_ns: dict[str, list[npt.NDArray[np.int64]]] = {c.name: [] for c in channels}
        self.raw: dict[str, list[npt.NDArray[np.int64]]] = {c.name: [] for c in channels}
        self.events: list[Event] = []
        self.version = 0  # bumped by every change: a cached summary is valid while it holds

    def pull(self, sampler: Sampler) -> None:
        """Move what the sampler's rings hold into the store. Drain and append under one lock:
        the drain thread and a caller's measurement both pull, and two drains appended in the
        other order would put samples out of time order."""
        with self.lock:
            for name, s in sampler.drain().items():
                if s.t_ns.size:
                    self.t_ns[name].append(s.t_ns)
                    self.raw[name].append(s.raw)
                    self.version += 1

    def add_event(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)
            self.version += 1

    def arrays(self, name: str) -> Samples:
        with self.lock:
            t, r = self.t_ns[name], self.raw[name]
            if len(t) > 1:  # concatenate once, so the next read is O(new samples)
                t[:] = [np.concatenate(t)]
                r[:] = [np.concatenate(r)]
            if not t:
                return Samples(np.zeros(0, np.int64), np.zeros(0, np.int64))
            return Samples(t[0], r[0])


def _drain_loop(sampler: Sampler, store: _Store, stop: threading.Event) -> None:
    while not stop.wait(DRAIN_S):
        store.pull(sampler)


def _await_ticks(sampler: Sampler, timeout_s: float) -> None:
    """Return once every lane has ticked after this call (or after ``timeout_s``). At start it
    means a window opened right away is covered by samples from its first instant; at stop, one
    that ended right before has a sample after its end on every lane (the slow lane's at 10 Hz is
    up to 100 ms away)."""
    before = {name: lane.ticks for name, lane in sampler.health().lanes.items()}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lanes = sampler.health().lanes
        if all(lanes[name].ticks > ticks for name, ticks in before.items()):
            return
        time.sleep(0.0005)


def _shutdown(sampler: Sampler, store: _Store, stop: threading.Event, thread: threading.Thread) -> None:
    """Stop sampling and collect the last samples; what ``Monitor.stop`` and garbage collection
    of a running Monitor both do (a notebook that rebinds ``mon`` must not leak a sampler)."""
    _router.detach(store)
    stop.set()
    if thread.is_alive() and thread is not threading.current_thread():
        thread.join()
    sampler.stop()
    store.pull(sampler)


@dataclass(frozen=True)
class _Open:
    phase_id: str
    parent_id: str
    name: str


class Window:
    """What ``Monitor.window`` returns: a context manager and a decorator (a fresh window per call,
    so recursive and concurrent calls each get their own)."""

    __slots__ = ("_monitor", "_name", "_sync", "_attrs", "_open", "_token")

    def __init__(self, monitor: "Monitor", name: str, sync: gpusync.Sync, attrs: dict[str, Any]) -> None:
        self._monitor, self._name, self._sync, self._attrs = monitor, name, sync, attrs
        self._open: _Open | None = None
        self._token: Any = None

    def __enter__(self) -> "Window":
        # Nested under the innermost open window or greentop.phase of this thread or task; the
        # phases opened inside nest under it in turn.
        self._open = self._monitor._start(self._name, phases._current.get(), self._sync, self._attrs)
        self._token = phases._current.set(self._open.phase_id)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                phases._current.reset(token)
            except ValueError:  # left in another context (another task)
                phases._current.set(self._open.parent_id if self._open else "")
        if self._open is not None:
            self._monitor._stop_window(self._open, self._sync, exc_type)
            self._open = None

    @property
    def measurement(self) -> PhaseSummary:
        """This window's figures (from the Monitor's ledger; while it is open: so far)."""
        if self._open is not None:
            return self._monitor._row_for(self._open.phase_id)
        raise MonitorError("a window object measures while open; after it ends use Monitor.measurement(name)")

    def __call__(self, fn: F) -> F:
        monitor, name, sync, attrs = self._monitor, self._name, self._sync, self._attrs
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with Window(monitor, name, sync, attrs):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Window(monitor, name, sync, attrs):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class Monitor:
    """Samples power and energy in this process from construction until ``stop()``.

    ``rate``: fast-lane rate in Hz (RAPL, hwmon, NVML power; default 1000); ``slow_rate``: the
    slow lane's (NVML energy counters, 10 Hz); ``sources``: which channels (see
    :func:`select_channels`; default all that discovery finds); ``carbon_g_per_kwh`` or
    ``region``: the grid intensity for ``gco2e_g`` (default: the world average, as ``greentop
    summary``); ``options``: discovery options (MSR policy, CPU estimate). ``channels`` replaces
    discovery with given channels. ``start=False``: call ``start()`` later.

    Windows (``window``, ``begin``/``end``) and ``greentop.phase`` calls made while it runs are
    measured; ``measurement(name)`` and ``summary()`` answer from everything collected so far.
    """

    def __init__(self, rate: float = DEFAULT_RATE_HZ, sources: Sequence[str] | None = None, *,
                 slow_rate: float = DEFAULT_SLOW_RATE_HZ, carbon_g_per_kwh: float | None = None, region: str | None = None,
                 options: DiscoveryOptions | None = None, channels: Sequence[Channel] | None = None,
                 start: bool = True) -> None:
        from greentop.carbon import intensity_for

        self.carbon_g_per_kwh, self.carbon_source = intensity_for(region, carbon_g_per_kwh)
        if channels is None:
            self.found: SourceResult = discover(options or DiscoveryOptions())
            channels = self.found.channels
        else:
            self.found = SourceResult(channels=list(channels))
        self.channels: list[Channel] = select_channels(channels, sources)
        if not self.channels:
            raise MonitorError("no power or energy channel to sample here (see `greentop devices`)")
        self.rate_hz, self.slow_rate_hz = float(rate), float(slow_rate)
        self._sampler = Sampler(self.channels, rate_hz=self.rate_hz, slow_rate_hz=self.slow_rate_hz)
        self._store = _Store(self.channels)
        self._ids = itertools.count(1)
        self._pid = os.getpid()
        self._begun: dict[str, _Open] = {}  # begin()/end() windows by name
        self._begun_lock = threading.Lock()
        self._cache: tuple[int, RunSummary] | None = None
        self._meta_cache: dict[str, Any] | None = None
        self._finalizer: weakref.finalize | None = None
        self.start_wall_ns = self.start_ns = self.stop_ns = 0
        if start:
            self.start()

    # -- life cycle ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._finalizer is not None and self._finalizer.alive

    def start(self) -> "Monitor":
        """Start sampling (done by the constructor unless ``start=False``)."""
        if self._finalizer is not None:
            raise MonitorError("a Monitor starts once; make a new one to measure again")
        self.start_wall_ns, self.start_ns = time.time_ns(), time.monotonic_ns()
        self._sampler.start()
        _await_ticks(self._sampler, 2.0 / self.slow_rate_hz)
        stop = threading.Event()
        thread = threading.Thread(target=_drain_loop, args=(self._sampler, self._store, stop), name="greentop-monitor",
                                  daemon=True)
        thread.start()
        _router.attach(self._store)
        register_if_ipython()
        self._finalizer = weakref.finalize(self, _shutdown, self._sampler, self._store, stop, thread)
        return self

    def stop(self) -> None:
        """Stop sampling once every lane has read after this call (so a window that just ended
        is covered to its end: up to one slow-lane period, 100 ms, with NVML energy counters);
        everything collected stays measurable and savable. Idempotent."""
        if self.running:
            assert self._finalizer is not None
            _await_ticks(self._sampler, 2.0 / self.slow_rate_hz)
            self._finalizer()
            self.stop_ns = time.monotonic_ns()

    def __enter__(self) -> "Monitor":
        return self if self.running else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        show_in_notebook(self)

    # -- windows ---------------------------------------------------------------------------------
    def window(self, name: str, /, sync: gpusync.Sync = None, **attrs: Any) -> Window:
        """A measured interval: ``with mon.window("train", sync="torch"):`` or ``@mon.window("step")``.

        Nests under the enclosing window or ``greentop.phase`` of the same thread or task.
        ``sync="torch"`` waits for queued CUDA work at both edges (``greentop.gpusync``); ``attrs``
        (str, int, float, bool) are stored with it."""
        gpusync.resolve(sync)  # a bad name fails here, not at the first edge
        return Window(self, name, sync, attrs)

    def begin(self, name: str, /, sync: gpusync.Sync = None, **attrs: Any) -> None:
        """Open a window that ``end(name)`` closes, from anywhere in this process. Windows opened this
        way are top level and may overlap one another freely; a name is open once at a time."""
        with self._begun_lock:
            if name in self._begun:
                raise MonitorError(f"window {name!r} is already open")
            self._begun[name] = _Open("", "", name)  # reserved while the edge syncs
        try:
            opened = self._start(name, "", sync, attrs)
        except BaseException:
            with self._begun_lock:
                del self._begun[name]
            raise
        with self._begun_lock:
            self._begun[name] = opened

    def end(self, name: str, /, sync: gpusync.Sync = None) -> None:
        """Close the window ``begin(name)`` opened; ``measurement(name)`` then has its figures."""
        with self._begun_lock:
            opened = self._begun.get(name)
            if opened is None or not opened.phase_id:
                raise MonitorError(f"window {name!r} is not open")
            del self._begun[name]
        self._stop_window(opened, sync, None)

    def _start(self, name: str, parent_id: str, sync: gpusync.Sync, attrs: dict[str, Any]) -> _Open:
        wait = gpusync.resolve(sync)
        if wait is not None:
            wait()  # the work queued before the window belongs before it
        t_ns = time.monotonic_ns()
        opened = _Open(f"{self._pid}:w{next(self._ids)}", parent_id, str(name))
        clean = phases._clean_attrs(attrs) if attrs else {}
        self._store.add_event(Event("start", t_ns, self._pid, opened.name, opened.phase_id, parent_id, 0.0, clean))
        return opened

    def _stop_window(self, opened: _Open, sync: gpusync.Sync, exc_type: type[BaseException] | None) -> None:
        wait = gpusync.resolve(sync)
        if wait is not None:
            wait()  # the window's own queued work ends inside it
        t_ns = time.monotonic_ns()
        attrs = {} if exc_type is None else {"exc": phases._exc_name(exc_type)}
        self._store.add_event(Event("end", t_ns, self._pid, opened.name, opened.phase_id, opened.parent_id, 0.0, attrs))

    # -- answers ---------------------------------------------------------------------------------
    def samples(self, channel: str) -> Samples:
        """Every sample of ``channel`` collected so far (``t_ns``: CLOCK_MONOTONIC ns; ``raw``: see
        ``Channel.unit`` / ``Channel.scale``)."""
        if channel not in self._store.t_ns:
            raise MonitorError(f"no channel {channel!r} in this Monitor; it has {', '.join(self._store.t_ns)}")
        self._collect()
        return self._store.arrays(channel)

    def health(self) -> SamplerHealth:
        """The sampler's counters: ticks, missed ticks, late wake-ups per lane; reads, errors and
        overruns per channel."""
        return self._sampler.health()

    def _collect(self) -> None:
        if self.running:
            self._store.pull(self._sampler)

    def trace_data(self) -> Trace:
        """Everything so far as the in-memory run ``greentop.load`` returns for a recorded trace.
        Windows still open end now, with status "unclosed"."""
        self._collect()
        end_ns = time.monotonic_ns() if self.running else self.stop_ns
        data = []
        for c in self.channels:
            s = self._store.arrays(c.name)
            data.append(ChannelData(c, s.t_ns, s.raw))
        starts = [int(d.t_ns[0]) for d in data if d.t_ns.size]
        if not starts:
            raise MonitorError("no samples yet: measure after the first sampler tick")
        with self._store.lock:
            events = list(self._store.events)
        stats: dict[str, int] = {}
        found_phases, marks, counts = build_phases(events, end_ns, "ok", stats=stats)
        run = {"exit_code": 0, "interrupted": False, "end_mono_ns": end_ns, "events_dropped": 0, "events_overflowed": 0,
               **stats}
        if self.running:  # as a recording stopped from the live view while its workload went on
            run.update(exit_code=-1, workload_running=True)
        return Trace(meta=self._meta() | {"run": run}, channels=data, phases=found_phases, marks=marks, counts=counts,
                         run_start_ns=min(starts), run_end_ns=max(int(d.t_ns[-1]) for d in data if d.t_ns.size),
                         baseline=None, health=self._health_dict(), complete=True)

    def summary(self) -> RunSummary:
        """Per-window, per-domain figures of everything so far: the ``RunSummary`` that
        ``greentop.load(path).summary()`` gives for a recorded run. The "run" row covers the
        Monitor's whole sampling time."""
        self._collect()
        version = self._store.version
        if self._cache is not None and self._cache[0] == version and not self.running:
            return self._cache[1]
        result = self.trace_data().summary(self.carbon_g_per_kwh, self.carbon_source)
        self._cache = (version, result)
        return result

    def measurement(self, name: str, /) -> PhaseSummary:
        """The figures of the latest window (or ``greentop.phase``) called ``name``: per-domain
        ``energy_j``, ``energy_uncertainty_j``, ``average_w``, ``peak_w``, ``estimated`` and ``flag``
        (see ``greentop.attribution``), with ``duration_s`` and ``status`` ("unclosed" while open).

        It is the row ``summary()`` has for that window, but computed from the window and what is
        nested in it only, so its cost does not grow with the number of other windows."""
        data = self.trace_data()
        found = [p.index for p in data.phases if p.name == name]
        if not found:
            raise MonitorError(f"no window or phase named {name!r} in this Monitor")
        return self._subtree_row(data, found[-1])

    def measurements(self, name: str, /) -> list[PhaseSummary]:
        """Every window (or phase) called ``name``, oldest first."""
        return sorted((r for r in self.summary().rows if r.kind == KIND_PHASE and r.name == name), key=lambda r: r.start_ns)

    def _row_for(self, phase_id: str) -> PhaseSummary:
        data = self.trace_data()
        for p in data.phases:
            if p.phase_id == phase_id:
                return self._subtree_row(data, p.index)
        raise MonitorError(f"window {phase_id} not found")

    def _subtree_row(self, data: Trace, root: int) -> PhaseSummary:
        """Phase ``root``'s row, from the ledger run over that phase and its descendants alone.

        A phase row's figures depend only on its own interval, its direct children (exclusive
        energy, overlap flag) and the work counted in its subtree, so they are those of the full
        summary's row (tests/test_api.py checks it); index, parent and depth are put back to the
        whole run's."""
        keep = [root]
        inside = {root}
        for p in data.phases[root + 1:]:  # phases come sorted by start: descendants follow their root
            if p.parent in inside:
                inside.add(p.index)
                keep.append(p.index)
        new_index = {old: new for new, old in enumerate(keep)}
        phases_sub = [replace(data.phases[old], index=new, parent=new_index.get(data.phases[old].parent, -1),
                              depth=data.phases[old].depth - data.phases[root].depth) for new, old in enumerate(keep)]
        counts_sub = [replace(c, phase=new_index[c.phase]) for c in data.counts if c.phase in inside]
        sub = replace(data, phases=phases_sub, counts=counts_sub, marks=[])
        row = next(r for r in sub.summary(self.carbon_g_per_kwh, self.carbon_source).rows if r.kind == KIND_PHASE and r.index == 0)
        original = data.phases[root]
        row.index, row.parent, row.depth = original.index, original.parent, original.depth
        return row

    def save(self, path: str | Path) -> Path:
        """Write everything so far as a trace (the format of ``greentop record``: ``greentop summary``,
        ``greentop replay`` and ``greentop.load`` read it). Works while running (a snapshot) and after."""
        return write_trace(Path(path), self.trace_data(), self._store_events(), self._sampler_health_or_none())

    def _store_events(self) -> list[Event]:
        with self._store.lock:
            return list(self._store.events)

    def _sampler_health_or_none(self) -> SamplerHealth | None:
        try:
            return self._sampler.health()
        except SamplerError:
            return None

    def _meta(self) -> dict[str, Any]:
        if self._meta_cache is None:
            self._meta_cache = monitor_metadata(self)
        return self._meta_cache

    def _health_dict(self) -> dict[str, Any]:
        h = self._sampler_health_or_none()
        if h is None:
            return {}
        return {
            "channels": {n: {"overruns": c.overruns, "read_errors": c.errors, "reads": c.reads} for n, c in h.channels.items()},
            "lanes": {n: {"ticks": lane.ticks, "missed": lane.missed, "late": lane.late} for n, lane in h.lanes.items()},
            "events_dropped": 0, "overruns": h.overruns, "read_errors": h.read_errors,
        }

    # -- display ---------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return monitor_text(self)

    def _repr_html_(self) -> str:
        return monitor_html(self)
