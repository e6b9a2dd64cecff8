"""The report's figures and tables, named once so guidelines can cite what they rest on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    number: int
    filename: str
    title: str
    note: str = ""  # how its data was reduced, for the caption

    def cite(self) -> str:
        return f"Figure {self.number} ({self.filename})"


BATCH = Figure(1, "energy_per_sample_vs_batch_size.png", "Energy per sample against batch size, per architecture",
               "One line per architecture (and precision, where it varies); median over every other parameter "
               "and repeat at each batch size; log axes.")
PARETO = Figure(2, "accuracy_vs_energy.png", "Accuracy against energy per sample, Pareto front marked",
                "One point per configuration (median over repeats); circled points are on the front, the dashed line joins them.")
POWER = Figure(3, "power_vs_utilisation.png", "Average power against utilisation",
               "One point per run: its average power and the workload's measured GPU (else CPU) utilisation.")
GENERATIVE = Figure(4, "generative_energy_vs_model_size.png", "Energy per output token and per request against model size, per request rate",
                    "Median over other parameters and repeats; llm-infer runs (offline, no request rate) form their own line.")
PHASES = Figure(5, "energy_by_phase.png", "Energy split by phase",
                "Mean share of run energy per workload and model. Idle is idle power × run duration; the energy above it "
                "is split between phases in proportion to their exclusive energy (nested phases never count twice).")
ALL = (BATCH, PARETO, POWER, GENERATIVE, PHASES)

SENSITIVITY_TABLE = "Table S (Sensitivity)"
MODEL_TABLE = "Table M (Energy model)"
PARETO_TABLE = "Table P (Pareto front)"
CARBON_TABLE = "Table C (Energy and carbon totals)"
REPEATS_TABLE = "Table R (Repeats)"
