"""Fixtures that put greentop in front of fake hardware."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from tests.fakes.host import FakeHost
from tests.fakes.nvml import CONFIG_ENV, FakeNvmlConfig, build_fake_nvml
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Overviews built while reading traces go to this session's own cache, never the user's
    (subprocesses inherit it)."""
    old = os.environ.get("XDG_CACHE_HOME")
    path = tmp_path_factory.mktemp("xdg-cache")
    os.environ["XDG_CACHE_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def fake_nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_nvml(tmp_path_factory.mktemp("fake-nvml"))


@pytest.fixture
def fake_nvml(fake_nvml_lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeNvmlConfig], FakeNvmlConfig]:
    """Install a fake NVML with a given config for this test; returns the config (epoch set)."""

    def install(config: FakeNvmlConfig) -> FakeNvmlConfig:
        if config.epoch_ns is None:
            config.epoch_ns = time.monotonic_ns()
        path = tmp_path / "nvml.conf"
        config.write(path)
        monkeypatch.setenv("GREENTOP_NVML_LIB", str(fake_nvml_lib))
        monkeypatch.setenv(CONFIG_ENV, str(path))
        return config

    return install


@pytest.fixture
def no_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty fake host root: no sysfs sensors at all."""
    root = tmp_path / "host"
    root.mkdir()
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(root))
    return root


@pytest.fixture
def host_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a subprocess (greentop record, a workload) on a fake host: a RAPL package
    alternating 30 W and 60 W every 0.1 s, a 5 W DRAM zone, /proc/stat at 30 %, no NVML."""
    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile(((0.1, 30.0), (0.1, 60.0))))
    host.add_rapl_zone("0:0", "dram", PowerProfile.constant(5.0))
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    with host:
        yield os.environ | {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so"),
                            "PYTHONPATH": str(REPO)}
