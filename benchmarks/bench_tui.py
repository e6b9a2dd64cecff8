"""Benchmark the live view's display cost next to the compiled sampler it reads, side by side.

    python benchmarks/bench_tui.py [--seconds 20] [--fps 20] [--size 160x50] [--writer-hz 100]
                                   [--modes sink,headless] [--windows 60,1.875] [--scroll shift,rebuild]
                                   [--replay]
                                   [--out FILE.json]

Eight "fake sysfs" energy counters (files holding a fixed-width decimal uJ value, rewritten in
place by a separate writer process at ``--writer-hz``; 0 = static values) are sampled by the
real ``greentop.sampler.Sampler`` at 1 kHz. Conditions, each for ``--seconds``, in one process
one after the other:

- ``sampler_only``: the sampler drained at 20 Hz by a plain ``time.sleep`` loop, no UI: the
  sampler's achieved rate, missed/late ticks and overruns without a display (the baseline).
- ``empty_app``:    an empty Textual app (one Static rewritten by a timer at ``--fps``), no
  sampler: Textual's own floor at that frame rate.
- ``live``:         ``LiveApp`` (8 charts + total, phase table, status panes) at ``--fps`` over the
  running sampler, as ``run_live`` builds it (no workload, no listener, no recording), once per
  time window of ``--windows``: at the default 60 s a chart changes only when its bins move by a
  dot column (~5 times a second), at 1.875 s every frame.

Each app condition runs under one or both drivers (``--modes``):

- ``sink``:     a driver that says it is not headless, so Textual renders every screen update to
  terminal escape sequences as it would for a real terminal, and writes them to a byte counter
  (nothing reaches a terminal: the terminal emulator's own cost is not included).
- ``headless``: Textual's ``HeadlessDriver`` (``App.run_test``-style): the compositor runs but
  no escape sequences are produced: a lower bound.

CPU is per thread from ``/proc/self/task/<tid>/stat`` (10 ms ticks) and for the whole process
from ``os.times()``; ``ui_cpu_pct`` = process CPU minus the CPU of the sampler's lane threads
(their ``/proc`` task stats over the same window; ``LaneHealth.cpu_s`` is only known once
stopped), in % of one core. The drain into ``LiveModel`` runs on the UI thread and counts as UI. ``refresh_fps`` counts ``refresh_view``
calls (the app's frame timer), ``display_fps`` counts screen updates Textual actually composed and
handed to the driver. Sampler figures are deltas over the measured window (``health()`` before
and after). ``other_load_cores`` / ``steal_cores``: CPU used by other processes (the writer
included) and stolen by the hypervisor meanwhile.

``--replay`` also runs ``benchmarks/bench_replay.py`` (time to the first screen of a one-hour
1 kHz 8-channel trace) in a subprocess and re-emits its records.

One JSON object per line on stdout; nothing is asserted, bars are reported as pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "benchmarks"))  # for _machine

from _machine import file_channels, machine_info  # noqa: E402

import textual  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.drivers.headless_driver import HeadlessDriver  # noqa: E402
from textual.widgets import Static  # noqa: E402

from greentop.channel import Channel  # noqa: E402
from greentop.sampler import Sampler, SamplerHealth  # noqa: E402
from greentop.tui.app import LiveApp  # noqa: E402

N_CHANNELS = 8
RATE_HZ = 1000.0
DRAIN_HZ = 20.0
WIDTH = 20  # fixed-width values: an in-place rewrite never leaves a shorter tail behind
BAR_UI_PCT = 15.0

RESULTS: list[dict[str, Any]] = []


def emit(rec: dict[str, Any]) -> dict[str, Any]:
    RESULTS.append(rec)
    print(json.dumps(rec), flush=True)
    return rec


# ---------------------------------------------------------------- fake sysfs


def make_channels(folder: Path) -> list[Channel]:
    return file_channels(folder, N_CHANNELS, WIDTH)


def writer_main(paths: list[str], hz: float, stop: Any) -> None:
    """Advance each counter as if domain i drew 10 + 5 i W (plus a slow wobble), ``hz`` times a second."""
    fds = [os.open(p, os.O_WRONLY) for p in paths]
    e = [123456789.0 + i * 1000 for i in range(len(paths))]
    period = 1.0 / hz
    t_next = time.monotonic()
    k = 0
    while not stop.is_set():
        k += 1
        for i, fd in enumerate(fds):
            w = 10.0 + 5.0 * i + 5.0 * ((k // int(hz)) % 3)
            e[i] += w * period * 1e6
            os.pwrite(fd, f"{int(e[i]):0{WIDTH}d}\n".encode(), 0)
        t_next += period
        d = t_next - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            t_next = time.monotonic()
    for fd in fds:
        os.close(fd)


# ---------------------------------------------------------------- measuring


def _proc_stat() -> tuple[int, int]:
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7] if len(v) > 7 else 0


TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[int, float]:
    """tid -> CPU seconds (user + system) of every thread of this process."""
    out: dict[int, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


class Window:
    """Wall, process CPU, per-thread CPU, machine load between ``start()`` and ``stop()``."""

    def start(self) -> None:
        self.busy0, self.steal0 = _proc_stat()
        t = os.times()
        self.cpu0 = t.user + t.system
        self.threads0 = thread_cpu()
        self.wall0 = time.monotonic()

    def stop(self) -> None:
        self.wall = time.monotonic() - self.wall0
        t = os.times()
        self.cpu = t.user + t.system - self.cpu0
        th = thread_cpu()
        self.threads = {tid: c - self.threads0.get(tid, 0.0) for tid, c in th.items()}
        busy, steal = _proc_stat()
        self.other_cores = max((busy - self.busy0) / TICK - self.cpu, 0.0) / self.wall
        self.steal_cores = (steal - self.steal0) / TICK / self.wall

    def pct(self, cpu_s: float) -> float:
        return round(100 * cpu_s / self.wall, 2)


def sampler_figures(h0: SamplerHealth, h1: SamplerHealth, wall: float) -> dict[str, Any]:
    a, b = h0.lanes["fast"], h1.lanes["fast"]
    ticks = b.ticks - a.ticks
    elapsed = b.elapsed_s - a.elapsed_s
    return {
        "rate_hz": RATE_HZ,
        "achieved_hz": round(ticks / elapsed, 1) if elapsed > 0 else 0.0,
        "ticks": ticks, "expected_ticks": int(round(elapsed * RATE_HZ)),
        "missed": b.missed - a.missed, "late": b.late - a.late,
        "lateness_max_us": round(b.lateness_max_ns / 1000, 1),
        "overruns": h1.overruns - h0.overruns, "read_errors": h1.read_errors - h0.read_errors,
        "read_cost_mean_us": round(sum(c.mean_cost_ns for c in h1.channels.values()) / len(h1.channels) / 1000, 2),
    }


def sampler_tids(s: Sampler) -> set[int]:
    return {t.native_id for t in s._threads if t.native_id is not None}  # noqa: SLF001 -- measuring


# ---------------------------------------------------------------- drivers


class SinkDriver(HeadlessDriver):
    """Not headless as far as the app knows: every update is rendered to escape sequences and
    written here, where only its size is kept."""

    bytes_written = 0
    writes = 0

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        SinkDriver.bytes_written += len(data)
        SinkDriver.writes += 1

    def flush(self) -> None:
        pass


async def run_app(app: App[Any], mode: str, size: tuple[int, int], seconds: float,
                  during: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run ``app`` under ``mode``'s driver for ``seconds`` after it mounted; count displays."""
    displays = [0]
    orig_display = app._display  # noqa: SLF001

    def counting_display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            displays[0] += 1
        orig_display(screen, renderable)

    app._display = counting_display  # type: ignore[method-assign]  # noqa: SLF001
    SinkDriver.bytes_written = SinkDriver.writes = 0
    if mode == "sink":
        app.driver_class = SinkDriver
    ready = asyncio.Event()
    app.call_after_refresh(ready.set)  # type: ignore[arg-type]
    task = asyncio.create_task(app.run_async(headless=(mode == "headless"), size=size))
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(1.0)  # let the first frames and layouts settle
    win = Window()
    d0, b0 = displays[0], SinkDriver.bytes_written
    marks: dict[str, Any] = {}
    if during is not None:
        marks["before"] = during()
    win.start()
    await asyncio.sleep(seconds)
    win.stop()
    if during is not None:
        marks["after"] = during()
    nd, nb = displays[0] - d0, SinkDriver.bytes_written - b0
    app.exit()
    await asyncio.wait_for(task, 30)
    return {"win": win, "displays": nd, "bytes": nb, "marks": marks}


class EmptyApp(App[None]):
    """Textual's floor: one Static rewritten each frame."""

    def __init__(self, fps: float) -> None:
        super().__init__()
        self.fps, self.n = fps, 0

    def compose(self) -> ComposeResult:
        yield Static("0", id="s")

    def on_mount(self) -> None:
        self.set_interval(1 / self.fps, self.tick)

    def tick(self) -> None:
        self.n += 1
        self.query_one("#s", Static).update(str(self.n))


# ---------------------------------------------------------------- conditions


def bench_sampler_only(chans: list[Channel], seconds: float) -> None:
    s = Sampler(chans, rate_hz=RATE_HZ).start()
    tids = sampler_tids(s)
    time.sleep(1.0)
    s.drain()
    win = Window()
    h0 = s.health()
    win.start()
    t_end = time.monotonic() + seconds
    nxt = time.monotonic()
    n = 0
    while True:
        nxt += 1 / DRAIN_HZ
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
        s.drain()
        n += 1
        if time.monotonic() >= t_end:
            break
    win.stop()
    h1 = s.health()
    s.stop()
    lane_cpu = s.health().lanes["fast"].cpu_s
    samp_thread = sum(win.threads.get(t, 0.0) for t in tids)
    emit({"bench": "tui_live", "case": "sampler_only", "mode": "-", "wall_s": round(win.wall, 2),
          "drains": n, "process_cpu_pct": win.pct(win.cpu), "sampler_thread_cpu_pct": win.pct(samp_thread),
          "sampler_lane_cpu_s_total": round(lane_cpu, 3), "main_thread_cpu_pct": win.pct(win.threads.get(os.getpid(), 0.0)),
          "ui_cpu_pct": win.pct(max(win.cpu - samp_thread, 0.0)),
          "sampler": sampler_figures(h0, h1, win.wall),
          "other_load_cores": round(win.other_cores, 2), "steal_cores": round(win.steal_cores, 2)})


def bench_empty(mode: str, fps: float, size: tuple[int, int], seconds: float) -> None:
    app = EmptyApp(fps)
    r = asyncio.run(run_app(app, mode, size, seconds))
    win: Window = r["win"]
    emit({"bench": "tui_live", "case": "empty_app", "mode": mode, "size": f"{size[0]}x{size[1]}",
          "fps_target": fps, "wall_s": round(win.wall, 2),
          "process_cpu_pct": win.pct(win.cpu), "main_thread_cpu_pct": win.pct(win.threads.get(os.getpid(), 0.0)),
          "ui_cpu_pct": win.pct(win.cpu), "display_fps": round(r["displays"] / win.wall, 1),
          "bytes_per_s": int(r["bytes"] / win.wall), "threads": len(win.threads),
          "other_load_cores": round(win.other_cores, 2), "steal_cores": round(win.steal_cores, 2)})


def bench_live(chans: list[Channel], mode: str, fps: float, size: tuple[int, int], seconds: float,
               profile: bool = False, window_s: float = 60.0, scroll: str = "shift") -> None:
    s = Sampler(chans, rate_hz=RATE_HZ).start()
    tids = sampler_tids(s)
    app = LiveApp(s, chans, fps=fps, window_s=window_s)
    refreshes = [0]
    frame_s: list[float] = []
    orig_refresh = app.refresh_view

    def counting_refresh() -> None:
        t0 = time.perf_counter()
        orig_refresh()
        frame_s.append(time.perf_counter() - t0)
        refreshes[0] += 1

    app.refresh_view = counting_refresh  # type: ignore[method-assign]
    drains_s: list[float] = []
    orig_drain = app.drain_now

    def timed_drain() -> None:
        t0 = time.perf_counter()
        orig_drain()
        drains_s.append(time.perf_counter() - t0)

    app.drain_now = timed_drain  # type: ignore[method-assign]

    from greentop.tui.chart import PowerChart

    charts = [0]

    def mark() -> tuple[SamplerHealth, int, int]:
        charts[0] = len(app.query(PowerChart))
        for chart in app.query(PowerChart):  # "rebuild": the path before cells were shifted
            chart.append_only = scroll == "shift"
        return s.health(), refreshes[0], len(frame_s)

    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    try:
        r = asyncio.run(run_app(app, mode, size, seconds, during=mark))
    finally:
        if prof is not None:
            prof.disable()
        s.stop()
    if prof is not None:
        import pstats

        print(f"--- profile of the live case ({mode}), by own time ---", file=sys.stderr)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    win: Window = r["win"]
    (h0, f0, i0), (h1, f1, i1) = r["marks"]["before"], r["marks"]["after"]
    samp_thread = sum(win.threads.get(t, 0.0) for t in tids)
    main = win.threads.get(os.getpid(), 0.0)
    other_threads = {tid: c for tid, c in win.threads.items() if tid not in tids and tid != os.getpid() and c > 0}
    ui = max(win.cpu - samp_thread, 0.0)
    fr = sorted(frame_s[i0:i1]) or [0.0]
    dr = sorted(drains_s) or [0.0]
    emit({"bench": "tui_live", "case": "live", "mode": mode, "window_s": window_s, "scroll": scroll, "size": f"{size[0]}x{size[1]}", "fps_target": fps,
          "channels": len(chans), "charts": charts[0], "wall_s": round(win.wall, 2),
          "process_cpu_pct": win.pct(win.cpu), "sampler_thread_cpu_pct": win.pct(samp_thread),
          "main_thread_cpu_pct": win.pct(main), "other_threads_cpu_pct": win.pct(sum(other_threads.values())),
          "ui_cpu_pct": win.pct(ui), "ui_bar_pct": BAR_UI_PCT, "ui_pass": 100 * ui / win.wall <= BAR_UI_PCT,
          "refresh_fps": round((f1 - f0) / win.wall, 1), "display_fps": round(r["displays"] / win.wall, 1),
          "refresh_view_ms": {"p50": round(1e3 * fr[len(fr) // 2], 2), "p90": round(1e3 * fr[int(len(fr) * 0.9)], 2),
                              "max": round(1e3 * fr[-1], 2)},
          "drain_now_ms": {"p50": round(1e3 * dr[len(dr) // 2], 3), "max": round(1e3 * dr[-1], 2)},
          "bytes_per_s": int(r["bytes"] / win.wall),
          "sampler": sampler_figures(h0, h1, win.wall),
          "sampler_pass": (h1.overruns - h0.overruns) == 0,
          "model_duration_s": round(app.model.duration_s, 2),
          "other_load_cores": round(win.other_cores, 2), "steal_cores": round(win.steal_cores, 2)})


def bench_replay(args: argparse.Namespace) -> None:
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_replay.py"), "--size", args.size]
    if args.trace:
        cmd += ["--trace", str(args.trace)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        try:
            emit(json.loads(line))
        except json.JSONDecodeError:
            pass
    if p.returncode:
        emit({"bench": "replay_first_screen", "error": p.stderr[-2000:]})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--size", default="160x50", help="terminal size, COLSxROWS")
    ap.add_argument("--writer-hz", type=float, default=100.0, help="fake counters rewritten this often (0: static)")
    ap.add_argument("--modes", default="sink,headless")
    ap.add_argument("--cases", default="sampler_only,empty_app,live")
    ap.add_argument("--replay", action="store_true", help="also run bench_replay.py")
    ap.add_argument("--trace", type=Path, help="for --replay: the one-hour trace (made when missing)")
    ap.add_argument("--windows", default="60,1.875",
                    help="live view time windows (s): 60 is the default (charts redraw once per new dot column, "
                         "~5 times a second); 1.875, the narrowest, redraws every frame (the worst case)")
    ap.add_argument("--scroll", default="shift",
                    help="charts: shift (cells of a scrolling chart are shifted, the newest drawn) and/or rebuild "
                         "(every cell drawn every frame, the path before): 'shift,rebuild' runs both, interleaved")
    ap.add_argument("--profile", action="store_true", help="cProfile the live case (slows it: figures not comparable)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    modes = [m for m in args.modes.split(",") if m]
    cases = [c for c in args.cases.split(",") if c]
    emit({"bench": "machine", **machine_info(), "textual": textual.__version__, "seconds": args.seconds,
          "writer_hz": args.writer_hz})
    with tempfile.TemporaryDirectory() as tmp:
        chans = make_channels(Path(tmp))
        stop = mp.Event()
        writer = None
        if args.writer_hz > 0:
            writer = mp.get_context("fork").Process(
                target=writer_main, args=([c.reader.path for c in chans], args.writer_hz, stop), daemon=True)
            writer.start()
        try:
            if "sampler_only" in cases:
                bench_sampler_only(chans, args.seconds)
            for mode in modes:
                if "empty_app" in cases:
                    bench_empty(mode, args.fps, size, args.seconds)  # type: ignore[arg-type]
                if "live" in cases:
                    for window_s in (float(w) for w in args.windows.split(",") if w):
                        for scroll in (x for x in args.scroll.split(",") if x):
                            bench_live(chans, mode, args.fps, size, args.seconds, args.profile, window_s,  # type: ignore[arg-type]
                                       scroll)
        finally:
            stop.set()
            if writer is not None:
                writer.join(5)
    if args.replay:
        bench_replay(args)
    if args.out:
        args.out.write_text(json.dumps(RESULTS, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
