"""``python -m workloads sweep FILE.toml``: run a grid of workload points, each under ``greentop record``.

A sweep file::

    [sweep]
    name = "cnn"                 # default: the file's stem; names the results and the default --out
    description = "..."          # free text, for people reading the file
    workload = "train"           # train | infer | llm-infer | serve-bench | idle
    repeats = 1                  # each point runs this many times (param ``repeat`` = 0, 1, ...)
    rate = 1000.0                # greentop record --rate (Hz); default: greentop's
    slow_rate = 10.0             # greentop record --slow-rate (Hz); default: greentop's
    baseline = 3.0               # idle baseline before each point (s); 0 or false: --no-baseline
    region = "FR"                # or carbon_intensity = 56.0 (gCO2e/kWh), not both
    record_args = ["--no-gpu"]   # any other greentop record options, passed as they are
    timeout_s = 1800             # a point still running after this long is stopped and failed

    [base]                       # parameters of every point
    data = "synthetic"
    image_size = 32

    [grid]                       # parameter -> values; the points are the cartesian product
    arch = ["resnet18", "vit"]
    batch_size = [32, 128]

    [[exclude]]                  # grid points matching every key here are dropped (a list: any of)
    arch = "vit"
    batch_size = 128

    [[include]]                  # extra points: base + this table
    arch = "resnet50"
    batch_size = 64

A parameter becomes a workload flag: ``batch_size = 64`` -> ``--batch-size 64``; ``true`` ->
``--flag`` alone; ``false`` -> nothing; a list -> its items joined by commas. The sweep appends
``--result points/<id>.json``. ``repeat`` is the sweep's own parameter and is not passed on.

Each point runs in its own process (nothing carries over between points: allocator caches, warm
GPUs, compiled kernels) as::

    python -m greentop record -o OUT/points/<id>.h5 [record options] -- \\
        python -m workloads <workload> <flags> --result OUT/points/<id>.json

with its output in ``OUT/points/<id>.log``; then ``python -m greentop summary <trace> --format
json`` (greentop's public command line: workloads never import greentop's internals) gives the
energy figures, kept as ``OUT/points/<id>.summary.json``, and one row per point goes into
``OUT/results.csv`` (columns: :mod:`workloads.results`), rewritten atomically after every point.
The sweep file is copied to ``OUT/sweep.toml``.

Output folder (``--out``, default ``runs/<name>`` under the current folder)::

    OUT/sweep.toml  OUT/results.csv
    OUT/points/<id>.h5 (trace)  <id>.json (result document)  <id>.log  <id>.summary.json

A point id reads as the values of the parameters that vary, then a hash of all the parameters
(and the workload): ``resnet18-bs32-fp32-1a2b3c4d`` (``-rep1`` added with repeats > 1). The hash is what identifies the point, so a
finished point is recognised on a later run even if the readable part changes.

Resuming: a point whose row says ``ok`` and whose trace exists is skipped; a ``failed`` point is
rerun only with ``--retry-failed``. A point fails when greentop record or the workload exits
non-zero, when it runs past ``timeout_s`` (exit code 124, as ``timeout(1)`` reports it), or when its
trace, summary or result document cannot be read; the failure gets a row (with whatever figures
could be read) and the sweep goes on. Ctrl-C stops the current point (greentop record stops the
workload and finishes its trace), keeps every finished row and exits 130; that point runs again
next time.

Exit codes: 0 every point ok; 1 some point failed; 2 bad input (one line on stderr); 130 Ctrl-C.

Energy columns: greentop's run row covers the idle baseline too, so the run totals
(``duration_s``, ``energy_j``, ``energy_above_idle_j``, ``gco2e``) and ``domain.*`` are the run's
minus the baseline window's; ``peak_power_w`` is the run's (the idle window never holds the peak);
``idle_power_w`` is the baseline's average. ``phase.<name>.*`` sum every occurrence of that phase
name, leaving out occurrences nested inside one of the same name (already in its inclusive
figures); the ``energy_per_*`` columns divide the primary phase's summed energy by the counts
made inside those occurrences.

In ``results.csv`` booleans read ``true``/``false`` (pandas reads them as booleans), empty cells
are values that do not apply, floats are written in full (``repr``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Sequence, TextIO

from workloads.results import COUNT_NAMES, PER_UNIT_COLUMNS, RESULTS_SCHEMA_VERSION, ResultError, read_result

EXIT_OK = 0
EXIT_FAILED_POINTS = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 124  # the exit code a timed-out point gets, as timeout(1) reports it
EXIT_INTERRUPTED = 130

WORKLOADS = ("train", "infer", "llm-infer", "serve-bench", "idle")
SWEEP_KEYS = frozenset({"name", "workload", "repeats", "rate", "slow_rate", "baseline", "region", "carbon_intensity",
                        "record_args", "timeout_s", "description"})
TOP_KEYS = frozenset({"sweep", "base", "grid", "exclude", "include"})
RESERVED_PARAMS = frozenset({"repeat", "result"})  # the sweep's own: never taken from a sweep file
RESULTS_CSV = "results.csv"
POINTS_DIR = "points"
SWEEP_COPY = "sweep.toml"
J_PER_KWH = 3.6e6
HASH_CHARS = 8
SLUG_MAX_CHARS = 60
# After Ctrl-C or a timeout, greentop record gets this long to stop its workload (its own grace
# is about 1 s per signal: SIGINT, SIGTERM, SIGKILL) and finish the trace, then SIGTERM, then SIGKILL.
STOP_GRACE_S = 30.0
SUMMARY_TIMEOUT_S = 600.0
POLL_S = 0.25  # how often a running point is checked (timeout, progress line)

Scalar = str | int | float | bool
Value = Scalar | list[Scalar]
Cell = str | int | float | bool | None

_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class SweepError(Exception):
    """Bad input: a missing or malformed sweep file, an unknown workload, an empty grid. One line, exit 2."""


# ------------------------------------------------------------------------------------ the sweep file


@dataclass(frozen=True)
class RecordSettings:
    """Options of ``greentop record`` for every point; None leaves greentop's default."""

    rate_hz: float | None = None
    slow_rate_hz: float | None = None
    baseline_s: float | None = None  # 0: --no-baseline
    region: str | None = None
    carbon_g_per_kwh: float | None = None
    extra_args: tuple[str, ...] = ()

    def args(self) -> list[str]:
        out: list[str] = []
        if self.rate_hz is not None:
            out += ["--rate", _fmt_number(self.rate_hz)]
        if self.slow_rate_hz is not None:
            out += ["--slow-rate", _fmt_number(self.slow_rate_hz)]
        if self.baseline_s is not None:
            out += ["--no-baseline"] if self.baseline_s == 0 else ["--baseline", _fmt_number(self.baseline_s)]
        if self.region is not None:
            out += ["--region", self.region]
        if self.carbon_g_per_kwh is not None:
            out += ["--carbon-intensity", _fmt_number(self.carbon_g_per_kwh)]
        return out + list(self.extra_args)


@dataclass(frozen=True)
class Sweep:
    name: str
    workload: str
    repeats: int
    record: RecordSettings
    timeout_s: float | None
    base: dict[str, Value]
    grid: dict[str, list[Value]]
    exclude: list[dict[str, Value | list[Value]]]
    include: list[dict[str, Value]]
    path: Path
    text: str  # the file as read, copied into the output folder


@dataclass(frozen=True)
class Point:
    id: str
    params: dict[str, Value]  # base, then grid / include values, then ``repeat``

    @property
    def key(self) -> str:
        return point_key(self.id)


def point_key(point_id: str) -> str:
    """The hash part of a point id: what identifies the point across runs."""
    return point_id.rsplit("-", 1)[-1]


def _fmt_number(x: float) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool))


def _check_value(where: str, v: Any, allow_list: bool = True) -> Value:
    if _is_scalar(v):
        if isinstance(v, float) and not math.isfinite(v):
            raise SweepError(f"{where}: {v} is not a finite number")
        return v  # type: ignore[no-any-return]
    if allow_list and isinstance(v, list) and all(_is_scalar(x) for x in v):
        return v
    raise SweepError(f"{where}: value must be a string, number, boolean{' or a list of them' if allow_list else ''}, got {v!r}")


def _check_params(where: str, table: Any) -> dict[str, Value]:
    if not isinstance(table, dict):
        raise SweepError(f"{where} must be a table")
    out: dict[str, Value] = {}
    for k, v in table.items():
        if not _PARAM_NAME.match(k):
            raise SweepError(f"{where}: bad parameter name {k!r} (letters, digits, '_' and '-')")
        if k in RESERVED_PARAMS:
            raise SweepError(f"{where}: {k!r} is the sweep's own parameter (use [sweep] repeats)" if k == "repeat"
                             else f"{where}: {k!r} is set by the sweep itself")
        out[k] = _check_value(f"{where}.{k}", v)
    return out


def _number(where: str, v: Any, minimum: float, strict: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < minimum or (strict and v == minimum):
        raise SweepError(f"{where} must be a number {'>' if strict else '>='} {minimum:g}, got {v!r}")
    return float(v)


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every problem is a :class:`SweepError` with one line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SweepError(f"no such sweep file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"cannot read sweep file {path}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise SweepError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(TOP_KEYS))}")
    head = doc.get("sweep")
    if not isinstance(head, dict):
        raise SweepError(f"{path}: no [sweep] table (it names the workload)")
    unknown = set(head) - SWEEP_KEYS
    if unknown:
        raise SweepError(f"{path}: unknown [sweep] key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(SWEEP_KEYS))}")
    workload = head.get("workload")
    if workload not in WORKLOADS:
        raise SweepError(f"{path}: unknown workload {workload!r}; one of: {', '.join(WORKLOADS)}")
    name = head.get("name", path.stem)
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
        raise SweepError(f"{path}: [sweep] name must be letters, digits, '.', '_' or '-', got {name!r}")
    repeats = head.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise SweepError(f"{path}: [sweep] repeats must be an integer >= 1, got {repeats!r}")
    record = _record_settings(path, head)
    timeout_s = _number(f"{path}: [sweep] timeout_s", head["timeout_s"], 0, True) if "timeout_s" in head else None

    base = _check_params(f"{path}: [base]", doc.get("base", {}))
    grid_table = doc.get("grid", {})
    if not isinstance(grid_table, dict):
        raise SweepError(f"{path}: [grid] must be a table")
    grid: dict[str, list[Value]] = {}
    for k, values in _check_params_raw(f"{path}: [grid]", grid_table).items():
        if not isinstance(values, list):
            raise SweepError(f"{path}: [grid] {k} must be a list of values, got {values!r}")
        if not values:
            raise SweepError(f"{path}: [grid] {k} is an empty list: the grid has no points")
        grid[k] = [_check_value(f"{path}: [grid] {k}", v) for v in values]
    include = [_check_params(f"{path}: [[include]] #{i + 1}", t) for i, t in enumerate(_tables(path, doc, "include"))]
    if not grid and not include:
        raise SweepError(f"{path}: empty grid: give [grid] parameter lists or [[include]] points")
    known = set(base) | set(grid) | {k for t in include for k in t}
    exclude: list[dict[str, Value | list[Value]]] = []
    for i, t in enumerate(_tables(path, doc, "exclude")):
        where = f"{path}: [[exclude]] #{i + 1}"
        table = _check_params_raw(where, t)
        if not table:
            raise SweepError(f"{where} is empty: it would drop every point")
        for k in table:
            if k not in known:
                raise SweepError(f"{where}: {k!r} is not a parameter of this sweep")
        exclude.append(table)
    return Sweep(name=name, workload=workload, repeats=repeats, record=record, timeout_s=timeout_s, base=base,
                 grid=grid, exclude=exclude, include=include, path=path, text=text)


def _check_params_raw(where: str, table: Any) -> dict[str, Any]:
    """Names checked, values left to the caller (grid lists, exclude alternatives)."""
    if not isinstance(table, dict):
        raise SweepError(f"{where} must be a table")
    for k in table:
        if not _PARAM_NAME.match(k) or k in RESERVED_PARAMS:
            raise SweepError(f"{where}: bad parameter name {k!r}")
    return {k: (v if isinstance(v, list) else _check_value(f"{where}.{k}", v)) for k, v in table.items()}


def _tables(path: Path, doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise SweepError(f"{path}: {key} must be an array of tables ([[{key}]])")
    return value


def _record_settings(path: Path, head: dict[str, Any]) -> RecordSettings:
    where = f"{path}: [sweep]"
    rate = _number(f"{where} rate", head["rate"], 0, True) if "rate" in head else None
    slow = _number(f"{where} slow_rate", head["slow_rate"], 0, True) if "slow_rate" in head else None
    baseline: float | None = None
    if "baseline" in head:
        b = head["baseline"]
        baseline = 0.0 if b is False else _number(f"{where} baseline", b, 0, False)
    region = head.get("region")
    if region is not None and (not isinstance(region, str) or not region):
        raise SweepError(f"{where} region must be a region code such as \"FR\", got {region!r}")
    intensity = _number(f"{where} carbon_intensity", head["carbon_intensity"], 0, False) if "carbon_intensity" in head else None
    if region is not None and intensity is not None:
        raise SweepError(f"{where}: give region or carbon_intensity, not both")
    extra = head.get("record_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
        raise SweepError(f"{where} record_args must be a list of strings")
    return RecordSettings(rate, slow, baseline, region, intensity, tuple(extra))


# ------------------------------------------------------------------------------------------ points


def _matches(params: dict[str, Value], rule: dict[str, Any]) -> bool:
    for k, want in rule.items():
        if k not in params:
            return False
        have = params[k]
        # A list in an exclude table means "any of these", unless the parameter itself is a list.
        options = want if isinstance(want, list) and not isinstance(have, list) else [want]
        if not any(_same(have, o) for o in options):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    # TOML keeps 1 and 1.0 apart and true == 1 in Python: compare by type class and value.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


# Short names in point ids for the parameters the study's sweeps vary; others use their initials.
SLUG_ABBREVIATIONS = {"batch_size": "bs", "repeat": "rep", "seq_len": "seq", "image_size": "img", "prompt_len": "in",
                      "output_len": "out", "max_batch_size": "mbs", "epochs": "ep", "steps": "steps", "lr": "lr",
                      "rate": "rate", "samples": "n", "seconds": "s", "workers": "w"}


def _slug_part(key: str, v: Value) -> str:
    """A short readable token for one parameter value: strings as they are, numbers after a short
    name of the key (``batch_size=64`` -> ``bs64``), booleans as the key or ``no_`` the key."""
    short = SLUG_ABBREVIATIONS.get(key) or "".join(w[0] for w in re.split(r"[_-]+", key) if w)
    if isinstance(v, bool):
        text = key if v else f"no_{key}"
    elif isinstance(v, (int, float)):
        text = f"{short}{_fmt_number(v) if isinstance(v, float) else v}"
    elif isinstance(v, list):
        text = "+".join(str(x) for x in v)
    else:
        text = v
    return re.sub(r"[^A-Za-z0-9.+_-]+", "_", text).strip("_-") or short


def point_id(workload: str, params: dict[str, Value], label_keys: Sequence[str]) -> str:
    """``<values of label_keys>-<hash of workload and all params>``: stable and readable."""
    blob = json.dumps({"workload": workload, "params": params}, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha1(blob.encode()).hexdigest()[:HASH_CHARS]
    slug = "-".join(_slug_part(k, params[k]) for k in label_keys if k in params)[:SLUG_MAX_CHARS].strip("-")
    return f"{slug}-{digest}" if slug else digest


def expand(sweep: Sweep) -> list[Point]:
    """Every point of the sweep, in a stable order: the grid (first key slowest), then the
    includes, each repeated; excludes drop grid points only (an include is asked for by name)."""
    combos: list[dict[str, Value]] = []
    if sweep.grid:
        keys = list(sweep.grid)
        for values in itertools.product(*(sweep.grid[k] for k in keys)):
            p = sweep.base | dict(zip(keys, values))
            if not any(_matches(p, rule) for rule in sweep.exclude):
                combos.append(p)
    combos += [sweep.base | inc for inc in sweep.include]
    # What differs between points is what names them.
    label_keys = list(sweep.grid) + [k for inc in sweep.include for k in inc if k not in sweep.grid]
    label_keys = list(dict.fromkeys(label_keys))
    if sweep.repeats > 1:
        label_keys.append("repeat")
    points: list[Point] = []
    seen: set[str] = set()
    for combo in combos:
        for r in range(sweep.repeats):
            params = combo | {"repeat": r}
            pid = point_id(sweep.workload, params, label_keys)
            if point_key(pid) not in seen:  # an include that repeats a grid point runs once
                seen.add(point_key(pid))
                points.append(Point(pid, params))
    return points


def workload_flags(params: dict[str, Value]) -> list[str]:
    """``batch_size=64`` -> ``--batch-size 64``; true -> ``--flag``; false -> nothing; a list ->
    comma-joined. ``repeat`` is the sweep's own and is not passed."""
    out: list[str] = []
    for k, v in params.items():
        if k in RESERVED_PARAMS:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            out.append(flag)
        elif v is False:
            continue
        elif isinstance(v, list):
            out += [flag, ",".join(_fmt_value(x) for x in v)]
        else:
            out += [flag, _fmt_value(v)]
    return out


def _fmt_value(v: Scalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass(frozen=True)
class PointFiles:
    trace: Path
    result: Path
    log: Path
    summary: Path

    @staticmethod
    def of(out_dir: Path, point: Point) -> PointFiles:
        d = out_dir / POINTS_DIR
        return PointFiles(d / f"{point.id}.h5", d / f"{point.id}.json", d / f"{point.id}.log", d / f"{point.id}.summary.json")


def record_command(sweep: Sweep, point: Point, files: PointFiles, record: RecordSettings) -> list[str]:
    workload_cmd = [sys.executable, "-m", "workloads", sweep.workload, *workload_flags(point.params), "--result", str(files.result)]
    return [sys.executable, "-m", "greentop", "record", "-o", str(files.trace), *record.args(), "--", *workload_cmd]


# ----------------------------------------------------------------------------------- results table


def _f(x: Any) -> float | None:
    """A number from the summary JSON (None there is a NaN or a missing figure)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _total(row: dict[str, Any]) -> dict[str, Any]:
    for d in row.get("domains", []):
        if d.get("domain") == "total":
            return dict(d)
    return {}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None else a - (b or 0.0)


def summary_columns(summary: dict[str, Any], primary_phase: str | None) -> dict[str, Cell]:
    """The energy columns of one results row from ``greentop summary --format json``."""
    rows: list[dict[str, Any]] = summary.get("rows", [])
    run = next((r for r in rows if r.get("kind") == "run"), None)
    if run is None:
        raise ValueError("summary has no run row")
    base = next((r for r in rows if r.get("kind") == "baseline"), None)
    rt, bt = _total(run), _total(base) if base else {}
    carbon = _f(summary.get("carbon_g_per_kwh"))
    # The run row covers the idle baseline too: the workload is the run without it.
    duration_s = _minus(_f(run.get("duration_s")), _f(base.get("duration_s")) if base else None)
    energy_j = _minus(_f(rt.get("energy_j")), _f(bt.get("energy_j")))
    above = _minus(_f(rt.get("above_baseline_j")), _f(bt.get("above_baseline_j")))
    cols: dict[str, Cell] = {
        "duration_s": duration_s,
        "energy_j": energy_j,
        "energy_above_idle_j": above,
        "avg_power_w": energy_j / duration_s if energy_j is not None and duration_s else None,
        # Peak of the whole run: the idle baseline inside it is the lowest stretch, so it never sets the peak.
        "peak_power_w": _f(rt.get("peak_w")),
        "idle_power_w": _f(bt.get("average_w")) if base else None,
        "gco2e": energy_j / J_PER_KWH * carbon if energy_j is not None and carbon is not None else None,
        "carbon_g_per_kwh": carbon,
        "estimated": bool(rt.get("estimated", False)),
    }
    base_domains = {d.get("domain"): d for d in (base or {}).get("domains", [])}
    for d in run.get("domains", []):
        name = d.get("domain")
        if name and name != "total":
            cols[f"domain.{name}.energy_j"] = _minus(_f(d.get("energy_j")), _f(base_domains.get(name, {}).get("energy_j")))

    phase_rows = [r for r in rows if r.get("kind") == "phase"]
    by_index = {r.get("index"): r for r in phase_rows}

    def nested_in_namesake(r: dict[str, Any]) -> bool:
        # A phase inside another of the same name is already in that one's inclusive figures.
        seen: set[Any] = set()
        p = r.get("parent", -1)
        while p in by_index and p not in seen:
            seen.add(p)
            if by_index[p].get("name") == r.get("name"):
                return True
            p = by_index[p].get("parent", -1)
        return False

    phase_sums: dict[str, dict[str, float]] = {}
    phase_counts: dict[str, dict[str, float]] = {}
    for r in phase_rows:
        if nested_in_namesake(r):
            continue
        t = _total(r)
        s = phase_sums.setdefault(r["name"], {"energy_j": 0.0, "duration_s": 0.0, "exclusive_energy_j": 0.0})
        s["energy_j"] += _f(t.get("energy_j")) or 0.0
        s["duration_s"] += _f(r.get("duration_s")) or 0.0
        s["exclusive_energy_j"] += _f(t.get("exclusive_energy_j")) or 0.0
        c = phase_counts.setdefault(r["name"], {})
        for n, v in (r.get("counts") or {}).items():
            c[n] = c.get(n, 0.0) + (_f(v) or 0.0)
    for name, s in phase_sums.items():
        for k, v in s.items():
            cols[f"phase.{name}.{k}"] = v
    for n, v in sorted((run.get("counts") or {}).items()):
        cols[f"count.{n}"] = _count_cell(v)
    primary = phase_sums.get(primary_phase or "")
    for n, col in PER_UNIT_COLUMNS.items():
        count = phase_counts.get(primary_phase or "", {}).get(n)
        cols[col] = primary["energy_j"] / count if primary is not None and count else None
    return cols


def _count_cell(v: Any) -> Cell:
    x = _f(v)
    return int(x) if x is not None and x.is_integer() else x


def result_columns(doc: dict[str, Any]) -> dict[str, Cell]:
    cols: dict[str, Cell] = {}
    for prefix, key in (("metric", "metrics"), ("hw", "hardware")):
        for k, v in (doc.get(key) or {}).items():
            cols[f"{prefix}.{k}"] = v
    return cols


# Where each kind of column goes, in the contract's order (workloads.results).
HEAD_COLUMNS = ("schema_version", "sweep", "point", "status", "exit_code", "trace", "workload", "primary_phase")
TOTAL_COLUMNS = ("duration_s", "energy_j", "energy_above_idle_j", "avg_power_w", "peak_power_w", "idle_power_w", "gco2e",
                 "carbon_g_per_kwh", "estimated")
PER_UNIT = tuple(PER_UNIT_COLUMNS[n] for n in COUNT_NAMES)


def column_order(names: Sequence[str]) -> list[str]:
    """The header for rows holding these columns: fixed columns in the contract's order, then
    each prefix group in first-seen order; anything unknown (a newer version's column) last."""
    groups: dict[str, list[str]] = {g: [] for g in ("param", "metric", "hw", "domain", "phase", "count", "other")}
    for n in dict.fromkeys(names):
        if n in HEAD_COLUMNS or n in TOTAL_COLUMNS or n in PER_UNIT:
            continue
        prefix = n.split(".", 1)[0] if "." in n else "other"
        groups[prefix if prefix in groups else "other"].append(n)
    return [*HEAD_COLUMNS, *groups["param"], *groups["metric"], *groups["hw"], *TOTAL_COLUMNS, *groups["domain"],
            *groups["phase"], *groups["count"], *PER_UNIT, *groups["other"]]


def cell_text(v: Cell) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def read_results(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of an existing results.csv (none yet: empty)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise SweepError(f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    if header and "point" not in header:
        raise SweepError(f"{path} is not a sweep results table (no 'point' column); move it away or use another --out")
    # A row longer than the header puts its extra cells under None: drop them.
    return header, [{k: v for k, v in r.items() if k is not None} for r in reader]


def write_results(path: Path, rows: Sequence[dict[str, Cell]]) -> None:
    """Rewrite the table atomically: a crash or Ctrl-C never leaves half a file."""
    header = column_order([k for r in rows for k in r])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([cell_text(r.get(k)) for k in header])
    _atomic_write(path, buf.getvalue())


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


# ------------------------------------------------------------------------------------------ progress


def _dur(s: float) -> str:
    s = max(s, 0.0)
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 60:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"


@dataclass
class Progress:
    """Points done of total on stderr: one line redrawn in place on a terminal, plain lines otherwise.
    The ETA is the mean time of the points run so far times the points left."""

    total: int
    done: int = 0
    out: TextIO = field(default_factory=lambda: sys.stderr)
    tty: bool = False
    durations_s: list[float] = field(default_factory=list)
    current: str = ""
    started: float = 0.0
    _drawn: bool = False

    def __post_init__(self) -> None:
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())

    def eta_s(self, remaining: int, current_elapsed_s: float = 0.0) -> float | None:
        if not self.durations_s:
            return None
        mean = sum(self.durations_s) / len(self.durations_s)
        return max(mean * remaining - current_elapsed_s, 0.0)

    def _eta_text(self, remaining: int, elapsed: float = 0.0) -> str:
        eta = self.eta_s(remaining, elapsed)
        return f"ETA {_dur(eta)}" if eta is not None else "ETA -"

    def start(self, point: Point) -> None:
        self.current, self.started = point.id, time.monotonic()
        if self.tty:
            self.tick()
        else:
            self._line(f"[{self.done + 1}/{self.total}] run {point.id}")

    def tick(self) -> None:
        if not self.tty or not self.current:
            return
        elapsed = time.monotonic() - self.started
        remaining = self.total - self.done
        text = f"{self.done}/{self.total} done, running {self.current} ({_dur(elapsed)}); {self._eta_text(remaining, elapsed)}"
        width = shutil.get_terminal_size((100, 24)).columns - 1
        self.out.write("\r\x1b[K" + text[:width])
        self.out.flush()
        self._drawn = True

    def finish(self, point: Point, status: str, elapsed_s: float, energy_j: float | None) -> None:
        self.done += 1
        self.durations_s.append(elapsed_s)
        energy = f", {energy_j:.4g} J" if energy_j is not None else ""
        self._line(f"[{self.done}/{self.total}] {status} {point.id} in {_dur(elapsed_s)}{energy}; "
                   f"{self._eta_text(self.total - self.done)}", keep=not self.tty or status != "ok")
        self.current = ""

    def note(self, text: str) -> None:
        self._line(text)

    def _line(self, text: str, keep: bool = True) -> None:
        """A line that stays (failures, notes, everything off a terminal); on a terminal an ok
        point's line is only drawn, to be overwritten by the next."""
        if self.tty:
            self.out.write("\r\x1b[K" + text + ("\n" if keep else ""))
            self._drawn = not keep
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False


# ----------------------------------------------------------------------------------------- running


class Interrupted(Exception):
    """Ctrl-C during a point: that point was stopped and gets no row."""


def _child_env() -> dict[str, str]:
    # ``python -m workloads`` must import from this checkout wherever the sweep is started from.
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env["PYTHONUNBUFFERED"] = "1"  # logs that show where a point got to when it is stopped
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop greentop record the way Ctrl-C does (it stops its workload and finishes the trace);
    escalate if it does not stop. A second Ctrl-C here kills it at once."""
    for sig, grace_s in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            proc.send_signal(sig)
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:
            proc.kill()
            proc.wait()
            return
        except ProcessLookupError:
            return


def _wait(proc: subprocess.Popen[bytes], timeout_s: float | None, progress: Progress) -> tuple[int, bool]:
    """(exit code, timed out). Ctrl-C stops the point and raises :class:`Interrupted`."""
    deadline = time.monotonic() + timeout_s if timeout_s else None
    try:
        while True:
            try:
                return proc.wait(timeout=POLL_S), False
            except subprocess.TimeoutExpired:
                pass
            progress.tick()
            if deadline is not None and time.monotonic() >= deadline:
                _stop(proc)
                return EXIT_TIMEOUT, True
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached greentop record too (same process group); a signal sent to
        # the sweep alone did not: send it on either way (record treats a second one the same).
        _stop(proc)
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
    _atomic_write(files.summary, proc.stdout)
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
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        rc, timed_out = _wait(proc, timeout_s, progress)
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
    row |= {f"param.{k}": (",".join(_fmt_value(x) for x in v) if isinstance(v, list) else v) for k, v in point.params.items()}
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


# -------------------------------------------------------------------------------------------- main


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"workloads sweep: error: {message}\n")


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m workloads sweep", description="Run a TOML grid of workload points, each under greentop record.",
                epilog="The sweep file's format is in workloads/sweep.py's docstring; examples in workloads/sweeps/.")
    p.add_argument("file", metavar="FILE.toml", help="the sweep file")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/<sweep name>)")
    p.add_argument("--dry-run", action="store_true", help="list the points and their commands; run nothing")
    p.add_argument("--retry-failed", action="store_true", help="rerun the points that failed (finished ones are always skipped)")
    p.add_argument("--rate", type=_positive, metavar="HZ", help="greentop record --rate, over the sweep file's")
    p.add_argument("--baseline", type=_non_negative, metavar="S", help="idle baseline seconds before each point (0: none), over the sweep file's")
    p.add_argument("--timeout-s", type=_positive, metavar="S", help="per-point timeout, over the sweep file's")
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
    _atomic_write(out_dir / SWEEP_COPY, sweep.text)
    rows: dict[str, dict[str, Cell]] = dict(by_key)  # type: ignore[arg-type]  # old rows stay as read (strings)
    point_keys = {p.key for p in points}
    todo = [p for p in points if _done_status(by_key.get(p.key), out_dir) is None
            or (args.retry_failed and _done_status(by_key.get(p.key), out_dir) == "failed")]
    progress = Progress(total=len(points), done=len(points) - len(todo))
    skipped_failed = sum(1 for p in points if p not in todo and _done_status(by_key.get(p.key), out_dir) == "failed")
    progress.note(f"sweep {sweep.name}: {len(points)} points of {sweep.workload}, {len(points) - len(todo)} done already"
                  + (f" ({skipped_failed} failed: --retry-failed reruns them)" if skipped_failed else "")
                  + f", {len(todo)} to run; results: {out_dir / RESULTS_CSV}")
    env = _child_env()
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
