"""Running one point under greentop record: waiting, timeouts, Ctrl-C, the row it gives."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from greentop import launch
from workloads.results import (
    RESULTS_SCHEMA_VERSION,
    ResultError,
    read_result,
)
from workloads.sweep.progress import Progress
from workloads.sweep.spec import (
    EXIT_TIMEOUT,
    POINTS_DIR,
    POLL_S,
    STOP_GRACE_S,
    SUMMARY_TIMEOUT_S,
    Cell,
    Point,
    PointFiles,
    RecordSettings,
    Sweep,
    fmt_value,
    record_command,
)
from workloads.sweep.table import atomic_write, result_columns, summary_columns

# ----------------------------------------------------------------------------------------- running


class Interrupted(Exception):
    """Ctrl-C during a point: that point was stopped and gets no row."""


def child_env() -> dict[str, str]:
    # ``python -m workloads`` must import from this checkout wherever the sweep is started from.
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env["PYTHONUNBUFFERED"] = "1"  # logs that show where a point got to when it is stopped
    return env


def _stop(workload: launch.Workload) -> None:
    """Stop greentop record the way Ctrl-C does (it stops its workload and finishes the trace),
    by greentop's one stop protocol (``greentop.launch``). A second Ctrl-C here kills it at once."""
    try:
        workload.stop(signal.SIGINT, grace_s=STOP_GRACE_S)
    except KeyboardInterrupt:
        workload.send(signal.SIGKILL)
        workload.process.wait()


def _wait(workload: launch.Workload, timeout_s: float | None, progress: Progress) -> tuple[int, bool]:
    """(exit code, timed out). Ctrl-C stops the point and raises :class:`Interrupted`."""
    deadline = time.monotonic() + timeout_s if timeout_s else None
    try:
        while True:
            try:
                return workload.process.wait(timeout=POLL_S), False
            except subprocess.TimeoutExpired:
                pass
            progress.tick()
            if deadline is not None and time.monotonic() >= deadline:
                _stop(workload)
                return EXIT_TIMEOUT, True
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached greentop record too (same process group); a signal sent to
        # the sweep alone did not: send it on either way (record treats a second one the same).
        _stop(workload)
        raise Interrupted() from None


def _summary(files: PointFiles, env: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    """(summary JSON, problem): greentop's own command line, not its internals."""
    if not files.trace.is_file():
        return None, "no trace written"
    try:
        proc = subprocess.run([sys.executable, "-m", "greentop", "summary", str(files.trace), "--format", "json"],
                              capture_output=True, text=True, env=env, timeout=SUMMARY_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"greentop summary took over {SUMMARY_TIMEOUT_S:g} s"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return None, f"unreadable trace: {lines[-1] if lines else f'greentop summary exited {proc.returncode}'}"
    try:
        doc = json.loads(proc.stdout)
    except ValueError as exc:
        return None, f"greentop summary gave no JSON: {exc}"
    if not isinstance(doc, dict):
        return None, "greentop summary gave no JSON object"
    atomic_write(files.summary, proc.stdout)
    return doc, ""


def run_point(sweep: Sweep, point: Point, out_dir: Path, record: RecordSettings, timeout_s: float | None,
              env: dict[str, str], progress: Progress) -> dict[str, Cell]:
    """Run one point under greentop record and build its results row (ok or failed)."""
    files = PointFiles.of(out_dir, point)
    for stale in (files.trace, files.result, files.summary):  # a rerun must never read an old run's files
        stale.unlink(missing_ok=True)
    cmd = record_command(sweep, point, files, record)
    with files.log.open("w") as log:
        log.write(f"# sweep {sweep.name}, point {point.id}\n# params: {json.dumps(point.params)}\n# command: {shlex.join(cmd)}\n")
        log.flush()
        workload = launch.start(cmd, env, log=log)
        rc, timed_out = _wait(workload, timeout_s, progress)
    problems: list[str] = []
    if timed_out:
        problems.append(f"stopped after the {timeout_s:g} s timeout")
    elif rc != 0:
        problems.append(f"greentop record exited {rc}")
    summary, problem = _summary(files, env)
    if problem:
        problems.append(problem)
    doc: dict[str, Any] = {}
    if files.result.exists() or not problems:  # a workload that fails usually writes none: no second complaint
        try:
            doc = read_result(files.result)
        except ResultError as exc:
            problems.append(str(exc))
    primary = doc.get("primary_phase") or None
    row: dict[str, Cell] = {
        "schema_version": RESULTS_SCHEMA_VERSION, "sweep": sweep.name, "point": point.id,
        "status": "failed" if problems else "ok", "exit_code": rc,
        "trace": f"{POINTS_DIR}/{files.trace.name}" if files.trace.is_file() else None,
        "workload": doc.get("workload") or sweep.workload, "primary_phase": primary,
    }
    row |= {f"param.{k}": (",".join(fmt_value(x) for x in v) if isinstance(v, list) else v) for k, v in point.params.items()}
    for k, v in (doc.get("params") or {}).items():  # what the workload resolved (defaults) that the point did not set
        row.setdefault(f"param.{k}", v)
    row |= result_columns(doc)
    if summary is not None:
        try:
            row |= summary_columns(summary, primary)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"unexpected summary: {exc}")
            row["status"] = "failed"
    if problems:
        with files.log.open("a") as log:
            log.write(f"# sweep: point failed: {'; '.join(problems)}\n")
        progress.note(f"  {point.id}: {'; '.join(problems)} (log: {files.log})")
    return row
