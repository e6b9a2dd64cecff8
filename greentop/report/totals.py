"""Energy and carbon totals over every usable run, with the carbon intensity the runs used."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

SOURCE_COLUMNS = ("carbon_source", "carbon_intensity_source", "hw.carbon_source")


@dataclass
class Totals:
    runs: int
    energy_j: float
    energy_above_idle_j: float | None
    duration_s: float | None
    gco2e: float | None
    runs_with_carbon: int
    intensities_g_per_kwh: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    by_workload: dict[str, tuple[int, float, float | None]] = field(default_factory=dict)  # runs, energy_j, gco2e
    estimated_workloads: set[str] = field(default_factory=set)  # whose energy includes an estimated share


def estimated_rows(frame: pd.DataFrame) -> pd.Series:
    """Rows whose energy includes an estimated share (the table's ``estimated`` column)."""
    if "estimated" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["estimated"].astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))


def estimated_workloads(frame: pd.DataFrame) -> set[str]:
    if "workload" not in frame.columns:
        return set()
    est = estimated_rows(frame)
    return {str(w) for w in frame.loc[est, "workload"].dropna().unique()}


def _sum(frame: pd.DataFrame, col: str) -> float | None:
    if col not in frame.columns or not frame[col].notna().any():
        return None
    return float(pd.to_numeric(frame[col], errors="coerce").sum())


def totals(frame: pd.DataFrame, trace_sources: dict[str, int] | None = None, traces_read: int = 0) -> Totals:
    carbon = pd.to_numeric(frame["gco2e"], errors="coerce") if "gco2e" in frame.columns else pd.Series(dtype=float)
    intensities: list[float] = []
    if "carbon_g_per_kwh" in frame.columns:
        intensities = sorted({float(v) for v in pd.to_numeric(frame["carbon_g_per_kwh"], errors="coerce").dropna()})
    sources = sorted({str(v) for c in SOURCE_COLUMNS if c in frame.columns for v in frame[c].dropna()})
    sources += [f"{s}, named by {n} of {traces_read} points read" for s, n in sorted((trace_sources or {}).items())]
    by: dict[str, tuple[int, float, float | None]] = {}
    if "workload" in frame.columns:
        for w, g in frame.groupby("workload"):
            by[str(w)] = (len(g), _sum(g, "energy_j") or 0.0, _sum(g, "gco2e"))
    return Totals(
        runs=len(frame), energy_j=_sum(frame, "energy_j") or 0.0, energy_above_idle_j=_sum(frame, "energy_above_idle_j"),
        duration_s=_sum(frame, "duration_s"), gco2e=_sum(frame, "gco2e"), runs_with_carbon=int(carbon.notna().sum()),
        intensities_g_per_kwh=intensities, sources=sources, by_workload=by,
        estimated_workloads=estimated_workloads(frame),
    )
