"""A workload's process tree, found in ``/proc``, and signals sent to it safely.

Shared by greentop's stop protocol (:mod:`greentop.launch`: a normal stop) and by the guard
(:mod:`greentop.guard`: greentop died). The guard runs this file as a plain module of its own
(``python -I -S``), so it imports only ``os``, ``signal`` and ``time``.

The tree (the kernel's parent links alone are no help: the workload's children are re-parented as
soon as it dies): every process whose environment carries the run's mark (``GREENTOP_TREE``, a
colon-separated list, so a greentop inside a greentop adds its own mark and both see the inner
workload), every process of the workload's own process group (when it has one: the live view),
and every descendant of these. The caller's own process is never part of it, and a process group
is never signalled as such: greentop's own group (shared with the workload under ``greentop
record``, and with whatever else the shell started in that pipeline) is only reached through the
marked processes in it. A process is signalled through a pidfd, after checking its start time, so
a pid reused meanwhile is never hit. Processes of other users cannot be read and are skipped
(unless the caller is root).

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
import time

TREE_ENV = "GREENTOP_TREE"  # the marks of the greentop runs a process belongs to, ``:``-separated
POLL_S = 0.1  # the longest pause between two scans of a tree being stopped
FIRST_POLL_S = 0.004  # the first: most processes die within milliseconds of their signal; doubled up to POLL_S
KILL_WAIT_S = 3.0  # after SIGKILL: how long :func:`stop_tree` keeps catching what forks meanwhile
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


def tree(mark: str, pgid: int, roots: tuple[int, ...] = ()) -> dict[int, int]:
    """The live (not zombie) processes of the workload's tree: pid -> start time in ticks.
    ``pgid``: the workload's own process group, 0 when it has none of its own; ``roots``: pids
    known to be the workload's whatever their environment (the caller's child, not yet reaped:
    its pid cannot be reused)."""
    me, want = os.getpid(), mark.encode()
    procs: dict[int, tuple[str, int, int, int]] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit() and int(entry.name) != me:
            st = _stat(int(entry.name))
            if st is not None:
                procs[int(entry.name)] = st
    members = {pid for pid, (_, _, pgrp, _) in procs.items() if pid in roots or (pgid > 0 and pgrp == pgid) or _carries(pid, want)}
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(members)
    while todo:  # descendants of members, whatever their environment
        for child in children.get(todo.pop(), ()):
            if child not in members and child != me:
                members.add(child)
                todo.append(child)
    return {pid: procs[pid][3] for pid in members if procs[pid][0] not in ("Z", "X")}


def send(pid: int, started: int, sigs: tuple[int, ...]) -> None:
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


def signal_tree(mark: str, pgid: int, sig: int, sent: dict[int, int] | None = None, roots: tuple[int, ...] = ()) -> int:
    """``sig`` (and SIGCONT after SIGTERM, for a stopped process) to every process of the tree
    once: those already in ``sent`` (pid -> start time) are skipped, and those signalled now are
    added to it. How many processes the tree held."""
    sigs = (sig, int(signal.SIGCONT)) if sig == signal.SIGTERM else (sig,)
    members = tree(mark, pgid, roots)
    for pid, started in members.items():
        if sent is None or sent.get(pid) != started:
            send(pid, started, sigs)
            if sent is not None:
                sent[pid] = started
    return len(members)


def stop_tree(mark: str, pgid: int, grace_s: float, termed: dict[int, int] | None = None) -> None:
    """SIGTERM to the workload's tree (what forks meanwhile too; ``termed``: those that already
    had it, pid -> start time), SIGKILL to what is left after ``grace_s``; return once nothing of
    it is left (or :data:`KILL_WAIT_S` after SIGKILL)."""
    termed = {} if termed is None else termed
    deadline = time.monotonic() + grace_s
    pause = FIRST_POLL_S
    while (left := signal_tree(mark, pgid, signal.SIGTERM, termed)) and time.monotonic() < deadline:
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(POLL_S, 2 * pause)
    if not left:
        return
    end = time.monotonic() + KILL_WAIT_S
    pause = FIRST_POLL_S
    while signal_tree(mark, pgid, signal.SIGKILL) and time.monotonic() < end:
        time.sleep(pause)
        pause = min(POLL_S, 2 * pause)
