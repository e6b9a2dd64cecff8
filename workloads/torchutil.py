"""What every torch workload needs: the device, the precision, seeding, a synchronising clock,
the hardware description, and the GPU's utilisation while a phase runs."""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: the first GPU if there is one, else the CPU. A GPU asked for but absent is an error."""
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return dev


def dtype_of(precision: str) -> torch.dtype:
    try:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}") from None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for the forward pass; fp32 runs as is. fp16 on the CPU falls back to bf16
    autocast's rules only where torch supports it, so it is refused there instead of faked."""
    dtype = dtype_of(precision)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError("fp16 autocast needs a GPU; use bf16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a phase boundary falls where the work really ends."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hardware(device: torch.device) -> dict[str, Any]:
    """The hardware a result was measured on, flat (goes into the results table as ``hw.*``)."""
    hw: dict[str, Any] = {
        "device": str(device),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        idx = device.index or 0
        props = torch.cuda.get_device_properties(idx)
        hw["device_name"] = props.name
        hw["device_memory_gib"] = round(props.total_memory / 2**30, 1)
        limit = _nvml_power_limit_w(idx)
        if limit is not None:
            hw["gpu_power_limit_w"] = limit
    else:
        hw["device_name"] = platform.processor() or platform.machine()
        hw["torch_threads"] = torch.get_num_threads()
    return hw


def _nvml_power_limit_w(index: int) -> float | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            h = pynvml.nvmlDeviceGetHandleByIndex(index)
            return float(pynvml.nvmlDeviceGetEnforcedPowerLimit(h)) / 1000.0
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 -- a missing limit is just not reported
        return None


@dataclass
class Utilisation:
    """Mean GPU utilisation (%) over a stretch, polled from NVML at ``rate_hz`` in a thread;
    on the CPU (or without NVML) the process's CPU use in % of all cores instead."""

    device: torch.device
    rate_hz: float = 10.0
    gpu_pct: list[float] = field(default_factory=list)
    cpu_pct: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def measure(self) -> Iterator[Utilisation]:
        t0, c0 = time.monotonic(), time.process_time()
        thread = None
        if self.device.type == "cuda":
            thread = threading.Thread(target=self._poll, daemon=True)
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if thread is not None:
                thread.join(timeout=2)
            wall = time.monotonic() - t0
            if wall > 0:
                self.cpu_pct = 100.0 * (time.process_time() - c0) / wall / (os.cpu_count() or 1)

    def _poll(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(self.device.index or 0)
        except Exception:  # noqa: BLE001 -- no NVML: utilisation is simply not reported
            return
        try:
            while not self._stop.wait(1.0 / self.rate_hz):
                self.gpu_pct.append(float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu))
        finally:
            pynvml.nvmlShutdown()

    def metrics(self) -> dict[str, float | None]:
        """``gpu_util_pct`` (None on the CPU) and ``cpu_util_pct``, for a result document."""
        gpu = sum(self.gpu_pct) / len(self.gpu_pct) if self.gpu_pct else None
        return {"gpu_util_pct": gpu, "cpu_util_pct": self.cpu_pct}
