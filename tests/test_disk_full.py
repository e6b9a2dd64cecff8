"""A recording into a file system that fills up (issue #11): said at once, no crash, the workload
runs to its end and greentop exits with the workload's own exit code (a scheduler sees the job's
result), the failure said again at the end, and a trace that reads correctly up to the last write
that succeeded. Needs a small tmpfs (root and a kernel that lets this machine mount one); skipped
elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# 6 s, then a line that shows it ran to its end, and an exit code of its own.
WORKLOAD = "import sys, time\nfor i in range(24):\n    time.sleep(0.25)\nprint('workload done', flush=True)\nsys.exit(3)\n"
# The same with 200 marks a second: the trace then grows at every flush, so a write fails mid-run
# (without them the samples' tails are rewritten in place and the first write to fail is the last).
WORKLOAD_MARKS = ("import sys, time, greentop\nfor i in range(24):\n    for _ in range(50):\n        greentop.mark('tick')\n"
                  "    time.sleep(0.25)\nprint('workload done', flush=True)\nsys.exit(3)\n")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)


def _record_until_full(small_fs: Path, host_env: dict[str, str], workload: str) -> tuple[Path, str, list[str]]:
    """Record ``workload`` into ``small_fs``, fill it 2 s in; the trace, the workload's stdout and
    greentop's stderr lines. The workload ran to its end and greentop exited with its code (3)."""
    out = small_fs / "run.h5"
    proc = subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--",
                             sys.executable, "-c", workload], env=host_env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # a few flushes reach the disk first
    _fill(small_fs)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # the workload's: not 2 (the old code), not 139 (HDF5's shutdown crashed)
    assert "workload done" in stdout  # it was not stopped when the recording was
    assert "Traceback" not in err and "Exception ignored" not in err
    lines = err.splitlines()
    at_end = [line for line in lines if "workload exited with 3" in line and "recording stopped early" in line]
    assert len(at_end) == 1 and "No space left on device" in at_end[0], err  # said again at the end
    (small_fs / "filler").unlink()
    return out, stdout, lines


def _summary_json(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", "json"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)


def test_a_disk_that_fills_up_ends_cleanly_with_the_workloads_exit_code_and_a_readable_trace(
        small_fs: Path, host_env: dict[str, str]) -> None:
    out, _, _ = _record_until_full(small_fs, host_env, WORKLOAD)
    summary = _summary_json(out)
    assert summary.returncode == 0, summary.stderr
    doc = json.loads(summary.stdout)
    run_s = (doc["run_end_ns"] - doc["run_start_ns"]) / 1e9
    assert 1.5 < run_s < 8.0  # the samples that reached the disk; never-written rows are not timestamps
    # The trace says so itself (its user block): not "the recorder died".
    assert any("recording stopped early: writing the trace failed (No space left on device)" in n for n in doc["notes"])
    assert not any("recorder died" in n for n in doc["notes"])


def test_a_disk_that_fills_up_mid_run_is_said_at_once_and_the_trace_reads_up_to_its_last_flush(
        small_fs: Path, host_env: dict[str, str]) -> None:
    out, _, lines = _record_until_full(small_fs, host_env, WORKLOAD_MARKS)  # no h5py "Exception ignored" either
    at_once = [n for n, line in enumerate(lines) if "No space left on device" in line and "recording stopped;" in line]
    at_end = [n for n, line in enumerate(lines) if "recording stopped early" in line]
    assert len(at_once) == 1 and at_once[0] < at_end[0], lines  # at the failed flush, not only at the end
    summary = _summary_json(out)
    # Event rows sized before the failure but never written (strings pointing past the end of the
    # file) once made HDF5 refuse the whole log: "len not positive after adjustment for EOA".
    assert summary.returncode == 0, summary.stderr
    doc = json.loads(summary.stdout)
    assert 1.5 < (doc["run_end_ns"] - doc["run_start_ns"]) / 1e9 < 8.0
    from greentop.trace import load

    loaded = load(out, channels=())
    assert loaded.meta["recording_stopped_early"] == "No space left on device"
    marks = loaded.marks
    assert len(marks) >= 100  # 2 s of 200 marks a second reached the disk before it filled
    assert all(m.name == "tick" and m.t_ns > 0 for m in marks)


class _FullDiskWriter:
    """A trace writer whose every flush fails as a full disk makes it (the recording thread's view)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed_with: BaseException | None = None

    def append_samples(self, *a: object) -> None: ...
    def append_events(self, *a: object) -> None: ...
    def append_health(self, *a: object, **k: object) -> None: ...

    def flush(self, final: bool = False) -> None:
        raise OSError(28, "No space left on device")

    def close_after_failure(self, error: BaseException | None = None) -> None:
        self.closed_with = error


class _IdleSampler:
    def drain(self) -> dict[str, object]:
        return {}

    def health(self) -> object:
        from greentop.sampler import SamplerHealth

        return SamplerHealth(lanes={}, channels={})


def test_a_write_that_fails_mid_run_is_said_at_once_and_stops_the_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from greentop.recorder import FLUSH_S, _Pump

    writer = _FullDiskWriter(tmp_path / "run.h5")
    pump = _Pump(_IdleSampler(), None, writer, [])  # type: ignore[arg-type]
    pump.start()
    deadline = time.monotonic() + 10 * FLUSH_S + 5
    while pump.error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert isinstance(pump.error, OSError)
    err = capsys.readouterr().err  # while the run goes on, not at its end
    assert "No space left on device" in err and "recording stopped" in err and err.count("\n") == 1
    assert writer.closed_with is pump.error
    pump.stop()  # nothing more is written into a file given up


@pytest.mark.parametrize("ending", ["complete", "stopped early", "killed"])
def test_the_trace_carries_its_recording_status_in_its_user_block(tmp_path: Path, ending: str) -> None:
    """The one mark a trace can take once its disk is full: a line written in place, in bytes that
    are on the disk from the start (``close_after_failure`` writes it; it cannot run in-process here,
    as it marks the whole process as holding a failed file)."""
    import numpy as np

    from greentop.attribution import summarise
    from greentop.trace import STATUS_STOPPED_EARLY, TraceWriter, load, open_trace, recording_status
    from tests.test_trace import ENERGY

    path = tmp_path / "run.h5"
    w = TraceWriter(path, [ENERGY], {"host": "box"}, ["fast"])
    t = np.arange(1, 2001, dtype=np.int64) * 1_000_000
    w.append_samples(ENERGY.name, t, (t // 1_000_000) % 1000)  # under the channel's wrap
    w.flush()
    if ending == "complete":
        w.finalize({"exit_code": 0}, [], [], [])
    else:
        if ending == "stopped early":
            w._set_status(STATUS_STOPPED_EARLY + "No space left on device")
        w.abort()
    with open_trace(path) as f:
        status = recording_status(f)
    assert status == {"complete": "complete", "stopped early": "stopped early: No space left on device",
                      "killed": "recording"}[ending]
    trace = load(path)
    notes = summarise(trace, 100.0, "test").notes
    if ending == "stopped early":
        assert trace.meta["recording_stopped_early"] == "No space left on device"
        assert any("recording stopped early: writing the trace failed (No space left on device)" in n for n in notes)
    else:
        assert "recording_stopped_early" not in trace.meta
        assert any("recorder died" in n for n in notes) == (ending == "killed")
