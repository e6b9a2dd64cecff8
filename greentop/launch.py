"""The one launcher: start a workload and stop it by one protocol.

``greentop record``, ``greentop run`` (the live view) and the sweep runner all start their child
here and stop it with :meth:`Workload.stop`, so what a signal does is the same everywhere.

The stop protocol
-----------------
- Start: the workload gets greentop's environment plus whatever the caller adds (the phase
  socket) and this run's mark (``GREENTOP_TREE``), and the kernel's parent-death signal
  (``PR_SET_PDEATHSIG``): if greentop dies, even by SIGKILL, the workload gets SIGTERM instead of
  running on unrecorded. That signal reaches the workload's own process only, so a guard process
  (:mod:`greentop.guard`) watches greentop too: when greentop dies before it has reaped the
  workload, the guard sends SIGTERM to the workload's whole tree (its children, their children,
  whatever process group or session they moved to, as long as they carry the mark or descend
  from one that does), then SIGKILL after ``GRACE_S``. Once greentop has reaped the workload (during
  a stop: once nothing of its tree is left) it lets the guard exit without touching anything.
- Where it runs: ``own_group=False`` (``greentop record``, a sweep's ``greentop record``) leaves the
  workload in greentop's process group, so it keeps the terminal (a debugger prompt works) and a
  terminal's Ctrl-C reaches it and its children directly. ``own_group=True`` (the live view,
  whose terminal belongs to the view) puts it in a session of its own, its output captured.
- Stop (Ctrl-C, SIGTERM or ``q``, a sweep's timeout): the first signal (SIGINT, or SIGTERM when
  greentop itself got SIGTERM) goes to the workload's own process when it shares greentop's group,
  after ``TERMINAL_GRACE_S`` (a terminal's Ctrl-C may already have reached it and the children
  left in that group), and to its whole process group at once when it has its own: the workload
  gets to shut its children down its own way (torchrun, a shell's trap). Then SIGTERM after
  ``GRACE_S``, then SIGKILL after ``GRACE_S`` again, each to the workload and to every other
  process of its tree (:mod:`greentop.proctree`: those carrying the run's mark or descending from
  one, wherever they moved: another process group, another session), never to greentop's own
  process group as such, nor to anything else. When the workload's own process ends during a
  stop (a shell that does not pass signals on to its jobs, a launcher that exits first), what is
  left of its tree gets SIGTERM at once (unless it had it), then SIGKILL ``GRACE_S`` later; the
  stop returns, and the trace records the workload's end, once nothing of the tree is alive
  (or :data:`greentop.proctree.KILL_WAIT_S` after SIGKILL, for a process the kernel holds).
  The guard stays until then too.
- Left running: a workload that ends by itself (no stop asked) may leave processes of its tree
  running (a daemon it started, workers it forgot). greentop neither kills them (what a program
  deliberately leaves behind is its own; its guard is let go) nor waits for them (a daemon may
  run for ever): it counts them (:meth:`Workload.left_running`) and says so, on stderr in one
  line and in the trace (``/run`` ``workload_left_running``, a note in every summary format),
  since the energy they draw from then on is on the machine but attributed to no run.
- Exit code: the workload's own; ``128 + N`` when a signal N ended it (the shell's convention).
  The recorder turns its own interruption into 130 (Ctrl-C) or 143 (SIGTERM).
- As whom: greentop's user, or (``run_as``, ``--user``, greentop being root) another user's uid,
  primary gid and groups, set in the child before exec and before the parent-death signal, which
  a change of uid would clear.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Callable, Mapping, Sequence

from greentop import guard as _guard
from greentop import proctree
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


class Guard:
    """greentop's end of a started guard (:mod:`greentop.guard`): the pipe's write end."""

    def __init__(self, mark: str, grace_s: float) -> None:
        self.mark = mark
        self._lock = threading.Lock()  # the view's thread and the session may both reap the workload
        read_fd, self._write_fd = os.pipe()  # both close-on-exec: the workload inherits neither
        try:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                # -I -S: the standard library only, whatever PYTHONPATH says; a fast start.
                [sys.executable, "-I", "-S", _guard.__file__, str(read_fd), repr(float(grace_s)), mark],
                pass_fds=(read_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)
        except OSError:
            os.close(self._write_fd)
            raise
        finally:
            os.close(read_fd)

    def tell_group(self, pgid: int) -> None:
        """The workload runs in process group ``pgid`` of its own: the guard stops it too."""
        self._write(_guard.GROUP + b"%d\n" % pgid)

    def release(self) -> None:
        """The workload is reaped: let the guard exit untouched. Idempotent."""
        with self._lock:
            if self._write_fd < 0:
                return
            self._write(_guard.DONE)
            os.close(self._write_fd)
            self._write_fd = -1
        # It exits at once; reaped aside, so that its exit (~8 ms) never delays the workload's end
        # as the trace records it.
        threading.Thread(target=self.process.wait, name="greentop-guard-reaper", daemon=True).start()

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._write_fd, data)
        except OSError:
            pass  # the guard is gone (killed by hand): PR_SET_PDEATHSIG is still there


def marked_env(env: Mapping[str, str], mark: str) -> dict[str, str]:
    """``env`` with ``mark`` added to its :data:`greentop.proctree.TREE_ENV` list."""
    marks = [m for m in env.get(proctree.TREE_ENV, "").split(":") if m]
    return dict(env) | {proctree.TREE_ENV: ":".join([*marks, mark])}


class _GuardedPopen(subprocess.Popen[bytes]):
    """A workload's process: once reaped (by whichever caller polls or waits), its guard is let go,
    unless a stop holds it (``hold``) until the rest of the tree is gone too."""

    guard: Guard | None = None
    hold = False

    def poll(self) -> int | None:
        returncode = super().poll()
        if returncode is not None and self.guard is not None and not self.hold:
            self.guard.release()
        return returncode

    def wait(self, timeout: float | None = None) -> int:
        returncode = super().wait(timeout)
        if self.guard is not None and not self.hold:
            self.guard.release()
        return returncode


def _start_guard() -> Guard | None:
    """A guard for a workload about to start; None when none can run (the parent-death signal
    still covers the workload's own process)."""
    if not sys.executable:  # an embedding interpreter that cannot run a script
        return None
    try:
        return Guard(secrets.token_hex(8), GRACE_S)
    except OSError:
        return None


@dataclass
class Workload:
    """A started workload (see the module's stop protocol)."""

    process: subprocess.Popen[bytes]
    own_group: bool
    output: IO[bytes] | None = None  # its stdout + stderr, when captured
    signals_sent: list[int] = field(default_factory=list)
    mark: str = ""  # this run's GREENTOP_TREE mark: what finds the whole tree ("": the child alone)
    _termed: dict[int, int] = field(default_factory=dict)  # the tree's processes that had SIGTERM

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

    def tree(self) -> dict[int, int]:
        """The live processes of the workload's tree (:func:`greentop.proctree.tree`), its own
        process included while it runs: pid -> start time in ticks."""
        if not self.mark:
            return {}
        return proctree.tree(self.mark, self._pgid())

    def left_running(self) -> list[int]:
        """The pids of the workload's tree still alive besides its own process: after it exited,
        what it left running (see the module's stop protocol)."""
        return sorted(pid for pid in self.tree() if pid != self.process.pid)

    def send(self, sig: int, whole_tree: bool | None = None) -> None:
        """``sig`` to the workload: with ``whole_tree`` (by default for SIGTERM and SIGKILL) to
        every process of its tree, wherever it moved (SIGTERM once each); else to its whole process
        group when it has its own, to its own process otherwise."""
        if whole_tree is None:
            whole_tree = sig in (signal.SIGTERM, signal.SIGKILL)
        if whole_tree and self.mark:
            sent = self._termed if sig == signal.SIGTERM else {}
            running = self.process.poll() is None  # not reaped: its pid is still its own
            proctree.signal_tree(self.mark, self._pgid(), sig, sent, (self.process.pid,) if running else ())
            if running and self.process.pid in sent:
                self.signals_sent.append(int(sig))
            return
        try:
            if self.own_group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        except ProcessLookupError:
            return
        self.signals_sent.append(int(sig))

    def _pgid(self) -> int:
        return self.process.pid if self.own_group else 0

    def stop(self, first: int = signal.SIGINT, grace_s: float = GRACE_S) -> int:
        """Stop it by the protocol (first signal at once, SIGTERM, SIGKILL, ``grace_s`` apart,
        until nothing of its tree is left); its exit status (:func:`exit_status`). A workload that
        already ended by itself is left as it is, and so is what it left running."""
        if self.process.poll() is not None:
            return exit_status(self.process.wait())
        return self._wait(lambda: True, lambda: first, grace_s, first_delay_s=0.0)

    def wait(self, stop_requested: Callable[[], bool] = lambda: False,
             first_signal: Callable[[], int] = lambda: signal.SIGINT, grace_s: float = GRACE_S) -> int:
        """Wait for the workload to end by itself, or, once ``stop_requested()`` turns true, stop it
        by the protocol, its whole tree included. Its exit status (:func:`exit_status`)."""
        return self._wait(stop_requested, first_signal, grace_s, first_delay_s=0.0 if self.own_group else TERMINAL_GRACE_S)

    def _wait(self, stop_requested: Callable[[], bool], first_signal: Callable[[], int], grace_s: float,
              first_delay_s: float) -> int:
        deadline: float | None = None
        stage = 0
        while True:
            if stop_requested():
                now = time.monotonic()
                if deadline is None:
                    self._hold_guard()
                    deadline = now + first_delay_s
                if now >= deadline:
                    if stage == 0:  # the workload's own process (group) first: it may stop its children its own way
                        self.send(first_signal(), whole_tree=False)
                    else:
                        self.send(signal.SIGTERM if stage == 1 else signal.SIGKILL)
                    stage += 1
                    deadline = now + grace_s
            timeout = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
            try:
                returncode = self.process.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                pass
        if deadline is not None or stop_requested():
            self._end_tree(stage, deadline, grace_s)
        return exit_status(returncode)

    def _hold_guard(self) -> None:
        """A stop began: the guard stays until the whole tree is gone, not only the child."""
        if isinstance(self.process, _GuardedPopen):
            self.process.hold = True

    def _end_tree(self, stage: int, deadline: float | None, grace_s: float) -> None:
        """The workload's own process ended during a stop: what is left of its tree gets SIGTERM
        at once (unless it had it already), then SIGKILL ``grace_s`` after its SIGTERM."""
        if self.mark:
            if stage >= 3:  # SIGKILL sent already
                termed_s = 0.0
            elif stage == 2 and deadline is not None:  # SIGTERM sent already: SIGKILL at the protocol's time
                termed_s = max(0.0, deadline - time.monotonic())
            else:
                termed_s = grace_s
            proctree.stop_tree(self.mark, self._pgid(), termed_s, self._termed)
        guard = getattr(self.process, "guard", None)
        if guard is not None:
            guard.release()


def left_running_line(pids: Sequence[int]) -> str:
    """The one line greentop prints when a workload exited and left ``pids`` of its tree running."""
    shown = ", ".join(str(p) for p in pids[:5]) + (", ..." if len(pids) > 5 else "")
    return (f"greentop: {len(pids)} process{'' if len(pids) == 1 else 'es'} of the workload still running after it exited "
            f"(pid {shown}); their energy after that is not attributed")


def start(cmd: Sequence[str], env: Mapping[str, str] | None = None, *, own_group: bool = False,
          capture_output: bool = False, log: IO[bytes] | None = None, run_as: RunAs | None = None) -> Workload:
    """Start ``cmd`` by the protocol: greentop's environment plus ``env`` and the run's mark, the
    parent-death signal and a guard, in its own session when ``own_group``. Its stdout and stderr:
    captured (``capture_output``, read them from ``Workload.output``), written to ``log``, or
    greentop's own; stdin is closed unless they are greentop's own. ``run_as``: the user it runs as
    (``--user``; greentop is root), with that user's HOME, USER and LOGNAME. OSError when it cannot
    be started."""
    out: int | IO[bytes] | None = subprocess.PIPE if capture_output else log
    identity = run_as.popen_kwargs() if run_as is not None else {}
    full_env = dict(os.environ) | dict(env or {}) | (run_as.env() if run_as is not None else {})
    guard = _start_guard()  # before the workload: no child of it is ever unguarded
    mark = guard.mark if guard is not None else secrets.token_hex(8)
    full_env = marked_env(full_env, mark)
    try:
        process = _GuardedPopen(list(cmd), env=full_env, **identity, stdin=subprocess.DEVNULL if out is not None else None,
                                stdout=out, stderr=subprocess.STDOUT if out is not None else None,
                                start_new_session=own_group, preexec_fn=_death_signal_setter())
    except BaseException:
        if guard is not None:
            guard.release()
        raise
    process.guard = guard
    if guard is not None and own_group:
        guard.tell_group(process.pid)
    return Workload(process, own_group, process.stdout if capture_output else None, mark=mark)


def pump_lines(stream: IO[bytes], put: Callable[[str], object]) -> threading.Thread:
    """A daemon thread handing each line of ``stream`` (decoded, without its newline) to ``put``."""
    def run() -> None:
        for line in iter(stream.readline, b""):
            put(line.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    thread = threading.Thread(target=run, name="greentop-output", daemon=True)
    thread.start()
    return thread
