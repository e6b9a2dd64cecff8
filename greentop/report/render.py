"""The report as Markdown: inputs, guidelines, totals, figures, sensitivity, energy model, Pareto."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from greentop.formatters import J_PER_WH
from greentop.formatters import sig as _g
from greentop.report import figures
from greentop.report.guidelines import Guideline
from greentop.report.load import Results
from greentop.report.model import EnergyModel
from greentop.report.pareto import ParetoPoint
from greentop.report.repeats import ASSUMED_NOISE, repeat_rows
from greentop.report.sensitivity import SensitivityRow
from greentop.report.totals import Totals


@dataclass
class ReportParts:
    results: Results
    totals: Totals
    guidelines: list[Guideline]
    plots: dict[figures.Figure, Path | str]
    sensitivity: list[SensitivityRow]
    models: list[EnergyModel]
    model_problems: list[str]
    pareto: list[ParetoPoint]


def table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _inputs(p: ReportParts) -> list[str]:
    from greentop.report.load import shown

    rows = [[shown(t.path), str(t.rows), str(t.ok_rows), str(t.schema_version or "–"), f"{t.traces_found}/{t.traces_listed}"]
            for t in p.results.tables]
    out = ["## Inputs", "", table(["results table", "rows", "ok rows", "schema", "traces found"], rows), ""]
    if p.results.notes:
        out += ["Notes:", ""] + [f"- {n}" for n in p.results.notes] + [""]
    return out


def _totals(t: Totals) -> list[str]:
    out = ["## Energy and carbon totals", "", f"{figures.CARBON_TABLE}.", ""]
    def mark(estimated: bool) -> str:
        return " *" if estimated else ""

    rows = [[w, str(n), _g(e / J_PER_WH) + mark(w in t.estimated_workloads), _g(c) + mark(w in t.estimated_workloads)]
            for w, (n, e, c) in sorted(t.by_workload.items())]
    any_est = bool(t.estimated_workloads)
    rows.append(["**all**", str(t.runs), _g(t.energy_j / J_PER_WH) + mark(any_est), _g(t.gco2e) + mark(any_est)])
    out += [table(["workload", "runs", "energy (Wh)", "carbon (gCO2e)"], rows), ""]
    if any_est:
        out += [ESTIMATED_FOOTNOTE, ""]
    if t.gco2e is None:
        out.append("No gco2e column: carbon not available for these runs.")
    else:
        intensity = ", ".join(f"{v:g}" for v in t.intensities_g_per_kwh) or "not recorded"
        out.append(f"Carbon from {t.runs_with_carbon} of {t.runs} runs at a grid intensity of {intensity} gCO2e/kWh"
                   + (f" (source: {', '.join(t.sources)})." if t.sources else " (source not recorded in the table)."))
    if t.energy_above_idle_j is not None:
        out.append(f"Energy above the idle baseline: {_g(t.energy_above_idle_j / J_PER_WH)} Wh of {_g(t.energy_j / J_PER_WH)} Wh.")
    if t.duration_s is not None:
        out.append(f"Run time: {_g(t.duration_s / 3600.0)} h.")
    return out + [""]


ESTIMATED_FOOTNOTE = ("\\* includes an estimated share: greentop's CPU power model where no CPU energy sensor "
                      "was readable (the GPU share is measured).")


def _figures(p: ReportParts) -> list[str]:
    out = ["## Figures", ""]
    for fig, where in p.plots.items():
        if isinstance(where, Path):
            out += [f"**Figure {fig.number}.** {fig.title}. {fig.note}", "", f"![{fig.title}]({where.name})", ""]
        else:
            out += [f"**Figure {fig.number}.** {fig.title}: not drawn ({where}).", ""]
    return out


def _sensitivity(rows: list[SensitivityRow], estimated: set[str]) -> list[str]:
    out = ["## Sensitivity", "", f"{figures.SENSITIVITY_TABLE}: the change when one hyperparameter moves with every other "
           "parameter fixed (median over matched configurations; repeats collapsed to their median). Repeat spread is "
           "the median coefficient of variation of energy across repeats of the configurations compared.", ""]
    if not rows:
        return out + ["No hyperparameter was varied with the others held fixed.", ""]
    body = [[r.workload, r.param, f"{r.from_level} → {r.to_level}", str(r.n_pairs),
             f"{r.energy_change_pct:+.1f}% ({r.energy_change_min_pct:+.0f}…{r.energy_change_max_pct:+.0f})"
             + (" *" if r.workload in estimated else ""),
             "–" if r.accuracy_change_pts is None else f"{r.accuracy_change_pts:+.2f}",
             "–" if r.repeat_cv_pct is None else f"{r.repeat_cv_pct:.1f}%" + (" (change within noise)" if r.within_noise else "")]
            for r in rows]
    out += [table(["workload", "parameter", "levels", "pairs", "energy per unit, median (min…max)", "accuracy (pts)",
                   "repeat spread"], body), ""]
    return out + ([ESTIMATED_FOOTNOTE, ""] if any(r.workload in estimated for r in rows) else [])


def _repeats(frame: pd.DataFrame, estimated: set[str]) -> list[str]:
    out = ["## Repeats", "", f"{figures.REPEATS_TABLE}: configurations run more than once, their energy per unit (mean, "
           "lowest and highest run) and spread (half the range as a share of the mean). A difference smaller than the "
           "spreads of the two configurations compared is not called a finding.", ""]
    present = sorted(set(frame["workload"].dropna())) if "workload" in frame.columns else []
    rows: list[list[str]] = []
    once: list[str] = []
    for w in present:
        found = repeat_rows(frame, w)
        if not found:
            once.append(w)
        star = " *" if w in estimated else ""
        rows += [[w, r.configuration or "(one configuration)", str(r.n), _g(r.mean, 4) + star,
                  f"{_g(r.low, 4)} – {_g(r.high, 4)}", f"±{100 * r.spread:.1f}%"] for r in found]
    if rows:
        out += [table(["workload", "configuration", "runs", "energy per unit (mean)", "lowest – highest", "spread"], rows), ""]
        spreads = [100 * r.spread for w in present for r in repeat_rows(frame, w)]
        out += [f"Spreads range {min(spreads):.1f}–{max(spreads):.1f}% (median {float(np.median(spreads)):.1f}%).", ""]
    if once:
        out += [f"Run once per configuration (no spread measured; {ASSUMED_NOISE:.0%} assumed): {', '.join(once)}.", ""]
    return out + ([ESTIMATED_FOOTNOTE, ""] if rows and any(w in estimated for w in present) else [])


def _models(p: ReportParts) -> list[str]:
    from greentop.report.guidelines import check_direction

    out = ["## Energy model", "", f"{figures.MODEL_TABLE}: log(energy per unit) fitted as a linear function of the "
           "configuration (ordinary least squares, statsmodels). Coefficients of log features are exponents "
           "(energy ∝ x^b), given with their standard error and 95% confidence interval; categorical levels multiply "
           "by e^b against the first level. Constant and collinear features are dropped. Utilisation is measured, not "
           "chosen, so it is never a feature (it is collinear with the settings and would flip their signs): its range "
           "is given beside. An exponent becomes a guideline only if its 95% interval excludes 0 and every group of rows "
           "with the other settings fixed moves the same way (a change within twice the group's repeat spread counts as flat; "
           f"{ASSUMED_NOISE:.0%} is assumed for a group with no repeats, {figures.REPEATS_TABLE}). Ask it about a configuration not run with "
           "`greentop report RUNS --predict arch=...,batch_size=...`.", ""]
    for m in p.models:
        est = _estimated_note(m.rows)
        out += [f"### {m.workload}: {m.target}{' *' if est else ''}", "",
                f"{m.n_rows} points; R² {m.r2_train:.3f} in sample, **{m.r2_holdout:.3f} held out**; MAPE held out "
                f"**{m.mape_holdout_pct:.1f}%** ({m.holdout}); 95% prediction interval ×/÷ {math.exp(1.96 * m.sigma_log):.3g}; "
                f"condition number {m.condition_number:.3g}.", ""]
        rows = [["intercept", f"{m.coef[0]:+.4g}", _g(float(m.stderr[0])), "–", "log energy at all features 1 (log 0)", "–"]]
        for name, c, se in zip(m.features, m.coef[1:], m.stderr[1:]):
            meaning = (f"energy ∝ {name.removeprefix('log ')}^{c:.3g}" if name.startswith("log ")
                       else f"×{math.exp(c):.3g} vs {name.split('=')[0]}={m.categorical_levels.get(name.split('=')[0], ['?'])[0]}")
            ci = f"{c - 1.96 * se:+.3g} … {c + 1.96 * se:+.3g}" if math.isfinite(se) else "–"
            check = "–"
            if name.startswith("log "):
                d = check_direction(m, name)
                significant = math.isfinite(se) and abs(c) > 1.96 * se
                noise = ("noise from repeats" if d.measured_noise == d.groups else "noise assumed" if d.measured_noise == 0
                         else f"noise from repeats in {d.measured_noise}")
                check = (f"{d.agree} agree, {d.disagree} against, {d.flat} flat of {d.groups} groups; {noise}"
                         + ("" if d.supported and significant else " (no guideline)"))
            rows.append([name, f"{c:+.4g}", _g(float(se)), ci, meaning, check])
        out += [table(["feature", "coefficient", "std. error", "95% CI", "reads as", "rows (other settings fixed)"], rows), ""]
        if m.beside:
            out += ["Measured beside the model, not in it: " + "; ".join(
                f"{k} {lo:.3g}–{hi:.3g}" for k, (lo, hi) in sorted(m.beside.items())) + ".", ""]
        if m.dropped:
            out += ["Not in the model: " + "; ".join(f"{k} ({v})" for k, v in sorted(m.dropped.items())) + ".", ""]
        if est:
            out += [f"\\* {est}", ""]
    for problem in p.model_problems:
        out += [f"- Not fitted: {problem}."]
    if not p.models and not p.model_problems:
        out.append("No workload with energy per sample or per request to model.")
    return out + [""]


def _estimated_note(rows: pd.DataFrame) -> str:
    """A footnote when energies in these rows include an estimated share (e.g. greentop's CPU model)."""
    if "estimated" not in rows.columns:
        return ""
    flags = rows["estimated"].astype(str).str.lower().isin(("true", "1", "1.0"))
    if not flags.any():
        return ""
    return (f"Includes an estimated share in {int(flags.sum())} of {len(rows)} rows (the machine totals add greentop's "
            "estimated CPU energy to measured GPU energy).")


def _pareto(points: list[ParetoPoint], estimated: set[str]) -> list[str]:
    out = ["## Pareto front", "", f"{figures.PARETO_TABLE}: configurations no other beats on both energy per sample "
           f"and accuracy ({figures.PARETO.cite()}).", ""]
    front = sorted((p for p in points if p.on_front), key=lambda p: (p.workload, p.energy_per_sample_j))
    if not front:
        return out + ["No rows with both accuracy and energy per sample.", ""]
    rows = [[p.workload, p.label, _g(p.energy_per_sample_j, 4) + (" *" if p.workload in estimated else ""), _g(p.accuracy, 4)]
            for p in front]
    out += [table(["workload", "configuration", "energy per sample (J)", "accuracy"], rows),
            "", f"{len(front)} of {len(points)} configurations are on the front.", ""]
    return out + ([ESTIMATED_FOOTNOTE, ""] if any(p.workload in estimated for p in front) else [])


def render(p: ReportParts) -> str:
    out = ["# greentop report", ""]
    out += _inputs(p)
    out += ["## Guidelines", ""]
    est = p.totals.estimated_workloads
    star = " \\*"  # an escaped asterisk: a footnote mark, not emphasis
    out += [f"- {g.text}{star if g.estimated else ''} *({g.evidence})*" for g in p.guidelines] \
        or ["- The data supports no guideline yet (too few varied parameters)."]
    out += [""]
    if any(g.estimated for g in p.guidelines):
        out += [ESTIMATED_FOOTNOTE, ""]
    out += _totals(p.totals)
    out += _figures(p)
    out += _sensitivity(p.sensitivity, est)
    out += _models(p)
    out += _repeats(p.results.frame, est)
    out += _pareto(p.pareto, est)
    return "\n".join(out).rstrip() + "\n"
