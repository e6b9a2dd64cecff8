"""What ``greentop phase start|end NAME`` adds to a shell workload's phases, old path and new.

    python benchmarks/bench_phase_cmd.py [--repeats N]

Side by side in one run, interleaved:

- ``via_cli``:   the command through ``greentop.cli.main`` (the entry point before issue 13: it
                 imports numpy, the sampler and the sources before looking at its arguments).
- ``via_entry``: the command through ``greentop._entry.main`` (today's ``greentop`` executable and
                 ``python -m greentop``): the phase command imports only ``greentop.phases``.

Two measures: the wall time of one call outside a recording (a no-op there), and the duration a
recording gives a ``sleep 0.5`` phase tagged by the command (``greentop record`` on this machine's
sensors, the summary's duration): the start call's cost lands inside the phase. One JSON object
per line on stdout; medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # greentop from a checkout

from _machine import machine_info  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PATHS = {
    "via_cli": "import sys; from greentop.cli import main; sys.exit(main())",
    "via_entry": "import sys; from greentop._entry import main; sys.exit(main())",
}


def _cmd(path: str) -> list[str]:
    return [sys.executable, "-c", PATHS[path]]


def call_s(path: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(_cmd(path) + ["phase", "start", "x"], env=env, check=True)
    return time.perf_counter() - t0


def phase_s(path: str, env: dict[str, str], tmp: Path) -> float:
    from greentop.trace import load

    gt = " ".join(f"'{a}'" for a in _cmd(path))
    script = f"{gt} phase start p && sleep 0.5 && {gt} phase end p"
    out = tmp / f"{path}.h5"
    out.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--", "sh", "-c", script],
                   env=env, check=True, capture_output=True, cwd=REPO)
    (p,) = load(out, channels=()).phases
    return (p.end_ns - p.start_ns) * 1e-9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "GREENTOP_EVENTS"} | {"PYTHONPATH": str(REPO)}
    calls: dict[str, list[float]] = {p: [] for p in PATHS}
    phases: dict[str, list[float]] = {p: [] for p in PATHS}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.repeats):
            for p in PATHS:  # interleaved: load on the machine hits both alike
                calls[p].append(call_s(p, env))
                phases[p].append(phase_s(p, env, Path(d)))
    print(json.dumps({"machine": machine_info(), "repeats": args.repeats}))
    for p in PATHS:
        print(json.dumps({"path": p, "call_median_ms": round(statistics.median(calls[p]) * 1e3, 1),
                          "sleep_0.5_phase_median_ms": round(statistics.median(phases[p]) * 1e3, 1)}))
    ratio = statistics.median(calls["via_entry"]) / statistics.median(calls["via_cli"])
    print(json.dumps({"call_ratio_entry_over_cli": round(ratio, 3)}))


if __name__ == "__main__":
    main()
