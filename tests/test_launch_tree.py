"""A normal stop reaches the workload's whole tree (greentop.launch with greentop.proctree), and
what a workload leaves running when it ends by itself is counted and said, never killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greentop import launch
from greentop.trace import load
from tests.test_launch import SLEEPER, _alive, _kill_all, _wait_for_file, _wait_gone

REPO = Path(__file__).resolve().parent.parent


def _record(out: Path, env: dict[str, str], script: str) -> subprocess.Popen[str]:
    """``greentop record -- sh -c script`` in a session of its own (its process group is greentop's
    and the workload's, as under a terminal), stderr captured."""
    return subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--",
                             "sh", "-c", script], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


@pytest.mark.parametrize("how", ["sigterm-to-greentop", "ctrl-c-to-the-group"])
def test_a_stopped_record_leaves_no_process_of_a_shells_jobs(tmp_path: Path, host_env: dict[str, str], how: str) -> None:
    """``sh -c 'sleep & sleep & wait'``: the shell does not pass a signal on to its jobs (and a
    non-interactive shell's jobs ignore SIGINT); once greentop record says the run ended, no
    sleep of that tree is alive. Ctrl-C: the terminal's SIGINT reaches the whole foreground group."""
    pids_file = tmp_path / "pids"
    script = f'sleep 300 & a=$!; sleep 300 & b=$!; echo "$a $b" > {pids_file}; wait'
    proc = _record(tmp_path / "run.h5", host_env, script)
    pids: list[int] = []
    try:
        pids = [int(p) for p in _wait_for_file(pids_file, 60).split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        if how == "sigterm-to-greentop":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == (143 if how == "sigterm-to-greentop" else 130), err
        assert [p for p in pids if _alive(p)] == [], "a job of the workload outlived greentop record's stop"
        assert "still running" not in err
        assert "workload_left_running" not in load(tmp_path / "run.h5").meta["run"]
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(pids)


@pytest.mark.parametrize("own_group", [False, True], ids=["record", "live-view"])
def test_a_stop_ends_the_whole_tree_and_nothing_else(tmp_path: Path, own_group: bool) -> None:
    """The workload's children (one that called setsid, one that ignores SIGTERM, one that ignores
    SIGINT, one double-forked out of its tree), whose parent exits at the first signal, all end
    with the stop; greentop's own process group
    (the launcher, a process beside it) and an unrelated process are never signalled."""
    kids, beside, stopped = tmp_path / "kids.pid", tmp_path / "beside.pid", tmp_path / "stopped"
    tree_code = textwrap.dedent(f"""
        import os, signal, subprocess, sys, time
        sleeper = {SLEEPER!r}
        stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"]
        kids = [subprocess.Popen(sleeper, start_new_session=True), subprocess.Popen(stubborn),
                subprocess.Popen(sleeper, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))]
        # A double fork: the middle process exits at once, its child (a session of its own) is re-parented.
        middle = subprocess.run([sys.executable, "-c", "import subprocess, sys; "
                                 f"print(subprocess.Popen({{sleeper!r}}, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)"],
                                capture_output=True, text=True, check=True)
        pids = [k.pid for k in kids] + [int(middle.stdout)]
        time.sleep(0.5)  # the stubborn one has set its handler
        open({str(kids)!r}, "w").write(" ".join(str(p) for p in pids))
        time.sleep(120)  # the first signal (SIGINT) ends this process, not its children
    """)
    launcher_code = textwrap.dedent(f"""
        import signal, subprocess, sys, time
        from greentop import launch
        beside = subprocess.Popen({SLEEPER!r})
        open({str(beside)!r}, "w").write(str(beside.pid))
        w = launch.start([sys.executable, "-c", {tree_code!r}], own_group={own_group!r}, capture_output={own_group!r})
        while not __import__("os").path.exists({str(kids)!r}):
            time.sleep(0.02)
        rc = w.stop(signal.SIGINT, grace_s=0.5)
        open({str(stopped)!r}, "w").write(str(rc))
    """)
    env = os.environ | {"PYTHONPATH": str(REPO)}
    unrelated = subprocess.Popen(SLEEPER)
    # Its own session: its process group holds the launcher and the process beside it only.
    parent = subprocess.Popen([sys.executable, "-c", launcher_code], env=env, start_new_session=True)
    pids: list[int] = []
    try:
        assert parent.wait(timeout=60) == 0, "the launcher's own process group was signalled"
        pids = [int(p) for p in kids.read_text().split()]
        bystander = int(beside.read_text())
        assert int(stopped.read_text()) == 128 + signal.SIGINT
        # The stop returned: nothing of the tree may be alive now (no waiting here).
        assert [p for p in pids if _alive(p)] == [], "a process of the workload's tree outlived the stop"
        assert _alive(bystander), "a process in greentop's own process group was stopped"
        assert _alive(unrelated.pid), "an unrelated process was stopped"
    finally:
        if parent.poll() is None:
            parent.kill()
        _kill_all([*pids, *([int(beside.read_text())] if beside.exists() else [])])
        unrelated.kill()
        unrelated.wait()


def test_the_escalation_reaches_a_setsid_child_while_the_workload_runs(tmp_path: Path) -> None:
    """The workload ignores SIGINT and so does its setsid'ed child: SIGTERM reaches both,
    greentop's launcher included neither as a group nor as a process."""
    kids = tmp_path / "kids.pid"
    code = textwrap.dedent(f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the child
        k = subprocess.Popen({SLEEPER!r}, start_new_session=True)
        open({str(kids)!r}, "w").write(str(k.pid))
        time.sleep(120)
    """)
    w = launch.start([sys.executable, "-c", code])
    child = int(_wait_for_file(kids))
    try:
        rc = w.stop(signal.SIGINT, grace_s=0.5)
        assert rc == 128 + signal.SIGTERM
        assert w.signals_sent[:2] == [signal.SIGINT, signal.SIGTERM]
        assert not _alive(child), "the setsid'ed child outlived the stop"
    finally:
        _kill_all([child])


def test_what_a_workload_leaves_running_is_counted_and_said_not_killed(tmp_path: Path, host_env: dict[str, str]) -> None:
    """``sh -c 'sleep 300 &'`` exits at once, leaving the sleep: greentop record says so in one
    line on stderr and in the trace (every summary format's notes), and leaves it running."""
    pids_file, out = tmp_path / "pids", tmp_path / "run.h5"
    script = f'sleep 300 >/dev/null 2>&1 & echo "$!" > {pids_file}; sleep 300 >/dev/null 2>&1 & echo "$!" >> {pids_file}'
    proc = _record(out, host_env, script)
    pids: list[int] = []
    try:
        _, err = proc.communicate(timeout=60)
        pids = [int(p) for p in pids_file.read_text().split()]
        assert proc.returncode == 0, err
        assert all(_alive(p) for p in pids), "greentop killed what the workload deliberately left running"
        said = [line for line in err.splitlines() if line.startswith("greentop: ") and "still running" in line]
        assert len(said) == 1 and said[0].startswith("greentop: 2 processes of the workload"), err
        assert "note: 2 processes of the workload were still running after it exited" in err  # the closing summary
        assert all(str(p) in said[0] for p in pids)
        assert load(out).meta["run"]["workload_left_running"] == 2
        summary = subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", "json"],
                                 env=host_env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert summary.returncode == 0, summary.stderr
        notes = json.loads(summary.stdout)["notes"]
        assert any(n.startswith("2 processes of the workload were still running after it exited") for n in notes), notes
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(pids)


def test_a_workload_that_leaves_nothing_running_gets_no_note(tmp_path: Path) -> None:
    w = launch.start(["sh", "-c", "sleep 0.2 & wait"])
    assert w.wait() == 0
    assert w.left_running() == []


def test_a_live_session_counts_what_the_workload_left_and_stops_nothing(tmp_path: Path) -> None:
    """The live view (its own session): a workload that ended by itself is not stopped at close,
    and what it left is counted (the launcher's stop() of an ended workload touches nothing)."""
    pid_file = tmp_path / "pid"
    w = launch.start(["sh", "-c", f'sleep 300 >/dev/null 2>&1 & echo "$!" > {pid_file}'], own_group=True,
                     capture_output=True)
    assert w.wait() == 0
    left = int(pid_file.read_text())
    try:
        assert w.stop() == 0
        assert _alive(left)
        assert w.left_running() == [left]
    finally:
        _kill_all([left])
    assert _wait_gone([left], 10.0) == []
    assert w.left_running() == []


def test_the_live_sessions_trace_counts_what_the_workload_left(tmp_path: Path, host_env: dict[str, str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``greentop run -o``: the session (its own process group) closes after the workload exited
    by itself; what it left is said once the view is gone, stored in the trace, and left running."""
    from greentop.session import LiveSession
    from greentop.sources import discover

    for key in ("GREENTOP_SYSFS_ROOT", "GREENTOP_NVML_LIB"):
        monkeypatch.setenv(key, host_env[key])
    pid_file, out = tmp_path / "pid", tmp_path / "run.h5"
    session = LiveSession(["sh", "-c", f'sleep 300 >/dev/null 2>&1 & echo "$!" > {pid_file}'], discover().channels,
                          100.0, 10.0)
    assert session.start(out, 0.0)
    session.launch()
    assert session.workload is not None and session.workload.wait() == 0
    left = int(pid_file.read_text())
    try:
        assert session.count_left_running() == 1  # what the view shows beside the exit
        rec = session.recording
        assert rec is not None
        exit_code, running = session.close(rec, exit_logged=False)
        rec.finish(exit_code, interrupted=running)
        assert (exit_code, running) == (0, False)
        assert _alive(left), "the live view killed what the workload deliberately left running"
        assert session.left_running == 1
        assert f"greentop: 1 process of the workload still running after it exited (pid {left})" in capsys.readouterr().err
        assert load(out).meta["run"]["workload_left_running"] == 1
    finally:
        _kill_all([left])
