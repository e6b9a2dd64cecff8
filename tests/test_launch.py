"""The one launcher (greentop.launch): how a workload is started and stopped, wherever it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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
    # A wide grace: the one failure seen (143, under heavy load, with 5 s) fits an interpreter
    # whose Ctrl-C shutdown outlasted the grace, so SIGTERM followed. The stop returns as soon as
    # the workload ends, so the margin costs nothing when all is well.
    rc = w.stop(grace_s=30.0)
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


SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _guards(mark: str) -> list[int]:
    """Live processes whose command line names ``mark``: the guard of that run."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if mark.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Those of ``pids`` still alive after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while any(_alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize("own_group", [False, True], ids=["record", "live-view"])
def test_the_workloads_whole_tree_dies_with_a_killed_launcher(tmp_path: Path, own_group: bool) -> None:
    """SIGKILL to greentop: the workload's children go too (a data-loader worker, one that moved to
    a session of its own, one that ignores SIGTERM), a process beside greentop in its own process
    group (``greentop record ... | tee``) does not."""
    kids, beside = tmp_path / "kids.pid", tmp_path / "beside.pid"
    tree_code = textwrap.dedent(f"""
        import subprocess, sys, time
        sleeper = {SLEEPER!r}
        stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"]
        kids = [subprocess.Popen(sleeper), subprocess.Popen(sleeper, start_new_session=True), subprocess.Popen(stubborn)]
        time.sleep(0.5)  # the stubborn one has set its handler
        open({str(kids)!r}, "w").write(" ".join(str(k.pid) for k in kids))
        time.sleep(120)
    """)
    launcher_code = textwrap.dedent(f"""
        import subprocess, sys, time
        from greentop import launch
        beside = subprocess.Popen({SLEEPER!r})
        open({str(beside)!r}, "w").write(str(beside.pid))
        w = launch.start([sys.executable, "-c", {tree_code!r}], own_group={own_group!r}, capture_output={own_group!r})
        time.sleep(120)
    """)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    # Its own session: its process group holds the launcher and the process beside it only.
    parent = subprocess.Popen([sys.executable, "-c", launcher_code], env=env, start_new_session=True)
    pids: list[int] = []
    try:
        pids = [int(p) for p in _wait_for_file(kids).split()]
        bystander = int(_wait_for_file(beside))
        pids.append(bystander)
        assert all(_alive(p) for p in pids)
        parent.kill()  # SIGKILL: the launcher gets no chance to stop anything
        parent.wait()
        assert _wait_gone(pids[:3], 15.0) == [], "a child of the workload ran on after greentop was killed"
        assert _alive(bystander), "a process outside the workload's tree was stopped"
    finally:
        if parent.poll() is None:
            parent.kill()
        _kill_all(pids)


def test_a_normal_end_lets_the_guard_go_and_keeps_the_exit_code(tmp_path: Path) -> None:
    mark_file, go = tmp_path / "mark", tmp_path / "go"
    code = textwrap.dedent(f"""
        import os, sys, time
        open({str(mark_file)!r}, "w").write(os.environ.get("GREENTOP_TREE", "none"))
        while not os.path.exists({str(go)!r}):
            time.sleep(0.02)
        sys.exit(7)
    """)
    w = launch.start([sys.executable, "-c", code])
    mark = _wait_for_file(mark_file).split(":")[-1]
    assert mark != "none", "the workload carries no mark of its run"
    guards = _guards(mark)
    assert guards, "no guard watches the workload"
    go.write_text("1")
    assert w.wait() == 7
    assert _wait_gone(guards, 10.0) == [], "the guard outlived a normal end"


def test_a_command_that_cannot_start_leaves_no_guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: list[int] = []
    real = launch.Guard

    def spy(*args: object, **kwargs: object) -> object:
        guard = real(*args, **kwargs)  # type: ignore[arg-type]
        assert guard.process is not None
        started.append(guard.process.pid)
        return guard

    monkeypatch.setattr(launch, "Guard", spy)
    with pytest.raises(OSError):
        launch.start([str(tmp_path / "no-such-program")])
    assert started, "no guard was started"
    assert _wait_gone(started, 10.0) == [], "the guard of a workload that never started stayed"


def test_a_tree_run_as_another_user_dies_with_a_killed_launcher() -> None:
    """``--user``: the guard stays greentop's (root) and stops the other user's tree too."""
    import shutil
    import tempfile

    from tests.test_run_as import SYSTEM_PYTHON, _need_root_and_a_python_for_nobody

    _need_root_and_a_python_for_nobody()
    shared = Path(tempfile.mkdtemp(prefix="greentop-guard-"))  # under /tmp: reachable by nobody
    shared.chmod(0o777)
    kids = shared / "kids.pid"
    tree_code = textwrap.dedent(f"""
        import os, subprocess, time
        sleeper = [{SYSTEM_PYTHON!r}, "-c", "import time; time.sleep(120)"]
        ks = [subprocess.Popen(sleeper), subprocess.Popen(sleeper, start_new_session=True)]
        open({str(kids)!r}, "w").write(" ".join(str(k.pid) for k in ks) + " " + str(os.getuid()))
        time.sleep(120)
    """)
    launcher_code = textwrap.dedent(f"""
        import time
        from greentop import launch, run_as
        launch.start([{SYSTEM_PYTHON!r}, "-c", {tree_code!r}], run_as=run_as.resolve("nobody"))
        time.sleep(120)
    """)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    parent = subprocess.Popen([sys.executable, "-c", launcher_code], env=env, start_new_session=True, cwd="/")
    pids: list[int] = []
    try:
        *found, uid = (int(p) for p in _wait_for_file(kids).split())
        pids = list(found)
        assert uid != 0 and all(_alive(p) for p in pids)
        parent.kill()
        parent.wait()
        assert _wait_gone(pids, 15.0) == [], "a child of a workload run as another user ran on after greentop was killed"
    finally:
        if parent.poll() is None:
            parent.kill()
        _kill_all(pids)
        shutil.rmtree(shared, ignore_errors=True)
