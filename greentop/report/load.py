"""Find and read sweep results tables (``results.csv``, schema version 1) into one frame.

The table's columns are defined in ``workloads/results.py``. Reading is tolerant: a missing
column only disables what needs it; what cannot be read at all raises ``ReportInputError``
(one line, the CLI turns it into exit code 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from greentop.report.traces import PointFiles, carbon_sources

SUPPORTED_SCHEMA_VERSION = 1
RESULTS_NAME = "results.csv"
MAX_SEARCH_DEPTH = 3  # a dir of sweeps, or a dir of dirs of sweeps; deeper is someone's home dir

DISCRIMINATIVE = ("train", "infer")
GENERATIVE = ("llm-infer", "serve")
# Columns that hold names, never numbers, even when every value looks numeric (e.g. model_size "8").
TEXT_COLUMNS = {"sweep", "point", "status", "workload", "primary_phase", "trace", "source_dir",
                "param.arch", "param.precision", "param.model_size", "param.optimizer", "hw.device_name"}
PER_UNIT = {"samples": "energy_per_sample_j", "input_tokens": "energy_per_input_token_j",
            "output_tokens": "energy_per_output_token_j", "requests": "energy_per_request_j"}


class ReportInputError(ValueError):
    """Input the report cannot be built from; the message is one line for the user."""


@dataclass
class TableInfo:
    path: Path
    rows: int
    ok_rows: int
    schema_version: int | None
    traces_listed: int
    traces_found: int


@dataclass
class Results:
    frame: pd.DataFrame  # usable rows (status ok) of every table, with a "source_dir" column
    tables: list[TableInfo]
    notes: list[str] = field(default_factory=list)  # things the reader should know (missing traces, ...)
    carbon_sources: dict[str, int] = field(default_factory=dict)  # from trace metadata: source -> traces naming it
    traces_read: int = 0  # points whose summary or trace was read (at most traces.MAX_POINTS_READ)

    def has(self, column: str) -> bool:
        return column in self.frame.columns and bool(self.frame[column].notna().any())



def shown(path: Path) -> str:
    """A path as a reader of the report wants it: relative to the working folder when inside it
    (a committed report must not name the machine's folders), else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

def find_tables(dirs: list[Path]) -> list[Path]:
    """Every results.csv under the given folders (the folder itself, or sweeps below it)."""
    found: list[Path] = []
    for d in dirs:
        if not d.exists():
            raise ReportInputError(f"{d}: no such folder")
        if d.is_file():
            if d.name.endswith(".csv"):
                found.append(d)
                continue
            raise ReportInputError(f"{d}: not a folder (give a sweep folder or a folder of sweeps)")
        own = d / RESULTS_NAME
        if own.is_file():
            found.append(own)
            continue
        below = sorted(p for p in d.rglob(RESULTS_NAME) if len(p.relative_to(d).parts) <= MAX_SEARCH_DEPTH + 1)
        if not below:
            what = "empty folder" if not any(d.iterdir()) else f"no {RESULTS_NAME} found"
            raise ReportInputError(f"{d}: {what} (expected a sweep folder with {RESULTS_NAME}, or a folder of sweeps)")
        found.extend(below)
    # The same table named twice (a dir and its parent) must not count twice.
    return list(dict.fromkeys(p.resolve() for p in found))


def _schema_version(frame: pd.DataFrame, path: Path) -> int | None:
    if "schema_version" not in frame.columns:
        return None
    values = pd.to_numeric(frame["schema_version"], errors="coerce").dropna().unique()
    if len(values) > 1:
        raise ReportInputError(f"{path}: mixed schema versions in one table ({', '.join(str(int(v)) for v in sorted(values))})")
    return int(values[0]) if len(values) else None


def _coerce_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns whose every non-empty value is a number become float; the rest stay text."""
    out = frame.copy()
    for col in out.columns:
        if col in TEXT_COLUMNS or out[col].dtype.kind in "fiu":
            continue
        converted = pd.to_numeric(out[col], errors="coerce")
        if converted.notna().sum() == out[col].notna().sum() and out[col].notna().any():
            out[col] = converted
    return out


def _fill_per_unit(frame: pd.DataFrame) -> None:
    """Per-unit energies missing from the table but derivable (primary phase energy / count)."""
    if "primary_phase" not in frame.columns:
        return
    for count, col in PER_UNIT.items():
        ccol = f"count.{count}"
        if ccol not in frame.columns:
            continue
        phase_energy = pd.Series(np.nan, index=frame.index, dtype=float)
        for phase in frame["primary_phase"].dropna().unique():
            pcol = f"phase.{phase}.energy_j"
            if pcol in frame.columns:
                mask = frame["primary_phase"] == phase
                phase_energy[mask] = pd.to_numeric(frame.loc[mask, pcol], errors="coerce")
        counts = pd.to_numeric(frame[ccol], errors="coerce")
        derived = phase_energy / counts.where(counts > 0)
        frame[col] = frame[col].fillna(derived) if col in frame.columns else derived


def _traces(frame: pd.DataFrame, base: Path) -> tuple[int, list[Path]]:
    """How many traces the table lists, and those that exist (paths are relative to the table)."""
    if "trace" not in frame.columns:
        return 0, []
    listed = [base / str(t) for t in frame["trace"].dropna() if str(t).strip()]
    return len(listed), [p for p in listed if p.is_file()]


def _point_files(frame: pd.DataFrame, base: Path) -> list[PointFiles]:
    """Each row's points/<id>.summary.json and trace, by the layout workloads/sweep writes."""
    if "point" not in frame.columns:
        return []
    traces = frame["trace"] if "trace" in frame.columns else pd.Series(None, index=frame.index)
    return [PointFiles(base / "points" / f"{pid}.summary.json", base / str(t) if isinstance(t, str) and t.strip() else None)
            for pid, t in zip(frame["point"].astype(str), traces)]


def load_results(dirs: list[Path]) -> Results:
    tables = find_tables(dirs)
    frames: list[pd.DataFrame] = []
    infos: list[TableInfo] = []
    notes: list[str] = []
    point_files: list[PointFiles] = []
    for path in tables:
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=True)
        except pd.errors.EmptyDataError:
            notes.append(f"{path}: empty table, skipped")
            continue
        except (OSError, pd.errors.ParserError) as exc:
            raise ReportInputError(f"{path}: unreadable results table ({str(exc).splitlines()[0]})") from None
        version = _schema_version(raw, path)
        if "status" in raw.columns:
            ok = raw[raw["status"].fillna("ok").str.strip().str.lower() == "ok"]
        else:
            ok = raw
        listed, found = _traces(ok, path.parent)
        point_files += _point_files(ok, path.parent)
        infos.append(TableInfo(path, len(raw), len(ok), version, listed, len(found)))
        ok = ok.copy()
        ok["source_dir"] = path.parent.name
        frames.append(ok)

    versions = {i.path: i.schema_version for i in infos}
    distinct = {v for v in versions.values() if v is not None}
    if len(distinct) > 1:
        listing = ", ".join(f"{p} (v{v})" for p, v in versions.items() if v is not None)
        raise ReportInputError(f"mixed schema versions, refusing to combine: {listing}")
    if distinct and distinct != {SUPPORTED_SCHEMA_VERSION}:
        (v,) = distinct
        names = ", ".join(str(p) for p, pv in versions.items() if pv == v)
        raise ReportInputError(f"schema version {v} not supported (this greentop reads {SUPPORTED_SCHEMA_VERSION}): {names}")
    unversioned = [str(i.path) for i in infos if i.schema_version is None and i.rows]
    if unversioned:
        notes.append(f"no schema_version column in {', '.join(unversioned)}; read as version {SUPPORTED_SCHEMA_VERSION}")

    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    total = sum(i.rows for i in infos)
    if frame.empty:
        failed = total - sum(i.ok_rows for i in infos)
        detail = f"{total} rows read, {failed} failed" if total else "every table is empty"
        raise ReportInputError(f"no usable rows in {', '.join(str(p) for p in tables)} ({detail})")
    frame = _coerce_numeric(frame)
    _fill_per_unit(frame)
    if "energy_j" not in frame.columns or not frame["energy_j"].notna().any():
        raise ReportInputError("no usable rows: no energy_j values in " + ", ".join(str(p) for p in tables))

    missing = [i for i in infos if i.traces_listed > i.traces_found]
    for i in missing:
        notes.append(f"{shown(i.path.parent)}: {i.traces_listed - i.traces_found} of {i.traces_listed} traces missing; "
                     "the report is built from the results table (traces are not needed for it)")
    no_trace_col = [str(i.path) for i in infos if i.rows and i.traces_listed == 0]
    if no_trace_col:
        notes.append(f"no traces listed in {', '.join(no_trace_col)}; the report is built from the table alone")
    sources, read, unreadable = carbon_sources(point_files)
    if unreadable:
        notes.append(f"{unreadable} point summary or trace file(s) could not be read (their carbon source is not used)")
    return Results(frame=frame, tables=infos, notes=notes, carbon_sources=dict(sources), traces_read=read)


_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([bBmMkK])\b")


def model_size_params(label: object) -> float:
    """Parameters implied by a model-size label such as "8b", "Llama-3.1-8B", "135m" (NaN if none)."""
    match = _SIZE_RE.search(str(label))
    if not match:
        return float("nan")
    scale = {"b": 1e9, "m": 1e6, "k": 1e3}[match.group(2).lower()]
    return float(match.group(1)) * scale


def model_params_column(frame: pd.DataFrame) -> pd.Series:
    """Model parameters per row: the metric where recorded, else parsed from param.model_size."""
    params = frame["metric.model_params"] if "metric.model_params" in frame.columns else pd.Series(np.nan, index=frame.index)
    params = pd.to_numeric(params, errors="coerce")
    if "param.model_size" in frame.columns:
        params = params.fillna(frame["param.model_size"].map(model_size_params))
    return params.astype(float)


def workload_rows(frame: pd.DataFrame, workloads: tuple[str, ...]) -> pd.DataFrame:
    if "workload" not in frame.columns:
        return frame.iloc[0:0]
    return frame[frame["workload"].isin(workloads)]
