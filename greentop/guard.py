"""The guard: stop a workload's whole tree when greentop dies, by any means.

This file runs as a script of its own (``python -I -S greentop/guard.py FD GRACE_S MARK``), so it
imports only ``os``, ``signal``, ``sys`` and ``time``: it starts beside every workload, and its
start is greentop's overhead. greentop's side (start it, tell it, release it) is
:class:`greentop.launch.Guard`.

The kernel's parent-death signal (``PR_SET_PDEATHSIG``, set by :mod:`greentop.launch`) reaches
only the workload's own process. Its children (data-loader workers, torchrun's ranks, the jobs of
``sh -c 'a & b'``, a server's workers) would run on, holding the GPU and memory, unrecorded. So
the launcher also starts a guard: a small process in a session of its own (no terminal or job
signal reaches it; it ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT besides) that holds
the read end of a pipe whose write end only greentop holds (close-on-exec: the workload never
inherits it).

- greentop tells the guard the workload's process group (``group N``) when the workload has one
  of its own, and ``done`` once it has reaped the workload; closing the pipe then lets the guard
  exit without touching anything.
- End of file without ``done`` means greentop died. The guard then sends SIGTERM (and SIGCONT,
  for a stopped one) to every process of the workload's tree, waits the stop protocol's grace
  period, sends SIGKILL to what is left, and exits.

The workload's tree, found in ``/proc`` (the kernel's parent links are no help: the workload's
children are re-parented as soon as it dies): every process whose environment carries this run's
mark (``GREENTOP_TREE``, a colon-separated list, so a greentop inside a greentop adds its own
mark and both guards see the inner workload), every process of the workload's own process group,
and every descendant of these. A process is signalled through a pidfd, after checking its start
time, so a pid reused meanwhile is never hit. Nothing else is touched: processes of other users
cannot be read and are skipped; greentop's own process group (shared with the workload under
``greentop record``, and with whatever else the shell started in that pipeline) is never
signalled as a group.

Limits: a descendant that starts with a cleared environment (``env -i``, ``sudo``, a daemon that
re-executes itself clean) and that has already left the tree by then (its parent gone, or it
called ``setsid()`` out of the workload's own group) cannot be told from any other process of the
user, and is left alone. A process that overwrites its environment in memory (``setproctitle``
with a long title) loses its mark the same way; it is still found while it is in the workload's
own group or under a marked parent.
"""

from __future__ import annotations

import os
import signal
import sys
import time

TREE_ENV = "GREENTOP_TREE"  # the marks of the greentop runs a process belongs to, ``:``-separated
DONE = b"done\n"  # greentop reaped the workload: nothing to do
GROUP = b"group "  # ``group <pgid>\n``: the workload's own process group
POLL_S = 0.1
KILL_WAIT_S = 3.0  # after SIGKILL: how long the guard keeps catching what forks meanwhile
PROC = "/proc"


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgrp, start time in ticks) of ``pid``, None when it is gone."""
    try:
        text = _read(f"{PROC}/{pid}/stat")
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()  # the name may hold spaces and parentheses
    try:
        return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19])
    except (IndexError, ValueError):  # read as it exited
        return None


def _carries(pid: int, mark: bytes) -> bool:
    try:
        environ = _read(f"{PROC}/{pid}/environ")
    except OSError:  # gone, or another user's: never ours to stop
        return False
    prefix = TREE_ENV.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return mark in entry[len(prefix):].split(b":")
    return False


def tree(mark: str, pgid: int) -> dict[int, int]:
    """The live (not zombie) processes of the workload's tree: pid -> start time in ticks."""
    me, want = os.getpid(), mark.encode()
    procs: dict[int, tuple[str, int, int, int]] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit() and int(entry.name) != me:
            st = _stat(int(entry.name))
            if st is not None:
                procs[int(entry.name)] = st
    members = {pid for pid, (_, _, pgrp, _) in procs.items() if (pgid > 0 and pgrp == pgid) or _carries(pid, want)}
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(members)
    while todo:  # descendants of members, whatever their environment
        for child in children.get(todo.pop(), ()):
            if child not in members:
                members.add(child)
                todo.append(child)
    return {pid: procs[pid][3] for pid in members if procs[pid][0] not in ("Z", "X")}


def _send(pid: int, started: int, sigs: tuple[int, ...]) -> None:
    """``sigs`` to ``pid`` if it is still the process that started at ``started``."""
    try:
        fd = os.pidfd_open(pid)  # pins the process: a reused pid cannot be hit after the check
    except ProcessLookupError:
        return
    except (OSError, AttributeError):
        fd = -1
    try:
        st = _stat(pid)
        if st is None or st[3] != started:
            return
        for sig in sigs:
            if fd >= 0:
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return
    finally:
        if fd >= 0:
            os.close(fd)


def stop_tree(mark: str, pgid: int, grace_s: float) -> None:
    """SIGTERM to the workload's tree (what forks meanwhile too), SIGKILL to what is left after
    ``grace_s``; return once nothing of it is left (or :data:`KILL_WAIT_S` after SIGKILL)."""
    termed: dict[int, int] = {}
    deadline = time.monotonic() + grace_s
    while (members := tree(mark, pgid)) and time.monotonic() < deadline:
        for pid, started in members.items():
            if termed.get(pid) != started:
                _send(pid, started, (signal.SIGTERM, signal.SIGCONT))
                termed[pid] = started
        time.sleep(POLL_S)
    end = time.monotonic() + KILL_WAIT_S
    while members and time.monotonic() < end:
        for pid, started in members.items():
            _send(pid, started, (signal.SIGKILL,))
        time.sleep(POLL_S)
        members = tree(mark, pgid)


def greentop_died(fd: int) -> tuple[bool, int]:
    """Read the pipe to its end: (whether greentop died before saying ``done``, the workload's
    own process group or 0)."""
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    pgid = 0
    for line in data.splitlines(keepends=True):
        if line.startswith(GROUP):
            pgid = int(line[len(GROUP):])
    return DONE not in data.splitlines(keepends=True), pgid


def main(argv: list[str]) -> int:
    fd, grace_s, mark = int(argv[1]), float(argv[2]), argv[3]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)  # only the pipe's end stops the guard
    died, pgid = greentop_died(fd)
    if died:
        stop_tree(mark, pgid, grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
