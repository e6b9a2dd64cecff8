"""Raw readings -> energy (J) and power (W).

Each channel kind has a converter fed with drained ``(t_ns, raw)`` chunks in order; it keeps the
state that spans chunks and returns the cumulative energy since its first sample, in joules, at
every sample's time. Counters are unwrapped across any number of wraps; a step backwards that no
wrap explains is a reset (counting goes on from the new value) and a step implying more power than
the domain can draw is a glitch (skipped): see ``CounterUnwrapper``. Which channels add up to a
machine total is ``greentop.domains``'s business; the totals themselves are ``greentop.ledger``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel, CpuPowerModel, Quantity
from greentop.domains import plan_domains

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# A wrap is believed only if the energy it implies fits under this power; otherwise the
# step backwards is a glitch. 20 kW per channel is far above any CPU package or GPU.
MAX_PLAUSIBLE_POWER_W = 20_000.0
PEAK_WINDOW_S = 0.1  # peak power is the highest average over a window this long
# A forward step is judged over the time since the counter last moved, plus this much: the update
# that made the step may have come up to a sample interval before the sample that saw it.
GLITCH_SLACK_S = 0.005
# A glitch is readings off the counter's track that come back to it within this long.
GLITCH_LOOKAHEAD_S = 1.0
_GLITCH_LOOKAHEAD_N = 8192


@dataclass
class EnergyChunk:
    t_ns: I64
    energy_j: F64  # cumulative since the converter's first sample


@dataclass
class CounterUnwrapper:
    """Monotonic energy from a wrapping energy counter (RAPL, hwmon energy, NVML mJ).

    Steps that are not energy are never integrated, and each is counted with its time:

    - a step backwards that a wrap explains (it fits under ``max_power_w``) is a wrap;
    - any other step backwards is a reset (driver reload, MSR cleared, NVML after a GPU reset): the
      count restarts from the new value, so at most that one interval is lost (``resets``);
    - a step forward implying more than ``glitch_power_w`` over the time since the counter last
      moved is a glitch: the readings off the track are skipped and counting resumes at the first
      one (within ``GLITCH_LOOKAHEAD_S``) that continues plausibly from the last good value; if none
      does, the counter jumped and stays there: counting resumes from the new value, losing the jump
      (``glitches`` either way);
    - a dip (readings below the track that come back to it) is a glitch too, not a reset.
    """

    scale: float  # J per raw unit
    wrap_raw: int  # counter wraps to 0 here; 0 = never wraps
    max_power_w: float = MAX_PLAUSIBLE_POWER_W
    glitch_power_w: float = MAX_PLAUSIBLE_POWER_W
    wraps: int = 0
    resets: int = 0
    glitches: int = 0
    reset_t_ns: list[int] = field(default_factory=list)
    glitch_t_ns: list[int] = field(default_factory=list)
    _last_raw: int | None = None  # the last reading accepted as energy
    _last_t_ns: int = 0
    _anchor_t_ns: int = 0  # time of the sample before the counter's last move
    _energy_raw: int = 0  # unwrapped raw units since the first sample

    @property
    def backwards(self) -> int:
        """Steps backwards that no wrap explains and that were not a one-reading dip: resets."""
        return self.resets

    def feed(self, t_ns: I64, raw: I64) -> EnergyChunk:
        if raw.size == 0:
            return EnergyChunk(t_ns, np.zeros(0))
        if self._last_raw is None:
            self._last_raw, self._last_t_ns, self._anchor_t_ns = int(raw[0]), int(t_ns[0]), int(t_ns[0])
        prev_raw, prev_t = self._last_raw, self._last_t_ns
        if raw.dtype == np.int64:  # np.diff(raw, prepend=prev_raw), without its overhead
            d = np.empty_like(raw)
            d[0] = raw[0] - prev_raw
            np.subtract(raw[1:], raw[:-1], out=d[1:])
        else:
            d = np.diff(raw, prepend=prev_raw)
        if self._plainly_energy(d, t_ns, prev_t):
            # Every step is forward and below the smallest limit there can be: nothing to judge,
            # the arithmetic below the same without the per-step plausibility windows (a live
            # view feeds every channel 20 times a second).
            cum = self._energy_raw + d.cumsum()
            self._energy_raw = int(cum[-1])
            moved = d.nonzero()[0]  # methods and ufuncs below, not numpy's Python-level wrappers
            if moved.size:
                m = int(moved[-1])
                self._anchor_t_ns = prev_t if m == 0 else int(t_ns[m - 1])
            self._last_raw = int(raw[-1])
            self._last_t_ns = int(t_ns[-1])
            return EnergyChunk(t_ns, cum.astype(np.float64) * self.scale)
        t_prev = np.concatenate(([prev_t], t_ns[:-1]))
        # The energy of a step accrued since the counter last moved (a slow counter sampled fast
        # moves once per update): the plausibility window starts at the sample before that move.
        moved = np.flatnonzero(d != 0)
        last_move = np.full(d.size, -1, dtype=np.int64)
        if moved.size:
            mark = np.full(d.size, -1, dtype=np.int64)
            mark[moved] = moved
            last_move[1:] = np.maximum.accumulate(mark)[:-1]
        anchor = np.where(last_move >= 0, t_prev[np.maximum(last_move, 0)], self._anchor_t_ns)
        window_s = (t_ns - anchor).astype(np.float64) * 1e-9 + GLITCH_SLACK_S
        limit = self.glitch_power_w * window_s / self.scale
        bad = np.flatnonzero((d < 0) | (d > limit))
        last = int(raw[-1])
        if bad.size:
            last = self._resolve(d, bad.tolist(), raw, t_ns, t_prev, limit, prev_raw)
        cum = self._energy_raw + np.cumsum(d)
        self._energy_raw = int(cum[-1])
        if moved.size:
            self._anchor_t_ns = int(t_prev[moved[-1]])
        self._last_raw = last
        self._last_t_ns = int(t_ns[-1])
        return EnergyChunk(t_ns, cum.astype(np.float64) * self.scale)

    def _plainly_energy(self, d: I64, t_ns: I64, prev_t: int) -> bool:
        """Whether no step of ``d`` can be a wrap, reset or glitch: none backwards, and none above
        the glitch limit of the shortest window there is (``GLITCH_SLACK_S``; a window is never
        shorter while time does not go back, which is checked too)."""
        if not (self.scale > 0 and self.glitch_power_w >= 0):
            return False
        floor_limit = self.glitch_power_w * GLITCH_SLACK_S / self.scale
        if np.minimum.reduce(d) < 0 or np.maximum.reduce(d) > floor_limit:
            return False
        if int(t_ns[0]) < max(prev_t, self._anchor_t_ns):
            return False
        return t_ns.size == 1 or bool(np.logical_and.reduce(t_ns[1:] >= t_ns[:-1]))

    def _resolve(self, d: I64, bad: list[int], raw: I64, t_ns: I64, t_prev: I64, limit: F64, prev_raw: int) -> int:
        """Walk the suspicious steps in order (few: wraps, resets, glitches), rewrite ``d`` in place
        and return the last reading accepted as energy. A step not listed in ``bad`` follows an
        accepted reading, so its ``d`` is right as it is."""
        n = d.size
        good, good_t = prev_raw, int(t_prev[0])  # the last reading accepted as energy (raw units, wrapped)
        done = -1
        for j in bad:
            if j <= done:
                continue
            if j - 1 > done:
                good, good_t = int(raw[j - 1]), int(t_ns[j - 1])  # readings since the last anomaly were accepted
            r = int(raw[j])
            step = r - good
            dt_s = max(int(t_ns[j]) - int(t_prev[j]), 1) * 1e-9
            if 0 <= step <= limit[j]:
                d[j] = step
            elif step < 0 and self.wrap_raw and 0 <= step + self.wrap_raw and \
                    (step + self.wrap_raw) * self.scale <= self.max_power_w * dt_s:
                d[j] = step + self.wrap_raw
                self.wraps += 1
            else:
                back = self._back_on_track(raw, t_ns, j, good, good_t)
                if back is not None:  # a spike or a dip: skip the readings off the track
                    self.glitches += 1
                    self.glitch_t_ns.append(int(t_ns[j]))
                    d[j:back] = 0
                    d[back] = int(raw[back]) - good
                    j = back
                elif step > 0:  # a jump that stays: resume from the new value
                    self.glitches += 1
                    self.glitch_t_ns.append(int(t_ns[j]))
                    d[j] = 0
                else:
                    self.resets += 1
                    self.reset_t_ns.append(int(t_ns[j]))
                    d[j] = 0
            good, good_t = int(raw[j]), int(t_ns[j])
            done = j
        if done < n - 1:
            good = int(raw[n - 1])
        return good

    def _back_on_track(self, raw: I64, t_ns: I64, j: int, good: int, good_t: int) -> int | None:
        """The first reading after ``j``, within ``GLITCH_LOOKAHEAD_S``, that continues plausibly from
        the last good reading (so readings ``j`` up to it were off the track), or None."""
        hi = min(raw.size, j + 1 + _GLITCH_LOOKAHEAD_N)
        if hi <= j + 1:
            return None
        t = t_ns[j + 1:hi]
        step = raw[j + 1:hi] - good
        lim = self.glitch_power_w * ((t - good_t).astype(np.float64) * 1e-9 + GLITCH_SLACK_S) / self.scale
        ok = np.flatnonzero((step >= 0) & (step <= lim) & (t - int(t_ns[j]) <= GLITCH_LOOKAHEAD_S * 1e9))
        return j + 1 + int(ok[0]) if ok.size else None


@dataclass
class PowerIntegrator:
    """Energy from a power gauge: each reading holds until the next (the sensor's own update
    is a step, so sample-and-hold integrates it exactly when sampled faster than it updates)."""

    scale: float  # W per raw unit
    _last_w: float | None = None
    _last_t_ns: int = 0
    _energy_j: float = 0.0

    def feed(self, t_ns: I64, raw: I64) -> EnergyChunk:
        if raw.size == 0:
            return EnergyChunk(t_ns, np.zeros(0))
        power_w = raw.astype(np.float64) * self.scale
        if self._last_w is None:
            self._last_w, self._last_t_ns = float(power_w[0]), int(t_ns[0])
        held = np.concatenate(([self._last_w], power_w[:-1]))
        dt_s = np.diff(t_ns, prepend=self._last_t_ns).astype(np.float64) * 1e-9
        energy = self._energy_j + np.cumsum(held * dt_s)
        self._energy_j = float(energy[-1])
        self._last_w, self._last_t_ns = float(power_w[-1]), int(t_ns[-1])
        return EnergyChunk(t_ns, energy)


@dataclass
class CpuEstimator:
    """Estimated energy from busy CPU time through a linear power model.

    The model is linear, so energy needs no per-interval utilisation: E(t) = idle_w * (t - t0) +
    (max_w - idle_w) / n_cpus * busy_s(t), whatever the sampling rate. /proc/stat moves in whole
    jiffies (10 ms) per CPU, so at 1 kHz most intervals see none and a few see a whole jiffy:
    clipping each interval's utilisation at 1 threw those away (the estimate collapsed toward idle
    as the rate rose). Only the run's cumulative busy time is capped, at n_cpus x wall time, which
    no accounting jitter can make a real machine exceed.
    """

    scale: float  # s of busy time per raw unit (1/USER_HZ)
    model: CpuPowerModel
    _inner: CounterUnwrapper = field(init=False)
    _t0_ns: int | None = None
    _busy0_s: float = 0.0

    def __post_init__(self) -> None:
        self._inner = CounterUnwrapper(scale=self.scale, wrap_raw=0)

    def feed(self, t_ns: I64, raw: I64) -> EnergyChunk:
        if raw.size == 0:
            return EnergyChunk(t_ns, np.zeros(0))
        busy_s = self._inner.feed(t_ns, raw).energy_j  # cumulative busy seconds since the first sample
        if self._t0_ns is None:
            self._t0_ns, self._busy0_s = int(t_ns[0]), float(busy_s[0])
        m = self.model
        wall_s = (t_ns - self._t0_ns).astype(np.float64) * 1e-9
        busy = np.minimum(busy_s - self._busy0_s, wall_s * max(m.n_cpus, 1))
        energy = m.idle_w * wall_s + (m.max_w - m.idle_w) / max(m.n_cpus, 1) * busy
        return EnergyChunk(t_ns, energy)


Converter = CounterUnwrapper | PowerIntegrator | CpuEstimator


# The most a domain can draw, with a wide margin: a counter step implying more is a glitch. A GPU
# board tops out near 1.2 kW (GB200), a CPU package near 500 W, a socket's DRAM near 200 W.
_DOMAIN_MAX_POWER_W = (("gpu-", 3000.0), ("cpu-package", 2000.0), ("cpu-core", 2000.0), ("uncore-", 2000.0),
                       ("dram-", 1000.0))


def domain_max_power_w(channel: Channel) -> float:
    """The power above which a counter step is a glitch, not energy (W)."""
    given = channel.metadata.get("max_power_w") if channel.metadata else None
    if isinstance(given, (int, float)) and given > 0:
        return float(given)
    for prefix, w in _DOMAIN_MAX_POWER_W:
        if channel.domain.startswith(prefix):
            return w
    return MAX_PLAUSIBLE_POWER_W


def converter_for(channel: Channel) -> Converter:
    if channel.quantity is Quantity.ENERGY:
        return CounterUnwrapper(scale=channel.scale, wrap_raw=channel.wrap_raw, glitch_power_w=domain_max_power_w(channel))
    if channel.quantity is Quantity.POWER:
        return PowerIntegrator(scale=channel.scale)
    if channel.model is None:
        raise ValueError(f"{channel.name}: a cpu_busy channel needs a power model")
    return CpuEstimator(scale=channel.scale, model=channel.model)


def power_series_w(chunk: EnergyChunk) -> F64:
    """Average power (W) over each interval between consecutive samples (NaN for the first)."""
    if chunk.t_ns.size < 2:
        return np.full(chunk.t_ns.size, np.nan)
    dt_s = np.diff(chunk.t_ns).astype(np.float64) * 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.diff(chunk.energy_j) / dt_s
    return np.concatenate(([np.nan], p))


def primary_channels(channels: list[Channel], cpu_total: str = "packages") -> list[Channel]:
    """The channels whose energies add up to the machine's total without double counting: one per
    physical domain, sub-zones and psys left out (see ``greentop.domains``, which also says which
    domains are shown beside the total)."""
    return plan_domains(channels, cpu_total).total


def update_period_s(t_ns: npt.NDArray[np.int64], raw: npt.NDArray[np.int64]) -> float | None:
    """Median interval between changes of the reading: how often the sensor refreshes."""
    changes = np.flatnonzero(np.diff(raw) != 0)
    return changes_period_s(t_ns[changes + 1])


def changes_period_s(change_t_ns: npt.NDArray[np.int64]) -> float | None:
    """``update_period_s`` from the times (ns) the reading was seen to change: the median interval
    between them (None: fewer than two). The live view keeps only these times, not the readings."""
    if change_t_ns.size < 2:
        return None
    return float(np.median(np.diff(change_t_ns))) * 1e-9
