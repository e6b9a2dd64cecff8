"""The greentop command end to end: devices, sample, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from greentop.cli import main
from tests.fakes.host import FakeHost
from tests.fakes.nvml import CONFIG_ENV, FakeNvmlConfig
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent
STEPS = PowerProfile(((0.05, 40.0), (0.03, 95.0)))


def greentop(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GREENTOP_")}
    return subprocess.run([sys.executable, "-m", "greentop", *args], env=base | env, capture_output=True, text=True, cwd=REPO, timeout=60)


@pytest.fixture
def machine(tmp_path: Path, fake_nvml_lib: Path) -> Iterator[tuple[FakeHost, dict[str, str]]]:
    """A fake host with a RAPL package, a DRAM subzone and one fake GPU."""
    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", STEPS)
    host.add_rapl_zone("0:0", "dram", STEPS)
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    config = tmp_path / "nvml.conf"
    FakeNvmlConfig(update_ms=50, profiles={0: PowerProfile.constant(300.0)}, names={0: "NVIDIA H200"}).write(config)
    env = {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(fake_nvml_lib), CONFIG_ENV: str(config)}
    with host:
        yield host, env


def test_devices_json_lists_channels_with_measured_update_periods(machine: tuple[FakeHost, dict[str, str]]) -> None:
    _host, env = machine
    out = greentop("devices", "--json", "--watch", "0.6", env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    ch = {c["name"]: c for c in doc["channels"]}
    assert set(ch) == {"rapl:package-0", "rapl:package-0:dram", "nvml:gpu0:power", "nvml:gpu0:power_instant",
                       "nvml:gpu0:power_average", "nvml:gpu0:energy"}
    assert ch["nvml:gpu0:power"]["state"] == "ok" and ch["nvml:gpu0:power"]["lane"] == "fast"
    # The fake GPU refreshes every 50 ms; sampled at 1 kHz, the changes show that period.
    assert ch["nvml:gpu0:energy"]["update_period_s"] == pytest.approx(0.05, abs=0.02)
    assert ch["nvml:gpu0:energy"]["read_cost_us"] >= 3900
    assert ch["rapl:package-0"]["update_period_s"] is not None
    assert doc["devices"][0]["name"] == "NVIDIA H200"
    assert not doc["problems"]


def test_devices_table_on_a_machine_without_sensors(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    host.set_proc_stat(PowerProfile.constant(0.5), n_cpus=2)
    with host:
        out = greentop("devices", "--watch", "0.3", env={"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "none.so")})
    assert out.returncode == 0, out.stderr
    assert "estimate:cpu" in out.stdout and "estimated" in out.stdout
    assert "No hardware power sensor is readable here" in out.stdout
    assert "cannot load NVML" in out.stdout


def test_sample_totals_one_channel_per_domain(machine: tuple[FakeHost, dict[str, str]]) -> None:
    _host, env = machine
    out = greentop("sample", "-d", "0.8", "--json", env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    by = {c["name"]: c for c in doc["channels"]}
    # DRAM is outside the package domain: its own domain in the machine total.
    assert doc["total"]["channels"] == ["nvml:gpu0:energy", "rapl:package-0", "rapl:package-0:dram"]
    assert doc["total"]["energy_j"] == pytest.approx(by["nvml:gpu0:energy"]["energy_j"] + by["rapl:package-0"]["energy_j"]
                                                     + by["rapl:package-0:dram"]["energy_j"])
    assert doc["total"]["cpu_total"] == "packages" and "CPU packages + DRAM" in doc["total"]["machine_total"]
    assert by["nvml:gpu0:power"]["average_w"] == pytest.approx(300.0, rel=0.01)
    assert doc["health"]["channels"]["rapl:package-0"]["overruns"] == 0


def test_sample_table_reports_health(machine: tuple[FakeHost, dict[str, str]]) -> None:
    _host, env = machine
    out = greentop("sample", "-d", "0.5", env=env)
    assert out.returncode == 0, out.stderr
    assert "Total (nvml:gpu0:energy, rapl:package-0, rapl:package-0:dram)" in out.stdout
    assert "machine total = CPU packages + DRAM" in out.stdout
    assert "fast lane:" in out.stdout and "overruns: 0" in out.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "--rate", "abc"], "not a number"),
        (["sample", "--rate", "0"], "rate must be"),
        (["devices", "--watch", "-1"], "duration must be positive"),
        (["sample", "--cpu-idle-w", "-3"], "power must be >= 0 W"),
        (["frobnicate"], "invalid choice"),
        (["sample", "--msr", "sometimes"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("greentop: error:")


def test_bad_cpu_model_environment_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    host.set_proc_stat(PowerProfile.constant(0.5), n_cpus=2)
    with host:
        out = greentop("sample", "-d", "0.2", env={"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_CPU_MODEL": "oops"})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("greentop: error: GREENTOP_CPU_MODEL")
    assert "Traceback" not in out.stderr


def test_cpu_max_below_idle_is_rejected(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    host.set_proc_stat(PowerProfile.constant(0.5), n_cpus=2)
    with host:
        out = greentop("sample", "-d", "0.2", "--cpu-idle-w", "50", "--cpu-max-w", "10", env={"GREENTOP_SYSFS_ROOT": str(host.root)})
    assert out.returncode == 2 and "idle_w <= max_w" in out.stderr and "Traceback" not in out.stderr


def test_greentop_starts_without_importing_the_heavy_libraries() -> None:
    """`greentop phase` runs inside shell workloads and `greentop --help` everywhere: building the
    parser (every subcommand's, the report's included) must not import pandas, matplotlib,
    textual or torch."""
    import subprocess
    import sys

    code = ("import sys\nfrom greentop.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('pandas', 'matplotlib', 'textual', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sample_shows_psys_beside_the_total_and_cpu_total_psys_uses_it(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(40.0))
    host.add_rapl_zone("0:0", "dram", PowerProfile.constant(5.0))
    host.add_rapl_zone("1", "psys", PowerProfile.constant(70.0))
    env = {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so")}
    with host:
        default = greentop("sample", "-d", "0.5", "--json", env=env)
        psys = greentop("sample", "-d", "0.5", "--json", "--cpu-total", "psys", env=env)
    assert default.returncode == 0 and psys.returncode == 0, default.stderr + psys.stderr
    d, p = json.loads(default.stdout), json.loads(psys.stdout)
    # Exact sums of the channels' own figures (the fake's writer thread may lag under load, so its
    # watts are only roughly the profile's).
    dc, pc = {c["name"]: c for c in d["channels"]}, {c["name"]: c for c in p["channels"]}
    assert d["total"]["channels"] == ["rapl:package-0", "rapl:package-0:dram"]
    assert d["total"]["energy_j"] == pytest.approx(dc["rapl:package-0"]["energy_j"] + dc["rapl:package-0:dram"]["energy_j"])
    assert dc["rapl:psys"]["energy_j"] > 0 and dc["rapl:psys"]["in_total"] is False
    assert p["total"]["channels"] == ["rapl:psys"] and p["total"]["cpu_total"] == "psys"
    assert p["total"]["energy_j"] == pytest.approx(pc["rapl:psys"]["energy_j"])
    assert pc["rapl:package-0"]["in_total"] is False and pc["rapl:package-0:dram"]["in_total"] is False
