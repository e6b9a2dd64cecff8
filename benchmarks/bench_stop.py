"""What a normal stop costs (``greentop.launch.Workload.stop``), side by side for two checkouts.

    python benchmarks/bench_stop.py --baseline /path/to/other/checkout [--repeats N]

Each repeat runs every case once under this checkout and once under ``--baseline`` (a checkout
of greentop, e.g. main), interleaved, each in a fresh interpreter importing that checkout's
``greentop.launch``:

- ``stop_one_process``: ``python -c 'sleep'`` (dies at the first signal), ``stop(SIGINT)``, in
  greentop's group (``record``) and in a session of its own (the live view): the time ``stop()``
  takes, i.e. how much later greentop says the run ended.
- ``stop_shell_jobs``: ``sh -c 'sleep & sleep & wait'``, ``stop(SIGTERM)``: the time, and how many
  of the two sleeps were still alive when ``stop()`` returned (``survivors``).
- ``guard``: the guard alone (``launch.Guard``): ``guard_lifetime_s``, started, released at once
  and reaped (its interpreter and imports: ``greentop/proctree.py`` is one more here);
  ``guard_start_s`` (``Guard()`` itself) and ``guard_exit_s`` (release to reaped, once it waits).
- ``left_running_s`` (this checkout only, when it has ``Workload.left_running``): the scan that
  ``greentop record`` adds after a workload's natural exit, to count what it left running.

One JSON object per line on stdout; medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "benchmarks"))

from _machine import machine_info  # noqa: E402

SETTLE_S = 0.3  # after start: the workload's interpreter or shell jobs are running

ONE_CASE = textwrap.dedent("""
    import json, os, signal, sys, tempfile, time
    from greentop import launch
    case, own_group = sys.argv[1], sys.argv[2] == "1"
    out = {}
    if case == "stop_one_process":
        w = launch.start([sys.executable, "-c", "import time; time.sleep(60)"], own_group=own_group,
                         capture_output=own_group)
        time.sleep(%(settle)r)
        t0 = time.perf_counter()
        w.stop(signal.SIGINT)
        out["stop_s"] = time.perf_counter() - t0
    elif case == "stop_shell_jobs":
        pids = tempfile.mktemp()
        w = launch.start(["sh", "-c", 'sleep 60 & a=$!; sleep 60 & echo "$a $!" > ' + pids + '; wait'],
                         own_group=own_group, capture_output=own_group)
        time.sleep(%(settle)r)
        jobs = [int(p) for p in open(pids).read().split()]
        os.unlink(pids)
        t0 = time.perf_counter()
        w.stop(signal.SIGTERM)
        out["stop_s"] = time.perf_counter() - t0
        def alive(pid):
            try:
                return open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0] != "Z"
            except OSError:
                return False
        out["survivors"] = sum(alive(p) for p in jobs)
        for p in jobs:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    elif case == "guard":
        t0 = time.perf_counter()
        g = launch.Guard("bench", 5.0)
        out["guard_start_s"] = time.perf_counter() - t0
        time.sleep(0.2)  # it has started and waits in read, as beside a workload
        g.release()
        t0 = time.perf_counter()
        g.process.wait()
        out["guard_exit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        g = launch.Guard("bench", 5.0)
        g.release()
        g.process.wait()
        out["guard_lifetime_s"] = time.perf_counter() - t0  # its interpreter and imports, start to exit
    elif case == "left_running":
        w = launch.start(["true"])
        w.wait()
        if hasattr(w, "left_running"):
            t0 = time.perf_counter()
            w.left_running()
            out["left_running_s"] = time.perf_counter() - t0
    print(json.dumps(out))
""") % {"settle": SETTLE_S}

CASES = [("stop_one_process", False), ("stop_one_process", True), ("stop_shell_jobs", False),
         ("stop_shell_jobs", True), ("guard", False), ("left_running", False)]


def _one(root: Path, case: str, own_group: bool) -> dict[str, float]:
    env = os.environ | {"PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", ONE_CASE, case, "1" if own_group else "0"], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120, start_new_session=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_stop: {case} under {root} failed: {proc.stderr.strip().splitlines()[-1:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another greentop checkout (e.g. main)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if not (args.baseline / "greentop" / "launch.py").is_file():
        print(f"bench_stop: {args.baseline} is not a greentop checkout", file=sys.stderr)
        return 2
    variants = {"baseline": args.baseline.resolve(), "this": HERE}
    results: dict[tuple[str, bool, str], list[dict[str, float]]] = {}
    for _ in range(args.repeats):
        for case, own_group in CASES:
            for name, root in variants.items():
                results.setdefault((case, own_group, name), []).append(_one(root, case, own_group))
    for case, own_group in CASES:
        row: dict[str, object] = {"bench": "stop", "case": case, "where": "live-view" if own_group else "record",
                                  "repeats": args.repeats}
        for name in variants:
            runs = results[(case, own_group, name)]
            for key in sorted({k for r in runs for k in r}):
                values = [r[key] for r in runs if key in r]
                row[f"{name}.{key}.median"] = statistics.median(values)
                if key == "survivors":
                    row[f"{name}.{key}.max"] = max(values)
        if "baseline.stop_s.median" in row and "this.stop_s.median" in row:
            row["added_s"] = float(row["this.stop_s.median"]) - float(row["baseline.stop_s.median"])  # type: ignore[arg-type]
        print(json.dumps(row))
    n_procs = sum(1 for e in os.scandir("/proc") if e.name.isdigit())
    print(json.dumps({"bench": "stop", "processes": n_procs, "machine": machine_info()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
