"""``greentop run``: the live view (a Textual app) over a started sampler, and its launcher.

``LiveApp`` only reads: it drains the sampler's rings and the phase listener at ``DRAIN_HZ``
into a ``LiveModel`` and redraws at ``fps``; sampling runs on the sampler's own threads and is
never waited on. ``run_live`` starts the sampler, the listener and the workload, runs the app,
and stops everything when the app exits.
"""

from __future__ import annotations

import math
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Protocol, Sequence

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Log, Static

from greentop.channel import Channel
from greentop.listener import Event
from greentop.sampler import Samples, SamplerHealth
from greentop.tui.chart import PowerChart
from greentop.tui.live import LiveModel

DRAIN_HZ = 20.0
DEFAULT_FPS = 15.0
DEFAULT_WINDOW_S = 60.0
MIN_WINDOW_S = 1.875  # 60 s halved five times
MAX_WINDOW_S = 960.0  # 60 s doubled four times; the model retains this much
HEALTH_HZ = 2.0
PHASE_ROWS = 12
TABLE_EVERY_NS = 500_000_000  # the phase table's figures refresh twice a second (of data time)


class SamplerLike(Protocol):
    def drain(self) -> dict[str, Samples]: ...
    def health(self) -> SamplerHealth: ...


class ListenerLike(Protocol):
    def drain(self) -> list[Event]: ...


class ChildLike(Protocol):
    def poll(self) -> int | None: ...


def _w(power_w: float) -> str:
    if math.isnan(power_w):
        return "- W"
    if abs(power_w) >= 1000:
        return f"{power_w / 1000:.2f} kW"
    return f"{power_w:.1f} W"


def _energy(energy_j: float) -> str:
    return f"{energy_j:.1f} J ({energy_j / 3600:.4f} Wh)"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


class ConfirmQuit(ModalScreen[bool]):
    """Asked when ``q`` is pressed while the workload still runs."""

    DEFAULT_CSS = """
    ConfirmQuit { align: center middle; }
    ConfirmQuit > Static { width: 60; padding: 1 2; border: thick $warning; background: $surface; }
    """
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]

    def compose(self) -> ComposeResult:
        yield Static("The workload is still running.\nQuit and stop it? [b]y[/b] / [b]n[/b]", id="confirm")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


HELP_TEXT = """[b]greentop live view[/b]

  q      quit (asks while the workload runs)
  p      pause / resume the display (sampling goes on)
  +      zoom in: halve the time window
  -      zoom out: double the time window
  ?      this help

Power is each primary domain's energy differenced on a 10 ms grid;
"now" is the last 0.5 s, "avg" the whole run, "peak" the highest 100 ms.
Channels marked (estimated) are modelled, not measured.

Press any key to close."""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 72; padding: 1 2; border: thick $primary; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP_TEXT, id="help")

    def on_key(self) -> None:
        self.dismiss(None)


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
    #charts { height: 1fr; }
    #charts > PowerChart { height: 9; }
    #bottom { height: auto; max-height: 16; layout: horizontal; }
    #phases { width: 2fr; height: auto; max-height: 14; }
    #side { width: 1fr; height: auto; }
    #energy { height: 3; }
    #workload { height: 2; }
    #health { height: 3; }
    #output { height: 8; }
    """
    BINDINGS = [
        Binding("q", "quit_app", "quit"),
        Binding("p", "toggle_pause", "pause"),
        Binding("plus,equals_sign", "zoom(0.5)", "zoom in", key_display="+"),
        Binding("minus", "zoom(2.0)", "zoom out", key_display="-"),
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
    ) -> None:
        super().__init__()
        self.sampler, self.listener, self.child, self.output = sampler, listener, child, output
        self.command = list(command)
        self.model = LiveModel(channels, retain_s=MAX_WINDOW_S)
        self.window_s = window_s
        self.fps = fps
        self.paused = False
        self.exit_code: int | None = None
        self._use_timers = timers
        self._cpu_last = _Cpu.now()
        self._cpu_pct = math.nan
        self._health_line = ""
        n = len(self.model.channels)
        self._chart_names = [c.domain for c in self.model.channels] + ["total"]
        self._estimated = [c.estimated for c in self.model.channels] + [any(c.estimated for c in self.model.channels)]
        self._n = n
        self._texts: dict[str, str] = {}
        self._table_keys: list[tuple[str, bool]] = []
        self._table_t_ns = 0

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="charts"):
            for i, name in enumerate(self._chart_names):
                yield PowerChart(name, estimated=self._estimated[i], id=f"chart-{i}")
        with Vertical(id="bottom"):
            yield DataTable(id="phases", cursor_type="none", zebra_stripes=True)
            with Vertical(id="side"):
                yield Static(id="energy")
                yield Static(id="workload")
                yield Static(id="health")
        if self.output is not None:
            yield Log(id="output", max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#phases", DataTable)
        table.add_columns("phase", "n", "time", "energy J", "avg W")
        self.sub_title = " ".join(self.command) if self.command else "watching the machine"
        self._update_health()
        if self._use_timers:
            self.set_interval(1 / DRAIN_HZ, self.drain_now)
            self.set_interval(1 / self.fps, self.refresh_view)
            self.set_interval(1 / HEALTH_HZ, self._update_health)

    # -- data ------------------------------------------------------------------------------------

    def drain_now(self) -> None:
        """Move what the sampler and the listener hold into the model (cheap, never blocks)."""
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
            if lines:
                self.query_one("#output", Log).write_lines(lines)
        if self.child is not None and self.exit_code is None:
            self.exit_code = self.child.poll()

    def refresh_view(self) -> None:
        """Redraw charts, titles, energy, phases and the workload's state (charts frozen when paused)."""
        now = self.model.t_ns
        if not self.paused and now is not None:
            window_ns = int(self.window_s * 1e9)
            t0 = now - window_ns
            for i in range(self._n + 1):
                chart = self.query_one(f"#chart-{i}", PowerChart)
                st = self.model.stats(i)
                chart.title = f"{self._chart_names[i]}   {_w(st.now_w)} now · {_w(st.avg_w)} avg · {_w(st.peak_w)} peak"
                t, p = self.model.series(i, t0)
                if t.size:
                    chart.set_data(t, p, t0, now)
            self._update_phases()
        self._update_text()

    def _update_phases(self) -> None:
        """Rebuild the table when its rows change; otherwise rewrite its cells at most every
        ``TABLE_EVERY_NS`` (a DataTable rebuild re-lays out the screen: too costly per frame)."""
        rows, _current = self.model.phases()
        rows = rows[-PHASE_ROWS:]
        table = self.query_one("#phases", DataTable)
        now = self.model.t_ns or 0
        keys = [(r.path, r.open) for r in rows]
        # Fixed widths: cells are rewritten in place without re-measuring their columns, so a
        # count that grows from 9 to 10 must already have room.
        cells = [
            ["  " * r.depth + r.path.rsplit("/", 1)[-1] + (" *" if r.open else ""), f"{r.count:>6}", f"{_duration(r.duration_s):>8}",
             f"{r.energy_j:>10.1f}", f"{r.avg_w:>7.1f}"]
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

    def _update_text(self) -> None:
        _rows, current = self.model.phases()
        e = self.model.energy_j
        lines = [f"[b]run[/b] {_energy(e)} in {_duration(self.model.duration_s)}"]
        if current is not None:
            lines.append(f"[b]phase[/b] {current.path}: {_energy(current.energy_j)} in {_duration(current.duration_s)}")
        else:
            lines.append("[b]phase[/b] -")
        if any(self._estimated):
            lines.append("[i]includes estimated channels[/i]")
        self._set_text("#energy", "\n".join(lines))
        if self.child is None:
            state = "no workload: watching the machine"
        elif self.exit_code is None:
            state = "workload [b]running[/b]"
        else:
            state = f"workload [b]exited {self.exit_code}[/b]"
        view = f"window {self.window_s:g} s" + ("  [reverse] PAUSED [/reverse]" if self.paused else "")
        self._set_text("#workload", f"{state}\n{view}")
        self._set_text("#health", self._health_line)

    def _set_text(self, selector: str, text: str) -> None:
        """Update a Static only when its text changes, without a re-layout (fixed heights)."""
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            self.query_one(selector, Static).update(text, layout=False)

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
            rates.append(f"{name} {achieved:.0f}/{lane.rate_hz:g} Hz")
        cpu = "-" if math.isnan(self._cpu_pct) else f"{self._cpu_pct:.1f}%"
        stale = self.model.stale()
        self._health_line = (f"[b]greentop[/b] {', '.join(rates)}\noverruns {h.overruns}, read errors {h.read_errors}, "
                             f"own CPU {cpu}" + (f"\n[b]stale:[/b] {', '.join(stale)}" if stale else ""))

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
        self.refresh_view()

    def action_zoom(self, factor: float) -> None:
        self.window_s = min(max(self.window_s * factor, MIN_WINDOW_S), MAX_WINDOW_S)
        self.refresh_view()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


# -- the launcher ----------------------------------------------------------------------------------


def _pump_output(stream: IO[bytes], out: "queue.SimpleQueue[str]") -> None:
    for line in iter(stream.readline, b""):
        out.put(line.decode("utf-8", "replace").rstrip("\n"))
    stream.close()


def _stop_child(child: subprocess.Popen[bytes], grace_s: float = 3.0) -> int:
    """SIGINT, then SIGTERM, then SIGKILL to the workload's process group, ``grace_s`` apart."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if child.poll() is not None:
            break
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
    rc = child.wait()
    return rc if rc >= 0 else 128 - rc


@dataclass
class LiveResult:
    exit_code: int
    energy_j: float
    duration_s: float
    summary: list[str]


def run_live(cmd: Sequence[str], channels: Sequence[Channel], rate_hz: float, slow_rate_hz: float,
             window_s: float = DEFAULT_WINDOW_S, **app_kwargs: Any) -> LiveResult:
    """Start the sampler (and the listener and ``cmd`` when given), show the live view, clean up."""
    from greentop.listener import EventListener
    from greentop.sampler import Sampler

    sampler = Sampler(list(channels), rate_hz=rate_hz, slow_rate_hz=slow_rate_hz)
    listener = EventListener() if cmd else None
    child: subprocess.Popen[bytes] | None = None
    output: queue.SimpleQueue[str] | None = None
    sampler.start()
    try:
        if listener is not None:
            listener.start()
            output = queue.SimpleQueue()
            # Its own session: the terminal belongs to the view; its output goes to the output pane.
            child = subprocess.Popen(list(cmd), env=os.environ | listener.env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            assert child.stdout is not None
            threading.Thread(target=_pump_output, args=(child.stdout, output), name="greentop-output", daemon=True).start()
        app = LiveApp(sampler, channels, listener=listener, child=child, command=cmd, output=output,
                      window_s=window_s, **app_kwargs)
        rc = app.run()
    finally:
        exit_code = _stop_child(child) if child is not None else 0
        sampler.stop()
        if listener is not None:
            listener.stop()
    app.model.feed(sampler.drain())  # what came in after the last frame
    if listener is not None:
        app.model.feed_events(listener.drain())
    if rc is None:
        rc = 0
    return LiveResult(exit_code if child is not None else rc, app.model.energy_j, app.model.duration_s, summary_lines(app.model))


def summary_lines(model: LiveModel) -> list[str]:
    lines = [f"total: {_energy(model.energy_j)} over {_duration(model.duration_s)}"
             + (" (includes estimates)" if any(c.estimated for c in model.channels) else "")]
    rows, _ = model.phases()
    for r in rows:
        lines.append(f"  {'  ' * r.depth}{r.path.rsplit('/', 1)[-1]}: {r.count}x, {_duration(r.duration_s)}, "
                     f"{r.energy_j:.1f} J, {r.avg_w:.1f} W avg")
    return lines
