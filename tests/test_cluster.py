"""Several ranks and several GPUs under one `greentop record`: torchrun with the gloo backend on the
CPU, over a fake host with a fake NVML of two GPUs drawing different, known powers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greentop.phases import rank_attrs
from greentop.trace import load
from tests.fakes.nvml import FakeNvmlConfig
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent
GPU_W = {0: 100.0, 1: 250.0}

TRAIN = """
import os, time
import torch, torch.distributed as dist
import greentop

dist.init_process_group("gloo")
rank = dist.get_rank()
with greentop.phase("warmup"):
    dist.barrier()
with greentop.phase("train", epoch=0):
    t = torch.ones(4) * rank
    for _ in range(4):
        dist.all_reduce(t)
        time.sleep(0.3)
    greentop.count(samples=64)
dist.barrier()
dist.destroy_process_group()
"""


def test_rank_attrs_come_from_torchrun_or_slurm_variables() -> None:
    assert rank_attrs({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}) == {"rank": 3, "local_rank": 1, "world_size": 8}
    assert rank_attrs({"SLURM_PROCID": "5", "SLURM_LOCALID": "0", "SLURM_NTASKS": "6"}) == {"rank": 5, "local_rank": 0, "world_size": 6}
    assert rank_attrs({"RANK": "x"}) == {}
    assert rank_attrs({}) == {}


def gpu_env(host_env: dict[str, str], lib: Path, tmp_path: Path) -> dict[str, str]:
    config = FakeNvmlConfig(devices=2, epoch_ns=time.monotonic_ns(), update_ms=20, energy_cost_us=0,
                            profiles={i: PowerProfile.constant(w) for i, w in GPU_W.items()})
    conf = config.write(tmp_path / "nvml.conf")
    return host_env | {"GREENTOP_NVML_LIB": str(lib), "GREENTOP_FAKE_NVML_CONFIG": str(conf)}


def test_torchrun_two_ranks_tag_their_rank_and_the_summary_groups_by_rank_and_gpu(
        tmp_path: Path, host_env: dict[str, str], fake_nvml_lib: Path) -> None:
    env = gpu_env(host_env, fake_nvml_lib, tmp_path) | {"OMP_NUM_THREADS": "1"}
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    out = tmp_path / "run.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--rate", "200", "--", sys.executable,
         "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trace = load(out)
    assert {c.channel.domain for c in trace.channels} >= {"gpu-0", "gpu-1"}
    train = [p for p in trace.phases if p.name == "train"]
    assert sorted((p.attrs["rank"], p.attrs["local_rank"], p.attrs["world_size"]) for p in train) == [(0, 0, 2), (1, 1, 2)]
    assert len({p.pid for p in train}) == 2

    def grouped(by: str) -> list[dict[str, object]]:
        r = subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--by", by, "--format", "json"],
                           env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["by"] == by
        return list(doc["rows"])

    ranks = [r for r in grouped("rank") if r["group"].startswith("rank ") and r["phase"] == "train"]
    assert [(r["rank"], r["domains"]) for r in ranks] == [(0, ["gpu-0"]), (1, ["gpu-1"])]
    for r in ranks:
        # The phase's energy on its own GPU only: that GPU's known power over the phase's duration.
        assert r["average_w"] == pytest.approx(GPU_W[int(r["rank"])], rel=0.03)
    gpus = grouped("gpu")
    totals = {r["group"]: r for r in gpus if r["note"] == "GPU total"}
    assert set(totals) == {"gpu-0", "gpu-1"}
    assert [r["rank"] for r in gpus if r["group"] == "gpu-1" and r["phase"] == "train"] == [1]
    # Whole-host figures come once: the host row is the run's total, not a sum over ranks.
    host = [r for r in gpus if r["group"] == "host"]
    assert len(host) == 1
    run_total = trace.summary().row("run").total.energy_j
    assert host[0]["energy_j"] == pytest.approx(run_total, rel=1e-9)
    assert host[0]["energy_j"] > totals["gpu-0"]["energy_j"] + totals["gpu-1"]["energy_j"]


# ---- several nodes: one trace each, merged on the wall clock --------------------------------------

NODE_WORKLOAD = """
import os, time, greentop
time.sleep(max(0.0, float(os.environ["START_AT"]) - time.time()))  # every node begins at one wall-clock instant
with greentop.phase("train", epoch=0):
    time.sleep(1.0)
    greentop.count(samples=100)
"""

SHIFT_NS = 7_345_678_901_234  # node b booted about two hours before node a: its monotonic clock is ahead


def shift_monotonic_clock(path: Path, shift_ns: int) -> None:
    """Make a trace look recorded on a machine whose CLOCK_MONOTONIC is ``shift_ns`` ahead (another
    boot time); its wall clock, and so its wall-clock offset, stays the same."""
    import h5py

    with h5py.File(path, "r+") as f:
        for g in f["channels"].values():
            g["t_ns"][...] = g["t_ns"][()] + shift_ns
            if int(g["tail"].shape[0]):
                tail = g["tail"][()]
                tail[:, 0] += shift_ns
                g["tail"][...] = tail
        for ds in (f["events/t_ns"], f["health/t_ns"], f["phases/start_ns"], f["phases/end_ns"], f["marks/t_ns"], f["counts/t_ns"]):
            if ds.shape[0]:
                ds[...] = ds[()] + shift_ns
        f["meta"].attrs["start_mono_ns"] = int(f["meta"].attrs["start_mono_ns"]) + shift_ns
        f["run"].attrs["end_mono_ns"] = int(f["run"].attrs["end_mono_ns"]) + shift_ns
        if "overview" in f:
            del f["overview"]  # a cache of the old timeline; replay rebuilds it


def test_two_nodes_with_offset_clocks_merge_into_one_job(tmp_path: Path) -> None:
    from tests.fakes.host import FakeHost

    watts = {"a": 40.0, "b": 90.0}
    hosts = {}
    for node, w in watts.items():
        h = FakeHost(tmp_path / f"host-{node}")
        h.add_cpus(2)
        h.add_rapl_zone("0", "package-0", PowerProfile.constant(w))
        h.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
        h.start()
        hosts[node] = h
    try:
        start_at = time.time() + 6.0  # room for both recorders to start on a loaded machine
        procs = {}
        for node, h in hosts.items():
            env = dict(os.environ) | h.environ | {
                "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so"), "PYTHONPATH": str(REPO), "START_AT": repr(start_at)}
            procs[node] = subprocess.Popen(
                [sys.executable, "-m", "greentop", "record", "-o", str(tmp_path / f"node-{node}.h5"), "--baseline", "0.5",
                 "--rate", "200", "--", sys.executable, "-c", NODE_WORKLOAD],
                env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node, p in procs.items():
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-3000:]
    finally:
        for h in hosts.values():
            h.close()
    a, b = tmp_path / "node-a.h5", tmp_path / "node-b.h5"
    shift_monotonic_clock(b, SHIFT_NS)
    node_total = {n: load(tmp_path / f"node-{n}.h5").summary().row("run").total.energy_j for n in watts}

    job = tmp_path / "job.h5"
    env = dict(os.environ) | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "greentop", "merge", str(a), str(b), "-o", str(job)],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wall-clock" in proc.stderr and "began within" in proc.stderr

    trace = load(job)
    nodes = {p.attrs["node"]: p for p in trace.phases if p.name == "train"}
    assert set(nodes) == {"node-a", "node-b"}  # one host name for both: the file names tell them apart
    # Aligned: both nodes began "train" at one wall-clock instant; their monotonic clocks are 2 h apart.
    # (0.25 s: a loaded machine may wake one node's sleep late; misaligned would be 2 h off.)
    assert abs(nodes["node-a"].start_ns - nodes["node-b"].start_ns) < 250_000_000
    assert {c.channel.domain for c in trace.channels} == {"node-a/cpu-package-0", "node-b/cpu-package-0"}
    summary = trace.summary()
    assert summary.row("run").total.energy_j == pytest.approx(node_total["a"] + node_total["b"], rel=1e-3)
    assert summary.baseline is not None  # the window in which both nodes were idle

    r = subprocess.run([sys.executable, "-m", "greentop", "summary", str(job), "--by", "node", "--format", "json"],
                       env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    totals = {row["group"]: row["energy_j"] for row in rows if row["phase"] == "run"}
    assert totals["node-a"] == pytest.approx(node_total["a"], rel=1e-3)
    assert totals["node-b"] == pytest.approx(node_total["b"], rel=1e-3)
    assert totals["job"] == pytest.approx(node_total["a"] + node_total["b"], rel=1e-3)
    train = {row["group"]: row for row in rows if row["phase"] == "train"}
    for n, w in watts.items():
        assert train[f"node-{n}"]["average_w"] == pytest.approx(w, rel=0.03)  # each node's phase on its own domains
    table = subprocess.run([sys.executable, "-m", "greentop", "summary", str(job)], env=env, capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
    assert table.returncode == 0 and "by node:" in table.stdout

    from greentop.tui.replay import ReplayModel

    model = ReplayModel(job)  # replay: one chart per node's domain
    assert sorted(model.domain_name(c) for c in model.primary) == ["node-a/cpu-package-0", "node-b/cpu-package-0"]


def test_merge_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    env = dict(os.environ) | {"PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "greentop", "merge", str(tmp_path / "missing.h5"), str(tmp_path / "x.h5"), "-o",
                        str(tmp_path / "job.h5")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such trace" in r.stderr


def test_record_output_names_take_the_host_and_ranks() -> None:
    from greentop.merge import MergeError, expand_output

    host = socket.gethostname().split(".")[0]
    assert expand_output("run-{host}-{rank}-{node_rank}.h5", {"RANK": "5", "GROUP_RANK": "1"}) == f"run-{host}-5-1.h5"
    assert expand_output("run-{rank}.h5", {"SLURM_PROCID": "3"}) == "run-3.h5"
    assert expand_output("run.h5", {}) == "run.h5"
    with pytest.raises(MergeError, match="only"):
        expand_output("run-{user}.h5", {})
