"""The live view's CPU per frame at 20 fps, this checkout against a baseline checkout, interleaved.

    python benchmarks/bench_live_cpu.py --baseline DIR [--rounds 8] [--seconds 8] [--fps 20]
                                        [--window 1.875] [--size 160x50]

``DIR`` is another checkout of greentop (e.g. ``git worktree add /tmp/base <commit>``, or
``git archive <commit> | tar -x -C /tmp/base``; the compiled sampler is not needed). Each round
runs both, in turn (the order alternates round by round), each in a fresh Python process:
``LiveApp`` (8 energy channels and their total, phase table, status panes) in Textual's headless
driver, its own timers at ``--fps``, fed 50 ms of 1 kHz samples per drain (slow waves plus noise,
made before the clock starts, so that making them is not counted; no sampler thread, no writer
process). After 3 s of warm-up the process's CPU time (``os.times``) over ``--seconds`` is the
UI's cost: what ``benchmarks/bench_tui.py`` calls UI CPU, without the sampler's threads and
the other processes that make its figures noisy on a small shared machine.

Printed, one JSON object per line: each run; then per checkout the medians of UI CPU (% of one
core), CPU ms per frame and frames per second; and the ratio this / baseline of UI CPU, pair by
pair and its median. Nothing is asserted; the 15 % bar is reported as pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BAR_UI_PCT = 15.0


def child(root: Path, seconds: float, fps: float, window_s: float, size: tuple[int, int]) -> dict[str, object]:
    """Run the live view from checkout ``root`` and measure it (in this process)."""
    sys.path.insert(0, str(root))
    sys.path.insert(1, str(HERE / "benchmarks"))
    from greentop.tui.app import LiveApp  # first: bench_scroll puts this checkout on the path

    from bench_scroll import WaveSampler, channels  # this checkout's: the same samples for both

    chans = channels()
    wave = WaveSampler(chans)
    drains = [wave.drain() for _ in range(int((seconds + 8) * 20 * max(1.0, fps / 20)))]
    feed = iter(drains)

    class Scripted:
        def drain(self):  # type: ignore[no-untyped-def]
            return next(feed)

        def health(self):  # type: ignore[no-untyped-def]
            return wave.health()

    app = LiveApp(Scripted(), chans, fps=fps, window_s=window_s)  # type: ignore[arg-type]
    frames = [0]
    refresh = app.refresh_view

    def counted() -> None:
        refresh()
        frames[0] += 1

    app.refresh_view = counted  # type: ignore[method-assign]

    async def run() -> dict[str, object]:
        async with app.run_test(size=size):
            await asyncio.sleep(3.0)  # first layouts, and a full window of samples
            t = os.times()
            c0, w0, f0 = t.user + t.system, time.monotonic(), frames[0]
            await asyncio.sleep(seconds)
            t = os.times()
            cpu, wall, n = t.user + t.system - c0, time.monotonic() - w0, frames[0] - f0
        import greentop

        return {"bench": "live_cpu_run", "greentop": str(Path(greentop.__file__).parent.parent), "wall_s": round(wall, 2),
                "frames": n, "fps": round(n / wall, 1), "ui_cpu_pct": round(100 * cpu / wall, 2),
                "cpu_ms_per_frame": round(1e3 * cpu / max(n, 1), 3)}

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="another greentop checkout to compare against")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--window", type=float, default=1.875)
    ap.add_argument("--size", default="160x50")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    if args.child is not None:
        print(json.dumps(child(args.child, args.seconds, args.fps, args.window, size)))  # type: ignore[arg-type]
        return 0
    sys.path.insert(0, str(HERE / "benchmarks"))
    from _machine import machine_info

    roots = {"this": HERE}
    if args.baseline is not None:
        if not (args.baseline / "greentop" / "tui" / "app.py").is_file():
            print(f"bench_live_cpu: {args.baseline} is not a greentop checkout", file=sys.stderr)
            return 2
        roots["baseline"] = args.baseline.resolve()
    print(json.dumps({"bench": "machine", **machine_info(), "rounds": args.rounds, "seconds": args.seconds,
                      "fps": args.fps, "window_s": args.window, "size": args.size,
                      "roots": {k: str(v) for k, v in roots.items()}}), flush=True)
    got: dict[str, list[dict[str, object]]] = {k: [] for k in roots}
    for r in range(args.rounds):
        order = list(roots) if r % 2 == 0 else list(reversed(roots))
        for name in order:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(roots[name]), "--seconds", str(args.seconds),
                   "--fps", str(args.fps), "--window", str(args.window), "--size", args.size]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode:
                print(json.dumps({"bench": "live_cpu_run", "checkout": name, "error": p.stderr[-2000:]}), flush=True)
                return 1
            rec = {**json.loads(p.stdout.strip().splitlines()[-1]), "checkout": name, "round": r}
            got[name].append(rec)
            print(json.dumps(rec), flush=True)
    med = {}
    for name, runs in got.items():
        med[name] = {m: round(statistics.median(float(x[m]) for x in runs), 2)  # type: ignore[arg-type]
                     for m in ("ui_cpu_pct", "cpu_ms_per_frame", "fps")}
        print(json.dumps({"bench": "live_cpu", "checkout": name, **med[name], "ui_bar_pct": BAR_UI_PCT,
                          "ui_pass": med[name]["ui_cpu_pct"] <= BAR_UI_PCT}))
    if "baseline" in got:
        pairs = zip(got["this"], got["baseline"])
        ratios = [float(a["ui_cpu_pct"]) / float(b["ui_cpu_pct"]) for a, b in pairs]  # type: ignore[arg-type]
        print(json.dumps({"bench": "live_cpu_ratio", "this_over_baseline": [round(x, 3) for x in ratios],
                          "median": round(statistics.median(ratios), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
