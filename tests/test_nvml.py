"""NVML discovery and compiled sampling against the fake libnvidia-ml.so.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from greentop.channel import Lane, Quantity
from greentop.energy import CounterUnwrapper, PowerIntegrator
from greentop.sampler import Sampler
from greentop.sources import nvml
from tests.fakes.nvml import FakeNvmlConfig, expected_energy_mj, expected_power_mw
from tests.fakes.profile import PowerProfile

Install = Callable[[FakeNvmlConfig], FakeNvmlConfig]
REPO = Path(__file__).resolve().parent.parent


def test_discovers_power_fields_and_energy_per_gpu(fake_nvml: Install) -> None:
    fake_nvml(FakeNvmlConfig(devices=2, names={0: "NVIDIA H200", 1: "NVIDIA H200"}, mig={1: True}))
    found = nvml.discover()
    names = {c.name: c for c in found.channels}
    for g in (0, 1):
        assert names[f"nvml:gpu{g}:power"].lane is Lane.FAST
        assert names[f"nvml:gpu{g}:power"].quantity is Quantity.POWER
        assert names[f"nvml:gpu{g}:power_instant"].reader.field_id == nvml.FIELD_POWER_INSTANT
        assert names[f"nvml:gpu{g}:power_average"].reader.field_id == nvml.FIELD_POWER_AVERAGE
        energy = names[f"nvml:gpu{g}:energy"]
        assert energy.lane is Lane.SLOW and energy.unit == "mJ" and energy.domain == f"gpu-{g}"
    assert "MIG" in names["nvml:gpu1:power"].note and "MIG" not in names["nvml:gpu0:power"].note
    assert [d["name"] for d in found.devices] == ["NVIDIA H200", "NVIDIA H200"]
    assert found.devices[1]["mig"] is True and found.devices[0]["power_limit_w"] == 700.0
    assert not found.problems


def test_gpu_without_fields_or_energy_counter_keeps_power(fake_nvml: Install) -> None:
    fake_nvml(FakeNvmlConfig(fields=False, energy=False))
    found = nvml.discover()
    assert [c.name for c in found.channels] == ["nvml:gpu0:power"]
    assert any("no energy counter" in n for n in found.notes)


def test_driver_not_loaded_is_a_problem_with_a_fix(fake_nvml: Install) -> None:
    fake_nvml(FakeNvmlConfig(init_error=9))
    found = nvml.discover()
    assert not found.channels
    (p,) = found.problems
    assert "driver not loaded" in p.reason and "modprobe nvidia" in p.fix


def _discover_in_subprocess(env: dict[str, str]) -> dict[str, object]:
    code = (
        "import json; from greentop.sources import nvml; r = nvml.discover();"
        "print(json.dumps({'channels': [c.name for c in r.channels],"
        " 'problems': [p.to_dict() for p in r.problems], 'notes': r.notes}))"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("GREENTOP_NVML_LIB", "LD_LIBRARY_PATH")}
    out = subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout)


def test_missing_library_path_is_reported(tmp_path: Path) -> None:
    got = _discover_in_subprocess({"GREENTOP_NVML_LIB": str(tmp_path / "libnvidia-ml.so.1")})
    assert got["channels"] == []
    (p,) = got["problems"]  # type: ignore[misc]
    assert "cannot load NVML" in p["reason"] and "GREENTOP_NVML_LIB" in p["fix"]


def test_no_driver_and_no_gpu_is_a_quiet_note(no_host: Path) -> None:
    got = _discover_in_subprocess({"GREENTOP_SYSFS_ROOT": str(no_host)})
    assert got["channels"] == [] and got["problems"] == []
    assert any("no NVIDIA driver" in n for n in got["notes"])  # type: ignore[union-attr]


def test_gpu_nodes_without_nvml_is_a_problem(no_host: Path) -> None:
    (no_host / "dev").mkdir()
    (no_host / "dev" / "nvidia0").touch()
    got = _discover_in_subprocess({"GREENTOP_SYSFS_ROOT": str(no_host)})
    (p,) = got["problems"]  # type: ignore[misc]
    assert "NVML is not found" in p["reason"]


def test_compiled_sampler_reads_fake_nvml_against_scripted_truth(fake_nvml: Install) -> None:
    profile = PowerProfile(((0.15, 120.0), (0.1, 690.0)))
    config = fake_nvml(FakeNvmlConfig(update_ms=20, energy_cost_us=3900, energy_start_mj={0: 5_000_000}, profiles={0: profile}))
    channels = nvml.discover().channels
    sampler = Sampler(channels, rate_hz=1000, slow_rate_hz=50)
    with sampler:
        time.sleep(1.2)
    got = sampler.drain()
    health = sampler.health()

    power = got["nvml:gpu0:power"]
    expected = np.array([expected_power_mw(config, 0, int(t)) for t in power.t_ns])
    # A read that straddles a refresh instant may see either side: allow a few, not more.
    assert np.mean(power.raw == expected) > 0.98
    assert np.array_equal(got["nvml:gpu0:power_instant"].raw[:5], [expected_power_mw(config, 0, int(t)) for t in got["nvml:gpu0:power_instant"].t_ns[:5]])

    energy = got["nvml:gpu0:energy"]
    cost_ns = health.channels["nvml:gpu0:energy"].max_cost_ns
    assert cost_ns >= 3_900_000  # the slow call really is slow ...
    for t, raw in zip(energy.t_ns, energy.raw):
        lo, hi = expected_energy_mj(config, 0, int(t - cost_ns)), expected_energy_mj(config, 0, int(t + cost_ns))
        assert lo <= raw <= hi
    # ... and it sits on its own lane: the fast lane got far more samples than a shared loop
    # with a 3.9 ms call in every tick could give (at most ~256 per second).
    shared_loop_max = 1.2 / 3.9e-3
    assert power.t_ns.size > 2 * shared_loop_max
    assert health.overruns == 0

    t0, t1 = int(energy.t_ns[0]), int(energy.t_ns[-1])
    truth_j = (expected_energy_mj(config, 0, t1) - expected_energy_mj(config, 0, t0)) / 1e3
    counter_j = CounterUnwrapper(scale=1e-3, wrap_raw=0).feed(energy.t_ns, energy.raw).energy_j[-1]
    update_j = 0.02 * 690.0  # one refresh window at peak power
    assert counter_j == pytest.approx(truth_j, abs=2 * update_j)
    mask = (power.t_ns >= t0) & (power.t_ns <= t1)
    integrated_j = PowerIntegrator(scale=1e-3).feed(power.t_ns[mask], power.raw[mask]).energy_j[-1]
    assert integrated_j == pytest.approx(truth_j, abs=3 * update_j)


def test_a_slow_nvml_call_holds_up_only_its_own_gpu_not_rapl(fake_nvml: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from greentop.sources import rapl_sysfs
    from tests.fakes.host import FakeHost

    host = FakeHost(tmp_path / "host")
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(50.0))
    host.add_rapl_zone("0:0", "dram", PowerProfile.constant(5.0))
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(host.root))
    # GPU 0's driver takes 7.4 ms for every power read (as seen on a real machine); GPU 1 is quick.
    fake_nvml(FakeNvmlConfig(devices=2, fields=False, energy=False, power_stall_us={0: 7400}))
    rapl = rapl_sysfs.discover().channels
    gpus = nvml.discover().channels
    assert len(rapl) == 2 and {c.name for c in gpus} == {"nvml:gpu0:power", "nvml:gpu1:power"}
    sampler = Sampler(rapl + gpus, rate_hz=1000)
    with sampler:
        time.sleep(1.0)
    got = sampler.drain()

    # Design promise: RAPL keeps the fast rate (1 ms) beside a stalling GPU. On one shared lane
    # every RAPL interval would be >= 7.4 ms; the margins here allow a heavily loaded machine.
    for c in rapl:
        dt_ns = np.diff(got[c.name].t_ns)
        assert np.median(dt_ns) < 3_000_000, c.name
        assert dt_ns.size > 300, c.name  # > 30 % of the 1000 ticks asked (a shared lane: <= 135)
    stalled = np.diff(got["nvml:gpu0:power"].t_ns)
    assert np.median(stalled) >= 7_400_000  # the stall is real and held up GPU 0 ...
    assert np.median(np.diff(got["nvml:gpu1:power"].t_ns)) < 3_000_000  # ... and nothing else
    assert list(sampler.health().lanes) == ["fast", "gpu0", "gpu1"]


def test_sampler_and_nvml_source_load_the_same_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler reads $GREENTOP_NVML_LIB through ``_paths`` (not the source module): both must name the same file."""
    from greentop import _paths
    from greentop.sources import nvml as nvml_source

    monkeypatch.setenv(_paths.NVML_LIB_ENV, "/opt/fake/libnvidia-ml.so.1")
    assert nvml_source.LIB_ENV == _paths.NVML_LIB_ENV
    assert nvml_source.library_path() == _paths.nvml_library_path() == "/opt/fake/libnvidia-ml.so.1"
