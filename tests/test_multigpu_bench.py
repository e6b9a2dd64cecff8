"""The multi-GPU benchmark of issue #15 on the CPU: ``benchmarks/multigpu/ddp_train.py`` under
torchrun (gloo, two ranks, a tiny model) and ``greentop record``, over a fake NVML of two GPUs at
known powers; ``compare.py`` then sets greentop's per-GPU per-phase energy against the counter
deltas each rank read itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.nvml import FakeNvmlConfig, fake_nvml_env
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent
GPU_W = {0: 120.0, 1: 300.0}
UPDATE_S = 0.020
SCHED_SLACK_S = 0.010  # a read's clock reading can trail the read this much on a loaded machine


def test_ddp_benchmark_on_cpu_ranks_read_their_own_gpu_and_greentop_agrees(
        tmp_path: Path, host_env: dict[str, str], fake_nvml_lib: Path) -> None:
    config = FakeNvmlConfig(devices=2, epoch_ns=time.monotonic_ns(), update_ms=int(UPDATE_S * 1000), energy_cost_us=0,
                            profiles={i: PowerProfile.constant(w) for i, w in GPU_W.items()})
    conf = config.write(tmp_path / "nvml.conf")
    env = fake_nvml_env(fake_nvml_lib, conf, host_env) | {"GREENTOP_NVML_LIB": str(fake_nvml_lib), "OMP_NUM_THREADS": "1"}
    edges = tmp_path / "edges"
    trace = tmp_path / "run.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "greentop", "record", "-o", str(trace), "--no-baseline", "--rate", "200", "--",
         sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(REPO / "benchmarks/multigpu/ddp_train.py"), "--device", "cpu", "--backend", "gloo", "--arch", "tiny",
         "--image-size", "16", "--classes", "10", "--batch", "4", "--epochs", "2", "--warmup-steps", "2",
         "--phase-seconds", "0.6", "--gap", "0.1", "--amp", "none", "--out-dir", str(edges)],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = [json.loads((edges / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(d["rank"], d["gpu"], d["nvml"]) for d in docs] == [(0, 0, True), (1, 1, True)]
    assert all(d["env"] == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
               for d in docs)
    assert [e["name"] for e in docs[0]["phases"]] == ["warm-up", "train", "train", "eval"]

    out = subprocess.run([sys.executable, str(REPO / "benchmarks/multigpu/compare.py"), str(trace), str(edges), "--json"],
                         env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 8
    for r in rows:
        assert r["gpu"] == r["rank"]
        # Over the rank's own read window, greentop's GPU energy and the counter delta agree to what
        # the counter can tell: each read is stale by up to one refresh (20 ms here), so a delta is
        # off by at most one refresh period's energy (2.4 J at 120 W: 2 % of a 1.2 s window), plus
        # the time a reader can be held between a read and its clock reading on a loaded 2-core
        # machine (2.7 J at 120 W, 22.7 ms, seen once in CI).
        limit_j = GPU_W[r["gpu"]] * (UPDATE_S + SCHED_SLACK_S)
        assert abs(r["window_j"] - r["nvml_j"]) <= limit_j, r
        assert abs(r["nvml_j"] - GPU_W[r["gpu"]] * r["window_s"]) <= limit_j, r  # its own GPU's (120 W against 300 W)
        # The phase's own energy is its GPU's, not the machine's (the other GPU draws 2.5x, both
        # together 3.5x): within 5 %, or, for a phase only a few refreshes long, within the same
        # one-refresh bound as above (a 32-image epoch under the full suite once read 96 W for 120).
        expected_j = GPU_W[r["gpu"]] * r["phase_s"]
        assert abs(r["phase_j"] - expected_j) <= max(0.05 * expected_j, limit_j), r
        assert r["images_per_s"] > 0 and r["j_per_image"] > 0
    table = subprocess.run([sys.executable, str(REPO / "benchmarks/multigpu/compare.py"), str(trace), str(edges)],
                           env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert table.returncode == 0 and "diff_pct" in table.stdout
