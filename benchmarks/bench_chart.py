"""What drawing the power strip charts costs, against naive ways of drawing them.

    python benchmarks/bench_chart.py [--quick] [--live-s 5] [--out FILE.json]

Data: 8 channels of one hour at 1 kHz (3.6 M samples each, one shared int64 ns time base, like
one sampler lane): a slow wave, noise, and one-sample spikes. Every chart is 120 cells x 8 rows.
Two windows: the whole hour (3.6 M samples per channel feed each frame) and the last 60 s (60 k).

``decimate_render`` (ms per frame for all 8 channels, median of repeats, p10/p90):

- ``greentop``:          ``decimate_minmax`` to 240 dot columns + ``render_braille``.
- ``greentop_blocks``:   ``decimate_minmax`` to 120 columns + ``render_blocks``.
- ``column_mask_loop``:  naive: per column ``v[(t >= a) & (t < b)]`` then min/max, and a
                         per-cell Python loop packing braille dots. O(samples x columns).
- ``column_slice_loop``: per column ``searchsorted`` + slice ``min()``/``max()`` in a Python
                         loop; same Python packing. What a careful loop gets.
- ``every_sample_numpy``: plot every sample (one dot per sample, vectorised), the way a generic
                         plotting library draws a line without decimation; no min-max spans.
- ``every_sample_loop``: a Python loop over every sample setting its dot (drawille/plotext style).
                         On the 1 h window it runs on 1 channel and is scaled by 8
                         (``extrapolated_from_channels``: 1), since 28.8 M iterations take minutes.

``decimate_only`` splits the greentop figure into decimation and rendering.

``widget_frame`` (ms per frame for 8 ``PowerChart`` widgets 128 x 10 in a headless Textual app):
a new title and ``set_data`` with the window 50 ms later on all 8, then ``render_lines`` of every
row, the work the compositor asks of the widgets each frame, for the ``strips`` path (``render_line`` from cached Strips, what PowerChart
does), the ``text`` path (``render()`` returns a rich Text that Textual turns into Strips), and
``floor``: Textual's own per-widget cost, the cached Strips returned again after ``refresh()``.

``live_cpu``: the headless app refreshing 8 charts at 20 fps for ``--live-s`` seconds: process
CPU time / wall time (% of one core), and frames actually drawn. Headless means no terminal
output is written, so a real terminal adds its write cost on top. ``idle``: the same app with
the charts drawn once and no timer, what Textual costs at rest.

One JSON object per line on stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))  # for _machine

from _machine import machine_info as _machine_info  # noqa: E402

import textual  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.geometry import Region  # noqa: E402
from textual.widget import Widget  # noqa: E402

from greentop.tui.chart import PowerChart, decimate_minmax, render_blocks, render_braille  # noqa: E402

CHANNELS = 8
RATE_HZ = 1000
HOUR_S = 3600
CELLS = 120  # chart width in cells
ROWS = 8  # chart height in rows
Y_MAX_W = 800.0
NS = 1_000_000_000
BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))

RESULTS: list[dict[str, Any]] = []


def emit(rec: dict[str, Any]) -> None:
    RESULTS.append(rec)
    print(json.dumps(rec), flush=True)


def machine_info() -> dict[str, Any]:
    return {"bench": "machine", **_machine_info(), "numpy": np.__version__, "textual": textual.__version__}


def make_data(seconds: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """One shared 1 kHz time base (ns, with sampler-like jitter) and 8 power series (W)."""
    rng = np.random.default_rng(42)
    n = seconds * RATE_HZ
    t_ns = np.arange(n, dtype=np.int64) * (NS // RATE_HZ) + rng.integers(0, 20_000, n)
    t_ns.sort()
    t_s = t_ns / NS
    series = []
    for c in range(CHANNELS):
        p = 300.0 + 200.0 * np.sin(2 * np.pi * t_s / (300 + 40 * c)) + rng.normal(0, 10, n)
        p[rng.integers(0, n, 50)] = 700.0  # one-sample spikes
        series.append(np.clip(p, 0, None))
    return t_ns, series


# ---- baselines --------------------------------------------------------------------------------


def pack_python(grid: list[list[bool]], rows: int, ncols: int) -> list[str]:
    """Boolean dot grid (top row first) -> braille strings, one cell at a time in Python."""
    out = []
    for r in range(rows):
        line = []
        for cell in range((ncols + 1) // 2):
            code = 0
            for j in range(4):
                g = grid[4 * r + j]
                for s in range(2):
                    c = 2 * cell + s
                    if c < ncols and g[c]:
                        code |= BITS[j][s]
            line.append(chr(0x2800 + code) if code else " ")
        out.append("".join(line))
    return out


def spans_python(mins: list[float], maxs: list[float], rows: int) -> list[str]:
    dots = 4 * rows
    grid = [[False] * len(mins) for _ in range(dots)]
    for c, (a, b) in enumerate(zip(mins, maxs)):
        if a != a:  # NaN
            continue
        lo = min(max(int(a / Y_MAX_W * dots), 0), dots - 1)
        hi = min(max(int(b / Y_MAX_W * dots), 0), dots - 1)
        for d in range(lo, hi + 1):
            grid[dots - 1 - d][c] = True
    return pack_python(grid, rows, len(mins))


def edges(t0: int, t1: int, cols: int) -> list[int]:
    return [t0 + (k * (t1 - t0)) // cols for k in range(cols + 1)]


def column_mask_loop(t: np.ndarray, v: np.ndarray, t0: int, t1: int) -> list[str]:
    cols = 2 * CELLS
    e = edges(t0, t1, cols)
    mins, maxs = [], []
    for k in range(cols):
        seg = v[(t >= e[k]) & (t < e[k + 1])]
        mins.append(float(seg.min()) if seg.size else float("nan"))
        maxs.append(float(seg.max()) if seg.size else float("nan"))
    return spans_python(mins, maxs, ROWS)


def column_slice_loop(t: np.ndarray, v: np.ndarray, t0: int, t1: int) -> list[str]:
    cols = 2 * CELLS
    e = edges(t0, t1, cols)
    mins, maxs = [], []
    for k in range(cols):
        a, b = np.searchsorted(t, [e[k], e[k + 1]])
        seg = v[a:b]
        mins.append(float(seg.min()) if seg.size else float("nan"))
        maxs.append(float(seg.max()) if seg.size else float("nan"))
    return spans_python(mins, maxs, ROWS)


def pack_numpy(grid: np.ndarray, rows: int) -> list[str]:
    dots, cols = grid.shape
    if cols % 2:
        grid = np.concatenate([grid, np.zeros((dots, 1), bool)], axis=1)
    cells = grid.reshape(rows, 4, grid.shape[1] // 2, 2).astype(np.uint32)
    code = np.einsum("rjcs,js->rc", cells, np.array(BITS, dtype=np.uint32))
    code = np.where(code == 0, 32, 0x2800 + code).astype("<u4")
    return np.ascontiguousarray(code).view(f"<U{code.shape[1]}").ravel().tolist()


def every_sample_numpy(t: np.ndarray, v: np.ndarray, t0: int, t1: int) -> list[str]:
    cols, dots = 2 * CELLS, 4 * ROWS
    a, b = np.searchsorted(t, [t0, t1])
    c = ((t[a:b] - t0) * cols) // (t1 - t0)
    d = np.clip((v[a:b] / Y_MAX_W * dots).astype(np.int64), 0, dots - 1)
    grid = np.zeros((dots, cols), bool)
    grid[dots - 1 - d, c] = True
    return pack_numpy(grid, ROWS)


def every_sample_loop(t: np.ndarray, v: np.ndarray, t0: int, t1: int) -> list[str]:
    cols, dots = 2 * CELLS, 4 * ROWS
    a, b = np.searchsorted(t, [t0, t1])
    grid = [[False] * cols for _ in range(dots)]
    span = t1 - t0
    for ti, vi in zip(t[a:b].tolist(), v[a:b].tolist()):
        d = min(max(int(vi / Y_MAX_W * dots), 0), dots - 1)
        grid[dots - 1 - d][(ti - t0) * cols // span] = True
    return pack_python(grid, ROWS, cols)


def greentop_braille(t: np.ndarray, v: np.ndarray, t0: int, t1: int) -> list[str]:
    mins, maxs = decimate_minmax(t, v, t0, t1, 2 * CELLS, hold=False)
    return render_braille(mins, maxs, ROWS, 0.0, Y_MAX_W)


def greentop_blocks(t: np.ndarray, v: np.ndarray, t0: int, t1: int) -> list[str]:
    mins, maxs = decimate_minmax(t, v, t0, t1, CELLS, hold=False)
    return render_blocks(mins, maxs, ROWS, 0.0, Y_MAX_W)


def greentop_decimate(t: np.ndarray, v: np.ndarray, t0: int, t1: int) -> Any:
    return decimate_minmax(t, v, t0, t1, 2 * CELLS)


# ---- timing -----------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeats: int, budget_s: float) -> list[float]:
    """Seconds per call: a warm-up call (unless it took over 1 s), then up to ``repeats`` calls
    while the budget lasts (at least one)."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    if first > 1.0:
        return [first]
    out: list[float] = []
    start = time.perf_counter()
    while len(out) < repeats and (not out or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def stats_ms(xs: list[float]) -> dict[str, Any]:
    ms = sorted(x * 1e3 for x in xs)

    def q(p: float) -> float:
        return ms[min(len(ms) - 1, int(p * len(ms)))]

    return {"median_ms": round(statistics.median(ms), 3), "p10_ms": round(q(0.1), 3),
            "p90_ms": round(q(0.9), 3), "repeats": len(ms)}


def bench_decimate_render(t: np.ndarray, series: list[np.ndarray], quick: bool) -> None:
    t_end = int(t[-1]) + 1
    windows = {"1h": (int(t[0]), t_end), "60s": (t_end - 60 * NS, t_end)}
    methods: dict[str, Callable[[np.ndarray, np.ndarray, int, int], Any]] = {
        "greentop": greentop_braille,
        "greentop_blocks": greentop_blocks,
        "column_slice_loop": column_slice_loop,
        "every_sample_numpy": every_sample_numpy,
        "column_mask_loop": column_mask_loop,
        "every_sample_loop": every_sample_loop,
    }
    for wname, (t0, t1) in windows.items():
        a, b = np.searchsorted(t, [t0, t1])
        # The baselines draw what greentop draws (hold=False, same scale): check, don't assume.
        ref = greentop_braille(t, series[0], t0, t1)
        assert column_slice_loop(t, series[0], t0, t1) == ref
        for mname, fn in methods.items():
            chans = series
            if mname == "every_sample_loop" and wname == "1h":
                chans = series[:1]
            slow = mname in ("column_mask_loop", "every_sample_loop") and wname == "1h"
            repeats = 3 if slow else (5 if quick else 21)

            def frame(fn: Any = fn, chans: list[np.ndarray] = chans) -> None:
                for v in chans:
                    fn(t, v, t0, t1)

            xs = timed(frame, repeats, budget_s=3.0 if quick else 10.0)
            scale = CHANNELS / len(chans)
            rec = {"bench": "decimate_render", "window": wname, "method": mname,
                   "channels": CHANNELS, "cells": CELLS, "rows": ROWS,
                   "samples_per_channel": int(b - a), **stats_ms([x * scale for x in xs])}
            if scale != 1:
                rec["extrapolated_from_channels"] = len(chans)
            emit(rec)
        for part, fn2 in (("decimate", greentop_decimate),):
            xs = timed(lambda: [fn2(t, v, t0, t1) for v in series], 5 if quick else 21, 10.0)
            emit({"bench": "decimate_only", "window": wname, "method": "greentop", "part": part,
                  "channels": CHANNELS, "columns": 2 * CELLS, **stats_ms(xs)})
        mins, maxs = decimate_minmax(t, series[0], t0, t1, 2 * CELLS)
        xs = timed(lambda: [render_braille(mins, maxs, ROWS, 0.0, Y_MAX_W) for _ in series],
                   5 if quick else 51, 5.0)
        emit({"bench": "decimate_only", "window": wname, "method": "greentop", "part": "render",
              "channels": CHANNELS, "columns": 2 * CELLS, **stats_ms(xs)})


# ---- widget -------------------------------------------------------------------------------------


class TextPowerChart(PowerChart):
    """The same chart painted through ``render()`` -> rich Text, Textual's default path."""

    render_line = Widget.render_line

    def _invalidate(self) -> None:
        self.refresh()  # lazy: render() decimates at paint time, once


class FloorChart(PowerChart):
    """Textual's own cost per frame: after the first draw, ``set_data`` only calls ``refresh()``
    and the cached Strips are returned again, so nothing of greentop's runs."""

    def set_data(self, t_ns: Any, power_w: Any, t0_ns: int, t1_ns: int, **kw: Any) -> None:
        if self._strips is None:
            super().set_data(t_ns, power_w, t0_ns, t1_ns, **kw)
        else:
            self.refresh()  # the whole widget, as if every row had changed


PATHS: dict[str, type[PowerChart]] = {"strips": PowerChart, "text": TextPowerChart,
                                      "floor": FloorChart}


class ChartsApp(App[None]):
    CSS = "PowerChart { width: 128; height: 10; }"

    def __init__(self, kind: type[PowerChart]) -> None:
        super().__init__()
        self.kind = kind

    def compose(self) -> ComposeResult:
        for c in range(CHANNELS):
            yield self.kind(f"ch-{c}  300 W now · 290 W avg · 700 W peak", id=f"c{c}")


def bench_widget(t: np.ndarray, series: list[np.ndarray], quick: bool, live_s: float) -> None:
    t_end = int(t[-1]) + 1
    windows = {"1h": (int(t[0]), t_end), "60s": (t_end - 60 * NS, t_end)}

    async def frames(path: str, wname: str) -> None:
        kind = PATHS[path]
        t0, t1 = windows[wname]
        app = ChartsApp(kind)
        async with app.run_test(size=(130, 10 * CHANNELS + 2)) as pilot:
            await pilot.pause()
            charts = list(app.query(PowerChart))
            assert all(ch.size.width == 128 and ch.size.height == 10 for ch in charts)

            shift = [0]

            def frame() -> None:
                # A new title and a window 50 ms later each frame, as in a live view; then every
                # row is asked for, as the compositor does after a refresh.
                shift[0] = (shift[0] + NS // 20) % (30 * NS)
                for c, (ch, v) in enumerate(zip(charts, series)):
                    if kind is not FloorChart:
                        ch.title = f"ch-{c}  {shift[0] // 1_000_000} W now"
                    ch.set_data(t, v, t0 - shift[0], t1 - shift[0])
                    ch.render_lines(Region(0, 0, ch.size.width, ch.size.height))

            xs = timed(frame, 5 if quick else 31, 10.0)
            emit({"bench": "widget_frame", "window": wname,
                  "path": path, "channels": CHANNELS, "widget": "128x10", **stats_ms(xs)})

    async def live(path: str, wname: str) -> None:
        kind = PATHS.get(path, PowerChart)
        t0, t1 = windows[wname]
        app = ChartsApp(kind)
        drawn = 0
        async with app.run_test(size=(130, 10 * CHANNELS + 2)) as pilot:
            await pilot.pause()
            charts = list(app.query(PowerChart))
            orig = charts[0].render_line

            def counting(y: int) -> Any:
                nonlocal drawn
                if y == 0:
                    drawn += 1
                return orig(y)

            charts[0].render_line = counting  # type: ignore[method-assign]
            shift = [0]

            def tick() -> None:
                # Slide the window by 50 ms per frame, like a live view, and update each title
                # with the newest reading as the app will (the Floor variant ignores titles).
                shift[0] = (shift[0] + NS // 20) % (30 * NS)
                now = t1 - shift[0]
                i = max(0, int(np.searchsorted(t, now)) - 1)
                for c, (ch, v) in enumerate(zip(charts, series)):
                    if kind is not FloorChart:
                        ch.title = f"ch-{c}  {v[i]:.0f} W now · 290 W avg · 700 W peak"
                    ch.set_data(t, v, t0 - shift[0], now)

            if path == "idle":
                tick()  # drawn once, then left alone: what the app costs at rest
            else:
                app.set_interval(1 / 20, tick)
            c0, w0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(live_s)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        emit({"bench": "live_cpu", "window": wname,
              "path": path, "fps_target": 0 if path == "idle" else 20,
              "channels": CHANNELS, "wall_s": round(wall, 2),
              "cpu_pct_one_core": round(100 * cpu / wall, 1),
              "frames_drawn": drawn, "fps_drawn": round(drawn / wall, 1)})

    for wname in windows:
        for path in PATHS:
            asyncio.run(frames(path, wname))
    asyncio.run(live("idle", "60s"))
    for wname in ("60s", "1h"):
        for path in PATHS:
            asyncio.run(live(path, wname))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--live-s", type=float, default=5.0, help="seconds per live 20 fps run")
    ap.add_argument("--out", type=Path, help="also write all records to this JSON file")
    args = ap.parse_args()
    emit(machine_info())
    t, series = make_data(HOUR_S)
    bench_decimate_render(t, series, args.quick)
    bench_widget(t, series, args.quick, args.live_s)
    if args.out:
        args.out.write_text(json.dumps(RESULTS, indent=1) + "\n")


if __name__ == "__main__":
    main()
