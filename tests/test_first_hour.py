"""A newcomer's first hour (issue 13): the snags a first user met, each pinned by a test."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from greentop.attribution import RunSummary, summarise
from tests.fakes.host import FakeHost
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent


def greentop(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GREENTOP_")} | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "greentop", *args], env=base | (env or {}), capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.fixture
def estimate_only(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A host whose only channel is the CPU estimate (a VM): one channel, on the slow lane."""
    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.set_proc_stat(PowerProfile.constant(0.4), n_cpus=2)
    with host:
        yield {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so")}


# ---- greentop phase ----------------------------------------------------------------------------


def test_phase_command_outside_a_recording_is_a_silent_no_op() -> None:
    out = greentop("phase", "start", "prep")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_phase_command_does_not_import_the_cli() -> None:
    """Its cost lands inside the phases a shell script tags: it must not load numpy or the sampler."""
    code = ("import sys\nfrom greentop._entry import main\nrc = main(['phase', 'end', 'prep'])\n"
            "print(rc, sorted(m for m in ('numpy', 'greentop.cli', 'greentop._sampler') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "GREENTOP_EVENTS"} | {"PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "0 []"


def test_phase_command_bad_input_still_goes_through_the_parser() -> None:
    out = greentop("phase", "begin", "prep")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "invalid choice" in out.stderr


# ---- a workload that cannot start --------------------------------------------------------------


def test_command_not_found_exits_127(tmp_path: Path, estimate_only: dict[str, str]) -> None:
    out = greentop("record", "-o", str(tmp_path / "x.h5"), "--", "no-such-command-xyz", env=estimate_only)
    assert out.returncode == 127 and out.stderr.count("\n") == 1 and "command not found: no-such-command-xyz" in out.stderr
    assert not (tmp_path / "x.h5").exists()


def test_command_not_executable_exits_126(tmp_path: Path, estimate_only: dict[str, str]) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    out = greentop("record", "-o", str(tmp_path / "x.h5"), "--", str(script), env=estimate_only)
    assert out.returncode == 126 and out.stderr.count("\n") == 1 and "not executable" in out.stderr


# ---- argument messages name the right unit ------------------------------------------------------


@pytest.mark.parametrize("argv, unit", [
    (["summary", "x.h5", "--carbon-intensity", "-5"], "gCO2e/kWh"),
    (["sample", "--cpu-idle-w", "-1"], " W"),
    (["sample", "--rate", "0"], " Hz"),
    (["sample", "-d", "1e9"], " s "),
    (["sample", "--slow-rate", "100000"], " Hz"),
])
def test_each_argument_error_names_its_unit(argv: list[str], unit: str) -> None:
    out = greentop(*argv)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert unit in out.stderr
    assert "watts" not in out.stderr or "-w" in argv[1]


def test_slow_rate_is_bounded_by_what_its_sources_can_use() -> None:
    out = greentop("sample", "--slow-rate", "100000")
    assert out.returncode == 2 and "slow-lane rate must be in (0, 100] Hz" in out.stderr


# ---- sample and devices ------------------------------------------------------------------------


def test_sample_reports_each_lane_at_its_rate_singular(estimate_only: dict[str, str]) -> None:
    out = greentop("sample", "-d", "0.5", env=estimate_only)
    assert out.returncode == 0, out.stderr
    assert "Sampling 1 channel at 10 Hz for 0.5 s" in out.stderr
    assert "1000 Hz" not in out.stderr.splitlines()[0]


def test_update_period_has_one_meaning() -> None:
    from greentop.update_period import update_period_text

    # A sensor that changes at every read is limited by the reads: say so, not "updates every".
    assert update_period_text(0.021, 0.02) == "changes at every read (every 20.0 ms)"
    assert update_period_text(0.1, 0.1, estimated=True) == "computed at every read (every 100.0 ms)"
    assert update_period_text(0.1, 0.001) == "updates every 100.0 ms"
    assert update_period_text(None, 0.001) == "no change seen"


def test_devices_and_summary_describe_the_estimate_alike(tmp_path: Path, estimate_only: dict[str, str]) -> None:
    dev = greentop("devices", "--watch", "0.5", env=estimate_only)
    assert dev.returncode == 0, dev.stderr
    assert "computed at every read (every 20.0 ms)" in dev.stdout  # watched at 50 Hz
    trace = tmp_path / "run.h5"
    rec = greentop("record", "-o", str(trace), "--no-baseline", "--", "sleep", "0.6", env=estimate_only)
    assert rec.returncode == 0, rec.stderr
    summ = greentop("summary", str(trace))
    assert "computed at every read (every 100.0 ms)" in summ.stdout  # recorded at 10 Hz
    assert "updates every" not in summ.stdout


# ---- the summary a person reads ------------------------------------------------------------------

H200 = REPO / "tests" / "data" / "h200_resnet50.h5"
ONE_DOMAIN = REPO / "docs" / "results" / "dev-vm-cnn-cpu" / "points" / "smallcnn-bs64-fp32-32fc342c.h5"


def _summary_of(path: Path) -> RunSummary:
    from greentop.trace import load

    tr = load(path)
    return summarise(tr, 300.0, "test")


def test_compact_summary_folds_repeated_phases_with_mean_and_spread() -> None:
    import statistics

    from greentop.summary_compact import compact_table
    from greentop.summary_format import _num, format_summary
    from tests.test_attribution import build_trace

    s = summarise(build_trace(), 300.0, carbon_source="test")
    text = format_summary(s, "table")
    assert text == compact_table(s)
    epochs = [r for r in s.rows if r.name == "epoch"]
    assert len(epochs) == 2
    (line,) = [ln for ln in text.splitlines() if ln.lstrip().startswith("epoch")]
    cells = line.split()
    assert cells[1] == "2"
    assert _num(statistics.fmean(r.total.energy_j for r in epochs)) in cells
    assert _num(statistics.stdev(r.total.energy_j for r in epochs)) in cells
    assert "total J" in text  # two domains: the total adds something
    detail = format_summary(s, "table", detail=True)
    assert sum(ln.lstrip().startswith("epoch") for ln in detail.splitlines()) == 2


def test_compact_summary_has_no_total_with_one_domain() -> None:
    from greentop.summary_format import format_summary

    s = _summary_of(ONE_DOMAIN)
    assert len(s.domains) == 1
    text = format_summary(s, "table")
    assert "total" not in text and "energy J" in text
    run = next(ln for ln in text.splitlines() if ln.lstrip().startswith("run "))
    from greentop.summary_format import _num

    assert _num(s.row("run").total.energy_j) in run.split()  # the same number as --detail's
    assert "= total" in format_summary(s, "table", detail=True)


def test_summary_detail_flag(tmp_path: Path) -> None:
    compact = greentop("summary", str(ONE_DOMAIN))
    detail = greentop("summary", str(ONE_DOMAIN), "--detail")
    assert compact.returncode == detail.returncode == 0
    assert "= total" in detail.stdout and "= total" not in compact.stdout
    assert "--detail" in compact.stdout


def test_attributes_read_the_same_in_table_markdown_and_replay() -> None:
    from greentop.summary_format import format_summary
    from greentop.tui.replay import detail_lines
    from tests.test_attribution import build_trace

    s = summarise(build_trace(), 300.0, carbon_source="test")
    md = format_summary(s, "md")
    assert "· epoch  epoch=1" in md and "· epoch  epoch=2" in md
    assert "epoch  epoch=1" in format_summary(s, "table", detail=True)
    epoch = next(r for r in s.rows if r.name == "epoch")
    replay = "\n".join(detail_lines(epoch, s.run_start_ns))
    assert "epoch  epoch=1" in replay and "{" not in replay
    assert "J/sample" in replay and "J/samples" not in replay
    assert " J/sample" in md and "/samples" not in md


def test_compact_summary_of_the_h200_trace(snapshot: object) -> None:
    from greentop.summary_format import format_summary

    assert format_summary(_summary_of(H200), "table") == snapshot
