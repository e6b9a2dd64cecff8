"""One primary channel made ready for a summary: its knots (s since the run start), cumulative
energy (J) at them, what limits its precision (``DomainInfo``: update period, resolution, resets,
glitches, gaps, stalls) and the per-boundary uncertainty. See ``attribution``'s docstring for the
model; ``build_series`` is the one pass over a channel's samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel, CpuPowerModel, Quantity
from greentop.energy import Converter, CounterUnwrapper, converter_for, update_period_s
from greentop.intervals import sorted_unique
from greentop.summary_types import DomainInfo
from greentop.tracedata import ChannelData

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

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


def stall_after_s(update_period_s: float | None) -> float | None:
    """How long (s) a counter that has moved before must then stay unchanged, while still read, to
    be stalled: ``STALL_UPDATES`` of its update period, at least ``STALL_MIN_S`` (a healthy slow
    meter is never flagged, a stuck fast one is within seconds). None: no period measured yet
    (fewer than two changes), nothing to judge by. The summary and the live view both ask this."""
    if not update_period_s:
        return None
    return max(STALL_UPDATES * update_period_s, STALL_MIN_S)


@dataclass
class Series:
    """A primary channel ready for interpolation: knots (s since the run start) and cumulative J.

    The knots may be a subset of the channel's: every query a summary makes brackets between two
    knots that are consecutive in the full set too, so ``np.interp`` and the gap lookups give
    exactly what they give on all of them (see ``build_series``)."""

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
    keep = sorted_unique(np.clip(np.concatenate((ends, j, j + 1, i - 1, i)), 0, n - 1))
    # The windows need the gaps, which these knots already give exactly.
    w_s = _uncertainty_window_s(_seconds(t_ns[keep], origin_ns), update_s, bounds_s)
    j = _last_at_or_before(t_ns, origin_ns, np.concatenate((bounds_s + w_s / 2, bounds_s - w_s / 2)))
    return sorted_unique(np.clip(np.concatenate((keep, j, j + 1)), 0, n - 1))


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


def build_series(cd: ChannelData, origin_ns: int, queries_s: F64, bounds_s: F64, run_ns: tuple[int, int]) -> Series:
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
    stall_s = stall_after_s(u_s) if c.quantity is Quantity.ENERGY else None
    stall_ns = stall_s * 1e9 if stall_s is not None else 0.0
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
    return Series(info, _seconds(t_ns[knots], origin_ns), energy, u_s, first_s, last_s, blind_s, c.model)


def anomaly_notes(info: DomainInfo, origin_ns: int) -> list[str]:
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
