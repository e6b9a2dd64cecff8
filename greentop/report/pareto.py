"""Accuracy against energy: the configurations no other beats on both (the Pareto front)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from greentop.report.sensitivity import NOT_HYPERPARAMETERS


@dataclass
class ParetoPoint:
    workload: str
    label: str  # the configuration, e.g. "resnet18 batch_size=64 precision=bf16"
    arch: str
    energy_per_sample_j: float
    accuracy: float
    on_front: bool


def front_mask(energy: npt.NDArray[np.float64], accuracy: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """True where no other point has energy <= and accuracy >= with one of them strictly better."""
    n = len(energy)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        no_worse = (energy <= energy[i]) & (accuracy >= accuracy[i])
        better = (energy < energy[i]) | (accuracy > accuracy[i])
        if np.any(no_worse & better):
            mask[i] = False
    return mask


def _label(row: pd.Series, params: list[str]) -> str:
    parts = [str(row.get("param.arch", ""))] if "param.arch" in params else []
    for p in params:
        if p == "param.arch":
            continue
        value = row[p]
        value = int(value) if isinstance(value, float) and value.is_integer() else value
        parts.append(f"{p.removeprefix('param.')}={value}")
    return " ".join(str(s) for s in parts if str(s))


def pareto_points(frame: pd.DataFrame, workload: str) -> list[ParetoPoint]:
    """One point per configuration (repeats collapsed to their median), front marked."""
    need = {"workload", "energy_per_sample_j", "metric.accuracy"}
    if not need <= set(frame.columns):
        return []
    rows = frame[frame["workload"] == workload].copy()
    rows["energy_per_sample_j"] = pd.to_numeric(rows["energy_per_sample_j"], errors="coerce")
    rows["metric.accuracy"] = pd.to_numeric(rows["metric.accuracy"], errors="coerce")
    rows = rows[(rows["energy_per_sample_j"] > 0) & rows["metric.accuracy"].notna()]
    if rows.empty:
        return []
    params = [c for c in rows.columns if c.startswith("param.") and c.removeprefix("param.") not in NOT_HYPERPARAMETERS
              and rows[c].nunique(dropna=True) > 1]
    if "param.arch" in rows.columns and "param.arch" not in params:
        params.insert(0, "param.arch")
    keys = [rows[p].astype(str) for p in params] if params else [pd.Series("all", index=rows.index)]
    configs = rows.groupby(keys, sort=True).agg(
        energy=("energy_per_sample_j", "median"), accuracy=("metric.accuracy", "median"), first=("energy_per_sample_j", lambda s: s.index[0]))
    energy = configs["energy"].to_numpy(dtype=float)
    accuracy = configs["accuracy"].to_numpy(dtype=float)
    on = front_mask(energy, accuracy)
    out = []
    for (_, cfg), front in zip(configs.iterrows(), on):
        row = rows.loc[cfg["first"]]
        out.append(ParetoPoint(workload, _label(row, params) or workload, str(row.get("param.arch", "")),
                               float(cfg["energy"]), float(cfg["accuracy"]), bool(front)))
    return out
