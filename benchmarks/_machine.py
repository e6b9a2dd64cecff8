"""Shared by the benchmarks: what they record about the machine, and their fake sysfs channels."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # greentop from a checkout

from greentop.channel import Channel, Quantity, Reader, ReaderKind  # noqa: E402


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "platform": platform.platform(),
        "cpu_model": cpu,
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "switch_interval_s": sys.getswitchinterval(),
        "loadavg_at_start": list(os.getloadavg()),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
    }


def file_channels(folder: Path, n: int, width: int = 0) -> list[Channel]:
    """``n`` "fake sysfs" energy channels: files holding a decimal µJ value (zero-padded to
    ``width`` digits, so a writer rewriting them in place never leaves a shorter tail behind),
    kept open and re-read with pread like ``energy_uj``."""
    chans = []
    for i in range(n):
        path = folder / f"energy_uj_{i}"
        path.write_text(f"{123456789 + i * 1000:0{width}d}\n")
        chans.append(Channel(f"fake:{i}", "bench", f"domain-{i}", Quantity.ENERGY, "uJ", 1e-6,
                             Reader(ReaderKind.FILE_DECIMAL, path=str(path))))
    return chans
