"""Energy model: log(energy per unit) as a linear function of the configuration.

One model per workload kind (train, infer: energy per sample; llm-infer, serve: energy per request),
because the kinds differ in what a unit of work is. In log space a power law
``E = a * params^b * batch^c`` becomes linear, so the coefficients of log features read as
exponents. Only what a user chooses is a feature (model, batch, lengths, rate, precision, engine,
power limit). Utilisation is a consequence of those choices, not a knob: as a covariate it is collinear
with them and flips their signs (the H200 study's serve fit read model_params^-0.47 with it,
+0.22 without, while every rate's rows rose with size), so it is only reported beside the model.
Ordinary least squares from statsmodels, with standard errors and the design's condition number;
fit quality is measured on points the fit did not see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from greentop.report.load import DISCRIMINATIVE, GENERATIVE, model_params_column, model_size_params

# (feature name, column, transform). Order matters: when two features are collinear
# (model_params and model_macs across two architectures) the earlier one is kept.
LOG_FEATURES: tuple[tuple[str, str], ...] = (
    ("model_params", "metric.model_params"),
    ("model_macs", "metric.model_macs"),
    ("batch_size", "param.batch_size"),
    ("seq_len", "param.seq_len"),
    ("image_size", "param.image_size"),
    ("prompt_len", "param.prompt_len"),
    ("output_len", "param.output_len"),
    ("rate", "param.rate"),
    ("max_batch_size", "param.max_batch_size"),
    ("gpu_power_limit_w", "hw.gpu_power_limit_w"),
)
# Measured, not chosen: reported beside the model (their range over the rows), never fitted.
BESIDE: tuple[tuple[str, str], ...] = (("gpu_util_pct", "metric.gpu_util_pct"), ("cpu_util_pct", "metric.cpu_util_pct"))
CATEGORICAL_FEATURES: tuple[tuple[str, str], ...] = (("precision", "param.precision"), ("engine", "param.engine"))
IDENTITY_KEYS = ("arch", "model_size")  # what names a model; params/MACs are looked up from it

MIN_COVERAGE = 0.9  # a feature missing in more rows than this drops out rather than the rows
LOO_MAX_ROWS = 40  # up to here leave-one-out; above, every 5th point (by point id) is held out
Z_95 = 1.96


def target_column(workload: str) -> str:
    return "energy_per_sample_j" if workload in DISCRIMINATIVE else "energy_per_request_j"


@dataclass
class EnergyModel:
    workload: str
    target: str  # the column modelled, e.g. energy_per_sample_j
    features: list[str]  # design columns after the intercept: "log batch_size", "gpu_util_pct", "precision=bf16"
    coef: npt.NDArray[np.float64]  # intercept first, then one per feature
    stderr: npt.NDArray[np.float64]  # the coefficients' standard errors, same order
    condition_number: float  # of the design matrix (intercept included): large means features nearly collinear
    n_rows: int
    r2_train: float
    r2_holdout: float  # on log energy, points not in the fit
    mape_holdout_pct: float  # on energy itself
    holdout: str  # how points were held out
    sigma_log: float  # RMS held-out residual in log space: the prediction interval's width
    categorical_levels: dict[str, list[str]] = field(default_factory=dict)  # first level is the reference
    dropped: dict[str, str] = field(default_factory=dict)  # feature -> why it is not in the model
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # the rows fitted, for lookups when predicting
    beside: dict[str, tuple[float, float]] = field(default_factory=dict)  # measured, not fitted: (min, max) over the rows

    def coefficient(self, feature: str) -> float:
        return float(self.coef[1 + self.features.index(feature)])

    def standard_error(self, feature: str) -> float:
        return float(self.stderr[1 + self.features.index(feature)])


@dataclass
class Prediction:
    workload: str
    target: str
    value: float
    low: float
    high: float
    filled: dict[str, str]  # feature -> where its value came from, when the query did not give it


class ModelError(ValueError):
    """A model that cannot be fitted or a query it cannot answer."""


def _feature_values(rows: pd.DataFrame, column: str) -> pd.Series:
    if column == "metric.model_params":
        return model_params_column(rows)
    if column not in rows.columns:
        return pd.Series(np.nan, index=rows.index, dtype=float)
    return pd.to_numeric(rows[column], errors="coerce").astype(float)


def _candidate_columns(rows: pd.DataFrame) -> tuple[dict[str, npt.NDArray[np.float64]], dict[str, list[str]], dict[str, str]]:
    """Feature columns worth fitting (enough coverage, not constant), their levels, and why others are out."""
    cols: dict[str, npt.NDArray[np.float64]] = {}
    levels: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    for name, column in LOG_FEATURES:
        v = _feature_values(rows, column).to_numpy()
        v = np.where(v > 0, v, np.nan)
        if np.isfinite(v).mean() < MIN_COVERAGE:
            if np.isfinite(v).any():
                dropped[name] = "missing in too many rows"
            continue
        cols[f"log {name}"] = np.log(v)
    for name, column in CATEGORICAL_FEATURES:
        if column not in rows.columns or rows[column].isna().mean() > 1 - MIN_COVERAGE:
            continue
        values = rows[column].astype("string")
        present = sorted(values.dropna().unique(), key=lambda s: (s not in ("fp32", "float32"), s))
        if len(present) < 2:
            dropped[name] = "constant"
            continue
        levels[name] = [str(p) for p in present]
        for level in present[1:]:
            cols[f"{name}={level}"] = np.where(values.isna(), np.nan, (values == level).astype(float)).astype(float)
    for key in list(cols):
        finite = cols[key][np.isfinite(cols[key])]
        if finite.size and np.ptp(finite) < 1e-12:
            dropped[key.removeprefix("log ")] = "constant"
            del cols[key]
    return cols, levels, dropped


def _independent(x: npt.NDArray[np.float64], names: list[str], dropped: dict[str, str]) -> list[int]:
    """Columns kept in order, each only if it adds rank (collinear ones cannot be told apart)."""
    keep: list[int] = []
    ones = np.ones((x.shape[0], 1))
    for j in range(x.shape[1]):
        trial = np.hstack([ones, x[:, keep + [j]]])
        if np.linalg.matrix_rank(trial, tol=1e-8 * max(1.0, float(np.abs(trial).max()))) == trial.shape[1]:
            keep.append(j)
        else:
            dropped[names[j].removeprefix("log ")] = "collinear with features kept before it"
    return keep


def _ols(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Any:
    """statsmodels' OLS on [1, x]: params, bse, condition_number."""
    try:
        import statsmodels.api as sm
    except ImportError:
        raise ModelError("the energy model needs statsmodels (pip install 'greentop[report]')") from None

    return sm.OLS(y, np.hstack([np.ones((x.shape[0], 1)), x])).fit()


def _lstsq(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(_ols(x, y).params, dtype=np.float64)


def _beside(rows: pd.DataFrame) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for name, column in BESIDE:
        v = _feature_values(rows, column).dropna()
        if not v.empty:
            out[name] = (float(v.min()), float(v.max()))
    return out


def _r2(y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]) -> float:
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def _holdout_predictions(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], order: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], str]:
    """Predictions for points the fit did not see: (held-out y, predicted y, method)."""
    n = len(y)
    if n <= LOO_MAX_ROWS:
        pred = np.empty(n)
        for i in range(n):
            mask = np.arange(n) != i
            coef = _lstsq(x[mask], y[mask])
            pred[i] = coef[0] + x[i] @ coef[1:]
        return y, pred, f"leave-one-out over {n} points"
    held = np.zeros(n, dtype=bool)
    held[order[4::5]] = True  # deterministic: every 5th point in point-id order
    coef = _lstsq(x[~held], y[~held])
    return y[held], coef[0] + x[held] @ coef[1:], f"{int(held.sum())} of {n} points held out (every 5th by point id)"


def fit_workload(frame: pd.DataFrame, workload: str) -> EnergyModel:
    target = target_column(workload)
    rows = frame[frame.get("workload") == workload] if "workload" in frame.columns else frame.iloc[0:0]
    if target not in rows.columns:
        raise ModelError(f"{workload}: no {target} column")
    energy = pd.to_numeric(rows[target], errors="coerce")
    rows = rows[(energy > 0) & np.isfinite(energy)]
    if rows.empty:
        raise ModelError(f"{workload}: no rows with {target}")
    cols, levels, dropped = _candidate_columns(rows)
    names = list(cols)
    x = np.column_stack([cols[k] for k in names]) if names else np.empty((len(rows), 0))
    complete = np.isfinite(x).all(axis=1)
    rows, x = rows[complete], x[complete]
    y = np.log(pd.to_numeric(rows[target]).to_numpy(dtype=float))
    keep = _independent(x, names, dropped)
    names = [names[j] for j in keep]
    x = x[:, keep]
    if len(y) < x.shape[1] + 3:
        raise ModelError(f"{workload}: too few points ({len(y)}) to fit and check {x.shape[1]} features")
    fit = _ols(x, y)
    coef = np.asarray(fit.params, dtype=np.float64)
    with np.errstate(all="ignore"):  # a saturated fit has no residual variance: its errors are NaN, said so
        stderr = np.asarray(fit.bse, dtype=np.float64)
    fitted = coef[0] + x @ coef[1:]
    order = np.argsort(rows["point"].astype(str).to_numpy(), kind="stable") if "point" in rows.columns else np.arange(len(y))
    y_held, p_held, method = _holdout_predictions(x, y, order)
    resid = y_held - p_held
    return EnergyModel(
        workload=workload, target=target, features=names, coef=coef, stderr=stderr,
        condition_number=float(fit.condition_number), n_rows=len(y),
        r2_train=_r2(y, fitted), r2_holdout=_r2(y_held, p_held),
        mape_holdout_pct=float(np.mean(np.abs(np.expm1(-resid)))) * 100.0,  # |pred - true| / true
        holdout=method, sigma_log=float(np.sqrt(np.mean(resid**2))),
        categorical_levels={k: v for k, v in levels.items() if any(n.startswith(k + "=") for n in names)},
        dropped=dropped, rows=rows, beside=_beside(rows),
    )


def fit_all(frame: pd.DataFrame) -> tuple[list[EnergyModel], list[str]]:
    """A model per workload kind present; the second list says why any could not be fitted."""
    models: list[EnergyModel] = []
    problems: list[str] = []
    if "workload" not in frame.columns:
        return models, ["no workload column"]
    for workload in [w for w in (*DISCRIMINATIVE, *GENERATIVE) if w in set(frame["workload"].dropna())]:
        try:
            models.append(fit_workload(frame, workload))
        except ModelError as exc:
            problems.append(str(exc))
    return models, problems


# ---- prediction ---------------------------------------------------------------------------

def parse_query(text: str) -> dict[str, str]:
    """``arch=resnet50,batch_size=128`` -> {"arch": "resnet50", "batch_size": "128"}."""
    query: dict[str, str] = {}
    for part in [p for p in text.split(",") if p.strip()]:
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ModelError(f"--predict wants KEY=VAL[,KEY=VAL...], got {part!r}")
        query[key.strip().removeprefix("param.").removeprefix("metric.")] = value.strip()
    if not query:
        raise ModelError("--predict wants KEY=VAL[,KEY=VAL...]")
    return query


def _same(column: pd.Series, value: str) -> pd.Series:
    number = _to_float(value)
    if column.dtype.kind in "fiu" and number is not None:
        return np.isclose(column.astype(float), number)
    return column.astype(str) == value


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _has_param(rows: pd.DataFrame, key: str) -> bool:
    """The combined frame has every sweep's columns; only non-empty ones belong to these rows."""
    col = f"param.{key}"
    return col in rows.columns and bool(rows[col].notna().any())


def _matching(rows: pd.DataFrame, query: dict[str, str]) -> tuple[pd.DataFrame, str]:
    """Rows most like the query: all given params equal, else the same model, else all rows."""
    keyed = {k: v for k, v in query.items() if _has_param(rows, k)}
    identity = {k: v for k, v in keyed.items() if k in IDENTITY_KEYS}
    for subset, what in ((keyed, "rows with the same " + ", ".join(keyed)), (identity, "rows of the same " + ", ".join(identity))):
        if not subset:
            continue
        mask = pd.Series(True, index=rows.index)
        for k, v in subset.items():
            mask &= _same(rows[f"param.{k}"], v)
        if mask.any():
            return rows[mask], what
    return rows, "all rows"


def predict(model: EnergyModel, query: dict[str, str]) -> Prediction:
    if "workload" in query and query["workload"] != model.workload:
        raise ModelError(f"query is for workload {query['workload']}")
    rows = model.rows
    for key in IDENTITY_KEYS:
        if key in query and _has_param(rows, key) and not _same(rows[f"param.{key}"], query[key]).any():
            if not ("model_params" in query or (key == "model_size" and math.isfinite(model_size_params(query[key])))):
                raise ModelError(f"{model.workload}: {key}={query[key]} not in the data; give model_params=N (and model_macs=N) too")
    known = {n.removeprefix("log ").split("=", 1)[0] for n in model.features} | {"workload", "model_params", "model_macs"}
    for key in query:
        if key not in known and not _has_param(rows, key):
            raise ModelError(f"{model.workload}: no parameter {key} in its rows")
    near, near_what = _matching(rows, query)
    x: list[float] = []
    filled: dict[str, str] = {}
    columns = dict(LOG_FEATURES)
    for feature in model.features:
        if "=" in feature:  # one-hot categorical
            name, level = feature.split("=", 1)
            given = query.get(name)
            if given is None:
                given = str(near[f"param.{name}"].mode().iloc[0])
                filled[name] = f"{given} (most common in {near_what})"
            if given not in model.categorical_levels.get(name, []):
                raise ModelError(f"{model.workload}: {name}={given} not seen in the data (seen: {', '.join(model.categorical_levels.get(name, []))})")
            x.append(1.0 if given == level else 0.0)
            continue
        is_log = feature.startswith("log ")
        name = feature.removeprefix("log ")
        value = _to_float(query[name]) if name in query else None
        if name in query and value is None:
            raise ModelError(f"{name}={query[name]} is not a number")
        if value is None and name == "model_params" and "model_size" in query and not near_what.startswith(("rows with", "rows of")):
            value = model_size_params(query["model_size"]) if math.isfinite(model_size_params(query["model_size"])) else None
            if value is not None:
                filled[name] = f"{value:g} (from model_size={query['model_size']}, not in the data)"
        if value is None:
            series = _feature_values(near, columns[name]).dropna()
            if series.empty:
                raise ModelError(f"{model.workload}: give {name}=VALUE (no rows to look it up from)")
            value = float(series.median())
            filled[name] = f"{value:g} (median of {near_what})"
        if is_log and value <= 0:
            raise ModelError(f"{name} must be > 0, got {value:g}")
        x.append(math.log(value) if is_log else value)
    log_e = float(model.coef[0] + np.dot(model.coef[1:], np.array(x)))
    spread = Z_95 * model.sigma_log
    return Prediction(model.workload, model.target, math.exp(log_e), math.exp(log_e - spread), math.exp(log_e + spread), filled)


def predict_any(models: list[EnergyModel], query: dict[str, str]) -> tuple[list[Prediction], list[str]]:
    """Predictions from every model that can answer the query, and why the others cannot."""
    out: list[Prediction] = []
    why: list[str] = []
    for m in models:
        try:
            out.append(predict(m, query))
        except ModelError as exc:
            why.append(str(exc))
    return out, why
