"""What a frame of the live view costs at its narrowest window: charts shifted vs rebuilt.

    python benchmarks/bench_scroll.py [--frames 200] [--rounds 5] [--size 160x50] [--window 1.875]

``LiveApp`` with 8 energy counters (a slow wave plus noise per channel, 1 kHz, fed by a scripted
sampler on a synthetic clock: no sensor, no sampler thread) in a headless Textual app. Each frame
drains 50 ms of samples, runs ``refresh_view`` and lets Textual compose the screen. Side by side,
interleaved round by round:

- ``shift``:   ``PowerChart.append_only`` (what the live view does): a chart whose window slid by
               whole braille cells keeps the cells that cannot change and draws only the newest.
- ``rebuild``: every visible chart decimates and draws every cell each frame (the path before).

Measured: process CPU time per frame (``time.process_time``, so other processes' load matters
less than for wall time) and the wall time of ``refresh_view``; medians over rounds, and the
ratio shift / rebuild. The headless driver writes no escape codes: a terminal adds its cost on
top of both. One JSON object per line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # greentop from a checkout

from _machine import machine_info  # noqa: E402

from greentop.channel import Channel, Quantity, Reader, ReaderKind  # noqa: E402
from greentop.sampler import LaneHealth, Samples, SamplerHealth  # noqa: E402
from greentop.tui.app import LiveApp  # noqa: E402
from greentop.tui.chart import PowerChart  # noqa: E402

RATE_HZ = 1000
DRAIN_NS = 50_000_000


class WaveSampler:
    """8 counters drawing 40-90 W waves with noise, 50 ms per drain on a synthetic clock."""

    def __init__(self, channels: list[Channel]) -> None:
        self.channels = channels
        self.t_ns = 1_000_000_000_000
        self.energy_uj = np.zeros(len(channels))
        self.rng = np.random.default_rng(1)

    def drain(self) -> dict[str, Samples]:
        n = DRAIN_NS * RATE_HZ // 1_000_000_000
        t = self.t_ns + np.arange(1, n + 1, dtype=np.int64) * (1_000_000_000 // RATE_HZ)
        out = {}
        for i, c in enumerate(self.channels):
            p = 65 + 25 * np.sin(t * 1e-9 * (0.7 + 0.1 * i)) + self.rng.normal(0, 3, n)
            e = self.energy_uj[i] + np.cumsum(p) * 1e6 / RATE_HZ
            self.energy_uj[i] = e[-1]
            out[c.name] = Samples(t, np.round(e).astype(np.int64))
        self.t_ns = int(t[-1])
        return out

    def health(self) -> SamplerHealth:
        return SamplerHealth({"fast": LaneHealth(RATE_HZ, 0, 0, 0, 0, 0.0, 1.0)}, {})


def channels() -> list[Channel]:
    return [Channel(name=f"rapl:{i}", source="bench", domain=f"cpu-package-{i}", quantity=Quantity.ENERGY, unit="uJ",
                    scale=1e-6, reader=Reader(ReaderKind.FILE_DECIMAL)) for i in range(8)]


async def one_round(scroll: str, frames: int, size: tuple[int, int], window_s: float) -> dict[str, float]:
    chans = channels()
    app = LiveApp(WaveSampler(chans), chans, timers=False, window_s=window_s)  # type: ignore[arg-type]
    async with app.run_test(size=size) as pilot:
        for chart in app.query(PowerChart):
            chart.append_only = scroll == "shift"
        for _ in range(int(window_s * 20) + 20):  # fill the window first
            app.drain_now()
        app.refresh_view()
        await pilot.pause()
        refresh_s: list[float] = []
        c0 = time.process_time()
        for _ in range(frames):
            app.drain_now()
            t0 = time.perf_counter()
            app.refresh_view()
            refresh_s.append(time.perf_counter() - t0)
            await pilot.pause()
        cpu_s = time.process_time() - c0
    return {"cpu_ms_per_frame": 1e3 * cpu_s / frames, "refresh_view_ms_p50": 1e3 * statistics.median(refresh_s)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="160x50")
    ap.add_argument("--window", type=float, default=1.875)
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    print(json.dumps({"bench": "machine", **machine_info(), "frames": args.frames, "rounds": args.rounds,
                      "size": args.size, "window_s": args.window}))
    got: dict[str, list[dict[str, float]]] = {"shift": [], "rebuild": []}
    for r in range(args.rounds):
        order = ("shift", "rebuild") if r % 2 == 0 else ("rebuild", "shift")
        for scroll in order:
            got[scroll].append(asyncio.run(one_round(scroll, args.frames, size, args.window)))  # type: ignore[arg-type]
    med = {k: {m: round(statistics.median(x[m] for x in v), 3) for m in v[0]} for k, v in got.items()}
    for k, v in med.items():
        print(json.dumps({"bench": "scroll", "scroll": k, **v, "rounds": [{m: round(x[m], 3) for m in x} for x in got[k]]}))
    print(json.dumps({"bench": "scroll_ratio", "cpu_shift_over_rebuild": round(med["shift"]["cpu_ms_per_frame"] / med["rebuild"]["cpu_ms_per_frame"], 3),
                      "refresh_shift_over_rebuild": round(med["shift"]["refresh_view_ms_p50"] / med["rebuild"]["refresh_view_ms_p50"], 3),
                      "ui_cpu_pct_at_20fps_shift": round(med["shift"]["cpu_ms_per_frame"] * 20 / 10, 1),
                      "ui_cpu_pct_at_20fps_rebuild": round(med["rebuild"]["cpu_ms_per_frame"] * 20 / 10, 1)}))


if __name__ == "__main__":
    main()
