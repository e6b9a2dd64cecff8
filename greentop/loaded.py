"""A recorded run with its summaries: what ``greentop.load`` and ``Monitor.trace_data`` return.

``tracedata.TraceData`` is the plain data every layer shares; this subclass sits above the energy
ledger (``attribution``) and the summary formats, so the data module imports neither.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from greentop.attribution import RunSummary, summarise
from greentop.summary_format import format_summary
from greentop.tracedata import ChannelData, Count, Mark, Phase, TraceData

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ChannelData", "Count", "Mark", "Phase", "Trace", "TraceData"]


class Trace(TraceData):
    """A :class:`~greentop.tracedata.TraceData` that can account for itself."""

    def summary(self, carbon_g_per_kwh: float | None = None, carbon_source: str = "") -> RunSummary:
        """Per-phase energy (see ``greentop.attribution``), with the trace's own carbon intensity by default."""
        if carbon_g_per_kwh is None:
            carbon_g_per_kwh = float(self.meta.get("carbon_g_per_kwh", 0.0))
            carbon_source = str(self.meta.get("carbon_source", ""))
        return summarise(self, carbon_g_per_kwh, carbon_source)

    def summary_frame(self, carbon_g_per_kwh: float | None = None) -> "pd.DataFrame":
        """The summary as one row per phase and domain (the columns of ``greentop summary --format csv``: phase, domain, energy_j, ...)."""
        import pandas as pd  # pandas is an optional extra: imported only when a frame is asked for

        return pd.read_csv(io.StringIO(format_summary(self.summary(carbon_g_per_kwh), "csv")))
