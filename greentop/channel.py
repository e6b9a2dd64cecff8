"""What a sensor channel is: the description every source produces and every consumer reads.

A channel yields raw integers. ``raw * scale`` is SI: joules for ``energy`` counters, watts for
``power`` gauges, seconds of busy CPU time for the ``cpu_busy`` counter behind the estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Quantity(str, Enum):
    ENERGY = "energy"  # monotonic counter that may wrap; raw * scale = J
    POWER = "power"  # gauge; raw * scale = W
    CPU_BUSY = "cpu_busy"  # counter of busy CPU time; raw * scale = s; turned into W by a model


class ReaderKind(str, Enum):
    """How the compiled sampler reads a channel. Values match ``sampler_ext`` constants."""

    FILE_DECIMAL = "file_decimal"  # pread a decimal integer from an open file (sysfs, hwmon)
    MSR = "msr"  # pread 8 bytes at offset=register from /dev/cpu/N/msr, masked
    NVML_POWER = "nvml_power"  # nvmlDeviceGetPowerUsage, mW
    NVML_FIELD = "nvml_field"  # nvmlDeviceGetFieldValues for one field id, mW
    NVML_ENERGY = "nvml_energy"  # nvmlDeviceGetTotalEnergyConsumption, mJ
    PROC_STAT_BUSY = "proc_stat_busy"  # busy jiffies of the "cpu " line of /proc/stat


class Lane(str, Enum):
    FAST = "fast"  # the main loop at the run's rate (default 1 kHz)
    SLOW = "slow"  # its own thread at a low rate, for calls that cost milliseconds


@dataclass(frozen=True)
class Reader:
    kind: ReaderKind
    path: str = ""  # file to open (FILE_DECIMAL, MSR, PROC_STAT_BUSY)
    register: int = 0  # MSR offset
    mask: int = 0  # MSR bits that hold the counter
    gpu_index: int = -1  # NVML device index
    field_id: int = 0  # NVML field id


@dataclass(frozen=True)
class CpuPowerModel:
    """Linear CPU power model behind the estimate: P = idle_w + utilisation * (max_w - idle_w).

    Utilisation is busy time over (wall time * n_cpus), so ``idle_w`` and ``max_w`` are for the
    whole machine (all logical CPUs).
    """

    idle_w: float
    max_w: float
    n_cpus: int

    def power_w(self, utilisation: float) -> float:
        u = min(max(utilisation, 0.0), 1.0)
        return self.idle_w + u * (self.max_w - self.idle_w)


@dataclass(frozen=True)
class Channel:
    """One sensor channel: where to read it and how to turn its raw integers into SI units."""

    name: str  # unique, e.g. "rapl:package-0", "nvml:gpu0:power"
    source: str  # "rapl-sysfs", "rapl-msr", "hwmon", "nvml", "cpu-estimate"
    domain: str  # what it measures, e.g. "cpu-package-0", "dram-0", "gpu-0", "cpu"
    quantity: Quantity
    unit: str  # unit of the raw integer, e.g. "uJ", "mW", "2^-14 J", "jiffies"
    scale: float  # raw * scale = SI (J, W or s)
    reader: Reader
    wrap_raw: int = 0  # a counter wraps to 0 at this raw value; 0 = never wraps
    estimated: bool = False
    lane: Lane = Lane.FAST
    parent: str = ""  # channel whose energy already includes this one ("" = top level)
    note: str = ""
    model: CpuPowerModel | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["quantity"] = self.quantity.value
        d["lane"] = self.lane.value
        d["reader"]["kind"] = self.reader.kind.value
        return d


@dataclass(frozen=True)
class Problem:
    """A sensor that exists but cannot be used, with the reason and the exact fix."""

    source: str
    what: str  # the sensor, e.g. "/sys/class/powercap/intel-rapl:0/energy_uj"
    reason: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
