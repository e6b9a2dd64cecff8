"""Peak power: the highest ``energy.PEAK_WINDOW_S`` average inside each row, for every channel and
the machine total, from one set of window edges shared by all channels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from greentop.channel_series import Series
from greentop.energy import PEAK_WINDOW_S

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class PeakGrid:
    """The PEAK_WINDOW_S windows of every row, as the edges to interpolate energy at.

    Windows tile each interval from its start; one more window ends at the interval's end when the
    tiling leaves a tail. Neighbouring windows share an edge, so a row of n windows costs n + 1
    lookups per channel."""

    edges: F64
    inner: npt.NDArray[np.bool_]  # edge pairs (i, i + 1) that bound a window
    order: I64  # windows, sorted by span
    first: I64  # in that order, the first window of each span that has any
    spans_with: I64  # those spans


def peak_grid(iv_span: I64, iv_a: F64, iv_b: F64, row_spans: I64, nsp: int) -> PeakGrid:
    w = PEAK_WINDOW_S
    is_row = np.zeros(nsp, dtype=bool)
    is_row[row_spans] = True
    sel = is_row[iv_span]
    sp, a, b = iv_span[sel], iv_a[sel], iv_b[sel]
    length = b - a
    eps = 1e-9
    n_full = np.where(length >= w - eps, np.floor((length + eps) / w), 0).astype(np.int64)
    tail = (n_full > 0) & (length - n_full * w > eps)
    # Edge groups: k * w from each tiled interval's start (n_full + 1 edges), then (b - w, b) per tail.
    n_edges = np.where(n_full > 0, n_full + 1, 0)
    offs = np.repeat(np.cumsum(n_edges) - n_edges, n_edges)
    k = np.arange(int(n_edges.sum())) - offs
    edges = np.concatenate((np.repeat(a, n_edges) + k * w, np.column_stack((b[tail] - w, b[tail])).ravel()))
    group = np.concatenate((np.repeat(np.arange(sp.size), n_edges), np.repeat(np.arange(sp.size, sp.size + int(tail.sum())), 2)))
    group_span = np.concatenate((sp, sp[tail]))
    none = np.zeros(0, dtype=np.int64)
    if edges.size < 2:
        return PeakGrid(edges, np.zeros(0, dtype=bool), none, none, none)
    inner = group[1:] == group[:-1]  # consecutive edges of one group bound a window
    w_span = group_span[group[1:][inner]]
    order = np.argsort(w_span, kind="stable")
    w_span = w_span[order]
    first = np.flatnonzero(np.concatenate(([True], w_span[1:] != w_span[:-1])))
    return PeakGrid(edges, inner, order, first, w_span[first])


def peaks(series: list[Series], grid: PeakGrid, nsp: int) -> tuple[F64, F64]:
    """Highest PEAK_WINDOW_S-average power per span (rows only), per channel and for the total."""
    w = PEAK_WINDOW_S
    peak = np.full((len(series), nsp), np.nan)
    peak_total = np.full(nsp, np.nan)
    if grid.edges.size < 2:
        return peak, peak_total
    total = np.zeros(grid.order.size)
    for c, sr in enumerate(series):
        p = (np.diff(sr.at(grid.edges))[grid.inner] / w)[grid.order]
        if sr.info.in_total:
            total += p
        peak[c, grid.spans_with] = np.maximum.reduceat(p, grid.first)
    peak_total[grid.spans_with] = np.maximum.reduceat(total, grid.first)
    return peak, peak_total
