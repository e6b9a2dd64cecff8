"""The one launcher (greentop.launch): how a workload is started and stopped, wherever it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from greentop import launch


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (nobody reaped it yet).
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def _wait_for_file(path: Path, timeout_s: float = 20.0) -> str:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never written")


def test_a_stop_reaches_the_workloads_children_when_it_has_its_own_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(p.pid))
        time.sleep(60)
    """)
    w = launch.start([sys.executable, "-c", code], own_group=True, capture_output=True)
    grandchild = int(_wait_for_file(pidfile))
    assert w.running() and _alive(grandchild)
    rc = w.stop(grace_s=5.0)
    assert rc == 128 + signal.SIGINT  # Python dies of an unhandled Ctrl-C by the signal itself: 130
    end = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _alive(grandchild), "the data-loader-like grandchild outlived the stop"


def test_a_workload_that_ignores_the_first_signal_is_escalated(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = textwrap.dedent(f"""
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        open({str(ready)!r}, "w").write("1")
        time.sleep(60)
    """)
    w = launch.start([sys.executable, "-c", code], own_group=True, capture_output=True)
    _wait_for_file(ready)
    rc = w.wait(stop_requested=lambda: True, grace_s=0.5)
    assert rc == 128 + signal.SIGTERM
    assert w.signals_sent[:2] == [signal.SIGINT, signal.SIGTERM]


def test_output_is_captured_line_by_line() -> None:
    w = launch.start([sys.executable, "-c", "print('one'); import sys; print('two', file=sys.stderr)"],
                     own_group=True, capture_output=True)
    lines: list[str] = []
    assert w.output is not None
    t = launch.pump_lines(w.output, lines.append)
    assert w.wait() == 0
    t.join(timeout=10)
    assert sorted(lines) == ["one", "two"]


def test_the_workload_dies_with_a_killed_launcher(tmp_path: Path) -> None:
    pidfile = tmp_path / "workload.pid"
    launcher_code = textwrap.dedent(f"""
        import sys, time
        from greentop import launch
        w = launch.start([sys.executable, "-c",
                          "import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"])
        time.sleep(60)
    """)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    parent = subprocess.Popen([sys.executable, "-c", launcher_code], env=env)
    try:
        workload = int(_wait_for_file(pidfile))
        parent.kill()  # SIGKILL: the launcher gets no chance to stop anything
        parent.wait()
        end = time.monotonic() + 10
        while _alive(workload) and time.monotonic() < end:
            time.sleep(0.05)
        assert not _alive(workload), "the workload ran on, orphaned, after its launcher was killed"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_exit_status_follows_the_shell() -> None:
    assert launch.exit_status(0) == 0 and launch.exit_status(3) == 3
    assert launch.exit_status(-signal.SIGKILL) == 137
