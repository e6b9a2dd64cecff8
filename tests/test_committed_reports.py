"""The committed study reports are what the report code makes of the committed results tables:
a change to the analysis that moves a guideline shows here, and the report is regenerated with it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greentop.cli import main

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path("docs") / "results"
REPORTS = {
    "report.md": ["cnn-h200", "transformer-h200", "llm-infer-h200", "llm-h200"],
    "dev-vm-cnn-cpu/report.md": ["dev-vm-cnn-cpu"],
    "h100-repeats/report.md": ["cnn-repeat-h100", "transformer-repeat-h100", "llm-infer-8b-repeat-h100", "serving-compiled-h100"],
}


@pytest.mark.parametrize("report", sorted(REPORTS))
def test_the_committed_report_is_what_the_code_makes_of_its_tables(report: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the report names its inputs by the paths it was given
    out = tmp_path / "out"
    assert main(["report", *(str(RESULTS / d) for d in REPORTS[report]), "-o", str(out)]) == 0
    made = (out / "report.md").read_text()
    committed = (RESULTS / report).read_text()
    assert made == committed, f"regenerate {RESULTS / report} (docs/results/README.md says how)"
    assert os.path.isfile(out / "energy_per_sample_vs_batch_size.png")
