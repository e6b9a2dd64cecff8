"""``greentop.devices()``: every power and energy channel of this machine, as objects.

What ``greentop devices`` prints: each channel with its source, domain, unit, lane, state, how
often its sensor updates, what one read costs, the power it read while watched, and whether the
machine total adds it (``domains.plan_domains`` with the default ``--cpu-total packages``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from greentop.channel import Channel, Problem
from greentop.domains import domain_kind, plan_domains
from greentop.measure import measure
from greentop.sampler import DEFAULT_RATE_HZ, DEFAULT_SLOW_RATE_HZ
from greentop.sources import DiscoveryOptions, discover


@dataclass(frozen=True)
class DeviceChannel:
    """One channel as ``greentop devices`` shows it."""

    name: str  # e.g. "rapl:package-0", "nvml:gpu0:power"
    source: str  # "rapl-sysfs", "rapl-msr", "hwmon", "nvml", "cpu-estimate"
    domain: str  # what it measures: "cpu-package-0", "dram-0", "gpu-0", "system-0", "cpu", ...
    quantity: str  # "energy" (counter), "power" (gauge), "cpu_busy" (behind the estimate)
    unit: str  # unit of the raw integer: "uJ", "mW", "mJ", "jiffies", ...
    lane: str  # "fast" (the run's rate) or "slow" (reads that cost milliseconds)
    estimated: bool
    state: str  # "ok", "estimated", or "read errors: N (why)"
    update_period_s: float | None  # median time between changes of the reading; None: no change seen
    read_cost_us: float | None  # mean time one read took
    power_w: float | None  # average power over the watch; None: no figure
    samples: int  # readings taken during the watch
    read_interval_s: float | None  # time between reads during the watch (its lane's period)
    note: str
    channel: Channel = field(repr=False)  # the full description (reader, scale, wrap, model)
    kind: str = "other"  # domains.domain_kind: "package", "dram", "gpu", "psys", "system", "other" (scope unknown), ...
    in_total: bool = False  # added into the machine total (--cpu-total packages); psys, whole-system
    # meters, meters of unknown scope, sub-zones and second readings of a domain are not


class Devices(list[DeviceChannel]):
    """The channels, plus what discovery could not use: ``problems`` (a sensor that exists but
    cannot be read, with the fix), ``notes``, ``hardware`` (what discovery describes: GPUs with
    model, UUID, driver, power limit) and ``gpus`` (the GPUs among them)."""

    def __init__(self, channels: list[DeviceChannel], problems: list[Problem], notes: list[str],
                 hardware: list[dict[str, Any]], watch_s: float) -> None:
        super().__init__(channels)
        self.problems, self.notes, self.hardware, self.watch_s = problems, notes, hardware, watch_s

    @property
    def gpus(self) -> list[dict[str, Any]]:
        return [d for d in self.hardware if "gpu" in d]


def devices(watch_s: float = 0.5, *, rate_hz: float = DEFAULT_RATE_HZ, slow_rate_hz: float = DEFAULT_SLOW_RATE_HZ,
            options: DiscoveryOptions | None = None) -> Devices:
    """Discover every channel and sample them for ``watch_s`` seconds (0: discovery only, no
    figures) to see their state, update period, read cost and power."""
    found = discover(options or DiscoveryOptions())
    result = measure(found.channels, watch_s, rate_hz, slow_rate_hz) if found.channels and watch_s > 0 else None
    summaries = {s.name: s for s in result.summaries()} if result else {}
    added = {c.name for c in plan_domains(found.channels).total}
    out = []
    for c in found.channels:
        s = summaries.get(c.name)
        h = result.health.channels[c.name] if result else None
        state = "estimated" if c.estimated else "ok"
        if h is not None and h.errors:
            state = f"read errors: {h.errors} ({h.last_error})"
        power = float(s.average_w) if s is not None and not math.isnan(s.average_w) else None
        out.append(DeviceChannel(
            name=c.name, source=c.source, domain=c.domain, quantity=c.quantity.value, unit=c.unit, lane=c.lane.value,
            estimated=c.estimated, state=state, update_period_s=float(s.update_period_s) if s and s.update_period_s is not None else None,
            read_cost_us=float(h.mean_cost_ns) / 1e3 if h is not None and h.reads else None, power_w=power,
            samples=int(s.samples) if s is not None else 0,
            read_interval_s=1 / s.rate_hz if s is not None and s.rate_hz else None, note=c.note, channel=c,
            kind=domain_kind(c.domain), in_total=c.name in added,
        ))
    return Devices(out, list(found.problems), list(found.notes), list(found.devices), watch_s)
