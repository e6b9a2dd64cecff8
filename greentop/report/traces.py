"""What the report takes from a point's files beyond the results table: where the carbon
intensity came from (``carbon_source``), which the table does not record.

Read cheaply: the point's ``<id>.summary.json`` (written by the sweep next to the trace) where it
exists, else only the trace's HDF5 metadata attributes, never its samples.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_POINTS_READ = 200  # the source agrees across a sweep; reading thousands would only cost time


@dataclass(frozen=True)
class PointFiles:
    summary: Path  # points/<id>.summary.json (may not exist)
    trace: Path | None  # points/<id>.h5 as the table names it (may not exist)


def _from_summary(path: Path) -> tuple[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    return str(doc.get("carbon_source") or ""), doc.get("carbon_g_per_kwh")


def _from_trace(path: Path) -> tuple[str, Any] | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            meta = f["meta"].attrs if "meta" in f else {}
            source, intensity = meta.get("carbon_source", ""), meta.get("carbon_g_per_kwh")
    except (OSError, KeyError):
        return None
    return (source.decode() if isinstance(source, bytes) else str(source)), intensity


def carbon_sources(points: list[PointFiles]) -> tuple[Counter[str], int, int]:
    """Carbon sources named by the points (with how many name each), how many points had a
    summary or trace to read, and how many of those could not be read."""
    found: Counter[str] = Counter()
    read = unreadable = 0
    for p in points:
        if read >= MAX_POINTS_READ:
            break
        if p.summary.is_file():
            got = _from_summary(p.summary)
        elif p.trace is not None and p.trace.is_file():
            got = _from_trace(p.trace)
        else:
            continue
        read += 1
        if got is None:
            unreadable += 1
            continue
        source, intensity = got
        if source:
            try:
                found[f"{source} ({float(intensity):g} gCO2e/kWh)"] += 1
            except (TypeError, ValueError):
                found[source] += 1
    return found, read, unreadable
