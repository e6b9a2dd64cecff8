"""Replay of a recorded trace: charts from the power overview, the phase list, phase details.

Two parts, one job each:

- ``ReplayModel`` (no Textual): opens a trace without reading its samples (``trace.load(path,
  channels=())`` for phases and metadata, ``overview.ensure_overview`` for the multi-resolution
  min/max/mean of each channel), gives the bins of any time window per charted domain (the total's, and beside them the
  meters not added: ``domains.charted``) and their
  total, and computes the per-phase summary once (``attribution.summarise``, streamed one
  channel at a time like ``greentop summary``). Both follow one ``--cpu-total`` choice
  (``domains.plan_domains``), as ``greentop summary --cpu-total`` does. Opening raises ``trace.TraceError`` for a file
  that is missing, corrupt or not a greentop trace, before any screen is drawn.
- ``ReplayApp`` (Textual): one ``PowerChart`` per charted domain plus the total, the phase list,
  and a detail pane (one phase, or two side by side to compare). The first screen is drawn from
  the overview alone; the summary (which reads the shown channels' samples) is computed in a
  worker thread and fills the energy columns when ready.

Time is CLOCK_MONOTONIC ns (``t_ns``) inside, seconds from the run start on screen; power in W,
energy in J.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import numpy as np
import numpy.typing as npt
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from greentop.attribution import PhaseSummary, RunSummary
from greentop.channel import Channel
from greentop.domains import CPU_TOTAL_PACKAGES, charted, plan_domains, total_title
from greentop.formatters import joules as _j
from greentop.formatters import time_offset as _s
from greentop.labels import per_unit_label, phase_label
from greentop.overview import Overview, ensure_overview
from greentop.tracedata import TraceData
from greentop.tui.chart import PowerChart

__all__ = ["Bins", "ReplayApp", "ReplayModel", "detail_lines", "run_replay"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

TOTAL = "total"
MIN_SPAN_NS = 200_000_000  # the narrowest window zoom goes to: 0.2 s (20 level-0 bins)
JUMP_MARGIN = 0.05  # enter on a phase: the window is the phase plus 5 % of its length each side
SUMMARY_DELAY_S = 0.5  # the summary thread starts this long after the first paint, which it would slow down

HELP_TEXT = """\
greentop replay

  left / right   move the time window by a quarter
  + / -          zoom in / out (the window halves / doubles)
  home / end     go to the start / end of the run
  up / down      move in the phase list
  enter          jump the window to the phase under the cursor
  c              pin the phase for comparison; c on a second
                 one shows both side by side (escape: clear)
  e              export the selected phase (and those inside
                 it) as Markdown: greentop-summary-*.md in
                 $GREENTOP_OUTPUT_DIR, else the current folder
  mouse          wheel over a chart: zoom about the pointer;
                 click on a chart: select the phase there;
                 click on a row: select, a second click: jump
  q              quit
  ?              this help (any key closes it)
"""


def _right(*cells: str) -> list[Text]:
    """The phase list's figures, right-aligned."""
    return [Text(c, justify="right") for c in cells]


@dataclass
class Bins:
    """The bins under a window: start of each (ns), their width (ns), and power (W)."""

    t_ns: I64
    bin_ns: int
    min_w: F64
    max_w: F64
    mean_w: F64
    covered_ns: I64  # how much of each bin has data (ns)

    @property
    def average_w(self) -> float:
        """Energy-weighted average power over the bins, W (NaN when empty)."""
        ok = np.isfinite(self.mean_w) & (self.covered_ns > 0)
        c = self.covered_ns[ok].astype(np.float64)
        return float((self.mean_w[ok] * c).sum() / c.sum()) if c.sum() > 0 else float("nan")

    @property
    def peak_w(self) -> float:
        """Highest bin maximum, W (NaN when empty)."""
        finite = self.max_w[np.isfinite(self.max_w)]
        return float(finite.max()) if finite.size else float("nan")


def _level_slice(ov: Overview, k: int, t0_ns: int, t1_ns: int) -> Bins:
    """The bins of level ``k`` of ``ov`` that overlap ``[t0_ns, t1_ns)`` (``Overview.window`` at a given level)."""
    lv = ov.levels[k]
    lo = max(int(t0_ns) // lv.bin_ns - lv.first_bin, 0)
    hi = max(min(-(-int(t1_ns) // lv.bin_ns) - lv.first_bin, len(lv)), lo)
    t = (lv.first_bin + np.arange(lo, hi, dtype=np.int64)) * lv.bin_ns
    cov = np.minimum(t + lv.bin_ns, ov.t_last_ns) - np.maximum(t, ov.t_first_ns)
    return Bins(t, lv.bin_ns, np.asarray(lv.min_w[lo:hi], np.float64), np.asarray(lv.max_w[lo:hi], np.float64),
                np.asarray(lv.mean_w[lo:hi], np.float64), np.maximum(cov, 0))


class ReplayModel:
    """A recorded trace opened for replay, its samples left on disk.

    Args:
        path: the trace (HDF5), only ever read. Its overview is the one the recorder stored, or
            one built on the first open and kept in the user's cache (``overview.ensure_overview``),
            so later opens read a few hundred kB.
        carbon: (gCO2e/kWh, source) for the summary; None: the intensity stored in the trace.
        cpu_total: what the machine total adds up, in the charts and the summary alike
            (``greentop summary --cpu-total``: "packages", "psys" or "system").

    Raises ``greentop.trace.TraceError`` (one line) for a missing, corrupt or foreign file, and
    ValueError (one line) for a ``cpu_total`` the trace cannot give (psys without a psys channel).
    """

    def __init__(self, path: str | Path, carbon: tuple[float, str] | None = None,
                 cpu_total: str = CPU_TOTAL_PACKAGES) -> None:
        from greentop.trace import load, open_trace

        self.path = Path(path)
        with open_trace(self.path) as f:
            self.trace: TraceData = load(f, channels=())
        self.overviews: dict[str, Overview] = ensure_overview(self.path)
        # A chart per domain of the total, and beside it the meters not added (as the live view);
        # the summary gets every row ``greentop summary`` gives.
        self.cpu_total = cpu_total
        self.primary, self.in_total = charted(plan_domains([o.channel for o in self.overviews.values()], cpu_total))
        self.start_ns = int(self.trace.run_start_ns)
        self.end_ns = max(int(self.trace.run_end_ns), self.start_ns + 1)
        stored = (float(self.trace.meta.get("carbon_g_per_kwh", 0.0)), str(self.trace.meta.get("carbon_source", "")))
        self.carbon = carbon if carbon is not None else stored
        self.summary: RunSummary | None = None

    # -- the summary ---------------------------------------------------------------------------

    def summarise(self) -> RunSummary:
        """Per-phase, per-domain figures (``attribution.summarise``), computed once and kept.

        Reads the shown channels' samples one channel at a time (seconds for an hour at 1 kHz),
        the same figures as ``greentop summary``."""
        if self.summary is None:
            from greentop.trace import open_trace, summarise_open

            with open_trace(self.path) as f:
                self.summary = summarise_open(f, self.trace, self.carbon[0], self.carbon[1], self.cpu_total)
        return self.summary

    # -- windows -------------------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) * 1e-9

    def domain_name(self, c: Channel) -> str:
        """The domain as shown: the channel's domain (``gpu-0``, ``cpu``)."""
        return c.domain

    def chart_title(self, name: str) -> str:
        """A chart's name (a charted channel's, or ``TOTAL``) as its title says it: a meter beside
        the total says it is not in it; the total says what it adds up (``domains.total_title``)."""
        if name == TOTAL:
            return total_title(self.cpu_total)
        i = next(i for i, c in enumerate(self.primary) if c.name == name)
        return self.domain_name(self.primary[i]) + ("" if self.in_total[i] else " (not in total)")

    def bins(self, t0_ns: int, t1_ns: int, columns: int) -> dict[str, Bins]:
        """Per charted channel (by name) and ``"total"`` (of the channels in the total): the overview bins over ``[t0_ns, t1_ns)``
        for a chart of ``columns`` dot columns (``Overview.window``: never every sample).

        The total sums the channels' bins on their shared grid: mean = sum of means; its span
        runs from the sum of the minima to the sum of the maxima (an envelope: the domains' peaks
        need not coincide inside a bin)."""
        out: dict[str, Bins] = {}
        ovs = [self.overviews[c.name] for c in self.primary if self.overviews[c.name].levels]
        for ov in ovs:
            w = ov.window(t0_ns, t1_ns, columns)
            bin_ns = int(w.t_ns[1] - w.t_ns[0]) if w.t_ns.size > 1 else ov.levels[ov.level_for(t0_ns, t1_ns, columns)].bin_ns
            cov = np.maximum(np.minimum(w.t_ns + bin_ns, ov.t_last_ns) - np.maximum(w.t_ns, ov.t_first_ns), 0)
            out[ov.channel.name] = Bins(w.t_ns, bin_ns, np.asarray(w.min_w, np.float64), np.asarray(w.max_w, np.float64),
                                        np.asarray(w.mean_w, np.float64), cov)
        added = {c.name for c, t in zip(self.primary, self.in_total) if t}
        out[TOTAL] = self._total([ov for ov in ovs if ov.channel.name in added], t0_ns, t1_ns, columns)
        return out

    def _total(self, ovs: list[Overview], t0_ns: int, t1_ns: int, columns: int) -> Bins:
        empty = Bins(np.zeros(0, np.int64), 1, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
        if not ovs:
            return empty
        k = min(min(ov.level_for(t0_ns, t1_ns, columns), len(ov.levels) - 1) for ov in ovs)
        parts = [_level_slice(ov, k, t0_ns, t1_ns) for ov in ovs]
        parts = [p for p in parts if p.t_ns.size]
        if not parts:
            return empty
        bin_ns = parts[0].bin_ns
        first = min(int(p.t_ns[0]) for p in parts) // bin_ns
        n = max(int(p.t_ns[-1]) for p in parts) // bin_ns - first + 1
        lo, hi, mean = np.zeros(n), np.zeros(n), np.zeros(n)
        seen = np.zeros(n, bool)
        cov = np.zeros(n, np.int64)
        for p in parts:
            i = p.t_ns // bin_ns - first
            lo[i] += np.nan_to_num(p.min_w)
            hi[i] += np.nan_to_num(p.max_w)
            mean[i] += np.nan_to_num(p.mean_w)
            cov[i] = np.maximum(cov[i], p.covered_ns)
            seen[i] = True
        for a in (lo, hi, mean):
            a[~seen] = np.nan
        t = (first + np.arange(n, dtype=np.int64)) * bin_ns
        return Bins(t, bin_ns, lo, hi, mean, cov)


# ------------------------------------------------------------------------------------- formatting


def row_key(r: PhaseSummary) -> str:
    """A stable key for a summary row: ``p<index>`` for a phase, its kind for the others."""
    return f"p{r.index}" if r.kind == "phase" else r.kind


def detail_lines(row: PhaseSummary, origin_ns: int) -> list[str]:
    """The detail pane of one summary row: where it is, then its per-domain breakdown.

    Per domain: energy (J) ± its worst-case uncertainty (J), average and peak power (W), flags,
    and J per unit of work when the workload counted some (samples, tokens ...)."""
    start_s = (row.start_ns - origin_ns) * 1e-9
    head = f"{'  ' * row.depth}{phase_label(row.name, row.attrs)}"
    lines = [head, f"start {_s(start_s)}  duration {_s(row.duration_s)}  status {row.status}"]
    if row.counts:
        lines.append("work: " + ", ".join(f"{v:g} {k}" for k, v in row.counts.items()))
    lines.append(f"{'domain':<16}{'energy J':>11}{'± J':>9}{'avg W':>9}{'peak W':>9}")
    for d in row.domains:
        lines.append(f"{d.domain[:15]:<16}{_j(d.energy_j):>11}{d.energy_uncertainty_j:>9.2f}"
                     f"{d.average_w:>9.1f}{d.peak_w:>9.1f}")
        extra = [f"{v:.4g} {per_unit_label(k)}" for k, v in d.per_unit_j.items()]
        if d.flag:
            extra.append(f"flags: {d.flag}")
        if extra:
            lines.append("    " + "; ".join(extra))
    if row.flag:
        lines.append(f"flags: {row.flag}")
    return lines


def rows_under(summary: RunSummary, row: PhaseSummary) -> list[PhaseSummary]:
    """``row`` and the phases nested in it (the run row: every row)."""
    if row.kind == "run":
        return list(summary.rows)
    if row.kind != "phase":
        return [row]
    inside = {row.index}
    out = [row]
    for r in summary.rows:
        if r.kind == "phase" and r.parent in inside:
            inside.add(r.index)
            out.append(r)
    return out


def export_markdown(summary: RunSummary, row: PhaseSummary, trace: Path) -> Path:
    """Write the Markdown summary of ``row`` and its phases; never overwrite an earlier export."""
    import dataclasses
    import time

    from greentop.output_dir import output_dir
    from greentop.summary_format import format_summary

    part = dataclasses.replace(summary, rows=rows_under(summary, row))
    text = f"# {trace.name}: {phase_label(row.name, row.attrs)}\n\n" + format_summary(part, "md")
    folder = output_dir()
    stem = time.strftime("greentop-summary-%Y%m%d-%H%M%S")
    path, n = folder / f"{stem}.md", 1
    while path.exists():
        path, n = folder / f"{stem}-{n}.md", n + 1
    path.write_text(text)
    return path.resolve()


# ---------------------------------------------------------------------------------------- screens


class ReplayHelp(ModalScreen[None]):
    DEFAULT_CSS = """
    ReplayHelp { align: center middle; }
    ReplayHelp > Static { width: 72; padding: 1 2; border: thick $primary; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP_TEXT, id="help", markup=False)

    def on_key(self) -> None:
        self.dismiss(None)


class ReplayApp(App[int]):
    """The replay view of one trace (see the module docstring). Window: ``window_ns``."""

    TITLE = "greentop replay"
    CSS = """
    #charts { height: 1fr; overflow-y: auto; }
    #charts > PowerChart { height: 1fr; min-height: 5; }
    #bottom { height: 45%; min-height: 8; }
    #phases { width: 1fr; }
    #details { width: 1fr; }
    #details > Static { width: 1fr; padding: 0 1; }
    #detail-b { display: none; border-left: solid $primary; }
    #status { height: 1; background: $boost; }
    """
    BINDINGS = [
        Binding("q", "quit_app", "quit", priority=True),
        Binding("question_mark", "help", "help", priority=True),
        Binding("left", "scroll(-1)", "earlier", priority=True),
        Binding("right", "scroll(1)", "later", priority=True),
        Binding("plus,equals_sign", "zoom(0.5)", "zoom in", priority=True),
        Binding("minus", "zoom(2.0)", "zoom out", priority=True),
        Binding("home", "home", "start", priority=True),
        Binding("end", "end", "end", priority=True),
        Binding("c", "compare", "compare", priority=True),
        Binding("e", "export", "export", priority=True),
        Binding("escape", "clear_compare", "clear compare", show=False),
    ]

    def __init__(self, model: ReplayModel, *, background_summary: bool = True) -> None:
        super().__init__()
        self.model = model
        self.window_ns: tuple[int, int] = (model.start_ns, model.end_ns)
        self.compare: list[str] = []  # keys of the pinned rows, at most 2
        self.background_summary = background_summary
        self._rows: dict[str, PhaseSummary] = {}
        self._chart_ids: dict[str, str] = {}
        self.charts_drawn = 0  # how many times the charts were given data (for tests and benchmarks)
        self.exported: list[Path] = []

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="charts"):
            for i, c in enumerate(self.model.primary):
                cid = f"chart-{i}"
                self._chart_ids[c.name] = cid
                chart = PowerChart(self.model.chart_title(c.name), estimated=c.estimated, id=cid)
                chart.mouse_zoom = True
                yield chart
            if len(self.model.primary) > 1:  # with one domain the total is the same chart again
                self._chart_ids[TOTAL] = "chart-total"
                total = PowerChart(self.model.chart_title(TOTAL), estimated=any(c.estimated for c, t in zip(self.model.primary, self.model.in_total) if t),
                                   id="chart-total")
                total.mouse_zoom = True
                yield total
        with Horizontal(id="bottom"):
            yield DataTable(id="phases", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="details"):
                yield Static("", id="detail-a", markup=False)
                yield Static("", id="detail-b", markup=False)
        yield Static("", id="status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#phases", DataTable)
        # Figures of different widths compare by magnitude only when their digits line up.
        table.add_columns("phase", *(Text(label, justify="right") for label in ("start", "duration", "energy J", "avg W")))
        self._fill_table()
        self.draw()
        table.focus()
        if self.model.summary is not None:
            self._summary_ready()
        elif self.background_summary:
            # After the first paint: the summary reads every sample of the primary channels, and
            # a thread started now would hold the GIL while the first screen is drawn.
            self.call_after_refresh(self._start_summary)
        else:
            self.model.summarise()
            self._summary_ready()

    def _start_summary(self) -> None:
        self.set_timer(SUMMARY_DELAY_S, lambda: self.run_worker(self._summarise_worker, thread=True, exclusive=True, name="summary"))

    def _summarise_worker(self) -> None:
        try:
            self.model.summarise()
        except Exception as exc:  # shown, never a crash: the charts stay usable
            self.call_from_thread(self._set_detail, [f"summary failed: {exc}"], [])
            return
        self.call_from_thread(self._summary_ready)

    def _summary_ready(self) -> None:
        if self._list_gone():
            return
        summary = self.model.summary
        assert summary is not None
        self._rows = {row_key(r): r for r in summary.rows}
        self._fill_table()
        self._update_detail()

    @property
    def summary_ready(self) -> bool:
        return self.model.summary is not None and bool(self._rows)

    def _fill_table(self) -> None:
        """Phase rows (indented by depth) with start and duration; energy once summarised."""
        table = self.query_one("#phases", DataTable)
        keep = self.cursor_key()
        table.clear()
        o = self.model.start_ns
        if self._rows:
            for key, r in self._rows.items():
                t = r.total
                table.add_row(f"{'  ' * r.depth}{r.name}", *_right(f"{max((r.start_ns - o) * 1e-9, 0.0):.2f}", f"{r.duration_s:.2f}",
                                                                   _j(t.energy_j), f"{t.average_w:.1f}"), key=key)
        else:
            tr = self.model.trace
            table.add_row("run", *_right("0.00", f"{self.model.duration_s:.2f}", "…", "…"), key="run")
            for p in tr.phases:
                table.add_row(f"{'  ' * p.depth}{p.name}", *_right(f"{(p.start_ns - o) * 1e-9:.2f}", f"{p.duration_s:.2f}", "…", "…"),
                              key=f"p{p.index}")
        if keep is not None:
            try:
                table.move_cursor(row=table.get_row_index(keep))
            except Exception:
                pass

    # -- state ---------------------------------------------------------------------------------

    def cursor_key(self) -> str | None:
        """Key of the row under the phase list's cursor (``p<index>``, ``run`` ...)."""
        table = self.query_one("#phases", DataTable)
        if table.row_count == 0:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def _span_of(self, key: str) -> tuple[int, int] | None:
        if key in self._rows:
            r = self._rows[key]
            return int(r.start_ns), int(r.end_ns)
        if key == "run":
            return self.model.start_ns, self.model.end_ns
        if key.startswith("p"):
            p = self.model.trace.phases[int(key[1:])]
            return int(p.start_ns), int(p.end_ns)
        return None

    def set_window(self, t0_ns: int, t1_ns: int) -> None:
        """Show ``[t0_ns, t1_ns)``, kept inside the run and at least ``MIN_SPAN_NS`` wide."""
        lo, hi = self.model.start_ns, self.model.end_ns
        span = min(max(int(t1_ns) - int(t0_ns), MIN_SPAN_NS), hi - lo)
        t0 = min(max(int(t0_ns), lo), hi - span)
        self.window_ns = (t0, t0 + span)
        self.draw()

    def draw(self) -> None:
        """Give every chart the overview bins of the window, and update the status line."""
        t0, t1 = self.window_ns
        width = max((ch.size.width for ch in self.query(PowerChart)), default=0) or self.size.width or 120
        columns = max(2 * (width - 8), 16)
        bins = self.model.bins(t0, t1, columns)
        o = self.model.start_ns
        for name, cid in self._chart_ids.items():
            chart = self.query_one(f"#{cid}", PowerChart)
            b = bins.get(name)
            label = self.model.chart_title(name)
            if b is None or b.t_ns.size == 0:
                chart.title = f"{label}  no data in this window"
                chart.set_minmax(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), t0, t1, origin_ns=o)
                continue
            chart.title = f"{label}  {b.average_w:.0f} W avg · {b.peak_w:.0f} W peak (window)"
            chart.set_minmax(b.t_ns, b.min_w, b.max_w, t0, t1, bin_ns=b.bin_ns, origin_ns=o)
        self.charts_drawn += 1
        ended = self.model.trace.status  # a run that did not end well says so on every screen
        self.query_one("#status", Static).update(
            f" {self.model.path.name}{'' if ended == 'ok' else f'  [run {ended}]'}"
            f"  window {(t0 - o) * 1e-9:.2f} s – {(t1 - o) * 1e-9:.2f} s "
            f"of {self.model.duration_s:.2f} s   ←/→ move  +/- zoom  enter jump  c compare  ? help  q quit")

    # -- detail pane ---------------------------------------------------------------------------

    def _set_detail(self, a: list[str], b: list[str]) -> None:
        self.query_one("#detail-a", Static).update("\n".join(a))
        db = self.query_one("#detail-b", Static)
        db.update("\n".join(b))
        db.display = bool(b)

    def detail_text(self) -> tuple[str, str]:
        """The text of the detail pane's two sides (the second is empty unless comparing)."""
        return (str(self.query_one("#detail-a", Static).content), str(self.query_one("#detail-b", Static).content))

    def _update_detail(self) -> None:
        o = self.model.start_ns
        if not self._rows:
            self._set_detail(["computing the per-phase summary …"], [])
            return
        # Two phases side by side take the whole width: beside the phase list each side is too
        # narrow for its columns (at 160 columns "avg W peak W" wrapped away from their values).
        self.query_one("#phases", DataTable).display = len(self.compare) != 2
        if len(self.compare) == 2:
            a, b = (self._rows[k] for k in self.compare)
            self._set_detail(["compare (escape: clear)"] + detail_lines(a, o), [""] + detail_lines(b, o))
            return
        key = self.cursor_key()
        row = self._rows.get(key or "")
        lines = detail_lines(row, o) if row is not None else []
        if self.compare:
            lines.append("")
            lines.append(f"pinned: {self._rows[self.compare[0]].name} (c on another phase compares)")
        self._set_detail(lines, [])

    def on_power_chart_zoom(self, event: PowerChart.Zoom) -> None:
        """The wheel over a chart zooms about the time under the pointer, which stays put."""
        t0, t1 = self.window_ns
        t = min(max(event.t_ns, t0), t1)
        self.set_window(t - int((t - t0) * event.factor), t + int((t1 - t) * event.factor))

    def on_power_chart_clicked(self, event: PowerChart.Clicked) -> None:
        """A click on a chart selects the innermost phase running at that time."""
        table = self.query_one("#phases", DataTable)
        best: tuple[int, int] | None = None  # (depth, row)
        for row in range(table.row_count):
            key = str(table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value)
            if not key.startswith("p"):
                continue
            span = self._span_of(key)
            if span is not None and span[0] <= event.t_ns < span[1]:
                depth = self.model.trace.phases[int(key[1:])].depth
                if best is None or depth > best[0]:
                    best = (depth, row)
        if best is not None:
            table.move_cursor(row=best[1])
            table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._list_gone():
            return
        self._update_detail()

    def _list_gone(self) -> bool:
        """The phase list is gone: the app is closing, and a message or a summary that arrives now
        (the list's last highlight, a worker's result) has nothing left to update."""
        return not self.query("#phases")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row: the window becomes that phase, with a small margin each side."""
        span = self._span_of(str(event.row_key.value))
        if span is None:
            return
        s0, s1 = span
        margin = int((s1 - s0) * JUMP_MARGIN)
        self.set_window(s0 - margin, s1 + margin)

    # -- actions -------------------------------------------------------------------------------

    def action_scroll(self, direction: int) -> None:
        t0, t1 = self.window_ns
        step = (t1 - t0) // 4
        self.set_window(t0 + direction * step, t1 + direction * step)

    def action_zoom(self, factor: float) -> None:
        t0, t1 = self.window_ns
        mid = (t0 + t1) // 2
        half = int((t1 - t0) * factor) // 2
        self.set_window(mid - half, mid + half)

    def action_home(self) -> None:
        t0, t1 = self.window_ns
        self.set_window(self.model.start_ns, self.model.start_ns + (t1 - t0))

    def action_end(self) -> None:
        t0, t1 = self.window_ns
        self.set_window(self.model.end_ns - (t1 - t0), self.model.end_ns)

    def action_compare(self) -> None:
        key = self.cursor_key()
        if key is None or key not in self._rows:
            self.notify("the summary is still being computed", severity="warning")
            return
        if key in self.compare:
            self.compare.remove(key)
        else:
            self.compare = (self.compare + [key])[-2:]
        self._update_detail()

    def action_export(self) -> None:
        """``e``: the selected row (and the phases inside it) as ``greentop summary --format md``
        would give them, into ``GREENTOP_OUTPUT_DIR`` (else the cwd); the message gives the path."""
        key = self.cursor_key()
        summary = self.model.summary
        if key is None or summary is None or key not in self._rows:
            self.notify("the summary is still being computed", severity="warning")
            return
        try:
            path = export_markdown(summary, self._rows[key], self.model.path)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.exported.append(path)
        self.notify(f"exported {path}")

    def action_clear_compare(self) -> None:
        self.compare = []
        self._update_detail()

    def action_help(self) -> None:
        if not isinstance(self.screen, ReplayHelp):
            self.push_screen(ReplayHelp())

    def action_quit_app(self) -> None:
        self.exit(0)


def run_replay(path: str | Path, carbon: tuple[float, str] | None = None, cpu_total: str = CPU_TOTAL_PACKAGES) -> int:
    """Open the trace (``TraceError`` before any screen for a bad file) and run the replay view."""
    model = ReplayModel(path, carbon, cpu_total)
    result = ReplayApp(model).run()
    return int(result or 0)
