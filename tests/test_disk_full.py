"""A recording into a file system that fills up (issue #11): said at once, no crash, exit code 2,
and a trace that reads correctly up to the last write that succeeded. Needs a small tmpfs (root
and a kernel that lets this machine mount one); skipped elsewhere."""

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
WORKLOAD = "import time\nfor i in range(24):\n    time.sleep(0.25)\n"  # 6 s


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


def test_a_disk_that_fills_up_mid_run_ends_cleanly_with_a_readable_trace(small_fs: Path, host_env: dict[str, str]) -> None:
    out = small_fs / "run.h5"
    proc = subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--",
                             sys.executable, "-c", WORKLOAD], env=host_env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # a few flushes reach the disk first
    _fill(small_fs)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err  # not 139: HDF5's shutdown with a file it cannot flush crashed
    assert "No space left on device" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    (small_fs / "filler").unlink()
    summary = subprocess.run([sys.executable, "-m", "greentop", "summary", str(out), "--format", "json"], capture_output=True,
                             text=True, cwd=REPO, timeout=60)
    assert summary.returncode == 0, summary.stderr
    doc = json.loads(summary.stdout)
    run_s = (doc["run_end_ns"] - doc["run_start_ns"]) / 1e9
    assert 1.5 < run_s < 8.0  # the samples that reached the disk; never-written rows are not timestamps


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
