"""Fixtures that put greentop in front of fake hardware."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest

from tests.fakes.nvml import CONFIG_ENV, FakeNvmlConfig, build_fake_nvml


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
