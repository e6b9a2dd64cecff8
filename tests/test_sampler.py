"""The compiled sampler: rings, lanes, overruns, read errors, on plain files."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from greentop.channel import Channel, Lane, Quantity, Reader, ReaderKind
from greentop.sampler import Sampler, SamplerError


def _file_channel(path: Path, name: str = "c", lane: Lane = Lane.FAST) -> Channel:
    return Channel(name, "test", "d", Quantity.ENERGY, "uJ", 1e-6, Reader(ReaderKind.FILE_DECIMAL, path=str(path)), lane=lane)


def _run(sampler: Sampler, seconds: float) -> None:
    with sampler:
        time.sleep(seconds)


def test_samples_carry_value_and_increasing_monotonic_timestamps(tmp_path: Path) -> None:
    f = tmp_path / "energy_uj"
    f.write_text("123456789\n")
    before = time.monotonic_ns()
    s = Sampler([_file_channel(f)], rate_hz=500)
    _run(s, 0.3)
    after = time.monotonic_ns()
    got = s.drain()["c"]
    assert got.t_ns.size > 10
    assert np.all(got.raw == 123456789)
    assert np.all(np.diff(got.t_ns) > 0)
    assert before <= got.t_ns[0] and got.t_ns[-1] <= after  # same clock as time.monotonic_ns


def test_value_changes_are_seen_because_files_are_reread_in_place(tmp_path: Path) -> None:
    f = tmp_path / "energy_uj"
    f.write_text("1\n")
    s = Sampler([_file_channel(f)], rate_hz=1000).start()
    try:
        time.sleep(0.05)
        with open(f, "r+") as fh:  # in place, like sysfs: the sampler keeps its fd
            fh.write("22\n")
        time.sleep(0.05)
    finally:
        s.stop()
    raw = s.drain()["c"].raw
    assert raw[0] == 1 and raw[-1] == 22


def test_msr_reader_masks_the_register_at_its_offset(tmp_path: Path) -> None:
    f = tmp_path / "msr"
    reg = 0x611
    with open(f, "wb") as fh:
        fh.seek(reg)
        fh.write(struct.pack("<Q", 0xABCD_0000_1234_5678))
    ch = Channel("m", "test", "d", Quantity.ENERGY, "u", 1.0, Reader(ReaderKind.MSR, path=str(f), register=reg, mask=0xFFFF_FFFF))
    s = Sampler([ch], rate_hz=200)
    _run(s, 0.1)
    assert set(s.drain()["m"].raw.tolist()) == {0x1234_5678}


def test_full_ring_counts_overruns_and_keeps_every_read_accounted(tmp_path: Path) -> None:
    f = tmp_path / "e"
    f.write_text("5\n")
    s = Sampler([_file_channel(f)], rate_hz=1000, buffer_s=0.001)  # ring of 64 samples
    _run(s, 0.3)
    h = s.health().channels["c"]
    drained = s.drain()["c"].t_ns.size
    assert drained == 64
    assert h.overruns > 0
    assert h.reads == drained + h.overruns + h.errors


def test_unreadable_content_is_a_counted_read_error_not_a_sample(tmp_path: Path) -> None:
    f = tmp_path / "e"
    f.write_text("garbage\n")
    s = Sampler([_file_channel(f)], rate_hz=500)
    _run(s, 0.1)
    h = s.health().channels["c"]
    assert s.drain()["c"].t_ns.size == 0
    assert h.errors == h.reads > 0
    assert h.last_error == "no number in the file"


def test_slow_lane_runs_at_its_own_rate(tmp_path: Path) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.write_text("1\n")
    slow.write_text("2\n")
    s = Sampler([_file_channel(fast, "fast"), _file_channel(slow, "slow", Lane.SLOW)], rate_hz=1000, slow_rate_hz=20)
    _run(s, 0.5)
    got = s.drain()
    n_fast, n_slow = got["fast"].t_ns.size, got["slow"].t_ns.size
    assert 3 <= n_slow <= 12  # 20 Hz for 0.5 s
    assert n_fast > 10 * n_slow
    assert set(s.health().lanes) == {"fast", "slow"}


def test_drain_returns_each_sample_once(tmp_path: Path) -> None:
    f = tmp_path / "e"
    f.write_text("7\n")
    s = Sampler([_file_channel(f)], rate_hz=1000).start()
    parts = []
    try:
        for _ in range(5):
            time.sleep(0.03)
            parts.append(s.drain()["c"].t_ns)
    finally:
        s.stop()
    parts.append(s.drain()["c"].t_ns)
    t = np.concatenate(parts)
    assert np.all(np.diff(t) > 0)
    assert t.size == s.health().channels["c"].reads


def test_missing_file_fails_to_start_with_the_path(tmp_path: Path) -> None:
    s = Sampler([_file_channel(tmp_path / "nope")])
    with pytest.raises(SamplerError, match="nope"):
        s.start()
    assert not s._fds  # nothing left open


@pytest.mark.parametrize("rate", [0, -5, 1e9])
def test_bad_rate_is_rejected(tmp_path: Path, rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        Sampler([_file_channel(tmp_path / "x")], rate_hz=rate)


def test_fds_are_closed_after_stop(tmp_path: Path) -> None:
    f = tmp_path / "e"
    f.write_text("1\n")
    before = len(os.listdir("/proc/self/fd"))
    _run(Sampler([_file_channel(f)] + [_file_channel(f, f"c{i}") for i in range(5)]), 0.05)
    assert len(os.listdir("/proc/self/fd")) == before
