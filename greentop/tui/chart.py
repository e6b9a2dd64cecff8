"""Strip charts of power over time: min/max decimation, braille and block rendering, a widget.

A chart is drawn in three steps, each cheap enough to run at 20 fps for 8 channels:

1. ``decimate_minmax`` bins the samples of a time window into one bin per dot column and keeps,
   per bin, the lowest and highest power. Spikes survive: a single 1 ms sample among 3.6 M still
   sets its column's maximum.
2. ``render_braille`` (or the fallback ``render_blocks``) draws, per column, a vertical span from
   that minimum to that maximum, as plain strings.
3. ``PowerChart``, a Textual widget, adds a title, a W axis and a time axis, and caches the
   finished lines as ``Strip`` objects; ``set_data`` redraws at once and repaints only the rows
   of this widget that changed (no plot figure is rebuilt, no other widget repaints).

Braille mapping: each element of the ``mins``/``maxs`` arrays is one *dot column*; a braille cell
holds 2 dot columns and 4 dot rows, so a chart ``w`` cells wide wants ``2 * w`` columns from
``decimate_minmax``. The block fallback draws one array element per cell.

Time is in integer nanoseconds (``t_ns``, ``CLOCK_MONOTONIC`` like the sampler), power in watts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import numpy.typing as npt
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

__all__ = [
    "PowerChart",
    "column_edges_ns",
    "decimate_minmax",
    "format_seconds",
    "format_watts",
    "nice_ceil",
    "render_blocks",
    "render_braille",
]

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
        value: one value per sample, any unit (W here); NaN samples are ignored.
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
        ``(mins, maxs)``, float64 arrays of length ``columns``; NaN where nothing is known.

    Cost: two binary searches per column plus one ``np.fmin/fmax.reduceat`` pass over the
    samples inside the window, O(columns log n + m) for m samples in the window.
    """
    t = np.asarray(t_ns)
    v = np.asarray(value)
    if t.ndim != 1 or t.shape != v.shape:
        raise ValueError(f"t_ns and value must be 1-D and equal length, got {t.shape} and {v.shape}")
    edges = column_edges_ns(t0_ns, t1_ns, columns)
    mins = np.full(columns, np.nan)
    maxs = np.full(columns, np.nan)
    n = t.size
    if n == 0:
        return mins, maxs
    # idx[k] = first sample at or after edge k; bin k holds samples idx[k] .. idx[k+1]-1.
    idx = np.searchsorted(t, edges, side="left")
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
        if ok.any():
            held = np.asarray(v[prev[ok]], dtype=np.float64)
            mins[ok] = np.fmin(mins[ok], held)
            maxs[ok] = np.fmax(maxs[ok], held)
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


def _span_levels(
    mins: ArrayLike, maxs: ArrayLike, levels: int, y_min: float, y_max: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Per column, the lowest and highest of ``levels`` equal value bands touched, and validity.

    A value v falls in band ``floor((v - y_min) / (y_max - y_min) * levels)``, clipped to
    ``[0, levels - 1]``: values off the scale pin to the edge rather than vanish. Swapped or
    half-NaN pairs are tolerated (the NaN side takes the other side's value).
    """
    lo_v, hi_v, valid = _spans(mins, maxs, y_min, y_max)
    scale = levels / (y_max - y_min)
    with np.errstate(invalid="ignore"):
        lo_f = np.clip((lo_v - y_min) * scale, 0, levels - 1)
        hi_f = np.clip((hi_v - y_min) * scale, 0, levels - 1)
    lo = np.where(valid, np.floor(lo_f), 0).astype(np.int64)
    hi = np.where(valid, np.floor(hi_f), 0).astype(np.int64)
    return lo, hi, valid


def _rows_to_str(codes: npt.NDArray[np.uint32]) -> list[str]:
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
    return _rows_to_str(braille_codes(mins, maxs, height_rows, y_min, y_max))


def braille_codes(mins: ArrayLike, maxs: ArrayLike, height_rows: int, y_min: float, y_max: float) -> npt.NDArray[np.uint32]:
    """``render_braille``'s cells as code points, ``(height_rows, ceil(len(mins) / 2))``: what a
    scrolling chart keeps so that it can shift its cells instead of drawing them again."""
    if height_rows <= 0:
        raise ValueError(f"height_rows must be > 0, got {height_rows}")
    dots = 4 * height_rows
    lo, hi, valid = _span_levels(mins, maxs, dots, y_min, y_max)
    cols = lo.size
    width = (cols + 1) // 2
    if width == 0:
        return np.zeros((height_rows, 0), dtype=np.uint32)
    level = np.arange(dots - 1, -1, -1, dtype=np.int64)[:, None]  # dot rows, top first
    grid = (level >= lo) & (level <= hi) & valid  # (dots, cols): lit dots
    if cols % 2:
        grid = np.concatenate([grid, np.zeros((dots, 1), dtype=bool)], axis=1)
    # (cell row, row in cell, cell column, dot column) -> sum of lit dots' bits per cell.
    cells = grid.reshape(height_rows, 4, width, 2)
    bits = np.einsum("rjcs,js->rc", cells.astype(np.uint32), _BRAILLE_BITS)
    return np.where(bits == 0, _SPACE, _BRAILLE_BASE + bits).astype(np.uint32)


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
    return _rows_to_str(codes)


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


def _y_tick_rows(y_max_w: float, y_min_w: float, plot_rows: int) -> dict[int, str]:
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


def _x_tick_labels(t0_s: float, t1_s: float, width: int) -> list[tuple[int, str]]:
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


# --------------------------------------------------------------------------------------------
# Widget

_LABEL_W = 7  # "12.5 kW" is the widest W label
_Part = tuple[str, Style]


class PowerChart(Widget):
    """A live strip chart of one power channel: title, W axis, braille plot, time axis.

    Layout, top to bottom: the title (one row), the plot (all rows left), the time axis (one row);
    the plot has a 7-cell W label column and a 1-cell axis line on its left. ``set_data``
    decimates for the current size at once and repaints only the rows of this widget that
    changed (before the widget has a size, the first paint does it). The bins are
    snapped to multiples of the column width in absolute time (``view_ns``), so a sliding live
    window scrolls by whole columns instead of regrouping samples every frame. The finished rows
    are cached as Strips and ``render_line`` returns them: measured about 3x cheaper per frame
    than returning a rich ``Text`` from ``render()`` (``benchmarks/bench_chart.py``).

    Styles (Textual CSS component classes): ``powerchart--title``, ``powerchart--estimated``
    (title of an estimated channel, which also gets ``" (estimated)"`` appended and a dimmed
    plot), ``powerchart--plot``, ``powerchart--axis``.
    """

    DEFAULT_CSS = """
    PowerChart {
        height: 10;
        min-height: 3;
    }
    PowerChart > .powerchart--title {
        text-style: bold;
    }
    PowerChart > .powerchart--estimated {
        text-style: italic dim;
    }
    PowerChart > .powerchart--plot {
        color: $success;
    }
    PowerChart > .powerchart--axis {
        text-style: dim;
    }
    """
    COMPONENT_CLASSES = {
        "powerchart--title",
        "powerchart--estimated",
        "powerchart--plot",
        "powerchart--axis",
    }

    def __init__(
        self,
        title: str = "",
        *,
        estimated: bool = False,
        y_max_w: float | None = None,
        braille: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._title = title
        self._estimated = estimated
        self._y_max_w = y_max_w
        self._braille = braille
        self._t_ns: I64 = np.zeros(0, dtype=np.int64)
        self._power_w: F64 = np.zeros(0, dtype=np.float64)
        self._t0_ns = 0
        self._t1_ns = 1
        self._origin_ns: int | None = None
        self._parts: list[list[_Part]] | None = None  # cached rows of (text, style)
        self._strips: list[Strip] | None = None
        self._style_cache: tuple[Style, Style, Style] | None = None
        self._built_size = Size(0, 0)
        self._y_range_w = (0.0, 1.0)
        self._view_ns = (0, 1)  # the snapped window last drawn, ns
        # Live data only ever grows at its end: a window that slid by whole braille cells keeps
        # the cells that were complete and draws only the newest (``_shifted_lines``). Off for
        # data that may change anywhere (replay's bins).
        self.append_only = False
        self._scroll: _ScrollState | None = None

    # -- mouse: a chart says where in time the pointer is; the view decides what that means ----

    class Zoom(Message):
        """The wheel turned over the plot: ``factor`` < 1 zooms in, centred on ``t_ns``."""

        def __init__(self, chart: PowerChart, t_ns: int, factor: float) -> None:
            super().__init__()
            self.chart, self.t_ns, self.factor = chart, t_ns, factor

    class Clicked(Message):
        """A click on the plot at time ``t_ns``."""

        def __init__(self, chart: PowerChart, t_ns: int) -> None:
            super().__init__()
            self.chart, self.t_ns = chart, t_ns

    mouse_zoom = False  # the replay view turns the wheel into zoom; elsewhere it scrolls the pane

    def time_at(self, x: int) -> int | None:
        """The time (ns) under column ``x`` of this widget, or None left of the plot."""
        plot_w = self.size.width - _LABEL_W - 1
        col = x - _LABEL_W - 1
        if plot_w <= 0 or col < 0:
            return None
        v0, v1 = self._view_ns
        return v0 + int((v1 - v0) * (min(col, plot_w - 1) + 0.5) / plot_w)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._wheel(event, 0.5)

    def _on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._wheel(event, 2.0)

    def _wheel(self, event: events.MouseEvent, factor: float) -> None:
        t = self.time_at(event.x) if self.mouse_zoom else None
        if t is not None:
            event.stop()
            event.prevent_default()
            self.post_message(self.Zoom(self, t, factor))

    def on_click(self, event: events.Click) -> None:
        t = self.time_at(event.x)
        if t is not None:
            self.post_message(self.Clicked(self, t))

    # -- properties: each change redraws and repaints the rows of this widget that changed ----

    @property
    def title(self) -> str:
        """The title row, e.g. ``"gpu-0  612 W now · 598 W avg · 690 W peak"``."""
        return self._title

    @title.setter
    def title(self, value: str) -> None:
        if value != self._title:
            self._title = value
            self._invalidate_title()

    @property
    def estimated(self) -> bool:
        """True for a channel whose power is modelled, not measured: marked in the title."""
        return self._estimated

    @estimated.setter
    def estimated(self, value: bool) -> None:
        if value != self._estimated:
            self._estimated = value
            self._style_cache = None
            self._invalidate()

    @property
    def y_max_w(self) -> float | None:
        """Fixed top of the W axis, or None for auto (0 to a round number above the peak)."""
        return self._y_max_w

    @y_max_w.setter
    def y_max_w(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"y_max_w must be > 0 or None, got {value}")
        self._y_max_w = value
        self._invalidate()

    @property
    def braille(self) -> bool:
        """Draw with braille (2 x 4 dots per cell); False: block characters, 1 x 8 per cell."""
        return self._braille

    @braille.setter
    def braille(self, value: bool) -> None:
        self._braille = value
        self._invalidate()

    @property
    def view_ns(self) -> tuple[int, int]:
        """The window last drawn, ns: ``set_data``'s, moved by < 1 column onto column boundaries."""
        return self._view_ns

    @property
    def y_range_w(self) -> tuple[float, float]:
        """The W range of the plot as last drawn (bottom, top)."""
        return self._y_range_w

    def set_data(
        self,
        t_ns: I64,
        power_w: F64,
        t0_ns: int,
        t1_ns: int,
        *,
        origin_ns: int | None = None,
    ) -> None:
        """Show ``power_w`` (W) at times ``t_ns`` (ns, non-decreasing) over ``[t0_ns, t1_ns)``.

        Decimates and redraws at once when the widget is on screen. The arrays are kept by
        reference, not copied, to redraw after a resize: pass arrays that are not overwritten
        before the next ``set_data`` (a ring buffer's unwrapped window, a trace's slice).
        Samples outside the window may be included (the one before ``t0_ns`` is used,
        sample-and-hold). Time labels are relative to ``origin_ns`` (default ``t1_ns``:
        "-60s ... 0s" when live; pass the trace start in replay).
        """
        if t1_ns <= t0_ns:
            raise ValueError(f"empty time window: t0_ns={t0_ns} >= t1_ns={t1_ns}")
        self._t_ns = t_ns
        self._power_w = power_w
        self._t0_ns = int(t0_ns)
        self._t1_ns = int(t1_ns)
        self._origin_ns = None if origin_ns is None else int(origin_ns)
        self._invalidate()

    def set_minmax(
        self,
        t_ns: I64,
        min_w: ArrayLike,
        max_w: ArrayLike,
        t0_ns: int,
        t1_ns: int,
        *,
        bin_ns: int | None = None,
        origin_ns: int | None = None,
    ) -> None:
        """Show precomputed bins: bin ``i`` starts at ``t_ns[i]`` (ns, rising) and spans
        ``min_w[i]`` .. ``max_w[i]`` (W), over the window ``[t0_ns, t1_ns)``.

        For data already reduced (``greentop.overview.Overview.window``), so that a long trace is
        drawn without its samples. Each bin becomes two samples at its start (its min, then its
        max) fed to ``set_data``: a column gets the full span of every bin that starts in it, and
        a column inside one wide bin (zoomed in) shows that bin's max, held. ``bin_ns``: width of
        the bins (ns), so that the last bin is drawn to its end rather than cut at its start.
        ``origin_ns``: time-axis origin, as in ``set_data`` (pass the run start in replay).
        """
        t = np.asarray(t_ns, dtype=np.int64)
        lo = np.asarray(min_w, dtype=np.float64)
        hi = np.asarray(max_w, dtype=np.float64)
        if t.ndim != 1 or t.shape != lo.shape or t.shape != hi.shape:
            raise ValueError(f"t_ns, min_w, max_w must be 1-D and equal length, got {t.shape}, {lo.shape}, {hi.shape}")
        t2 = np.repeat(t, 2)
        v2 = np.empty(2 * t.size, dtype=np.float64)
        v2[0::2] = lo
        v2[1::2] = hi
        if bin_ns is not None and t.size:
            t2 = np.append(t2, t[-1] + int(bin_ns) - 1)  # the last bin, held to its end
            v2 = np.append(v2, hi[-1])
        self.set_data(t2, v2, t0_ns, t1_ns, origin_ns=origin_ns)

    def _invalidate(self) -> None:
        """Redraw now and repaint only the rows that changed.

        Rebuilding here rather than at paint time lets a row that did not change keep its Strip
        object, and Textual does not repaint it: the axes, and (bins being snapped to whole
        columns) the plot rows that the newest samples did not touch.
        """
        size = self.size
        if not self.is_mounted or size.width <= 0 or size.height <= 0:
            self._strips = None  # built at the first paint, once the size is known
            self.refresh()
            return
        old = self._strips if size == self._built_size else None
        strips = self._build_strips(size, old)
        if old is None:
            self.refresh()
            return
        changed = [y for y, (a, b) in enumerate(zip(old, strips)) if a is not b]
        if changed:
            self.refresh(Region(0, changed[0], size.width, changed[-1] - changed[0] + 1))

    # -- building the lines -------------------------------------------------------------------

    def build_parts(self, width: int, height: int) -> list[list[_Part]]:
        """The chart as ``height`` rows of (text, style) runs, each row ``width`` cells.

        Decimates the data for this size; shared by ``render_line`` (Strips) and ``render``
        (a rich ``Text``).
        """
        title_style, axis_style, plot_style = self._styles()
        rows: list[list[_Part]] = []
        if height <= 0 or width <= 0:
            return rows
        has_frame = height >= 3  # title and time axis only when there is room for a plot too
        plot_rows = height - 2 if has_frame else height
        plot_w = max(0, width - _LABEL_W - 1)

        if has_frame:
            rows.append(self._title_row(width, title_style))

        lines = self._plot_lines(plot_w, plot_rows)
        y_bottom, y_top = self._y_range_w
        ticks = _y_tick_rows(y_top, y_bottom, plot_rows)
        for r, line in enumerate(lines):
            label = ticks.get(r, "")
            axis = "┤" if r in ticks else "│"
            row: list[_Part] = [((label.rjust(_LABEL_W) + axis)[:width], axis_style)]
            if plot_w:
                row.append((line, plot_style))
            rows.append(row)

        if has_frame:
            cells = [" "] * plot_w
            origin = self._t1_ns if self._origin_ns is None else self._origin_ns
            t0_s = (self._view_ns[0] - origin) / 1e9
            t1_s = (self._view_ns[1] - origin) / 1e9
            for start, label in _x_tick_labels(t0_s, t1_s, plot_w):
                cells[start : start + len(label)] = label
            text = (" " * _LABEL_W + "└" + "".join(cells))[:width]
            rows.append([(text.ljust(width), axis_style)])
        return rows

    def _title_row(self, width: int, style: Style) -> list[_Part]:
        title = self._title + ("  (estimated)" if self._estimated else "")
        return [(title[:width].ljust(width), style)]

    def _invalidate_title(self) -> None:
        """Redraw the title row alone: a live view sets a new title every frame, with new data,
        and the title does not depend on the data."""
        size = self.size
        parts, strips = self._parts, self._strips
        if not self.is_mounted or parts is None or strips is None or size != self._built_size:
            self._invalidate()
            return
        if size.height < 3:  # no title row at this height
            return
        row = self._title_row(size.width, self._styles()[0])
        if row != parts[0]:
            parts[0] = row
            strips[0] = Strip([Segment(text, style) for text, style in row], size.width)
            self.refresh(Region(0, 0, size.width, 1))

    def _styles(self) -> tuple[Style, Style, Style]:
        """(title, axis, plot) rich styles, cached: looking them up costs more than drawing."""
        if self._style_cache is None:
            base = self.rich_style
            title = base + self.get_component_rich_style("powerchart--title", partial=True)
            axis = base + self.get_component_rich_style("powerchart--axis", partial=True)
            plot = base + self.get_component_rich_style("powerchart--plot", partial=True)
            if self._estimated:
                title += self.get_component_rich_style("powerchart--estimated", partial=True)
                plot += Style(dim=True)
            self._style_cache = (title, axis, plot)
        return self._style_cache

    def notify_style_update(self) -> None:
        # Textual calls this when CSS (a theme, a class, a pseudo-class) changes the styles.
        super().notify_style_update()
        self._style_cache = None
        self._strips = None  # rebuilt whole at the next paint

    def _plot_lines(self, plot_w: int, plot_rows: int) -> list[str]:
        """Decimate for ``plot_w`` cells and draw ``plot_rows`` rows; sets ``_y_range_w``."""
        if plot_w == 0:
            self._view_ns = (self._t0_ns, self._t1_ns)
            return [""] * plot_rows
        columns = 2 * plot_w if self._braille else plot_w
        # Snap the bins to whole multiples of the column width in absolute time. A live window
        # slides a few ms per frame; bins that slid with it would regroup the samples every
        # frame and make the min/max spans shimmer. Snapped, a column keeps its samples and the
        # chart scrolls by whole columns. The window drawn is `columns` whole columns ending at
        # the first boundary at or after t1_ns, so each end moves by less than one column.
        col_ns = -(-(self._t1_ns - self._t0_ns) // columns)  # ceil
        # Scrolling by shifting cells needs the window to move by whole cells (2 dot columns).
        snap_ns = 2 * col_ns if self._braille and self.append_only else col_ns
        t1_ns = -(-self._t1_ns // snap_ns) * snap_ns
        t0_ns = t1_ns - columns * col_ns
        self._view_ns = (t0_ns, t1_ns)
        if self._braille and self.append_only:
            return self._shifted_lines(t0_ns, t1_ns, col_ns, columns, plot_w, plot_rows)
        self._scroll = None
        mins, maxs = decimate_minmax(self._t_ns, self._power_w, t0_ns, t1_ns, columns)
        if self._y_max_w is not None:
            y_top = float(self._y_max_w)
        else:
            finite = maxs[np.isfinite(maxs)]
            y_top = nice_ceil(float(finite.max())) if finite.size else 1.0
        self._y_range_w = (0.0, y_top)
        draw = render_braille if self._braille else render_blocks
        lines = draw(mins, maxs, plot_rows, 0.0, y_top)
        # Braille with an odd column count would be one cell short; pad to the plot width.
        return [ln.ljust(plot_w) for ln in lines]

    def _shifted_lines(self, t0_ns: int, t1_ns: int, col_ns: int, columns: int, plot_w: int, plot_rows: int) -> list[str]:
        """The braille plot of an append-only series, reusing the last frame's cells.

        Columns wholly before the last frame's newest sample cannot change (only samples after it
        arrive; the one column holding it may gain the held value): they are shifted, not
        decimated again, and their cells are not drawn again unless the scale changed. Columns
        from there on are decimated and drawn. Same result as drawing everything (tested)."""
        t, p = self._t_ns, self._power_w
        last_t = int(t[-1]) if t.size else None
        st = self._scroll
        c0 = 0  # first dot column to decimate again (even: a whole cell)
        if (st is not None and last_t is not None and st.last_t is not None and st.col_ns == col_ns
                and st.columns == columns and st.rows == plot_rows and (t1_ns - st.t1_ns) % (2 * col_ns) == 0
                and t1_ns >= st.t1_ns):
            shift = (t1_ns - st.t1_ns) // col_ns
            c0 = max(0, min(columns - shift, (st.last_t - t0_ns) // col_ns - 1))
            c0 -= c0 % 2
        tail_mins, tail_maxs = decimate_minmax(t, p, t0_ns + c0 * col_ns, t1_ns, columns - c0)
        if c0 and st is not None:
            shift = (t1_ns - st.t1_ns) // col_ns
            mins = np.concatenate([st.mins[shift:shift + c0], tail_mins])
            maxs = np.concatenate([st.maxs[shift:shift + c0], tail_maxs])
        else:
            mins, maxs = tail_mins, tail_maxs
        if self._y_max_w is not None:
            y_top = float(self._y_max_w)
        else:
            finite = maxs[np.isfinite(maxs)]
            y_top = nice_ceil(float(finite.max())) if finite.size else 1.0
        self._y_range_w = (0.0, y_top)
        if c0 and st is not None and st.y_top == y_top:
            shift_cells = (t1_ns - st.t1_ns) // (2 * col_ns)
            kept = st.codes[:, shift_cells:shift_cells + c0 // 2]
            codes = np.concatenate([kept, braille_codes(tail_mins, tail_maxs, plot_rows, 0.0, y_top)], axis=1)
        else:
            codes = braille_codes(mins, maxs, plot_rows, 0.0, y_top)
        self._scroll = _ScrollState(col_ns, columns, plot_rows, t1_ns, y_top, last_t, mins, maxs, codes)
        return [ln.ljust(plot_w) for ln in _rows_to_str(codes)]

    def _build_strips(self, size: Size, old: list[Strip] | None) -> list[Strip]:
        """Build every row for ``size``; a row equal to the last build keeps its old Strip."""
        width, height = size
        parts = self.build_parts(width, height)
        old_parts = self._parts if old is not None else None
        strips = []
        for y, row in enumerate(parts):
            if old is not None and old_parts is not None and y < len(old) and old_parts[y] == row:
                strips.append(old[y])
            else:
                strips.append(Strip([Segment(text, style) for text, style in row], width))
        self._parts = parts
        self._strips = strips
        self._built_size = size
        return strips

    def _ensure_strips(self) -> list[Strip]:
        size = self.size
        if self._strips is None or size != self._built_size:
            return self._build_strips(size, None)
        return self._strips

    def render_lines(self, crop: Region) -> list[Strip]:
        # Once per paint: check the size here (``self.size`` is computed, not stored) so that
        # ``render_line`` is a list lookup.
        self._ensure_strips()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        """One row of the cached chart (rebuilt first if the data or size changed)."""
        strips = self._strips if self._strips is not None else self._ensure_strips()
        if 0 <= y < len(strips):
            return strips[y]
        return Strip.blank(self.size.width, self.rich_style)

    def render(self) -> Text:
        """The whole chart as a rich ``Text`` (for export, printing, or a Text-based subclass).

        The widget paints through ``render_line`` with cached Strips, which measured faster
        (see ``benchmarks/bench_chart.py``); this builds the same rows as one Text.
        """
        width, height = self.size
        return _parts_to_text(self.build_parts(width, height))

    def on_resize(self) -> None:
        # The decimation depends on the width: rebuild at the next paint.
        self._strips = None


@dataclass
class _ScrollState:
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


def _parts_to_text(rows: Iterable[Sequence[_Part]]) -> Text:
    text = Text(no_wrap=True, overflow="crop", end="")
    first = True
    for row in rows:
        if not first:
            text.append("\n")
        first = False
        for chunk, style in row:
            text.append(chunk, style)
    return text
