"""The guard: stop a workload's whole tree when greentop dies, by any means.

This file runs as a script of its own (``python -I -S greentop/guard.py FD GRACE_S MARK``), so it
imports only ``os``, ``signal``, ``sys`` and ``time`` (with ``greentop/proctree.py``, loaded as a
plain module beside it): it starts beside every workload, and its
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

The workload's tree and how it is signalled (a pidfd checked against the start time; never
greentop's own process group as a group) are :mod:`greentop.proctree`'s, shared with greentop's
own stop protocol; so are its limits.
"""

from __future__ import annotations

import os
import signal
import sys

if __package__:  # imported: greentop.launch reads DONE and GROUP
    from greentop import proctree
else:  # run as a script (``python -I -S``): -I leaves this folder off sys.path; after the stdlib
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import proctree  # type: ignore[no-redef]

DONE = b"done\n"  # greentop reaped the workload: nothing to do
GROUP = b"group "  # ``group <pgid>\n``: the workload's own process group


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
        proctree.stop_tree(mark, pgid, grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
