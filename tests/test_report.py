"""greentop report: synthetic sweeps with known relationships, and the report must recover them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from greentop.cli import main
from greentop.report import analyse, load_results, write_report
from greentop.report.breakdown import phase_split
from greentop.report.guidelines import best_batch_sizes, crossovers
from greentop.report.model import fit_workload, parse_query, predict
from greentop.report.pareto import front_mask
from greentop.report.sensitivity import sensitivity

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# ---- synthetic sweeps ----------------------------------------------------------------------

# infer: energy per sample = 1e-7 * params^0.7 * batch^-0.4 * (0.6 if bf16), 2% noise
POWER_LAW = {"a": 0.7, "b": -0.4, "bf16": 0.6}
INFER_ARCHS = {"tiny": 1e6, "small": 4e6, "mid": 1.6e7, "large": 6.4e7, "huge": 2.5e8}
# train: U-shaped energy in log2(batch) with a known minimum per arch; accuracy set by arch only
TRAIN_ARCHS = {  # arch: (energy at the best batch J/sample, best batch, accuracy)
    "small": (1.0, 64, 0.80),
    "mid": (3.0, 128, 0.90),
    "big": (10.0, 32, 0.95),
    "wasteful": (5.0, 64, 0.85),  # dominated by "mid": more energy, less accuracy
}
TRAIN_BATCHES = (16, 32, 64, 128, 256)
# serve: energy per output token = k * rate^e per model size; 1b vs 8b cross at 3^(1/0.6) req/s
SERVE_MODELS = {"1b": (0.5, -0.2), "8b": (1.5, -0.8), "70b": (20.0, -0.8)}
SERVE_RATES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
CROSSOVER_RATE = 3.0 ** (1 / 0.6)


def _common(point: str, workload: str, primary: str, energy_j: float, duration_s: float, util: float) -> dict[str, Any]:
    idle_w = 100.0
    return {
        "schema_version": 1, "sweep": workload, "point": point, "status": "ok", "exit_code": 0,
        "trace": f"points/{point}.h5", "workload": workload, "primary_phase": primary,
        "hw.device_name": "Fake GPU", "hw.gpu_power_limit_w": 700,
        "duration_s": duration_s, "energy_j": energy_j, "energy_above_idle_j": energy_j - idle_w * duration_s,
        "avg_power_w": energy_j / duration_s, "peak_power_w": 1.2 * energy_j / duration_s, "idle_power_w": idle_w,
        "gco2e": energy_j / 3.6e6 * 400.0, "carbon_g_per_kwh": 400.0, "metric.gpu_util_pct": util,
    }


def infer_rows(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for arch, params in INFER_ARCHS.items():
        for batch in (1, 2, 4, 8, 16, 32, 64, 128, 256):
            for precision in ("fp32", "bf16"):
                for repeat in range(2):
                    e = 1e-7 * params ** POWER_LAW["a"] * batch ** POWER_LAW["b"] * (POWER_LAW["bf16"] if precision == "bf16" else 1.0)
                    e *= math.exp(rng.normal(0, 0.02))
                    samples = 10000
                    util = 100.0 * batch / (batch + 16)
                    total = e * samples * 1.1
                    duration = total / (150 + 5 * util)
                    point = f"inf-{arch}-{batch}-{precision}-{repeat}"
                    row = _common(point, "infer", "inference", total, duration, util)
                    row |= {"param.arch": arch, "param.batch_size": batch, "param.precision": precision, "param.repeat": repeat,
                            "metric.model_params": params, "metric.model_macs": params * 50, "metric.accuracy": 0.5,
                            "count.samples": samples, "energy_per_sample_j": e,
                            "phase.inference.energy_j": e * samples, "phase.inference.exclusive_energy_j": e * samples * 0.2,
                            "phase.forward.energy_j": e * samples * 0.8, "phase.forward.exclusive_energy_j": e * samples * 0.8,
                            "phase.load-model.exclusive_energy_j": total * 0.05}
                    rows.append(row)
    return rows


def train_rows(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for arch, (e_min, best, acc) in TRAIN_ARCHS.items():
        for batch in TRAIN_BATCHES:
            for precision in ("fp32", "bf16"):
                for repeat in range(3):
                    e = e_min * (1 + 0.3 * (math.log2(batch) - math.log2(best)) ** 2) * (0.7 if precision == "bf16" else 1.0)
                    e *= math.exp(rng.normal(0, 0.01))
                    samples = 5000
                    total = e * samples * 1.25
                    util = 40 + 10 * math.log2(batch / 16)
                    point = f"tr-{arch}-{batch}-{precision}-{repeat}"
                    row = _common(point, "train", "train", total, total / 400.0, util)
                    row |= {"param.arch": arch, "param.batch_size": batch, "param.precision": precision, "param.repeat": repeat,
                            "param.lr": 0.001, "metric.model_params": {"small": 1e6, "mid": 1e7, "big": 1e8, "wasteful": 5e7}[arch],
                            "metric.accuracy": acc, "metric.loss": 1 - acc, "count.samples": samples, "energy_per_sample_j": e,
                            "phase.train.energy_j": e * samples,
                            "phase.data-loading.exclusive_energy_j": total * 0.2, "phase.forward.exclusive_energy_j": total * 0.3,
                            "phase.backward.exclusive_energy_j": total * 0.3, "phase.optimizer.exclusive_energy_j": total * 0.1}
                    rows.append(row)
    return rows


def serve_rows(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for size, (k, exponent) in SERVE_MODELS.items():
        for rate in SERVE_RATES:
            for output_len in (128, 256):
                per_token = k * rate**exponent * math.exp(rng.normal(0, 0.005))
                requests = 100
                tokens = requests * output_len
                total = per_token * tokens * 1.05
                point = f"srv-{size}-{rate}-{output_len}"
                row = _common(point, "serve", "serve", total, total / 500.0, min(95.0, 10 * rate))
                row |= {"param.model_size": size, "param.rate": rate, "param.output_len": output_len, "param.prompt_len": 512,
                        "param.max_batch_size": 64, "count.requests": requests, "count.output_tokens": tokens,
                        "energy_per_output_token_j": per_token, "energy_per_request_j": per_token * output_len,
                        "phase.prefill.exclusive_energy_j": total * 0.1, "phase.decode.exclusive_energy_j": total * 0.8}
                rows.append(row)
    return rows


# llm-infer: energy per request = 2e-9 * params^0.9 * output_len * batch^-0.5, 1% noise
LLM_LAW = {"params": 0.9, "output_len": 1.0, "batch": -0.5}


def llm_rows(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for size, params in (("0.5b", 5e8), ("1.5b", 1.5e9), ("3b", 3e9), ("8b", 8e9)):
        for batch in (1, 4, 16):
            for output_len in (64, 256, 1024):
                e = 2e-9 * params ** LLM_LAW["params"] * output_len ** LLM_LAW["output_len"] * batch ** LLM_LAW["batch"]
                e *= math.exp(rng.normal(0, 0.01))
                requests = 32
                total = e * requests * 1.1
                point = f"llm-{size}-{batch}-{output_len}"
                row = _common(point, "llm-infer", "generate", total, total / 300.0, 20.0 + 20 * math.log2(batch + 1))
                row |= {"param.model_size": size, "param.batch_size": batch, "param.output_len": output_len, "param.prompt_len": 128,
                        "param.precision": "bf16", "metric.model_params": params, "count.requests": requests,
                        "count.output_tokens": requests * output_len, "energy_per_request_j": e,
                        "energy_per_output_token_j": e / output_len,
                        "phase.prefill.exclusive_energy_j": total * 0.05, "phase.decode.exclusive_energy_j": total * 0.85}
                rows.append(row)
    return rows


def write_sweep(folder: Path, rows: list[dict[str, Any]], traces: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    (folder / "sweep.toml").write_text("# synthetic\n")
    if traces:
        (folder / "points").mkdir(exist_ok=True)
        for r in rows:
            # Only the metadata the report reads; a real trace also holds channels and phases.
            with h5py.File(folder / r["trace"], "w") as f:
                f.create_group("meta").attrs.update({"carbon_source": "test grid", "carbon_g_per_kwh": 400.0})
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(6)
    write_sweep(root / "infer", infer_rows(rng))
    write_sweep(root / "train", train_rows(rng))
    write_sweep(root / "serve", serve_rows(rng), traces=False)
    write_sweep(root / "llm", llm_rows(rng))
    return root


@pytest.fixture(scope="module")
def report_dir(runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(runs), "-o", str(out)]) == 0
    return out


# ---- recovery of known relationships ---------------------------------------------------------

def test_energy_model_recovers_power_law_exponents(runs: Path) -> None:
    model = fit_workload(load_results([runs / "infer"]).frame, "infer")
    assert model.coefficient("log model_params") == pytest.approx(POWER_LAW["a"], abs=0.03)
    assert model.coefficient("log batch_size") == pytest.approx(POWER_LAW["b"], abs=0.03)
    assert model.coefficient("precision=bf16") == pytest.approx(math.log(POWER_LAW["bf16"]), abs=0.03)
    assert "model_macs" in model.dropped  # exactly proportional to params: collinear
    assert "gpu_power_limit_w" in model.dropped  # constant
    assert model.r2_holdout > 0.98
    assert model.mape_holdout_pct < 5
    assert "held out" in model.holdout


def test_generative_model_recovers_exponents(runs: Path) -> None:
    model = fit_workload(load_results([runs / "llm"]).frame, "llm-infer")
    assert model.target == "energy_per_request_j"
    assert model.coefficient("log model_params") == pytest.approx(LLM_LAW["params"], abs=0.03)
    assert model.coefficient("log output_len") == pytest.approx(LLM_LAW["output_len"], abs=0.03)
    assert model.coefficient("log batch_size") == pytest.approx(LLM_LAW["batch"], abs=0.05)
    assert model.holdout.startswith("leave-one-out")  # 36 points: small enough for LOO
    assert model.r2_holdout > 0.98


def test_phase_split_idle_and_phases(runs: Path) -> None:
    split = phase_split(load_results([runs / "train"]).frame)
    # train runs: idle 100 W of an average 400 W; data-loading is 20% of the exclusive energy, so 20% of the rest
    assert split.loc["train mid", "idle"] == pytest.approx(0.25)
    assert split.loc["train mid", "data-loading"] == pytest.approx(0.2 * 0.75)
    assert split.sum(axis=1).to_numpy() == pytest.approx(np.ones(len(split)))


def test_prediction_matches_the_law_with_an_interval(runs: Path) -> None:
    model = fit_workload(load_results([runs / "infer"]).frame, "infer")
    pr = predict(model, parse_query("arch=mid,batch_size=48,precision=bf16"))
    truth = 1e-7 * INFER_ARCHS["mid"] ** 0.7 * 48**-0.4 * 0.6
    assert pr.value == pytest.approx(truth, rel=0.06)
    assert pr.low < truth < pr.high
    assert "model_params" in pr.filled  # looked up from rows of the same arch


def test_pareto_front_members(runs: Path) -> None:
    parts = analyse(load_results([runs / "train"]))
    front = {(p.arch, p.label) for p in parts.pareto if p.on_front}
    expected = {(arch, f"{arch} batch_size={best} precision=bf16") for arch, (_, best, _) in TRAIN_ARCHS.items() if arch != "wasteful"}
    assert front == expected


def test_front_mask_on_a_constructed_set() -> None:
    energy = np.array([1.0, 2.0, 3.0, 2.5, 1.0])
    accuracy = np.array([0.7, 0.8, 0.9, 0.75, 0.6])
    assert front_mask(energy, accuracy).tolist() == [True, True, True, False, False]


def test_best_batch_size_per_arch(runs: Path) -> None:
    # precision varies in the grid: each (architecture, precision) gets its own optimum
    best = {b.arch: b for b in best_batch_sizes(load_results([runs / "train"]).frame) if b.workload == "train"}
    assert {a: b.batch_size for a, b in best.items()} == {f"{a} {p}": v[1] for a, v in TRAIN_ARCHS.items() for p in ("fp32", "bf16")}
    assert not best["mid fp32"].at_edge and not best["mid bf16"].at_edge
    infer_best = [b for b in best_batch_sizes(load_results([runs / "infer"]).frame)]
    assert all(b.batch_size == 256 and b.at_edge for b in infer_best)  # monotone: the largest tried, flagged


def test_crossover_rate(runs: Path) -> None:
    found = {(c.small, c.large): c for c in crossovers(load_results([runs / "serve"]).frame)}
    c = found[("1b", "8b")]
    assert (c.rate_low, c.rate_high) == (4.0, 8.0)
    assert c.rate_estimate == pytest.approx(CROSSOVER_RATE, rel=0.05)
    never = found[("8b", "70b")]
    assert never.rate_high is None


def test_sensitivity_precision_and_repeat_spread(runs: Path) -> None:
    rows = sensitivity(load_results([runs / "train"]).frame, "train")
    prec = next(r for r in rows if r.param == "precision")
    assert (prec.from_level, prec.to_level) == ("fp32", "bf16")
    assert prec.n_pairs == len(TRAIN_ARCHS) * len(TRAIN_BATCHES)
    assert prec.energy_change_pct == pytest.approx(-30, abs=2)
    assert prec.accuracy_change_pts == pytest.approx(0.0)
    assert prec.repeat_cv_pct is not None and 0.2 < prec.repeat_cv_pct < 3
    batch = [r for r in rows if r.param == "batch_size"]
    assert [(r.from_level, r.to_level) for r in batch] == [("16", "32"), ("32", "64"), ("64", "128"), ("128", "256")]
    assert "repeat" not in {r.param for r in rows}


def test_sensitivity_orders_model_sizes_by_parameters(runs: Path) -> None:
    rows = sensitivity(load_results([runs / "serve"]).frame, "serve")
    sizes = [(r.from_level, r.to_level) for r in rows if r.param == "model_size"]
    assert sizes == [("1b", "8b"), ("8b", "70b")]  # not alphabetical ("1b" < "70b" < "8b")


# ---- the written report ----------------------------------------------------------------------

def test_report_written_with_figures_and_guidelines(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()
    pngs = sorted(report_dir.glob("*.png"))
    assert len(pngs) == 5
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
        assert f"]({png.name})" in text
    assert "train mid fp32: batch size 128 minimises energy per sample" in text
    assert "Figure 1 (energy_per_sample_vs_batch_size.png)" in text
    assert "above about 6.24 req/s (between the tested 4 and 8 req/s) the larger 8b" in text
    assert "not observed in this data" in text
    assert "bf16 instead of fp32" in text
    assert "400 gCO2e/kWh" in text
    assert "test grid (400 gCO2e/kWh), named by 200 of 200 points read" in text  # trace metadata, at most 200 read
    for section in ("## Sensitivity", "## Energy model", "## Pareto front", "## Energy and carbon totals"):
        assert section in text
    assert "serve: 12 traces missing" not in text and "no traces listed" not in text
    assert "traces found" in text


def test_report_carbon_total(runs: Path) -> None:
    frame = load_results([runs]).frame
    parts = analyse(load_results([runs]))
    assert parts.totals.gco2e == pytest.approx(frame["energy_j"].sum() / 3.6e6 * 400.0)


def test_predict_via_cli_without_output(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(runs), "--predict", "arch=large,batch_size=100,precision=fp32"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("infer "))
    value = float(line.split(": ")[1].split(" J")[0])
    assert value == pytest.approx(1e-7 * INFER_ARCHS["large"] ** 0.7 * 100**-0.4, rel=0.06)
    assert "95% interval" in line
    assert "serve" not in out  # serve has no arch: it cannot answer


def test_predict_with_output_writes_report_too(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(runs / "llm"), "-o", str(tmp_path / "r"), "--predict", "model_size=3b,batch_size=8,output_len=512"]) == 0
    out = capsys.readouterr().out
    truth = 2e-9 * 3e9**0.9 * 512 * 8**-0.5
    line = next(ln for ln in out.splitlines() if ln.startswith("llm-infer "))
    assert float(line.split(": ")[1].split(" J")[0]) == pytest.approx(truth, rel=0.05)
    assert (tmp_path / "r" / "report.md").is_file()


def test_predict_unknown_level_is_one_line_exit_2(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(runs / "infer"), "--predict", "arch=mid,batch_size=8,precision=fp8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fp8" in err[0]


# ---- bad input ---------------------------------------------------------------------------------

def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no such folder" in _one_line_error(capsys, ["report", str(tmp_path / "nope"), "-o", str(tmp_path / "r")])


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert "empty folder" in _one_line_error(capsys, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r")])


def test_empty_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "results.csv").write_text("")
    assert "no usable rows" in _one_line_error(capsys, ["report", str(tmp_path / "s"), "-o", str(tmp_path / "r")])


def test_header_only_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "results.csv").write_text("schema_version,point,status,workload,energy_j\n")
    assert "every table is empty" in _one_line_error(capsys, ["report", str(tmp_path / "s"), "-o", str(tmp_path / "r")])


def test_mixed_schema_versions_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    write_sweep(tmp_path / "old", serve_rows(rng))
    newer = serve_rows(rng)
    for r in newer:
        r["schema_version"] = 2
    write_sweep(tmp_path / "new", newer)
    msg = _one_line_error(capsys, ["report", str(tmp_path), "-o", str(tmp_path / "r")])
    assert "mixed schema versions" in msg and "old/results.csv" in msg and "new/results.csv" in msg


def test_all_rows_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = serve_rows(np.random.default_rng(2))
    for r in rows:
        r["status"] = "failed"
    write_sweep(tmp_path / "s", rows)
    msg = _one_line_error(capsys, ["report", str(tmp_path / "s"), "-o", str(tmp_path / "r")])
    assert "no usable rows" in msg and "failed" in msg


def test_neither_output_nor_predict(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "-o DIR" in _one_line_error(capsys, ["report", str(runs)])


def test_table_without_traces_still_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_sweep(tmp_path / "s", train_rows(np.random.default_rng(3)), traces=False)
    assert main(["report", str(tmp_path / "s"), "-o", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "traces missing" in err
    assert "traces missing" in (tmp_path / "r" / "report.md").read_text()


def test_unreadable_traces_are_said(tmp_path: Path) -> None:
    rows = serve_rows(np.random.default_rng(4))
    write_sweep(tmp_path / "s", rows, traces=False)
    (tmp_path / "s" / "points").mkdir()
    for r in rows:
        (tmp_path / "s" / r["trace"]).write_bytes(b"not HDF5")
    results = load_results([tmp_path / "s"])
    assert any("36 point summary or trace file(s) could not be read" in n for n in results.notes)


def test_carbon_source_from_point_summaries(tmp_path: Path) -> None:
    """Results committed without their (large) traces still name their carbon source."""
    rows = serve_rows(np.random.default_rng(5))
    write_sweep(tmp_path / "s", rows, traces=False)
    (tmp_path / "s" / "points").mkdir()
    for r in rows:
        (tmp_path / "s" / "points" / f"{r['point']}.summary.json").write_text(
            '{"carbon_g_per_kwh": 56.0, "carbon_source": "RTE eco2mix FR 2024"}')
    parts = analyse(load_results([tmp_path / "s"]))
    assert parts.totals.sources == ["RTE eco2mix FR 2024 (56 gCO2e/kWh), named by 36 of 36 points read"]


def test_sparse_table_says_what_is_missing(tmp_path: Path) -> None:
    """Only the run totals: every section still renders and says what it lacks."""
    rows = [{"schema_version": 1, "point": f"p{i}", "status": "ok", "workload": "train", "energy_j": 100.0 + i,
             "duration_s": 10.0} for i in range(4)]
    write_sweep(tmp_path / "s", rows, traces=False)
    path = write_report(load_results([tmp_path / "s"]), tmp_path / "r")
    text = path.read_text()
    assert "not drawn (no train/infer rows with param.batch_size and energy_per_sample_j)" in text
    assert "No gco2e column" in text
    assert "Not fitted: train" in text


def _util_frame(utils: list[float], power_w: list[float]) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame({"workload": "train", "metric.gpu_util_pct": utils, "avg_power_w": power_w})


def test_power_against_utilisation_guideline_reads_the_slope_and_its_sign() -> None:
    from greentop.report import guidelines

    up = [g.text for g in guidelines.build(_util_frame([10, 30, 50, 90], [130, 190, 250, 370]), [], [], [])]
    assert any("rises about 30 W per 10 points" in t and "100 W extrapolated" in t for t in up)
    down = [g.text for g in guidelines.build(_util_frame([10, 50, 90], [300, 260, 220]), [], [], [])]
    assert any("falls about 10 W per 10 points" in t for t in down)


def test_power_against_a_narrow_utilisation_range_is_not_read_as_a_slope() -> None:
    from greentop.report import guidelines

    texts = [g.text for g in guidelines.build(_util_frame([3.7, 3.7, 9.2, 4.8], [137, 135, 134, 132]), [], [], [])]
    assert any("too narrow" in t for t in texts)
    assert not any("per 10 points" in t for t in texts)


def test_utilisation_is_reported_beside_the_model_never_fitted(runs: Path) -> None:
    frame = load_results([runs / "infer"]).frame.copy()
    model = fit_workload(frame, "infer")
    assert not any("util" in f for f in model.features)
    assert model.beside["gpu_util_pct"][0] < model.beside["gpu_util_pct"][1]
    assert model.coefficient("log batch_size") == pytest.approx(POWER_LAW["b"], abs=0.03)
    se = model.standard_error("log batch_size")
    assert 0 < se < 0.03 and model.condition_number > 1


def collinear_serve_rows() -> pd.DataFrame:
    """Serving rows where energy per request rises with model size at every rate, while GPU
    utilisation rises steeply with size too: fitted as a covariate, utilisation would take the
    size effect and flip its sign (the H200 study's model_params^-0.47 against rows that rise)."""
    rows = []
    rng = np.random.default_rng(2)
    for size, params in (("1b", 1.2e9), ("3b", 3.2e9), ("8b", 8e9)):
        for rate in (1.0, 4.0, 16.0):
            e = 50.0 * (params / 1e9) ** 0.2 * rate ** -0.6 * math.exp(rng.normal(0, 0.01))
            # busier with size and with energy (both follow the configuration), nearly exactly
            util = 10 * math.log(e) + 8 * math.log(params / 1e9) + rng.normal(0, 0.05)
            row = _common(f"c-{size}-{rate}", "serve", "serve", e * 100, e * 100 / 300.0, util)
            row |= {"param.model_size": size, "param.rate": rate, "metric.model_params": params,
                    "count.requests": 100, "energy_per_request_j": e}
            rows.append(row)
    return pd.DataFrame(rows)


def test_collinear_utilisation_does_not_flip_the_sign_of_model_size() -> None:
    from greentop.report import guidelines

    frame = collinear_serve_rows()
    # What a fit with utilisation as a covariate reads (the old model): the sign of size flips.
    x = np.column_stack([np.log(frame["metric.model_params"]), np.log(frame["param.rate"]), frame["metric.gpu_util_pct"]])
    old = np.linalg.lstsq(np.hstack([np.ones((len(x), 1)), x]), np.log(frame["energy_per_request_j"]), rcond=None)[0]
    assert old[1] < 0  # the trap this test guards against
    model = fit_workload(frame, "serve")
    assert model.coefficient("log model_params") == pytest.approx(0.2, abs=0.05)
    texts = [g.text for g in guidelines.build(frame, [], [], [model])]
    line = next(t for t in texts if "scales as" in t)
    assert "model_params^+0.2" in line and "±" in line and "at fixed" not in line


def test_a_guideline_the_rows_contradict_is_not_printed() -> None:
    from greentop.report import guidelines

    # Size raises energy at low rates and lowers it at high ones; the fit's single exponent
    # cannot say both, so no size guideline; rate falls everywhere and stays.
    rows = []
    for size, params in (("1b", 1e9), ("3b", 3e9), ("8b", 8e9)):
        for rate in (1.0, 2.0, 4.0, 8.0, 16.0):
            slope = 0.6 - 0.3 * math.log2(rate)  # +0.6 at 1 req/s ... -0.6 at 16
            e = 40.0 * (params / 1e9) ** slope * rate ** -0.7
            row = _common(f"x-{size}-{rate}", "serve", "serve", e * 100, e * 100 / 300.0, 10.0)
            row |= {"param.model_size": size, "param.rate": rate, "metric.model_params": params, "energy_per_request_j": e}
            rows.append(row)
    frame = pd.DataFrame(rows)
    model = fit_workload(frame, "serve")
    check = guidelines.check_direction(model, "log model_params")
    assert check.agree >= 1 and check.disagree >= 1 and not check.supported
    line = next(g.text for g in guidelines.build(frame, [], [], [model]) if "scales as" in g.text)
    assert "rate^-" in line and "model_params" not in line


def test_estimated_cells_are_marked_in_the_report(runs: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(runs / "llm" / "results.csv")
    frame["estimated"] = True
    folder = tmp_path / "est"
    folder.mkdir()
    frame.to_csv(folder / "results.csv", index=False)
    assert main(["report", str(folder), "-o", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    totals = text.split("## Energy and carbon totals")[1].split("##")[0]
    assert "| llm-infer | 36 |" in totals and totals.count(" *") >= 2 and "estimated share" in totals
    assert "### llm-infer: energy_per_request_j *" in text



def _repeated_serve_rows(size_effect: float, run_spread: float) -> pd.DataFrame:
    """Two model sizes at two rates, each run twice: energy ×(1 + size_effect) from 1b to 8b, and
    the two runs of a configuration at (1 - run_spread) and (1 + run_spread) of it."""
    rows = []
    for size, params in (("1b", 1e9), ("8b", 8e9)):
        for rate in (1.0, 4.0):
            for rep, f in enumerate((1 - run_spread, 1 + run_spread)):
                e = 40.0 * rate ** -0.7 * (1 + size_effect if size == "8b" else 1.0) * f
                row = _common(f"r-{size}-{rate}-{rep}", "serve", "serve", e * 100, e * 100 / 300.0, 10.0)
                row |= {"param.model_size": size, "param.rate": rate, "param.repeat": rep, "metric.model_params": params,
                        "energy_per_request_j": e}
                rows.append(row)
    return pd.DataFrame(rows)


def test_a_change_within_the_repeat_spread_is_not_a_direction() -> None:
    from greentop.report import guidelines

    # +8 % from 1b to 8b, but the runs of each configuration lie ±6 % apart: noise, whatever a
    # fixed 5 % threshold would say.
    noisy = guidelines.check_direction(fit_workload(_repeated_serve_rows(0.08, 0.06), "serve"), "log model_params")
    assert noisy.groups == 2 and noisy.measured_noise == 2
    assert noisy.flat == 2 and noisy.agree == 0 and not noisy.supported
    # +3 % with runs ±0.2 % apart: a direction, though under 5 %.
    tight = guidelines.check_direction(fit_workload(_repeated_serve_rows(0.03, 0.002), "serve"), "log model_params")
    assert tight.agree == 2 and tight.flat == 0 and tight.supported


def test_the_report_gives_each_repeated_configuration_its_spread(tmp_path: Path) -> None:
    from greentop.report import repeats

    frame = _repeated_serve_rows(0.5, 0.04)
    found = repeats.repeat_rows(frame, "serve")
    assert len(found) == 4 and all(r.n == 2 for r in found)
    assert [r.spread for r in found] == pytest.approx([0.04] * 4)
    assert "model_size=8b, rate=4" in [r.configuration for r in found]  # as given, not the column's 4.0
    folder = tmp_path / "rep"
    folder.mkdir()
    frame.to_csv(folder / "results.csv", index=False)
    assert main(["report", str(folder), "-o", str(tmp_path / "out")]) == 0
    table_r = (tmp_path / "out" / "report.md").read_text().split("## Repeats")[1].split("##")[0]
    assert table_r.count("| serve | model_size=") == 4 and "±4.0%" in table_r and "Run once" not in table_r
    single = frame[frame["param.repeat"] == 0].drop(columns="param.repeat")
    assert repeats.repeat_rows(single, "serve") == []


def _engine_serve_rows(engine_factor: float) -> pd.DataFrame:
    """1b and 8b at three rates under two engines: energy ×``engine_factor`` under "compiled"."""
    rows = []
    for engine in ("batch", "compiled"):
        for size, params in (("1b", 1e9), ("8b", 8e9)):
            for rate in (1.0, 4.0, 16.0):
                e = 40.0 * (params / 1e9) ** 0.3 * rate ** -0.7 * (engine_factor if engine == "compiled" else 1.0)
                row = _common(f"e-{engine}-{size}-{rate}", "serve", "serve", e * 100, e * 100 / 300.0, 10.0)
                row |= {"param.engine": engine, "param.model_size": size, "param.rate": rate,
                        "metric.model_params": params, "energy_per_request_j": e}
                rows.append(row)
    return pd.DataFrame(rows)


def test_the_engine_is_a_configuration_the_model_fits() -> None:
    """The engine (eager, compiled, batch ...) is a choice a user makes and it moves energy: left
    out of the fit, its effect would be spread over the other exponents' errors."""
    model = fit_workload(_engine_serve_rows(1.5), "serve")
    assert "engine=compiled" in model.features
    assert math.exp(model.coefficient("engine=compiled")) == pytest.approx(1.5, rel=0.01)
    assert model.coefficient("log model_params") == pytest.approx(0.3, abs=0.01)


def test_a_parameter_a_run_did_not_record_is_no_level_to_compare() -> None:
    """A sweep resumed after an option was added: its first runs carry no value for it (NaN). That
    is not a level: comparing it with the recorded one would read whatever else differed
    between the runs (another day, another machine) as the option's effect."""
    first = _engine_serve_rows(1.0).assign(**{"param.repeat": 0})
    second = first.assign(**{"param.repeat": 1, "param.cudnn_attention": "off", "point": first["point"] + "-1"})
    second["energy_per_request_j"] *= 0.9  # another machine, hours later
    frame = pd.concat([first, second], ignore_index=True)
    rows = sensitivity(frame, "serve")
    assert not [r for r in rows if r.param == "cudnn_attention"]
    assert [r for r in rows if r.param == "rate"]  # the rows themselves still compare along the rest
