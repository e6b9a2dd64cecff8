"""Strip charts of power over time: min/max decimation, braille and block rendering, a widget.

The pure steps (1, 2 and the axis labels) live in ``_chart_render`` (numpy only, no Textual);
this module is the widget and re-exports them.

A chart is drawn in three steps, each cheap enough to run at 20 fps for 8 channels:

1. ``decimate_minmax`` bins the samples of a time window into one bin per dot column and keeps,
   per bin, the lowest and highest power. Spikes survive: a single 1 ms sample among 3.6 M still
   sets its column's maximum.
2. ``render_braille`` (or the fallback ``render_blocks``) draws, per column, a vertical span from
   that minimum to that maximum, as plain strings.
3. ``PowerChart``, a Textual widget, adds a title, a W axis and a time axis, and caches the
   finished lines as ``Strip`` objects; ``set_data`` redraws at once and repaints only the rows
   of this widget that changed (no plot figure is rebuilt, no other widget repaints).
   ``set_live_data`` does it for the live view's charts together: those that scroll together
   are decimated and drawn in one numpy pass.

Braille mapping: each element of the ``mins``/``maxs`` arrays is one *dot column*; a braille cell
holds 2 dot columns and 4 dot rows, so a chart ``w`` cells wide wants ``2 * w`` columns from
``decimate_minmax``. The block fallback draws one array element per cell.

Time is in integer nanoseconds (``t_ns``, ``CLOCK_MONOTONIC`` like the sampler), power in watts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
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

from greentop.tui._chart_render import (
    F64,
    I64,
    LABEL_W,
    ArrayLike,
    ScrollState,
    braille_codes,
    column_edges_ns,
    decimate_minmax,
    format_seconds,
    format_watts,
    nice_ceil,
    render_blocks,
    render_braille,
    rows_to_str,
    x_tick_labels,
    y_tick_rows,
)

_LABEL_W = LABEL_W  # the name the tests and benchmarks import

__all__ = [
    "PowerChart",
    "set_live_data",
    "column_edges_ns",
    "decimate_minmax",
    "format_seconds",
    "format_watts",
    "nice_ceil",
    "render_blocks",
    "render_braille",
]

# --------------------------------------------------------------------------------------------
# Widget

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
        self._scroll: ScrollState | None = None
        self._drawn_ahead: tuple[tuple[int, int], list[str]] | None = None  # ((plot_w, rows), lines) from set_live_data
        self._direct = False  # the last paint bypassed Textual's styles cache (``render_lines``)
        self._finished: dict[int, tuple[Strip, Strip]] = {}  # row -> (cached row, row as painted)
        self._finished_key: tuple[object, ...] | None = None
        self._labels: tuple[tuple[object, ...], list[_Part]] | None = None  # (W range and size, label parts)

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
        plot_w = self.size.width - LABEL_W - 1
        col = x - LABEL_W - 1
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
        self._take_data(t_ns, power_w, t0_ns, t1_ns, origin_ns)
        self._invalidate()

    def _take_data(self, t_ns: I64, power_w: F64, t0_ns: int, t1_ns: int, origin_ns: int | None) -> None:
        if t1_ns <= t0_ns:
            raise ValueError(f"empty time window: t0_ns={t0_ns} >= t1_ns={t1_ns}")
        self._t_ns = t_ns
        self._power_w = power_w
        self._t0_ns = int(t0_ns)
        self._t1_ns = int(t1_ns)
        self._origin_ns = None if origin_ns is None else int(origin_ns)
        self._drawn_ahead = None

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
        plot_w = max(0, width - LABEL_W - 1)

        if has_frame:
            rows.append(self._title_row(width, title_style))

        lines = self._plot_lines(plot_w, plot_rows)
        for label_part, line in zip(self._label_parts(width, plot_rows, axis_style), lines):
            row: list[_Part] = [label_part]
            if plot_w:
                row.append((line, plot_style))
            rows.append(row)

        if has_frame:
            origin = self._t1_ns if self._origin_ns is None else self._origin_ns
            text = _time_axis(self._view_ns[0] - origin, self._view_ns[1] - origin, plot_w, width)
            rows.append([(text, axis_style)])
        return rows

    def _label_parts(self, width: int, plot_rows: int, axis_style: Style) -> list[_Part]:
        """The W label and axis line of each plot row, for the W range last drawn: the same parts
        from frame to frame while the range holds (a live chart's rarely moves)."""
        y_bottom, y_top = self._y_range_w
        key = (y_bottom, y_top, width, plot_rows, axis_style)
        if self._labels is None or self._labels[0] != key:
            ticks = y_tick_rows(y_top, y_bottom, plot_rows)
            parts = [((ticks.get(r, "").rjust(LABEL_W) + ("┤" if r in ticks else "│"))[:width], axis_style)
                     for r in range(plot_rows)]
            self._labels = (key, parts)
        return self._labels[1]

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
        ahead, self._drawn_ahead = self._drawn_ahead, None
        if ahead is not None and ahead[0] == (plot_w, plot_rows):
            return ahead[1]  # drawn by set_live_data with the other charts, for this size
        if plot_w == 0:
            self._view_ns = (self._t0_ns, self._t1_ns)
            return [""] * plot_rows
        columns = 2 * plot_w if self._braille else plot_w
        view = self._snapped_view(columns)
        t0_ns, t1_ns = self._view_ns = (view.t0_ns, view.t1_ns)
        if self._braille and self.append_only:
            return self._shifted_lines(t0_ns, t1_ns, view.col_ns, columns, plot_w, plot_rows)
        self._scroll = None
        mins, maxs = decimate_minmax(self._t_ns, self._power_w, t0_ns, t1_ns, columns)
        y_top = self._y_top_w(maxs)
        self._y_range_w = (0.0, y_top)
        draw = render_braille if self._braille else render_blocks
        lines = draw(mins, maxs, plot_rows, 0.0, y_top)
        # Braille with an odd column count would be one cell short; pad to the plot width.
        return [ln.ljust(plot_w) for ln in lines]

    def _y_top_w(self, maxs: np.ndarray) -> float:
        """The top of the y axis (W): the fixed scale if one is set, else a round ceiling of the
        highest column maximum in view."""
        if self._y_max_w is not None:
            return float(self._y_max_w)
        top = float(np.fmax.reduce(maxs)) if maxs.size else math.nan  # NaN (no data) skipped
        if math.isfinite(top):
            return nice_ceil(top)
        finite = maxs[np.isfinite(maxs)]  # an infinite column, or none with data
        return nice_ceil(float(finite.max())) if finite.size else 1.0

    def _shifted_lines(self, t0_ns: int, t1_ns: int, col_ns: int, columns: int, plot_w: int, plot_rows: int) -> list[str]:
        """The braille plot of an append-only series, reusing the last frame's cells
        (``_draw_shifted``, for this chart alone)."""
        return _draw_shifted([self], self._t_ns, self._power_w[:, None], _SnappedView(t0_ns, t1_ns, col_ns, columns),
                             plot_w, plot_rows)[0]

    def _snapped_view(self, columns: int) -> _SnappedView:
        """The window drawn for ``set_data``'s window over ``columns`` dot columns (see ``_plot_lines``)."""
        # Snap the bins to whole multiples of the column width in absolute time. A live window
        # slides a few ms per frame; bins that slid with it would regroup the samples every
        # frame and make the min/max spans shimmer. Snapped, a column keeps its samples and the
        # chart scrolls by whole columns. The window drawn is `columns` whole columns ending at
        # the first boundary at or after t1_ns, so each end moves by less than one column.
        col_ns = -(-(self._t1_ns - self._t0_ns) // columns)  # ceil
        # Scrolling by shifting cells needs the window to move by whole cells (2 dot columns).
        snap_ns = 2 * col_ns if self._braille and self.append_only else col_ns
        t1_ns = -(-self._t1_ns // snap_ns) * snap_ns
        return _SnappedView(t1_ns - columns * col_ns, t1_ns, col_ns, columns)

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
        strips = self._ensure_strips()
        if not self._plain_box():
            if self._direct:
                self._direct = False
                self._styles_cache.clear()  # lines it cached before the direct path took over
            return super().render_lines(crop)
        self._direct = True
        return self._direct_lines(strips, crop)

    def _plain_box(self) -> bool:
        """Whether Textual's line styling would leave the cached rows as they are: no border,
        padding or outline, no tint, hatch or (text) opacity, no link under the mouse."""
        styles = self.styles
        gutter = styles.gutter
        return (not (gutter.width or gutter.height) and not any(edge[0] for edge in styles.outline)
                and not styles.tint.a and styles.text_opacity == 1.0 and self.opacity == 1.0
                and not (styles.has_rule("hatch") and styles.hatch != "none")
                and not (self.auto_links and self.hover_style._link_id))

    def _direct_lines(self, strips: list[Strip], crop: Region) -> list[Strip]:
        """``crop`` of the cached rows as Textual's styles cache would return them for a plain box
        (``_plain_box``): each row at the widget's width, through the app's line filters.

        The styles cache re-renders and re-filters every row the chart refreshed, each frame; a
        row kept from the last frame here is the same Strip object, whose filtered copy Textual
        caches. This was most of what composing a frame of a scrolling chart cost."""
        width = self._built_size.width
        base_background, background = self.background_colors
        inner = self._styles_cache.get_inner_outer(base_background, background)[0].rich_style
        filters = tuple(self.get_line_filters())
        # Row y's finished Strip, kept while row y is the same Strip object under the same
        # filters and colours: most rows of a chart do not change from one frame to the next.
        key = (filters, background, inner, width)
        if self._finished_key != key:
            self._finished_key = key
            self._finished = {}
        finished = self._finished
        out: list[Strip] = []
        for y in crop.line_range:
            strip = strips[y] if 0 <= y < len(strips) else Strip.blank(width, inner)
            done = finished.get(y)
            if done is not None and done[0] is strip:
                out.append(done[1])
                continue
            line = strip.adjust_cell_length(width, inner)
            for line_filter in filters:
                line = line.apply_filter(line_filter, background)
            finished[y] = (strip, line)
            out.append(line)
        if crop.column_span != (0, width):
            x1, x2 = crop.column_span
            out = [strip.crop(x1, x2) for strip in out]
        return out

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


@dataclass(frozen=True)
class _SnappedView:
    """A window snapped to whole dot columns: ``[t0_ns, t1_ns)``, ``columns`` of ``col_ns`` each."""

    t0_ns: int
    t1_ns: int
    col_ns: int
    columns: int


def _draw_shifted(charts: Sequence[PowerChart], t_ns: I64, power_w: F64, view: _SnappedView, plot_w: int,
                  plot_rows: int) -> list[list[str]]:
    """The braille plots of append-only series (``power_w[:, j]`` for ``charts[j]``, all at times
    ``t_ns``), each reusing its last frame's cells; the charts must share their last frame's grid,
    window end and newest sample (``ScrollState``), as live charts drawn together do.

    Columns wholly before the last frame's newest sample cannot change (only samples after it
    arrive; the one column holding it may gain the held value): they are shifted, not decimated
    again, and their cells are not drawn again unless the scale changed. Columns from there on
    are decimated and drawn, for all the charts in one numpy pass: each call's fixed cost, not the
    few new columns, is what this costs. Same result as drawing everything, chart by chart (tested)."""
    t0_ns, t1_ns, col_ns, columns = view.t0_ns, view.t1_ns, view.col_ns, view.columns
    last_t = int(t_ns[-1]) if t_ns.size else None
    st0 = charts[0]._scroll
    c0 = shift = 0  # c0: first dot column to decimate again (even: a whole cell)
    if (st0 is not None and last_t is not None and st0.last_t is not None and st0.col_ns == col_ns
            and st0.columns == columns and st0.rows == plot_rows and (t1_ns - st0.t1_ns) % (2 * col_ns) == 0
            and t1_ns >= st0.t1_ns):
        shift = (t1_ns - st0.t1_ns) // col_ns
        c0 = max(0, min(columns - shift, (st0.last_t - t0_ns) // col_ns - 1))
        c0 -= c0 % 2
    tail_mins, tail_maxs = decimate_minmax(t_ns, power_w, t0_ns + c0 * col_ns, t1_ns, columns - c0)
    spans: list[tuple[F64, F64, float]] = []
    shifted: list[int] = []  # charts whose scale held: their kept cells are shifted
    for j, chart in enumerate(charts):
        st = chart._scroll
        if c0 and st is not None:
            mins = np.concatenate([st.mins[shift:shift + c0], tail_mins[:, j]])
            maxs = np.concatenate([st.maxs[shift:shift + c0], tail_maxs[:, j]])
        else:
            mins, maxs = tail_mins[:, j], tail_maxs[:, j]
        y_top = chart._y_top_w(maxs)
        chart._y_range_w = (0.0, y_top)
        spans.append((mins, maxs, y_top))
        if c0 and st is not None and st.y_top == y_top:
            shifted.append(j)
    tails: dict[int, npt.NDArray[np.uint32]] = {}
    if shifted:
        codes = braille_codes(tail_mins[:, shifted].T, tail_maxs[:, shifted].T, plot_rows, 0.0,
                              np.array([spans[j][2] for j in shifted]))
        tails = dict(zip(shifted, codes))
    out = []
    for j, chart in enumerate(charts):
        mins, maxs, y_top = spans[j]
        st = chart._scroll
        if j in tails and st is not None:
            shift_cells = (t1_ns - st.t1_ns) // (2 * col_ns)
            codes = np.concatenate([st.codes[:, shift_cells:shift_cells + c0 // 2], tails[j]], axis=1)
        else:
            codes = braille_codes(mins, maxs, plot_rows, 0.0, y_top)
        chart._scroll = ScrollState(col_ns, columns, plot_rows, t1_ns, y_top, last_t, mins, maxs, codes)
        out.append([ln.ljust(plot_w) for ln in rows_to_str(codes)])
    return out


def set_live_data(charts: Sequence[PowerChart], t_ns: I64, power_w: F64, t0_ns: int, t1_ns: int) -> None:
    """``charts[j].set_data(t_ns, power_w[:, j], t0_ns, t1_ns)`` for every chart, the plots of
    those that scroll together (append-only braille charts of one size that drew the same window
    last frame: the live view's visible charts, frame after frame) drawn in one pass
    (``_draw_shifted``); the others one by one. ``power_w``: one column per chart (W)."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for j, chart in enumerate(charts):
        chart._take_data(t_ns, power_w[:, j], t0_ns, t1_ns, None)
        size = chart.size if chart.is_mounted else Size(0, 0)
        if chart.append_only and chart.braille and size.width > LABEL_W + 1 and size.height >= 3:
            st = chart._scroll
            key = (size, None if st is None else (st.col_ns, st.columns, st.rows, st.t1_ns, st.last_t))
            groups.setdefault(key, []).append(j)
    for (size, _), members in groups.items():
        if len(members) < 2:
            continue
        plot_w, plot_rows = size.width - LABEL_W - 1, size.height - 2
        group = [charts[j] for j in members]
        view = group[0]._snapped_view(2 * plot_w)
        lines = _draw_shifted(group, t_ns, power_w[:, members], view, plot_w, plot_rows)
        for chart, drawn in zip(group, lines):
            chart._view_ns = (view.t0_ns, view.t1_ns)
            chart._drawn_ahead = ((plot_w, plot_rows), drawn)
    for chart in charts:
        chart._invalidate()


@lru_cache(maxsize=16)
def _time_axis(t0_rel_ns: int, t1_rel_ns: int, plot_w: int, width: int) -> str:
    """The time-axis row, ``width`` cells, for a window drawn ``t0_rel_ns`` .. ``t1_rel_ns`` from the
    time origin: shared by the live charts, which all draw the same window each frame."""
    cells = [" "] * plot_w
    for start, label in x_tick_labels(t0_rel_ns / 1e9, t1_rel_ns / 1e9, plot_w):
        cells[start : start + len(label)] = label
    return (" " * LABEL_W + "└" + "".join(cells))[:width].ljust(width)


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
