"""Per-phase energy attribution: a recorded run -> energy, power, carbon and work figures per phase.

``summarise(trace, carbon_g_per_kwh)`` turns a :class:`~greentop.tracedata.TraceData` into a
:class:`RunSummary`: one :class:`PhaseSummary` per row (the whole run, the idle baseline, every
tagged phase in tree order, and the untagged remainder), each holding one :class:`DomainSummary`
per shown domain (``domains.plan_domains``: one channel per physical domain) plus a ``"total"``
domain, the sum of those ``in_total`` (psys is shown beside the packages, never added to them;
``cpu_total`` picks the CPU side). This is the one ledger: ``greentop.ledger.account`` wraps it for
samples held in memory, and ``greentop sample`` and the live view total energy through it.

How the numbers are made
------------------------
Each primary channel's raw readings go once through ``converter_for(channel).feed`` (in chunks: the
converters carry their state across chunks, and small temporaries keep an hour at 1 kHz cheap) to
give its cumulative energy (J) at every sample. The energy of an interval is the difference of that
cumulative energy interpolated linearly (``np.interp``) at the two boundary timestamps. The
boundaries of all rows are interpolated together, in a handful of ``np.interp`` calls per channel,
so a summary costs O(samples + boundaries), not O(samples x phases). For an energy counter sampled faster than it
updates (the NVML energy counter read at 1 kHz changes about every 100 ms), the interpolation knots
are the samples where the counter changed: between two updates the counter is stale, not flat, so
interpolating between update instants is right for a steady load where a staircase would be off by
up to one update's energy.

Every lookup (boundaries, peak-window edges, the ends of the uncertainty windows) is known before a
channel is read, so of each channel only the knots those lookups land between are kept, found on
the integer timestamps without converting every sample; interpolating on them gives bit for bit
what interpolating on all samples gives. No array as long as a channel outlives it, and channels
can be streamed, one read while the previous is summarised (``summarise(..., channels=...)``).

Rows: a phase row covers ``[start_ns, end_ns]``; its *inclusive* figures cover all of it, its
*exclusive* figures the part of it not covered by any direct child. Children of one parent overlap
only when they come from different processes or threads; exclusive is then taken against the
*union* of the children's intervals (time covered by two children is subtracted once, so it never
goes negative and never double-subtracts), it is clamped at 0 against rounding, and the row is
flagged "overlapping children" because the children's inclusive figures then add up to more than
the parent's time under them. The run row covers ``run_start_ns..run_end_ns``; its exclusive part
is the untagged time. "(untagged)" is the run minus the union of the top-level phases, so when
top-level phases do not overlap, top-level phases + untagged = run exactly (the idle-baseline window
lies inside the untagged time: it is also shown as its own row, "idle baseline").

Peak power is the highest average over a 100 ms window (``energy.PEAK_WINDOW_S``) inside the row:
consecutive windows from the row's start plus one window ending at its end, so the tail is covered;
a row shorter than one window reports its average instead.

Baseline: with ``trace.baseline`` set, each domain's idle power is its energy over the baseline
window divided by that window's duration, and ``above_baseline_j = energy_j - baseline_w * duration_s``
(it may be negative: a phase can draw less than idle). Per-unit figures (``per_unit_j``) divide a
row's inclusive energy by the work counted inside it (counts whose phase is the row's phase or a
descendant; the run row counts everything, the untagged row counts work reported outside any
phase). ``gco2e_g = energy_j / 3.6e6 * carbon_g_per_kwh``.

Uncertainty model (``*_uncertainty_j``)
---------------------------------------
A sensor is known only at its update instants: a counter holds its last value between updates, a
power gauge reports one number per update period ``u`` (measured: the median interval between
changes of the raw reading, ``energy.update_period_s``, taken on 16 evenly spaced stretches of
16384 samples when a channel is longer). So the cumulative energy at a boundary is
uncertain by the energy of the update interval that contains it, and where samples are sparser than
updates (a slow lane, dropped samples) by the energy of the sampling gap ``g`` that brackets it:
each boundary contributes the channel's energy over a window of ``max(u, g)`` centred on the
boundary (using the measured local power, so a boundary in an idle stretch costs less than one at
full load). Sampling faster than ``u`` does not shrink it: the sensor's own refresh is the limit.
On top, counters add their resolution (one raw unit x scale, J) per boundary and gauges one raw unit
(W) x the row's duration. A row's uncertainty is the sum over its boundaries (and, for "total",
over its channels): a worst-case bound, not a standard deviation, so it is added linearly rather
than in quadrature. It does not cover a
sensor's calibration or a gauge that averages only part of each update period (NVML on A100/H100
averages about 25 ms of every 100 ms, Yang et al., SC24), nor the CPU model's error.

Flags (``flag``, joined with "; "): "shorter than sensor update period" when a row lasts less than
``u`` of a contributing channel (e.g. a 30 ms phase on a GPU whose power updates every 100 ms: its
uncertainty exceeds its energy, and that is the honest answer); "estimated" for the CPU estimate's
domain ("includes estimate" on the total); "overlapping children"; "partly outside sensor data" when
a row extends beyond a channel's samples (that channel contributes nothing there); "no sensor data"
for a channel with fewer than two samples; "counter reset" / "counter glitch skipped" when the
sample interval a counter lost to a reset or glitch (``energy.CounterUnwrapper``) lies in the row;
"counter stalled" (a counter read but not moving for ``STALL_UPDATES`` update periods) and "sensor
gap" (no readings for ``GAP_INTERVALS`` sample intervals: the sensor vanished or its reads failed)
when the row overlaps one. Energy not seen there (a stall, a gauge's gap, the run's edges a sensor
missed) adds the channel's average power over the overlap to the row's uncertainty. A baseline that
does not look idle (a long row below it, a swinging baseline, busy CPUs) gets a warning note.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel, CpuPowerModel, Quantity
from greentop.domains import CPU_TOTAL_PACKAGES, DomainPlan, describe_total, plan_domains
from greentop.energy import Converter, CounterUnwrapper, converter_for
from greentop.energy import PEAK_WINDOW_S, update_period_s
from greentop.formatters import J_PER_KWH, J_PER_WH
from greentop.tracedata import ChannelData, Phase, TraceData

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SCHEMA_VERSION = 1
TOTAL = "total"

KIND_RUN = "run"
KIND_BASELINE = "baseline"
KIND_PHASE = "phase"
KIND_UNTAGGED = "untagged"
NAME_RUN = "run"
NAME_BASELINE = "idle baseline"
NAME_UNTAGGED = "(untagged)"

FLAG_SHORT = "shorter than sensor update period"
FLAG_ESTIMATED = "estimated"
FLAG_INCLUDES_ESTIMATE = "includes estimate"
FLAG_OVERLAP = "overlapping children"
FLAG_OUTSIDE = "partly outside sensor data"
FLAG_NO_DATA = "no sensor data"
FLAG_RESET = "counter reset"
FLAG_GLITCH = "counter glitch skipped"
FLAG_STALLED = "counter stalled"
FLAG_GAP = "sensor gap"

# A channel silent for this many of its median sample intervals (and at least GAP_MIN_S) has a gap:
# the sensor disappeared or its reads failed. A counter that has moved before and then does not move
# for STALL_UPDATES of its update periods (and at least STALL_MIN_S) while still read is stalled.
GAP_INTERVALS = 20
GAP_MIN_S = 0.5
STALL_UPDATES = 100
STALL_MIN_S = 2.0

# Counters sampled at least this much faster than they update get their interpolation knots thinned
# to the update instants (see module docstring); below it every sample is an update anyway.
_THIN_RATIO = 1.5


# ----------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DomainInfo:
    """One primary domain and the channel behind it, with what limits its precision."""

    domain: str  # display name: the channel's domain, "cpu (estimated)" for the CPU estimate
    channel: str
    source: str
    quantity: str  # "energy", "power", "cpu_busy"
    unit: str  # unit of the raw integer
    estimated: bool
    samples: int
    sample_interval_s: float | None  # median interval between samples
    update_period_s: float | None  # median interval between changes of the raw reading (None: < 2 changes)
    resolution_j: float  # energy of one raw unit, per boundary (counters, CPU estimate); 0 for gauges
    resolution_w: float  # power of one raw unit (gauges); 0 otherwise
    wraps: int
    backwards: int  # counter steps backwards that no wrap explains: resets (the same as ``resets``)
    note: str
    in_total: bool = True  # added into the machine total (psys beside the packages is shown, not added)
    resets: int = 0  # counter restarts (a step backwards no wrap explains): counted from the new value
    glitches: int = 0  # readings off the counter's track (implausible power), skipped
    reset_t_ns: list[int] = field(default_factory=list)
    glitch_t_ns: list[int] = field(default_factory=list)
    gaps_ns: list[tuple[int, int]] = field(default_factory=list)  # no readings (sensor gone or failing)
    stalls_ns: list[tuple[int, int]] = field(default_factory=list)  # read, but the counter did not move
    alternatives: list[str] = field(default_factory=list)  # other channels of the same domain, not taken


@dataclass(slots=True)  # not frozen: a long run has tens of thousands, and frozen init is slow
class DomainSummary:
    """Figures of one row for one domain (or the "total" of all primary domains)."""

    domain: str
    estimated: bool  # the domain is (or, for "total", includes) an estimate
    energy_j: float  # inclusive
    energy_wh: float
    energy_uncertainty_j: float  # worst-case bound, see the module docstring
    average_w: float  # energy_j / duration_s
    peak_w: float  # highest average over PEAK_WINDOW_S inside the row (the average if shorter)
    exclusive_energy_j: float  # not under any direct child
    exclusive_energy_uncertainty_j: float
    baseline_w: float | None  # idle power of this domain (None: no baseline window)
    above_baseline_j: float | None  # energy_j - baseline_w * duration_s
    above_baseline_uncertainty_j: float | None
    gco2e_g: float  # energy_j as kWh x carbon intensity
    per_unit_j: dict[str, float] = field(default_factory=dict)  # J per sample / token / request ...
    per_unit_above_baseline_j: dict[str, float] = field(default_factory=dict)
    flag: str = ""


@dataclass(slots=True)
class PhaseSummary:
    """One row: the run, the idle baseline, a phase, or the untagged remainder."""

    kind: str  # "run", "baseline", "phase", "untagged"
    name: str
    index: int  # index in TraceData.phases; -1 for the other kinds
    parent: int  # parent phase index; -1 at top level and for the other kinds
    depth: int  # 0 at top level (and for the other kinds)
    pid: int  # -1 for the other kinds
    status: str  # phases: "ok", "crashed", "unclosed", "interrupted"; the run: tracedata.run_status
    phase_id: str
    attrs: dict[str, Any]
    start_ns: int
    end_ns: int
    duration_s: float  # time covered (for "untagged": the sum of the gaps)
    exclusive_duration_s: float  # time not covered by any direct child
    counts: dict[str, float]  # work inside the row (inclusive)
    flag: str  # row-level flags ("overlapping children")
    domains: list[DomainSummary]  # one per primary domain, then "total"

    @property
    def total(self) -> DomainSummary:
        return self.domains[-1]

    def domain(self, name: str) -> DomainSummary:
        for d in self.domains:
            if d.domain == name:
                return d
        raise KeyError(name)


@dataclass
class RunSummary:
    schema_version: int
    carbon_g_per_kwh: float
    carbon_source: str
    peak_window_s: float
    run_start_ns: int
    run_end_ns: int
    baseline: tuple[int, int] | None
    complete: bool  # False: the recorder died before finalising the trace
    domains: list[DomainInfo]
    rows: list[PhaseSummary]
    meta: dict[str, Any]  # the trace's own metadata
    health: dict[str, Any]  # sampler health (overruns, read errors, dropped events ...)
    notes: list[str]
    cpu_total: str = CPU_TOTAL_PACKAGES  # what the CPU side of the machine total is ("packages" or "psys")
    machine_total: str = ""  # one line: what the "total" domain contains

    def row(self, name: str) -> PhaseSummary:
        """The first row with this name ("run", "idle baseline", "(untagged)", or a phase name)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def phase_rows(self) -> list[PhaseSummary]:
        return [r for r in self.rows if r.kind == KIND_PHASE]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------ per channel


@dataclass
class _Series:
    """A primary channel ready for interpolation: knots (s since the run start) and cumulative J.

    The knots may be a subset of the channel's: every query a summary makes brackets between two
    knots that are consecutive in the full set too, so ``np.interp`` and the gap lookups give
    exactly what they give on all of them (see ``_series``)."""

    info: DomainInfo
    t_s: F64
    energy_j: F64
    update_s: float | None
    t_first_s: float
    t_last_s: float
    blind_s: F64 = field(default_factory=lambda: np.zeros((0, 2)))  # (start, end) s: energy not seen there
    model: CpuPowerModel | None = None  # the CPU estimate's model

    @property
    def has_data(self) -> bool:
        return self.t_s.size >= 2

    def at(self, t_s: F64) -> F64:
        # np.interp clamps outside the knots: no energy is invented beyond the samples.
        return np.interp(t_s, self.t_s, self.energy_j) if self.has_data else np.zeros(t_s.shape)

    def boundary_uncertainty_j(self, t_s: F64) -> F64:
        """Energy of one window of max(update period, local knot gap) centred on each boundary."""
        if not self.has_data:
            return np.zeros(t_s.shape)
        w_s = _uncertainty_window_s(self.t_s, self.update_s, t_s)
        return (self.at(t_s + w_s / 2) - self.at(t_s - w_s / 2)) + self.info.resolution_j


def _uncertainty_window_s(knots_s: F64, update_s: float | None, t_s: F64) -> F64:
    """max(update period, gap between the knots around t) for each boundary t (>= 2 knots)."""
    i = np.clip(np.searchsorted(knots_s, t_s), 1, knots_s.size - 1)
    gap_s = knots_s[i] - knots_s[i - 1]
    return np.maximum(gap_s, update_s or 0.0)


def _domain_name(c: Channel) -> str:
    return f"{c.domain} (estimated)" if c.estimated else c.domain


def _resolution(c: Channel) -> tuple[float, float]:
    """(J per raw unit at a boundary, W per raw unit over time)."""
    if c.quantity is Quantity.ENERGY:
        return c.scale, 0.0
    if c.quantity is Quantity.POWER:
        return 0.0, c.scale
    # One unit of busy time moves the linear model's energy by scale * (max - idle) / n_cpus.
    m = c.model
    return (c.scale * (m.max_w - m.idle_w) / max(m.n_cpus, 1), 0.0) if m else (0.0, 0.0)


# Sample intervals and update periods are medians; on a long channel, measure them on this many
# evenly spaced stretches of this many samples (the whole channel when shorter), so an hour at
# 1 kHz costs what a minute does and the whole run is still represented.
_STRETCHES = 16
_STRETCH_SAMPLES = 16_384


def _median_over_stretches(measure: Callable[[int, int], float | None], n: int) -> float | None:
    if n <= _STRETCHES * _STRETCH_SAMPLES:
        return measure(0, n)
    starts = np.linspace(0, n - _STRETCH_SAMPLES, _STRETCHES).astype(np.int64).tolist()
    found = [v for v in (measure(a, a + _STRETCH_SAMPLES) for a in starts) if v is not None]
    return float(np.median(found)) if found else None


# The converters keep their state across chunks, so one pass over a long channel can go in chunks:
# the temporaries stay small and are reused instead of touching a fresh gigabyte per channel.
_FEED_CHUNK = 1 << 18


def _seconds(t_ns: I64, origin_ns: int) -> F64:
    """Seconds since ``origin_ns``: every knot time is made this way (subtract first: exact in int64)."""
    t_s = (t_ns - origin_ns).astype(np.float64)
    t_s *= 1e-9
    return t_s


def _last_at_or_before(t_ns: I64, origin_ns: int, q_s: F64) -> I64:
    """For each time ``q_s`` (s since ``origin_ns``), the index of the last sample at or before it
    (-1: none): ``searchsorted(_seconds(t_ns, origin_ns), q_s, "right") - 1``, exactly, without
    converting every sample. Seconds grow with ns, so the samples at or before q are those at or
    before the last whole ns whose seconds are <= q; a float guess lands within a ns of it."""
    n = int(t_ns.size)
    j = np.full(q_s.shape, -1, dtype=np.int64)
    if n == 0:
        return j
    first_s, last_s = _seconds(t_ns[[0, -1]], origin_ns).tolist()
    j[q_s >= last_s] = n - 1
    inside = (q_s >= first_s) & (q_s < last_s)
    q = q_s[inside]
    c = np.floor(q * 1e9).astype(np.int64)  # ns since origin_ns
    for _ in range(8):
        up = _seconds(c + 1, 0) <= q
        down = _seconds(c, 0) > q
        if not (up.any() or down.any()):
            break
        c += up
        c -= down
    else:  # not on any real trace (a run of months); the direct way is exact too
        return np.searchsorted(_seconds(t_ns, origin_ns), q_s, "right") - 1
    j[inside] = np.searchsorted(t_ns, c + origin_ns, "right") - 1
    return j


def _sorted_unique(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # np.unique without numpy 2's hash path for integers (~40x slower here); the input is a few
    # sorted runs end to end, which the stable sort (timsort) merges in about linear time.
    x = np.sort(x, kind="stable")
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if x.size else x


def _needed_knots(t_ns: I64, origin_ns: int, update_s: float | None, queries_s: F64, bounds_s: F64) -> I64:
    """The samples a summary's lookups touch, sorted: both knots around every query (``np.interp``),
    both around every boundary (its gap, ``_uncertainty_window_s``) and around both ends of every
    boundary's uncertainty window, plus the first two and last two. Interpolating on these alone
    gives bit for bit what interpolating on every sample gives, at a fraction of the memory."""
    n = int(t_ns.size)
    ends = np.array([0, 1, n - 2, n - 1], dtype=np.int64)
    j = _last_at_or_before(t_ns, origin_ns, queries_s)
    # searchsorted(..., "left") counts the samples before t: those at or before the float just below t.
    i = _last_at_or_before(t_ns, origin_ns, np.nextafter(bounds_s, -np.inf)) + 1
    keep = _sorted_unique(np.clip(np.concatenate((ends, j, j + 1, i - 1, i)), 0, n - 1))
    # The windows need the gaps, which these knots already give exactly.
    w_s = _uncertainty_window_s(_seconds(t_ns[keep], origin_ns), update_s, bounds_s)
    j = _last_at_or_before(t_ns, origin_ns, np.concatenate((bounds_s + w_s / 2, bounds_s - w_s / 2)))
    return _sorted_unique(np.clip(np.concatenate((keep, j, j + 1)), 0, n - 1))


def _feed_at(conv: Converter, t_ns: I64, raw: I64, keep: I64 | None) -> tuple[I64, F64]:
    """One pass of ``conv.feed`` over the channel, in chunks; the cumulative energy (J) at the
    samples ``keep`` (sorted), or with ``keep`` None at the first and last samples and every sample
    where it changed. Returns those sample indices and energies."""
    n = int(t_ns.size)
    found: list[I64] = []
    energy: list[F64] = []
    last = np.nan  # the previous chunk's last energy (NaN: the first sample is always kept)
    for a in range(0, n, _FEED_CHUNK):
        b = min(a + _FEED_CHUNK, n)
        e = conv.feed(t_ns[a:b], raw[a:b]).energy_j
        if keep is not None:
            lo, hi = np.searchsorted(keep, (a, b))
            local = keep[lo:hi] - a
        else:
            changed = np.diff(e, prepend=last) != 0
            if b == n:
                changed[-1] = True
            local = np.flatnonzero(changed)
            last = e[-1]
        found.append(local + a)
        energy.append(e[local])
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(found), np.concatenate(energy)


def _series(cd: ChannelData, origin_ns: int, queries_s: F64, bounds_s: F64, run_ns: tuple[int, int]) -> _Series:
    """A channel's knots for the lookups a summary makes: energy at ``queries_s`` and uncertainty
    windows around ``bounds_s`` (both s since ``origin_ns``). One pass of the converter over the
    samples, and nothing as long as the channel is made: an hour at 1 kHz costs that one pass."""
    c = cd.channel
    conv = converter_for(c)
    t_ns, raw = cd.t_ns, cd.raw
    n = int(t_ns.size)
    dt_s = _median_over_stretches(lambda a, b: float(np.median(np.diff(t_ns[a:b]))), n) if n >= 2 else None
    dt_s = dt_s * 1e-9 if dt_s is not None else None
    u_s = _median_over_stretches(lambda a, b: update_period_s(t_ns[a:b], raw[a:b]), n) if n >= 3 else None
    if c.quantity is Quantity.ENERGY and n >= 3 and u_s and dt_s and u_s > _THIN_RATIO * dt_s:
        keep = None  # knots where the counter changed, and the first and last samples
    elif n >= 4:
        keep = _needed_knots(t_ns, origin_ns, u_s, queries_s, bounds_s)
    else:
        keep = np.arange(n)
    knots, energy = _feed_at(conv, t_ns, raw, keep)
    res_j, res_w = _resolution(c)
    counter = conv if isinstance(conv, CounterUnwrapper) else None
    gap_ns = max(GAP_INTERVALS * (dt_s or 0.0), GAP_MIN_S) * 1e9
    stall_ns = max(STALL_UPDATES * u_s, STALL_MIN_S) * 1e9 if c.quantity is Quantity.ENERGY and u_s else 0.0
    gaps, stalls = _gaps_and_stalls(t_ns, raw, gap_ns, stall_ns, run_ns)
    info = DomainInfo(
        domain=_domain_name(c), channel=c.name, source=c.source, quantity=c.quantity.value, unit=c.unit,
        estimated=c.estimated, samples=n, sample_interval_s=dt_s, update_period_s=u_s, resolution_j=res_j,
        resolution_w=res_w, wraps=counter.wraps if counter else 0, backwards=counter.resets if counter else 0,
        note=c.note, resets=counter.resets if counter else 0, glitches=counter.glitches if counter else 0,
        reset_t_ns=list(counter.reset_t_ns) if counter else [], glitch_t_ns=list(counter.glitch_t_ns) if counter else [],
        gaps_ns=gaps, stalls_ns=stalls,
    )
    first_s, last_s = _seconds(t_ns[[0, -1]], origin_ns).tolist() if n else (0.0, 0.0)
    # Where the energy was not seen: every gap of a gauge or the estimate (held values stand in for
    # readings), a counter's stalls and the edges it was not read at all (a counter read across a
    # gap still counted the energy inside it).
    blind = stalls + (gaps if c.quantity is not Quantity.ENERGY else
                      [g for g in gaps if g[0] < int(t_ns[0]) or g[1] > int(t_ns[-1])] if n else gaps)
    blind_s = (np.array(sorted(blind), dtype=np.int64).reshape(-1, 2) - origin_ns) * 1e-9
    return _Series(info, _seconds(t_ns[knots], origin_ns), energy, u_s, first_s, last_s, blind_s, c.model)


def _anomaly_notes(info: DomainInfo, origin_ns: int) -> list[str]:
    """One note per kind of trouble a channel had, with when (s since the run start)."""
    def at(ts: list[int]) -> str:
        shown = ", ".join(f"{(t - origin_ns) * 1e-9:.3f} s" for t in ts[:5])
        return shown + (f" and {len(ts) - 5} more" if len(ts) > 5 else "")

    def spans(iv: list[tuple[int, int]]) -> str:
        shown = ", ".join(f"{(a - origin_ns) * 1e-9:.3f}-{(b - origin_ns) * 1e-9:.3f} s" for a, b in iv[:5])
        return shown + (f" and {len(iv) - 5} more" if len(iv) > 5 else "")

    out: list[str] = []
    name = f"{info.domain} ({info.channel})"
    if info.resets:
        out.append(f"{name}: {info.resets} counter reset(s) at {at(info.reset_t_ns)}: counted from the new value, "
                   "one sample interval lost each")
    if info.glitches:
        out.append(f"{name}: {info.glitches} counter glitch(es) (implausible power) skipped at {at(info.glitch_t_ns)}")
    if info.stalls_ns:
        out.append(f"{name}: counter stalled (read, not moving) over {spans(info.stalls_ns)}: "
                   "the rows over it carry its average power there in their uncertainty")
    if info.gaps_ns:
        out.append(f"{name}: no readings over {spans(info.gaps_ns)} (sensor gone or failing): "
                   "the rows over it carry it in their uncertainty")
    return out


def _gaps_and_stalls(t_ns: I64, raw: I64, gap_ns: float, stall_ns: float,
                     run_ns: tuple[int, int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Gaps (no reading for longer than ``gap_ns``, the run's edges included) and stalls (readings
    that do not change for longer than ``stall_ns``; 0: not checked), as (start_ns, end_ns)."""
    n = int(t_ns.size)
    lo, hi = run_ns
    if n == 0:
        return ([(lo, hi)] if hi > lo else []), []
    gaps: list[tuple[int, int]] = []
    stalls: list[tuple[int, int]] = []
    if int(t_ns[0]) - lo > gap_ns:
        gaps.append((lo, int(t_ns[0])))
    last_move: int | None = None  # time of the counter's last move (None: not yet moved)
    for a in range(0, n, _FEED_CHUNK):
        b = min(a + _FEED_CHUNK + 1, n)  # one sample of overlap: every interval seen once
        tt, rr = t_ns[a:b], raw[a:b]
        for k in np.flatnonzero(np.diff(tt) > gap_ns).tolist():
            gaps.append((int(tt[k]), int(tt[k + 1])))
        if stall_ns:
            moves = tt[1:][np.diff(rr) != 0]
            if moves.size:
                times = moves if last_move is None else np.concatenate(([last_move], moves))
                for k in np.flatnonzero(np.diff(times) > stall_ns).tolist():
                    stalls.append((int(times[k]), int(times[k + 1])))
                last_move = int(times[-1])
    if stall_ns and last_move is not None and int(t_ns[-1]) - last_move > stall_ns:
        stalls.append((last_move, int(t_ns[-1])))
    if hi - int(t_ns[-1]) > gap_ns:
        gaps.append((int(t_ns[-1]), hi))
    return gaps, stalls


def _covered_s(blind_s: F64, a: F64, b: F64) -> F64:
    """Length (s) of each interval [a, b] covered by the disjoint sorted intervals ``blind_s``."""
    if blind_s.size == 0:
        return np.zeros(a.shape)
    edges = blind_s.ravel()
    cum = np.concatenate(([0.0], np.cumsum(blind_s[:, 1] - blind_s[:, 0])))
    level = np.repeat(cum, 2)[1:-1]  # covered length up to each edge
    cover = lambda x: np.interp(x, edges, level, left=0.0, right=cum[-1])  # noqa: E731
    return np.maximum(cover(b) - cover(a), 0.0)


def _events_in(t_ns: list[int], origin_ns: int, lead_s: float, a: F64, b: F64) -> npt.NDArray[np.bool_]:
    """Whether each interval [a, b] (s since ``origin_ns``) overlaps one of the sample intervals
    ``(t - lead_s, t]`` ending at the times ``t_ns`` (the interval a reset or glitch lost)."""
    if not t_ns:
        return np.zeros(a.shape, dtype=bool)
    ev = np.sort((np.asarray(t_ns, dtype=np.int64) - origin_ns) * 1e-9)
    return np.searchsorted(ev, b + lead_s, "left") > np.searchsorted(ev, a, "right")


# ------------------------------------------------------------------------------------- intervals


def _union(starts: I64, ends: I64) -> tuple[I64, I64, bool]:
    """Merge intervals (ns); also say whether any two overlapped (touching is not overlapping)."""
    if starts.size == 0:
        return starts, ends, False
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    overlap = bool(np.any(s[1:] < reach[:-1]))
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > reach[:-1]
    first = np.flatnonzero(new)
    return s[first], np.maximum.reduceat(e, first), overlap


def _complement(lo: int, hi: int, us: I64, ue: I64) -> list[tuple[int, int]]:
    """Parts of [lo, hi] not covered by the merged intervals (us, ue)."""
    out: list[tuple[int, int]] = []
    cur = lo
    for a, b in zip(us.tolist(), ue.tolist()):
        a, b = max(a, lo), min(b, hi)
        if b <= a:
            continue
        if a > cur:
            out.append((cur, a))
        cur = max(cur, b)
    if hi > cur:
        out.append((cur, hi))
    return out


# kind, name, index, parent, depth, pid, status, phase_id, attrs, start_ns, end_ns
_Head = tuple[str, str, int, int, int, int, str, str, dict[str, Any], int, int]


class _Spans:
    """Sets of intervals (ns), each set a "span" whose energy is the sum over its intervals."""

    def __init__(self) -> None:
        self.span: list[int] = []
        self.start: list[int] = []
        self.end: list[int] = []
        self.n = 0

    def add(self, intervals: list[tuple[int, int]]) -> int:
        sid = self.n
        self.n += 1
        for a, b in intervals:
            if b > a:
                self.span.append(sid)
                self.start.append(a)
                self.end.append(b)
        return sid


# --------------------------------------------------------------------------------------- summary


def summarise(trace: TraceData, carbon_g_per_kwh: float, carbon_source: str = "",
              channels: Iterable[ChannelData] | None = None, cpu_total: str = CPU_TOTAL_PACKAGES,
              every_channel: Sequence[Channel] | None = None, plan: DomainPlan | None = None) -> RunSummary:
    """Per-phase, per-domain energy, power, carbon and work figures of a recorded run.

    ``carbon_g_per_kwh`` is the grid intensity (gCO2e/kWh) to apply and ``carbon_source`` where it
    comes from (``carbon.intensity_for`` returns both). See the module docstring for the model.

    ``cpu_total`` picks the CPU side of the machine total ("packages": packages + DRAM, the default;
    "psys": the platform domain); see ``greentop.domains``. Every domain of
    ``plan_domains(..., cpu_total).shown`` gets a column; the "total" adds those ``in_total``.

    ``channels``, when given, replaces ``trace.channels``: the shown channels' data, in
    ``domains.plan_domains(...).shown`` order, taken one at a time and each let go before the next is
    asked for, so a long trace's samples need never all be in memory (``every_channel``, the
    descriptions of all the trace's channels, lets the summary name the sources it did not take)::

        with open_trace(path) as f:
            trace = load(f, channels=())  # everything but the samples
            every = [cd.channel for cd in iter_channels(f, ends_only=True)]
            names = [c.name for c in plan_domains(every).shown]
            summary = summarise(trace, intensity, source, channels=iter_channels(f, names, read_ahead=True),
                                every_channel=every)

    gives what ``summarise(load(path), intensity, source)`` gives.

    ``plan``, when given, replaces ``plan_domains``: its ``shown`` channels get a column each and its
    ``in_total`` ones make the total (``greentop sample`` shows every channel this way).
    """
    origin = int(trace.run_start_ns)
    run_lo, run_hi = origin, max(int(trace.run_end_ns), origin)
    notes: list[str] = []

    phases = trace.phases
    nph = len(phases)

    def valid(p: int) -> bool:  # an index (Phase.parent, Count.phase) that points at a phase
        return 0 <= p < nph

    # Phases are addressed by their position in trace.phases (which is what Phase.parent and
    # Count.phase refer to).
    children: dict[int, list[int]] = defaultdict(list)
    top: list[int] = []
    for i, ph in enumerate(phases):
        if valid(ph.parent) and ph.parent != i:
            children[ph.parent].append(i)
        else:
            top.append(i)

    # --- spans: every interval set whose energy we need
    spans = _Spans()
    rows_spec: list[tuple[str, int, int, int]] = []  # (kind, phase index, inclusive span, exclusive span)
    overlap_rows: set[int] = set()  # phase indices (-1: run) whose direct children overlap

    run_span = spans.add([(run_lo, run_hi)])
    ts = np.array([max(phases[i].start_ns, run_lo) for i in top], dtype=np.int64)
    te = np.array([min(phases[i].end_ns, run_hi) for i in top], dtype=np.int64)
    us, ue, top_overlap = _union(ts, te)
    untagged_span = spans.add(_complement(run_lo, run_hi, us, ue))
    if top_overlap:
        overlap_rows.add(-1)
        notes.append("top-level phases overlap (several processes): top-level phases + untagged exceed the run")
    rows_spec.append((KIND_RUN, -1, run_span, untagged_span))
    baseline_span = -1
    if trace.baseline is not None and trace.baseline[1] > trace.baseline[0]:
        baseline_span = spans.add([(int(trace.baseline[0]), int(trace.baseline[1]))])
        rows_spec.append((KIND_BASELINE, -1, baseline_span, baseline_span))
    order = _tree_order(phases, top, children)
    for i, _ in order:
        ph = phases[i]
        s, e = int(ph.start_ns), max(int(ph.end_ns), int(ph.start_ns))
        inc = spans.add([(s, e)])
        kids = children.get(i, [])
        if kids:
            cs, ce, ov = _union(np.array([phases[k].start_ns for k in kids], dtype=np.int64),
                                np.array([phases[k].end_ns for k in kids], dtype=np.int64))
            exc = spans.add(_complement(s, e, cs, ce))
            if ov:
                overlap_rows.add(i)
        else:
            exc = inc
        rows_spec.append((KIND_PHASE, i, inc, exc))
    rows_spec.append((KIND_UNTAGGED, -1, untagged_span, untagged_span))
    if overlap_rows - {-1}:
        notes.append("some phases have overlapping children (several processes or threads): "
                     "exclusive energy is taken against the union of the children")

    iv_span = np.asarray(spans.span, dtype=np.int64)
    iv_start_ns = np.asarray(spans.start, dtype=np.int64)
    iv_end_ns = np.asarray(spans.end, dtype=np.int64)
    iv_a = (iv_start_ns - origin).astype(np.float64) * 1e-9
    iv_b = (iv_end_ns - origin).astype(np.float64) * 1e-9
    nsp = spans.n
    dur_s: F64 = np.bincount(iv_span, weights=(iv_end_ns - iv_start_ns).astype(np.float64) * 1e-9,
                             minlength=nsp).astype(np.float64)

    # --- per channel: the knots every lookup below needs, one channel at a time
    both_span = np.concatenate((iv_span, iv_span))
    both_t = np.concatenate((iv_a, iv_b))
    row_spans = np.array([r[2] for r in rows_spec], dtype=np.int64)
    grid = _peak_grid(iv_span, iv_a, iv_b, row_spans, nsp)
    queries, bounds = _sorted_unique(np.concatenate((both_t, grid.edges))), _sorted_unique(both_t)
    streamed = channels is not None
    every = list(every_channel) if every_channel is not None else [cd.channel for cd in trace.channels]
    if channels is None:
        by_name = {cd.channel.name: cd for cd in trace.channels}
        channels = [by_name[c.name] for c in (plan or plan_domains(every, cpu_total)).shown]
    series: list[_Series] = []
    seen: list[Channel] = []
    for cd in channels:
        series.append(_series(cd, origin, queries, bounds, (run_lo, run_hi)))
        seen.append(cd.channel)
        del cd  # a streamed channel's samples go before the next channel's are read
    plan = plan or plan_domains(every if every_channel is not None else seen, cpu_total)
    cpu_total = plan.cpu_total
    if streamed and [c.name for c in plan.shown] != [c.name for c in seen]:
        raise ValueError("summarise(channels=...) takes the primary (shown) channels only (domains.plan_domains(...).shown): "
                         "the others are inside them and would be counted twice")
    for k, (sr, add) in enumerate(zip(series, plan.in_total)):
        sr.info = replace(sr.info, in_total=add, alternatives=list(plan.alternatives.get(sr.info.channel, [])))
        if sr.info.alternatives:
            notes.append(f"{sr.info.domain}: {sr.info.channel} ({sr.info.source}) taken; "
                         f"also read, not added: {', '.join(sr.info.alternatives)}")
    for sr in series:
        notes.extend(_anomaly_notes(sr.info, origin))
    machine_total = describe_total(cpu_total, [sr.info.domain for sr in series if sr.info.in_total])
    if any(not sr.info.in_total for sr in series):
        notes.append("shown beside the total, not added to it: "
                     + ", ".join(sr.info.domain for sr in series if not sr.info.in_total))
    if not series:
        notes.insert(0, "no primary energy channel: every energy figure is 0")

    # --- per channel, all spans at once
    energy = np.zeros((len(series), nsp))
    unc = np.zeros((len(series), nsp))
    short = np.zeros((len(series), nsp), dtype=bool)
    outside = np.zeros((len(series), nsp), dtype=bool)
    anomalies: list[dict[str, npt.NDArray[np.bool_]]] = []
    for k, sr in enumerate(series):
        energy[k] = np.bincount(iv_span, weights=sr.at(iv_b) - sr.at(iv_a), minlength=nsp)
        unc[k] = np.bincount(both_span, weights=sr.boundary_uncertainty_j(both_t), minlength=nsp)
        unc[k] += sr.info.resolution_w * dur_s
        if sr.update_s:
            short[k] = (dur_s > 0) & (dur_s < sr.update_s)
        if sr.has_data:
            tol = 2.0 * max(sr.update_s or 0.0, sr.info.sample_interval_s or 0.0)
            out = (iv_a < sr.t_first_s - tol) | (iv_b > sr.t_last_s + tol)
            outside[k] = np.bincount(iv_span, weights=out.astype(np.float64), minlength=nsp) > 0
        # Energy not seen (gaps, stalls): a row over it is uncertain by the channel's average power there.
        info = sr.info
        run_avg_w = (sr.energy_j[-1] - sr.energy_j[0]) / max(sr.t_s[-1] - sr.t_s[0], 1e-9) if sr.has_data else 0.0
        blind = _covered_s(sr.blind_s, iv_a, iv_b)
        unc[k] += np.bincount(iv_span, weights=blind * run_avg_w, minlength=nsp)
        per_span = lambda hit: np.bincount(iv_span, weights=hit.astype(np.float64), minlength=nsp) > 0  # noqa: E731
        gap_s = (np.array(info.gaps_ns, dtype=np.int64).reshape(-1, 2) - origin) * 1e-9
        stall_s = (np.array(info.stalls_ns, dtype=np.int64).reshape(-1, 2) - origin) * 1e-9
        anomalies.append({
            FLAG_RESET: per_span(_events_in(info.reset_t_ns, origin, info.sample_interval_s or 0.0, iv_a, iv_b)),
            FLAG_GLITCH: per_span(_events_in(info.glitch_t_ns, origin, info.sample_interval_s or 0.0, iv_a, iv_b)),
            FLAG_GAP: per_span(_covered_s(gap_s, iv_a, iv_b) > 0),
            FLAG_STALLED: per_span(_covered_s(stall_s, iv_a, iv_b) > 0),
        })
    energy = np.maximum(energy, 0.0)  # cumulative energy never decreases; guard float noise

    peak, peak_total = _peaks(series, grid, nsp)

    # --- baseline power per channel
    bw: F64 | None = None
    bw_unc: F64 | None = None
    if baseline_span >= 0 and dur_s[baseline_span] > 0:
        bw = energy[:, baseline_span] / dur_s[baseline_span]
        bw_unc = unc[:, baseline_span] / dur_s[baseline_span]

    # --- counts, inclusive up the tree
    direct: list[dict[str, float]] = [defaultdict(float) for _ in range(nph)]
    outside_counts: dict[str, float] = defaultdict(float)
    all_counts: dict[str, float] = defaultdict(float)
    for cnt in trace.counts:
        all_counts[cnt.name] += cnt.value
        if valid(cnt.phase):
            direct[cnt.phase][cnt.name] += cnt.value
        else:
            outside_counts[cnt.name] += cnt.value
    inclusive = _inclusive_counts(phases, direct, order)
    depth_of = dict(order)

    # --- rows: every figure as a (row x domain) matrix first, then objects
    ci = float(carbon_g_per_kwh)
    heads: list[_Head] = []
    row_counts: list[dict[str, float]] = []
    row_overlap: list[bool] = []
    for kind, pi, _, _ in rows_spec:
        if kind == KIND_PHASE:
            ph = phases[pi]
            row_counts.append(dict(inclusive[pi]))
            heads.append((kind, ph.name, pi, ph.parent if valid(ph.parent) else -1, depth_of[pi], ph.pid, ph.status,
                          ph.phase_id, dict(ph.attrs), int(ph.start_ns), int(ph.end_ns)))
        elif kind == KIND_RUN:
            row_counts.append(dict(all_counts))
            heads.append((kind, NAME_RUN, -1, -1, 0, -1, trace.status, "", {}, run_lo, run_hi))
        elif kind == KIND_BASELINE:
            row_counts.append({})
            b0, b1 = trace.baseline or (0, 0)
            heads.append((kind, NAME_BASELINE, -1, -1, 0, -1, "ok", "", {}, int(b0), int(b1)))
        else:
            row_counts.append(dict(outside_counts))
            heads.append((kind, NAME_UNTAGGED, -1, -1, 0, -1, "ok", "", {}, run_lo, run_hi))
        row_overlap.append((kind == KIND_PHASE and pi in overlap_rows) or (kind == KIND_RUN and -1 in overlap_rows))
    inc_i = np.array([r[2] for r in rows_spec], dtype=np.int64)
    exc_i = np.array([r[3] for r in rows_spec], dtype=np.int64)
    fig = _RowFigures(series, energy, unc, peak, peak_total, bw, bw_unc, dur_s, inc_i, exc_i, row_counts, ci,
                       short, outside, row_overlap, anomalies)
    rows: list[PhaseSummary] = []
    for r, h in enumerate(heads):
        rows.append(PhaseSummary(
            kind=h[0], name=h[1], index=h[2], parent=h[3], depth=h[4], pid=h[5], status=h[6], phase_id=h[7],
            attrs=h[8], start_ns=h[9], end_ns=h[10], duration_s=fig.dur[r], exclusive_duration_s=fig.xdur[r],
            counts=row_counts[r], flag=FLAG_OVERLAP if row_overlap[r] else "", domains=fig.domains(r),
        ))

    if not trace.complete:
        notes.append("the recorder died before finalising the trace: phases were rebuilt from the event log")
    notes.extend(_baseline_warnings(series, rows))
    return RunSummary(
        schema_version=SCHEMA_VERSION, carbon_g_per_kwh=ci, carbon_source=carbon_source or "given to summarise()",
        peak_window_s=PEAK_WINDOW_S, run_start_ns=run_lo, run_end_ns=run_hi, baseline=trace.baseline,
        complete=trace.complete, domains=[s.info for s in series], rows=rows, meta=dict(trace.meta),
        health=dict(trace.health), notes=notes, cpu_total=cpu_total, machine_total=machine_total,
    )


# A baseline is not idle when some stretch of the run at least this long draws less than it (by more
# than the figures' uncertainty), when it swings (its peak this far above its average), or when the
# CPU estimate saw the CPUs this busy during it.
_BASELINE_CHECK_MIN_S = 1.0
_BASELINE_PEAK_RATIO = 1.5
_BASELINE_MAX_UTILISATION = 0.5


def _baseline_warnings(series: list[_Series], rows: list[PhaseSummary]) -> list[str]:
    """Warnings that the idle baseline was taken on a machine that was not idle: every "above
    baseline" figure then understates the workload (and may go negative)."""
    base = next((r for r in rows if r.kind == KIND_BASELINE), None)
    if base is None or base.total.baseline_w is None or base.duration_s <= 0:
        return []
    why: list[str] = []
    bw = base.total.baseline_w
    bw_unc = base.total.energy_uncertainty_j / base.duration_s
    below = [r for r in rows if r.kind != KIND_BASELINE and r.duration_s >= _BASELINE_CHECK_MIN_S
             and r.total.average_w < bw - bw_unc - r.total.energy_uncertainty_j / r.duration_s]
    if below:
        lowest = min(below, key=lambda r: r.total.average_w)
        why.append(f"{lowest.name!r} averaged {lowest.total.average_w:.1f} W, below the baseline's {bw:.1f} W")
    if base.total.peak_w > _BASELINE_PEAK_RATIO * base.total.average_w > 0:
        why.append(f"its power swung to {base.total.peak_w:.1f} W against {base.total.average_w:.1f} W on average")
    for sr, d in zip(series, base.domains):
        m = sr.model
        if m is not None and d.baseline_w is not None and m.max_w > m.idle_w:
            u = (d.baseline_w - m.idle_w) / (m.max_w - m.idle_w)
            if u > _BASELINE_MAX_UTILISATION:
                why.append(f"the CPUs were {100 * u:.0f} % busy during it")
    if not why:
        return []
    return ["warning: the idle baseline does not look idle (" + "; ".join(why) + "): \"above baseline\" figures "
            "understate the workload's energy; record again with the machine idle, or read energy_j instead"]


def _tree_order(phases: list[Phase], top: list[int], children: dict[int, list[int]]) -> list[tuple[int, int]]:
    """(phase index, depth) depth-first, children by start time: the order a profile reads in.

    Depth comes from the parent links themselves, so indentation and inclusive counts agree with
    the tree even if a trace's stored depths do not."""
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    key = lambda i: (phases[i].start_ns, i)  # noqa: E731
    stack = [(i, 0) for i in sorted(top, key=key, reverse=True)]
    while stack:
        i, d = stack.pop()
        if i in seen:  # a malformed parent chain must not loop
            continue
        seen.add(i)
        out.append((i, d))
        stack.extend((k, d + 1) for k in sorted(children.get(i, []), key=key, reverse=True))
    # Phases only reachable through a cycle still get a row.
    out.extend((i, 0) for i in range(len(phases)) if i not in seen)
    return out


def _inclusive_counts(phases: list[Phase], direct: list[dict[str, float]],
                      order: list[tuple[int, int]]) -> list[dict[str, float]]:
    inc = [dict(d) for d in direct]
    parent_in_tree = {i: phases[i].parent for i, d in order if d > 0}
    # Reverse pre-order: every descendant is folded in before its ancestor is added to its parent.
    for i, _ in reversed(order):
        parent = parent_in_tree.get(i)
        if parent is not None:
            for name, v in inc[i].items():
                inc[parent][name] = inc[parent].get(name, 0.0) + v
    return inc


@dataclass
class _PeakGrid:
    """The PEAK_WINDOW_S windows of every row, as the edges to interpolate energy at.

    Windows tile each interval from its start; one more window ends at the interval's end when the
    tiling leaves a tail. Neighbouring windows share an edge, so a row of n windows costs n + 1
    lookups per channel."""

    edges: F64
    inner: npt.NDArray[np.bool_]  # edge pairs (i, i + 1) that bound a window
    order: I64  # windows, sorted by span
    first: I64  # in that order, the first window of each span that has any
    spans_with: I64  # those spans


def _peak_grid(iv_span: I64, iv_a: F64, iv_b: F64, row_spans: I64, nsp: int) -> _PeakGrid:
    w = PEAK_WINDOW_S
    is_row = np.zeros(nsp, dtype=bool)
    is_row[row_spans] = True
    sel = is_row[iv_span]
    sp, a, b = iv_span[sel], iv_a[sel], iv_b[sel]
    length = b - a
    eps = 1e-9
    n_full = np.where(length >= w - eps, np.floor((length + eps) / w), 0).astype(np.int64)
    tail = (n_full > 0) & (length - n_full * w > eps)
    # Edge groups: k * w from each tiled interval's start (n_full + 1 edges), then (b - w, b) per tail.
    n_edges = np.where(n_full > 0, n_full + 1, 0)
    offs = np.repeat(np.cumsum(n_edges) - n_edges, n_edges)
    k = np.arange(int(n_edges.sum())) - offs
    edges = np.concatenate((np.repeat(a, n_edges) + k * w, np.column_stack((b[tail] - w, b[tail])).ravel()))
    group = np.concatenate((np.repeat(np.arange(sp.size), n_edges), np.repeat(np.arange(sp.size, sp.size + int(tail.sum())), 2)))
    group_span = np.concatenate((sp, sp[tail]))
    none = np.zeros(0, dtype=np.int64)
    if edges.size < 2:
        return _PeakGrid(edges, np.zeros(0, dtype=bool), none, none, none)
    inner = group[1:] == group[:-1]  # consecutive edges of one group bound a window
    w_span = group_span[group[1:][inner]]
    order = np.argsort(w_span, kind="stable")
    w_span = w_span[order]
    first = np.flatnonzero(np.concatenate(([True], w_span[1:] != w_span[:-1])))
    return _PeakGrid(edges, inner, order, first, w_span[first])


def _peaks(series: list[_Series], grid: _PeakGrid, nsp: int) -> tuple[F64, F64]:
    """Highest PEAK_WINDOW_S-average power per span (rows only), per channel and for the total."""
    w = PEAK_WINDOW_S
    peak = np.full((len(series), nsp), np.nan)
    peak_total = np.full(nsp, np.nan)
    if grid.edges.size < 2:
        return peak, peak_total
    total = np.zeros(grid.order.size)
    for c, sr in enumerate(series):
        p = (np.diff(sr.at(grid.edges))[grid.inner] / w)[grid.order]
        if sr.info.in_total:
            total += p
        peak[c, grid.spans_with] = np.maximum.reduceat(p, grid.first)
    peak_total[grid.spans_with] = np.maximum.reduceat(total, grid.first)
    return peak, peak_total


class _RowFigures:
    """All figures of all rows as (row x domain) matrices; ``domains(r)`` builds one row's objects.

    Vectorised so a run with tens of thousands of phases costs one object per row and domain and
    nothing else per row in Python."""

    def __init__(self, series: list[_Series], energy: F64, unc: F64, peak: F64, peak_total: F64, bw: F64 | None,
                 bw_unc: F64 | None, dur_s: F64, inc: I64, exc: I64, counts: list[dict[str, float]], ci: float,
                 short: npt.NDArray[np.bool_], outside: npt.NDArray[np.bool_], overlap: list[bool],
                 anomalies: list[dict[str, npt.NDArray[np.bool_]]]) -> None:
        c = len(series)
        nrow = inc.size
        dur, xdur = dur_s[inc], dur_s[exc]
        e = np.zeros((nrow, c + 1))
        u, x, xu, pk = (np.zeros((nrow, c + 1)) for _ in range(4))
        e[:, :c], u[:, :c] = energy[:, inc].T, unc[:, inc].T
        x[:, :c] = np.maximum(np.minimum(energy[:, exc].T, e[:, :c]), 0.0)  # clamp: see module docstring
        xu[:, :c] = unc[:, exc].T
        pk[:, :c], pk[:, c] = peak[:, inc].T, peak_total[inc]
        add = np.array([s.info.in_total for s in series], dtype=bool)
        for m in (e, u, x, xu):
            m[:, c] = m[:, :c][:, add].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            avg = np.where(dur[:, None] > 0, e / dur[:, None], np.nan)
        pk = np.where(np.isnan(pk), avg, pk)  # shorter than one peak window: its average is its peak
        self.names = [s.info.domain for s in series] + [TOTAL]
        est = [s.info.estimated for s in series]
        self.estimated = est + [any(e and s.info.in_total for e, s in zip(est, series))]
        self.dur, self.xdur = dur.tolist(), xdur.tolist()
        self.e, self.u, self.x, self.xu = e.tolist(), u.tolist(), x.tolist(), xu.tolist()
        self.wh, self.avg, self.pk = (e / J_PER_WH).tolist(), avg.tolist(), pk.tolist()
        self.g = (e / J_PER_KWH * ci).tolist()
        self.has_bw = bw is not None and bw_unc is not None
        above: F64 | None = None
        self.bw: list[float] = []
        self.above: list[list[float]] = []
        self.above_u: list[list[float]] = []
        if bw is not None and bw_unc is not None:
            bwd = np.append(bw, bw[add].sum())
            bwud = np.append(bw_unc, bw_unc[add].sum())
            above = e - bwd[None, :] * dur[:, None]
            self.bw, self.above = bwd.tolist(), above.tolist()
            self.above_u = (u + bwud[None, :] * dur[:, None]).tolist()
        # Work counts: one column per count name; J per unit where the row counted any.
        self.count_names = sorted({n for cnt in counts for n in cnt})
        cm = np.array([[cnt.get(n, 0.0) for n in self.count_names] for cnt in counts]).reshape(nrow, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.pu: list[list[list[float]]] = (e[:, :, None] / cm[:, None, :]).tolist()
            self.pua: list[list[list[float]]] | None = (
                (above[:, :, None] / cm[:, None, :]).tolist() if above is not None else None)
        self.pos = [[k for k, v in enumerate(row) if v > 0] for row in cm.tolist()]
        self.flags = self._flags(series, inc, short, outside, overlap, anomalies)

    def _flags(self, series: list[_Series], inc: I64, short: npt.NDArray[np.bool_], outside: npt.NDArray[np.bool_],
               overlap: list[bool], anomalies: list[dict[str, npt.NDArray[np.bool_]]]) -> list[list[str]]:
        c = len(series)
        sh, out = short[:, inc].T.tolist(), outside[:, inc].T.tolist()
        # Only anomalies that happened are looked at per row: a clean run pays nothing here.
        odd = [[(name, hit[inc].tolist()) for name, hit in a.items() if hit.any()] for a in anomalies]
        no_data = [not s.has_data for s in series]
        any_est = self.estimated[c]
        result: list[list[str]] = []
        for r in range(inc.size):
            base = [FLAG_OVERLAP] if overlap[r] else []
            row: list[str] = []
            tot: list[str] = list(base)
            for k in range(c):
                f = list(base)
                checks = [(no_data[k], FLAG_NO_DATA), (sh[r][k], FLAG_SHORT), (out[r][k], FLAG_OUTSIDE)]
                checks += [(hit[r], name) for name, hit in odd[k]]
                for on, name in checks:
                    if on:
                        f.append(name)
                        if series[k].info.in_total and name not in tot:
                            tot.append(name)
                if self.estimated[k]:
                    f.append(FLAG_ESTIMATED)
                row.append("; ".join(f))
            if any_est:
                tot.append(FLAG_INCLUDES_ESTIMATE)
            row.append("; ".join(tot))
            result.append(row)
        return result

    def domains(self, r: int) -> list[DomainSummary]:
        out: list[DomainSummary] = []
        e, u, x, xu, wh, avg, pk, g = (self.e[r], self.u[r], self.x[r], self.xu[r], self.wh[r], self.avg[r],
                                       self.pk[r], self.g[r])
        pos, names, flags = self.pos[r], self.count_names, self.flags[r]
        pu = self.pu[r]
        for d, name in enumerate(self.names):
            per_unit = {names[k]: pu[d][k] for k in pos}
            if self.has_bw:
                per_above = {names[k]: self.pua[r][d][k] for k in pos} if self.pua is not None else {}
                bw, above, above_u = self.bw[d], self.above[r][d], self.above_u[r][d]
            else:
                per_above, bw, above, above_u = {}, None, None, None
            out.append(DomainSummary(name, self.estimated[d], e[d], wh[d], u[d], avg[d], pk[d], x[d], xu[d], bw,
                                     above, above_u, g[d], per_unit, per_above, flags[d]))
        return out
