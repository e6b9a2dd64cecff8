"""What a machine total is: one channel per physical domain, and which of them add up.

Every consumer that totals energy (``greentop sample``, the live view, ``greentop summary``) asks
``plan_domains`` which channels to show and which to add, so none can count a joule twice:

- One reading per physical domain. Several sources can read the same domain (RAPL through sysfs
  and through the MSRs, a package through hwmon's ``amd_energy``); the plan keeps one, preferring
  an energy counter to a power gauge to an estimate, then sysfs to MSR to hwmon, and names the
  others (``alternatives``) so every output can say which source was taken.
- Sub-zones (a package's cores, uncore, a second MMIO view of the package) are inside their parent
  and never added. DRAM is not: RAPL's DRAM domain is outside the package domain (Intel SDM vol. 3B,
  15.10; the kernel only nests it in sysfs), so it is its own domain per socket, whatever parent an
  older trace recorded for it.
- psys (the platform domain) contains the packages and DRAM: it is shown on its own and never added
  to them. ``cpu_total`` picks the CPU side of the total: ``"packages"`` (the default: CPU packages
  + DRAM; psys only where no package counter exists) or ``"psys"`` (psys instead of packages, DRAM,
  cores and the CPU estimate). GPUs (NVML's ``gpu-N``, hwmon's ``gpu-<driver>-N``) are added.
- A whole-system meter (``system-N``: an ACPI power meter) contains everything else: it is shown on
  its own and never added, unless ``cpu_total`` is ``"system"``, which makes it the whole total (the
  rest shown beside it, none added).
- Any other top-level domain (an hwmon meter of unknown scope: a board rail, a sub-rail of one) may
  overlap the others, so it is shown and not added, and the total's description names it.
- A merged job's channels (``merge``: ``<node>/<domain>``) were each node's own total: all added.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from greentop.channel import Channel, Quantity

CPU_TOTAL_PACKAGES = "packages"
CPU_TOTAL_PSYS = "psys"
CPU_TOTAL_SYSTEM = "system"
CPU_TOTALS = (CPU_TOTAL_PACKAGES, CPU_TOTAL_PSYS, CPU_TOTAL_SYSTEM)

_QUANTITY_RANK = {Quantity.ENERGY: 0, Quantity.POWER: 1, Quantity.CPU_BUSY: 2}
_SOURCE_RANK = {"rapl-sysfs": 0, "rapl-msr": 1, "hwmon": 2}


def domain_kind(domain: str) -> str:
    """"package", "dram", "core", "uncore", "psys", "cpu" (the estimate), "gpu", "system" (a
    whole-system meter) or "other" (scope unknown)."""
    for prefix, kind in (("cpu-package", "package"), ("dram-", "dram"), ("cpu-core", "core"), ("uncore-", "uncore"),
                         ("gpu-", "gpu"), ("system-", "system")):
        if domain.startswith(prefix):
            return kind
    if domain in ("psys", "cpu"):
        return domain
    return "other"


def is_top_level(c: Channel) -> bool:
    """Not inside another channel. DRAM is outside the package whatever parent it was given."""
    return not c.parent or domain_kind(c.domain) == "dram"


@dataclass(frozen=True)
class DomainPlan:
    """The channels to show (one per physical domain) and which of them make the machine total."""

    shown: list[Channel]
    in_total: list[bool]  # parallel to ``shown``
    cpu_total: str  # "packages", "psys" or "system"
    alternatives: dict[str, list[str]] = field(default_factory=dict)  # channel taken -> others of its domain

    @property
    def total(self) -> list[Channel]:
        return [c for c, t in zip(self.shown, self.in_total) if t]

    def describe(self) -> str:
        """One line for every output: what the machine total contains."""
        return describe_total(self.cpu_total, [c.domain for c in self.total],
                              [c.domain for c, t in zip(self.shown, self.in_total) if not t])


def describe_total(cpu_total: str, total_domains: list[str], beside_domains: list[str] | None = None) -> str:
    """What the machine total adds up (``total_domains``), and which meters of the shown but not
    added ones (``beside_domains``) a reader could take for part of it: whole-system meters and
    meters of unknown scope (sub-zones and psys are explained by the CPU side's wording)."""
    kinds = {domain_kind(d.removesuffix(" (estimated)")) for d in total_domains}
    used = ", ".join(total_domains) if total_domains else "nothing"
    if cpu_total == CPU_TOTAL_SYSTEM:
        what = "the whole-system meter alone (CPU, GPUs and the rest are inside it: shown, not added)"
    else:
        what = {CPU_TOTAL_PACKAGES: "CPU packages + DRAM", CPU_TOTAL_PSYS: "psys (platform)"}[cpu_total] + " + GPUs"
        if cpu_total == CPU_TOTAL_PACKAGES and "package" not in kinds:
            for kind, instead in (("psys", "psys"), ("core", "CPU cores"), ("cpu", "the CPU estimate")):
                if kind in kinds:
                    what = f"{instead} (no CPU package counter here) + GPUs"
                    break
            else:
                what = "no CPU domain + GPUs"
        if any("/" in d for d in total_domains):  # a merged job: ``<node>/<domain>``
            what = "each node's own machine total (a merged job)"
    line = f"machine total = {what} (--cpu-total {cpu_total}): {used}"
    flagged = []
    for d in beside_domains or []:
        kind = domain_kind(d.removesuffix(" (estimated)"))
        if kind == "system":
            flagged.append(f"{d} (whole-system meter: contains the rest; --cpu-total system to use it)")
        elif kind == "other" and "/" not in d:
            flagged.append(f"{d} (scope unknown)")
    return line + ("; shown, not added: " + ", ".join(flagged) if flagged else "")


def _better(a: Channel, b: Channel) -> bool:
    """Whether ``a`` is a better reading of a domain than ``b``."""
    ka = (_QUANTITY_RANK[a.quantity], _SOURCE_RANK.get(a.source, 3))
    kb = (_QUANTITY_RANK[b.quantity], _SOURCE_RANK.get(b.source, 3))
    return ka < kb


def plan_domains(channels: list[Channel], cpu_total: str = CPU_TOTAL_PACKAGES) -> DomainPlan:
    """One channel per physical domain (in the order of first appearance) and which ones add up.

    Raises ValueError for an unknown ``cpu_total``, ``"psys"`` on a machine without psys or
    ``"system"`` on one without a whole-system meter."""
    if cpu_total not in CPU_TOTALS:
        raise ValueError(f"unknown --cpu-total {cpu_total!r}; known: {', '.join(CPU_TOTALS)}")
    best: dict[str, Channel] = {}
    others: dict[str, list[str]] = {}
    for c in channels:
        if not is_top_level(c):
            continue
        cur = best.get(c.domain)
        if cur is None:
            best[c.domain] = c
        elif _better(c, cur):
            others.setdefault(c.domain, []).append(cur.name)
            best[c.domain] = c
        else:
            others.setdefault(c.domain, []).append(c.name)
    kinds = {domain_kind(d) for d in best}
    if cpu_total == CPU_TOTAL_PSYS and "psys" not in kinds:
        raise ValueError("--cpu-total psys: this machine (or trace) has no psys domain")
    if cpu_total == CPU_TOTAL_SYSTEM and "system" not in kinds:
        raise ValueError("--cpu-total system: this machine (or trace) has no whole-system meter (an ACPI power meter)")
    use_psys = cpu_total == CPU_TOTAL_PSYS or (cpu_total == CPU_TOTAL_PACKAGES and "package" not in kinds and "psys" in kinds)
    shown: list[Channel] = []
    in_total: list[bool] = []
    for c in best.values():
        kind = domain_kind(c.domain)
        if "node_domain" in c.metadata:  # a merged job: the node's own plan already chose its total
            add = show = True
        elif use_psys:
            add = kind in ("psys", "gpu")
            show = add or kind in ("package", "dram", "system", "other")
        else:
            add = kind in ("package", "dram", "core", "uncore", "cpu", "gpu")
            add = add and not (kind in ("core", "uncore", "cpu") and "package" in kinds)
            add = add and not (kind == "cpu" and "core" in kinds)
            show = add or kind in ("psys", "system", "other")
            if cpu_total == CPU_TOTAL_SYSTEM:
                add = kind == "system"
        if show:
            shown.append(c)
            in_total.append(add)
    alternatives = {best[d].name: names for d, names in others.items() if best[d] in shown}
    return DomainPlan(shown, in_total, cpu_total, alternatives)


def total_title(cpu_total: str) -> str:
    """The title of a view's total chart: what it adds up, where that is not the default's (the
    ``machine total = ...`` line says it whole)."""
    return {CPU_TOTAL_PSYS: "total (psys)", CPU_TOTAL_SYSTEM: "total (system meter)"}.get(cpu_total, "total")


def charted(plan: DomainPlan) -> tuple[list[Channel], list[bool]]:
    """What a view draws a chart for, and which of those add up to its total: the total's domains,
    and beside them the meters one could take for part of it (a whole-system meter, meters of
    unknown scope; with ``--cpu-total system``, everything the meter contains). psys and the
    packages it replaces stay in the summary's rows only, as they always have."""
    keep = [t or plan.cpu_total == CPU_TOTAL_SYSTEM or domain_kind(c.domain) in ("system", "other")
            for c, t in zip(plan.shown, plan.in_total)]
    return ([c for c, k in zip(plan.shown, keep) if k], [t for t, k in zip(plan.in_total, keep) if k])

