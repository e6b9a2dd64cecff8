"""The live view in a real terminal: tmux runs `greentop run -- CMD`; the screen shows charts and
the phase table, `q` after the workload ends leaves a summary and the workload's exit code."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.fakes.host import FakeHost
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent
TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")

WORKLOAD = """
import greentop, time
for epoch in range(3):
    with greentop.phase("training", epoch=epoch):
        time.sleep(0.6)
        greentop.count(samples=32)
print("workload finished", flush=True)
raise SystemExit(3)
"""


def tmux(*args: str) -> str:
    return subprocess.run([TMUX or "tmux", *args], capture_output=True, text=True, timeout=10).stdout  # type: ignore[list-item]


def wait_for(session: str, ok: Callable[[str], bool], timeout_s: float = 30.0) -> str:
    """The pane's text once ``ok`` holds for it (polled: a terminal has no event to wait on)."""
    end = time.monotonic() + timeout_s
    screen = ""
    while time.monotonic() < end:
        screen = tmux("capture-pane", "-p", "-t", session)
        if ok(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"screen never matched; last screen:\n{screen}")


def _now_w(screen: str) -> float | None:
    m = re.search(r"cpu-package-0\s+([\d.]+) W now", screen)
    return float(m.group(1)) if m else None


def test_live_view_in_a_real_terminal_shows_charts_phases_and_quits_cleanly(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(42.0))
    host.set_proc_stat(PowerProfile.constant(0.2), n_cpus=2)
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    status = tmp_path / "status"
    env = {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "none.so"), "PYTHONPATH": str(REPO),
           "TERM": "xterm-256color"}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command = (f"cd {shlex.quote(str(REPO))} && env {exports} {shlex.quote(sys.executable)} -m greentop run -- "
               f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}; echo \"exit=$?\" > {shlex.quote(str(status))}")
    session = f"greentop-test-{os.getpid()}"
    with host:
        tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "45", "sh", "-c", command + "; sleep 30")
        try:
            # The chart's title carries the scripted 42 W once the first half second has been drawn.
            # Polled until it does: under load the fake's counter writer lags its reader by tens
            # of ms, which moves a half-second reading by several per cent (seen at 39.6 W in CI).
            wait_for(session, lambda s: "training" in s and 40.0 <= (_now_w(s) or 0.0) <= 44.0)
            wait_for(session, lambda s: "exited 3" in s)
            tmux("send-keys", "-t", session, "q")
            final = wait_for(session, lambda s: status.exists() and "workload exited with 3" in s)
            assert "Traceback" not in final
            assert status.read_text().strip() == "exit=3"
        finally:
            tmux("kill-session", "-t", session)
