"""``python -m workloads sweep``: the command line, resuming, the dry run."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from greentop.cliargs import OneLineParser, non_negative_float, positive_float
from workloads.sweep.progress import Progress
from workloads.sweep.runner import Interrupted, child_env, run_point
from workloads.sweep.spec import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_POINTS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    POINTS_DIR,
    RESULTS_CSV,
    SWEEP_COPY,
    Cell,
    Point,
    PointFiles,
    RecordSettings,
    Sweep,
    SweepError,
    expand,
    load_sweep,
    point_key,
    record_command,
)
from workloads.sweep.table import atomic_write, read_results, write_results

# -------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m workloads sweep", label="workloads sweep", description="Run a TOML grid of workload points, each under greentop record.",
                epilog="The sweep file's format is in the docstring of workloads/sweep/__init__.py; examples in workloads/sweeps/.")
    p.add_argument("file", metavar="FILE.toml", help="the sweep file")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/<sweep name>)")
    p.add_argument("--dry-run", action="store_true", help="list the points and their commands; run nothing")
    p.add_argument("--retry-failed", action="store_true", help="rerun the points that failed (finished ones are always skipped)")
    p.add_argument("--rate", type=positive_float, metavar="HZ", help="greentop record --rate, over the sweep file's")
    p.add_argument("--baseline", type=non_negative_float, metavar="S", help="idle baseline seconds before each point (0: none), over the sweep file's")
    p.add_argument("--timeout-s", type=positive_float, metavar="S", help="per-point timeout, over the sweep file's")
    return p


def _done_status(row: dict[str, str] | None, out_dir: Path) -> str | None:
    """'ok' for a finished point (row ok and its trace there), 'failed' for a failed one, else None."""
    if row is None:
        return None
    if row.get("status") == "ok":
        trace = row.get("trace") or ""
        return "ok" if trace and (out_dir / trace).is_file() else None
    return "failed" if row.get("status") == "failed" else None


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # `kill PID` stops a sweep the way Ctrl-C does (current point stopped, its trace finished,
    # finished rows kept), and so does `kill -INT` of a sweep started in the background, where
    # the shell left SIGINT ignored and Python would keep ignoring it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        sweep = load_sweep(args.file)
        points = expand(sweep)
        if not points:
            raise SweepError(f"{sweep.path}: every point is excluded: nothing to run")
        out_dir = Path(args.out) if args.out else Path("runs") / sweep.name
        if out_dir.exists() and not out_dir.is_dir():
            raise SweepError(f"--out {out_dir} is not a folder")
        record = RecordSettings(
            args.rate if args.rate is not None else sweep.record.rate_hz, sweep.record.slow_rate_hz,
            args.baseline if args.baseline is not None else sweep.record.baseline_s,
            sweep.record.region, sweep.record.carbon_g_per_kwh, sweep.record.extra_args)
        timeout_s = args.timeout_s if args.timeout_s is not None else sweep.timeout_s
        _, old_rows = read_results(out_dir / RESULTS_CSV)
    except SweepError as exc:
        print(f"workloads sweep: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    by_key: dict[str, dict[str, str]] = {point_key(r.get("point") or ""): r for r in old_rows}
    if args.dry_run:
        return _dry_run(sweep, points, out_dir.resolve(), record, by_key)

    out_dir = out_dir.resolve()
    (out_dir / POINTS_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / SWEEP_COPY, sweep.text)
    rows: dict[str, dict[str, Cell]] = dict(by_key)  # type: ignore[arg-type]  # old rows stay as read (strings)
    point_keys = {p.key for p in points}
    todo = [p for p in points if _done_status(by_key.get(p.key), out_dir) is None
            or (args.retry_failed and _done_status(by_key.get(p.key), out_dir) == "failed")]
    progress = Progress(total=len(points), done=len(points) - len(todo))
    skipped_failed = sum(1 for p in points if p not in todo and _done_status(by_key.get(p.key), out_dir) == "failed")
    progress.note(f"sweep {sweep.name}: {len(points)} points of {sweep.workload}, {len(points) - len(todo)} done already"
                  + (f" ({skipped_failed} failed: --retry-failed reruns them)" if skipped_failed else "")
                  + f", {len(todo)} to run; results: {out_dir / RESULTS_CSV}")
    env = child_env()
    results = out_dir / RESULTS_CSV

    def save() -> None:
        # This sweep's points in their order, then rows of points no longer in the sweep (kept, never lost).
        ordered = [rows[p.key] for p in points if p.key in rows] + [r for k, r in rows.items() if k not in point_keys]
        write_results(results, ordered)

    interrupted = False
    try:
        for point in todo:
            progress.start(point)
            t0 = time.monotonic()
            row = run_point(sweep, point, out_dir, record, timeout_s, env, progress)
            rows[point.key] = row
            save()
            energy = row.get("energy_j")
            progress.finish(point, str(row["status"]), time.monotonic() - t0, energy if isinstance(energy, float) else None)
    except (Interrupted, KeyboardInterrupt):
        interrupted = True
    finally:
        progress.close()
    statuses = [str(rows[p.key].get("status")) if p.key in rows else "not run" for p in points]
    n_ok, n_failed = statuses.count("ok"), statuses.count("failed")
    if interrupted:
        print(f"sweep {sweep.name}: interrupted; {n_ok} ok, {n_failed} failed of {len(points)} kept in {results}; "
              "run the same command again to go on", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"sweep {sweep.name}: {n_ok} ok, {n_failed} failed of {len(points)}; results: {results}", file=sys.stderr)
    return EXIT_FAILED_POINTS if n_failed else EXIT_OK


def _dry_run(sweep: Sweep, points: list[Point], out_dir: Path, record: RecordSettings, by_key: dict[str, dict[str, str]]) -> int:
    try:
        print(f"sweep {sweep.name}: {len(points)} points of {sweep.workload} ({sweep.repeats} repeat(s)); output: {out_dir}")
        for i, p in enumerate(points, 1):
            status = _done_status(by_key.get(p.key), out_dir)
            tag = f" [{status}: {'skipped' if status == 'ok' else 'rerun with --retry-failed'}]" if status else ""
            print(f"{i:>4}  {p.id}{tag}")
            print(f"      {shlex.join(record_command(sweep, p, PointFiles.of(out_dir, p), record))}")
        sys.stdout.flush()
    except BrokenPipeError:  # `... --dry-run | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
