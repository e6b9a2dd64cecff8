"""The trace recorded on the H200 (ResNet-50 training, evaluation, inference): it loads, it
summarises, and its GPU energy agrees with NVML counter deltas the workload read itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from greentop.attribution import summarise
from greentop.energy import converter_for
from greentop.trace import load

DATA = Path(__file__).resolve().parent / "data"
TRACE = DATA / "h200_resnet50.h5"
EDGES = DATA / "h200_resnet50_edges.json"


def test_h200_trace_holds_the_runs_phases_channels_and_context() -> None:
    tr = load(TRACE)
    assert tr.complete and tr.meta["run"]["exit_code"] == 0
    assert [p.name for p in tr.phases] == ["data-loading", "warm-up", "training", "epoch", "epoch", "epoch", "evaluation", "inference"]
    epochs = [p for p in tr.phases if p.name == "epoch"]
    assert [p.attrs["epoch"] for p in epochs] == [0, 1, 2] and all(p.depth == 1 for p in epochs)
    names = {c.channel.name for c in tr.channels}
    assert {"nvml:gpu0:power", "nvml:gpu0:power_instant", "nvml:gpu0:energy", "estimate:cpu"} <= names
    assert tr.meta["gpus"][0]["name"] == "NVIDIA H200"
    assert tr.health["overruns"] == 0 and tr.health["events_dropped"] == 0
    assert tr.baseline is not None


def test_h200_summary_gives_energy_per_sample_for_training() -> None:
    s = summarise(load(TRACE), 400.0, "test")
    training = next(r for r in s.phase_rows() if r.name == "training")
    gpu = training.domain("gpu-0")
    assert gpu.per_unit_j["samples"] == pytest.approx(gpu.energy_j / training.counts["samples"])
    assert 3 * 10240 == training.counts["samples"]
    assert gpu.average_w > 400  # a ResNet-50 in bf16 keeps an H200 busy
    top = [r for r in s.phase_rows() if r.depth == 0]
    untagged = next(r for r in s.rows if r.kind == "untagged")
    run = next(r for r in s.rows if r.kind == "run")
    assert sum(r.domain("gpu-0").energy_j for r in top) + untagged.domain("gpu-0").energy_j == pytest.approx(run.domain("gpu-0").energy_j)


def test_h200_gpu_energy_matches_the_workloads_own_counter_reads_within_2_percent() -> None:
    tr = load(TRACE)
    energy = tr.channel("nvml:gpu0:energy")
    t = energy.t_ns.astype(np.float64)
    e = converter_for(energy.channel).feed(energy.t_ns, energy.raw).energy_j
    checked = 0
    for edge in json.loads(EDGES.read_text()):
        a, b = edge["read0_ns"], edge["read1_ns"]
        if b - a < 2e9:
            continue
        trace_j = float(np.interp(b, t, e) - np.interp(a, t, e))
        assert trace_j == pytest.approx(edge["counter_mj"] / 1e3, rel=0.02), edge["name"]
        checked += 1
    assert checked >= 5


def test_load_gives_pandas_views_of_phases_channels_and_summary() -> None:
    tr = load(TRACE)
    phases = tr.phases_frame()
    assert list(phases["name"])[:3] == ["data-loading", "warm-up", "training"]
    energy = tr.channel_frame("nvml:gpu0:energy")
    assert energy["energy_j"].iloc[0] == 0 and energy["energy_j"].is_monotonic_increasing
    frame = tr.summary_frame()
    training_gpu = frame[(frame["phase"] == "training") & (frame["domain"] == "gpu-0")]
    assert len(training_gpu) == 1
    assert training_gpu["energy_j"].iloc[0] == pytest.approx(tr.summary().row("training").domain("gpu-0").energy_j, rel=1e-6)
