"""Raw readings -> energy (J) and power (W).

Each channel kind has a converter fed with drained ``(t_ns, raw)`` chunks in order; it keeps the
state that spans chunks and returns the cumulative energy since its first sample, in joules, at
every sample's time. Counters are unwrapped across any number of wraps; a counter that steps
backwards by more than a wrap could explain is counted as a glitch and held, never integrated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel, CpuPowerModel, Quantity

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# A wrap is believed only if the energy it implies fits under this power; otherwise the
# step backwards is a glitch. 20 kW per channel is far above any CPU package or GPU.
MAX_PLAUSIBLE_POWER_W = 20_000.0
PEAK_WINDOW_S = 0.1  # peak power is the highest average over a window this long


@dataclass
class EnergyChunk:
    t_ns: I64
    energy_j: F64  # cumulative since the converter's first sample


@dataclass
class CounterUnwrapper:
    """Monotonic energy from a wrapping energy counter (RAPL, hwmon energy, NVML mJ)."""

    scale: float  # J per raw unit
    wrap_raw: int  # counter wraps to 0 here; 0 = never wraps
    max_power_w: float = MAX_PLAUSIBLE_POWER_W
    wraps: int = 0
    backwards: int = 0
    _last_raw: int | None = None
    _last_t_ns: int = 0
    _energy_raw: int = 0  # unwrapped raw units since the first sample

    def feed(self, t_ns: I64, raw: I64) -> EnergyChunk:
        if raw.size == 0:
            return EnergyChunk(t_ns, np.zeros(0))
        if self._last_raw is None:
            prev_raw, prev_t = int(raw[0]), int(t_ns[0])
        else:
            prev_raw, prev_t = self._last_raw, self._last_t_ns
        d = np.diff(raw, prepend=prev_raw)
        neg = np.flatnonzero(d < 0)
        done = -1
        for i in neg:
            if i <= done:
                continue
            j = int(i)
            while j < d.size and d[j] < 0:
                self._resolve_step(d, j, t_ns, prev_t)
                done = j
                j += 1
        # The last accepted raw value: a trailing glitch leaves it where it was.
        cum = self._energy_raw + np.cumsum(d)
        self._energy_raw = int(cum[-1])
        self._last_raw = prev_raw + int(np.sum(d)) if self.wrap_raw == 0 else (prev_raw + int(np.sum(d))) % self.wrap_raw
        self._last_t_ns = int(t_ns[-1])
        return EnergyChunk(t_ns, cum.astype(np.float64) * self.scale)

    def _resolve_step(self, d: I64, j: int, t_ns: I64, prev_t: int) -> None:
        t_prev = int(t_ns[j - 1]) if j > 0 else prev_t
        dt_s = max(int(t_ns[j]) - t_prev, 1) * 1e-9
        if self.wrap_raw:
            wrapped = int(d[j]) + self.wrap_raw
            if 0 <= wrapped and wrapped * self.scale <= self.max_power_w * dt_s:
                d[j] = wrapped
                self.wraps += 1
                return
        # Not a wrap: hold the last good value and measure the next step from it.
        self.backwards += 1
        if j + 1 < d.size:
            d[j + 1] += d[j]
        d[j] = 0


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
    """Estimated energy from busy CPU time through a linear power model."""

    scale: float  # s of busy time per raw unit (1/USER_HZ)
    model: CpuPowerModel
    _inner: CounterUnwrapper = field(init=False)
    _last_busy_s: float | None = None
    _last_t_ns: int = 0
    _energy_j: float = 0.0

    def __post_init__(self) -> None:
        self._inner = CounterUnwrapper(scale=self.scale, wrap_raw=0)

    def feed(self, t_ns: I64, raw: I64) -> EnergyChunk:
        if raw.size == 0:
            return EnergyChunk(t_ns, np.zeros(0))
        busy_s = self._inner.feed(t_ns, raw).energy_j  # cumulative busy seconds
        if self._last_busy_s is None:
            self._last_busy_s, self._last_t_ns = float(busy_s[0]), int(t_ns[0])
        dt_s = np.diff(t_ns, prepend=self._last_t_ns).astype(np.float64) * 1e-9
        dbusy_s = np.diff(busy_s, prepend=self._last_busy_s)
        with np.errstate(divide="ignore", invalid="ignore"):
            util = np.where(dt_s > 0, dbusy_s / (dt_s * self.model.n_cpus), 0.0)
        util = np.clip(util, 0.0, 1.0)
        power_w = self.model.idle_w + util * (self.model.max_w - self.model.idle_w)
        energy = self._energy_j + np.cumsum(power_w * dt_s)
        self._energy_j = float(energy[-1])
        self._last_busy_s, self._last_t_ns = float(busy_s[-1]), int(t_ns[-1])
        return EnergyChunk(t_ns, energy)


Converter = CounterUnwrapper | PowerIntegrator | CpuEstimator


def converter_for(channel: Channel) -> Converter:
    if channel.quantity is Quantity.ENERGY:
        return CounterUnwrapper(scale=channel.scale, wrap_raw=channel.wrap_raw)
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
    from greentop.domains import plan_domains

    return plan_domains(channels, cpu_total).total


def update_period_s(t_ns: npt.NDArray[np.int64], raw: npt.NDArray[np.int64]) -> float | None:
    """Median interval between changes of the reading: how often the sensor refreshes."""
    changes = np.flatnonzero(np.diff(raw) != 0)
    if changes.size < 2:
        return None
    return float(np.median(np.diff(t_ns[changes + 1]))) * 1e-9


def peak_power_w(t_ns: npt.NDArray[np.int64], energy_j: npt.NDArray[np.float64], window_s: float = PEAK_WINDOW_S) -> float:
    if t_ns.size < 2:
        return float("nan")
    span_s = (t_ns[-1] - t_ns[0]) * 1e-9
    if span_s < window_s:
        return float((energy_j[-1] - energy_j[0]) / span_s) if span_s > 0 else float("nan")
    grid = np.arange(t_ns[0], t_ns[-1] + 1, int(window_s * 1e9), dtype=np.int64)
    e = np.interp(grid.astype(np.float64), t_ns.astype(np.float64), energy_j)
    return float(np.max(np.diff(e)) / window_s)
