"""Damaged traces: every reader fails with one line or gives the right numbers, never a traceback,
a hang or a silently wrong summary (a fixed-seed corpus; ``benchmarks/bench_fuzz_traces.py`` runs
the full one)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from greentop.trace import TraceError, load
from tests.fuzz_traces import DATA, REPO, corpus, counts, run_corpus


def test_fixed_seed_corpus_has_no_traceback_hang_or_silently_wrong_output() -> None:
    outcomes = run_corpus(corpus(36, seed=0), timeout_s=30.0)
    bad = [f"{o.target} {o.variant.base} {o.mutation}: {o.outcome}: {o.why[-300:]}" for o in outcomes
           if o.outcome in ("traceback", "hang", "silently_wrong")]
    assert not bad, "\n".join(bad)
    # The corpus does damage: most variants must end in a clean error, not pass unnoticed.
    assert all(c["clean_error"] >= 12 for c in counts(outcomes).values())


def _flip_channel_header(tmp_path: Path) -> Path:
    """The SWMR hang of issue #11: one byte of a killed trace's channel header flipped."""
    path = tmp_path / "killed.h5"
    shutil.copyfile(DATA / "fakehost_killed.h5", path)
    with h5py.File(path, "r", swmr=True) as f:
        addr = h5py.h5o.get_info(f["channels/000"].id).addr
    data = bytearray(path.read_bytes())
    data[addr + 40] ^= 0xFF
    path.write_bytes(data)
    return path


def test_a_bad_checksum_in_a_killed_trace_fails_at_once(tmp_path: Path) -> None:
    path = _flip_channel_header(tmp_path)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "greentop", "summary", str(path)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("greentop: error:")
    assert time.monotonic() - t0 < 30  # HDF5's default SWMR retries took minutes


@pytest.mark.parametrize("field,value,named", [
    ("scale", float("nan"), "scale"), ("scale", -1.0, "scale"), ("wrap_raw", 7, "wrap_raw"),
])
def test_a_channel_value_out_of_range_is_an_error_naming_the_field(tmp_path: Path, field: str, value: float, named: str) -> None:
    path = tmp_path / "t.h5"
    shutil.copyfile(DATA / "fakehost_complete.h5", path)
    with h5py.File(path, "r+") as f:
        f["channels/000"].attrs[field] = value
    with pytest.raises(TraceError, match=f"channels/000 {named}"):
        load(path)


def test_an_absurd_event_time_is_refused_not_allocated(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    shutil.copyfile(DATA / "fakehost_complete.h5", path)
    with h5py.File(path, "r+") as f:
        t = f["phases/end_ns"][()]
        t[0] = 2**63 - 1
        del f["phases/end_ns"]
        f["phases"].create_dataset("end_ns", data=t)
    with pytest.raises(TraceError, match="phases/end_ns"):
        load(path)


def test_unknown_event_kinds_and_negative_carbon_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    shutil.copyfile(DATA / "fakehost_complete.h5", path)
    with h5py.File(path, "r+") as f:
        f["meta"].attrs["carbon_g_per_kwh"] = -5.0
    with pytest.raises(TraceError, match="carbon_g_per_kwh"):
        load(path)
    shutil.copyfile(DATA / "fakehost_killed.h5", path)  # phases rebuilt from the log: kinds matter
    kinds = None
    with h5py.File(DATA / "fakehost_complete.h5", "r") as f:
        kinds = [k.decode() for k in f["events/kind"][()]]
    assert "start" in kinds
    shutil.copyfile(DATA / "fakehost_complete.h5", path)
    with h5py.File(path, "r+") as f:
        del f["events/kind"]
        f["events"].create_dataset("kind", data=["strat" if k == "start" else k for k in kinds], dtype=h5py.string_dtype())
    with pytest.raises(TraceError, match="events/kind"):
        load(path)


def test_load_raises_only_trace_error_for_a_garbage_format_version(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    shutil.copyfile(DATA / "fakehost_complete.h5", path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "one"
    with pytest.raises(TraceError, match="format version"):
        load(path)


def test_a_read_that_never_returns_fails_with_one_line_at_the_time_limit() -> None:
    # A read stuck inside HDF5 (as 512 zeroed bytes in the strings' heap made it) stands in as a
    # sleep without the GIL, which is what HDF5 does then; the command must still answer.
    code = ("import sys, time\n"
            "import greentop.trace as t\n"
            "t._read_log = lambda *a: time.sleep(60)\n"
            "from greentop import cli\n"
            "sys.exit(cli.main(['summary', sys.argv[1]]))\n")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, str(DATA / "fakehost_complete.h5")], capture_output=True, text=True,
                          cwd=REPO, timeout=60, env={**__import__("os").environ, "GREENTOP_READ_TIMEOUT_S": "1"})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "took more than 1 s" in proc.stderr
    assert time.monotonic() - t0 < 30
