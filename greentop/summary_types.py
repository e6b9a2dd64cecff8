"""What a summary is made of: rows (``PhaseSummary``), their per-domain figures (``DomainSummary``),
the domains behind them (``DomainInfo``) and the whole run (``RunSummary``), with the row kinds
and flag texts. The arithmetic that fills them is in ``attribution``; the model is described there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from greentop.domains import CPU_TOTAL_PACKAGES

SCHEMA_VERSION = 1
TOTAL = "total"

KIND_RUN = "run"
KIND_BASELINE = "baseline"
KIND_PHASE = "phase"
KIND_UNTAGGED = "untagged"
NAME_RUN = "run"
NAME_BASELINE = "idle baseline"
NAME_UNTAGGED = "(untagged)"

FLAG_SHORT = "shorter than sensor update period"
FLAG_ESTIMATED = "estimated"
FLAG_INCLUDES_ESTIMATE = "includes estimate"
FLAG_OVERLAP = "overlapping children"
FLAG_OUTSIDE = "partly outside sensor data"
FLAG_NO_DATA = "no sensor data"
FLAG_RESET = "counter reset"
FLAG_GLITCH = "counter glitch skipped"
FLAG_STALLED = "counter stalled"
FLAG_GAP = "sensor gap"


@dataclass(frozen=True)
class DomainInfo:
    """One primary domain and the channel behind it, with what limits its precision."""

    domain: str  # display name: the channel's domain, "cpu (estimated)" for the CPU estimate
    channel: str
    source: str
    quantity: str  # "energy", "power", "cpu_busy"
    unit: str  # unit of the raw integer
    estimated: bool
    samples: int
    sample_interval_s: float | None  # median interval between samples
    update_period_s: float | None  # median interval between changes of the raw reading (None: < 2 changes)
    resolution_j: float  # energy of one raw unit, per boundary (counters, CPU estimate); 0 for gauges
    resolution_w: float  # power of one raw unit (gauges); 0 otherwise
    wraps: int
    backwards: int  # counter steps backwards that no wrap explains: resets (the same as ``resets``)
    note: str
    in_total: bool = True  # added into the machine total (psys beside the packages is shown, not added)
    resets: int = 0  # counter restarts (a step backwards no wrap explains): counted from the new value
    glitches: int = 0  # readings off the counter's track (implausible power), skipped
    reset_t_ns: list[int] = field(default_factory=list)
    glitch_t_ns: list[int] = field(default_factory=list)
    gaps_ns: list[tuple[int, int]] = field(default_factory=list)  # no readings (sensor gone or failing)
    stalls_ns: list[tuple[int, int]] = field(default_factory=list)  # read, but the counter did not move
    alternatives: list[str] = field(default_factory=list)  # other channels of the same domain, not taken


@dataclass(slots=True)  # not frozen: a long run has tens of thousands, and frozen init is slow
class DomainSummary:
    """Figures of one row for one domain (or the "total" of all primary domains)."""

    domain: str
    estimated: bool  # the domain is (or, for "total", includes) an estimate
    energy_j: float  # inclusive
    energy_wh: float
    energy_uncertainty_j: float  # worst-case bound, see the module docstring
    average_w: float  # energy_j / duration_s
    peak_w: float  # highest average over PEAK_WINDOW_S inside the row (the average if shorter)
    exclusive_energy_j: float  # not under any direct child
    exclusive_energy_uncertainty_j: float
    baseline_w: float | None  # idle power of this domain (None: no baseline window)
    above_baseline_j: float | None  # energy_j - baseline_w * duration_s
    above_baseline_uncertainty_j: float | None
    gco2e_g: float  # energy_j as kWh x carbon intensity
    per_unit_j: dict[str, float] = field(default_factory=dict)  # J per sample / token / request ...
    per_unit_above_baseline_j: dict[str, float] = field(default_factory=dict)
    flag: str = ""


@dataclass(slots=True)
class PhaseSummary:
    """One row: the run, the idle baseline, a phase, or the untagged remainder."""

    kind: str  # "run", "baseline", "phase", "untagged"
    name: str
    index: int  # index in TraceData.phases; -1 for the other kinds
    parent: int  # parent phase index; -1 at top level and for the other kinds
    depth: int  # 0 at top level (and for the other kinds)
    pid: int  # -1 for the other kinds
    status: str  # phases: "ok", "crashed", "unclosed", "interrupted"; the run: tracedata.run_status
    phase_id: str
    attrs: dict[str, Any]
    start_ns: int
    end_ns: int
    duration_s: float  # time covered (for "untagged": the sum of the gaps)
    exclusive_duration_s: float  # time not covered by any direct child
    counts: dict[str, float]  # work inside the row (inclusive)
    flag: str  # row-level flags ("overlapping children")
    domains: list[DomainSummary]  # one per primary domain, then "total"

    @property
    def total(self) -> DomainSummary:
        return self.domains[-1]

    def domain(self, name: str) -> DomainSummary:
        for d in self.domains:
            if d.domain == name:
                return d
        raise KeyError(name)


@dataclass
class RunSummary:
    schema_version: int
    carbon_g_per_kwh: float
    carbon_source: str
    peak_window_s: float
    run_start_ns: int
    run_end_ns: int
    baseline: tuple[int, int] | None
    complete: bool  # False: the recorder died before finalising the trace
    domains: list[DomainInfo]
    rows: list[PhaseSummary]
    meta: dict[str, Any]  # the trace's own metadata
    health: dict[str, Any]  # sampler health (overruns, read errors, dropped events ...)
    notes: list[str]
    cpu_total: str = CPU_TOTAL_PACKAGES  # what the CPU side of the machine total is ("packages" or "psys")
    machine_total: str = ""  # one line: what the "total" domain contains

    def row(self, name: str) -> PhaseSummary:
        """The first row with this name ("run", "idle baseline", "(untagged)", or a phase name)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def phase_rows(self) -> list[PhaseSummary]:
        return [r for r in self.rows if r.kind == KIND_PHASE]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
