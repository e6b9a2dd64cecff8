"""Prometheus exposition: ``greentop export`` and ``greentop record ... --export ADDR``.

What is measured is served at ``http://ADDR/metrics`` by the official ``prometheus_client``
library, in the format Prometheus, Grafana Agent, VictoriaMetrics and the OpenTelemetry collector
scrape. Every metric is listed in ``docs/prometheus.md``.

The numbers are the trace's numbers, made the same way: each channel of the machine total
(``domains.plan_domains``: one reading per physical domain, the rule behind the summary's
machine total, with the same ``--cpu-total`` choice) goes through its converter (``energy.converter_for``: wraps unwrapped, glitches
held), and its cumulative energy since this exporter started is the counter
``greentop_energy_joules_total``. So the counters only ever rise while greentop runs, a sum over
``domain`` is the machine's total with nothing counted twice, and a restart of greentop starts
them again from 0 with a new ``_created`` time: a counter reset, which ``rate()`` and
``increase()`` handle as Prometheus expects.

A meter shown beside the total and never added (a whole-system ACPI meter, a meter of unknown
scope; with ``--cpu-total system``, the domains the whole-system meter contains: ``domains.charted``)
gets series of its own, ``greentop_meter_energy_joules_total`` and ``greentop_meter_power_watts``,
so that no sum over ``greentop_energy_joules_total`` counts it.

Phases come from the workload's events when recording (``record --export``): the open phases as
``greentop_phase_info``, the machine's energy since each began, and a counter of the energy spent
inside each phase name (per rank). Their boundaries are placed on the samples as the summary
places them (interpolated at the event's timestamp); the trace's summary stays the reference.

Binding: ``127.0.0.1:9464`` by default (9464 is the port Prometheus' exporter list gives
OpenTelemetry's Prometheus exporter; any port can be named). A non-loopback address is an explicit
choice: it serves the host name, the power of every domain, the names of the workload's phases and
its ranks to anyone who can reach the port, without authentication.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import numpy.typing as npt

from greentop import __version__
from greentop.channel import Channel
from greentop.domains import CPU_TOTAL_PACKAGES, charted, domain_kind, plan_domains
from greentop.energy import Converter, converter_for
from greentop.events import Event
from greentop.sampler import SamplerHealth, Samples

DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_EXPORT_RATE_HZ = 100.0  # energy counters are exact at any rate; power gauges refresh every ~100 ms
UPDATE_S = 0.2  # how often the exporter takes what was sampled
POWER_WINDOW_S = 1.0  # power gauges: average over this much of the latest samples
HISTORY_S = 10.0  # samples kept per channel to place phase boundaries that arrive late
PENDING_MAX_S = 5.0  # a boundary later than every channel's data for this long is placed at the data's end


class ExportError(ValueError):
    """A listen address that cannot be used; one line for the user."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port); port 0 picks a free one."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ExportError(f"listen address must be HOST:PORT (e.g. {DEFAULT_LISTEN}), got {text!r}")
    return host.strip("[]"), int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _OpenPhase:
    name: str
    rank: str
    start_ns: int
    start_j: float | None  # machine energy at the start; None until the samples reach it


class _History:
    """A channel's cumulative energy (J since the exporter started) at its recent samples."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.converter: Converter = converter_for(channel)
        self.t_ns: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self.energy_j: npt.NDArray[np.float64] = np.zeros(0)
        self._first_j: float | None = None

    def feed(self, s: Samples) -> None:
        if s.t_ns.size == 0:
            return
        chunk = self.converter.feed(s.t_ns, s.raw)
        if self._first_j is None:
            self._first_j = float(chunk.energy_j[0])
        t = np.concatenate([self.t_ns, chunk.t_ns])
        e = np.concatenate([self.energy_j, chunk.energy_j - self._first_j])
        keep = t >= t[-1] - int(HISTORY_S * 1e9)
        self.t_ns, self.energy_j = t[keep], e[keep]

    @property
    def last_ns(self) -> int | None:
        return int(self.t_ns[-1]) if self.t_ns.size else None

    @property
    def total_j(self) -> float:
        return float(self.energy_j[-1]) if self.energy_j.size else 0.0

    def at(self, t_ns: int) -> float:
        if self.t_ns.size == 0:
            return 0.0
        return float(np.interp(float(t_ns), self.t_ns.astype(np.float64), self.energy_j))

    def power_w(self) -> float:
        if self.t_ns.size < 2:
            return math.nan
        t_end = int(self.t_ns[-1])
        t0 = max(int(self.t_ns[0]), t_end - int(POWER_WINDOW_S * 1e9))
        if t_end <= t0:
            return math.nan
        return (self.total_j - self.at(t0)) / ((t_end - t0) * 1e-9)


class ExportState:
    """Everything the exporter serves, fed by whoever drains the sampler. Thread-safe.

    ``cpu_total`` picks what the machine total (the domains' series, and the phases' machine
    energy) adds up, as ``greentop summary --cpu-total`` does; ValueError for one the channels
    cannot give."""

    def __init__(self, channels: Sequence[Channel], host: str | None = None, cpu_total: str = CPU_TOTAL_PACKAGES) -> None:
        self.host = host or socket.gethostname()
        shown, added = charted(plan_domains(list(channels), cpu_total))
        self.primary = [c for c, t in zip(shown, added) if t]
        self.meters = [c for c, t in zip(shown, added) if not t]
        self.created_s = time.time()
        self.wall_offset_ns = time.time_ns() - time.monotonic_ns()  # samples are CLOCK_MONOTONIC
        self._lock = threading.Lock()
        self._hist = {c.name: _History(c) for c in self.primary}
        self._meter_hist = {c.name: _History(c) for c in self.meters}
        self._open: dict[str, _OpenPhase] = {}
        self._pending_ends: list[Event] = []
        self._phase_done_j: dict[tuple[str, str], float] = {}
        self._phase_served_j: dict[tuple[str, str], float] = {}  # never serve less than before
        self._work: dict[tuple[str, str], float] = {}
        self._rank_of_phase: dict[str, str] = {}
        self.health: SamplerHealth | None = None
        self.events_dropped = 0

    # -- feeding ----------------------------------------------------------------------------------
    def feed(self, samples: dict[str, Samples], events: Iterable[Event] = ()) -> None:
        with self._lock:
            for name, s in samples.items():
                h = self._hist.get(name) or self._meter_hist.get(name)
                if h is not None:
                    h.feed(s)
            for e in events:
                self._event(e)
            self._settle()

    def _covered_ns(self) -> int | None:
        """Up to when every primary channel has data (the machine's energy is known up to there)."""
        ends = [h.last_ns for h in self._hist.values()]
        return None if not ends or any(e is None for e in ends) else min(e for e in ends if e is not None)

    def _machine_j(self, t_ns: int) -> float:
        return sum(h.at(t_ns) for h in self._hist.values())

    def _event(self, e: Event) -> None:
        if e.kind == "start" and e.phase_id:
            rank = str(e.attrs.get("rank", ""))
            self._rank_of_phase[e.phase_id] = rank
            self._open[e.phase_id] = _OpenPhase(e.name, rank, e.t_ns, None)
        elif e.kind == "end" and e.phase_id:
            self._pending_ends.append(e)
        elif e.kind == "count":
            key = (e.name, self._rank_of_phase.get(e.phase_id, ""))
            self._work[key] = self._work.get(key, 0.0) + float(e.value)

    def _settle(self) -> None:
        """Place the boundaries the samples have reached (or that waited too long)."""
        covered = self._covered_ns()
        if covered is None:
            return
        # A channel that stopped (read errors) must not hold every boundary back for ever.
        newest = max(h.last_ns or 0 for h in self._hist.values())
        reached = max(covered, newest - int(PENDING_MAX_S * 1e9))
        for p in self._open.values():
            if p.start_j is None and p.start_ns <= reached:
                p.start_j = self._machine_j(p.start_ns)
        keep = []
        for e in self._pending_ends:
            p = self._open.get(e.phase_id)
            if p is None:
                continue
            if e.t_ns > reached:
                keep.append(e)
                continue
            start_j = p.start_j if p.start_j is not None else self._machine_j(p.start_ns)
            key = (p.name, p.rank)
            self._phase_done_j[key] = self._phase_done_j.get(key, 0.0) + max(self._machine_j(e.t_ns) - start_j, 0.0)
            del self._open[e.phase_id]
            self._rank_of_phase.pop(e.phase_id, None)
        self._pending_ends = keep

    # -- serving ----------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            covered = self._covered_ns()
            machine_now = sum(h.total_j for h in self._hist.values())
            domains = [(h.channel, h.total_j, h.power_w(), h.last_ns) for h in self._hist.values()]
            meters = [(h.channel, h.total_j, h.power_w()) for h in self._meter_hist.values()]
            open_rows = []
            phase_j = dict(self._phase_done_j)
            for p in self._open.values():
                so_far = max(machine_now - p.start_j, 0.0) if p.start_j is not None else 0.0
                elapsed = max((covered or p.start_ns) - p.start_ns, 0) * 1e-9
                open_rows.append((p.name, p.rank, so_far, elapsed))
                phase_j[(p.name, p.rank)] = phase_j.get((p.name, p.rank), 0.0) + so_far
            for key, value in phase_j.items():  # counters never go back, even while a boundary settles
                served = max(value, self._phase_served_j.get(key, 0.0))
                self._phase_served_j[key] = phase_j[key] = served
            return {"domains": domains, "meters": meters, "open": open_rows, "phase_j": phase_j, "work": dict(self._work),
                    "health": self.health, "events_dropped": self.events_dropped}


class _Collector:
    """prometheus_client's custom-collector interface over an ``ExportState``. ``refresh`` (when
    given) runs first at every scrape, so a scrape sees the samples taken up to that moment."""

    def __init__(self, state: ExportState, refresh: Callable[[], None] | None = None) -> None:
        self.state = state
        self.refresh = refresh

    def describe(self) -> list[Any]:
        return []  # metrics come and go with channels and phases: described at collect time

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        st = self.state
        if self.refresh is not None:
            self.refresh()
        snap = st.snapshot()
        created = st.created_s
        labels = ["domain", "host", "estimated", "source"]
        energy = CounterMetricFamily("greentop_energy_joules", "Energy of each physical domain since greentop started (J); "
                                     "one series per domain, so a sum over domain is the machine total", labels=labels)
        power = GaugeMetricFamily("greentop_power_watts", f"Average power of each domain over the last {POWER_WINDOW_S:g} s (W)",
                                  labels=labels)
        stamp = GaugeMetricFamily("greentop_energy_timestamp_seconds", "Unix time of the newest sample in the domain's "
                                  "energy counter: the counter holds the energy up to then (s)", labels=labels)
        for c, energy_j, power_w, last_ns in snap["domains"]:
            values = [c.domain, st.host, "true" if c.estimated else "false", c.source]
            energy.add_metric(values, energy_j, created=created)
            if not math.isnan(power_w):
                power.add_metric(values, power_w)
            if last_ns is not None:
                stamp.add_metric(values, (last_ns + st.wall_offset_ns) / 1e9)
        yield energy
        yield power
        yield stamp
        yield from _meter_metrics(snap["meters"], st.host, created)
        info = InfoMetricFamily("greentop_phase", "The workload's open phases (1 while open)", labels=["host", "phase", "rank"])
        so_far = GaugeMetricFamily("greentop_phase_energy_joules", "Machine energy since the open phase began (J)",
                                   labels=["host", "phase", "rank"])
        elapsed = GaugeMetricFamily("greentop_phase_elapsed_seconds", "Time since the open phase began (s)",
                                    labels=["host", "phase", "rank"])
        seen: set[tuple[str, str]] = set()
        for name, rank, energy_j, elapsed_s in snap["open"]:
            if (name, rank) in seen:  # one series per (phase, rank): the earliest-opened one
                continue
            seen.add((name, rank))
            info.add_metric([st.host, name, rank], {})
            so_far.add_metric([st.host, name, rank], energy_j)
            elapsed.add_metric([st.host, name, rank], elapsed_s)
        yield info
        yield so_far
        yield elapsed
        phase_total = CounterMetricFamily("greentop_phase_energy_joules", "Machine energy spent while a phase of this name "
                                          "was open in this rank, finished and open phases (J)", labels=["host", "phase", "rank"])
        for (name, rank), energy_j in sorted(snap["phase_j"].items()):
            phase_total.add_metric([st.host, name, rank], energy_j, created=created)
        yield phase_total
        work = CounterMetricFamily("greentop_work", "Work the workload counted (greentop.count): samples, tokens, requests...",
                                   labels=["host", "unit", "rank"])
        for (unit, rank), value in sorted(snap["work"].items()):
            work.add_metric([st.host, unit, rank], value, created=created)
        yield work
        yield from _health_metrics(snap["health"], snap["events_dropped"], st.host, created)
        build = InfoMetricFamily("greentop_build", "greentop's version", labels=["host"])
        build.add_metric([st.host], {"version": __version__})
        yield build


def _meter_metrics(meters: list[tuple[Channel, float, float]], host: str, created: float) -> Iterable[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels = ["domain", "host", "scope", "source"]
    energy = CounterMetricFamily("greentop_meter_energy_joules", "Energy of a meter not in the machine total (J): a "
                                 "whole-system meter (scope system) contains the domains; never add it to them", labels=labels)
    power = GaugeMetricFamily("greentop_meter_power_watts", f"Average power of such a meter over the last {POWER_WINDOW_S:g} s (W)",
                              labels=labels)
    for c, energy_j, power_w in meters:
        values = [c.domain, host, _scope(c), c.source]
        energy.add_metric(values, energy_j, created=created)
        if not math.isnan(power_w):
            power.add_metric(values, power_w)
    yield energy
    yield power


def _scope(c: Channel) -> str:
    """A meter's ``scope`` label: "system" (a whole-system meter, containing the domains), "unknown",
    or "inside" (a domain inside the whole-system meter that ``--cpu-total system`` made the total)."""
    return {"system": "system", "other": "unknown"}.get(domain_kind(c.domain), "inside")


def _health_metrics(health: SamplerHealth | None, events_dropped: int, host: str, created: float) -> Iterable[Any]:
    from prometheus_client.core import CounterMetricFamily

    lane_metrics = [("greentop_sampler_ticks", "Sampling ticks run", "ticks"),
                    ("greentop_sampler_missed_ticks", "Sampling ticks skipped after a stall", "missed"),
                    ("greentop_sampler_late_wakeups", "Sampling wake-ups later than half a period", "late")]
    chan_metrics = [("greentop_sampler_reads", "Sensor reads", "reads"),
                    ("greentop_sampler_read_errors", "Sensor reads that failed", "errors"),
                    ("greentop_sampler_overruns", "Samples lost because a ring buffer was full", "overruns")]
    for name, doc, attr in lane_metrics:
        m = CounterMetricFamily(name, doc, labels=["host", "lane"])
        for lane, lh in (health.lanes.items() if health else []):
            m.add_metric([host, lane], float(getattr(lh, attr)), created=created)
        yield m
    for name, doc, attr in chan_metrics:
        m = CounterMetricFamily(name, doc, labels=["host", "channel"])
        for chan, ch in (health.channels.items() if health else []):
            m.add_metric([host, chan], float(getattr(ch, attr)), created=created)
        yield m
    m = CounterMetricFamily("greentop_events_dropped", "Workload events that were not valid and were dropped", labels=["host"])
    m.add_metric([host], float(events_dropped), created=created)
    yield m


class _SamplerLike(Protocol):
    def drain(self) -> dict[str, Samples]: ...
    def health(self) -> SamplerHealth: ...


class Exporter:
    """Serves an ``ExportState`` over HTTP and keeps it fed.

    Standalone (``greentop export``): ``feed_from(sampler)`` drains the sampler itself. While
    recording: ``attach(sampler, tap, listener)`` reads what the recording thread hands to ``tap``
    (``recorder.SampleTap``), so the trace and the exporter see the same samples."""

    def __init__(self, channels: Sequence[Channel], listen: str = DEFAULT_LISTEN, host: str | None = None,
                 cpu_total: str = CPU_TOTAL_PACKAGES) -> None:
        self.host_port = parse_listen(listen)
        self.state = ExportState(channels, host, cpu_total)
        self._server: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._step: Callable[[], None] | None = None
        self._step_lock = threading.Lock()  # the feeding thread and a scrape both take samples
        self.address = ""

    def serve(self) -> str:
        """Start the HTTP server; returns the URL of ``/metrics``."""
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise ExportError("the prometheus_client package is not installed (pip install prometheus-client)") from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self.state, self.refresh))  # type: ignore[arg-type]
        host, port = self.host_port
        try:
            self._server, _ = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ExportError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        real_port = self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.address = f"http://{shown}:{real_port}/metrics"
        return self.address

    def refresh(self) -> None:
        """Take what was sampled since the last call (the feeding thread calls it every
        ``UPDATE_S``, a scrape calls it too: the counters it serves are then current)."""
        with self._step_lock:
            if self._step is not None:
                self._step()

    def _loop(self) -> None:
        while not self._stop.wait(UPDATE_S):
            self.refresh()
        self.refresh()

    def _start(self, step: Callable[[], None]) -> None:
        self._step = step
        self._thread = threading.Thread(target=self._loop, name="greentop-export", daemon=True)
        self._thread.start()

    def feed_from(self, sampler: _SamplerLike) -> None:
        """Drain ``sampler`` (the exporter is its only reader): at every scrape and every ``UPDATE_S``."""
        def step() -> None:
            self.state.feed(sampler.drain())
            self.state.health = sampler.health()

        self._start(step)

    def attach(self, sampler: _SamplerLike, tap: Any, listener: Any = None) -> None:
        """Follow a recording: what its thread drains (every 50 ms) arrives through ``tap``."""
        def step() -> None:
            for samples, events in tap.take():
                self.state.feed(samples, events)
            self.state.health = sampler.health()
            self.state.events_dropped = int(getattr(listener, "dropped", 0))

        self._start(step)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
