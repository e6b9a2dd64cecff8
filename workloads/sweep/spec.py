"""The sweep file: its format checked, its grid expanded into points, each point's command."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import tomllib

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
            out += [flag, ",".join(fmt_value(x) for x in v)]
        else:
            out += [flag, fmt_value(v)]
    return out


def fmt_value(v: Scalar) -> str:
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
