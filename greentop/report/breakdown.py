"""Per-phase energy split of runs, and the other tables the figures draw (one computation each,
shared by plots and guidelines so a guideline and its figure never disagree)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from greentop.report.load import model_params_column, model_size_params

# Phases that normally have no children, so their inclusive energy is also their exclusive energy
# (used only when a table lacks the exclusive columns).
LEAF_PHASES = ("data-loading", "forward", "backward", "optimizer", "evaluation", "warmup", "load-model", "prefill", "decode")
PHASE_ORDER = ("load-model", "warmup", "data-loading", "forward", "backward", "optimizer", "train", "epoch", "evaluation",
               "inference", "generate", "prefill", "decode", "serve")
IDLE = "idle"
OUTSIDE = "outside phases"
_EXCL = re.compile(r"^phase\.(.+)\.exclusive_energy_j$")


def group_label(frame: pd.DataFrame) -> pd.Series:
    """workload and model name per row: "train resnet18", "serve 8b"."""
    workload = frame["workload"].astype(str) if "workload" in frame.columns else pd.Series("run", index=frame.index)
    name = pd.Series("", index=frame.index)
    for col in ("param.arch", "param.model_size"):
        if col in frame.columns:
            name = name.where(name != "", frame[col].fillna("").astype(str))
    return (workload + " " + name).str.strip()


def phase_split(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean share of run energy (fractions summing to 1) per group label and phase, plus idle.

    Idle is the idle power times the run's duration. The rest (energy above idle) is split between
    phases in proportion to their exclusive energy, so nested phases are never counted twice;
    energy outside every phase is its own share.
    """
    if "energy_j" not in frame.columns:
        return pd.DataFrame()
    phases = {m.group(1): c for c in frame.columns if (m := _EXCL.match(c))}
    for leaf in LEAF_PHASES:
        if leaf not in phases and f"phase.{leaf}.energy_j" in frame.columns:
            phases[leaf] = f"phase.{leaf}.energy_j"
    if not phases:
        return pd.DataFrame()
    total = pd.to_numeric(frame["energy_j"], errors="coerce")
    ok = total > 0
    total = total[ok]
    rows = frame[ok]
    if rows.empty:
        return pd.DataFrame()
    if {"idle_power_w", "duration_s"} <= set(rows.columns):
        idle = (pd.to_numeric(rows["idle_power_w"], errors="coerce") * pd.to_numeric(rows["duration_s"], errors="coerce")).fillna(0.0)
    elif "energy_above_idle_j" in rows.columns:
        idle = (total - pd.to_numeric(rows["energy_above_idle_j"], errors="coerce")).fillna(0.0)
    else:
        idle = pd.Series(0.0, index=rows.index)
    idle = idle.clip(lower=0.0).combine(total, min)
    parts = pd.DataFrame({name: pd.to_numeric(rows[col], errors="coerce").fillna(0.0).clip(lower=0.0) for name, col in phases.items()})
    outside = (total - parts.sum(axis=1)).clip(lower=0.0)
    covered = parts.sum(axis=1) + outside
    above_share = (total - idle) / total
    shares = parts.div(covered.where(covered > 0), axis=0).mul(above_share, axis=0)
    shares[OUTSIDE] = outside / covered.where(covered > 0) * above_share
    shares[IDLE] = idle / total
    shares = shares.fillna(0.0)
    result = shares.groupby(group_label(rows)).mean()
    keep = [c for c in result.columns if result[c].max() > 0.001]
    # Stack in the order work happens, idle last; groups by workload, then model size.
    order = {name: i for i, name in enumerate(PHASE_ORDER)}
    keep.sort(key=lambda c: (c == IDLE, c == OUTSIDE, order.get(c, len(order)), c))
    labels = sorted(result.index, key=_label_key)
    return result.loc[labels, keep]


def _label_key(label: str) -> tuple[str, float, str]:
    workload, _, name = label.partition(" ")
    size = model_size_params(name)
    return (workload, size if np.isfinite(size) else 0.0, name)


def per_arch_batch(frame: pd.DataFrame, workload: str) -> pd.DataFrame:
    """Median energy per sample per (arch, batch_size) for one workload: Figure 1's data."""
    need = {"workload", "param.batch_size", "energy_per_sample_j"}
    if not need <= set(frame.columns):
        return pd.DataFrame(columns=["arch", "batch_size", "energy_per_sample_j", "n"])
    rows = frame[frame["workload"] == workload]
    arch = rows["param.arch"].astype(str) if "param.arch" in rows.columns else pd.Series(workload, index=rows.index)
    if "param.precision" in rows.columns and rows["param.precision"].nunique() > 1:
        # Precision moves energy per sample by more than batch size can (bf16 emulated on a CPU:
        # 10x): a median over precisions would describe neither, so each gets its own line.
        arch = arch + " " + rows["param.precision"].astype(str)
    data = pd.DataFrame({"arch": arch, "batch_size": pd.to_numeric(rows["param.batch_size"], errors="coerce"),
                         "energy_per_sample_j": pd.to_numeric(rows["energy_per_sample_j"], errors="coerce")})
    data = data[(data["batch_size"] > 0) & (data["energy_per_sample_j"] > 0)]
    return (data.groupby(["arch", "batch_size"]).agg(energy_per_sample_j=("energy_per_sample_j", "median"), n=("energy_per_sample_j", "size"))
            .reset_index())


def generative_by_size_rate(frame: pd.DataFrame) -> pd.DataFrame:
    """Median energy per output token and per request per (workload, model params, rate): Figure 4's data.

    llm-infer runs have no request rate (offline batches); their rate is NaN.
    """
    if "workload" not in frame.columns:
        return pd.DataFrame()
    rows = frame[frame["workload"].isin(("llm-infer", "serve"))]
    if rows.empty:
        return pd.DataFrame()
    data = pd.DataFrame({
        "workload": rows["workload"],
        "model": rows["param.model_size"].astype(str) if "param.model_size" in rows.columns else "",
        "model_params": model_params_column(rows),
        "rate": pd.to_numeric(rows["param.rate"], errors="coerce") if "param.rate" in rows.columns else np.nan,
    })
    for col in ("energy_per_output_token_j", "energy_per_request_j"):
        data[col] = pd.to_numeric(rows[col], errors="coerce") if col in rows.columns else np.nan
    data = data[data["model_params"] > 0]
    data["rate"] = data["rate"].fillna(-1.0)  # groupby drops NaN keys; -1 stands for "no rate"
    out = data.groupby(["workload", "model", "model_params", "rate"]).median(numeric_only=True).reset_index()
    out["rate"] = out["rate"].where(out["rate"] >= 0)
    return out


def power_vs_util(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Average power and utilisation per run, and which utilisation it is (gpu or cpu)."""
    if "avg_power_w" not in frame.columns:
        return pd.DataFrame(), ""
    for col in ("metric.gpu_util_pct", "metric.cpu_util_pct"):
        if col in frame.columns and frame[col].notna().any():
            data = pd.DataFrame({"util_pct": pd.to_numeric(frame[col], errors="coerce"),
                                 "avg_power_w": pd.to_numeric(frame["avg_power_w"], errors="coerce"),
                                 "workload": frame["workload"] if "workload" in frame.columns else "run"}).dropna()
            return data, col.removeprefix("metric.")
    return pd.DataFrame(), ""
