"""``greentop merge node*.h5 -o job.h5``: one job-level trace from the traces each node recorded.

Each node records its own trace (``greentop record -o run-{host}.h5`` under srun/torchrun on every
node: ``expand_output`` fills in ``{host}``, ``{rank}`` and ``{node_rank}``). Each trace keeps its
node's CLOCK_MONOTONIC timestamps and one wall-clock offset (``start_wall_ns - start_mono_ns``).
Monotonic clocks of different machines share no origin, wall clocks do (to the accuracy of their
synchronisation), so the merge moves every node onto the monotonic timeline of the node that
started first: ``t_job = t_node + (offset_node - offset_first)``.

Alignment error: what the nodes' wall clocks disagree by when each trace was started (greentop
cannot measure it: NTP keeps machines of one data centre within about a millisecond, PTP within
microseconds), plus the reading of each trace's offset (two clock reads in a row: microseconds).
As a check, the merge reports how far apart same-named phases began on different nodes (a job
whose ranks start a phase after a barrier shows its clocks' disagreement plus the barrier's skew).

What the job trace holds: every node's *primary* channels (``energy.primary_channels`` applied to
that node's channels: the ones its own total counts, the same rule as its summary) renamed
``<node>/<channel>`` with domains ``<node>/<domain>``, so the job's total is the sum of the nodes'
totals and nothing is counted twice; sub-zones and psys stay in the node traces, which remain the
evidence. Phases, marks and counts of every node, their attrs carrying ``node``; greentop's own run
events renamed ``<node>/<event>``, and an idle baseline where all nodes' baselines overlap. The
job trace is an ordinary trace: ``summary`` (with ``--by node|rank|gpu``) and ``replay`` (one chart
per node's domain) read it as they read any other.
"""

from __future__ import annotations

import os
import platform
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from greentop.channel import Channel
from greentop.energy import primary_channels
from greentop.events import Event
from greentop.trace import (
    RUN_BASELINE_END,
    RUN_BASELINE_START,
    TraceWriter,
    iter_channels,
    load,
    open_trace,
    read_events,
)
from greentop.tracedata import Count, Mark, Phase

NODE_SEPARATOR = "/"
ALIGNMENT_NOTE = ("wall-clock alignment: error = the nodes' wall-clock disagreement at their starts (NTP: about 1 ms within "
                  "a data centre; PTP: microseconds) plus each trace's offset reading (microseconds)")


class MergeError(ValueError):
    """Inputs that cannot be merged; one line for the user."""


@dataclass
class NodeInfo:
    node: str
    path: str
    host: str
    shift_ns: int  # added to this node's timestamps to put them on the job's timeline
    channels: list[str] = field(default_factory=list)  # the node's channels kept (original names)


@dataclass
class MergeResult:
    output: Path
    nodes: list[NodeInfo]
    phase_start_spread_s: float | None  # largest spread of same-named phases' starts across nodes
    notes: list[str]


def expand_output(template: str, environ: dict[str, str] | None = None) -> str:
    """A per-node trace name: ``{host}`` (this machine's short host name), ``{rank}`` (RANK or
    SLURM_PROCID, else 0) and ``{node_rank}`` (GROUP_RANK, NODE_RANK or SLURM_NODEID, else 0)."""
    env = os.environ if environ is None else environ

    def first(*names: str) -> str:
        return next((env[n] for n in names if env.get(n, "").strip().isdigit()), "0")

    values = {"host": socket.gethostname().split(".")[0] or platform.node(), "rank": first("RANK", "SLURM_PROCID"),
              "node_rank": first("GROUP_RANK", "NODE_RANK", "SLURM_NODEID")}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise MergeError(f"output name {template!r}: only {{host}}, {{rank}} and {{node_rank}} can be filled in ({exc})") from None


def _node_names(hosts: list[str], paths: list[Path]) -> list[str]:
    """Host names, made unique (the file's stem when two traces come from one host) and free of '/'."""
    names = [re.sub(r"[/\s]+", "_", h) or p.stem for h, p in zip(hosts, paths)]
    if len(set(names)) < len(names):
        names = [re.sub(r"[/\s]+", "_", p.stem) for p in paths]
    if len(set(names)) < len(names):
        names = [f"{n}-{i}" for i, n in enumerate(names)]
    return names


def _offset_ns(meta: dict[str, Any], path: Path) -> int:
    if "start_wall_ns" not in meta or "start_mono_ns" not in meta:
        raise MergeError(f"{path}: the trace stores no wall-clock offset (start_wall_ns/start_mono_ns)")
    return int(meta["start_wall_ns"]) - int(meta["start_mono_ns"])


def _prefix_id(node: str, phase_id: str) -> str:
    return f"{node}:{phase_id}" if phase_id else ""


def merge(paths: Sequence[str | Path], output: str | Path) -> MergeResult:
    """Merge per-node traces into one job trace at ``output`` (see the module docstring)."""
    paths = [Path(p) for p in paths]
    output = Path(output)
    if len(paths) < 2:
        raise MergeError("merge needs at least two traces")
    if any(p.resolve() == output.resolve() for p in paths):
        raise MergeError(f"output {output} is one of the inputs")
    loaded = []
    for p in paths:
        with open_trace(p) as f:
            data = load(f, channels=())
            if not data.complete:
                raise MergeError(f"{p}: incomplete trace (its recorder died); merge complete traces only")
            every = [cd.channel for cd in iter_channels(f, ends_only=True)]
            loaded.append((data, read_events(f), primary_channels(every)))
    offsets = [_offset_ns(d.meta, p) for (d, _, _), p in zip(loaded, paths)]
    order = sorted(range(len(paths)), key=lambda i: int(loaded[i][0].meta["start_wall_ns"]))
    ref = order[0]
    nodes = _node_names([str(d.meta.get("host", "")) for d, _, _ in loaded], paths)
    infos = [NodeInfo(nodes[i], str(paths[i]), str(loaded[i][0].meta.get("host", "")), offsets[i] - offsets[ref],
                      [c.name for c in loaded[i][2]]) for i in range(len(paths))]

    channels: list[Channel] = []
    for i in order:
        for c in loaded[i][2]:
            channels.append(replace(c, name=f"{nodes[i]}{NODE_SEPARATOR}{c.name}", domain=f"{nodes[i]}{NODE_SEPARATOR}{c.domain}",
                                    parent="", metadata=c.metadata | {"node": nodes[i], "node_channel": c.name,
                                                                       "node_domain": c.domain}))
    ref_meta = loaded[ref][0].meta
    meta = {k: v for k, v in ref_meta.items() if k != "run"}
    meta |= {
        "host": "+".join(nodes[i] for i in order),
        "gpus": [g | {"node": nodes[i]} for i in order for g in loaded[i][0].meta.get("gpus", []) if isinstance(g, dict)],
        "merged_nodes": [{"node": n.node, "path": n.path, "host": n.host, "shift_ns": n.shift_ns,
                          "start_wall_ns": int(loaded[i][0].meta["start_wall_ns"])} for i, n in enumerate(infos)],
        "alignment": ALIGNMENT_NOTE,
    }
    lanes = [f"{nodes[i]}{NODE_SEPARATOR}{lane}" for i in order
             for lane in loaded[i][0].health.get("lanes", {"fast": {}, "slow": {}})]
    writer = TraceWriter(output, channels, meta, lanes)
    try:
        _write_samples(writer, paths, loaded, nodes, infos, order)
        events, phases, marks, counts = _tables(loaded, nodes, infos, order)
        writer.append_events(events)
        _write_health(writer, loaded, nodes, order, channels)
        runs = [loaded[i][0].meta.get("run", {}) for i in order]
        codes = [int(r.get("exit_code", 0)) for r in runs]
        run = {"exit_code": next((c for c in codes if c != 0), 0), "interrupted": any(bool(r.get("interrupted")) for r in runs),
               "end_mono_ns": max(int(r.get("end_mono_ns", loaded[i][0].run_end_ns)) + infos[i].shift_ns for r, i in zip(runs, order)),
               "events_dropped": sum(int(r.get("events_dropped", 0)) for r in runs), "merged": True}
        writer.finalize(run, phases, marks, counts)
    except BaseException:
        writer.abort()
        output.unlink(missing_ok=True)
        raise
    notes = [ALIGNMENT_NOTE]
    spread = _phase_start_spread(phases)
    if spread is not None:
        notes.append(f"same-named phases began within {spread * 1e3:.1f} ms of each other across nodes "
                     "(clock disagreement plus the workload's own start skew)")
    return MergeResult(output, [infos[i] for i in order], spread, notes)


def _write_samples(writer: TraceWriter, paths: list[Path], loaded: list[Any], nodes: list[str], infos: list[NodeInfo],
                   order: list[int]) -> None:
    for i in order:
        with open_trace(paths[i]) as f:
            for cd in iter_channels(f, [c.name for c in loaded[i][2]]):
                writer.append_samples(f"{nodes[i]}{NODE_SEPARATOR}{cd.channel.name}", cd.t_ns + infos[i].shift_ns, cd.raw)
                writer.flush()  # one channel's samples in memory at a time


def _tables(loaded: list[Any], nodes: list[str], infos: list[NodeInfo],
            order: list[int]) -> tuple[list[Event], list[Phase], list[Mark], list[Count]]:
    events: list[Event] = []
    phases: list[Phase] = []
    marks: list[Mark] = []
    counts: list[Count] = []
    baselines: list[tuple[int, int] | None] = []
    for i in order:
        data, node_events, _ = loaded[i]
        node, shift, base = nodes[i], infos[i].shift_ns, len(phases)
        for e in node_events:
            name = f"{node}{NODE_SEPARATOR}{e.name}" if e.kind == "run" else e.name
            events.append(replace(e, t_ns=e.t_ns + shift, name=name, phase_id=_prefix_id(node, e.phase_id),
                                  parent_id=_prefix_id(node, e.parent_id), attrs=e.attrs | {"node": node}))
        for p in data.phases:
            phases.append(replace(p, index=base + p.index, start_ns=p.start_ns + shift, end_ns=p.end_ns + shift,
                                  parent=p.parent + base if p.parent >= 0 else -1, attrs=p.attrs | {"node": node},
                                  phase_id=_prefix_id(node, p.phase_id)))
        marks += [replace(m, t_ns=m.t_ns + shift, attrs=m.attrs | {"node": node}) for m in data.marks]
        counts += [replace(c, t_ns=c.t_ns + shift, phase=c.phase + base if c.phase >= 0 else -1) for c in data.counts]
        baselines.append(None if data.baseline is None else (data.baseline[0] + shift, data.baseline[1] + shift))
    if baselines and all(b is not None for b in baselines):
        lo = max(b[0] for b in baselines if b is not None)
        hi = min(b[1] for b in baselines if b is not None)
        if hi > lo:  # the window in which every node was idle: the job's baseline
            pid = os.getpid()
            events += [Event("run", lo, pid, RUN_BASELINE_START, "", "", 0.0, {}), Event("run", hi, pid, RUN_BASELINE_END, "", "", 0.0, {})]
    events.sort(key=lambda e: e.t_ns)
    return events, phases, marks, counts


def _write_health(writer: TraceWriter, loaded: list[Any], nodes_of: list[str], order: list[int], channels: list[Channel]) -> None:
    """One snapshot: every node's last health, per kept channel and per lane."""
    health = {(nodes_of[i], name): h for i in order for name, h in loaded[i][0].health.get("channels", {}).items()}
    per_channel = []
    for c in channels:
        h = health.get((c.metadata["node"], c.metadata["node_channel"]), {})
        per_channel.append((int(h.get("overruns", 0)), int(h.get("read_errors", 0)), int(h.get("reads", 0))))
    lanes = [lane for i in order for lane in loaded[i][0].health.get("lanes", {"fast": {}, "slow": {}}).values()]
    end = max(int(loaded[i][0].run_end_ns) for i in order)
    writer.append_health(end, [p[0] for p in per_channel], [p[1] for p in per_channel], [p[2] for p in per_channel],
                         [int(lane.get("ticks", 0)) for lane in lanes], [int(lane.get("missed", 0)) for lane in lanes],
                         [int(lane.get("late", 0)) for lane in lanes],
                         sum(int(loaded[i][0].health.get("events_dropped", 0)) for i in order))


def _phase_start_spread(phases: list[Phase]) -> float | None:
    """For each phase name begun on two nodes or more: the spread of its first start per node; the
    largest of those (s). None when no phase name is shared."""
    first: dict[str, dict[str, int]] = {}
    for p in phases:
        node = str(p.attrs.get("node", ""))
        starts = first.setdefault(p.name, {})
        starts[node] = min(starts.get(node, p.start_ns), p.start_ns)
    spreads = [(max(s.values()) - min(s.values())) * 1e-9 for s in first.values() if len(s) > 1]
    return max(spreads) if spreads else None


def describe(result: MergeResult) -> str:
    lines = [f"greentop: merged {len(result.nodes)} node traces into {result.output}"]
    for n in result.nodes:
        lines.append(f"  {n.node}: {n.path} (host {n.host or '?'}), shifted {n.shift_ns / 1e9:+.6f} s, "
                     f"{len(n.channels)} channels ({', '.join(n.channels)})")
    lines += [f"  {note}" for note in result.notes]
    return "\n".join(lines)


def check_inputs(paths: Sequence[str], output: str) -> None:
    """One clear line for inputs that are missing, before anything is read."""
    for p in paths:
        if not Path(p).is_file():
            raise MergeError(f"no such trace: {p}")
    out_dir = Path(output).resolve().parent
    if not out_dir.is_dir():
        raise MergeError(f"output folder does not exist: {out_dir}")


__all__ = ["MergeError", "MergeResult", "NodeInfo", "check_inputs", "describe", "expand_output", "merge"]
