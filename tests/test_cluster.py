"""Several ranks and several GPUs under one `greentop record`: torchrun with the gloo backend on the
CPU, over a fake host with a fake NVML of two GPUs drawing different, known powers."""

from __future__ import annotations

import json
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
