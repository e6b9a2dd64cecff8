"""Repeat spread: how far the runs of one configuration lie apart, and what is therefore noise.

A configuration is a row's parameters without ``repeat`` (and without what names no setting: seed,
device, output paths). Its spread is half the range of its runs' energy per unit as a fraction of
their mean: two runs at 10.0 and 10.4 J read 10.2 J ± 2.0 %. A difference between two
configurations smaller than their spreads together is noise, not a finding; where a workload has no
repeats, ``ASSUMED_NOISE`` stands in and every output says it was assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from greentop.report.model import target_column

# Used only where no configuration was run twice: earlier repeat spreads on the H200 were a few
# per cent (0.1-3.4 % for the compiled LLM grid, docs/results/README.md).
ASSUMED_NOISE = 0.05
NOT_SETTINGS = ("param.repeat", "param.seed", "param.device", "param.model", "param.result", "param.out")


@dataclass(frozen=True)
class RepeatRow:
    """One configuration run two or more times."""

    workload: str
    configuration: str  # "arch=resnet50, batch_size=32" (the parameters that vary)
    n: int
    mean: float
    low: float
    high: float

    @property
    def spread(self) -> float:
        """Half the range as a fraction of the mean."""
        return (self.high - self.low) / 2 / self.mean if self.mean > 0 else float("nan")


def setting_columns(rows: pd.DataFrame) -> list[str]:
    """The parameters that vary between these rows and name a setting (not the repeat number)."""
    return [c for c in rows.columns if c.startswith("param.") and c not in NOT_SETTINGS
            and rows[c].astype("string").nunique(dropna=False) > 1]


def setting_text(value: object) -> str:
    """A setting as it was given: 32, not the 32.0 a column with gaps holds; "–" where unrecorded."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def configuration_keys(rows: pd.DataFrame, settings: list[str]) -> pd.Series:
    """One string per row naming its configuration."""
    if not settings:
        return pd.Series([""] * len(rows), index=rows.index, dtype="string")
    parts = [c.removeprefix("param.") + "=" + rows[c].map(setting_text) for c in settings]
    key = parts[0]
    for p in parts[1:]:
        key = key + ", " + p
    return key


def _workload_rows(frame: pd.DataFrame, workload: str) -> tuple[pd.DataFrame, str]:
    target = target_column(workload)
    if "workload" not in frame.columns or target not in frame.columns:
        return frame.iloc[0:0], target
    rows = frame[frame["workload"] == workload].copy()
    rows[target] = pd.to_numeric(rows[target], errors="coerce")
    return rows[rows[target] > 0], target


def repeat_rows(frame: pd.DataFrame, workload: str) -> list[RepeatRow]:
    """Every configuration of ``workload`` run at least twice, with its runs' energy per unit."""
    rows, target = _workload_rows(frame, workload)
    if rows.empty:
        return []
    keys = configuration_keys(rows, setting_columns(rows))
    out: list[RepeatRow] = []
    for key, group in rows.groupby(keys, sort=True):
        e = group[target].to_numpy(dtype=float)
        if len(e) >= 2:
            out.append(RepeatRow(workload, str(key), len(e), float(e.mean()), float(e.min()), float(e.max())))
    return out


def spread_by_configuration(rows: pd.DataFrame, target: str, settings: list[str]) -> pd.Series:
    """Per row, the spread of its configuration's runs (NaN where it ran once)."""
    keys = configuration_keys(rows, settings)
    e = pd.to_numeric(rows[target], errors="coerce")
    stats = e.groupby(keys).agg(["count", "min", "max", "mean"])
    spread = ((stats["max"] - stats["min"]) / 2 / stats["mean"]).where(stats["count"] >= 2)
    return keys.map(spread).astype(float)


def noise_threshold(spreads: np.ndarray) -> tuple[float, bool]:
    """The smallest change between two configurations that is not noise, and whether it was measured.

    Two configurations each with spread s differ by more than noise when their ranges cannot
    overlap: a change over 2 s. The median spread of the configurations involved stands for s."""
    measured = spreads[np.isfinite(spreads)]
    if measured.size == 0:
        return ASSUMED_NOISE, False
    return 2 * float(np.median(measured)), True
