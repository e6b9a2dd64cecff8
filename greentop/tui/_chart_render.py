"""The chart's pure half: min/max decimation, braille and block rendering, axis ticks and labels.

numpy only (no Textual, no Rich), as Textual keeps its own ``_`` render modules: the widget in
``chart.py`` calls these and adds styles and caching. See ``chart.py`` for how the steps fit.
Time is in integer nanoseconds, power in watts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

# Bit of each dot in a braille cell (U+2800 + bits), indexed [row from the top][dot column].
# Unicode numbers the dots 1-2-3 down the left column, 4-5-6 down the right, then 7 and 8 below.
_BRAILLE_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint32)
_BRAILLE_BASE = 0x2800
# Index i = how many eighths of the cell are filled from its bottom (0 = blank).
_BLOCKS = " ▁▂▃▄▅▆▇█"
_BLOCK_CODES = np.array([ord(c) for c in _BLOCKS], dtype=np.uint32)
_SPACE = ord(" ")

# Mantissas tried by nice_ceil: fine enough that the top of the chart stays close to the peak
# (612 W -> 800 W, not 1000 W) while the axis labels stay round.
_NICE_MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
# Tick steps on the time axis, in seconds: 1-2-5 below a minute, clock-like above.
_TIME_STEPS_S = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Decimation


def column_edges_ns(t0_ns: int, t1_ns: int, columns: int) -> I64:
    """The ``columns + 1`` edges (ns) of equal time bins over ``[t0_ns, t1_ns)``.

    Integer arithmetic, exact and without overflow for any window that fits in int64: bin ``k``
    is ``[edges[k], edges[k + 1])``, ``edges[0] == t0_ns``, ``edges[-1] == t1_ns``.
    """
    if columns <= 0:
        raise ValueError(f"columns must be > 0, got {columns}")
    span_ns = int(t1_ns) - int(t0_ns)
    if span_ns <= 0:
        raise ValueError(f"empty time window: t0_ns={t0_ns} >= t1_ns={t1_ns}")
    q, r = divmod(span_ns, columns)
    if r == 0:  # a live chart's window is whole columns: one call instead of five
        return np.arange(int(t0_ns), int(t1_ns) + 1, q, dtype=np.int64)
    k = np.arange(columns + 1, dtype=np.int64)
    # k * span // columns, split so that k * span never has to fit in int64.
    return np.int64(t0_ns) + k * np.int64(q) + (k * np.int64(r)) // np.int64(columns)


def decimate_minmax(
    t_ns: ArrayLike,
    value: ArrayLike,
    t0_ns: int,
    t1_ns: int,
    columns: int,
    *,
    hold: bool = True,
    max_hold_ns: int | None = None,
) -> tuple[F64, F64]:
    """Per column (equal time bins over ``[t0_ns, t1_ns)``), the min and max of ``value``.

    Args:
        t_ns: sample times, ns, int64, **non-decreasing** (not checked: that would cost O(n)).
        value: one value per sample, any unit (W here); NaN samples are ignored. Or ``(n, k)``:
            ``k`` series sampled at the same times, decimated in one pass.
        t0_ns, t1_ns: the window, ns; samples outside it are not read except for ``hold``.
        columns: number of bins (one per dot column of the chart).
        hold: sample-and-hold semantics (power gauges hold a reading until the next one). The
            value in force at a column's start, the last sample before it, counts in that column
            too, so a column holds the true min/max of the step signal over its time: an empty
            column between two samples shows the held value rather than a hole, and a step
            between columns draws as a connected vertical line. Columns before the first sample
            or after the last one stay NaN: nothing is known there. ``hold=False``: only the
            samples inside each bin count, NaN where a bin has none.
        max_hold_ns: with ``hold``, carry a value across a gap between two samples only if the
            gap is at most this long (ns), so that a sampler stall shows as a gap. None: always.

    Returns:
        ``(mins, maxs)``, float64 arrays of length ``columns`` (``(columns, k)`` for ``k``
        series); NaN where nothing is known.

    Cost: two binary searches per column plus one ``np.fmin/fmax.reduceat`` pass over the
    samples inside the window, O(columns log n + m) for m samples in the window.
    """
    t = np.asarray(t_ns)
    v = np.asarray(value)
    if t.ndim != 1 or v.ndim not in (1, 2) or v.shape[:1] != t.shape:
        raise ValueError(f"t_ns must be 1-D and value 1-D or 2-D, of equal length, got {t.shape} and {v.shape}")
    edges = column_edges_ns(t0_ns, t1_ns, columns)
    # Few numpy calls: a live chart decimates a handful of new columns per channel every frame,
    # where each call's fixed cost outweighs the work on the data.
    out = np.full((2, columns) + v.shape[1:], np.nan)
    mins, maxs = out[0], out[1]
    n = t.size
    if n == 0:
        return mins, maxs
    # idx[k] = first sample at or after edge k; bin k holds samples idx[k] .. idx[k+1]-1.
    idx = t.searchsorted(edges, side="left")
    lo, hi = int(idx[0]), int(idx[-1])
    starts = idx[:-1]
    if hi > lo:
        nonempty = starts != idx[1:]
        # reduceat reduces [s_i, s_{i+1}) and the last start to the end of its input: slicing the
        # input to [lo, hi) makes the last one stop at the window's end. Empty bins are left out
        # of the starts (reduceat would return the element at a repeated start, not an empty
        # reduction). fmin/fmax rather than minimum/maximum: they skip NaN instead of spreading it.
        seg = np.asarray(v[lo:hi], dtype=np.float64)
        s = starts[nonempty] - lo
        mins[nonempty] = np.fmin.reduceat(seg, s)
        maxs[nonempty] = np.fmax.reduceat(seg, s)
    if hold:
        prev = starts - 1  # the sample in force at each column's start
        ok = (prev >= 0) & (starts < n)  # a sample before the column and one at/after its start
        if max_hold_ns is not None:
            nxt = np.minimum(starts, n - 1)
            ok &= (t[nxt] - t[np.maximum(prev, 0)]) <= max_hold_ns
        held = np.asarray(v.take(prev, axis=0), dtype=np.float64)  # prev -1 (not ok) reads the last: masked out
        if v.ndim == 2:
            ok = ok[:, None]
        np.fmin(mins, held, out=mins, where=ok)
        np.fmax(maxs, held, out=maxs, where=ok)
    return mins, maxs


# --------------------------------------------------------------------------------------------
# Rendering to strings


def _spans(mins: npt.ArrayLike, maxs: npt.ArrayLike, y_min: float, y_max: float) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
    """Checked low and high ends of each column's span (swapped pairs put right; a NaN end takes
    the other end's value) and which columns have data."""
    if not y_max > y_min:
        raise ValueError(f"y_max must exceed y_min, got y_min={y_min} y_max={y_max}")
    a = np.asarray(mins, dtype=np.float64)
    b = np.asarray(maxs, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"mins and maxs must be 1-D and equal length, got {a.shape} and {b.shape}")
    lo_v = np.fmin(a, b)
    hi_v = np.fmax(a, b)
    return lo_v, hi_v, ~np.isnan(hi_v)


def rows_to_str(codes: npt.NDArray[np.uint32]) -> list[str]:
    """Rows of code points (a 2-D uint32 array) -> one str per row, without a Python loop."""
    rows, width = codes.shape
    if width == 0:
        return [""] * rows
    # A UCS-4 string of length w is w uint32 code points: a view, not a per-character join.
    return np.ascontiguousarray(codes, dtype="<u4").view(f"<U{width}").ravel().tolist()


def render_braille(
    mins: ArrayLike, maxs: ArrayLike, height_rows: int, y_min: float, y_max: float
) -> list[str]:
    """Braille strip chart: per element of ``mins``/``maxs``, a dot column lit from min to max.

    Each braille cell is 2 dot columns x 4 dot rows, so the result is ``height_rows`` strings of
    ``ceil(len(mins) / 2)`` characters, top row first. The value range ``[y_min, y_max]`` (same
    unit as the data, W) maps onto the ``4 * height_rows`` dot rows; values outside it are drawn
    on the edge row. Columns with NaN (no data) draw nothing, and cells with no dot are plain
    spaces (U+0020), not the blank braille pattern, so text copied from the terminal stays clean.
    """
    return rows_to_str(braille_codes(mins, maxs, height_rows, y_min, y_max))


def braille_codes(mins: ArrayLike, maxs: ArrayLike, height_rows: int, y_min: float, y_max: ArrayLike) -> npt.NDArray[np.uint32]:
    """``render_braille``'s cells as code points, ``(height_rows, ceil(len(mins) / 2))``: what a
    scrolling chart keeps so that it can shift its cells instead of drawing them again.

    ``mins``/``maxs`` may also be ``(k, columns)``, ``k`` charts drawn in one pass, each up to its
    own ``y_max`` (a length-``k`` array): the result is then ``(k, height_rows, cells)``.

    A value v lights dot level ``floor((v - y_min) / (y_max - y_min) * 4 * height_rows)``, clipped
    to the chart (values off the scale pin to the edge rather than vanish). Few numpy calls: a
    live chart draws a few new cells per channel every frame, where each call's fixed cost
    outweighs the work on the data."""
    if height_rows <= 0:
        raise ValueError(f"height_rows must be > 0, got {height_rows}")
    top = np.asarray(y_max, dtype=np.float64) if np.ndim(y_max) else float(y_max)  # type: ignore[arg-type]
    if not (np.all(top > y_min) if np.ndim(top) else top > y_min):
        raise ValueError(f"y_max must exceed y_min, got y_min={y_min} y_max={y_max}")
    a = np.asarray(mins, dtype=np.float64)
    b = np.asarray(maxs, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2) or np.shape(top) != a.shape[:-1]:
        raise ValueError(f"mins and maxs must be 1-D (or 2-D, one y_max per row) and equal length, "
                         f"got {a.shape}, {b.shape} and y_max {top.shape}")
    dots = 4 * height_rows
    lead = a.shape[:-1]
    cols = a.shape[-1]
    width = (cols + 1) // 2
    if width == 0:
        return np.zeros(lead + (height_rows, 0), dtype=np.uint32)
    # [0]: the lower end of each column's span, [1]: the upper (a NaN end takes the other's
    # value), as dot levels (0 = the bottom dot row), clipped to the chart.
    span = np.empty((2,) + lead + (2 * width,))
    np.fmin(a, b, out=span[0, ..., :cols])
    np.fmax(a, b, out=span[1, ..., :cols])
    if cols % 2:
        span[..., cols] = np.nan  # the last cell's right dot column: no data
    empty = span[1] != span[1]  # NaN: no data in the column
    if y_min:
        span -= y_min
    span *= (dots / (top - y_min))[..., None] if lead else dots / (top - y_min)
    np.fmax(span, 0, out=span)  # NaN -> 0, so that the cast below is defined (masked out next)
    np.minimum(span, dots - 1, out=span)
    level = span.astype(np.int64)  # floor: the values are >= 0
    level[0][empty] = dots  # lowest level lit above the top: nothing lit
    # Per cell row (top first) and dot column, which of the cell's 4 levels (0 = its bottom) are
    # lit: levels lo..hi, a table index (lo clipped to 0..4) * 5 + (hi + 1 clipped to 0..4).
    rel = level[..., None, :] - _cell_bases(height_rows)  # (2, [k,] rows, dot columns)
    rel[1] += 1
    np.maximum(rel, 0, out=rel)
    np.minimum(rel, 4, out=rel)
    idx = rel[0] * 5 + rel[1]
    # Both dot columns of a cell at once: one code point per (left, right) pair of indices.
    return _BRAILLE_CELL.take(idx[..., 0::2] * 25 + idx[..., 1::2])


def _braille_cell_table() -> npt.NDArray[np.uint32]:
    """``[left * 25 + right]`` -> the cell's code point, where ``left`` and ``right`` index the levels
    lit in each dot column as ``lo * 5 + hi + 1`` (``lo`` 0..4, ``hi`` -1..3 within the cell,
    level 0 its bottom dot row, none lit when ``lo > hi``); a cell with no dot is a space."""
    column_bits = np.zeros((2, 25), dtype=np.uint32)
    for s in range(2):
        for lo in range(5):
            for hi in range(-1, 4):
                column_bits[s, lo * 5 + hi + 1] = sum(int(_BRAILLE_BITS[3 - k, s]) for k in range(lo, hi + 1))
    bits = (column_bits[0][:, None] | column_bits[1][None, :]).ravel()
    return np.where(bits == 0, _SPACE, _BRAILLE_BASE + bits).astype(np.uint32)


_BRAILLE_CELL = _braille_cell_table()
_CELL_BASES: dict[int, npt.NDArray[np.int64]] = {}


def _cell_bases(height_rows: int) -> npt.NDArray[np.int64]:
    """The level of each cell row's bottom dot row, top row first, as a column ``(rows, 1)``."""
    base = _CELL_BASES.get(height_rows)
    if base is None:
        base = _CELL_BASES[height_rows] = (4 * np.arange(height_rows - 1, -1, -1, dtype=np.int64))[:, None]
    return base


def render_blocks(
    mins: ArrayLike,
    maxs: ArrayLike,
    height_rows: int,
    y_min: float,
    y_max: float,
    *,
    fill: bool = False,
) -> list[str]:
    """Block-character strip chart (``▁▂▃▄▅▆▇█``) for terminals or fonts without braille.

    One character per element of ``mins``/``maxs``; ``height_rows`` strings, top row first.
    The top of each column's span is drawn to the nearest eighth of a cell above the max (at
    least ``▁``, so a value at ``y_min`` still shows). Block characters only fill a cell from its
    bottom, so the span's lower end is rounded down to a whole cell: the span always covers
    min..max, at one-cell resolution at the bottom. ``fill=True`` fills down to ``y_min`` (an
    area chart). NaN columns are blank.
    """
    if height_rows <= 0:
        raise ValueError(f"height_rows must be > 0, got {height_rows}")
    eighths = 8 * height_rows
    lo_v, hi_v, valid = _spans(mins, maxs, y_min, y_max)
    scale = eighths / (y_max - y_min)
    with np.errstate(invalid="ignore"):
        top_f = np.clip(np.ceil((hi_v - y_min) * scale), 1, eighths)
        bot_f = np.clip(np.floor((lo_v - y_min) * scale), 0, eighths - 1)
    top_e = np.where(valid, top_f, 1).astype(np.int64)  # eighths filled up to the max
    top_cell = (top_e - 1) // 8
    part = top_e - 8 * top_cell  # 1..8 eighths in the top cell
    if fill:
        bot_cell = np.zeros_like(top_cell)
    else:
        bot_cell = np.minimum(np.where(valid, bot_f, 0).astype(np.int64) // 8, top_cell)
    row = np.arange(height_rows - 1, -1, -1, dtype=np.int64)[:, None]  # cell rows, top first
    codes = np.where(
        row == top_cell,
        _BLOCK_CODES[part],
        np.where((row >= bot_cell) & (row < top_cell), _BLOCK_CODES[8], _SPACE),
    )
    codes = np.where(valid, codes, _SPACE).astype(np.uint32)
    return rows_to_str(codes)


# --------------------------------------------------------------------------------------------
# Axes


def nice_ceil(x: float) -> float:
    """Smallest "round" number >= x (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k); 1.0 if x <= 0."""
    if not math.isfinite(x) or x <= 0:
        return 1.0
    e = math.floor(math.log10(x))
    for m in _NICE_MANTISSAS:
        cand = m * 10.0**e
        if cand >= x * (1 - 1e-12):
            return cand
    return 10.0 ** (e + 1)


def _nice_step(x: float) -> float:
    """Smallest 1-2-5 x 10^k step >= x (x > 0)."""
    e = math.floor(math.log10(x))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**e >= x * (1 - 1e-12):
            return m * 10.0**e
    return 10.0 ** (e + 1)


def format_watts(power_w: float) -> str:
    """Short axis label for a power in W: ``"0 W"``, ``"612 W"``, ``"2.5 W"``, ``"1.2 kW"``."""
    if abs(power_w) >= 1000:
        return f"{power_w / 1000:.3g} kW"
    return f"{power_w:.3g} W"


def format_seconds(t_s: float, step_s: float) -> str:
    """Time-axis label for ``t_s`` seconds on an axis ticked every ``step_s`` seconds."""
    if step_s >= 3600 and step_s % 3600 == 0:
        return f"{t_s / 3600:.0f}h"
    if step_s >= 60 and step_s % 60 == 0:
        return f"{t_s / 60:.0f}m"
    if step_s < 1:
        return f"{t_s * 1000:.0f}ms"  # steps of 1 ms and up: whole ms
    return f"{t_s:.0f}s"


def y_tick_rows(y_max_w: float, y_min_w: float, plot_rows: int) -> dict[int, str]:
    """Row (top = 0) -> W label: the top and bottom always, round values between, >= 2 rows apart."""
    labels = {0: format_watts(y_max_w)}
    if plot_rows == 1:
        return labels
    labels[plot_rows - 1] = format_watts(y_min_w)
    span = y_max_w - y_min_w
    step = _nice_step(span / max(1, plot_rows // 2))
    k = math.floor(y_min_w / step) + 1
    while (v := k * step) < y_max_w:
        band = min(int((v - y_min_w) / span * plot_rows), plot_rows - 1)  # from the bottom
        r = plot_rows - 1 - band
        if all(abs(r - other) >= 2 for other in labels):
            labels[r] = format_watts(v)
        k += 1
    return labels


def x_tick_labels(t0_s: float, t1_s: float, width: int) -> list[tuple[int, str]]:
    """(start cell, label) for time ticks over ``[t0_s, t1_s]`` drawn across ``width`` cells."""
    if width <= 0 or t1_s <= t0_s:
        return []
    cell_s = (t1_s - t0_s) / width
    want_s = 14 * cell_s  # labels ("-120s") with gaps wide enough to read them apart
    step = next((s for s in _TIME_STEPS_S if s >= want_s), None)
    if step is None:
        step = _TIME_STEPS_S[-1] * math.ceil(want_s / _TIME_STEPS_S[-1])
    out: list[tuple[int, str]] = []
    end = -1  # first free cell
    k = math.ceil(t0_s / step - 1e-9)
    while (tick := k * step) <= t1_s + 1e-9 * step:
        label = format_seconds(tick, step)
        pos = min(int(round((tick - t0_s) / cell_s)), width - 1)
        start = min(pos, width - len(label))  # the last label ends at the right edge
        if start >= end and start >= 0:
            out.append((start, label))
            end = start + len(label) + 1
        k += 1
    return out


LABEL_W = 7  # "12.5 kW" is the widest W label


@dataclass
class ScrollState:
    """What a scrolling chart drew last: its grid, window end, scale, newest sample, and cells."""

    col_ns: int
    columns: int
    rows: int
    t1_ns: int
    y_top: float
    last_t: int | None
    mins: F64
    maxs: F64
    codes: npt.NDArray[np.uint32]
