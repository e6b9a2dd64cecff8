"""Files greentop writes and the signals it gets (issue #11): no clobbering, no leaked readings,
no orphaned workload, the shell's exit codes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greentop.listener import remove_stale_dirs
from greentop.sources.cpu_estimate import model_from
from greentop.trace import load
from tests.fakes.nvml import CFLAGS, FAKE_NVML_SOURCE, _compiler
from tests.test_launch import _kill_all

REPO = Path(__file__).resolve().parent.parent
QUICK = "import time; time.sleep(0.1)"


def _record(env: dict[str, str], out: Path, *extra: str, code: str = QUICK) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", *extra, "--",
                           sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, timeout=120)


def test_an_existing_trace_is_kept_unless_force(tmp_path: Path, host_env: dict[str, str]) -> None:
    out = tmp_path / "run.h5"
    out.write_text("precious")
    proc = _record(host_env, out)
    assert proc.returncode == 2 and "exists" in proc.stderr and "--force" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert out.read_text() == "precious"
    proc = _record(host_env, out, "--force")
    assert proc.returncode == 0, proc.stderr
    assert load(out).complete


def test_record_never_writes_through_a_symlink(tmp_path: Path, host_env: dict[str, str]) -> None:
    target = tmp_path / "bashrc"
    target.write_text("keep me")
    link = tmp_path / "run.h5"
    link.symlink_to(target)
    proc = _record(host_env, link)
    assert proc.returncode == 2 and "symbolic link" in proc.stderr
    proc = _record(host_env, link, "--force")
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == "keep me"
    assert not link.is_symlink() and load(link).complete


def test_a_trace_of_root_only_rapl_readings_is_owner_only(tmp_path: Path, host_env: dict[str, str]) -> None:
    root = Path(host_env["GREENTOP_SYSFS_ROOT"])
    counters = list(root.rglob("energy_uj"))
    assert counters
    for c in counters:
        os.chmod(c.resolve(), 0o400)  # as the kernel has it since CVE-2020-8694
    out = tmp_path / "run.h5"
    old = os.umask(0o022)
    try:
        proc = _record(host_env, out)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_failed_summary_leaves_the_old_report_untouched(tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("last week's numbers")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    proc = subprocess.run([sys.executable, "-m", "greentop", "summary", str(bad), "-o", str(report)], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 2
    assert report.read_text() == "last week's numbers"
    assert [p.name for p in tmp_path.iterdir()] and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    good = REPO / "tests" / "data" / "fakehost_complete.h5"
    proc = subprocess.run([sys.executable, "-m", "greentop", "summary", str(good), "-o", str(report)], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "training" in report.read_text()


WAIT_FOREVER = "import os, sys, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n"


def _start(env: dict[str, str], out: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--",
                             sys.executable, "-c", WAIT_FOREVER], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True  # dead, waiting for its (new) parent to reap it
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_to_the_recorder_exits_143(tmp_path: Path, host_env: dict[str, str]) -> None:
    proc, workload = _start(host_env, tmp_path / "run.h5")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert _gone(workload, 10)


def test_the_workload_dies_with_a_killed_recorder(tmp_path: Path, host_env: dict[str, str]) -> None:
    proc, workload = _start(host_env, tmp_path / "run.h5")
    proc.kill()
    proc.communicate(timeout=30)
    try:
        assert _gone(workload, 10), "the workload ran on, orphaned"
    finally:
        _kill_all([workload])


def test_the_workloads_children_die_with_a_killed_recorder(tmp_path: Path, host_env: dict[str, str]) -> None:
    kids = tmp_path / "kids.pid"
    script = f"sleep 300 & a=$!; sleep 300 & echo $a $! > {kids}; wait"
    proc = subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(tmp_path / "run.h5"), "--no-baseline",
                             "--", "sh", "-c", script], env=host_env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (kids.exists() and len(kids.read_text().split()) == 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(p) for p in kids.read_text().split()]
        proc.kill()  # SIGKILL: greentop stops nothing itself
        proc.wait(timeout=30)
        assert all(_gone(pid, 15) for pid in pids), "a child of the workload ran on after greentop was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(pids)


def test_a_recorded_workload_keeps_its_exit_code_and_leaves_no_guard(tmp_path: Path, host_env: dict[str, str]) -> None:
    mark = tmp_path / "mark"
    proc = subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(tmp_path / "run.h5"), "--no-baseline",
                           "--", "sh", "-c", f'echo "$GREENTOP_TREE" > {mark}; exit 7'], env=host_env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 7, proc.stderr
    run_mark = mark.read_text().strip().split(":")[-1]
    assert run_mark, "the workload carries no mark of its run"
    left = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, run_mark)]
    assert all(_gone(pid, 10) for pid in left), "a guard outlived greentop record"


def _cmdline_has(proc_dir: Path, text: str) -> bool:
    try:
        return text.encode() in (proc_dir / "cmdline").read_bytes()
    except OSError:
        return False


def test_stale_socket_folders_are_removed_live_ones_kept(tmp_path: Path) -> None:
    stale, live, other = tmp_path / "greentop-abc", tmp_path / "greentop-def", tmp_path / "greentop-keep"
    for d in (stale, live, other):
        d.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale / "ev"))
    dead.close()  # the socket file stays, nobody listens: a recorder killed with SIGKILL
    alive = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    alive.bind(str(live / "ev"))
    (other / "notes.txt").write_text("not a socket folder")
    try:
        assert remove_stale_dirs([str(tmp_path)]) == [str(stale)]
    finally:
        alive.close()
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.parametrize("value", ["nan,nan", "10,inf", "-inf,5"])
def test_a_non_finite_cpu_model_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GREENTOP_CPU_MODEL", value)
    with pytest.raises(ValueError, match="GREENTOP_CPU_MODEL"):
        model_from(None, None, 4)


def test_a_cpu_model_of_nan_is_one_line_and_exit_2(host_env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "greentop", "sample", "-d", "0.2", "--estimate"], capture_output=True, text=True,
                          cwd=REPO, env=host_env | {"GREENTOP_CPU_MODEL": "nan,nan"})
    assert proc.returncode == 2 and "GREENTOP_CPU_MODEL" in proc.stderr and proc.stderr.count("\n") == 1


def test_an_nvml_library_without_soname_is_named_as_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which(_compiler()) is None:
        pytest.skip("no C compiler")
    lib = tmp_path / "nvml-no-soname.so"
    flags = [f for f in CFLAGS if not f.startswith("-Wl,-soname")]
    subprocess.run([_compiler(), *flags, "-o", str(lib), str(FAKE_NVML_SOURCE), "-lm", "-lpthread"], check=True)
    code = ("import json; from greentop.sources import nvml; r = nvml.discover(); "
            "print(json.dumps([p.to_dict() for p in r.problems] + r.notes))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=os.environ | {"GREENTOP_NVML_LIB": str(lib), "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "SONAME is missing" in proc.stdout and str(lib) in proc.stdout
    assert "libnvidia-ml.so.1 not found" not in proc.stdout
