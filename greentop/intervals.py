"""Interval algebra on ns timestamps: merge, complement, coverage, and sets of intervals ("spans")
whose energy a summary adds up. numpy only."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def sorted_unique(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # np.unique without numpy 2's hash path for integers (~40x slower here); the input is a few
    # sorted runs end to end, which the stable sort (timsort) merges in about linear time.
    x = np.sort(x, kind="stable")
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if x.size else x


def union(starts: I64, ends: I64) -> tuple[I64, I64, bool]:
    """Merge intervals (ns); also say whether any two overlapped (touching is not overlapping)."""
    if starts.size == 0:
        return starts, ends, False
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    overlap = bool(np.any(s[1:] < reach[:-1]))
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > reach[:-1]
    first = np.flatnonzero(new)
    return s[first], np.maximum.reduceat(e, first), overlap


def complement(lo: int, hi: int, us: I64, ue: I64) -> list[tuple[int, int]]:
    """Parts of [lo, hi] not covered by the merged intervals (us, ue)."""
    out: list[tuple[int, int]] = []
    cur = lo
    for a, b in zip(us.tolist(), ue.tolist()):
        a, b = max(a, lo), min(b, hi)
        if b <= a:
            continue
        if a > cur:
            out.append((cur, a))
        cur = max(cur, b)
    if hi > cur:
        out.append((cur, hi))
    return out


def covered_s(blind_s: F64, a: F64, b: F64) -> F64:
    """Length (s) of each interval [a, b] covered by the disjoint sorted intervals ``blind_s``."""
    if blind_s.size == 0:
        return np.zeros(a.shape)
    edges = blind_s.ravel()
    cum = np.concatenate(([0.0], np.cumsum(blind_s[:, 1] - blind_s[:, 0])))
    level = np.repeat(cum, 2)[1:-1]  # covered length up to each edge
    cover = lambda x: np.interp(x, edges, level, left=0.0, right=cum[-1])  # noqa: E731
    return np.maximum(cover(b) - cover(a), 0.0)


def events_in(t_ns: list[int], origin_ns: int, lead_s: float, a: F64, b: F64) -> npt.NDArray[np.bool_]:
    """Whether each interval [a, b] (s since ``origin_ns``) overlaps one of the sample intervals
    ``(t - lead_s, t]`` ending at the times ``t_ns`` (the interval a reset or glitch lost)."""
    if not t_ns:
        return np.zeros(a.shape, dtype=bool)
    ev = np.sort((np.asarray(t_ns, dtype=np.int64) - origin_ns) * 1e-9)
    return np.searchsorted(ev, b + lead_s, "left") > np.searchsorted(ev, a, "right")


class Spans:
    """Sets of intervals (ns), each set a "span" whose energy is the sum over its intervals."""

    def __init__(self) -> None:
        self.span: list[int] = []
        self.start: list[int] = []
        self.end: list[int] = []
        self.n = 0

    def add(self, intervals: list[tuple[int, int]]) -> int:
        sid = self.n
        self.n += 1
        for a, b in intervals:
            if b > a:
                self.span.append(sid)
                self.start.append(a)
                self.end.append(b)
        return sid
