"""A fake ``libnvidia-ml.so.1`` for tests: build it, configure it, and predict what it reports.

The library itself is ``fake_nvml.c`` next to this file: NVML's real C interface and return
codes, loadable by pynvml (``nvidia-ml-py``) and by greentop's compiled sampler (``dlopen`` +
``dlsym``). It reports power and energy from scripted :class:`PowerProfile` s, so a test knows
the truth exactly.

Typical use in a test::

    lib = build_fake_nvml(tmp_dir)                        # .../libnvidia-ml.so.1
    config = FakeNvmlConfig(devices=2, epoch_ns=time.monotonic_ns(), update_ms=20,
                            profiles={0: PowerProfile(((0.2, 120.0), (0.1, 690.0)))})
    config.write(tmp_dir / "nvml.conf")
    env = fake_nvml_env(lib, tmp_dir / "nvml.conf")       # run the code under test with it
    ...
    assert reported_mj == expected_energy_mj(config, 0, t_ns)

Config file format (read from ``$GREENTOP_FAKE_NVML_CONFIG`` by ``nvmlInit*`` whenever the init
reference count goes from 0 to 1; without the variable: 1 device at a constant 100 W). One
directive a line, ``#`` starts a comment, so a name cannot contain ``#``::

    devices N                        # device count (default 1, at most 64)
    epoch_ns T                       # CLOCK_MONOTONIC ns where every profile starts
                                     #   (default: time of the first successful init in the process)
    update_ms 100                    # power and energy refresh every update_ms (integer ms)
    energy_cost_us 3900              # busy-wait in nvmlDeviceGetTotalEnergyConsumption (µs)
    power_cost_us 0                  # busy-wait in nvmlDeviceGetPowerUsage (µs)
    fields 1                         # 0: every nvmlDeviceGetFieldValues value is NOT_SUPPORTED
    energy 1                         # 0: nvmlDeviceGetTotalEnergyConsumption is NOT_SUPPORTED
    init_error 0                     # nonzero: nvmlInit* returns this NVML error code
    mig DEV 1                        # MIG mode (current and pending) of device DEV
    name DEV NVIDIA H200             # rest of the line (default "Fake GPU DEV")
    power_limit_mw DEV 700000        # power management and enforced limit, mW (default 700000)
    energy_start_mj DEV 1000000000   # energy counter at the epoch, mJ (default 0)
    power_stall_us DEV 7400          # DEV's power and field reads sleep this long (µs; default 0):
                                     #   a driver call blocked in the kernel, not a busy CPU
    profile DEV d1 p1 d2 p2 ...      # (duration s, power W) segments, cycling for ever
                                     #   (default: constant 100 W)

What the fake reports at CLOCK_MONOTONIC time ``t`` (all exactly reproduced by the
``expected_*`` functions below, floating-point rounding included):

- ``E(t)``: the profile's energy (J) from the epoch to ``t`` (``PowerProfile.energy_j``); before
  the epoch the device is taken to draw the profile's power at 0, so ``E(t) = P(0) * t`` there.
- ``q = floor((t - epoch) / update) * update``: the last refresh instant.
- total energy (mJ) = ``energy_start_mj + floor(E(q) * 1000 + 1e-3)``.
- power usage (mW) = ``floor((E(q) - E(q - update)) / update * 1000 + 1e-3)``, the average over
  the last refresh window; before the first full window this is the profile's power at 0.
- field ``NVML_FI_DEV_POWER_INSTANT`` (186) = power usage; ``NVML_FI_DEV_POWER_AVERAGE`` (185) =
  the same over the 1 s window ending at ``q``. Value type unsigned int, mW; ``timestamp`` =
  CLOCK_MONOTONIC µs of the refresh ``epoch + q``; ``latencyUsec`` = µs spent in the fake.
  Any other valid field id is NOT_SUPPORTED, field id 0 or >= 308 INVALID_ARGUMENT.

The ``+ 1e-3`` (one µJ, one µW) absorbs floating-point error, so a constant 100 W reads
100000 mW and not 99999.

Two extra symbols exist for tests: ``long long fakeNvmlEpochNs(void)`` (the current config's
epoch, CLOCK_MONOTONIC ns; -1 before the first init) and ``unsigned long long
fakeNvmlCallCount(int which)`` (calls so far in the process, never reset: see ``CALLS_*``).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .profile import PowerProfile

FAKE_NVML_SOURCE: Path = Path(__file__).with_name("fake_nvml.c")
"""The C source of the fake library."""

LIB_NAME = "libnvidia-ml.so.1"
"""File name and soname of the built library."""

CONFIG_ENV = "GREENTOP_FAKE_NVML_CONFIG"
"""Environment variable naming the config file."""

CFLAGS: tuple[str, ...] = (
    "-shared",
    "-fPIC",
    f"-Wl,-soname,{LIB_NAME}",
    "-O2",
    # The Python mirror below must see the same roundings: no fused multiply-add.
    "-ffp-contract=off",
)

NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186

CALLS_POWER_USAGE = 0
"""``fakeNvmlCallCount`` index: calls of ``nvmlDeviceGetPowerUsage``."""
CALLS_ENERGY = 1
"""``fakeNvmlCallCount`` index: calls of ``nvmlDeviceGetTotalEnergyConsumption``."""
CALLS_FIELD_VALUES = 2
"""``fakeNvmlCallCount`` index: calls of ``nvmlDeviceGetFieldValues`` (one per call, not per value)."""

DEFAULT_PROFILE: PowerProfile = PowerProfile.constant(100.0)
"""A device without a ``profile`` line draws a constant 100 W."""

DEFAULT_POWER_LIMIT_MW = 700_000
"""Power limit of a device without a ``power_limit_mw`` line, mW."""

MAX_DEVICES = 64
"""Most devices the fake can simulate."""

_AVERAGE_WINDOW_NS = 1_000_000_000
_UINT_MAX = 0xFFFF_FFFF


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        if candidate and shutil.which(candidate):
            return candidate
    raise RuntimeError("no C compiler found (tried $CC, cc, gcc): the fake NVML needs one")


def build_fake_nvml(out_dir: Path) -> Path:
    """Compile ``fake_nvml.c`` into ``out_dir/libnvidia-ml.so.1`` and return that path.

    Rebuilds only when the source (its mtime), the flags or the compiler changed since the last
    build in ``out_dir``, so a test session pays for one build. The library is written to a
    temporary file and renamed into place, so concurrent builders never see a half-written one.
    Raises ``RuntimeError`` with the compiler's output if the build fails.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / LIB_NAME
    stamp = out_dir / (LIB_NAME + ".stamp")
    cc = _compiler()
    key = hashlib.sha256(
        "\0".join([str(FAKE_NVML_SOURCE.stat().st_mtime_ns), cc, *CFLAGS]).encode()
    ).hexdigest()
    if lib.exists() and stamp.exists() and stamp.read_text() == key:
        return lib
    fd, tmp_name = tempfile.mkstemp(prefix=".libnvidia-ml.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        proc = subprocess.run(
            [cc, *CFLAGS, "-o", str(tmp), str(FAKE_NVML_SOURCE), "-lm", "-lpthread"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"building the fake NVML failed:\n{proc.stderr}{proc.stdout}")
        os.replace(tmp, lib)
    finally:
        tmp.unlink(missing_ok=True)
    stamp.write_text(key)
    return lib


def fake_nvml_env(
    lib: Path, config_path: Path | None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for a subprocess that should load the fake: ``base`` (default ``os.environ``)
    with the library's folder first in ``LD_LIBRARY_PATH`` and ``GREENTOP_FAKE_NVML_CONFIG`` set
    to ``config_path`` (removed when ``None``, which selects the built-in default)."""
    env = dict(os.environ if base is None else base)
    lib_dir = str(Path(lib).parent)
    old = env.get("LD_LIBRARY_PATH")
    env["LD_LIBRARY_PATH"] = f"{lib_dir}:{old}" if old else lib_dir
    if config_path is None:
        env.pop(CONFIG_ENV, None)
    else:
        env[CONFIG_ENV] = str(config_path)
    return env


@dataclass
class FakeNvmlConfig:
    """What the fake NVML simulates; :meth:`write` produces its config file.

    Per-device dictionaries are keyed by device index; a device missing from one gets the
    default. Defaults match the C library's, so ``FakeNvmlConfig()`` behaves like no config.
    """

    devices: int = 1
    """Device count."""
    epoch_ns: int | None = None
    """CLOCK_MONOTONIC ns (``time.monotonic_ns()``) where every profile starts; ``None``: the
    time of the process's first successful init (read it back with ``fakeNvmlEpochNs``)."""
    update_ms: int = 100
    """Refresh period of power and energy, ms."""
    energy_cost_us: int = 3900
    """Busy-wait inside ``nvmlDeviceGetTotalEnergyConsumption``, µs (an H200 takes 3.9 ms)."""
    power_cost_us: int = 0
    """Busy-wait inside ``nvmlDeviceGetPowerUsage``, µs."""
    fields: bool = True
    """False: every ``nvmlDeviceGetFieldValues`` value reports NOT_SUPPORTED."""
    energy: bool = True
    """False: ``nvmlDeviceGetTotalEnergyConsumption`` returns NOT_SUPPORTED (pre-Volta GPUs)."""
    init_error: int = 0
    """Nonzero: ``nvmlInit*`` returns this NVML error code."""
    mig: dict[int, bool] = field(default_factory=dict)
    """MIG mode (current and pending) per device; default off."""
    names: dict[int, str] = field(default_factory=dict)
    """Device names; default ``"Fake GPU {index}"``."""
    power_limit_mw: dict[int, int] = field(default_factory=dict)
    """Power management (and enforced) limit per device, mW; default 700000."""
    energy_start_mj: dict[int, int] = field(default_factory=dict)
    """Energy counter at the epoch per device, mJ; default 0."""
    profiles: dict[int, PowerProfile] = field(default_factory=dict)
    """Power profile per device (must have ``repeat=True``); default constant 100 W."""
    power_stall_us: dict[int, int] = field(default_factory=dict)
    """Per device: every ``nvmlDeviceGetPowerUsage`` and ``nvmlDeviceGetFieldValues`` call sleeps
    this long after reading, µs (a slow driver call; 7.4 ms has been seen); default 0."""

    @property
    def update_ns(self) -> int:
        """Refresh period, ns."""
        return self.update_ms * 1_000_000

    def profile(self, dev: int) -> PowerProfile:
        """The power profile device ``dev`` follows."""
        return self.profiles.get(dev, DEFAULT_PROFILE)

    def name(self, dev: int) -> str:
        """The name device ``dev`` reports."""
        return self.names.get(dev, f"Fake GPU {dev}")

    def validate(self) -> None:
        """Raise ``ValueError`` if the fake would reject this config."""
        if not 0 <= self.devices <= MAX_DEVICES:
            raise ValueError(f"devices must be 0..{MAX_DEVICES}")
        if self.update_ms <= 0:
            raise ValueError("update_ms must be positive")
        per_device: list[Mapping[int, object]] = [
            self.mig, self.names, self.power_limit_mw, self.energy_start_mj, self.profiles, self.power_stall_us,
        ]
        for mapping in per_device:
            for dev in mapping:
                if not 0 <= dev < self.devices:
                    raise ValueError(f"device {dev} does not exist ({self.devices} devices)")
        for dev, name in self.names.items():
            if not name.strip() or "#" in name or "\n" in name or len(name.encode()) > 95:
                raise ValueError(f"device {dev}: name must be 1..95 bytes, no '#' or newline")
        for dev, profile in self.profiles.items():
            if not profile.repeat:
                raise ValueError(f"device {dev}: the fake NVML only plays repeating profiles")
        for dev, mj in self.energy_start_mj.items():
            if mj < 0:
                raise ValueError(f"device {dev}: energy_start_mj must be >= 0")
        for dev, us in self.power_stall_us.items():
            if us < 0:
                raise ValueError(f"device {dev}: power_stall_us must be >= 0")

    def to_text(self) -> str:
        """The config file's text."""
        self.validate()
        lines = [
            "# fake NVML config, written by tests/fakes/nvml.py",
            f"devices {self.devices}",
            f"update_ms {self.update_ms}",
            f"energy_cost_us {self.energy_cost_us}",
            f"power_cost_us {self.power_cost_us}",
            f"fields {int(self.fields)}",
            f"energy {int(self.energy)}",
            f"init_error {self.init_error}",
        ]
        if self.epoch_ns is not None:
            lines.append(f"epoch_ns {self.epoch_ns}")
        for dev, on in sorted(self.mig.items()):
            lines.append(f"mig {dev} {int(on)}")
        for dev, name in sorted(self.names.items()):
            lines.append(f"name {dev} {name.strip()}")
        for dev, mw in sorted(self.power_limit_mw.items()):
            lines.append(f"power_limit_mw {dev} {mw}")
        for dev, mj in sorted(self.energy_start_mj.items()):
            lines.append(f"energy_start_mj {dev} {mj}")
        for dev, profile in sorted(self.profiles.items()):
            lines.append(f"profile {dev} {profile.to_config()}")
        for dev, us in sorted(self.power_stall_us.items()):
            lines.append(f"power_stall_us {dev} {us}")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> Path:
        """Write the config file to ``path`` and return ``path``."""
        path = Path(path)
        path.write_text(self.to_text())
        return path


# ---- the model: exactly what the fake reports ---------------------------------------------


def _epoch(config: FakeNvmlConfig, epoch_ns: int | None) -> int:
    epoch = config.epoch_ns if epoch_ns is None else epoch_ns
    if epoch is None:
        raise ValueError(
            "the config has no epoch_ns: pass epoch_ns= (fakeNvmlEpochNs() in the process)"
        )
    return epoch


def _energy_ext_j(profile: PowerProfile, t_s: float) -> float:
    """E(t) in J, with the profile's power at 0 extended before the epoch (as the C code)."""
    if t_s < 0:
        return profile.power_w(0.0) * t_s
    return profile.energy_j(t_s)


def _window_power_mw(profile: PowerProfile, q_ns: int, window_ns: int) -> int:
    e1 = _energy_ext_j(profile, q_ns / 1e9)
    e0 = _energy_ext_j(profile, (q_ns - window_ns) / 1e9)
    mw = math.floor((e1 - e0) / (window_ns / 1e9) * 1000.0 + 1e-3)
    return min(max(mw, 0), _UINT_MAX)


def refresh_offset_ns(config: FakeNvmlConfig, t_ns: int, *, epoch_ns: int | None = None) -> int:
    """``q``: the last refresh instant at or before CLOCK_MONOTONIC ``t_ns``, in ns after the
    epoch (negative before it). ``epoch_ns`` overrides ``config.epoch_ns``."""
    update = config.update_ns
    return (t_ns - _epoch(config, epoch_ns)) // update * update


def refresh_instant_ns(config: FakeNvmlConfig, t_ns: int, *, epoch_ns: int | None = None) -> int:
    """The last refresh instant at or before ``t_ns``, as CLOCK_MONOTONIC ns."""
    epoch = _epoch(config, epoch_ns)
    return epoch + refresh_offset_ns(config, t_ns, epoch_ns=epoch)


def expected_energy_mj(
    config: FakeNvmlConfig, dev: int, t_ns: int, *, epoch_ns: int | None = None
) -> int:
    """What ``nvmlDeviceGetTotalEnergyConsumption`` reports for ``dev`` when called at
    CLOCK_MONOTONIC ``t_ns``. Units: mJ."""
    q_ns = refresh_offset_ns(config, t_ns, epoch_ns=epoch_ns)
    mj = math.floor(_energy_ext_j(config.profile(dev), q_ns / 1e9) * 1000.0 + 1e-3)
    return max(config.energy_start_mj.get(dev, 0) + mj, 0)


def expected_power_mw(
    config: FakeNvmlConfig, dev: int, t_ns: int, *, epoch_ns: int | None = None
) -> int:
    """What ``nvmlDeviceGetPowerUsage`` (and field ``NVML_FI_DEV_POWER_INSTANT``) reports for
    ``dev`` when called at CLOCK_MONOTONIC ``t_ns``: the average over the last refresh window.
    Units: mW."""
    q_ns = refresh_offset_ns(config, t_ns, epoch_ns=epoch_ns)
    return _window_power_mw(config.profile(dev), q_ns, config.update_ns)


def expected_power_average_mw(
    config: FakeNvmlConfig, dev: int, t_ns: int, *, epoch_ns: int | None = None
) -> int:
    """What field ``NVML_FI_DEV_POWER_AVERAGE`` reports for ``dev`` when read at CLOCK_MONOTONIC
    ``t_ns``: the average over the 1 s ending at the last refresh. Units: mW."""
    q_ns = refresh_offset_ns(config, t_ns, epoch_ns=epoch_ns)
    return _window_power_mw(config.profile(dev), q_ns, _AVERAGE_WINDOW_NS)


def expected_field_timestamp_us(
    config: FakeNvmlConfig, t_ns: int, *, epoch_ns: int | None = None
) -> int:
    """The ``timestamp`` of a power field value read at ``t_ns``: CLOCK_MONOTONIC µs of the last
    refresh."""
    return refresh_instant_ns(config, t_ns, epoch_ns=epoch_ns) // 1000
