"""Sensitivity: how energy per unit and accuracy change when one hyperparameter moves.

For each hyperparameter, points are matched on every other parameter (repeats aside), so a change
is measured with everything else held fixed. Numeric parameters compare adjacent levels
(64 -> 128); categorical ones compare each level with a reference (fp32 where present). The spread
across repeats says whether a change is larger than the run-to-run noise. A run that did not record
a parameter (it ran before the option existed) is no level of it: comparing it with one that did
would read whatever else differed between the runs as the option's effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from greentop.report.load import model_params_column
from greentop.report.model import target_column
from greentop.report.repeats import setting_text

NOT_HYPERPARAMETERS = {"repeat", "seed"}  # they vary to measure noise, not to change the run


@dataclass
class SensitivityRow:
    workload: str
    param: str
    from_level: str
    to_level: str
    n_pairs: int  # matched configurations (others fixed) with both levels
    energy_change_pct: float  # median relative change of energy per unit, %
    energy_change_min_pct: float
    energy_change_max_pct: float
    accuracy_change_pts: float | None  # median change in accuracy, percentage points
    repeat_cv_pct: float | None  # median coefficient of variation of energy across repeats, %

    @property
    def within_noise(self) -> bool:
        # Two standard deviations of repeat noise: smaller changes are not told apart from noise.
        return self.repeat_cv_pct is not None and abs(self.energy_change_pct) < 2 * self.repeat_cv_pct


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values.dropna(), errors="coerce").notna().all())


def _repeat_cv(rows: pd.DataFrame, params: list[str], target: str) -> dict[tuple[str, ...], float]:
    """Coefficient of variation of energy across repeats, per configuration (params without repeat)."""
    out: dict[tuple[str, ...], float] = {}
    if not params:
        return out
    for key, group in rows.groupby([rows[p].map(setting_text) for p in params]):
        e = group[target].to_numpy(dtype=float)
        if len(e) >= 2 and e.mean() > 0:
            out[tuple(key) if isinstance(key, tuple) else (key,)] = float(e.std(ddof=1) / e.mean())
    return out


def sensitivity(frame: pd.DataFrame, workload: str) -> list[SensitivityRow]:
    target = target_column(workload)
    if "workload" not in frame.columns or target not in frame.columns:
        return []
    rows = frame[(frame["workload"] == workload) & (pd.to_numeric(frame[target], errors="coerce") > 0)].copy()
    rows[target] = pd.to_numeric(rows[target])
    params = [c for c in rows.columns if c.startswith("param.") and c.removeprefix("param.") not in NOT_HYPERPARAMETERS
              and rows[c].notna().any()]
    has_acc = "metric.accuracy" in rows.columns and rows["metric.accuracy"].notna().any()
    if has_acc:
        acc = pd.to_numeric(rows["metric.accuracy"], errors="coerce")
        rows["_acc_pts"] = acc * (100.0 if acc.max() <= 1.0 else 1.0)  # fractions shown as points
    cv = _repeat_cv(rows, params, target)
    out: list[SensitivityRow] = []
    for p in params:
        recorded = rows[rows[p].notna()]
        if recorded[p].map(setting_text).nunique() < 2:
            continue
        others = [q for q in params if q != p]
        keyed = recorded.assign(_lvl=recorded[p].map(setting_text))
        ctx_cols = [keyed[q].map(setting_text).rename(q) for q in others]
        agg_cols = {target: "median"} | ({"_acc_pts": "median"} if has_acc else {})
        grouped = keyed.groupby(ctx_cols + [keyed["_lvl"]]).agg(agg_cols) if others else keyed.groupby("_lvl").agg(agg_cols)
        pairs = _level_pairs(p, keyed["_lvl"], model_params_column(keyed))
        for lo, hi in pairs:
            changes: list[float] = []
            acc_changes: list[float] = []
            cvs: list[float] = []
            contexts = grouped.index.droplevel(-1).unique() if others else [()]
            for ctx in contexts:
                ctx_t = ctx if isinstance(ctx, tuple) else (ctx,)
                try:
                    a = grouped.loc[ctx_t + (lo,)] if others else grouped.loc[lo]
                    b = grouped.loc[ctx_t + (hi,)] if others else grouped.loc[hi]
                except KeyError:
                    continue
                changes.append(float(b[target] / a[target] - 1.0))
                if has_acc and np.isfinite(a["_acc_pts"]) and np.isfinite(b["_acc_pts"]):
                    acc_changes.append(float(b["_acc_pts"] - a["_acc_pts"]))
                for lvl in (lo, hi):
                    key = _context_key(params, p, others, ctx_t, lvl)
                    if key in cv:
                        cvs.append(cv[key])
            if not changes:
                continue
            out.append(SensitivityRow(
                workload=workload, param=p.removeprefix("param."), from_level=lo, to_level=hi, n_pairs=len(changes),
                energy_change_pct=float(np.median(changes)) * 100, energy_change_min_pct=min(changes) * 100,
                energy_change_max_pct=max(changes) * 100,
                accuracy_change_pts=float(np.median(acc_changes)) if acc_changes else None,
                repeat_cv_pct=float(np.median(cvs)) * 100 if cvs else None,
            ))
    return out


def _level_pairs(param: str, levels: pd.Series, model_params: pd.Series) -> list[tuple[str, str]]:
    """Which levels to compare: adjacent ones where levels are ordered, else each against a reference."""
    names = list(levels.unique())
    if _is_numeric(levels):
        ordered = sorted(names, key=float)
        return list(zip(ordered, ordered[1:]))
    # Model sizes order by their parameter count (recorded, else read from the label: "tiny" < "0.1b" < "8b").
    sizes = model_params.groupby(levels).median().to_dict()
    if param == "param.model_size" and all(np.isfinite(sizes.get(n, np.nan)) for n in names):
        ordered = sorted(names, key=lambda n: sizes[n])  # "1b" < "8b" < "70b", not alphabetical
        return list(zip(ordered, ordered[1:]))
    counts = levels.value_counts()
    # fp32 is the natural baseline for precision; otherwise the most run level (ties: alphabetical).
    ref = next((r for r in ("fp32", "float32") if r in names), None) or sorted(names, key=lambda s: (-counts[s], s))[0]
    return [(ref, lv) for lv in sorted(names) if lv != ref]


def _context_key(params: list[str], p: str, others: list[str], ctx: tuple[str, ...], level: str) -> tuple[str, ...]:
    """The full configuration key (in ``params`` order) of one context at one level of ``p``."""
    values = dict(zip(others, ctx))
    values[p] = level
    return tuple(values[q] for q in params)
