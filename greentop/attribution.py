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
from dataclasses import dataclass, replace
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel
from greentop.channel_series import (
    GAP_INTERVALS,
    GAP_MIN_S,
    STALL_MIN_S,
    STALL_UPDATES,
    Series,
    anomaly_notes,
    build_series,
)
from greentop.domains import CPU_TOTAL_PACKAGES, DomainPlan, describe_total, plan_domains
from greentop.energy import PEAK_WINDOW_S
from greentop.formatters import J_PER_KWH, J_PER_WH
from greentop.intervals import Spans, complement, covered_s, events_in, sorted_unique, union
from greentop.peaks import PeakGrid, peak_grid, peaks
from greentop.row_figures import RowFigures, RowSpans, SpanFigures
from greentop.run_as import workload_notes
from greentop.summary_types import (
    FLAG_ESTIMATED,
    FLAG_GAP,
    FLAG_GLITCH,
    FLAG_INCLUDES_ESTIMATE,
    FLAG_NO_DATA,
    FLAG_OUTSIDE,
    FLAG_OVERLAP,
    FLAG_RESET,
    FLAG_SHORT,
    FLAG_STALLED,
    KIND_BASELINE,
    KIND_PHASE,
    KIND_RUN,
    KIND_UNTAGGED,
    NAME_BASELINE,
    NAME_RUN,
    NAME_UNTAGGED,
    SCHEMA_VERSION,
    TOTAL,
    DomainInfo,
    DomainSummary,
    PhaseSummary,
    RunSummary,
)
from greentop.tracedata import ChannelData, Phase, TraceData, left_running_note

__all__ = [
    "FLAG_ESTIMATED", "FLAG_GAP", "FLAG_GLITCH", "FLAG_INCLUDES_ESTIMATE", "FLAG_NO_DATA", "FLAG_OUTSIDE", "FLAG_OVERLAP",
    "FLAG_RESET", "FLAG_SHORT", "FLAG_STALLED", "GAP_INTERVALS", "GAP_MIN_S", "J_PER_KWH", "J_PER_WH", "KIND_BASELINE",
    "KIND_PHASE", "KIND_RUN", "KIND_UNTAGGED", "NAME_BASELINE", "NAME_RUN", "NAME_UNTAGGED", "SCHEMA_VERSION",
    "STALL_MIN_S", "STALL_UPDATES", "TOTAL", "DomainInfo", "DomainSummary", "PhaseSummary", "RunSummary", "summarise",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


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
    tree = _phase_tree(trace.phases)
    layout = _plan_rows(trace, tree, run_lo, run_hi)
    notes = list(layout.notes)
    iv = _Intervals.of(layout.spans, origin)
    grid = peak_grid(iv.span, iv.a_s, iv.b_s, np.array([r.inclusive for r in layout.rows], dtype=np.int64), iv.n_spans)

    # Per channel, only the knots every lookup below needs, one channel at a time.
    queries, bounds = sorted_unique(np.concatenate((iv.both_t, grid.edges))), sorted_unique(iv.both_t)
    series, plan = _read_series(trace, channels, every_channel, plan, cpu_total, origin, queries, bounds, (run_lo, run_hi))
    machine_total = _label_series(series, plan, origin, notes)

    spans = _span_figures(series, iv, grid, origin, layout.baseline_span)
    heads, counts, overlap = _row_heads(trace, tree, layout, run_lo, run_hi)
    row_spans = RowSpans(inclusive=np.array([r.inclusive for r in layout.rows], dtype=np.int64),
                         exclusive=np.array([r.exclusive for r in layout.rows], dtype=np.int64), counts=counts, overlap=overlap)
    fig = RowFigures(series, spans, row_spans, float(carbon_g_per_kwh))
    rows = [PhaseSummary(kind=h.kind, name=h.name, index=h.index, parent=h.parent, depth=h.depth, pid=h.pid, status=h.status,
                         phase_id=h.phase_id, attrs=h.attrs, start_ns=h.start_ns, end_ns=h.end_ns,
                         duration_s=fig.duration_s[r], exclusive_duration_s=fig.exclusive_duration_s[r], counts=counts[r],
                         flag=FLAG_OVERLAP if overlap[r] else "", domains=fig.domains(r))
            for r, h in enumerate(heads)]

    if not trace.complete and trace.meta.get("recording_stopped_early"):
        notes.append(f"the recording stopped early: writing the trace failed ({trace.meta['recording_stopped_early']}) "
                     "and the workload ran on unrecorded; phases were rebuilt from the event log up to the last flush")
    elif not trace.complete:
        notes.append("the recorder died before finalising the trace: phases were rebuilt from the event log")
    notes.extend(workload_notes(trace.meta, len(trace.phases) + len(trace.marks) + len(trace.counts)))
    if (left := left_running_note(trace.meta.get("run") or {})) is not None:
        notes.append(left)
    notes.extend(_baseline_warnings(series, rows))
    return RunSummary(
        schema_version=SCHEMA_VERSION, carbon_g_per_kwh=float(carbon_g_per_kwh),
        carbon_source=carbon_source or "given to summarise()", peak_window_s=PEAK_WINDOW_S, run_start_ns=run_lo,
        run_end_ns=run_hi, baseline=trace.baseline, complete=trace.complete, domains=[s.info for s in series], rows=rows,
        meta=dict(trace.meta), health=dict(trace.health), notes=notes, cpu_total=plan.cpu_total, machine_total=machine_total,
    )


# ------------------------------------------------------------------------------------ the steps


@dataclass
class _PhaseTree:
    """The phases as a tree. Phases are addressed by their position in ``trace.phases`` (what
    ``Phase.parent`` and ``Count.phase`` refer to)."""

    phases: list[Phase]
    children: dict[int, list[int]]
    top: list[int]  # phases without a valid parent
    order: list[tuple[int, int]]  # (phase index, depth), depth-first: the order rows are shown in

    def valid(self, p: int) -> bool:
        """Whether an index (``Phase.parent``, ``Count.phase``) points at a phase."""
        return 0 <= p < len(self.phases)


def _phase_tree(phases: list[Phase]) -> _PhaseTree:
    children: dict[int, list[int]] = defaultdict(list)
    top: list[int] = []
    for i, ph in enumerate(phases):
        if 0 <= ph.parent < len(phases) and ph.parent != i:
            children[ph.parent].append(i)
        else:
            top.append(i)
    return _PhaseTree(phases, children, top, _tree_order(phases, top, children))


class _RowSpec(NamedTuple):
    kind: str  # KIND_RUN, KIND_BASELINE, KIND_PHASE, KIND_UNTAGGED
    phase: int  # index in trace.phases (KIND_PHASE), else -1
    inclusive: int  # span of all the row's time
    exclusive: int  # span of its time under no direct child


@dataclass
class _RowLayout:
    """The rows in display order, and the interval sets ("spans") whose energy they need."""

    spans: Spans
    rows: list[_RowSpec]
    overlapping: set[int]  # phase indices (-1: the run) whose direct children overlap
    baseline_span: int  # -1: no baseline window
    notes: list[str]

    def overlaps(self, row: _RowSpec) -> bool:
        return (row.kind == KIND_PHASE and row.phase in self.overlapping) or (row.kind == KIND_RUN and -1 in self.overlapping)


def _plan_rows(trace: TraceData, tree: _PhaseTree, run_lo: int, run_hi: int) -> _RowLayout:
    """The run (its exclusive part: the untagged time), the baseline, every phase in tree order
    (exclusive: against the union of its children) and the untagged remainder."""
    phases = tree.phases
    spans = Spans()
    rows: list[_RowSpec] = []
    overlapping: set[int] = set()
    notes: list[str] = []
    run_span = spans.add([(run_lo, run_hi)])
    ts = np.array([max(phases[i].start_ns, run_lo) for i in tree.top], dtype=np.int64)
    te = np.array([min(phases[i].end_ns, run_hi) for i in tree.top], dtype=np.int64)
    us, ue, top_overlap = union(ts, te)
    untagged_span = spans.add(complement(run_lo, run_hi, us, ue))
    if top_overlap:
        overlapping.add(-1)
        notes.append("top-level phases overlap (several processes): top-level phases + untagged exceed the run")
    rows.append(_RowSpec(KIND_RUN, -1, run_span, untagged_span))
    baseline_span = -1
    if trace.baseline is not None and trace.baseline[1] > trace.baseline[0]:
        baseline_span = spans.add([(int(trace.baseline[0]), int(trace.baseline[1]))])
        rows.append(_RowSpec(KIND_BASELINE, -1, baseline_span, baseline_span))
    for i, _ in tree.order:
        ph = phases[i]
        s, e = int(ph.start_ns), max(int(ph.end_ns), int(ph.start_ns))
        inc = spans.add([(s, e)])
        kids = tree.children.get(i, [])
        if kids:
            cs, ce, ov = union(np.array([phases[k].start_ns for k in kids], dtype=np.int64),
                               np.array([phases[k].end_ns for k in kids], dtype=np.int64))
            exc = spans.add(complement(s, e, cs, ce))
            if ov:
                overlapping.add(i)
        else:
            exc = inc
        rows.append(_RowSpec(KIND_PHASE, i, inc, exc))
    rows.append(_RowSpec(KIND_UNTAGGED, -1, untagged_span, untagged_span))
    if overlapping - {-1}:
        notes.append("some phases have overlapping children (several processes or threads): "
                     "exclusive energy is taken against the union of the children")
    return _RowLayout(spans, rows, overlapping, baseline_span, notes)


@dataclass
class _Intervals:
    """Every interval of every span, as arrays (s since the run start)."""

    span: I64  # the span each interval belongs to
    a_s: F64  # start
    b_s: F64  # end
    n_spans: int
    duration_s: F64  # per span: the length of its intervals together

    @staticmethod
    def of(spans: Spans, origin_ns: int) -> "_Intervals":
        span = np.asarray(spans.span, dtype=np.int64)
        start_ns = np.asarray(spans.start, dtype=np.int64)
        end_ns = np.asarray(spans.end, dtype=np.int64)
        a_s = (start_ns - origin_ns).astype(np.float64) * 1e-9
        b_s = (end_ns - origin_ns).astype(np.float64) * 1e-9
        dur_s: F64 = np.bincount(span, weights=(end_ns - start_ns).astype(np.float64) * 1e-9,
                                 minlength=spans.n).astype(np.float64)
        return _Intervals(span, a_s, b_s, spans.n, dur_s)

    @property
    def both_span(self) -> I64:  # the span of each boundary, starts then ends
        return np.concatenate((self.span, self.span))

    @property
    def both_t(self) -> F64:  # every boundary: starts then ends
        return np.concatenate((self.a_s, self.b_s))

    def per_span(self, weights: F64) -> F64:
        """Sum of a per-interval figure over each span."""
        return np.bincount(self.span, weights=weights, minlength=self.n_spans)

    def any_per_span(self, hit: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Whether any interval of each span is hit."""
        return self.per_span(hit.astype(np.float64)) > 0


def _read_series(trace: TraceData, channels: Iterable[ChannelData] | None, every_channel: Sequence[Channel] | None,
                 plan: DomainPlan | None, cpu_total: str, origin: int, queries: F64, bounds: F64,
                 run_ns: tuple[int, int]) -> tuple[list[Series], DomainPlan]:
    """The shown channels made ready (``channel_series.build_series``), one at a time, and the
    domain plan they follow."""
    streamed = channels is not None
    every = list(every_channel) if every_channel is not None else [cd.channel for cd in trace.channels]
    if channels is None:
        by_name = {cd.channel.name: cd for cd in trace.channels}
        channels = [by_name[c.name] for c in (plan or plan_domains(every, cpu_total)).shown]
    series: list[Series] = []
    seen: list[Channel] = []
    for cd in channels:
        series.append(build_series(cd, origin, queries, bounds, run_ns))
        seen.append(cd.channel)
        del cd  # a streamed channel's samples go before the next channel's are read
    plan = plan or plan_domains(every if every_channel is not None else seen, cpu_total)
    if streamed and [c.name for c in plan.shown] != [c.name for c in seen]:
        raise ValueError("summarise(channels=...) takes the primary (shown) channels only (domains.plan_domains(...).shown): "
                         "the others are inside them and would be counted twice")
    return series, plan


def _label_series(series: list[Series], plan: DomainPlan, origin: int, notes: list[str]) -> str:
    """Mark each series in or out of the machine total, note what was taken, left out or went
    wrong (appended to ``notes``), and return what the machine total adds up."""
    for sr, add in zip(series, plan.in_total):
        sr.info = replace(sr.info, in_total=add, alternatives=list(plan.alternatives.get(sr.info.channel, [])))
        if sr.info.alternatives:
            notes.append(f"{sr.info.domain}: {sr.info.channel} ({sr.info.source}) taken; "
                         f"also read, not added: {', '.join(sr.info.alternatives)}")
    for sr in series:
        notes.extend(anomaly_notes(sr.info, origin))
    machine_total = describe_total(plan.cpu_total, [sr.info.domain for sr in series if sr.info.in_total],
                                   [sr.info.domain for sr in series if not sr.info.in_total])
    if any(not sr.info.in_total for sr in series):
        notes.append("shown beside the total, not added to it: "
                     + ", ".join(sr.info.domain for sr in series if not sr.info.in_total))
    if not series:
        notes.insert(0, "no primary energy channel: every energy figure is 0")
    return machine_total


def _span_figures(series: list[Series], iv: _Intervals, grid: PeakGrid, origin: int, baseline_span: int) -> SpanFigures:
    """Per channel, all spans at once: energy, its uncertainty, flags, peaks and baseline power."""
    nsp, dur_s = iv.n_spans, iv.duration_s
    both_span, both_t = iv.both_span, iv.both_t
    energy = np.zeros((len(series), nsp))
    unc = np.zeros((len(series), nsp))
    short = np.zeros((len(series), nsp), dtype=bool)
    outside = np.zeros((len(series), nsp), dtype=bool)
    anomalies: list[dict[str, npt.NDArray[np.bool_]]] = []
    for k, sr in enumerate(series):
        energy[k] = iv.per_span(sr.at(iv.b_s) - sr.at(iv.a_s))
        unc[k] = np.bincount(both_span, weights=sr.boundary_uncertainty_j(both_t), minlength=nsp)
        unc[k] += sr.info.resolution_w * dur_s
        if sr.update_s:
            short[k] = (dur_s > 0) & (dur_s < sr.update_s)
        if sr.has_data:
            tol = 2.0 * max(sr.update_s or 0.0, sr.info.sample_interval_s or 0.0)
            outside[k] = iv.any_per_span((iv.a_s < sr.t_first_s - tol) | (iv.b_s > sr.t_last_s + tol))
        # Energy not seen (gaps, stalls): a row over it is uncertain by the channel's average power there.
        run_avg_w = (sr.energy_j[-1] - sr.energy_j[0]) / max(sr.t_s[-1] - sr.t_s[0], 1e-9) if sr.has_data else 0.0
        unc[k] += iv.per_span(covered_s(sr.blind_s, iv.a_s, iv.b_s) * run_avg_w)
        anomalies.append(_anomalies(sr.info, iv, origin))
    energy = np.maximum(energy, 0.0)  # cumulative energy never decreases; guard float noise
    peak, peak_total = peaks(series, grid, nsp)
    bw: F64 | None = None
    bw_unc: F64 | None = None
    if baseline_span >= 0 and dur_s[baseline_span] > 0:
        bw = energy[:, baseline_span] / dur_s[baseline_span]
        bw_unc = unc[:, baseline_span] / dur_s[baseline_span]
    return SpanFigures(energy_j=energy, uncertainty_j=unc, peak_w=peak, peak_total_w=peak_total, duration_s=dur_s,
                       short=short, outside=outside, anomalies=anomalies, baseline_w=bw, baseline_uncertainty_w=bw_unc)


def _anomalies(info: DomainInfo, iv: _Intervals, origin: int) -> dict[str, npt.NDArray[np.bool_]]:
    """The spans each kind of channel trouble touches: resets, glitches, gaps, stalls."""
    gap_s = (np.array(info.gaps_ns, dtype=np.int64).reshape(-1, 2) - origin) * 1e-9
    stall_s = (np.array(info.stalls_ns, dtype=np.int64).reshape(-1, 2) - origin) * 1e-9
    lead_s = info.sample_interval_s or 0.0
    return {
        FLAG_RESET: iv.any_per_span(events_in(info.reset_t_ns, origin, lead_s, iv.a_s, iv.b_s)),
        FLAG_GLITCH: iv.any_per_span(events_in(info.glitch_t_ns, origin, lead_s, iv.a_s, iv.b_s)),
        FLAG_GAP: iv.any_per_span(covered_s(gap_s, iv.a_s, iv.b_s) > 0),
        FLAG_STALLED: iv.any_per_span(covered_s(stall_s, iv.a_s, iv.b_s) > 0),
    }


class _RowHead(NamedTuple):  # a NamedTuple: a long run makes tens of thousands, and frozen dataclasses are slow to make
    """What a row is, before its figures: the ``PhaseSummary`` fields that are not energy."""

    kind: str
    name: str
    index: int
    parent: int
    depth: int
    pid: int
    status: str
    phase_id: str
    attrs: dict[str, Any]
    start_ns: int
    end_ns: int


def _row_heads(trace: TraceData, tree: _PhaseTree, layout: _RowLayout, run_lo: int,
               run_hi: int) -> tuple[list[_RowHead], list[dict[str, float]], list[bool]]:
    """Per row: its head, the work counted inside it (inclusive up the tree) and whether its
    direct children overlap."""
    phases = tree.phases
    direct: list[dict[str, float]] = [defaultdict(float) for _ in range(len(phases))]
    outside_counts: dict[str, float] = defaultdict(float)
    all_counts: dict[str, float] = defaultdict(float)
    for cnt in trace.counts:
        all_counts[cnt.name] += cnt.value
        if tree.valid(cnt.phase):
            direct[cnt.phase][cnt.name] += cnt.value
        else:
            outside_counts[cnt.name] += cnt.value
    inclusive = _inclusive_counts(phases, direct, tree.order)
    depth_of = dict(tree.order)
    heads: list[_RowHead] = []
    counts: list[dict[str, float]] = []
    for row in layout.rows:
        if row.kind == KIND_PHASE:
            ph = phases[row.phase]
            counts.append(dict(inclusive[row.phase]))
            heads.append(_RowHead(row.kind, ph.name, row.phase, ph.parent if tree.valid(ph.parent) else -1,
                                  depth_of[row.phase], ph.pid, ph.status, ph.phase_id, dict(ph.attrs),
                                  int(ph.start_ns), int(ph.end_ns)))
        elif row.kind == KIND_RUN:
            counts.append(dict(all_counts))
            heads.append(_RowHead(row.kind, NAME_RUN, -1, -1, 0, -1, trace.status, "", {}, run_lo, run_hi))
        elif row.kind == KIND_BASELINE:
            counts.append({})
            b0, b1 = trace.baseline or (0, 0)
            heads.append(_RowHead(row.kind, NAME_BASELINE, -1, -1, 0, -1, "ok", "", {}, int(b0), int(b1)))
        else:
            counts.append(dict(outside_counts))
            heads.append(_RowHead(row.kind, NAME_UNTAGGED, -1, -1, 0, -1, "ok", "", {}, run_lo, run_hi))
    return heads, counts, [layout.overlaps(row) for row in layout.rows]


# A baseline is not idle when some stretch of the run at least this long draws less than it (by more
# than the figures' uncertainty), when it swings (its peak this far above its average), or when the
# CPU estimate saw the CPUs this busy during it.
_BASELINE_CHECK_MIN_S = 1.0
_BASELINE_PEAK_RATIO = 1.5
_BASELINE_MAX_UTILISATION = 0.5


def _baseline_warnings(series: list[Series], rows: list[PhaseSummary]) -> list[str]:
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
