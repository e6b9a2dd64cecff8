"""The live view's model, free of any GUI: drained samples -> power series, energy, phases.

``LiveModel`` is fed what the sampler's rings and the phase listener drain (``feed`` and
``feed_events``) and keeps, for the time it retains, one power series per primary channel and
their total on a common display grid (``GRID_NS``, 10 ms): each channel's cumulative energy
(J, from its ``energy.converter_for`` converter) is interpolated at the grid's times and
differenced. The grid makes channels of any rate (1 kHz RAPL, a 10 Hz NVML energy lane) addable
into a total without double counting, and smooths the sampling jitter of counters read about as
often as they update; the raw samples themselves are what a trace keeps.

A grid point is only added once every live channel has a sample at or after it, so the total is
never short of a channel that is merely late; a channel silent for ``STALE_S`` no longer holds
the grid back (its power then reads 0 W until it speaks again) and is reported as stale.

The run's figures (energy, duration, average and peak power) stop at the workload's end
(``end_run``) while power "now" goes on, and come from the one ledger (``greentop.ledger``) over
the grid's cumulative energy per channel: the arithmetic ``greentop summary`` and
``greentop sample`` use, so the three agree on the same samples.

Units: times in CLOCK_MONOTONIC ns (``t_ns``), energy in J, power in W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel, Quantity
from greentop.channel_series import STALL_MIN_S, stall_after_s
from greentop.domains import CPU_TOTAL_PACKAGES, charted, plan_domains
from greentop.energy import Converter, CounterUnwrapper, changes_period_s, converter_for
from greentop.events import Event, build_phases
from greentop.sampler import Samples

GRID_NS = 10_000_000  # display resolution: 10 ms
NOW_WINDOW_NS = 500_000_000  # "now" power is the average over the last 0.5 s
STALE_S = 2.0
# A counter's update period is measured on its last this many changes (the summary's rule,
# ``channel_series.stall_after_s``, then says how long it may stay unchanged before it is stalled).
PERIOD_CHANGES = 256
DEFAULT_RETAIN_S = 960.0
_STALL_MIN_NS = STALL_MIN_S * 1e9  # the shortest stall limit there is (stall_after_s), ns

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class _Ring:
    """Rows appended at the end, rows older than ``retain_ns`` dropped (amortised, no per-row copy)."""

    def __init__(self, columns: int, retain_ns: int | None, capacity: int = 4096) -> None:
        self.retain_ns = retain_ns
        self._t = np.zeros(capacity, np.int64)
        self._v = np.zeros((capacity, columns), np.float64)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def t_ns(self) -> I64:
        return self._t[self._start:self._end]

    @property
    def values(self) -> F64:
        return self._v[self._start:self._end]

    def append(self, t_ns: I64, values: F64) -> None:
        k = t_ns.size
        if k == 0:
            return
        if self._end + k > self._t.size:
            if self.retain_ns is not None and len(self):
                cut = int(t_ns[-1]) - self.retain_ns
                self._start += int(np.searchsorted(self.t_ns, cut, side="left"))
            n = len(self)
            cap = self._t.size
            while n + k > cap // 2:
                cap *= 2
            if cap != self._t.size:
                t = np.zeros(cap, np.int64)
                v = np.zeros((cap, self._v.shape[1]), np.float64)
            else:
                t, v = self._t, self._v
            t[:n] = self._t[self._start:self._end]  # overlapping moves to the left are safe in numpy
            v[:n] = self._v[self._start:self._end]
            self._t, self._v, self._start, self._end = t, v, 0, n
        self._t[self._end:self._end + k] = t_ns
        self._v[self._end:self._end + k] = values
        self._end += k


@dataclass
class _Lane:
    """One primary channel's state between drains."""

    channel: Channel
    converter: Converter
    pending_t: I64  # samples not yet past the grid, plus the last one at or before it
    pending_e: F64  # cumulative J
    e_grid: float = 0.0  # cumulative J at the last grid point
    e_start: float = 0.0  # cumulative J at the first grid point
    last_t_ns: int | None = None
    energy_j: float = 0.0  # since the channel's first sample
    last_raw: int | None = None
    last_move_ns: int | None = None  # when a counter's reading last changed (None: never seen to)
    change_t: I64 = field(default_factory=lambda: np.zeros(0, np.int64))  # its last PERIOD_CHANGES changes (ns)
    stalls: int = 0  # stalls the counter came out of (one still going on is not counted)

    def update_period_s(self) -> float | None:
        """The median interval between the counter's recent changes (``energy.update_period_s``)."""
        return changes_period_s(self.change_t)

    def stall_after_ns(self) -> float | None:
        """How long the counter may stay unchanged before it is stalled (None: not judged yet)."""
        limit_s = stall_after_s(self.update_period_s())
        return limit_s * 1e9 if limit_s is not None else None

    def note_moves(self, moves_ns: I64) -> None:
        """The counter changed at ``moves_ns``: its period, and the stalls these moves ended."""
        before = self.last_move_ns
        self.change_t = np.concatenate((self.change_t, moves_ns))[-PERIOD_CHANGES:]
        times = moves_ns if before is None else np.concatenate(([before], moves_ns))
        gaps = times[1:] - times[:-1]
        # No limit is below STALL_MIN_S: gaps shorter than that end no stall, whatever the period,
        # and the period (a median, every drain, for every channel) need not be measured.
        if gaps.size and int(np.maximum.reduce(gaps)) > _STALL_MIN_NS:
            limit = self.stall_after_ns()
            if limit is not None:
                self.stalls += int(np.count_nonzero(gaps > limit))
        self.last_move_ns = int(moves_ns[-1])


@dataclass(frozen=True)
class PowerStats:
    """Power of one series: now (last 0.5 s), average and 100 ms peak since the start of the run."""

    now_w: float
    avg_w: float
    peak_w: float


@dataclass(frozen=True)
class PhaseRow:
    """Phases of one name path ("training/step"), aggregated: ``count`` of them, total time and J."""

    path: str
    depth: int
    count: int
    duration_s: float
    energy_j: float
    open: bool  # one of them still runs
    counts: Mapping[str, float] = field(default_factory=dict)  # work counted inside them (nested phases included)

    @property
    def avg_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")

    def per_unit_j(self) -> dict[str, float]:
        """J per counted unit ("samples" -> J/sample), for each count with a positive total."""
        return {name: self.energy_j / v for name, v in self.counts.items() if v > 0}


@dataclass(frozen=True)
class PhaseSpan:
    """One phase as the timeline draws it: its name, nesting depth and time span (ns; ``end_ns``
    is "now" for a phase still open)."""

    name: str
    depth: int
    start_ns: int
    end_ns: int
    open: bool


@dataclass(frozen=True)
class CurrentPhase:
    path: str
    duration_s: float
    energy_j: float


class LiveModel:
    """Per-channel and total power on a 10 ms grid, energy of the run and of its phases.

    ``cpu_total`` picks the CPU side of the total, as ``greentop summary --cpu-total`` does
    (``domains.plan_domains``; ValueError for "psys" or "system" without such a channel)."""

    def __init__(self, channels: Sequence[Channel], retain_s: float = DEFAULT_RETAIN_S, grid_ns: int = GRID_NS,
                 cpu_total: str = CPU_TOTAL_PACKAGES) -> None:
        self.plan = plan_domains(list(channels), cpu_total)
        self.channels, self.in_total = charted(self.plan)  # in_total is parallel to channels
        self.cpu_total = cpu_total
        self.grid_ns = int(grid_ns)
        self._lanes = [_Lane(c, converter_for(c), np.zeros(0, np.int64), np.zeros(0)) for c in self.channels]
        self._index = {c.name: i for i, c in enumerate(self.channels)}
        self._in_total_mask = np.array(self.in_total, dtype=bool)
        n = len(self.channels)
        # columns: power of each channel, the total's power, then the total's cumulative energy
        self.ring = _Ring(n + 2, int(retain_s * 1e9), capacity=max(64, int(retain_s * 1e9) // self.grid_ns + 1))
        # cumulative J at every grid point of the run: the total, then each channel
        self._history = _Ring(n + 1, None)
        self._grid_ns: int | None = None  # time of the last grid point
        self._grid_start_ns: int | None = None
        self._run_end_ns: int | None = None  # the workload's end: the run's figures stop there
        self._ledger_cache: tuple[tuple[int, int | None], list[tuple[float, float]]] | None = None
        self.events: list[Event] = []
        self._phase_cache: tuple[int, int, list[PhaseRow], CurrentPhase | None] | None = None
        self._spans: list[PhaseSpan] = []

    # -- input -----------------------------------------------------------------------------------

    def feed(self, drained: Mapping[str, Samples]) -> None:
        """Add one drain of the sampler (channel name -> samples); channels not primary are ignored."""
        for name, s in drained.items():
            i = self._index.get(name)
            if i is None or s.t_ns.size == 0:
                continue
            lane = self._lanes[i]
            e = lane.converter.feed(s.t_ns, s.raw).energy_j
            lane.pending_t = np.concatenate((lane.pending_t, s.t_ns))
            lane.pending_e = np.concatenate((lane.pending_e, e))
            lane.last_t_ns = int(s.t_ns[-1])
            if lane.channel.quantity is Quantity.ENERGY:
                raw = s.raw
                first = lane.last_raw is not None and int(raw[0]) != lane.last_raw
                moved = (raw[1:] != raw[:-1]).nonzero()[0] + 1  # np.diff with prepend costs ~4x this
                if first:
                    moved = np.concatenate(([0], moved))
                if moved.size:
                    lane.note_moves(s.t_ns[moved])
                lane.last_raw = int(s.raw[-1])
            lane.energy_j = float(e[-1])
        self._advance_grid()

    def feed_events(self, events: Iterable[Event]) -> None:
        self.events.extend(events)

    def _advance_grid(self) -> None:
        last = self._last_times()
        if not last:
            return
        newest = max(last.values())
        end = min(t for t in last.values() if newest - t <= STALE_S * 1e9)
        seen = [self._lanes[i] for i in last]
        step = self.grid_ns
        if self._grid_ns is None:
            self._grid_ns = self._grid_start_ns = (end // step) * step
            for lane in seen:
                lane.e_grid = lane.e_start = float(np.interp(self._grid_ns, lane.pending_t, lane.pending_e))
            self._history.append(np.array([self._grid_ns]), np.zeros((1, len(self._lanes) + 1)))
        k = (end - self._grid_ns) // step
        if k <= 0:
            return
        grid = self._grid_ns + step * np.arange(1, k + 1, dtype=np.int64)
        n = len(self._lanes)
        rows = np.zeros((k, n + 2))
        dt_s = step * 1e-9
        cumulative = np.zeros((k, n + 1))
        cumulative[:, 1:] = self._history.values[-1, 1:]
        # Each lane's cumulative J at the grid points (row 0: at the last grid point), then the
        # differences, powers and running sums of all lanes at once: the same arithmetic per
        # element as lane by lane, with a few numpy calls a drain instead of a few per lane.
        fed = [i for i, lane in enumerate(self._lanes) if lane.pending_t.size]
        e = np.empty((k + 1, len(fed)))
        for j, i in enumerate(fed):
            lane = self._lanes[i]
            e[0, j] = lane.e_grid
            e[1:, j] = np.interp(grid, lane.pending_t, lane.pending_e)
            lane.e_grid = float(e[-1, j])
            keep = max(int(lane.pending_t.searchsorted(grid[-1], side="right")) - 1, 0)
            lane.pending_t, lane.pending_e = lane.pending_t[keep:], lane.pending_e[keep:]
        if fed:
            power = (e[1:] - e[:-1]) / dt_s
            cols = np.array(fed)
            rows[:, cols] = power
            cumulative[:, cols + 1] += np.cumsum(power, axis=0) * dt_s
        rows[:, n] = rows[:, :n][:, self._in_total_mask].sum(axis=1)
        e_total0 = float(self._history.values[-1, 0])
        rows[:, n + 1] = e_total0 + np.cumsum(rows[:, n]) * dt_s
        cumulative[:, 0] = rows[:, n + 1]
        self.ring.append(grid, rows)
        self._history.append(grid, cumulative)
        self._grid_ns = int(grid[-1])

    def end_run(self, t_ns: int | None = None) -> None:
        """The workload ended (at ``t_ns``; default: the newest sample): the run's energy, duration,
        average and peak stop there, while power "now" goes on (the view may stay open)."""
        if self._run_end_ns is not None:
            return
        last = self._last_times()
        t = t_ns if t_ns is not None else (max(last.values()) if last else None)
        if t is not None:
            self._run_end_ns = int(t)

    @property
    def run_start_ns(self) -> int | None:
        """The first grid point: where the run's figures start."""
        return self._grid_start_ns

    @property
    def run_ended(self) -> bool:
        return self._run_end_ns is not None

    def _run_end(self) -> int | None:
        """The end of the run as far as the grid has got (ns)."""
        if self._grid_ns is None:
            return None
        return self._grid_ns if self._run_end_ns is None else min(self._grid_ns, self._run_end_ns)

    def run_figures(self) -> list[tuple[float, float]]:
        """(average W, peak W) of each channel and the total over the run, from the one ledger
        (``greentop.ledger``) over this model's 10 ms grid of cumulative energy: the figures
        ``greentop summary`` gives, at the grid's resolution. Cached until the grid moves."""
        end = self._run_end()
        n = len(self.channels)
        if end is None or self._grid_start_ns is None or end <= self._grid_start_ns:
            return [(math.nan, math.nan)] * (n + 1)
        # Recomputed once the grid has grown by 1 s or 2 % (whichever is more: a long run costs the
        # view a bounded share of a core), and at once when the run ends.
        key = (len(self._history), self._run_end_ns)
        if self._ledger_cache is not None:
            (rows, ended), figures = self._ledger_cache
            if ended == key[1] and key[0] - rows < max(int(1e9) // self.grid_ns, rows // 50):
                return figures
        from greentop.domains import DomainPlan
        from greentop.ledger import account, cumulative_channel

        t = self._history.t_ns
        cut = int(np.searchsorted(t, end, side="right"))
        hist = self._history.values[:cut]
        t = t[:cut]
        if t[-1] < end:  # the run ended between two grid points: one more knot, interpolated
            t = np.append(t, end)
            hist = np.vstack((hist, [np.interp(end, self._history.t_ns, self._history.values[:, c])
                                     for c in range(n + 1)]))
        data = [cumulative_channel(c, t, hist[:, i + 1]) for i, c in enumerate(self.channels)]
        plan = DomainPlan([cd.channel for cd in data], list(self.in_total), self.cpu_total)
        run = account(data, self._grid_start_ns, end, plan=plan).row("run")
        figures = [(d.average_w, d.peak_w) for d in run.domains]
        self._ledger_cache = (key, figures)
        return figures

    # -- output ----------------------------------------------------------------------------------

    @property
    def machine_total(self) -> str:
        """The line every output gives: what the total adds up ("machine total = ... (--cpu-total X): ...")."""
        return self.plan.describe()

    @property
    def t_ns(self) -> int | None:
        """Time of the newest grid point: the live view's "now"."""
        return self._grid_ns

    @property
    def duration_s(self) -> float:
        """The run's duration so far (s): up to the workload's end once it ended."""
        end = self._run_end()
        if end is None or self._grid_start_ns is None:
            return 0.0
        return max(end - self._grid_start_ns, 0) * 1e-9

    @property
    def energy_j(self) -> float:
        """Total energy of the primary channels over the run (J): from the first grid point to
        the workload's end once it ended, to the newest grid point before."""
        if not len(self._history):
            return 0.0
        if self._run_end_ns is None:
            return float(self._history.values[-1, 0])
        return float(np.interp(self._run_end(), self._history.t_ns, self._history.values[:, 0]))

    def _last_times(self) -> dict[int, int]:
        """Lane index -> time of its newest sample (ns), for lanes that have spoken."""
        return {i: lane.last_t_ns for i, lane in enumerate(self._lanes) if lane.last_t_ns is not None}

    def stale(self) -> list[str]:
        """Channels silent for ``STALE_S`` while others go on (their power reads 0 W meanwhile)."""
        last = self._last_times()
        if not last:
            return []
        newest = max(last.values())
        return [self._lanes[i].channel.name for i, t in last.items() if newest - t > STALE_S * 1e9]

    def counter_trouble(self) -> list[str]:
        """Channels whose counters reset or glitched (counted from the new value / skipped) or
        stalled (read, but unchanged for ``STALL_UPDATES`` of their update periods, at least
        ``STALL_MIN_S``: ``channel_series.stall_after_s``, the summary's rule), for the view to flag,
        as ``greentop summary`` flags the rows they touch: "stalled" while it lasts, "N stalls"
        for those the counter came out of."""
        out: list[str] = []
        for lane in self._lanes:
            conv = lane.converter
            limit = lane.stall_after_ns()
            stalled = (limit is not None and lane.last_move_ns is not None and lane.last_t_ns is not None
                       and lane.last_t_ns - lane.last_move_ns > limit)
            if isinstance(conv, CounterUnwrapper) and (conv.resets or conv.glitches or lane.stalls or stalled):
                bits = [f"{conv.resets} reset{'s' if conv.resets != 1 else ''}"] if conv.resets else []
                bits += [f"{conv.glitches} glitch{'es' if conv.glitches != 1 else ''} skipped"] if conv.glitches else []
                bits += [f"{lane.stalls} stall{'s' if lane.stalls != 1 else ''}"] if lane.stalls else []
                bits += ["stalled"] if stalled else []
                out.append(f"{lane.channel.name} ({', '.join(bits)})")
        return out

    def series(self, column: int, t0_ns: int) -> tuple[I64, F64]:
        """Copies of (t_ns, power_w) of ``column`` (channel index; ``len(channels)`` = total) from
        the last point before ``t0_ns`` on (the chart holds them by reference)."""
        t, power_w = self.window(t0_ns)
        return t, power_w[:, column]

    def window(self, t0_ns: int) -> tuple[I64, F64]:
        """Copies of the grid's times (ns) and every series' power (W; one column per channel,
        then the total) from the last point before ``t0_ns`` on: one copy a frame for all the
        charts, which hold their columns by reference."""
        t = self.ring.t_ns
        i = max(int(t.searchsorted(t0_ns, side="left")) - 1, 0)
        return t[i:].copy(), self.ring.values[i:, :len(self.channels) + 1].copy()

    def stats(self, column: int) -> PowerStats:
        t = self.ring.t_ns
        if t.size == 0:
            return PowerStats(math.nan, math.nan, math.nan)
        p = self.ring.values[:, column]
        i = int(np.searchsorted(t, t[-1] - NOW_WINDOW_NS, side="right"))
        now_w = float(p[i:].mean())
        avg_w, peak = self.run_figures()[column]
        return PowerStats(now_w, avg_w, peak if not math.isnan(peak) else now_w)

    def total_energy_between(self, t0_ns: npt.ArrayLike, t1_ns: npt.ArrayLike) -> F64:
        """Total energy (J) over each interval, interpolated on the grid (10 ms resolution)."""
        t = self._history.t_ns.astype(np.float64)
        e = self._history.values[:, 0]
        if t.size == 0:
            return np.zeros(np.shape(t0_ns))
        return np.interp(np.asarray(t1_ns, np.float64), t, e) - np.interp(np.asarray(t0_ns, np.float64), t, e)

    def phases(self) -> tuple[list[PhaseRow], CurrentPhase | None]:
        """Per-phase table (aggregated by name path, in order of first start) and the innermost
        phase still open, as of ``t_ns``. Cached until new events or new grid points arrive."""
        now = self._grid_ns or 0
        key = (len(self.events), now)
        if self._phase_cache is not None and self._phase_cache[:2] == key:
            return self._phase_cache[2], self._phase_cache[3]
        phases, _marks, counts = build_phases(self.events, now)
        paths: list[str] = []
        for p in phases:
            paths.append(p.name if p.parent < 0 else f"{paths[p.parent]}/{p.name}")
        starts = np.array([p.start_ns for p in phases], np.int64)
        ends = np.array([min(p.end_ns, now) for p in phases], np.int64)
        energy = self.total_energy_between(starts, ends) if phases else np.zeros(0)
        rows: dict[str, list[float]] = {}
        depth: dict[str, int] = {}
        opened: dict[str, bool] = {}
        current: CurrentPhase | None = None
        current_depth = -1
        for p, path, e_j, end in zip(phases, paths, energy, ends):
            r = rows.setdefault(path, [0, 0.0, 0.0])
            r[0] += 1
            r[1] += max(int(end) - p.start_ns, 0) * 1e-9
            r[2] += float(e_j)
            depth[path] = p.depth
            is_open = p.status == "unclosed"
            opened[path] = opened.get(path, False) or is_open
            if is_open and p.depth >= current_depth:
                current = CurrentPhase(path, max(now - p.start_ns, 0) * 1e-9, float(e_j))
                current_depth = p.depth
        # Work counted in a phase counts for it and for every phase around it (a step's samples
        # are the training's samples too), as in ``attribution``'s inclusive counts.
        counted: dict[str, dict[str, float]] = {}
        for c in counts:
            i = c.phase
            while 0 <= i < len(phases):
                by_name = counted.setdefault(paths[i], {})
                by_name[c.name] = by_name.get(c.name, 0.0) + c.value
                i = phases[i].parent
        table = [PhaseRow(path, depth[path], int(r[0]), r[1], r[2], opened[path], counted.get(path, {}))
                 for path, r in rows.items()]
        self._spans = [PhaseSpan(p.name, p.depth, p.start_ns, int(end), p.status == "unclosed")
                       for p, end in zip(phases, ends)]
        self._phase_cache = (key[0], key[1], table, current)
        return table, current

    def spans(self, t0_ns: int | None = None, t1_ns: int | None = None) -> list[PhaseSpan]:
        """Every phase (not aggregated), in order of start, as of ``t_ns``; with ``t0_ns``/``t1_ns``
        only those that overlap ``[t0_ns, t1_ns)``."""
        self.phases()
        out = self._spans
        if t0_ns is not None:
            out = [s for s in out if s.end_ns > t0_ns or (s.open and s.end_ns >= t0_ns)]
        if t1_ns is not None:
            out = [s for s in out if s.start_ns < t1_ns]
        return out
