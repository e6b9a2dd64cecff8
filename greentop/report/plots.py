"""The report's PNG figures (matplotlib, Agg: no display needed). Each returns its path, or the
reason it could not be drawn, so the report says what is missing instead of failing."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless machines, CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402
import pandas as pd  # noqa: E402

from greentop.report import figures  # noqa: E402
from greentop.report.breakdown import IDLE, OUTSIDE, generative_by_size_rate, per_arch_batch, phase_split, power_vs_util  # noqa: E402
from greentop.report.load import DISCRIMINATIVE  # noqa: E402
from greentop.report.pareto import ParetoPoint  # noqa: E402

DPI = 110


def _save(fig: Figure, out_dir: Path, figure: figures.Figure) -> Path:
    path = out_dir / figure.filename
    fig.suptitle(f"Figure {figure.number}. {figure.title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def batch_plot(frame: pd.DataFrame, out_dir: Path) -> Path | str:
    tables = {w: per_arch_batch(frame, w) for w in DISCRIMINATIVE}
    tables = {w: t for w, t in tables.items() if not t.empty}
    if not tables:
        return "no train/infer rows with param.batch_size and energy_per_sample_j"
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 4), squeeze=False)
    for ax, (workload, t) in zip(axes[0], tables.items()):
        # One colour per architecture, one line style per precision: more than ten lines would
        # otherwise repeat colours and read as one architecture.
        bases = sorted({str(a).split(" ")[0] for a in t["arch"]})
        colours = plt.get_cmap("tab10" if len(bases) <= 10 else "tab20")
        for arch, g in t.groupby("arch"):
            g = g.sort_values("batch_size")
            base, _, variant = str(arch).partition(" ")
            ax.plot(g["batch_size"], g["energy_per_sample_j"], marker="o", label=str(arch),
                    color=colours(bases.index(base) % colours.N), linestyle="--" if variant in ("bf16", "fp16") else "-")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 16, 32, ... rather than 2^4
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("energy per sample (J)")
        ax.set_title(workload)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out_dir, figures.BATCH)


def pareto_plot(points: list[ParetoPoint], out_dir: Path) -> Path | str:
    if not points:
        return "no rows with both metric.accuracy and energy_per_sample_j"
    workloads = sorted({p.workload for p in points})
    fig, axes = plt.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 4), squeeze=False)
    for ax, workload in zip(axes[0], workloads):
        pts = [p for p in points if p.workload == workload]
        for arch in sorted({p.arch for p in pts}):
            mine = [p for p in pts if p.arch == arch]
            ax.scatter([p.energy_per_sample_j for p in mine], [p.accuracy for p in mine], s=18, label=arch or workload)
        front = sorted((p for p in pts if p.on_front), key=lambda p: p.energy_per_sample_j)
        ax.plot([p.energy_per_sample_j for p in front], [p.accuracy for p in front], "k--", lw=1, drawstyle="steps-post")
        ax.scatter([p.energy_per_sample_j for p in front], [p.accuracy for p in front], s=80, facecolors="none",
                   edgecolors="k", label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("energy per sample (J)")
        ax.set_ylabel("accuracy")
        ax.set_title(workload)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    return _save(fig, out_dir, figures.PARETO)


def power_plot(frame: pd.DataFrame, out_dir: Path) -> Path | str:
    data, util = power_vs_util(frame)
    if data.empty:
        return "no avg_power_w with metric.gpu_util_pct or metric.cpu_util_pct"
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for workload, g in data.groupby("workload"):
        ax.scatter(g["util_pct"], g["avg_power_w"], s=16, label=str(workload))
    if len(data) >= 3 and data["util_pct"].nunique() > 1:  # the same straight line the guideline quotes
        slope, intercept = np.polyfit(data["util_pct"], data["avg_power_w"], 1)
        x = np.array([0.0, max(100.0, float(data["util_pct"].max()))])
        ax.plot(x, intercept + slope * x, "k:", lw=1, label=f"fit: {intercept:.0f} W + {slope:.2f} W/pt")
    ax.set_xlabel(f"{util} (%)")
    ax.set_ylabel("average power (W)")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return _save(fig, out_dir, figures.POWER)


def generative_plot(frame: pd.DataFrame, out_dir: Path) -> Path | str:
    data = generative_by_size_rate(frame)
    if data.empty:
        return "no llm-infer/serve rows with a model size"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, col, label in ((axes[0], "energy_per_output_token_j", "energy per output token (J)"),
                           (axes[1], "energy_per_request_j", "energy per request (J)")):
        for (workload, rate), g in data.groupby(["workload", data["rate"].fillna(-1.0)]):
            g = g[g[col] > 0].sort_values("model_params")
            if g.empty:
                continue
            name = f"{workload} {rate:g} req/s" if rate >= 0 else f"{workload} (offline)"
            ax.plot(g["model_params"], g[col], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("model parameters")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return _save(fig, out_dir, figures.GENERATIVE)


def phase_plot(frame: pd.DataFrame, out_dir: Path) -> Path | str:
    split = phase_split(frame)
    if split.empty:
        return "no phase.*.exclusive_energy_j (or leaf phase.*.energy_j) columns"
    fig, ax = plt.subplots(figsize=(max(5.5, 0.8 * len(split) + 3), 4.5))
    bottom = np.zeros(len(split))
    # Work phases in colour, never grey: greys are kept for idle and time outside every phase.
    tab10, set2 = plt.get_cmap("tab10"), plt.get_cmap("Set2")
    palette = [tab10(i) for i in range(10) if i != 7] + [set2(i) for i in range(8) if i != 7]
    fixed = {IDLE: "#d9d9d9", OUTSIDE: "#7f7f7f"}
    named = [c for c in split.columns if c not in fixed]
    for phase in split.columns:
        values = split[phase].to_numpy() * 100
        color = fixed.get(phase) or palette[named.index(phase) % len(palette)]
        ax.bar(split.index, values, bottom=bottom, label=phase, color=color, hatch="//" if phase == IDLE else None,
               edgecolor="white" if phase != IDLE else "#999999", linewidth=0.5)
        bottom += values
    ax.set_ylabel("share of run energy (%)")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, out_dir, figures.PHASES)


def draw_all(frame: pd.DataFrame, points: list[ParetoPoint], out_dir: Path) -> dict[figures.Figure, Path | str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        figures.BATCH: batch_plot(frame, out_dir),
        figures.PARETO: pareto_plot(points, out_dir),
        figures.POWER: power_plot(frame, out_dir),
        figures.GENERATIVE: generative_plot(frame, out_dir),
        figures.PHASES: phase_plot(frame, out_dir),
    }
