"""Summaries grouped by node, by rank or by GPU: ``greentop summary RUN.h5 --by node|rank|gpu``.

A grouped table is a view of the ordinary summary (``attribution.summarise``), never a second
account of energy: every figure here is a sum of that summary's per-domain figures.

- ``node``: for every node (a merged job trace has several, see ``greentop.merge``; a plain trace
  has one, its host), the node's own domains over the whole run and over each phase its processes
  tagged, then the job's total over the run. Node rows add up to the job row.
- ``rank``: for every phase a rank of a distributed job tagged (its attrs carry ``rank``, added by
  ``greentop.phase`` under torchrun/srun), the energy of the GPU that rank drives: the phase's
  ``gpu`` attribute when it has one, else its ``local_rank``, taken modulo the node's GPU count
  (what ``torch.cuda.set_device(local_rank % device_count)`` picks). Whole-host figures are not
  split between ranks: they come once, as each node's run rows ("host").
- ``gpu``: the same rows keyed by GPU: every GPU domain over the run (NVML's ``gpu-N`` by N, then
  the GPUs read through hwmon, ``gpu-<driver>-N``, by driver and N), then the phases of the ranks
  that drove it. Ranks go to a node's NVML GPUs; on a node with none (an AMD or Intel GPU machine),
  to its hwmon GPUs, the ``gpu`` attribute or ``local_rank`` counting them in that order.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from greentop.attribution import KIND_PHASE, KIND_RUN, PhaseSummary, RunSummary

GROUPINGS = ("node", "rank", "gpu")
NODE_SEPARATOR = "/"  # a merged trace's domains are "<node>/<domain>"
GPU_DOMAIN = re.compile(r"^gpu-(\d+)$")  # NVML's
HWMON_GPU_DOMAIN = re.compile(r"^gpu-([^-/:]+)-(\d+)$")  # a GPU driver's hwmon meter: gpu-amdgpu-0, gpu-xe-1


@dataclass(frozen=True)
class GroupRow:
    """One line of a grouped summary: ``energy_j`` of ``domains`` over one row of the summary."""

    group: str  # "node-a", "rank 3", "node-a/gpu-1", or "job"
    node: str
    phase: str  # the phase's name ("run" for the whole recording)
    rank: int | None
    depth: int
    domains: tuple[str, ...]  # the summary's domains that were added up
    duration_s: float
    energy_j: float
    average_w: float
    note: str = ""


def node_of(domain: str, default: str) -> tuple[str, str]:
    """(node, domain within the node) of a summary domain: "n1/gpu-0" -> ("n1", "gpu-0")."""
    bare = domain.removesuffix(" (estimated)")
    if NODE_SEPARATOR in bare:
        node, local = bare.split(NODE_SEPARATOR, 1)
        return node, local
    return default, bare


def _nodes(summary: RunSummary) -> tuple[str, dict[str, list[str]]]:
    default = str(summary.meta.get("host", "") or "host")
    by_node: dict[str, list[str]] = {}
    for d in summary.domains:
        by_node.setdefault(node_of(d.domain, default)[0], []).append(d.domain)
    return default, by_node


def _energy(row: PhaseSummary, domains: list[str]) -> float:
    wanted = set(domains)
    return float(sum(d.energy_j for d in row.domains if d.domain in wanted))


def _row(group: str, node: str, r: PhaseSummary, domains: list[str], rank: int | None = None, note: str = "") -> GroupRow:
    e = _energy(r, domains)
    avg = e / r.duration_s if r.duration_s > 0 else math.nan
    return GroupRow(group, node, r.name, rank, r.depth if r.kind == KIND_PHASE else 0, tuple(domains), r.duration_s, e, avg, note)


def _phase_node(r: PhaseSummary, default: str) -> str:
    return str(r.attrs.get("node", default))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def rank_gpu(attrs: Mapping[str, Any], gpus: Mapping[int, str]) -> str | None:
    """The GPU domain a rank's phase ran on: ``gpu`` attr, else ``local_rank`` modulo the GPU count."""
    if not gpus:
        return None
    index = _int(attrs.get("gpu"))
    if index is None:
        local = _int(attrs.get("local_rank"))
        if local is None:
            return None
        index = local if local in gpus else sorted(gpus)[local % len(gpus)]
    return gpus.get(index)


def _gpu_order(domain: str) -> tuple[int, str, int] | None:
    """Where a node's GPU domain comes among its GPUs: NVML's ``gpu-N`` by N, then hwmon's
    ``gpu-<driver>-N`` by driver and N; None for a domain that is not a GPU."""
    m = GPU_DOMAIN.match(domain)
    if m:
        return (0, "", int(m.group(1)))
    m = HWMON_GPU_DOMAIN.match(domain)
    return (1, m.group(1), int(m.group(2))) if m else None


def _node_gpus(domains: list[str], default: str) -> tuple[list[str], dict[int, str]]:
    """A node's GPU domains in order, and the ones its ranks drive by index (``rank_gpu``): NVML's
    by N; on a node without NVML GPUs, its hwmon GPUs counted in order."""
    found = sorted((key, d) for d in domains if (key := _gpu_order(node_of(d, default)[1])) is not None)
    nvml = {key[2]: d for key, d in found if key[0] == 0}
    return [d for _, d in found], nvml or dict(enumerate(d for _, d in found))


def group_summary(summary: RunSummary, by: str) -> list[GroupRow]:
    """The grouped rows of ``summary`` (see the module docstring)."""
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; known: {', '.join(GROUPINGS)}")
    default, by_node = _nodes(summary)
    run = next(r for r in summary.rows if r.kind == KIND_RUN)
    phases = summary.phase_rows()
    out: list[GroupRow] = []
    if by == "node":
        for node, domains in by_node.items():
            out.append(_row(node, node, run, domains, note="node total"))
            for r in phases:
                if _phase_node(r, default) == node:
                    out.append(_row(node, node, r, domains, _int(r.attrs.get("rank"))))
        out.append(_row("job", "", run, [d.domain for d in summary.domains], note="all nodes, counted once"))
        return out
    listed: dict[str, list[str]] = {}  # each node's GPUs, in order
    gpus: dict[str, dict[int, str]] = {}  # each node's GPUs its ranks drive, by index
    for node, domains in by_node.items():
        listed[node], gpus[node] = _node_gpus(domains, default)
    ranked: list[tuple[str, PhaseSummary]] = []
    for r in phases:
        if _int(r.attrs.get("rank")) is None:
            continue
        gpu = rank_gpu(r.attrs, gpus.get(_phase_node(r, default), {}))
        if gpu is not None:
            ranked.append((gpu, r))
    if by == "rank":
        for gpu, r in sorted(ranked, key=lambda x: (_int(x[1].attrs.get("rank")), x[1].start_ns)):
            rank = _int(r.attrs.get("rank"))
            out.append(_row(f"rank {rank}", _phase_node(r, default), r, [gpu], rank, note=f"on {gpu}"))
    else:
        for node, node_gpus in listed.items():
            for gpu in node_gpus:
                out.append(_row(gpu, node, run, [gpu], note="GPU total"))
                for g, r in ranked:
                    if g == gpu:
                        rank = _int(r.attrs.get("rank"))
                        out.append(_row(gpu, node, r, [gpu], rank, note=f"rank {rank}"))
    for node, domains in by_node.items():
        out.append(_row("host", node, run, domains, note="whole node, counted once"))
    return out


def format_groups(rows: list[GroupRow], by: str, fmt: str = "table") -> str:
    """The grouped rows as "table", "csv", "json" or "md"."""
    if fmt == "json":
        return json.dumps({"by": by, "rows": [asdict(r) for r in rows]}, indent=2, default=float) + "\n"
    header = ["group", "node", "phase", "rank", "duration_s", "energy_j", "average_w", "note"]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        for r in rows:
            w.writerow([r.group, r.node, r.phase, "" if r.rank is None else r.rank, r.duration_s, r.energy_j, r.average_w, r.note])
        return buf.getvalue()
    cells = [[r.group, r.node or "-", "  " * r.depth + r.phase, "-" if r.rank is None else str(r.rank), f"{r.duration_s:.2f}",
              f"{r.energy_j:.2f}", "-" if math.isnan(r.average_w) else f"{r.average_w:.2f}", r.note] for r in rows]
    titles = ["GROUP", "NODE", "PHASE", "RANK", "TIME s", "ENERGY J", "AVG W", "NOTE"]
    if fmt == "md":
        lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines) + "\n"
    widths = [max(len(c[i]) for c in [titles] + cells) for i in range(len(titles))]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return f"by {by}:\n" + "\n".join(lines) + "\n"
