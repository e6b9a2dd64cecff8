"""Guidelines drawn from the data, each naming the figure or table it rests on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from greentop.report import figures
from greentop.report.breakdown import IDLE, generative_by_size_rate, per_arch_batch, phase_split, power_vs_util
from greentop.report.load import DISCRIMINATIVE
from greentop.report.model import IDENTITY_KEYS, LOG_FEATURES, EnergyModel, _feature_values
from greentop.report.pareto import ParetoPoint
from greentop.report.repeats import noise_threshold, setting_columns, spread_by_configuration
from greentop.report.sensitivity import SensitivityRow
from greentop.report.totals import estimated_workloads


@dataclass
class Guideline:
    text: str
    evidence: str  # the figure or table it rests on
    estimated: bool = False  # the energies behind it include an estimated share


@dataclass
class BestBatch:
    workload: str
    arch: str
    batch_size: float
    energy_per_sample_j: float
    at_edge: bool  # the smallest or largest batch tried: the true minimum may lie beyond


@dataclass
class Crossover:
    small: str
    large: str
    rate_low: float | None  # last tested rate where the smaller model was the more efficient
    rate_high: float | None  # first tested rate from which the larger model stays the more efficient
    rate_estimate: float | None  # where the log-ratio crosses 1 (interpolated in log rate)
    tested: tuple[float, float]  # range of rates both models were run at




@dataclass
class DirectionCheck:
    feature: str  # "model_params"
    agree: int  # groups of rows (other settings fixed) moving the way the exponent says
    disagree: int  # moving the other way by more than the noise
    flat: int  # within the noise
    groups: int  # groups where the feature took two or more values
    measured_noise: int = 0  # groups whose noise threshold came from their own repeats (else assumed)

    @property
    def supported(self) -> bool:
        return self.agree > 0 and self.disagree == 0


def _other_settings(m: EnergyModel, feature: str) -> list[str]:
    """The configuration columns to hold fixed while ``feature`` moves: every parameter that varies
    in the rows except the feature's own and, for a model-derived feature (parameters, MACs), the
    model's name (which sets it)."""
    name = feature.removeprefix("log ")
    column = dict(LOG_FEATURES).get(name, f"param.{name.split('=', 1)[0]}")
    own = {column} | ({f"param.{k}" for k in IDENTITY_KEYS} if column.startswith("metric.") else set())
    return [c for c in setting_columns(m.rows) if c not in own]


def check_direction(m: EnergyModel, feature: str) -> DirectionCheck:
    """Does each group of rows with every other setting fixed move with ``feature`` the way its
    exponent says? The slope of log energy on log feature within a group, over the group's range."""
    name = feature.removeprefix("log ")
    x = np.log(_feature_values(m.rows, dict(LOG_FEATURES)[name]).to_numpy(dtype=float))
    y = np.log(pd.to_numeric(m.rows[m.target], errors="coerce").to_numpy(dtype=float))
    others = _other_settings(m, feature)
    if others:
        keys = m.rows[others].astype("string").fillna("<NA>")
        group_ids = keys.groupby(others, dropna=False).ngroup().to_numpy()
    else:
        group_ids = np.zeros(len(x), dtype=int)
    sign = np.sign(m.coefficient(feature))
    # A group's threshold is its own repeat spread where it has repeats: a change the runs of one
    # configuration already show is not a direction.
    spreads = spread_by_configuration(m.rows, m.target, setting_columns(m.rows)).to_numpy(dtype=float)
    agree = disagree = flat = groups = measured = 0
    for g in np.unique(group_ids):
        sel = (group_ids == g) & np.isfinite(x) & np.isfinite(y)
        if len(np.unique(np.round(x[sel], 9))) < 2:
            continue
        groups += 1
        noise, from_repeats = noise_threshold(spreads[sel])
        measured += from_repeats
        slope = np.polyfit(x[sel], y[sel], 1)[0]
        change = slope * float(np.ptp(x[sel]))
        if abs(change) <= math.log1p(noise):
            flat += 1
        elif np.sign(change) == sign:
            agree += 1
        else:
            disagree += 1
    return DirectionCheck(name, agree, disagree, flat, groups, measured)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def best_batch_sizes(frame: pd.DataFrame) -> list[BestBatch]:
    out: list[BestBatch] = []
    for workload in DISCRIMINATIVE:
        data = per_arch_batch(frame, workload)
        for arch, g in data.groupby("arch"):
            if g["batch_size"].nunique() < 2:
                continue
            best = g.loc[g["energy_per_sample_j"].idxmin()]
            edge = best["batch_size"] in (g["batch_size"].min(), g["batch_size"].max())
            out.append(BestBatch(workload, str(arch), float(best["batch_size"]), float(best["energy_per_sample_j"]), bool(edge)))
    return out


def crossovers(frame: pd.DataFrame) -> list[Crossover]:
    """Adjacent model sizes under serving: the rate above which the larger is cheaper per output token."""
    data = generative_by_size_rate(frame)
    if data.empty:
        return []
    data = data[(data["workload"] == "serve") & data["rate"].notna() & (data["energy_per_output_token_j"] > 0)]
    sizes = data.groupby("model_params")["model"].first().sort_index()
    out: list[Crossover] = []
    for (p_small, small), (p_large, large) in zip(sizes.items(), list(sizes.items())[1:]):
        a = data[data["model_params"] == p_small].set_index("rate")["energy_per_output_token_j"]
        b = data[data["model_params"] == p_large].set_index("rate")["energy_per_output_token_j"]
        rates = sorted(set(a.index) & set(b.index))
        if len(rates) < 2:
            continue
        ratio = np.log(np.array([b[r] / a[r] for r in rates]))  # < 0: the larger model is cheaper
        cheaper = ratio <= 0
        # The first rate from which the larger model stays cheaper at every higher rate tested.
        start = next((i for i in range(len(rates)) if cheaper[i:].all()), None)
        low = high = est = None
        if start is not None and start > 0:
            low, high = rates[start - 1], rates[start]
            r0, r1, y0, y1 = math.log(low), math.log(high), ratio[start - 1], ratio[start]
            est = math.exp(r0 + (r1 - r0) * y0 / (y0 - y1)) if y0 != y1 else high
        elif start == 0:
            high = rates[0]
        out.append(Crossover(str(small), str(large), low, high, est, (rates[0], rates[-1])))
    return out


def _crossover_text(c: Crossover) -> str:
    lo, hi = c.tested
    if c.rate_high is None:
        return (f"Serving: a larger model ({c.large}) becoming more energy efficient per output token than {c.small} "
                f"is not observed in this data (rates {_fmt(lo)}-{_fmt(hi)} req/s).")
    if c.rate_low is None:
        return (f"Serving: {c.large} uses no more energy per output token than {c.small} at every tested rate "
                f"({_fmt(lo)}-{_fmt(hi)} req/s).")
    return (f"Serving: above about {_fmt(c.rate_estimate or c.rate_high)} req/s (between the tested {_fmt(c.rate_low)} and "
            f"{_fmt(c.rate_high)} req/s) the larger {c.large} uses less energy per output token than {c.small}; "
            f"below it the smaller model is the more efficient.")


def _pareto_texts(points: list[ParetoPoint]) -> list[str]:
    by_workload: dict[str, list[ParetoPoint]] = {}
    for p in points:
        if p.on_front:
            by_workload.setdefault(p.workload, []).append(p)
    texts = []
    for workload, front in by_workload.items():
        if len({p.accuracy for p in points if p.workload == workload}) < 2:
            continue  # one accuracy for every configuration: nothing to trade energy against
        front.sort(key=lambda p: p.energy_per_sample_j)
        steps = [f"up to accuracy {_fmt(p.accuracy)}: {p.label} ({_fmt(p.energy_per_sample_j)} J/sample)" for p in front]
        texts.append(f"{workload}: the most energy-efficient choice per accuracy level is " + "; ".join(steps) + ".")
    return texts


def _batch_guidelines(best: list[BestBatch]) -> list[Guideline]:
    out: list[Guideline] = []
    by_workload: dict[str, list[BestBatch]] = {}
    for b in best:
        by_workload.setdefault(b.workload, []).append(b)
    for workload, items in by_workload.items():
        # Every architecture at the same edge says one thing about the range tried, not about each model.
        edges = {b.batch_size for b in items if b.at_edge}
        if len(items) > 1 and all(b.at_edge for b in items) and len(edges) == 1:
            out.append(Guideline(f"{workload}: for every architecture ({', '.join(b.arch for b in items)}) the same batch size, "
                                 f"{edges.pop():g}, at the edge of the range tried, minimises energy per sample: the minimum "
                                 "may lie beyond it.", figures.BATCH.cite()))
            continue
        for b in items:
            edge = " (the edge of the range tried: the minimum may lie beyond)" if b.at_edge else ""
            out.append(Guideline(f"{workload} {b.arch}: batch size {b.batch_size:g} minimises energy per sample "
                                 f"({_fmt(b.energy_per_sample_j)} J){edge}.", figures.BATCH.cite()))
    return out


def _phase_guidelines(split: pd.DataFrame) -> list[Guideline]:
    """Idle and overhead phases that take a large share, one line per workload (range over its models)."""
    out: list[Guideline] = []
    if split.empty:
        return out
    workload = split.index.to_series().str.split(" ").str[0]
    for w, shares in split.groupby(workload.to_numpy()):
        if IDLE in shares.columns and shares[IDLE].max() >= 0.3:
            out.append(Guideline(f"{w}: the device's idle draw is {_share_range(shares[IDLE])} of the run energy; more work "
                                 "per device (larger batches, higher request rates) spreads it.", figures.PHASES.cite()))
        for phase in ("data-loading", "evaluation", "load-model", "warmup"):
            if phase in shares.columns and shares[phase].max() >= 0.15:
                out.append(Guideline(f"{w}: {phase} takes {_share_range(shares[phase])} of the run energy.", figures.PHASES.cite()))
    return out


def _share_range(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:.0%}" if round(lo * 100) == round(hi * 100) else f"{lo:.0%}–{hi:.0%}"


def build(frame: pd.DataFrame, pareto: list[ParetoPoint], sens: list[SensitivityRow], models: list[EnergyModel]) -> list[Guideline]:
    out = _build(frame, pareto, sens, models)
    est = estimated_workloads(frame)
    for g in out:
        # A guideline names its workload first ("train: ...", "serve: ...", "Serving: ..."); one
        # that names none (power against utilisation) rests on every row.
        head = g.text.split(":", 1)[0].split(" ", 1)[0]
        head = "serve" if head == "Serving" else head
        g.estimated = head in est if head in set(frame.get("workload", pd.Series(dtype=str)).dropna()) else bool(est)
    return out


def _build(frame: pd.DataFrame, pareto: list[ParetoPoint], sens: list[SensitivityRow], models: list[EnergyModel]) -> list[Guideline]:
    out: list[Guideline] = []
    out += _batch_guidelines(best_batch_sizes(frame))
    out += [Guideline(t, f"{figures.PARETO.cite()}, {figures.PARETO_TABLE}") for t in _pareto_texts(pareto)]
    for s in sens:
        if s.param != "precision":
            continue
        acc = f", accuracy {s.accuracy_change_pts:+.2g} pts" if s.accuracy_change_pts is not None else ""
        noise = " (within repeat noise)" if s.within_noise else ""
        out.append(Guideline(f"{s.workload}: {s.to_level} instead of {s.from_level} changes energy per unit by "
                             f"{s.energy_change_pct:+.0f}% (median of {s.n_pairs} matched configurations{acc}){noise}.",
                             figures.SENSITIVITY_TABLE))
    for c in crossovers(frame):
        out.append(Guideline(_crossover_text(c), figures.GENERATIVE.cite()))
    if not any(c for c in crossovers(frame)) and "workload" in frame.columns and (frame["workload"] == "serve").any():
        out.append(Guideline("Serving: no pair of model sizes was run at two or more common request rates, so no "
                             "crossover rate can be read from this data.", figures.GENERATIVE.cite()))
    data, util = power_vs_util(frame)
    if len(data) >= 3 and data["util_pct"].nunique() > 1:
        slope, intercept = np.polyfit(data["util_pct"], data["avg_power_w"], 1)
        # A large intercept means a device draws much of its power whatever it does: work packed
        # onto fewer, busier devices then costs less per unit.
        busy = data["avg_power_w"].max()
        moral = (": much of the power is drawn whatever the load, so busier devices cost less per unit of work"
                 if intercept > 0.3 * busy else "")
        span = float(data["util_pct"].max() - data["util_pct"].min())
        if span < 20:
            # A slope read over a few points of utilisation is noise, not a power model.
            out.append(Guideline(f"Utilisation ({util}) only spans {span:.3g} points over {len(data)} runs "
                                 f"(average power {data['avg_power_w'].min():.3g}-{busy:.3g} W): too narrow to say "
                                 f"how power follows load{moral and ''}.", figures.POWER.cite()))
        else:
            trend = "rises" if slope >= 0 else "falls"
            out.append(Guideline(f"Average power {trend} about {abs(slope) * 10:.3g} W per 10 points of {util} "
                                 f"(about {intercept:.3g} W extrapolated to 0%, fit over {len(data)} runs){moral}.",
                                 figures.POWER.cite()))
    out += _phase_guidelines(phase_split(frame))
    for m in models:
        terms = []
        for f in m.features:
            if not f.startswith("log "):
                continue
            if not check_direction(m, f).supported:
                continue  # the rows do not all move this way: no guideline (Table M says why)
            se = m.standard_error(f)
            if not (math.isfinite(se) and abs(m.coefficient(f)) > 1.96 * se):
                continue  # its 95% interval includes 0: no direction to state
            err = f" ± {se:.2f}" if math.isfinite(se) else ""
            terms.append(f"{f.removeprefix('log ')}^{m.coefficient(f):+.2f}{err}")
        if terms:
            out.append(Guideline(f"{m.workload}: {m.target} scales as {', '.join(terms)} (exponent ± standard error; "
                                 f"held-out R² {m.r2_holdout:.2f}; every group of rows with the other settings fixed "
                                 "moves this way).", figures.MODEL_TABLE))
    return out
