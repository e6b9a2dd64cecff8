"""A headless measurement: sample channels for a while and total each one's energy and power.

Used by ``greentop sample`` and ``greentop devices``; the live view and the recorder drain the
same sampler the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel
from greentop.energy import Converter, converter_for, peak_power_w, update_period_s
from greentop.sampler import Sampler, SamplerHealth, Samples

DRAIN_HZ = 20.0


@dataclass
class ChannelRecord:
    """Everything drained from one channel, concatenated, plus its running energy."""

    channel: Channel
    converter: Converter
    t_ns: list[npt.NDArray[np.int64]] = field(default_factory=list)
    raw: list[npt.NDArray[np.int64]] = field(default_factory=list)
    energy_j: list[npt.NDArray[np.float64]] = field(default_factory=list)

    def add(self, s: Samples) -> None:
        if s.t_ns.size == 0:
            return
        self.t_ns.append(s.t_ns)
        self.raw.append(s.raw)
        self.energy_j.append(self.converter.feed(s.t_ns, s.raw).energy_j)

    def arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        if not self.t_ns:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0)
        return np.concatenate(self.t_ns), np.concatenate(self.raw), np.concatenate(self.energy_j)


@dataclass(frozen=True)
class ChannelSummary:
    name: str
    domain: str
    estimated: bool
    samples: int
    rate_hz: float  # achieved
    duration_s: float
    energy_j: float
    average_w: float
    peak_w: float
    update_period_s: float | None  # median time between changes of the raw value
    wraps: int
    backwards: int


def summarise(rec: ChannelRecord) -> ChannelSummary:
    t, raw, energy = rec.arrays()
    duration_s = (t[-1] - t[0]) * 1e-9 if t.size > 1 else 0.0
    total = float(energy[-1] - energy[0]) if t.size > 1 else 0.0
    conv = rec.converter
    return ChannelSummary(
        name=rec.channel.name,
        domain=rec.channel.domain,
        estimated=rec.channel.estimated,
        samples=int(t.size),
        rate_hz=(t.size - 1) / duration_s if duration_s > 0 else 0.0,
        duration_s=duration_s,
        energy_j=total,
        average_w=total / duration_s if duration_s > 0 else float("nan"),
        peak_w=peak_power_w(t, energy),
        update_period_s=update_period_s(t, raw),
        wraps=getattr(conv, "wraps", 0),
        backwards=getattr(conv, "backwards", 0),
    )


@dataclass
class Measurement:
    records: dict[str, ChannelRecord]
    health: SamplerHealth

    def summaries(self) -> list[ChannelSummary]:
        return [summarise(r) for r in self.records.values()]


def measure(
    channels: Sequence[Channel],
    duration_s: float,
    rate_hz: float,
    slow_rate_hz: float,
    on_drain: Callable[[dict[str, ChannelRecord]], None] | None = None,
) -> Measurement:
    """Sample for ``duration_s`` seconds, draining at ``DRAIN_HZ`` into per-channel records."""
    records = {c.name: ChannelRecord(c, converter_for(c)) for c in channels}
    sampler = Sampler(channels, rate_hz=rate_hz, slow_rate_hz=slow_rate_hz)
    with sampler:
        end = time.monotonic() + duration_s
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(1.0 / DRAIN_HZ, left))
            for name, s in sampler.drain().items():
                records[name].add(s)
            if on_drain:
                on_drain(records)
    for name, s in sampler.drain().items():
        records[name].add(s)
    return Measurement(records, sampler.health())
