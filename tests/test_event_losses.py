"""Lost phase events are counted and shown, and the recorder's memory for them is bounded (issue #11)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greentop import listener as listener_mod
from greentop import phases
from greentop.listener import EventListener, parse_lost

REPO = Path(__file__).resolve().parent.parent


def test_a_client_counts_what_it_could_not_send_and_reports_it_once_it_can(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A "recorder" that reads nothing: its kernel queue fills, the client times out once, then
    # fails fast (degraded) and counts every event it loses.
    path = str(tmp_path / "ev")
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    hung.bind(path)
    monkeypatch.setenv(phases.ENV_VAR, path)
    monkeypatch.setattr(phases, "SEND_TIMEOUT_S", 0.05)
    phases._reset()
    before = phases.send_failures
    try:
        for i in range(300):
            phases.mark("m", i=i)
        failed = phases.send_failures - before
        assert failed > 0
        hung.setblocking(False)
        while True:  # the recorder catches up
            try:
                hung.recv(65536)
            except BlockingIOError:
                break
        phases.mark("after")  # gets through, and the loss report with it
        got = []
        while True:
            try:
                got.append(hung.recv(65536))
            except BlockingIOError:
                break
        reports = [r for r in map(parse_lost, got) if r is not None]
        assert reports == [(os.getpid(), failed)]
    finally:
        phases._reset()
        hung.close()


def _send(path: str, payload: bytes) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(payload, path)
    finally:
        s.close()


def _wait(cond: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not cond():  # type: ignore[operator]
        time.sleep(0.01)


def test_the_listener_refuses_oversized_events_and_bounds_what_it_holds_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_mod, "MAX_PENDING_BYTES", 4000)
    with EventListener() as lst:
        _send(lst.path, b"x" * 20000)  # over the client's 8 KiB cap: refused unread
        mark = json.dumps({"v": 1, "k": "mark", "t": time.monotonic_ns(), "p": os.getpid(), "n": "m", "a": {"pad": "y" * 900}}).encode()
        for _ in range(10):  # ~1 KB each, 4 KB held at most
            _send(lst.path, mark)
        _send(lst.path, json.dumps({"v": 1, "k": "lost", "t": 1, "p": 4242, "n": "lost", "val": 7}).encode())
        _wait(lambda: lst.oversized + lst.overflowed + len(lst._raw) >= 12)
        held = len(lst.drain())
        assert lst.oversized == 1 and lst.dropped == 1
        assert held <= 4 and lst.overflowed >= 10 - held - 1
        assert lst.client_lost in (0, 7)  # the report itself may have been the one over the bound
        assert lst.lost == lst.client_lost + lst.overflowed


def test_losses_reach_the_trace_and_the_summary(tmp_path: Path, host_env: dict[str, str]) -> None:
    code = ("import json, os, socket, time\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "p = os.environ['GREENTOP_EVENTS']\n"
            "s.sendto(b'x' * 20000, p)\n"  # refused: too big
            "s.sendto(json.dumps({'v': 1, 'k': 'lost', 't': time.monotonic_ns(), 'p': os.getpid(), 'n': 'lost', 'val': 5}).encode(), p)\n"
            "time.sleep(0.3)\n")
    out = tmp_path / "run.h5"
    proc = subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--",
                           sys.executable, "-c", code], env=host_env, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "events dropped 1" in proc.stderr and "events lost 5" in proc.stderr  # the summary printed after the run
    doc = json.loads(subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", "json"],
                                    capture_output=True, text=True, cwd=REPO, check=True).stdout)
    assert doc["health"]["events_lost"] == 5 and doc["health"]["events_dropped"] == 1
    assert doc["meta"]["run"]["events_lost_by_clients"] == 5 and doc["meta"]["run"]["events_oversized"] == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_a_workload_that_drops_privileges_is_told_its_events_are_lost(tmp_path: Path, host_env: dict[str, str]) -> None:
    code = "import greentop\nwith greentop.phase('training'):\n    greentop.mark('x')\n"
    env = host_env | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(tmp_path / "run.h5"), "--no-baseline", "--",
                           "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                          env=env, capture_output=True, text=True, cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("phase events cannot reach the recorder") == 1
    assert "another user" in proc.stderr
