"""Phase events as data: the event type, parsing a datagram into one, pairing events into phases.

Pure: no sockets, no threads, no files. The launcher's socket receiver (``greentop.listener``),
the trace reader (``greentop.trace``), the in-process Monitor (``greentop.api``) and the live view
all use it; the wire protocol itself is written by ``greentop.phases`` (the workload side).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, NoReturn, TypeGuard

from greentop.phases import MAX_NAME_CHARS, PROTOCOL_VERSION
from greentop.tracedata import AttrValue, Count, Mark, Phase

KINDS = frozenset({"start", "end", "mark", "count"})
MAX_ID_CHARS = 64  # "pid:n" is far shorter
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Event:
    """One event as the launcher logs it. ``t_ns`` is the workload's CLOCK_MONOTONIC ns;
    ``value`` is the amount of a count (0.0 for other kinds); ``phase_id`` of a mark or count is
    its enclosing phase. The recorder also logs its own ``kind="run"`` events in this shape."""

    kind: str
    t_ns: int
    pid: int
    name: str
    phase_id: str
    parent_id: str
    value: float
    attrs: dict[str, AttrValue]


class _Malformed(ValueError):
    pass


def _reject_constant(name: str) -> NoReturn:
    raise _Malformed(f"non-finite number {name}")  # NaN, Infinity, -Infinity


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # 1e999 parses to inf
        raise _Malformed(f"non-finite number {text}")
    return value


# Built once: json.loads(data, parse_float=...) would build a new decoder for every datagram.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _utf8_ok(text: str) -> bool:
    """False for strings with lone surrogates (JSON allows "\\ud800"; the trace file does not)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int  # not bool


def parse_event(data: bytes) -> Event | None:
    """One datagram to an ``Event``, or None when it is not a valid version-1 event."""
    try:
        msg = _DECODER.decode(data.decode("utf-8"))
    except Exception:  # noqa: BLE001 -- bad UTF-8, bad JSON, non-finite numbers, absurd nesting
        return None
    if type(msg) is not dict or not _is_int(msg.get("v")) or msg["v"] != PROTOCOL_VERSION:
        return None
    kind, t_ns, pid, name = msg.get("k"), msg.get("t"), msg.get("p"), msg.get("n")
    phase_id, parent_id, attrs = msg.get("id", ""), msg.get("par", ""), msg.get("a", {})
    if kind not in KINDS or not _is_int(t_ns) or not 0 <= t_ns <= _INT64_MAX or not _is_int(pid) or not 0 < pid <= _INT64_MAX:
        return None
    if type(name) is not str or not 0 < len(name) <= MAX_NAME_CHARS:
        return None
    if type(phase_id) is not str or type(parent_id) is not str or len(phase_id) > MAX_ID_CHARS or len(parent_id) > MAX_ID_CHARS:
        return None
    if type(attrs) is not dict or not all(type(v) in (str, int, float, bool) for v in attrs.values()):
        return None
    if not (_utf8_ok(name) and all(_utf8_ok(k) and (type(v) is not str or _utf8_ok(v)) for k, v in attrs.items())):
        return None
    value = 0.0
    if kind == "count":
        raw = msg.get("val")
        if not (_is_int(raw) or isinstance(raw, float)) or isinstance(raw, bool):
            return None
        try:
            value = float(raw)  # an int beyond float range overflows
        except OverflowError:
            return None
    return Event(kind=kind, t_ns=t_ns, pid=pid, name=name, phase_id=phase_id, parent_id=parent_id, value=value, attrs=attrs)


def parse_lost(data: bytes) -> tuple[int, int] | None:
    """A client's report of the events it could not send: (pid, cumulative count), or None."""
    try:
        msg = json.loads(data)
    except Exception:  # noqa: BLE001
        return None
    if type(msg) is not dict or msg.get("v") != PROTOCOL_VERSION or msg.get("k") != "lost":
        return None
    pid, n = msg.get("p"), msg.get("val")
    if not _is_int(pid) or not _is_int(n) or not 0 < pid <= _INT64_MAX or not 0 <= n <= _INT64_MAX:
        return None
    return pid, n


# ---- events -> phases --------------------------------------------------------------------------


class _Open:
    """A phase being assembled."""

    __slots__ = ("seq", "start_ns", "end_ns", "name", "pid", "attrs", "phase_id", "parent_id", "shell_parent", "exc")

    def __init__(self, seq: int, e: Event, shell_parent: _Open | None) -> None:
        self.seq = seq
        self.start_ns = e.t_ns
        self.end_ns: int | None = None
        self.name, self.pid, self.attrs = e.name, e.pid, dict(e.attrs)
        self.phase_id, self.parent_id = e.phase_id, e.parent_id
        self.shell_parent = shell_parent
        self.exc = ""  # the exception that left the phase, if one did


def build_phases(events: Iterable[Event], end_ns: int, exit_status: str = "ok",
                 stats: dict[str, int] | None = None) -> tuple[list[Phase], list[Mark], list[Count]]:
    """Pair the workload's start/end events into phases; collect its marks and counts.

    Phases come sorted by start time; ``parent`` and ``Count.phase`` are indices into that list
    (-1: none). ``end_ns`` (CLOCK_MONOTONIC) closes phases still open, with status "crashed" when
    ``exit_status`` is not "ok" and "unclosed" otherwise. When ``exit_status`` is not "ok",
    phases that an exception unwound as the last thing their process did are "crashed" too but
    keep their own end time (a Python workload dying of an exception closes its ``with`` blocks
    on the way out). A phase left by an exception gets ``attrs["exception"]`` (its class name).

    Pairing: by phase id; an end with an empty id (shell workloads) closes the most recent open
    id-less start of that name from the same pid, or failing that from any pid (a shell may exec
    its last command, which then reports the launcher as its parent). Parents: by id across all
    processes (ids are unique per run, so a forked worker's phase finds its parent in another
    pid); an id-less start nests under the innermost open id-less phase of its pid.

    Kinds other than start/end/mark/count are ignored. If ``stats`` is given it receives
    ``unmatched_ends``, ``duplicate_starts``, ``unclosed`` and ``crashed`` counts."""
    ordered = sorted(events, key=lambda e: e.t_ns)  # stable: one process's ties keep arrival order
    by_id: dict[str, _Open] = {}
    shell_open: dict[int, list[_Open]] = {}  # pid -> open id-less phases, innermost last
    records: list[_Open] = []
    marks: list[Mark] = []
    raw_counts: list[Event] = []
    unmatched = duplicates = 0

    for e in ordered:
        if e.kind == "start":
            if e.phase_id:
                if e.phase_id in by_id:
                    duplicates += 1
                    continue
                rec = _Open(len(records), e, None)
                by_id[e.phase_id] = rec
            else:
                stack = shell_open.setdefault(e.pid, [])
                rec = _Open(len(records), e, stack[-1] if stack else None)
                stack.append(rec)
            records.append(rec)
        elif e.kind == "end":
            if e.phase_id:
                found = by_id.get(e.phase_id)
                if found is None or found.end_ns is not None:
                    unmatched += 1
                    continue
                found.end_ns = e.t_ns
                found.exc = _exc_of(e)
            else:
                found = _close_shell(shell_open, e)
                if found is None:
                    unmatched += 1
        elif e.kind == "mark":
            marks.append(Mark(t_ns=e.t_ns, name=e.name, pid=e.pid, attrs=dict(e.attrs)))
        elif e.kind == "count":
            raw_counts.append(e)

    crash_ends = _crash_ends(ordered) if exit_status != "ok" else set()

    # records were appended in start order (events are sorted), so seq is the phase index.
    phases: list[Phase] = []
    closing = "ok" if exit_status == "ok" else "crashed"
    n_unclosed = n_crashed = 0
    for rec in records:
        parent_rec = by_id.get(rec.parent_id) if rec.parent_id else rec.shell_parent
        # A parent must have started first; anything else (a self-reference, a forged id) is
        # treated as top level, which also rules out cycles.
        parent = parent_rec.seq if parent_rec is not None and parent_rec.seq < rec.seq else -1
        depth = phases[parent].depth + 1 if parent >= 0 else 0
        if rec.end_ns is not None:
            end, status = rec.end_ns, "ok"
            if rec.phase_id and rec.phase_id in crash_ends:
                status = "crashed"
                n_crashed += 1
            if rec.exc and "exception" not in rec.attrs:
                rec.attrs["exception"] = rec.exc
        else:
            end, status = max(end_ns, rec.start_ns), ("unclosed" if closing == "ok" else "crashed")
            if status == "unclosed":
                n_unclosed += 1
            else:
                n_crashed += 1
        phases.append(Phase(index=rec.seq, name=rec.name, start_ns=rec.start_ns, end_ns=end, depth=depth, parent=parent,
                            pid=rec.pid, attrs=rec.attrs, status=status, phase_id=rec.phase_id))

    counts = [
        Count(t_ns=e.t_ns, name=e.name, value=e.value, pid=e.pid,
              phase=by_id[e.phase_id].seq if e.phase_id in by_id else -1)
        for e in raw_counts
    ]
    if stats is not None:
        stats.update(unmatched_ends=unmatched, duplicate_starts=duplicates, unclosed=n_unclosed, crashed=n_crashed)
    return phases, marks, counts


def _exc_of(e: Event) -> str:
    exc = e.attrs.get("exc", "")
    return exc if isinstance(exc, str) else ""


def _crash_ends(ordered: list[Event]) -> set[str]:
    """Ids of phases ended by the exception that ended their process: per pid, the run of
    exception-carrying ends after which that pid sent nothing more. A phase left by an exception
    that was caught is followed by more events from its process and stays "ok"."""
    crashed: set[str] = set()
    done: set[int] = set()  # pids whose trailing run is over
    for e in reversed(ordered):
        if e.pid in done or e.kind not in KINDS:
            continue
        if e.kind == "end" and e.phase_id and _exc_of(e):
            crashed.add(e.phase_id)
        else:
            done.add(e.pid)
    return crashed


def _close_shell(shell_open: dict[int, list[_Open]], e: Event) -> _Open | None:
    """Close the most recent open id-less phase named ``e.name``, preferring ``e.pid``."""
    candidates: list[tuple[int, list[_Open], int]] = []  # (start order, stack, position)
    own = shell_open.get(e.pid, [])
    for i in range(len(own) - 1, -1, -1):
        if own[i].name == e.name:
            candidates.append((own[i].seq, own, i))
            break
    if not candidates:
        for stack in shell_open.values():
            for i in range(len(stack) - 1, -1, -1):
                if stack[i].name == e.name:
                    candidates.append((stack[i].seq, stack, i))
                    break
    if not candidates:
        return None
    _, stack, i = max(candidates, key=lambda c: c[0])
    rec = stack.pop(i)
    rec.end_ns = e.t_ns
    return rec
