"""Sensor discovery: every source finds its channels; this module merges them.

Policy: RAPL through sysfs is preferred; the MSRs are read only where sysfs gave no readable
package counter (they are the same hardware counters). The CPU estimate steps in only where no
CPU energy channel is readable, or when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from greentop.sources import cpu_estimate, hwmon, nvml, rapl_msr, rapl_sysfs
from greentop.sources._common import SourceResult

__all__ = ["DiscoveryOptions", "SourceResult", "discover"]


@dataclass(frozen=True)
class DiscoveryOptions:
    msr: str = "auto"  # "auto": only without sysfs RAPL; "always"; "never"
    gpus: bool = True
    cpu_idle_w: float | None = None
    cpu_max_w: float | None = None
    force_estimate: bool = False


def discover(options: DiscoveryOptions = DiscoveryOptions()) -> SourceResult:
    found = SourceResult()
    found.extend(rapl_sysfs.discover())
    has_sysfs_package = any(c.domain.startswith("cpu-package") for c in found.channels)
    if options.msr == "always" or (options.msr == "auto" and not has_sysfs_package):
        found.extend(rapl_msr.discover())
    elif options.msr == "auto":
        found.notes.append("RAPL MSRs not read: sysfs powercap serves the same counters")
    found.extend(hwmon.discover())
    has_cpu = any(c.domain.startswith("cpu-") for c in found.channels)
    if options.gpus:
        found.extend(nvml.discover())
    if options.force_estimate or not has_cpu:
        estimate = cpu_estimate.discover(options.cpu_idle_w, options.cpu_max_w)
        if not has_cpu and estimate.channels:
            estimate.notes.append("no readable CPU energy sensor: CPU power is estimated from utilisation")
        found.extend(estimate)
    return found
