"""`greentop record` end to end: a real workload under a fake host, phases, exit codes, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greentop.trace import load

REPO = Path(__file__).resolve().parent.parent

WORKLOAD = """
import os, sys, time, greentop

@greentop.phase("inference")
def infer():
    time.sleep(0.05)
    greentop.count(samples=32)

with greentop.phase("training", epoch=1):
    for step in range(3):
        with greentop.phase("step", step=step):
            time.sleep(0.03)
            greentop.count(samples=64)
    greentop.mark("checkpoint", step=3)
    pid = os.fork()
    if pid == 0:
        with greentop.phase("loader-worker"):
            time.sleep(0.02)
        os._exit(0)
    os.waitpid(pid, 0)
infer()
print("workload done", flush=True)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"""

CRASHING = """
import greentop, time
with greentop.phase("training"):
    with greentop.phase("step"):
        time.sleep(0.1)
        raise RuntimeError("out of memory")
"""


def record(tmp_path: Path, env: dict[str, str], code: str, *extra: str, name: str = "run.h5") -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(out), *extra, "--", sys.executable, "-c", code],
                          env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
    return proc, out


def test_records_phases_counts_marks_and_children_with_a_baseline(tmp_path: Path, host_env: dict[str, str]) -> None:
    proc, out = record(tmp_path, host_env, WORKLOAD, "--baseline", "0.3", "--carbon-intensity", "100")
    assert proc.returncode == 0, proc.stderr
    assert "workload done" in proc.stdout  # the workload's output is its own
    tr = load(out)
    assert tr.complete and tr.meta["run"]["exit_code"] == 0
    names = [p.name for p in tr.phases]
    assert names == ["training", "step", "step", "step", "loader-worker", "inference"]
    training = tr.phases[0]
    assert training.attrs == {"epoch": 1} and training.depth == 0
    steps = [p for p in tr.phases if p.name == "step"]
    assert [p.attrs["step"] for p in steps] == [0, 1, 2] and all(p.parent == 0 and p.depth == 1 for p in steps)
    worker = tr.phases[4]
    assert worker.pid != training.pid and worker.parent == 0  # a forked child nests under the phase it was forked in
    assert all(p.status == "ok" for p in tr.phases)
    assert sum(c.value for c in tr.counts if c.name == "samples") == 3 * 64 + 32
    assert tr.marks[0].name == "checkpoint"
    assert tr.baseline is not None and tr.baseline[1] - tr.baseline[0] >= 250_000_000
    assert tr.baseline[1] <= training.start_ns
    assert tr.meta["carbon_g_per_kwh"] == 100.0
    assert "training" in proc.stderr  # the summary printed at the end
    from greentop.overview import read_overview

    stored = read_overview(out)  # built at the end of the recording: the first replay opens at once
    assert stored is not None and set(stored) == {ch.channel.name for ch in tr.channels}


def test_exit_code_is_the_workloads(tmp_path: Path, host_env: dict[str, str]) -> None:
    proc, out = record(tmp_path, host_env | {"EXIT_CODE": "3"}, WORKLOAD, "--no-baseline")
    assert proc.returncode == 3
    assert load(out).meta["run"]["exit_code"] == 3


def test_crashing_workload_closes_open_phases_at_the_crash_and_marks_them(tmp_path: Path, host_env: dict[str, str]) -> None:
    proc, out = record(tmp_path, host_env, CRASHING, "--no-baseline")
    assert proc.returncode == 1 and "out of memory" in proc.stderr
    tr = load(out)
    assert [(p.name, p.status) for p in tr.phases] == [("training", "crashed"), ("step", "crashed")]
    assert tr.phases[1].end_ns <= tr.phases[0].end_ns < tr.run_end_ns
    assert tr.phases[1].attrs.get("exception") == "RuntimeError"
    summary = subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", "json"],
                             capture_output=True, text=True, cwd=REPO)
    assert summary.returncode == 0 and "crashed" in summary.stdout


def test_shell_workload_tags_phases_with_the_phase_command(tmp_path: Path, host_env: dict[str, str]) -> None:
    gt = f"{sys.executable} -m greentop phase"
    script = f"{gt} start load && sleep 0.1 && {gt} end load && {gt} start train && sleep 0.1 && {gt} end train"
    out = tmp_path / "shell.h5"
    proc = subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--", "sh", "-c", script],
                          env=host_env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in load(out).phases] == ["load", "train"]


def test_phase_command_outside_a_recording_does_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GREENTOP_EVENTS"}
    out = subprocess.run([sys.executable, "-m", "greentop", "phase", "start", "x"], env=env, capture_output=True, text=True, cwd=REPO)
    assert (out.returncode, out.stderr) == (0, "")


def test_ctrl_c_stops_the_workload_and_still_writes_a_complete_trace(tmp_path: Path, host_env: dict[str, str]) -> None:
    out = tmp_path / "interrupted.h5"
    code = "import greentop, time\nwith greentop.phase('serving'):\n    print('serving', flush=True)\n    time.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--", sys.executable, "-c", code],
                            env=host_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "serving\n"  # the workload is in its phase (however loaded the machine)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # only greentop gets it, as from `kill -INT`: it must pass it on
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    tr = load(out)
    assert tr.complete and tr.meta["run"]["interrupted"] is True
    assert [(p.name, p.status) for p in tr.phases] == [("serving", "crashed")]
    summary = subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", "json"],
                             env=host_env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert next(r for r in json.loads(summary.stdout)["rows"] if r["name"] == "run")["status"] == "interrupted"


@pytest.mark.parametrize("argv, message", [
    (["record", "-o", "x.h5"], "no command to run"),
    (["record", "-o", "/no/such/dir/x.h5", "--", "true"], "output folder does not exist"),
    (["record", "-o", "x.h5", "--region", "ATLANTIS", "--", "true"], "ATLANTIS"),
])
def test_bad_record_input_is_one_line_and_exit_2(tmp_path: Path, host_env: dict[str, str], argv: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "greentop", *argv], env=host_env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "x.h5").exists()


def test_summary_formats_of_a_recorded_run(tmp_path: Path, host_env: dict[str, str]) -> None:
    proc, out = record(tmp_path, host_env, WORKLOAD, "--no-baseline", "--region", "FR")
    assert proc.returncode == 0, proc.stderr
    outputs = {}
    for fmt in ("table", "csv", "json", "md"):
        r = subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", fmt], capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 0, r.stderr
        outputs[fmt] = r.stdout
    doc = json.loads(outputs["json"])
    assert "training" in outputs["table"] and "training" in outputs["md"] and "training" in outputs["csv"]
    assert doc["carbon_g_per_kwh"] == pytest.approx(40.48)  # FR in the shipped table, stored with the output
    assert "Our World in Data" in doc["carbon_source"]
    training = next(r for r in doc["rows"] if r["name"] == "training")
    total = next(d for d in training["domains"] if d["domain"] == "total")
    assert total["gco2e_g"] == pytest.approx(total["energy_j"] / 3.6e6 * 40.48)
    assert total["per_unit_j"]["samples"] == pytest.approx(total["energy_j"] / (3 * 64))
