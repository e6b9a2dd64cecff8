"""``--user``: greentop keeps root for the sensors, the workload runs as another user and its phase
events reach the trace (issue #11, "Hardening"). The real thing runs where the tests are root, with
the existing unprivileged user ``nobody`` (no user is created); the refusals and the socket's
ownership logic are tested everywhere."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from greentop import listener as listener_mod
from greentop.listener import EventListener, remove_stale_dirs
from greentop.run_as import RunAs, RunAsError, check_privilege, resolve, user_switcher, workload_notes

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"  # the venv's interpreter may live where another user cannot reach (/root)

# What the workload reports about itself, then one phase with a mark.
WORKLOAD = """
import json, os, stat, sys, greentop
folder = os.path.dirname(os.environ["GREENTOP_EVENTS"])
st = os.stat(folder)
print(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
                  "home": os.environ.get("HOME"), "user": os.environ.get("USER"), "logname": os.environ.get("LOGNAME"),
                  "folder_uid": st.st_uid, "folder_mode": stat.S_IMODE(st.st_mode)}), flush=True)
with greentop.phase("training"):
    greentop.mark("step")
"""


def _nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' here")


def _need_root_and_a_python_for_nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("running a workload as another user needs root")
    nobody = _nobody()
    probe = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", SYSTEM_PYTHON,
                            "-c", "import greentop.phases"], env=os.environ | {"PYTHONPATH": str(REPO)}, cwd="/",
                           capture_output=True) if shutil.which("setpriv") and os.path.exists(SYSTEM_PYTHON) else None
    if probe is None or probe.returncode != 0:
        pytest.skip(f"no interpreter that user nobody can run with greentop importable ({SYSTEM_PYTHON})")
    return nobody


def _record(tmp_path: Path, host_env: dict[str, str], *argv: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "run.h5"
    proc = subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", *argv],
                          env=host_env | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True, cwd="/", timeout=120)
    return proc, out


def _summary(out: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", "json"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_record_user_runs_the_workload_as_that_user_and_its_phases_reach_the_trace(tmp_path: Path,
                                                                                   host_env: dict[str, str]) -> None:
    nobody = _need_root_and_a_python_for_nobody()
    proc, out = _record(tmp_path, host_env, "--user", "nobody", "--", SYSTEM_PYTHON, "-c", WORKLOAD)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[0])
    assert seen["uid"] == seen["euid"] == nobody.pw_uid and seen["gid"] == nobody.pw_gid
    assert seen["groups"] == sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))  # not root's groups
    assert seen["home"] == nobody.pw_dir and seen["user"] == seen["logname"] == "nobody"
    assert seen["folder_uid"] == nobody.pw_uid and seen["folder_mode"] == 0o700  # that user's, nobody else's
    assert "cannot reach the recorder" not in proc.stderr
    doc = _summary(out)
    phases = [r for r in doc["rows"] if r["kind"] == "phase"]  # type: ignore[index,union-attr]
    assert [p["name"] for p in phases] == ["training"]
    meta = doc["meta"]
    assert meta["workload_user"] == "nobody" and meta["workload_uid"] == nobody.pw_uid and meta["recorder_uid"] == 0  # type: ignore[index]
    assert any("ran as user nobody" in n for n in doc["notes"])  # type: ignore[union-attr]
    assert out.stat().st_uid == 0  # the trace stays greentop's (its mode rule: test_files_and_signals)


def test_record_user_by_uid_is_the_same_user(tmp_path: Path, host_env: dict[str, str]) -> None:
    nobody = _need_root_and_a_python_for_nobody()
    proc, _ = _record(tmp_path, host_env, "--user", str(nobody.pw_uid), "--", SYSTEM_PYTHON, "-c",
                      "import os; print(os.getuid(), os.environ['USER'])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(nobody.pw_uid), "nobody"]


def test_a_workload_that_switches_user_by_itself_is_named_at_the_start_and_in_the_summary(
        tmp_path: Path, host_env: dict[str, str]) -> None:
    nobody = _need_root_and_a_python_for_nobody()
    code = "import greentop\nwith greentop.phase('training'):\n    pass\n"
    proc, out = _record(tmp_path, host_env, "--", "setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                        "--clear-groups", SYSTEM_PYTHON, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "starts through setpriv" in proc.stderr and "--user NAME" in proc.stderr  # at the start, before the run
    assert proc.stderr.count("phase events cannot reach the recorder") == 1  # the workload's own line
    doc = _summary(out)
    assert not [r for r in doc["rows"] if r["kind"] == "phase"]  # type: ignore[index,union-attr]
    assert any("no phase event was received" in n and "setpriv" in n for n in doc["notes"])  # type: ignore[union-attr]


def test_run_user_starts_the_live_workload_as_that_user(tmp_path: Path, host_env: dict[str, str]) -> None:
    nobody = _need_root_and_a_python_for_nobody()
    out = tmp_path / "live.h5"
    # Not a terminal: ``greentop run`` records as ``record`` would, through the same options.
    proc = subprocess.run([sys.executable, "-m", "greentop", "run", "-o", str(out), "--no-baseline", "--user", "nobody", "--",
                           SYSTEM_PYTHON, "-c", WORKLOAD], env=host_env | {"PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, cwd="/", timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[0])["uid"] == nobody.pw_uid
    assert [r["name"] for r in _summary(out)["rows"] if r["kind"] == "phase"] == ["training"]  # type: ignore[index,union-attr]


def test_the_live_session_launches_as_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live view's session hands --user to the launcher and to its listener."""
    from greentop import session as session_mod

    seen: dict[str, object] = {}

    def fake_start(cmd: list[str], env: dict[str, str], **kw: object) -> object:
        seen.update(kw)
        raise OSError("stop here")

    monkeypatch.setattr(session_mod.launch, "start", fake_start)
    who = RunAs("someone", 4242, 4343, (4343,), "/home/someone")
    s = session_mod.LiveSession(["true"], [], 10.0, 10.0, run_as=who)
    assert s.listener is not None and s.listener.owner == (4242, 4343)
    monkeypatch.setattr(s.listener, "env", lambda: {})  # not started: no socket needed here
    with pytest.raises(OSError):
        s.launch()
    assert seen["run_as"] is who


@pytest.mark.parametrize("command", ["record", "run"])
def test_an_unknown_user_is_one_line_and_exit_2(tmp_path: Path, host_env: dict[str, str], command: str) -> None:
    argv = ["-o", str(tmp_path / "run.h5"), "--user", "no-such-user-greentop", "--", "true"]
    proc = subprocess.run([sys.executable, "-m", "greentop", command, *argv], env=host_env, capture_output=True, text=True,
                          cwd=REPO, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr == "greentop: error: --user: unknown user 'no-such-user-greentop'\n"
    assert not (tmp_path / "run.h5").exists()


def test_user_without_root_is_one_line_and_exit_2(tmp_path: Path, host_env: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from greentop import cli, run_as

    nobody = _nobody()
    monkeypatch.setattr(run_as.os, "geteuid", lambda: 1000 if nobody.pw_uid != 1000 else 1001)
    code = cli.main(["record", "-o", str(tmp_path / "run.h5"), "--user", "nobody", "--", "true"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--user nobody needs greentop to run as root" in err
    assert not (tmp_path / "run.h5").exists()


def test_privilege_check() -> None:
    who = RunAs("someone", 4242, 4343, (4343,), "/home/someone")
    check_privilege(who, euid=0)
    check_privilege(who, euid=4242)  # one's own user: nothing to switch
    with pytest.raises(RunAsError, match="needs greentop to run as root"):
        check_privilege(who, euid=1000)


def test_resolve_by_name_and_uid() -> None:
    root = resolve("root")
    assert (root.uid, root.gid, root.name) == (0, 0, "root") and 0 in root.groups
    assert resolve("0") == root
    assert root.env() == {"HOME": pwd.getpwuid(0).pw_dir, "USER": "root", "LOGNAME": "root"}
    assert root.popen_kwargs() == {"user": 0, "group": 0, "extra_groups": list(root.groups)}
    with pytest.raises(RunAsError, match="unknown user"):
        resolve("4294967295000")


def test_the_socket_is_given_to_the_user_socket_first_then_its_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []
    monkeypatch.setattr(listener_mod.os, "chown", lambda p, u, g, follow_symlinks=True: calls.append((p, u, g)))
    lst = EventListener(owner=(4242, 4343))
    lst.start()
    try:
        folder = os.path.dirname(lst.path)
        # The socket while the folder still shuts everyone out, then the folder; modes as before.
        assert calls == [(lst.path, 4242, 4343), (folder, 4242, 4343)]
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700 and stat.S_IMODE(os.stat(lst.path).st_mode) == 0o600
    finally:
        lst.stop()
    calls.clear()
    plain = EventListener()
    plain.start()
    plain.stop()
    assert calls == []  # without --user, nothing is given away


def test_the_socket_admits_that_user_and_not_another(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a socket to another user needs root")
    nobody = _nobody()
    lst = EventListener(owner=(nobody.pw_uid, nobody.pw_gid))
    lst.start()
    try:
        folder = os.stat(os.path.dirname(lst.path))
        sock = os.stat(lst.path)
        assert (folder.st_uid, stat.S_IMODE(folder.st_mode)) == (nobody.pw_uid, 0o700)
        assert (sock.st_uid, stat.S_IMODE(sock.st_mode)) == (nobody.pw_uid, 0o600)
        probe = "import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ntry:\n    s.connect(sys.argv[1])\n" \
                "except PermissionError:\n    sys.exit(13)\n"
        if shutil.which("setpriv") and os.path.exists(SYSTEM_PYTHON):
            as_nobody = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                                        SYSTEM_PYTHON, "-c", probe, lst.path], cwd="/")
            other = 1 if nobody.pw_uid != 1 else 2  # daemon/bin: another unprivileged uid
            as_other = subprocess.run(["setpriv", f"--reuid={other}", f"--regid={other}", "--clear-groups",
                                       SYSTEM_PYTHON, "-c", probe, lst.path], cwd="/")
            assert as_nobody.returncode == 0 and as_other.returncode == 13
    finally:
        lst.stop()
    assert not os.path.exists(os.path.dirname(lst.path))  # removed although it was the user's


def test_root_removes_a_stale_folder_it_had_given_away(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = _nobody()
    stale = tmp_path / "greentop-given"
    stale.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale / "ev"))
    dead.close()
    os.chown(stale / "ev", nobody.pw_uid, nobody.pw_gid)
    os.chown(stale, nobody.pw_uid, nobody.pw_gid)
    assert remove_stale_dirs([str(tmp_path)]) == [str(stale)]


def test_user_switchers_and_notes() -> None:
    assert user_switcher(["/usr/bin/sudo", "-u", "alice", "python"]) == "sudo"
    assert user_switcher(["python", "train.py"]) == ""
    meta = {"workload_user": "root", "workload_uid": 0, "workload_gid": 0, "recorder_uid": 0, "workload_user_switcher": "sudo"}
    assert len(workload_notes(meta, 0)) == 1 and "no phase event was received" in workload_notes(meta, 0)[0]
    assert workload_notes(meta, 3) == []  # events arrived: the switch kept a user the socket admits
    assert workload_notes({}, 0) == []  # traces from before --user say nothing
    other = {"workload_user": "alice", "workload_uid": 1000, "workload_gid": 1000, "recorder_uid": 0}
    assert workload_notes(other, 0) == ["the workload ran as user alice (uid 1000, gid 1000); greentop as uid 0"]
