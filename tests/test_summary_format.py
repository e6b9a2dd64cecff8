"""Summary formats: table, CSV, JSON and Markdown carry the same figures, readably or losslessly."""

from __future__ import annotations

import csv
import io
import json

import pytest

from greentop.attribution import TOTAL, RunSummary, summarise
from greentop.carbon import intensity_for
from greentop.summary_format import FORMATS, format_summary
from tests.test_attribution import build_trace


@pytest.fixture(scope="module")
def summary() -> RunSummary:
    value, source = intensity_for("DE", None)
    return summarise(build_trace(), value, carbon_source=source)


def test_csv_parses_back_with_one_row_per_phase_and_domain(summary: RunSummary) -> None:
    rows = list(csv.DictReader(io.StringIO(format_summary(summary, "csv"))))
    n_domains = len(summary.domains) + 1
    assert len(rows) == len(summary.rows) * n_domains
    assert {r["domain"] for r in rows} == {"cpu-package-0", "gpu-0", TOTAL}
    # Units in the column names, full precision in the values.
    for col in ("energy_j", "energy_uncertainty_j", "energy_wh", "average_w", "peak_w", "duration_s", "gco2e_g",
                "above_baseline_j", "exclusive_energy_j", "j_per_sample", "count_samples", "flag"):
        assert col in rows[0], col
    training_total = next(r for r in rows if r["phase"] == "training" and r["domain"] == TOTAL)
    row = summary.row("training")
    assert float(training_total["energy_j"]) == row.total.energy_j
    assert float(training_total["j_per_sample"]) == row.total.per_unit_j["samples"]
    assert float(training_total["count_samples"]) == 2000.0
    crash = next(r for r in rows if r["phase"] == "crash")
    assert crash["status"] == "crashed" and crash["j_per_sample"] == ""
    blip_gpu = next(r for r in rows if r["phase"] == "blip" and r["domain"] == "gpu-0")
    assert "shorter than sensor update period" in blip_gpu["flag"]
    assert [r["phase"] for r in rows[:: n_domains]][:3] == ["run", "idle baseline", "training"]


def test_json_has_everything_including_carbon_source_and_schema(summary: RunSummary) -> None:
    doc = json.loads(format_summary(summary, "json"))
    assert doc["format"] == "greentop-summary" and doc["schema_version"] == 1
    assert doc["carbon_g_per_kwh"] == summary.carbon_g_per_kwh
    assert "Our World in Data" in doc["carbon_source"] and "DE" in doc["carbon_source"]
    assert len(doc["rows"]) == len(summary.rows)
    training = next(r for r in doc["rows"] if r["name"] == "training")
    assert training["domains"][-1]["domain"] == TOTAL
    assert training["domains"][-1]["energy_j"] == summary.row("training").total.energy_j
    assert training["counts"] == {"samples": 2000.0}
    assert [d["domain"] for d in doc["domains"]] == ["cpu-package-0", "gpu-0"]
    assert doc["health"]["lanes"]["fast"]["late"] == 2


def test_table_is_readable_in_a_terminal(summary: RunSummary) -> None:
    text = format_summary(summary, "table", detail=True)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    for name in ("training", "epoch", "eval", "worker", "crash", "blip", "tail", "(untagged)", "idle baseline"):
        assert any(line.lstrip().startswith(name) for line in lines), name
    assert "= total" in text and "[crashed]" in text and "[unclosed]" in text
    assert "shorter than sensor update period" in text and "overlapping children" in text
    assert f"{summary.row('run').total.energy_j:.0f}" in text  # the run total, 2745 J
    assert "sampler health" in text and "carbon source" in text
    # Nested phases are indented under their parent.
    epoch = next(line for line in lines if line.lstrip().startswith("epoch"))
    assert epoch.startswith("  epoch")


def test_markdown_is_a_table_with_phases_and_totals(summary: RunSummary) -> None:
    text = format_summary(summary, "md")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(summary.rows) * (len(summary.domains) + 1)
    n_cols = table[0].count("|")
    assert all(line.count("|") - line.count("\\|") == n_cols for line in table)
    assert "**total**" in text and "training" in text and "· epoch" in text
    assert "crashed" in text and "Our World in Data" in text


def test_default_is_table_and_unknown_format_is_an_error(summary: RunSummary) -> None:
    assert format_summary(summary) == format_summary(summary, "table")
    assert set(FORMATS) == {"table", "csv", "json", "md"}
    with pytest.raises(ValueError, match="unknown summary format 'xml'"):
        format_summary(summary, "xml")


def test_formats_cope_with_a_run_without_baseline_or_counts() -> None:
    trace = build_trace()
    trace.baseline = None
    trace.counts = []
    s = summarise(trace, 100.0)
    for fmt in FORMATS:
        assert "training" in format_summary(s, fmt)
    assert "above J" not in format_summary(s, "table")
    rows = list(csv.DictReader(io.StringIO(format_summary(s, "csv"))))
    assert rows[0]["above_baseline_j"] == "" and "j_per_sample" not in rows[0]
    assert json.loads(format_summary(s, "json"))["baseline"] is None


@pytest.mark.parametrize("run, status", [
    ({"exit_code": 130, "interrupted": True}, "interrupted"),
    ({"exit_code": 137, "interrupted": False}, "killed (SIGKILL)"),
    ({"exit_code": 3, "interrupted": False}, "failed (exit 3)"),
])
def test_a_run_that_did_not_end_well_says_so_in_every_format(run: dict[str, object], status: str) -> None:
    trace = build_trace()
    trace.meta["run"] = run
    s = summarise(trace, 100.0, carbon_source="test")
    assert s.row("run").status == status
    for detail in (False, True):
        table = format_summary(s, "table", detail=detail)
        assert any(line.lstrip().startswith("run") and f"[{status}]" in line for line in table.splitlines())
    csv_rows = [r for r in csv.DictReader(io.StringIO(format_summary(s, "csv"))) if r["phase"] == "run"]
    assert csv_rows and {r["status"] for r in csv_rows} == {status}
    doc = json.loads(format_summary(s, "json"))
    assert next(r for r in doc["rows"] if r["name"] == "run")["status"] == status
    md_run = [line for line in format_summary(s, "md").splitlines() if line.startswith("| run")]
    assert md_run and status in md_run[0]


def test_a_run_that_exited_0_is_ok() -> None:
    trace = build_trace()
    trace.meta["run"] = {"exit_code": 0, "interrupted": False}
    assert summarise(trace, 100.0, carbon_source="test").row("run").status == "ok"
