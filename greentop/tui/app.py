"""``greentop run``: the live view (a Textual app) over a started sampler, and its launcher.

``LiveApp`` only reads: it drains the sampler's rings and the phase listener at ``DRAIN_HZ``
into a ``LiveModel`` and redraws at ``fps``; sampling runs on the sampler's own threads and is
never waited on. While a recording runs (``-o``, or ``r``), the recorder's thread is the only
reader of the rings and the listener, and the app takes what it drained from the recorder's tap
instead. ``run_live`` starts the sampler, the listener and the workload (and the recording),
runs the app, and stops everything when the app exits. The overlays are in ``tui.screens``, the
text the view exports and prints in ``tui.live_text``.
"""

from __future__ import annotations

import math
import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual import events
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Log, Static

from greentop.formatters import co2 as _co2
from greentop.formatters import duration_short as _duration
from greentop.formatters import energy_j_wh as _energy
from greentop.formatters import power as _w
from greentop.channel import Channel
from greentop.domains import CPU_TOTAL_PACKAGES, total_title
from greentop.events import Event
from greentop.output_dir import OUTPUT_DIR_ENV, output_dir
from greentop.recorder import DRAIN_S as RECORD_DRAIN_S
from greentop.recorder import Recorder, RecordError
from greentop.run_as import RunAs
from greentop.sampler import Samples, SamplerHealth
from greentop.session import LiveSession
from greentop.sources import SourceResult
from greentop.trace import RUN_WORKLOAD_EXIT
from greentop.tui.chart import _LABEL_W, PowerChart, set_live_data
from greentop.tui.live import LiveModel
from greentop.tui.live_text import live_summary_markdown, summary_lines, trace_summary_markdown, wrap_output
from greentop.tui.live_text import per_unit as _per_unit
from greentop.tui.screens import HELP_TEXT as HELP_TEXT  # re-exported: the help text is part of the live view's face
from greentop.tui.screens import ConfirmQuit, DevicesScreen, HelpScreen, devices_text
from greentop.tui.timeline import PhaseTimeline

DRAIN_HZ = 20.0
DEFAULT_FPS = 15.0
DEFAULT_WINDOW_S = 60.0
MIN_WINDOW_S = 1.875  # 60 s halved five times
MAX_WINDOW_S = 960.0  # 60 s doubled four times; the model retains this much
HEALTH_HZ = 2.0
LEFT_RUNNING_SCAN_S = 2.0  # a scan reads every process's /proc entry: not every frame
PHASE_ROWS = 12
TABLE_EVERY_NS = 500_000_000  # the phase table's figures refresh twice a second (of data time)
TITLE_EVERY_NS = 200_000_000  # chart titles' figures: 5 times a second is as fast as anyone reads
CHART_MIN_ROWS = 9  # title, 7 plot rows, time axis
MIN_SIZE = (80, 24)  # below this the view shows one message instead of the layout
PHASE_HEADER = ("phase", "n", "time", "energy J", "avg W", "per unit")


class SamplerLike(Protocol):
    def drain(self) -> dict[str, Samples]: ...
    def health(self) -> SamplerHealth: ...


class ListenerLike(Protocol):
    def drain(self) -> list[Event]: ...


class ChildLike(Protocol):
    def poll(self) -> int | None: ...


@dataclass
class _Cpu:
    """greentop's own CPU use (all its threads, the sampler's included), % of one core."""

    wall: float
    cpu: float

    @staticmethod
    def now() -> "_Cpu":
        t = os.times()
        return _Cpu(time.monotonic(), t.user + t.system)


class LiveApp(App[int]):
    """Live power of every primary domain and their total, energy, phases, health."""

    TITLE = "greentop"
    CSS = """
    #main { height: 1fr; }
    #charts { height: 1fr; }
    #charts > PowerChart { height: 9; }
    #bottom { height: auto; max-height: 16; layout: horizontal; }
    #phases { width: 2fr; height: auto; max-height: 14; border: round $panel-lighten-2; }
    #phases:focus { border: round $accent; }
    #side { width: 1fr; height: auto; }
    #energy { height: 3; }
    #workload { height: 3; }
    #health { height: 3; }
    #output { height: 8; border: round $panel-lighten-2; overflow-x: hidden; }
    ToastRack { align: right top; }
    #output:focus { border: round $accent; }
    #too-small { display: none; width: 100%; height: 100%; content-align: center middle; text-style: bold; }
    """
    BINDINGS = [
        Binding("q", "quit_app", "quit"),
        Binding("p", "toggle_pause", "pause"),
        Binding("plus,equals_sign", "zoom(0.5)", "zoom in", key_display="+"),
        Binding("minus", "zoom(2.0)", "zoom out", key_display="-"),
        Binding("r", "toggle_record", "record"),
        Binding("e", "export", "export"),
        Binding("d", "devices", "devices"),
        Binding("tab", "focus_pane(1)", "next pane", show=False, priority=True),
        Binding("shift+tab", "focus_pane(-1)", "previous pane", show=False, priority=True),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    def __init__(
        self,
        sampler: SamplerLike,
        channels: Sequence[Channel],
        *,
        listener: ListenerLike | None = None,
        child: ChildLike | None = None,
        command: Sequence[str] = (),
        output: "queue.SimpleQueue[str] | None" = None,
        window_s: float = DEFAULT_WINDOW_S,
        fps: float = DEFAULT_FPS,
        timers: bool = True,
        recording: Recorder | None = None,
        new_recording: Callable[[list[Event]], Recorder] | None = None,
        carbon: tuple[float, str] | None = None,
        export_dir: Path | None = None,
        found: SourceResult | None = None,
        cpu_total: str = CPU_TOTAL_PACKAGES,
        left_running: Callable[[], int] | None = None,
    ) -> None:
        """``recording``: a started recording (``-o``), whose tap then feeds the model; ``r`` does
        not stop it. ``new_recording``: starts one when ``r`` is pressed (given the events seen so
        far); ``r`` again stops and finalises it. Without either, ``r`` only says it cannot record.
        ``carbon``: grid intensity (gCO2e/kWh) and where it comes from (``carbon.intensity_for``;
        default: the world average). ``export_dir``: where ``e`` writes (default: ``GREENTOP_OUTPUT_DIR``,
        else the cwd). ``found``: what discovery found, for the devices overlay (``d``). ``cpu_total``:
        the CPU side of the total, as ``greentop summary --cpu-total`` (``domains.plan_domains``).
        ``left_running``: counts the processes of the workload's tree still alive after it exited
        (``launch.Workload.left_running``), shown beside its exit."""
        super().__init__()
        if carbon is None:
            from greentop.carbon import intensity_for

            carbon = intensity_for(None, None)
        self.carbon = carbon
        self.export_dir = export_dir
        self.found = found
        self.exported: list[Path] = []
        self.sampler, self.listener, self.child, self.output = sampler, listener, child, output
        self.recording = recording
        self.new_recording = new_recording
        self.fixed_recording = recording is not None  # started with -o: r leaves it alone
        self.saved: list[Path] = []  # recordings finished from the view
        self._exit_logged = False
        self.command = list(command)
        self.model = LiveModel(channels, retain_s=MAX_WINDOW_S, cpu_total=cpu_total)
        self.window_s = window_s
        self.fps = fps
        self.paused = False
        self.exit_code: int | None = None
        self._left_running = left_running
        self._left_count = 0
        self._left_scanned = -math.inf  # time.monotonic() of the last scan
        self._use_timers = timers
        self._cpu_last = _Cpu.now()
        self._cpu_pct = math.nan
        self._health_line = ""
        n = len(self.model.channels)
        # Chart i shows the model's series i; the total (series n) only with several domains: with
        # one, it is the same chart twice.
        # A total that is not the default's says what it adds up (the devices overlay says it whole).
        total = total_title(self.model.cpu_total)
        self._chart_names = [c.domain + ("" if add else " (not in total)") for c, add in zip(self.model.channels, self.model.in_total)]
        self._chart_names += [total] if n > 1 else []
        self._estimated = [c.estimated for c in self.model.channels] + ([any(c.estimated for c in self.model.channels)] if n > 1 else [])
        self._n = n
        self._texts: dict[str, str] = {}
        self._table_keys: list[tuple[str, bool]] = []
        self._table_t_ns = 0
        self._figures_t_ns = 0
        self._stale: set[int] = set()  # charts to redraw (title and plot) as soon as they show
        self._chart_t_ns = 0
        # Widgets the timers update, held from compose: timers query nothing, so a tick that
        # lands while a dialog is on top or the app is tearing down finds its widgets.
        self._charts: list[PowerChart] = []
        self._statics: dict[str, Static] = {}
        self._output_log: Log | None = None
        self._finish_after: float | None = None  # monotonic s: when to finish a -o recording

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        self._too_small = Static(id="too-small")
        yield self._too_small
        with Vertical(id="main") as self._main:
            with VerticalScroll(id="charts") as self._charts_pane:
                self._charts = [PowerChart(name, estimated=self._estimated[i], id=f"chart-{i}")
                                for i, name in enumerate(self._chart_names)]
                for chart in self._charts:
                    chart.append_only = True  # the model's grid only grows: scroll by shifting cells
                yield from self._charts
            self._timeline = PhaseTimeline(id="timeline")
            yield self._timeline
            with Vertical(id="bottom"):
                self._table = DataTable[str](id="phases", cursor_type="none", zebra_stripes=True)
                self._table.border_title = "phases"
                yield self._table
                with Vertical(id="side"):
                    for name in ("energy", "workload", "health"):
                        self._statics[f"#{name}"] = Static(id=name)
                        yield self._statics[f"#{name}"]
            if self.output is not None:
                self._output_log = Log(id="output", max_lines=2000)
                self._output_log.border_title = "output"
                yield self._output_log
        self._footer = Footer()
        yield self._footer

    def on_mount(self) -> None:
        # The figures are right-aligned (padded to fixed widths): so are their headers.
        self._table.add_columns(PHASE_HEADER[0], *(Text(label, justify="right") for label in PHASE_HEADER[1:]))
        self._check_size(self.size.width, self.size.height)
        self.sub_title = " ".join(self.command) if self.command else "watching the machine"
        self._update_health()
        self.call_after_refresh(self._fit_charts)
        if self._use_timers:
            if self.fps == DRAIN_HZ:
                # One timer, not two: each tick of a Textual timer costs the app a round of
                # messages, and a frame drawn right after its drain shows the newest samples.
                self.set_interval(1 / DRAIN_HZ, self._drain_and_refresh)
            else:
                self.set_interval(1 / DRAIN_HZ, self.drain_now)
                self.set_interval(1 / self.fps, self.refresh_view)
            self.set_interval(1 / HEALTH_HZ, self._update_health)

    def _drain_and_refresh(self) -> None:
        self.drain_now()
        self.refresh_view()

    # -- data ------------------------------------------------------------------------------------

    def drain_now(self) -> None:
        """Move what the sampler and the listener hold into the model (cheap, never blocks); while
        recording, what the recorder's thread drained for us instead."""
        if self.recording is not None:
            self._feed_from_tap(self.recording)
        else:
            self.model.feed(self.sampler.drain())
            if self.listener is not None:
                events = self.listener.drain()
                if events:
                    self.model.feed_events(events)
        if self.output is not None:
            lines = []
            while True:
                try:
                    lines.append(self.output.get_nowait())
                except queue.Empty:
                    break
            if lines and self._output_log is not None:
                self._output_log.write_lines(wrap_output(lines, self._output_log.scrollable_content_region.width))
        if self.child is not None and self.exit_code is None:
            self.exit_code = self.child.poll()
            if self.exit_code is not None:
                self.model.end_run()  # the run ends with the workload; "now" power goes on
                self._log_exit()
                if self.fixed_recording and self.recording is not None:
                    # -o records the workload's run, as greentop record does: it ends with the
                    # workload (once the events it sent just before exiting are in), not when the
                    # view is closed; the view stays open on the finished run.
                    self._finish_after = time.monotonic() + RECORD_DRAIN_S
        if self._finish_after is not None and time.monotonic() >= self._finish_after:
            self._finish_after = None
            self.stop_recording()

    def _feed_from_tap(self, rec: Recorder) -> None:
        if rec.tap is None:
            return
        for samples, phase_events in rec.tap.take():
            if samples:
                self.model.feed(samples)
            if phase_events:
                self.model.feed_events(phase_events)

    def _log_exit(self) -> None:
        """The workload's exit into the recording, once (its time: when the view saw it)."""
        if self.recording is not None and self.exit_code is not None and not self._exit_logged:
            self.recording.log(RUN_WORKLOAD_EXIT, float(self.exit_code))
            self._exit_logged = True

    def workload_exit_code(self) -> int | None:
        """The workload's exit code as greentop reports it (128+signal when killed); None while it runs."""
        if self.exit_code is None:
            return None
        return self.exit_code if self.exit_code >= 0 else 128 - self.exit_code

    def refresh_view(self) -> None:
        """Redraw charts, titles, energy, phases and the workload's state (charts frozen when paused)."""
        now = self.model.t_ns
        # Figures people read (chart titles, running energy) change every frame; 5 a second is
        # as fast as anyone reads them.
        figures = now is not None and now - self._figures_t_ns >= TITLE_EVERY_NS
        if figures:
            self._figures_t_ns = now or 0
        if not self.paused and now is not None:
            window_ns = int(self.window_s * 1e9)
            t0 = now - window_ns
            # The snapped bins move by whole dot columns: between two moves a redraw would only
            # refine the newest column, so charts redraw once per column (every frame when
            # zoomed in), and at once when stale: after a zoom, a resume, a resize, or a scroll
            # that brings them into view.
            cells = self._charts[-1].size.width - _LABEL_W - 1  # <= 0: not laid out yet
            new_column = cells <= 0 or now - self._chart_t_ns >= window_ns // (2 * cells)
            if new_column:
                self._chart_t_ns = now
            pane_h = self._charts_pane.size.height  # once a frame: each geometry lookup searches the screen's map
            redraw: list[int] = []
            for i, chart in enumerate(self._charts):
                # A chart scrolled out of view costs nothing: it is drawn again once it shows.
                if not self._chart_visible(chart, pane_h):
                    self._stale.add(i)
                    continue
                stale = i in self._stale
                self._stale.discard(i)
                if figures or stale:
                    st = self.model.stats(i)
                    chart.title = f"{self._chart_names[i]}   {_w(st.now_w)} now · {_w(st.avg_w)} avg · {_w(st.peak_w)} peak"
                if new_column or stale:
                    redraw.append(i)
            if redraw:
                # The model's window copied once, the charts that scroll together drawn in one pass.
                t, power_w = self.model.window(t0)
                if t.size:
                    set_live_data([self._charts[i] for i in redraw], t, power_w[:, redraw], t0, now)
            self._update_timeline()
            self._update_phases()
        self._update_text(energy=figures)

    def _mark_charts_stale(self) -> None:
        """Every chart redraws (title and plot) at its next visible frame, new column or not."""
        self._stale.update(range(len(self._charts)))

    def _chart_visible(self, chart: PowerChart, pane_h: int | None = None) -> bool:
        """Whether any row of ``chart`` is inside the charts pane's viewport (before the first
        layout nothing is known: draw everything). ``pane_h``: the pane's height, if known."""
        pane = self._charts_pane
        if pane_h is None:
            pane_h = pane.size.height
        region = chart.virtual_region  # the chart's outer region (no gutter: its size)
        if not pane_h or not region.height:
            return True
        top = region.y - round(pane.scroll_y)
        return top < pane_h and top + region.height > 0

    def _update_timeline(self) -> None:
        """The phases over the window the charts drew, cut into the total chart's plot cells."""
        chart = self._charts[-1]
        v0, v1 = chart.view_ns
        cells = max(0, chart.size.width - _LABEL_W - 1)
        self._timeline.set_phases(self.model.spans(v0, v1), v0, v1, cells)

    def _update_phases(self) -> None:
        """Rebuild the table when its rows change; otherwise rewrite its cells at most every
        ``TABLE_EVERY_NS`` (a DataTable rebuild re-lays out the screen: too costly per frame)."""
        rows, _current = self.model.phases()
        rows = rows[-PHASE_ROWS:]
        table = self._table
        now = self.model.t_ns or 0
        keys = [(r.path, r.open) for r in rows]
        # Fixed widths: cells are rewritten in place without re-measuring their columns, so a
        # count that grows from 9 to 10 must already have room.
        cells = [
            ["  " * r.depth + r.path.rsplit("/", 1)[-1] + (" *" if r.open else ""), f"{r.count:>6}", f"{_duration(r.duration_s):>8}",
             f"{r.energy_j:>10.1f}", f"{r.avg_w:>7.1f}", f"{_per_unit(r):>16}"]
            for r in rows
        ]
        if keys != self._table_keys:
            table.clear()
            for c in cells:
                table.add_row(*c)
            self._table_keys = keys
        elif now - self._table_t_ns >= TABLE_EVERY_NS:
            for y, c in enumerate(cells):
                for x, v in enumerate(c[1:], start=1):
                    table.update_cell_at(Coordinate(y, x), v)
        else:
            return
        self._table_t_ns = now

    def _update_text(self, energy: bool = True) -> None:
        """The status panes; the running energy figures only when ``energy`` (they change every
        frame, and a pane rewritten 20 times a second is read no better than at 5)."""
        if energy:
            self._update_energy_text()
        if self.child is None:
            state = "no workload: watching the machine"
        elif self.exit_code is None:
            state = "workload [b]running[/b]"
        else:
            state = f"workload [b]exited {self.exit_code}[/b]: finished, press q"
            if (left := self._count_left_running()):
                state += f"\n[b]{left} process{'es' if left != 1 else ''}[/b] it started still running (q leaves them)"
        view = f"window {self.window_s:g} s" + ("  [reverse] PAUSED [/reverse]" if self.paused else "")
        self._set_text("#workload", f"{state}\n{view}\n{self.record_status()}")
        self._set_text("#health", self._health_line)

    def _count_left_running(self) -> int:
        """What the exited workload left running; the process table is scanned at most every
        LEFT_RUNNING_SCAN_S, since children may still be winding down just after the exit."""
        if self._left_running is None:
            return 0
        now = time.monotonic()
        if now - self._left_scanned >= LEFT_RUNNING_SCAN_S:
            self._left_scanned = now
            self._left_count = self._left_running()
        return self._left_count

    def _update_energy_text(self) -> None:
        _rows, current = self.model.phases()
        e = self.model.energy_j
        g_per_kwh = self.carbon[0]
        lines = [f"[b]run[/b] {_energy(e)} · {_co2(e, g_per_kwh)} in {_duration(self.model.duration_s)}"]
        if current is not None:
            lines.append(f"[b]phase[/b] {current.path}: {_energy(current.energy_j)} · {_co2(current.energy_j, g_per_kwh)}"
                         f" in {_duration(current.duration_s)}")
        else:
            lines.append("[b]phase[/b] -")
        if any(self._estimated):
            lines.append("[i]includes estimated channels[/i]")
        self._set_text("#energy", "\n".join(lines))

    def _set_text(self, selector: str, text: str) -> None:
        """Update a Static only when its text changes, without a re-layout (fixed heights)."""
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            self._statics[selector].update(text, layout=False)

    def _update_health(self) -> None:
        cur = _Cpu.now()
        if cur.wall > self._cpu_last.wall:
            self._cpu_pct = 100 * (cur.cpu - self._cpu_last.cpu) / (cur.wall - self._cpu_last.wall)
            self._cpu_last = cur
        try:
            h = self.sampler.health()
        except Exception as exc:  # noqa: BLE001 -- shown, never fatal to the view
            self._health_line = f"sampler health unavailable: {exc}"
            return
        rates = []
        for name, lane in h.lanes.items():
            achieved = lane.ticks / lane.elapsed_s if lane.elapsed_s else 0.0
            rates.append(f"{name} {achieved:.0f}/{lane.rate_hz:g}")  # got / asked: the help explains it
        cpu = "-" if math.isnan(self._cpu_pct) else f"{self._cpu_pct:.1f}%"
        stale = self.model.stale()
        trouble = self.model.counter_trouble()
        self._health_line = (f"[b]sampler[/b] {', '.join(rates)} Hz\noverruns {h.overruns}, read errors {h.read_errors}, "
                             f"own CPU {cpu}" + (f"\n[b]stale:[/b] {', '.join(stale)}" if stale else "")
                             + (f"\n[b]counters:[/b] {', '.join(trouble)}" if trouble else ""))

    # -- actions ---------------------------------------------------------------------------------

    def workload_running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def action_quit_app(self) -> None:
        if not self.workload_running():
            self.exit(self.exit_code or 0)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit(130)

        self.push_screen(ConfirmQuit(), answered)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self._mark_charts_stale()
        self.refresh_view()

    def action_zoom(self, factor: float) -> None:
        self.window_s = min(max(self.window_s * factor, MIN_WINDOW_S), MAX_WINDOW_S)
        self._mark_charts_stale()
        self.refresh_view()

    def action_devices(self) -> None:
        if not isinstance(self.screen, DevicesScreen):
            self.push_screen(DevicesScreen(devices_text(self.model.channels, self.found, self.model.machine_total)))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # -- panes and size --------------------------------------------------------------------------

    def panes(self) -> list[Widget]:
        """The panes ``tab`` moves between, in order: the phase table, the workload's output."""
        return [w for w in (self._table, self._output_log) if w is not None and w.display]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_pane" and isinstance(self.screen, ModalScreen):
            return False  # tab belongs to the dialog while one is open
        return True

    def action_focus_pane(self, step: int) -> None:
        panes = self.panes()
        if not panes:
            return
        focused = self.screen.focused
        i = panes.index(focused) if focused in panes else (-1 if step > 0 else 0)
        panes[(i + step) % len(panes)].focus()

    def on_resize(self, event: events.Resize) -> None:
        self._mark_charts_stale()
        self._check_size(event.size.width, event.size.height)
        self.call_after_refresh(self._fit_charts)

    def _fit_charts(self) -> None:
        """Share the charts pane between the charts (9 rows each at least; below that the pane
        scrolls): two charts on a tall terminal get the room rather than leave it blank."""
        pane_h = self._charts_pane.size.height
        if not pane_h or not self._charts:
            return
        rows = max(CHART_MIN_ROWS, pane_h // len(self._charts))
        if self._charts[0].styles.height is None or self._charts[0].size.height != rows:
            for chart in self._charts:
                chart.styles.height = rows
            self._mark_charts_stale()

    def _check_size(self, width: int, height: int) -> None:
        """Below ``MIN_SIZE`` one centred message replaces the layout; it comes back when resized."""
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        msg = self._too_small
        if small:
            msg.update(f"terminal too small: {MIN_SIZE[0]}x{MIN_SIZE[1]} needed, have {width}x{height}")
        msg.display = small
        self._main.display = not small
        self._footer.display = not small

    # -- export ----------------------------------------------------------------------------------

    def summary_markdown(self) -> tuple[str, str]:
        """The per-phase summary as Markdown, and what it was made from: ``greentop summary``'s
        Markdown of the recording (the active one, as written so far, else the last finished),
        or without one, a table of the live phase table."""
        path = self.recording.path if self.recording is not None else (self.saved[-1] if self.saved else None)
        if path is not None:
            try:
                return trace_summary_markdown(path, self.carbon), str(path)
            except Exception as exc:  # noqa: BLE001 -- a trace being written may not be readable yet
                self.notify(f"summary of {path} failed ({exc}); exporting the live table", severity="warning")
        return live_summary_markdown(self.model, self.carbon, self.command), "the live phase table"

    def action_export(self) -> None:
        self.drain_now()
        text, source = self.summary_markdown()
        folder = self.export_dir if self.export_dir is not None else output_dir()
        stem = time.strftime("greentop-summary-%Y%m%d-%H%M%S")
        path, n = folder / f"{stem}.md", 1
        while path.exists():  # never overwrite an earlier export
            path, n = folder / f"{stem}-{n}.md", n + 1
        try:
            path.write_text(text)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.exported.append(path)
        self.notify(f"exported {path.resolve()} (from {source}; {OUTPUT_DIR_ENV} chooses the folder)")

    # -- recording -------------------------------------------------------------------------------

    def record_status(self) -> str:
        """The status pane's recording line: "● REC path" while recording, else the last saved trace."""
        if self.recording is not None:
            return f"[b red]● REC[/b red] {self.recording.path}"
        if self.saved:
            return f"saved {self.saved[-1]}"
        return "not recording" + (" (r: record)" if self.new_recording is not None else "")

    def action_toggle_record(self) -> None:
        if self.fixed_recording:
            self.notify(f"recording to {self.recording.path if self.recording else '-'} (started with -o)")
            return
        if self.recording is not None:
            self.stop_recording()
        elif self.new_recording is None:
            self.notify("recording is not available here", severity="warning")
        else:
            self.start_recording()
        self._update_text()

    def start_recording(self) -> None:
        """Hand the rings and the listener over to a new recording (drained here one last time first)."""
        assert self.new_recording is not None
        self.drain_now()
        try:
            self.recording = self.new_recording(list(self.model.events))
        except (RecordError, OSError) as exc:
            self.notify(f"cannot record: {exc}", severity="error")
            return
        self._exit_logged = False
        if self.exit_code is not None:
            self._exit_logged = True  # it exited before this recording began: nothing to log

    def stop_recording(self) -> Path | None:
        """Stop the recording thread, take its last batches, finalise the trace; draining comes back
        here. The workload keeps running."""
        rec = self.recording
        if rec is None:
            return None
        rec.stop()
        self._feed_from_tap(rec)
        self.recording = None
        try:
            done = rec.finish(self.workload_exit_code() if self.child is not None else 0)
        except (RecordError, OSError) as exc:
            self.notify(f"recording failed: {exc}", severity="error")
            return None
        if done.write_error:  # a full disk: the trace holds what reached it
            self.notify(f"recording failed: {done.write_error}", severity="error")
            return None
        self.saved.append(rec.path)
        self.notify(f"saved {rec.path}")
        return rec.path


# -- the launcher ----------------------------------------------------------------------------------




@dataclass
class LiveResult:
    exit_code: int
    energy_j: float
    duration_s: float
    summary: list[str]
    traces: list[Path] = field(default_factory=list)  # every trace written (-o, or r ... r)
    write_error: str = ""  # the -o trace could not be written to the end (a full disk)


def run_live(cmd: Sequence[str], channels: Sequence[Channel], rate_hz: float, slow_rate_hz: float,
             window_s: float = DEFAULT_WINDOW_S, *, output: Path | None = None, baseline_s: float = 0.0,
             found: SourceResult | None = None, record_dir: Path | None = None,
             carbon: tuple[float, str] | None = None, run_as: RunAs | None = None, **app_kwargs: Any) -> LiveResult:
    """Start the sampler (and the listener and ``cmd`` when given), show the live view, clean up.

    ``output``: record the whole run there from the start (after an idle baseline of
    ``baseline_s``), as ``greentop record`` would; otherwise ``r`` records into
    ``greentop-YYYYmmdd-HHMMSS.h5`` in ``record_dir`` (the cwd). The caller checks ``cmd`` and
    ``output`` first (``recorder.check_command`` / ``check_output``). ``carbon``: (gCO2e/kWh,
    source) shown in the view and stored in the traces (default: the world average)."""
    session = LiveSession(cmd, channels, rate_hz, slow_rate_hz, found=found, carbon=carbon, record_dir=record_dir,
                          run_as=run_as)
    app: LiveApp | None = None
    rc: int | None = None
    child = None
    try:
        if not session.start(output, baseline_s):
            return LiveResult(130, 0.0, 0.0, ["interrupted during the idle baseline"], [output] if output else [])
        session.launch()
        child = session.workload.process if session.workload is not None else None
        app = LiveApp(session.sampler, session.channels, listener=session.listener, child=child, command=cmd,
                      output=session.output, window_s=window_s, recording=session.recording,
                      new_recording=None if output is not None else session.new_recording, carbon=carbon,
                      found=session.found, left_running=session.count_left_running, **app_kwargs)
        rc = app.run()
    finally:
        rec = app.recording if app is not None else session.recording
        exit_code, running = session.close(rec, app is not None and app._exit_logged)
    assert app is not None
    write_error = ""
    if rec is not None:
        app._feed_from_tap(rec)
        write_error = rec.finish(exit_code if child is not None else 0, interrupted=running).write_error
        app.saved.append(rec.path)
    else:
        app.model.feed(session.sampler.drain())  # what came in after the last frame
        if session.listener is not None:
            app.model.feed_events(session.listener.drain())
    if rc is None:
        rc = 0
    traces = list(dict.fromkeys(app.saved))
    return LiveResult(exit_code if child is not None else rc, app.model.energy_j, app.model.duration_s, summary_lines(app.model, app.carbon), traces,
                      write_error)
