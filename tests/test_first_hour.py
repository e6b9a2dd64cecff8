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


@pytest.mark.parametrize("command", ["sample", "record", "export", "run"])
def test_slow_rate_is_bounded_by_what_its_sources_can_use(command: str) -> None:
    out = greentop(command, "--slow-rate", "100000")
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
    header = next(ln for ln in text.splitlines() if ln.lstrip().startswith("phase "))
    assert "total" not in header and "energy J" in header
    # The machine-total line (what --cpu-total chose) is the only mention of a total.
    assert [ln for ln in text.splitlines() if "total" in ln and "machine total" not in ln and "--cpu-total" not in ln] == []
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


# ---- the live view and replay --------------------------------------------------------------------


def test_timeline_labels_never_run_into_each_other() -> None:
    from greentop.tui.timeline import Bar, bar_label, draw_row

    # "warmup" squeezed into 5 cells right before "train": the old drawing read "warmutrain".
    bars = [Bar(0, 0, 5, "warmup", False), Bar(0, 5, 14, "train", True), Bar(0, 13, 20, "eval", False)]
    chars, style = draw_row(bars, 20)
    text = "".join(chars)
    assert "warmutrain" not in text and "evaw" not in text
    words = text.split()
    assert words == ["war…", "train", "*", "eval"]
    assert style[:5] != style[5:6] * 5  # the bars' colours still tell them apart
    assert bar_label("inference", False, 2) == ""  # no room: colour only, never a clipped word glued on
    assert bar_label("train", True, 7) == "train *"


def _live(n_channels: int, **kwargs: object) -> tuple[object, object]:
    from tests.test_tui_live import ScriptedSampler, counter
    from greentop.tui.app import LiveApp

    chans = [counter(f"rapl:{i}", f"gpu-{i}") for i in range(n_channels)]
    sampler = ScriptedSampler(chans, {c.name: 10.0 for c in chans})
    return LiveApp(sampler, chans, timers=False, **kwargs), sampler  # type: ignore[arg-type]


@pytest.mark.parametrize("n_channels, charts", [(1, ["gpu-0"]), (2, ["gpu-0", "gpu-1", "total"])])
def test_total_chart_only_with_more_than_one_domain(n_channels: int, charts: list[str]) -> None:
    import asyncio

    app, _ = _live(n_channels)

    async def go() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            from tests.test_tui_live import step

            step(app, 20)
            await pilot.pause()
            assert [c.title.split()[0] for c in app._charts] == charts
            assert all(c.append_only for c in app._charts)  # live charts scroll by shifting cells
            assert app._timeline.size.width > 0  # the timeline follows the last chart

    asyncio.run(go())


def test_live_view_says_finished_press_q_and_explains_the_rates() -> None:
    import asyncio

    from greentop.tui.app import HELP_TEXT
    from tests.test_tui_live import FakeChild, step

    child = FakeChild()
    app, _ = _live(1, child=child)

    async def go() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            step(app, 20)
            child.rc = 0
            step(app, 1)
            app._update_health()
            step(app, 1)
            await pilot.pause()
            assert "finished, press q" in app._texts["#workload"]
            assert app._health_line.startswith("[b]sampler[/b] fast ")

    asyncio.run(go())
    assert "each lane got / asked for" in HELP_TEXT.replace("\n", " ")


def test_long_output_lines_wrap_instead_of_being_cut() -> None:
    import asyncio
    import queue

    from greentop.tui.app import wrap_output
    from tests.test_tui_live import FakeChild, step

    assert wrap_output(["a" * 50], 20) == ["a" * 20, "  " + "a" * 18, "  " + "a" * 12]
    q: queue.SimpleQueue[str] = queue.SimpleQueue()
    app, _ = _live(1, child=FakeChild(), output=q)
    last = "done: smallcnn training 17244 samples " + "x" * 150 + " END-OF-LINE"

    async def go() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            step(app, 2)
            await pilot.pause()
            for i in range(10):
                q.put(f"epoch {i}")
            q.put(last)
            step(app, 2)
            await pilot.pause()
            log = app.query_one("#output")
            width = log.scrollable_content_region.width
            assert all(len(line) <= width for line in log.lines)
            assert log.lines[-1].endswith("END-OF-LINE")
            assert log.scroll_offset.y + log.scrollable_content_region.height >= log.line_count  # bottom in view

    asyncio.run(go())


def test_d_shows_the_devices_in_the_view() -> None:
    import asyncio

    from greentop.sources import SourceResult
    from greentop.sources._common import Problem
    from greentop.tui.app import DevicesScreen
    from tests.test_tui_live import step

    found = SourceResult(problems=[Problem("rapl-sysfs", "/sys/x/energy_uj", "permission denied", "sudo chmod o+r /sys/x/energy_uj")])
    app, _ = _live(2, found=found)

    async def go() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            step(app, 2)
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, DevicesScreen)
            text = str(app.screen.query_one("#devices").render())
            assert "rapl:0" in text and "rapl:1" in text and "fix: sudo chmod o+r" in text
            await pilot.press("x")
            await pilot.pause()
            assert not isinstance(app.screen, DevicesScreen)

    asyncio.run(go())


@pytest.mark.parametrize("which", ["live", "replay"])
@pytest.mark.parametrize("width", [80, 160])
def test_help_text_fits_its_overlay(which: str, width: int) -> None:
    import asyncio

    from rich.text import Text
    from textual.widgets import Static

    if which == "live":
        app, _ = _live(2)
        text = __import__("greentop.tui.app", fromlist=["HELP_TEXT"]).HELP_TEXT
    else:
        from greentop.tui.replay import HELP_TEXT as text, ReplayApp, ReplayModel

        model = ReplayModel(_copy_h200())
        app = ReplayApp(model, background_summary=False)
    longest = max(len(Text.from_markup(line).plain) for line in text.splitlines())

    async def go() -> None:
        async with app.run_test(size=(width, 24)) as pilot:  # 80x24: the smallest the view allows
            await pilot.press("question_mark")
            await pilot.pause()
            help_static = app.screen.query_one("#help", Static)
            assert help_static.content_region.width >= longest  # no line wraps into the key column
            assert help_static.region.y >= 0 and help_static.region.bottom <= 24  # nothing cut off

    asyncio.run(go())


def _copy_h200() -> Path:
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp())
    shutil.copy(H200, d / "run.h5")
    return d / "run.h5"


def test_replay_without_a_terminal_exits_2_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"} | {"PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "greentop", "replay", str(_copy_h200())], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "needs a terminal" in out.stderr


def test_replay_e_exports_the_selected_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from greentop.tui.replay import ReplayApp, ReplayModel

    monkeypatch.setenv("GREENTOP_OUTPUT_DIR", str(tmp_path))
    model = ReplayModel(_copy_h200())
    model.summarise()
    app = ReplayApp(model, background_summary=False)

    async def go() -> None:
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            while app.cursor_key() is None or app._rows[app.cursor_key()].name != "training":
                await pilot.press("down")
            await pilot.press("e")
            await pilot.pause()

    asyncio.run(go())
    (path,) = app.exported
    assert path.parent == tmp_path.resolve()
    text = path.read_text()
    assert "training" in text and "· epoch  epoch=0" in text  # the phase and the phases inside it
    assert "inference" not in text and "| run |" not in text


def test_replay_compare_at_160_columns_keeps_headers_with_their_values() -> None:
    import asyncio

    from textual.widgets import DataTable

    from greentop.tui.replay import ReplayApp, ReplayModel

    model = ReplayModel(_copy_h200())
    model.summarise()
    app = ReplayApp(model, background_summary=False)

    async def go() -> None:
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            await pilot.press("down", "down", "c", "down", "c")
            await pilot.pause()
            assert len(app.compare) == 2
            assert not app.query_one("#phases", DataTable).display
            a = app.query_one("#detail-a")
            header = next(line for line in app.detail_text()[0].splitlines() if line.startswith("domain"))
            assert a.content_region.width >= len(header)  # "avg W  peak W" stays on the header's line
            await pilot.press("escape")
            await pilot.pause()
            assert app.query_one("#phases", DataTable).display

    asyncio.run(go())


def test_a_scrolling_chart_shifts_its_cells_and_draws_what_a_full_redraw_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from greentop.tui import chart as chart_mod
    from greentop.tui.chart import PowerChart

    drawn: list[int] = []
    real = chart_mod.braille_codes

    def counting(mins: object, maxs: object, *args: object) -> object:
        drawn.append(len(mins))  # type: ignore[arg-type]
        return real(mins, maxs, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(chart_mod, "braille_codes", counting)
    rng = np.random.default_rng(7)
    t = np.arange(30_000, dtype=np.int64) * 10_000_000 + 123  # the live model's 10 ms grid
    p = rng.uniform(10.0, 90.0, t.size)
    p[::2311] = 400.0  # spikes: the scale changes now and then, and the shift must redraw all
    p[5000:5300] = np.nan  # a gap
    live = PowerChart()
    live.append_only = True
    window_ns = 1_875_000_000  # the narrowest live window
    frames = 0
    for end in range(400, 30_000, 5):  # 50 ms of data per frame, as at 20 fps
        now = int(t[end - 1]) + 4_000_000
        live.set_data(t[:end], p[:end], now - window_ns, now)
        got = live._plot_lines(76, 7)
        fresh = PowerChart()
        fresh.append_only = True  # same snapping, no earlier frame: everything drawn
        fresh.set_data(t[:end], p[:end], now - window_ns, now)
        assert got == fresh._plot_lines(76, 7), end
        assert live.view_ns == fresh.view_ns
        frames += 1
    # Both charts' draws were counted: the fresh ones draw 152 columns each; the scrolling one
    # drew a few cells most frames.
    scrolling = drawn[0::2]
    assert sum(scrolling) < 0.25 * 152 * frames
