"""The phase timeline under the live charts: one row per nesting depth, each phase a labelled bar.

It shares the charts' time axis exactly: it is given the window a ``PowerChart`` last drew
(``PowerChart.view_ns``, already snapped to whole columns) and that chart's plot width, and cuts
the window into cells with the chart's own ``column_edges_ns``. A chart drawn in braille has two
dot columns per cell; its window spans a whole number of cells, so cell ``k`` here is exactly
cell ``k`` of the chart's plot, and the timeline's cells start after the same label column
(``_LABEL_W`` + the axis) as the chart's.

Times are CLOCK_MONOTONIC ns, as everywhere in the live view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from rich.segment import Segment
from textual.strip import Strip
from textual.widget import Widget

from greentop.tui.chart import _LABEL_W, column_edges_ns
from greentop.tui.live import PhaseSpan

MAX_ROWS = 3  # depths 0, 1 and 2; deeper phases are not drawn

__all__ = ["Bar", "MAX_ROWS", "PhaseTimeline", "bar_label", "draw_row", "layout_bars"]


@dataclass(frozen=True)
class Bar:
    """A phase as drawn: row (= depth), cells ``[x0, x1)`` of the plot area, its label."""

    row: int
    x0: int
    x1: int
    name: str
    open: bool


def layout_bars(spans: Sequence[PhaseSpan], t0_ns: int, t1_ns: int, cells: int, max_rows: int = MAX_ROWS) -> list[Bar]:
    """Map phases onto ``cells`` equal cells over ``[t0_ns, t1_ns)`` (``column_edges_ns``).

    A bar covers every cell its span touches, at least one; phases outside the window or deeper
    than ``max_rows - 1`` are left out."""
    if cells <= 0 or t1_ns <= t0_ns:
        return []
    edges = column_edges_ns(t0_ns, t1_ns, cells)
    bars = []
    for s in spans:
        if s.depth >= max_rows or s.start_ns >= t1_ns or s.end_ns < t0_ns or (s.end_ns == t0_ns and not s.open):
            continue
        x0 = int(np.searchsorted(edges, s.start_ns, side="right")) - 1  # the cell holding the start
        x1 = int(np.searchsorted(edges, s.end_ns, side="left"))  # one past the cell holding end - 1
        x0 = min(max(x0, 0), cells - 1)
        x1 = min(max(x1, x0 + 1), cells)
        bars.append(Bar(s.depth, x0, x1, s.name, s.open))
    return bars


def bar_label(name: str, open_: bool, room: int) -> str:
    """The label that fits in ``room`` cells: whole, else cut with "…", else nothing (the bar's
    colour still shows the phase). An open phase gets " *" when it fits."""
    label = name + " *" if open_ and len(name) + 2 <= room else name
    if len(label) <= room:
        return label
    return label[: room - 1] + "…" if room >= 3 else ""


def draw_row(bars: Sequence[Bar], cells: int) -> tuple[list[str], list[int]]:
    """One row's characters and styles (0 axis/blank, 1 bar a, 2 bar b). A label ends at least one
    cell before the next bar starts and before its own bar ends, so two labels never run into each
    other ("warmutrain"): the bars' colours alternate, and a blank cell separates their words."""
    chars = [" "] * cells
    style = [0] * cells
    ordered = sorted(bars, key=lambda b: (b.x0, b.x1))
    for i, b in enumerate(ordered):
        style[b.x0:b.x1] = [1 + i % 2] * (b.x1 - b.x0)
    for i, b in enumerate(ordered):
        end = min([b.x1] + [n.x0 for n in ordered[i + 1:]])  # a later bar may share or overlap cells
        text = bar_label(b.name, b.open, end - b.x0 - 1)
        chars[b.x0:b.x0 + len(text)] = list(text)
    return chars, style


class PhaseTimeline(Widget):
    """Phases as bars on the charts' time axis; one row per depth present (1 to ``MAX_ROWS``)."""

    DEFAULT_CSS = """
    PhaseTimeline {
        height: 1;
    }
    PhaseTimeline > .timeline--axis {
        text-style: dim;
    }
    PhaseTimeline > .timeline--bar-a {
        background: $primary;
        color: $text;
    }
    PhaseTimeline > .timeline--bar-b {
        background: $secondary;
        color: $text;
    }
    """
    COMPONENT_CLASSES = {"timeline--axis", "timeline--bar-a", "timeline--bar-b"}

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._spans: list[PhaseSpan] = []
        self._window = (0, 1)
        self._cells = 0
        self._bars: list[Bar] = []
        self._lines: list[list[tuple[str, int]]] = []  # per row: (text, style index) runs
        self._rows = 1

    @property
    def bars(self) -> list[Bar]:
        """The bars as last laid out (for tests and for mouse hit-testing)."""
        return self._bars

    def set_phases(self, spans: Sequence[PhaseSpan], t0_ns: int, t1_ns: int, cells: int) -> None:
        """Draw ``spans`` over the window ``[t0_ns, t1_ns)`` cut into ``cells`` cells: pass a chart's
        ``view_ns`` and its plot width (its width less the label column)."""
        spans = list(spans)
        if spans == self._spans and (t0_ns, t1_ns) == self._window and cells == self._cells:
            return
        self._spans, self._window, self._cells = spans, (int(t0_ns), int(t1_ns)), int(cells)
        self._bars = layout_bars(spans, int(t0_ns), int(t1_ns), int(cells))
        lines = self._build()
        rows = max(1, min(MAX_ROWS, 1 + max((s.depth for s in spans), default=0)))
        if rows != self._rows:
            self._rows = rows
            self.styles.height = rows
        if lines != self._lines:
            self._lines = lines
            self.refresh()

    def _build(self) -> list[list[tuple[str, int]]]:
        cells = self._cells
        rows: list[list[tuple[str, int]]] = []
        for r in range(MAX_ROWS):
            chars, style = draw_row([b for b in self._bars if b.row == r], cells)
            label = ("phases" if r == 0 else "").rjust(_LABEL_W) + "│"
            runs: list[tuple[str, int]] = [(label, 0)]
            x = 0
            while x < cells:
                y = x
                while y < cells and style[y] == style[x]:
                    y += 1
                runs.append(("".join(chars[x:y]), style[x]))
                x = y
            rows.append(runs)
        return rows

    def row_text(self, row: int) -> str:
        """Row ``row`` as plain text (label column included)."""
        if not 0 <= row < len(self._lines):
            return ""
        return "".join(t for t, _ in self._lines[row])

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if not 0 <= y < len(self._lines):
            return Strip.blank(width, self.rich_style)
        base = self.rich_style
        styles = [
            base + self.get_component_rich_style("timeline--axis", partial=True),
            base + self.get_component_rich_style("timeline--bar-a", partial=True),
            base + self.get_component_rich_style("timeline--bar-b", partial=True),
        ]
        segments = [Segment(text, styles[k]) for text, k in self._lines[y]]
        return Strip(segments).crop(0, width).extend_cell_length(width, base)

    def on_resize(self) -> None:
        self.refresh()
