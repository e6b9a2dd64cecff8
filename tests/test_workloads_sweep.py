"""`python -m workloads sweep` and the `idle` workload: real greentop records of a torch-free
workload on a fake host, the results table's columns, resuming, failures, Ctrl-C, bad input, and
the shipped sweep files."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workloads import idle, sweep
from workloads.results import PER_UNIT_COLUMNS, read_result

REPO = Path(__file__).resolve().parent.parent
SWEEPS = REPO / "workloads" / "sweeps"

# Every column the results contract (workloads/results.py) fixes, whatever the workload.
CONTRACT_COLUMNS = {
    "schema_version", "sweep", "point", "status", "exit_code", "trace", "workload", "primary_phase",
    "duration_s", "energy_j", "energy_above_idle_j", "avg_power_w", "peak_power_w", "idle_power_w", "gco2e",
    "carbon_g_per_kwh", "estimated", *PER_UNIT_COLUMNS.values(),
}


def write_sweep(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_sweep(env: dict[str, str] | None, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workloads", "sweep", *args], env=env if env is not None else os.environ | {"PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def log_mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.log")}


GRID_2X2 = """
[sweep]
name = "grid"
workload = "idle"
baseline = 0.2
carbon_intensity = 100

[base]
seconds = 0.2
phases = ["train", "eval"]

[grid]
samples = [10, 40]
busy = [false, true]
"""


def test_a_2x2_grid_records_four_points_into_the_contracts_table_and_a_rerun_skips_them(tmp_path: Path, host_env: dict[str, str]) -> None:
    toml = write_sweep(tmp_path / "grid.toml", GRID_2X2)
    out = tmp_path / "out"
    proc = run_sweep(host_env, str(toml), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "sweep.toml").read_text() == GRID_2X2
    header, rows = read_csv(out / "results.csv")
    assert len(rows) == 4 and len(list((out / "points").glob("*.h5"))) == 4
    assert CONTRACT_COLUMNS <= set(header)
    assert header[:8] == ["schema_version", "sweep", "point", "status", "exit_code", "trace", "workload", "primary_phase"]
    for col in ("param.samples", "param.busy", "param.seconds", "param.phases", "param.repeat", "metric.accuracy", "metric.loss",
                "hw.device", "domain.cpu-package-0.energy_j", "phase.train.energy_j", "phase.train.duration_s",
                "phase.train.exclusive_energy_j", "phase.eval.energy_j", "count.samples"):
        assert col in header, col
    # Grouped in the contract's order: params, metrics, hardware, run totals, domains, phases, counts, per unit.
    order = [header.index(c) for c in ("param.samples", "metric.accuracy", "hw.device", "duration_s", "domain.cpu-package-0.energy_j",
                                       "phase.train.energy_j", "count.samples", "energy_per_sample_j")]
    assert order == sorted(order)
    assert sorted((r["param.samples"], r["param.busy"]) for r in rows) == [("10", "false"), ("10", "true"), ("40", "false"), ("40", "true")]
    for r in rows:
        assert r["status"] == "ok" and r["exit_code"] == "0" and r["schema_version"] == "1" and r["sweep"] == "grid"
        assert r["workload"] == "idle" and r["primary_phase"] == "train" and r["param.repeat"] == "0"
        assert (out / r["trace"]).is_file() and r["trace"] == f"points/{r['point']}.h5"
        samples = int(r["param.samples"])
        assert float(r["metric.accuracy"]) == pytest.approx(samples / (samples + 100))
        energy = float(r["energy_j"])
        assert energy > 0 and float(r["duration_s"]) > 0 and float(r["phase.train.energy_j"]) > 0
        # 30-60 W fake package over the workload: plausible, not exact.
        assert 20 < float(r["avg_power_w"]) < 70 and 20 < float(r["idle_power_w"]) < 70
        assert float(r["peak_power_w"]) >= float(r["avg_power_w"])
        # DRAM is outside the package: the machine total is package + DRAM.
        assert float(r["domain.cpu-package-0.energy_j"]) + float(r["domain.dram-0.energy_j"]) == pytest.approx(energy)
        assert float(r["phase.train.energy_j"]) + float(r["phase.eval.energy_j"]) < energy
        assert float(r["gco2e"]) == pytest.approx(energy / 3.6e6 * 100)
        assert r["carbon_g_per_kwh"] == "100.0" and r["estimated"] == "false"
        assert int(r["count.samples"]) == 2 * samples  # each of the two phases counts its samples
        assert float(r["energy_per_sample_j"]) == pytest.approx(float(r["phase.train.energy_j"]) / samples)
        assert r["energy_per_input_token_j"] == r["energy_per_output_token_j"] == r["energy_per_request_j"] == ""
        assert read_result(out / "points" / f"{r['point']}.json")["primary_phase"] == "train"
        assert json.loads((out / "points" / f"{r['point']}.summary.json").read_text())["format"] == "greentop-summary"
    before = log_mtimes(out)

    again = run_sweep(host_env, str(toml), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert log_mtimes(out) == before  # nothing ran again
    assert "4 done already, 0 to run" in again.stderr
    assert read_csv(out / "results.csv")[1] == rows


FAILING = """
[sweep]
workload = "idle"
baseline = 0

[base]
seconds = 0.1

[grid]
fail = [false, true]
"""


def test_a_failing_point_gets_a_failed_row_the_others_run_and_only_retry_failed_reruns_it(tmp_path: Path, host_env: dict[str, str]) -> None:
    toml = write_sweep(tmp_path / "failing.toml", FAILING)
    out = tmp_path / "out"
    proc = run_sweep(host_env, str(toml), "--out", str(out))
    assert proc.returncode == 1, proc.stderr  # some point failed
    _, rows = read_csv(out / "results.csv")
    by_fail = {r["param.fail"]: r for r in rows}
    assert by_fail["false"]["status"] == "ok" and by_fail["true"]["status"] == "failed"
    failed = by_fail["true"]
    assert failed["exit_code"] == "1" and failed["sweep"] == "failing"
    assert float(failed["energy_j"]) > 0  # the trace is still read: the energy of a failure counts too
    assert failed["metric.accuracy"] == ""  # a failing workload wrote no result document
    assert "point failed" in (out / "points" / f"{failed['point']}.log").read_text()
    before = log_mtimes(out)

    plain = run_sweep(host_env, str(toml), "--out", str(out))
    assert plain.returncode == 1 and log_mtimes(out) == before  # failed points wait for --retry-failed
    assert "--retry-failed" in plain.stderr

    retry = run_sweep(host_env, str(toml), "--out", str(out), "--retry-failed")
    assert retry.returncode == 1
    after = log_mtimes(out)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {f"{failed['point']}.log"}


def test_a_point_past_its_timeout_is_stopped_and_failed_with_exit_code_124(tmp_path: Path, host_env: dict[str, str]) -> None:
    toml = write_sweep(tmp_path / "slow.toml", '[sweep]\nworkload = "idle"\nbaseline = 0\ntimeout_s = 3\n[grid]\nseconds = [60]\n')
    out = tmp_path / "out"
    proc = run_sweep(host_env, str(toml), "--out", str(out), timeout=90)
    assert proc.returncode == 1, proc.stderr
    (row,) = read_csv(out / "results.csv")[1]
    assert row["status"] == "failed" and row["exit_code"] == "124"
    # No assert on the trace: a slow start-up can use the whole timeout before greentop record opens it.
    assert "timeout" in (out / "points" / f"{row['point']}.log").read_text()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell leaves it for a job started with &


@pytest.mark.parametrize("sig, background", [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c", "kill-int-of-a-background-sweep", "kill"])
def test_ctrl_c_stops_the_current_point_keeps_finished_rows_and_exits_130(tmp_path: Path, host_env: dict[str, str],
                                                                          sig: signal.Signals, background: bool) -> None:
    toml = write_sweep(tmp_path / "long.toml", '[sweep]\nworkload = "idle"\nbaseline = 0\n[grid]\nseconds = [0.1, 60]\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "workloads", "sweep", str(toml), "--out", str(out)], env=host_env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignore_sigint if background else None)
    try:
        deadline = time.monotonic() + 60
        # Wait for the second point to be under way: its log exists and greentop record has started.
        while time.monotonic() < deadline:
            logs = [p for p in (out / "points").glob("s60-*.log")] if (out / "points").is_dir() else []
            if logs and "recording" in logs[0].read_text():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the second point never started")
        proc.send_signal(sig)  # to the sweep alone: it must pass it on to greentop record
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    (row,) = read_csv(out / "results.csv")[1]  # the finished point only; the stopped one runs next time
    assert row["param.seconds"] == "0.1" and row["status"] == "ok"
    dry = run_sweep(host_env, str(toml), "--out", str(out), "--dry-run")
    assert "[ok: skipped]" in dry.stdout and dry.stdout.count("[ok") == 1


# ------------------------------------------------------------------------------- points and flags


def load(tmp_path: Path, text: str) -> sweep.Sweep:
    return sweep.load_sweep(write_sweep(tmp_path / "s.toml", text))


def test_parameters_map_to_flags_and_result_is_appended_last(tmp_path: Path) -> None:
    assert sweep.workload_flags({"batch_size": 64, "channels_last": True, "compile": False, "lr": 0.001,
                                 "phases": ["a", "b"], "repeat": 2}) == [
        "--batch-size", "64", "--channels-last", "--lr", "0.001", "--phases", "a,b"]
    s = load(tmp_path, '[sweep]\nworkload = "train"\nrate = 500\nbaseline = 0\nregion = "FR"\nrecord_args = ["--no-gpu"]\n'
                       '[base]\ndata = "synthetic"\n[grid]\nbatch_size = [8]\n')
    (p,) = sweep.expand(s)
    cmd = sweep.record_command(s, p, sweep.PointFiles.of(tmp_path, p), s.record)
    dash = cmd.index("--")
    assert cmd[:dash] == [sys.executable, "-m", "greentop", "record", "-o", str(tmp_path / "points" / f"{p.id}.h5"),
                          "--rate", "500", "--no-baseline", "--region", "FR", "--no-gpu"]
    assert cmd[dash + 1:] == [sys.executable, "-m", "workloads", "train", "--data", "synthetic", "--batch-size", "8",
                              "--result", str(tmp_path / "points" / f"{p.id}.json")]


def test_exclude_drops_partial_matches_and_include_adds_points(tmp_path: Path) -> None:
    s = load(tmp_path, """
[sweep]
workload = "train"
repeats = 2
[base]
steps = 10
[grid]
arch = ["resnet18", "vit"]
batch_size = [8, 16, 32]
[[exclude]]
arch = "vit"
batch_size = [16, 32]     # a list: any of them
[[exclude]]
batch_size = 8
arch = "resnet18"
[[include]]
arch = "vgg16"
batch_size = 4
precision = "bf16"
""")
    points = sweep.expand(s)
    combos = sorted({(p.params["arch"], p.params["batch_size"]) for p in points})
    assert combos == [("resnet18", 16), ("resnet18", 32), ("vgg16", 4), ("vit", 8)]
    assert len(points) == 8 and sorted({p.params["repeat"] for p in points}) == [0, 1]
    vgg = [p for p in points if p.params["arch"] == "vgg16"]
    assert vgg[0].params == {"steps": 10, "arch": "vgg16", "batch_size": 4, "precision": "bf16", "repeat": 0}
    assert len({p.id for p in points}) == 8
    assert all(p.id.startswith(f"{p.params['arch']}-bs{p.params['batch_size']}-") for p in points)


def test_point_ids_are_stable_readable_and_depend_on_every_parameter(tmp_path: Path) -> None:
    text = '[sweep]\nworkload = "train"\n[base]\nsteps = 10\n[grid]\narch = ["resnet18"]\nbatch_size = [64]\n'
    (a,) = sweep.expand(load(tmp_path, text))
    (b,) = sweep.expand(load(tmp_path, text))
    (c,) = sweep.expand(load(tmp_path, text.replace("steps = 10", "steps = 20")))
    assert a.id == b.id and a.id.startswith("resnet18-bs64-") and len(sweep.point_key(a.id)) == 8
    assert sweep.point_key(c.id) != sweep.point_key(a.id)  # same readable part, other experiment


BAD_INPUTS = {
    "missing": None,
    "not toml": "[sweep\nworkload = idle",
    "unknown workload": '[sweep]\nworkload = "dance"\n[grid]\nx = [1]\n',
    "empty grid": '[sweep]\nworkload = "idle"\n',
    "empty list": '[sweep]\nworkload = "idle"\n[grid]\nsamples = []\n',
    "unknown key": '[sweep]\nworkload = "idle"\nrepeat = 3\n[grid]\nsamples = [1]\n',
    "both carbon": '[sweep]\nworkload = "idle"\nregion = "FR"\ncarbon_intensity = 50\n[grid]\nsamples = [1]\n',
    "reserved param": '[sweep]\nworkload = "idle"\n[grid]\nrepeat = [1, 2]\n',
    "exclude typo": '[sweep]\nworkload = "idle"\n[grid]\nsamples = [1]\n[[exclude]]\nsample = 1\n',
    "all excluded": '[sweep]\nworkload = "idle"\n[grid]\nsamples = [1]\n[[exclude]]\nsamples = 1\n',
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.toml"
    if BAD_INPUTS[case] is not None:
        path.write_text(BAD_INPUTS[case] or "")
    proc = run_sweep(None, str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("workloads sweep: error:"), proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_command_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = run_sweep(None, str(SWEEPS / "cnn.toml"), "--rate", "fast", "--dry-run")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


EXPECTED_POINTS = {"cnn.toml": 8 * 8 * 3, "transformer.toml": 3 * 4 * 4, "llm.toml": 5 * 3 * 5, "llm-infer.toml": 5 * 3 * 3,
                   "cnn-h200.toml": 4 * 3 * 2, "llm-h200.toml": 3 * 3, "llm-h200-continuous.toml": 3 * 3, "llm-infer-h200.toml": 3 * 3, "transformer-h200.toml": 3 * 2,
                   "llm-infer-compiled-h200.toml": 3 * 3, "llm-infer-batch-h200.toml": 2 * 3,
                   "serving-compiled.toml": (2 * 3 + 1) * 2, "llm-infer-8b-repeat.toml": (2 + 2) * 2,
                   "transformer-repeat.toml": 3 * 2 * 2, "cnn-repeat.toml": 2 * 2 * 2 * 2,
                   "cnn-cpu.toml": 3 * 3 * 2 - 3}


def test_every_shipped_sweep_file_is_listed_here() -> None:
    assert sorted(p.name for p in SWEEPS.glob("*.toml")) == sorted(EXPECTED_POINTS)


@pytest.mark.parametrize("name", sorted(EXPECTED_POINTS))
def test_shipped_sweep_files_parse_and_expand(tmp_path: Path, name: str) -> None:
    s = sweep.load_sweep(SWEEPS / name)
    points = sweep.expand(s)
    assert len(points) == EXPECTED_POINTS[name]
    assert len({p.key for p in points}) == len(points)
    assert s.workload == {"cnn": "train", "cnn-h200": "train", "cnn-cpu": "train", "transformer": "train", "transformer-h200": "train"}.get(s.name, s.workload)
    proc = run_sweep(None, str(SWEEPS / name), "--out", str(tmp_path / "out"), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(" -m greentop record ") == len(points)
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_shipped_sweeps_use_the_workloads_flags() -> None:
    flags = {"train": {"--arch", "--data", "--image-size", "--batch-size", "--lr", "--schedule", "--optimizer", "--epochs", "--steps",
                       "--precision", "--channels-last", "--compile", "--workers", "--device", "--seq-len", "--train-samples",
                       "--eval-samples", "--phase-detail"},
             "llm-infer": {"--model-size", "--batch-size", "--prompt-len", "--output-len", "--precision", "--repeats", "--engine"},
             "serve-bench": {"--model-size", "--rate", "--duration", "--prompt-len", "--output-len", "--max-batch-size", "--precision",
                             "--max-queue", "--stream-interval-ms", "--engine"}}
    for path in SWEEPS.glob("*.toml"):
        s = sweep.load_sweep(path)
        for p in sweep.expand(s):
            used = {f for f in sweep.workload_flags(p.params) if f.startswith("--")}
            assert used <= flags[s.workload], (path.name, used - flags[s.workload])


# ------------------------------------------------------------------------------------ summary rows


def _domain(name: str, energy_j: float, **kw: float) -> dict[str, object]:
    return {"domain": name, "energy_j": energy_j, "estimated": False, "peak_w": kw.get("peak_w", 10.0),
            "average_w": kw.get("average_w", 5.0), "above_baseline_j": kw.get("above_j"), "exclusive_energy_j": kw.get("excl_j", energy_j)}


def _row(kind: str, name: str, index: int, parent: int, duration_s: float, energy_j: float, counts: dict[str, float] | None = None,
         **kw: float) -> dict[str, object]:
    return {"kind": kind, "name": name, "index": index, "parent": parent, "duration_s": duration_s, "counts": counts or {},
            "domains": [_domain("gpu0", energy_j, **kw), _domain("total", energy_j, **kw)]}


def test_summary_columns_leave_out_the_baseline_and_sum_a_phase_over_its_occurrences() -> None:
    summary = {"carbon_g_per_kwh": 360.0, "rows": [
        _row("run", "run", -1, -1, 13.0, 1300.0, {"output_tokens": 300, "requests": 3}, above_j=900.0),
        _row("baseline", "idle baseline", -1, -1, 3.0, 300.0, average_w=100.0, above_j=0.0),
        _row("phase", "decode", 0, -1, 4.0, 400.0, {"output_tokens": 100, "requests": 1}, excl_j=300.0),
        _row("phase", "decode", 1, 0, 1.0, 100.0, {"output_tokens": 50}),  # nested in a namesake: already counted
        _row("phase", "decode", 2, -1, 5.0, 500.0, {"output_tokens": 200, "requests": 2}),
        _row("untagged", "(untagged)", -1, -1, 4.0, 400.0),
    ]}
    cols = sweep.summary_columns(summary, "decode")
    assert cols["duration_s"] == 10.0 and cols["energy_j"] == 1000.0 and cols["avg_power_w"] == 100.0
    assert cols["energy_above_idle_j"] == 900.0 and cols["idle_power_w"] == 100.0
    assert cols["gco2e"] == pytest.approx(1000.0 / 3.6e6 * 360.0)
    assert cols["domain.gpu0.energy_j"] == 1000.0
    assert cols["phase.decode.energy_j"] == 900.0 and cols["phase.decode.duration_s"] == 9.0
    assert cols["phase.decode.exclusive_energy_j"] == 800.0
    assert cols["phase.decode.gpu0.energy_j"] == 900.0  # each domain of a phase apart (GPU-only figures)
    assert cols["count.output_tokens"] == 300 and cols["count.requests"] == 3
    assert cols["energy_per_output_token_j"] == 3.0 and cols["energy_per_request_j"] == 300.0
    assert cols["energy_per_sample_j"] is None and cols["energy_per_input_token_j"] is None


# ------------------------------------------------------------------------------------ idle workload


def test_idle_writes_a_result_document_with_deterministic_metrics(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert idle.main(["--seconds", "0", "--samples", "300", "--phases", "prefill,decode", "--result", str(path)]) == 0
    doc = read_result(path)
    assert doc["workload"] == "idle" and doc["primary_phase"] == "prefill"
    assert doc["params"]["samples"] == 300 and doc["params"]["phases"] == "prefill,decode"
    assert doc["metrics"]["accuracy"] == pytest.approx(0.75) and doc["hardware"]["device"] == "cpu"


def test_idle_fail_exits_1_without_a_result_and_bad_flags_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert idle.main(["--seconds", "0", "--fail", "--result", str(path)]) == 1 and not path.exists()
    with pytest.raises(SystemExit) as exc:
        idle.main(["--samples", "-3"])
    assert exc.value.code == 2
