"""Record the two small fake-host traces the fuzz corpus mutates (run once; the results are committed).

``python -m tests.make_fuzz_traces OUT_DIR`` writes ``fakehost_complete.h5`` (a clean run with
nested phases, marks and counts) and ``fakehost_killed.h5`` (the same workload, its recorder
killed with SIGKILL mid-run: SWMR flag still set, the last samples in the tails, no /run or
/phases). Both are recorded by ``greentop record`` over the fake host of ``tests/fakes/host.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fakes.host import FakeHost
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent

WORKLOAD = """
import time, greentop
with greentop.phase("training", epoch=1):
    for step in range(4):
        with greentop.phase("step", step=step):
            time.sleep(0.15)
            greentop.count(samples=64)
    greentop.mark("checkpoint", step=4)
with greentop.phase("inference"):
    time.sleep(0.3)
    greentop.count(samples=32)
time.sleep(float(__import__("sys").argv[1]))
"""


def record(out: Path, env: dict[str, str], kill_after_s: float | None) -> None:
    cmd = [sys.executable, "-m", "greentop", "record", "-o", str(out), "--rate", "200", "--baseline", "0.5",
           "--", sys.executable, "-c", WORKLOAD, "5" if kill_after_s else "0.2"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True)
    if kill_after_s is None:
        proc.wait(timeout=60)
        return
    time.sleep(kill_after_s)
    os.killpg(proc.pid, signal.SIGKILL)  # the recorder and its workload at once
    proc.wait()


def main(out_dir: str) -> None:
    out = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        host = FakeHost(Path(tmp) / "host")
        host.add_cpus(2)
        host.add_rapl_zone("0", "package-0", PowerProfile(((0.1, 30.0), (0.1, 60.0))))
        host.add_rapl_zone("0:0", "dram", PowerProfile.constant(5.0))
        host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
        with host:
            env = os.environ | {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(Path(tmp) / "no-nvml.so"),
                                "PYTHONPATH": str(REPO)}
            record(out / "fakehost_complete.h5", env, None)
            record(out / "fakehost_killed.h5", env, 3.5)


if __name__ == "__main__":
    main(sys.argv[1])
