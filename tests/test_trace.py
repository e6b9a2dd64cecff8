"""The HDF5 trace: round trip, plain-h5py reading, bad files, and a recorder killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import greentop
from greentop.channel import Channel, Lane, Quantity, Reader, ReaderKind
from greentop.events import Event
from greentop.trace import RUN_BASELINE_END, RUN_BASELINE_START, TraceError, TraceWriter, load, phases_from_log, wall_time_s
from tests.fakes.host import FakeHost
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent
ENERGY = Channel("rapl:package-0", "rapl-sysfs", "cpu-package-0", Quantity.ENERGY, "uJ", 1e-6,
                 Reader(ReaderKind.FILE_DECIMAL, path="/sys/x"), wrap_raw=1000)
POWER = Channel("nvml:gpu0:power", "nvml", "gpu-0", Quantity.POWER, "mW", 1e-3, Reader(ReaderKind.NVML_POWER, gpu_index=0),
                lane=Lane.FAST, metadata={"model": "H200"})


def ev(kind: str, t: int, name: str, pid: int = 10, pid_id: str = "", parent: str = "", value: float = 0.0, **attrs: object) -> Event:
    return Event(kind=kind, t_ns=t, pid=pid, name=name, phase_id=pid_id, parent_id=parent, value=value, attrs=dict(attrs))  # type: ignore[arg-type]


def write_sample_trace(path: Path, finalize: bool = True) -> None:
    w = TraceWriter(path, [ENERGY, POWER], {"host": "box", "command": ["python", "x.py"], "rate_hz": 1000.0,
                                             "start_wall_ns": 1_700_000_000_000_000_000, "start_mono_ns": 0}, ["fast"])
    t = np.arange(0, 2_000_000_000, 1_000_000, dtype=np.int64)
    w.append_samples("rapl:package-0", t[:1000], (np.arange(1000) * 7 % 1000).astype(np.int64))
    w.append_samples("nvml:gpu0:power", t, np.full(t.size, 300_000, np.int64))
    w.flush()
    w.append_samples("rapl:package-0", t[1000:], (np.arange(1000, 2000) * 7 % 1000).astype(np.int64))
    events = [
        ev("run", 100_000_000, RUN_BASELINE_START, pid=1), ev("run", 400_000_000, RUN_BASELINE_END, pid=1),
        ev("start", 500_000_000, "training", pid_id="10:1", epoch=3),
        ev("start", 600_000_000, "step", pid_id="10:2", parent="10:1"),
        ev("count", 650_000_000, "samples", pid_id="10:2", value=256),
        ev("end", 700_000_000, "step", pid_id="10:2"),
        ev("mark", 800_000_000, "checkpoint", pid_id="10:1", step=1),
        ev("end", 1_500_000_000, "training", pid_id="10:1"),
    ]
    w.append_events(events)
    w.append_health(1_900_000_000, [0, 2], [1, 0], [2000, 2000], [2000], [3], [4], 5)
    if finalize:
        phases, marks, counts = phases_from_log(events, 2_000_000_000, "ok")
        w.finalize({"exit_code": 0}, phases, marks, counts)
    else:
        w.abort()


def test_round_trip_keeps_raw_readings_phases_and_context(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write_sample_trace(path)
    tr = greentop.load(path)
    assert tr.complete
    e = tr.channel("rapl:package-0")
    assert e.channel == ENERGY and e.t_ns.size == 2000 and e.raw[3] == 21
    assert tr.channel("nvml:gpu0:power").channel.metadata == {"model": "H200"}
    assert [p.name for p in tr.phases] == ["training", "step"]
    training, step = tr.phases
    assert (training.depth, training.parent, training.attrs) == (0, -1, {"epoch": 3})
    assert (step.depth, step.parent, step.start_ns, step.end_ns) == (1, 0, 600_000_000, 700_000_000)
    assert tr.marks[0].name == "checkpoint" and tr.marks[0].attrs == {"step": 1}
    assert tr.counts[0].value == 256 and tr.counts[0].phase == 1
    assert tr.baseline == (100_000_000, 400_000_000)
    assert tr.meta["command"] == ["python", "x.py"] and tr.meta["run"]["exit_code"] == 0
    assert tr.health["overruns"] == 2 and tr.health["events_dropped"] == 5
    assert tr.health["lanes"]["fast"] == {"ticks": 2000, "missed": 3, "late": 4}
    assert (tr.run_start_ns, tr.run_end_ns) == (0, 1_999_000_000)
    assert wall_time_s(tr.meta, 1_500_000_000) == pytest.approx(1_700_000_001.5)


def test_trace_reads_in_plain_h5py_and_pandas_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write_sample_trace(path)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "greentop-trace" and f.attrs["format_version"] == 1
        g = f["channels/000"]
        assert g.attrs["name"] == "rapl:package-0" and g.attrs["scale"] == 1e-6 and g.attrs["wrap_raw"] == 1000
        df = pd.DataFrame({"t_ns": g["t_ns"][:], "raw": g["raw"][:]})
        phases = pd.DataFrame({k: f["phases"][k][:] for k in f["phases"]})
        assert g["t_ns"].compression == "gzip" and g["t_ns"].chunks is not None
        assert json.loads(f["meta"].attrs["command"][len("json:"):]) == ["python", "x.py"]
    assert len(df) == 2000 and list(phases["name"].str.decode("utf-8")) == ["training", "step"]


def test_unfinalised_trace_rebuilds_phases_from_the_event_log(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write_sample_trace(path, finalize=False)
    tr = load(path)
    assert not tr.complete
    assert [p.name for p in tr.phases] == ["training", "step"]
    assert tr.counts[0].phase == 1


def test_bad_files_give_one_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.h5"
    write_sample_trace(good)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    versioned = tmp_path / "v9.h5"
    versioned.write_bytes(good.read_bytes())
    with h5py.File(versioned, "a") as f:
        f.attrs["format_version"] = 9
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2]
    cases = {tmp_path / "missing.h5": "no such file", tmp_path: "is a directory", text: "not an HDF5 file",
             truncated: "truncated or corrupt", versioned: "format version 9", foreign: "not a greentop trace"}
    for path, message in cases.items():
        with pytest.raises(TraceError, match=message):
            load(path)
        out = subprocess.run([sys.executable, "-m", "greentop", "summary", str(path)], capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 2, (path, out.stderr)
        assert out.stderr.count("\n") == 1 and message in out.stderr and "Traceback" not in out.stderr


def test_recorder_killed_with_sigkill_keeps_all_but_the_last_second(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(50.0))
    host.set_proc_stat(PowerProfile.constant(0.2), n_cpus=2)
    out = tmp_path / "killed.h5"
    workload = ("import greentop, time\nwith greentop.phase('training'):\n    while True:\n"
                "        with greentop.phase('step'):\n            time.sleep(0.05)\n        greentop.count(samples=8)\n")
    env = os.environ | {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "none")}
    with host:
        proc = subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--",
                                 sys.executable, "-c", workload], env=env, cwd=REPO, start_new_session=True)
        time.sleep(3.0)
        killed_ns = time.monotonic_ns()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.killpg(proc.pid, signal.SIGKILL)  # the orphaned workload
    tr = load(out)
    assert not tr.complete
    assert killed_ns - tr.run_end_ns <= 1_000_000_000  # at most the last second is lost
    assert tr.channel("rapl:package-0").t_ns.size > 1000
    names = {p.name for p in tr.phases}
    assert {"training", "step"} <= names
    training = next(p for p in tr.phases if p.name == "training")
    assert training.status == "crashed" and training.end_ns == tr.run_end_ns
    assert sum(c.value for c in tr.counts) >= 8
    summary = subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", "json"],
                             capture_output=True, text=True, cwd=REPO)
    assert summary.returncode == 0, summary.stderr
    assert "training" in summary.stdout


@pytest.mark.parametrize("finish", ["finalize", "abort"])
def test_samples_across_many_chunks_and_flushes_come_back_exactly(tmp_path: Path, finish: str) -> None:
    path = tmp_path / "long.h5"
    w = TraceWriter(path, [ENERGY], {}, ["fast"])
    t = np.arange(40_000, dtype=np.int64) * 1_000_000 + 5
    raw = (t // 3) % 1000
    rng = np.random.default_rng(1)
    i = 0
    while i < t.size:
        k = int(rng.integers(1, 3000))
        w.append_samples(ENERGY.name, t[i:i + k], raw[i:i + k])
        i += k
        if rng.random() < 0.5:
            w.flush()
    if finish == "finalize":
        w.finalize({}, [], [], [])
    else:
        w.abort()
    got = load(path).channel(ENERGY.name)
    assert np.array_equal(got.t_ns, t) and np.array_equal(got.raw, raw)
    if finish == "finalize":
        with h5py.File(path, "r") as f:  # a clean trace needs no tail logic
            assert f["channels/000/t_ns"].shape == (40_000,) and f["tail_len"][0] == 0
