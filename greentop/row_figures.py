"""Every figure of every summary row, as (row x domain) matrices, turned into ``DomainSummary``
objects one row at a time.

Vectorised so a run with tens of thousands of phases costs one object per row and domain and
nothing else per row in Python. The inputs are per (channel x span) (``SpanFigures``); a row
reads its inclusive span and its exclusive span (``attribution`` explains both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from greentop.channel_series import Series
from greentop.formatters import J_PER_KWH, J_PER_WH
from greentop.summary_types import (
    FLAG_ESTIMATED,
    FLAG_INCLUDES_ESTIMATE,
    FLAG_NO_DATA,
    FLAG_OUTSIDE,
    FLAG_OVERLAP,
    FLAG_SHORT,
    TOTAL,
    DomainSummary,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


@dataclass
class SpanFigures:
    """Per channel (first axis) and span (second axis), what the rows are made from."""

    energy_j: F64
    uncertainty_j: F64
    peak_w: F64  # NaN where a span is shorter than one peak window
    peak_total_w: F64  # per span: the machine total's peak
    duration_s: F64  # per span
    short: Mask  # shorter than the channel's update period
    outside: Mask  # partly outside the channel's samples
    anomalies: list[dict[str, Mask]]  # per channel: flag text -> spans it applies to
    baseline_w: F64 | None  # per channel: idle power (None: no baseline window)
    baseline_uncertainty_w: F64 | None


@dataclass
class RowSpans:
    """Which spans each row reads, and what else the rows carry."""

    inclusive: I64  # per row: the span of all its time
    exclusive: I64  # per row: the span of its time under no direct child
    counts: list[dict[str, float]]  # per row: work counted inside it
    overlap: list[bool]  # per row: its direct children overlap


class RowFigures:
    """All figures of all rows; ``domains(r)`` builds row ``r``'s ``DomainSummary`` list."""

    def __init__(self, series: list[Series], spans: SpanFigures, rows: RowSpans, carbon_g_per_kwh: float) -> None:
        c = len(series)
        inc, exc = rows.inclusive, rows.exclusive
        nrow = inc.size
        dur, xdur = spans.duration_s[inc], spans.duration_s[exc]
        energy, unc = spans.energy_j, spans.uncertainty_j
        e = np.zeros((nrow, c + 1))  # inclusive energy, J; the last column is the machine total
        u, x, xu, pk = (np.zeros((nrow, c + 1)) for _ in range(4))  # its uncertainty, exclusive J and ±, peak W
        e[:, :c], u[:, :c] = energy[:, inc].T, unc[:, inc].T
        x[:, :c] = np.maximum(np.minimum(energy[:, exc].T, e[:, :c]), 0.0)  # clamp: see attribution's docstring
        xu[:, :c] = unc[:, exc].T
        pk[:, :c], pk[:, c] = spans.peak_w[:, inc].T, spans.peak_total_w[inc]
        add = np.array([s.info.in_total for s in series], dtype=bool)
        for m in (e, u, x, xu):
            m[:, c] = m[:, :c][:, add].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            avg = np.where(dur[:, None] > 0, e / dur[:, None], np.nan)
        pk = np.where(np.isnan(pk), avg, pk)  # shorter than one peak window: its average is its peak
        self.names = [s.info.domain for s in series] + [TOTAL]
        est = [s.info.estimated for s in series]
        self.estimated = est + [any(e and s.info.in_total for e, s in zip(est, series))]
        self.duration_s, self.exclusive_duration_s = dur.tolist(), xdur.tolist()
        self.energy_j, self.uncertainty_j = e.tolist(), u.tolist()
        self.exclusive_j, self.exclusive_uncertainty_j = x.tolist(), xu.tolist()
        self.energy_wh, self.average_w, self.peak_w = (e / J_PER_WH).tolist(), avg.tolist(), pk.tolist()
        self.gco2e_g = (e / J_PER_KWH * carbon_g_per_kwh).tolist()
        bw, bw_unc = spans.baseline_w, spans.baseline_uncertainty_w
        self.has_baseline = bw is not None and bw_unc is not None
        above: F64 | None = None
        self.baseline_w: list[float] = []
        self.above_j: list[list[float]] = []
        self.above_uncertainty_j: list[list[float]] = []
        if bw is not None and bw_unc is not None:
            bwd = np.append(bw, bw[add].sum())
            bwud = np.append(bw_unc, bw_unc[add].sum())
            above = e - bwd[None, :] * dur[:, None]
            self.baseline_w, self.above_j = bwd.tolist(), above.tolist()
            self.above_uncertainty_j = (u + bwud[None, :] * dur[:, None]).tolist()
        # Work counts: one column per count name; J per unit where the row counted any.
        self.count_names = sorted({n for cnt in rows.counts for n in cnt})
        cm = np.array([[cnt.get(n, 0.0) for n in self.count_names] for cnt in rows.counts]).reshape(nrow, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.per_unit_j: list[list[list[float]]] = (e[:, :, None] / cm[:, None, :]).tolist()
            self.per_unit_above_j: list[list[list[float]]] | None = (
                (above[:, :, None] / cm[:, None, :]).tolist() if above is not None else None)
        self.counted = [[k for k, v in enumerate(row) if v > 0] for row in cm.tolist()]
        self.flags = self._flags(series, spans, rows)

    def _flags(self, series: list[Series], spans: SpanFigures, rows: RowSpans) -> list[list[str]]:
        c = len(series)
        inc = rows.inclusive
        sh, out = spans.short[:, inc].T.tolist(), spans.outside[:, inc].T.tolist()
        # Only anomalies that happened are looked at per row: a clean run pays nothing here.
        odd = [[(name, hit[inc].tolist()) for name, hit in a.items() if hit.any()] for a in spans.anomalies]
        no_data = [not s.has_data for s in series]
        any_est = self.estimated[c]
        result: list[list[str]] = []
        for r in range(inc.size):
            base = [FLAG_OVERLAP] if rows.overlap[r] else []
            row: list[str] = []
            tot: list[str] = list(base)
            for k in range(c):
                f = list(base)
                checks = [(no_data[k], FLAG_NO_DATA), (sh[r][k], FLAG_SHORT), (out[r][k], FLAG_OUTSIDE)]
                checks += [(hit[r], name) for name, hit in odd[k]]
                for on, name in checks:
                    if on:
                        f.append(name)
                        if series[k].info.in_total and name not in tot:
                            tot.append(name)
                if self.estimated[k]:
                    f.append(FLAG_ESTIMATED)
                row.append("; ".join(f))
            if any_est:
                tot.append(FLAG_INCLUDES_ESTIMATE)
            row.append("; ".join(tot))
            result.append(row)
        return result

    def domains(self, r: int) -> list[DomainSummary]:
        out: list[DomainSummary] = []
        e, wh, avg, pk, g = self.energy_j[r], self.energy_wh[r], self.average_w[r], self.peak_w[r], self.gco2e_g[r]
        u, x, xu = self.uncertainty_j[r], self.exclusive_j[r], self.exclusive_uncertainty_j[r]
        counted, names, flags, pu = self.counted[r], self.count_names, self.flags[r], self.per_unit_j[r]
        for d, name in enumerate(self.names):
            per_unit = {names[k]: pu[d][k] for k in counted}
            bw: float | None
            above: float | None
            above_u: float | None
            if self.has_baseline:
                pua = self.per_unit_above_j
                per_above = {names[k]: pua[r][d][k] for k in counted} if pua is not None else {}
                bw, above, above_u = self.baseline_w[d], self.above_j[r][d], self.above_uncertainty_j[r][d]
            else:
                per_above, bw, above, above_u = {}, None, None, None
            out.append(DomainSummary(
                domain=name, estimated=self.estimated[d], energy_j=e[d], energy_wh=wh[d], energy_uncertainty_j=u[d],
                average_w=avg[d], peak_w=pk[d], exclusive_energy_j=x[d], exclusive_energy_uncertainty_j=xu[d],
                baseline_w=bw, above_baseline_j=above, above_baseline_uncertainty_j=above_u, gco2e_g=g[d],
                per_unit_j=per_unit, per_unit_above_baseline_j=per_above, flag=flags[d]))
        return out
