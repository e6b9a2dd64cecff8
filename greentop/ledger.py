"""One ledger: energy, average and peak power, baseline and uncertainty, computed in one place.

``account`` takes plain in-memory arrays (channels with their samples, phases, an idle-baseline
window) and gives per-row and per-domain figures (a :class:`~greentop.attribution.RunSummary`).
No file is involved. ``greentop sample`` (a few seconds of live samples) and the live view total
through it; a trace's summary and the Monitor call ``attribution.summarise``, the arithmetic it
wraps (see that module's docstring for the model), directly. ``domains.plan_domains`` says what
adds up.

- Energy of an interval: the cumulative energy of each channel (its ``energy.converter_for``
  converter) interpolated at the interval's ends.
- Average power: that energy over the interval's duration.
- Peak power: the highest average over ``energy.PEAK_WINDOW_S`` windows tiling the interval from
  its start, plus one window ending at its end.
- Baseline: each domain's power over the idle window; "above baseline" = energy - baseline x time.
- Uncertainty: a worst-case bound from sensor update periods, sampling gaps and resolution.

The live view, which keeps no raw samples, hands the ledger its 10 ms grid of cumulative energy per
channel (``cumulative_channel``): the same arithmetic on a coarser input.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from greentop.attribution import RunSummary, summarise
from greentop.channel import Channel, Quantity, Reader, ReaderKind
from greentop.domains import CPU_TOTAL_PACKAGES, DomainPlan
from greentop.tracedata import ChannelData, Count, Phase, TraceData

# Cumulative energy handed over as an integer counter in this unit: exact to a nanojoule.
_CUMULATIVE_SCALE_J = 1e-9

__all__ = ["account", "cumulative_channel"]


def account(channels: Sequence[ChannelData], run_start_ns: int, run_end_ns: int, *,
            phases: Sequence[Phase] = (), counts: Sequence[Count] = (), baseline: tuple[int, int] | None = None,
            cpu_total: str = CPU_TOTAL_PACKAGES, plan: DomainPlan | None = None, carbon_g_per_kwh: float = 0.0,
            carbon_source: str = "", meta: dict[str, Any] | None = None,
            health: dict[str, Any] | None = None) -> RunSummary:
    """Per-row (run, baseline, phases, untagged), per-domain figures of samples held in memory.

    ``plan`` overrides which channels are shown and which add up (default: one per physical domain,
    ``domains.plan_domains(..., cpu_total)``)."""
    trace = TraceData(meta=dict(meta or {}), channels=list(channels), phases=list(phases), marks=[],
                      counts=list(counts), run_start_ns=int(run_start_ns), run_end_ns=int(run_end_ns),
                      baseline=baseline, health=dict(health or {}))
    return summarise(trace, carbon_g_per_kwh, carbon_source or "given to the ledger", cpu_total=cpu_total, plan=plan)


def cumulative_channel(channel: Channel, t_ns: npt.NDArray[np.int64], energy_j: npt.NDArray[np.float64]) -> ChannelData:
    """A channel whose readings are already cumulative energy (J at ``t_ns``), as the ledger takes
    it: an integer counter in nJ that never wraps, keeping the channel's name, domain and source."""
    c = Channel(name=channel.name, source=channel.source, domain=channel.domain, quantity=Quantity.ENERGY, unit="nJ",
                scale=_CUMULATIVE_SCALE_J, reader=Reader(ReaderKind.FILE_DECIMAL), wrap_raw=0,
                estimated=channel.estimated, parent=channel.parent, note=channel.note)
    raw = np.round(np.asarray(energy_j, dtype=np.float64) / _CUMULATIVE_SCALE_J).astype(np.int64)
    return ChannelData(c, np.asarray(t_ns, dtype=np.int64), raw)
