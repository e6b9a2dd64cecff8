"""A headless measurement: sample channels for a while and total each one's energy and power.

Used by ``greentop sample`` and ``greentop devices``; the live view and the recorder drain the
same sampler the same way. Energy and power come from the one ledger (``greentop.ledger``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from greentop.attribution import RunSummary
from greentop.channel import Channel
from greentop.domains import CPU_TOTAL_PACKAGES, DomainPlan, plan_domains
from greentop.energy import Converter, converter_for, update_period_s
from greentop.ledger import account
from greentop.sampler import Sampler, SamplerHealth, Samples
from greentop.tracedata import ChannelData

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
    duration_s: float  # between the channel's first and last sample
    energy_j: float  # over the measurement (the ledger's run row)
    average_w: float  # energy_j over the measurement's duration
    peak_w: float  # highest PEAK_WINDOW_S average (the ledger's definition)
    update_period_s: float | None  # median time between changes of the raw value
    wraps: int
    backwards: int  # counter resets (steps backwards no wrap explains)
    glitches: int = 0  # counter readings off the track, skipped
    in_total: bool = False  # added into the machine total


@dataclass
class Measurement:
    records: dict[str, ChannelRecord]
    health: SamplerHealth

    def account(self, cpu_total: str = CPU_TOTAL_PACKAGES) -> RunSummary:
        """Every channel through the one ledger: one column per channel (sub-zones and second
        readings included), the machine total over ``plan_domains(..., cpu_total).total``."""
        data = [ChannelData(r.channel, *r.arrays()[:2]) for r in self.records.values()]
        data = [cd for cd in data if cd.t_ns.size]
        base = plan_domains([cd.channel for cd in data], cpu_total)
        total = {c.name for c in base.total}
        plan = DomainPlan([cd.channel for cd in data], [cd.channel.name in total for cd in data], cpu_total,
                          base.alternatives)
        start = min((int(cd.t_ns[0]) for cd in data), default=0)
        end = max((int(cd.t_ns[-1]) for cd in data), default=0)
        return account(data, start, end, plan=plan)

    def summaries(self, run: RunSummary | None = None) -> list[ChannelSummary]:
        """Per channel: its samples, and its energy and power as the ledger (``account``) gives them."""
        run = run if run is not None else self.account()
        by_channel = {info.channel: (info, d) for info, d in zip(run.domains, run.row("run").domains)}
        out: list[ChannelSummary] = []
        for name, rec in self.records.items():
            t, raw, _energy = rec.arrays()
            duration_s = (t[-1] - t[0]) * 1e-9 if t.size > 1 else 0.0
            info, d = by_channel.get(name, (None, None))
            out.append(ChannelSummary(
                name=name, domain=rec.channel.domain, estimated=rec.channel.estimated, samples=int(t.size),
                rate_hz=(t.size - 1) / duration_s if duration_s > 0 else 0.0, duration_s=duration_s,
                energy_j=d.energy_j if d else 0.0, average_w=d.average_w if d else float("nan"),
                peak_w=d.peak_w if d else float("nan"), update_period_s=update_period_s(t, raw),
                wraps=info.wraps if info else 0, backwards=info.resets if info else 0,
                glitches=info.glitches if info else 0, in_total=info.in_total if info else False,
            ))
        return out


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
