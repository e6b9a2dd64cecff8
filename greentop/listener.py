"""Phase tagging, launcher side: receive the workload's events and turn them into phases.

``EventListener`` owns the Unix datagram socket whose path the workload finds in
``GREENTOP_EVENTS`` (protocol: ``greentop/phases.py``). A daemon thread only moves datagrams
out of the kernel queue (that queue is short, ``net.unix.max_dgram_qlen``, often 10, and a full
one makes the workload wait); parsing and validation happen in ``drain()``. ``build_phases``
pairs starts and ends into the ``Phase``/``Mark``/``Count`` tables of ``greentop.tracedata``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import stat
import tempfile
import threading
import weakref
from dataclasses import dataclass
from types import TracebackType
from typing import Iterable, NoReturn, TypeGuard

from greentop.phases import ENV_VAR, MAX_DATAGRAM_BYTES as MAX_EVENT_BYTES, MAX_NAME_CHARS, PROTOCOL_VERSION
from greentop.tracedata import AttrValue, Count, Mark, Phase

KINDS = frozenset({"start", "end", "mark", "count"})
MAX_DATAGRAM_BYTES = 65536  # read size; the client keeps its datagrams under 8 KiB
MAX_ID_CHARS = 64  # "pid:n" is far shorter
MAX_PENDING_BYTES = 64 << 20  # datagrams held between drains (bytes) before new ones are counted as overflowed
_SOCKET_NAME = "ev"
_MAX_SUN_PATH = 100  # AF_UNIX paths must fit in 108 bytes; leave room
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


class EventListener:
    """The receiving end of the workload's phase events.

    ``start()`` makes a private directory (mode 0700) holding the socket (mode 0600); ``env()``
    is what the child needs in its environment; ``drain()`` returns the events received since the
    last drain; ``stop()`` reads what is still queued, closes and removes everything (call
    ``drain()`` once more after it). ``dropped`` counts datagrams that were not valid events;
    ``overflowed`` those lost because nobody drained ``MAX_PENDING_BYTES`` of them; ``oversized``
    those over ``MAX_EVENT_BYTES`` (also in ``dropped``); ``client_lost`` what the workload reports
    it could not send; ``lost`` the sum of ``client_lost`` and ``overflowed``."""

    def __init__(self) -> None:
        self.dropped: int = 0
        self.overflowed: int = 0
        self.oversized: int = 0  # datagrams over MAX_EVENT_BYTES, refused unread
        self._client_lost: dict[int, int] = {}  # pid -> events it reports it could not send
        self._dir: str | None = None
        self._path: str | None = None
        self._sock: socket.socket | None = None
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._raw: list[bytes] = []
        self._raw_bytes = 0
        self._cleanup: weakref.finalize | None = None

    @property
    def path(self) -> str:
        """The socket's path (after ``start()``)."""
        if self._path is None:
            raise RuntimeError("EventListener not started")
        return self._path

    def env(self) -> dict[str, str]:
        """Environment variables for the workload."""
        return {ENV_VAR: self.path}

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("EventListener already started")
        remove_stale_dirs()
        d = tempfile.mkdtemp(prefix="greentop-")  # mode 0700: nobody else can reach the socket
        if len(d) + 1 + len(_SOCKET_NAME) > _MAX_SUN_PATH:  # a long $TMPDIR
            os.rmdir(d)
            d = tempfile.mkdtemp(prefix="greentop-", dir="/tmp")
        os.chmod(d, 0o700)
        path = os.path.join(d, _SOCKET_NAME)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.setblocking(False)
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            sock.close()
            shutil.rmtree(d, ignore_errors=True)
            raise
        self._dir, self._path, self._sock = d, path, sock
        # If stop() is never reached (an exception on the way, a forgotten listener), the
        # directory still goes when the listener is collected or the interpreter exits.
        self._cleanup = weakref.finalize(self, _remove_dir, d, os.getpid())
        self._stopping = False
        self._thread = threading.Thread(target=self._receive, name="greentop-events", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        sock = self._sock
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        final = False
        while True:
            batch: list[bytes] = []
            # Empty the kernel queue before taking the lock: a full queue blocks the workload.
            while True:
                try:
                    batch.append(sock.recv(MAX_DATAGRAM_BYTES))
                except BlockingIOError:
                    break
                except OSError:
                    return  # closed under us: nothing more can come
            if batch:
                kept = [d for d in batch if len(d) <= MAX_EVENT_BYTES]
                with self._lock:
                    self.oversized += len(batch) - len(kept)
                    self.dropped += len(batch) - len(kept)  # refused: not an event a client can send
                    for d in kept:
                        # Bounded by bytes, not count: 60 KB marks at 2 kHz once held 2.5 GB here.
                        if self._raw_bytes + len(d) > MAX_PENDING_BYTES:
                            self.overflowed += 1
                            continue
                        self._raw.append(d)
                        self._raw_bytes += len(d)
            if final:
                return
            if self._stopping:
                # Everything sent before stop() is in the queue by now, but maybe not in this
                # batch (it can have arrived after the reads above): read once more, then leave.
                final = True
                continue
            poller.poll()

    def drain(self) -> list[Event]:
        """Events received since the last call, in arrival order (not sorted by time)."""
        with self._lock:
            raw, self._raw = self._raw, []
            self._raw_bytes = 0
        events: list[Event] = []
        bad = 0
        for data in raw:
            event = parse_event(data)
            if event is not None:
                events.append(event)
                continue
            lost = parse_lost(data)
            if lost is None:
                bad += 1
            else:
                pid, n = lost
                self._client_lost[pid] = max(self._client_lost.get(pid, 0), n)
        if bad:
            with self._lock:
                self.dropped += bad
        return events

    @property
    def client_lost(self) -> int:
        """Events the workload's processes report they could not send (``phases.send_failures``)."""
        return sum(self._client_lost.values())

    @property
    def lost(self) -> int:
        """Valid events known lost: not sent by a client, or not kept here for want of room
        (refused datagrams, oversized ones included, are counted in ``dropped``)."""
        return self.client_lost + self.overflowed

    def stop(self) -> None:
        """Read what is queued, then close the socket and remove its directory. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
            thread.join(timeout=5.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._dir is not None:
            if self._cleanup is not None:
                self._cleanup()  # removes the directory, once
            self._dir = None

    def __enter__(self) -> EventListener:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def remove_stale_dirs(folders: Iterable[str] | None = None) -> list[str]:
    """Remove the socket folders of listeners that died without cleaning up (a recorder killed with
    SIGKILL): ours (same uid), holding nothing but the socket, and nobody bound to it (a connect
    is refused). Returns the folders removed."""
    removed = []
    for top in folders if folders is not None else {tempfile.gettempdir(), "/tmp"}:
        try:
            names = [n for n in os.listdir(top) if n.startswith("greentop-")]
        except OSError:
            continue
        for name in names:
            d = os.path.join(top, name)
            try:
                st = os.lstat(d)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or os.listdir(d) != [_SOCKET_NAME]:
                    continue
                if not stat.S_ISSOCK(os.lstat(os.path.join(d, _SOCKET_NAME)).st_mode):
                    continue
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    probe.connect(os.path.join(d, _SOCKET_NAME))
                    continue  # a live listener
                except ConnectionRefusedError:
                    pass
                finally:
                    probe.close()
            except OSError:
                continue
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _remove_dir(path: str, owner_pid: int) -> None:
    # Not from a forked copy of the launcher exiting: the launcher may still be listening.
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


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
