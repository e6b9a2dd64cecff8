"""The one launcher: start a workload and stop it by one protocol.

``greentop record``, ``greentop run`` (the live view) and the sweep runner all start their child
here and stop it with :meth:`Workload.stop`, so what a signal does is the same everywhere.

The stop protocol
-----------------
- Start: the workload gets greentop's environment plus whatever the caller adds (the phase
  socket), and the kernel's parent-death signal (``PR_SET_PDEATHSIG``): if greentop dies, even
  by SIGKILL, the workload gets SIGTERM instead of running on unrecorded.
- Where it runs: ``own_group=False`` (``greentop record``, a sweep's ``greentop record``) leaves the
  workload in greentop's process group, so it keeps the terminal (a debugger prompt works) and a
  terminal's Ctrl-C reaches it and its children directly. ``own_group=True`` (the live view,
  whose terminal belongs to the view) puts it in a session of its own, its output captured; a
  stop then goes to its whole process group, data-loader workers and ranks included.
- Stop (Ctrl-C, SIGTERM or ``q``): the first signal (SIGINT, or SIGTERM when greentop itself got
  SIGTERM) is passed on after ``TERMINAL_GRACE_S`` when the workload shares greentop's group (a
  terminal's Ctrl-C may already have reached it), at once otherwise; then SIGTERM after
  ``GRACE_S``, then SIGKILL after ``GRACE_S`` again.
- Exit code: the workload's own; ``128 + N`` when a signal N ended it (the shell's convention).
  The recorder turns its own interruption into 130 (Ctrl-C) or 143 (SIGTERM).
- As whom: greentop's user, or (``run_as``, ``--user``, greentop being root) another user's uid,
  primary gid and groups, set in the child before exec and before the parent-death signal, which
  a change of uid would clear.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Callable, Mapping, Sequence

from greentop.run_as import RunAs

PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
GRACE_S = 5.0  # after the first signal: time the workload gets before SIGTERM, then before SIGKILL
TERMINAL_GRACE_S = 1.0  # a terminal's Ctrl-C reached a workload in greentop's group by itself
POLL_S = 0.1


def exit_status(returncode: int) -> int:
    """A process's exit code as a shell reports it: its own, or 128 + N after signal N."""
    return returncode if returncode >= 0 else 128 - returncode


def _death_signal_setter() -> Callable[[], None] | None:
    """What the child runs before exec: the kernel sends it SIGTERM when greentop dies. prctl is
    resolved here, in the parent: the forked child of a threaded process must not dlopen."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_in_child() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # greentop died before the prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_in_child


@dataclass
class Workload:
    """A started workload (see the module's stop protocol)."""

    process: subprocess.Popen[bytes]
    own_group: bool
    output: IO[bytes] | None = None  # its stdout + stderr, when captured
    signals_sent: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    def running(self) -> bool:
        return self.process.poll() is None

    def send(self, sig: int) -> None:
        """``sig`` to the workload: its whole process group when it has its own, else the child."""
        try:
            if self.own_group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        except ProcessLookupError:
            return
        self.signals_sent.append(int(sig))

    def stop(self, first: int = signal.SIGINT, grace_s: float = GRACE_S) -> int:
        """Stop it by the protocol (first signal, SIGTERM, SIGKILL, ``grace_s`` apart); its exit
        status (:func:`exit_status`)."""
        for sig in (first, signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            self.send(sig)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                continue
        return exit_status(self.process.wait())

    def wait(self, stop_requested: Callable[[], bool] = lambda: False,
             first_signal: Callable[[], int] = lambda: signal.SIGINT, grace_s: float = GRACE_S) -> int:
        """Wait for the workload to end by itself, or, once ``stop_requested()`` turns true, stop it
        by the protocol. Its exit status (:func:`exit_status`)."""
        deadline: float | None = None
        stage = 0
        while True:
            try:
                return exit_status(self.process.wait(timeout=POLL_S))
            except subprocess.TimeoutExpired:
                pass
            if not stop_requested():
                continue
            now = time.monotonic()
            if deadline is None:
                deadline = now + (0.0 if self.own_group else TERMINAL_GRACE_S)
            if now >= deadline:
                self.send((first_signal(), signal.SIGTERM, signal.SIGKILL)[min(stage, 2)])
                stage += 1
                deadline = now + grace_s


def start(cmd: Sequence[str], env: Mapping[str, str] | None = None, *, own_group: bool = False,
          capture_output: bool = False, log: IO[bytes] | None = None, run_as: RunAs | None = None) -> Workload:
    """Start ``cmd`` by the protocol: greentop's environment plus ``env``, the parent-death signal,
    in its own session when ``own_group``. Its stdout and stderr: captured (``capture_output``,
    read them from ``Workload.output``), written to ``log``, or greentop's own; stdin is closed
    unless they are greentop's own. ``run_as``: the user it runs as (``--user``; greentop is root),
    with that user's HOME, USER and LOGNAME. OSError when it cannot be started."""
    out: int | IO[bytes] | None = subprocess.PIPE if capture_output else log
    identity = run_as.popen_kwargs() if run_as is not None else {}
    env = dict(env or {}) | (run_as.env() if run_as is not None else {})
    process = subprocess.Popen(list(cmd), env=dict(os.environ) | env, **identity,
                               stdin=subprocess.DEVNULL if out is not None else None,
                               stdout=out, stderr=subprocess.STDOUT if out is not None else None,
                               start_new_session=own_group, preexec_fn=_death_signal_setter())
    return Workload(process, own_group, process.stdout if capture_output else None)


def pump_lines(stream: IO[bytes], put: Callable[[str], object]) -> threading.Thread:
    """A daemon thread handing each line of ``stream`` (decoded, without its newline) to ``put``."""
    def run() -> None:
        for line in iter(stream.readline, b""):
            put(line.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    thread = threading.Thread(target=run, name="greentop-output", daemon=True)
    thread.start()
    return thread
