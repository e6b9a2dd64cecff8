"""A Monitor's data as a trace file: the same writer and layout as ``greentop record``.

No replay overview is stored: ``greentop replay`` builds it on first open, as for any trace
without one."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Protocol, Sequence

from greentop.events import Event
from greentop.recorder import RecordOptions, check_output, run_metadata
from greentop.sampler import SamplerHealth
from greentop.sources import SourceResult
from greentop.trace import TraceWriter
from greentop.tracedata import TraceData


class MonitorSettings(Protocol):
    """What the metadata reads of a ``greentop.Monitor`` (which passes itself in)."""

    @property
    def found(self) -> SourceResult: ...
    @property
    def rate_hz(self) -> float: ...
    @property
    def slow_rate_hz(self) -> float: ...
    @property
    def carbon_g_per_kwh(self) -> float: ...
    @property
    def carbon_source(self) -> str: ...
    @property
    def start_wall_ns(self) -> int: ...
    @property
    def start_ns(self) -> int: ...


RECORDED_BY = "greentop.Monitor"


def monitor_metadata(mon: MonitorSettings) -> dict[str, Any]:
    """The run metadata ``greentop record`` stores (host, CPU, GPUs, rates, carbon, problems), for a
    Monitor: the "command" is this process's ``sys.argv``; ``baseline_s`` is 0 (no idle baseline)."""
    opts = RecordOptions(output=Path("."), rate_hz=mon.rate_hz, slow_rate_hz=mon.slow_rate_hz, baseline_s=0.0,
                         carbon_g_per_kwh=mon.carbon_g_per_kwh, carbon_source=mon.carbon_source)
    meta = run_metadata(mon.found, list(sys.argv), opts)
    meta.update(start_wall_ns=mon.start_wall_ns, start_mono_ns=mon.start_ns, recorded_by=RECORDED_BY)
    return meta


def write_trace(path: Path, data: TraceData, events: Sequence[Event], health: SamplerHealth | None) -> Path:
    """Write ``data`` (``Monitor.trace_data()``) and its event log to ``path``, complete and
    finalised. An unwritable path is a ``RecordError`` with one line."""
    check_output(path)
    channels = [cd.channel for cd in data.channels]
    # The sampler's threads, as the health rows list them (what the recorder stores too).
    lanes = list(health.lanes) if health is not None else sorted({c.lane.value for c in channels}, key=lambda n: n != "fast")
    meta = {k: v for k, v in data.meta.items() if k != "run"}
    writer = TraceWriter(path, channels, meta, lanes)
    try:
        for cd in data.channels:
            writer.append_samples(cd.channel.name, cd.t_ns, cd.raw)
        writer.append_events(list(events))
        if health is not None:
            chans = [health.channels[c.name] for c in channels]
            lane_h = [health.lanes[lane] for lane in lanes]
            writer.append_health(time.monotonic_ns(), [c.overruns for c in chans], [c.errors for c in chans],
                                 [c.reads for c in chans], [h.ticks for h in lane_h], [h.missed for h in lane_h],
                                 [h.late for h in lane_h], 0)
    except BaseException:
        writer.abort()
        raise
    writer.finalize(dict(data.meta.get("run", {})), data.phases, data.marks, data.counts)
    return path

