"""The replay view over the committed H200 ResNet-50 trace, driven through Pilot."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Awaitable, Callable

import numpy as np
import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable

from greentop import cli
from greentop.attribution import summarise
from greentop.trace import TraceError, load
from greentop.tui.chart import PowerChart
from greentop.tui.replay import TOTAL, ReplayApp, ReplayHelp, ReplayModel, detail_lines

DATA = Path(__file__).parent / "data" / "h200_resnet50.h5"
SIZE = (140, 50)


@pytest.fixture(scope="module")
def trace_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the committed trace (which has no overview: the first open builds one into the cache)."""
    p = tmp_path_factory.mktemp("replay") / "run.h5"
    shutil.copy(DATA, p)
    return p


@pytest.fixture(scope="module")
def model(trace_copy: Path) -> ReplayModel:
    m = ReplayModel(trace_copy)
    m.summarise()
    return m


def drive(app: ReplayApp, body: Callable[[Pilot], Awaitable[None]]) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await body(pilot)

    asyncio.run(go())


def table_rows(app: ReplayApp) -> list[list[str]]:
    t = app.query_one("#phases", DataTable)
    return [[str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]


async def move_to(pilot: Pilot, app: ReplayApp, name: str) -> None:
    """Put the phase list's cursor on the first row named ``name``."""
    names = [r[0].strip() for r in table_rows(app)]
    table = app.query_one("#phases", DataTable)
    table.move_cursor(row=names.index(name))
    await pilot.pause()


def test_charts_show_each_primary_domain_and_the_total(model: ReplayModel) -> None:
    app = ReplayApp(model)

    async def body(pilot: Pilot) -> None:
        titles = [c.title for c in app.query(PowerChart)]
        assert [t.split()[0] for t in titles] == ["gpu-0", "cpu", TOTAL]
        for chart in app.query(PowerChart):
            text = chart.render().plain
            assert any(ch in text for ch in "⡀⣀⠉⠒⣿"), "a plot was drawn"
            assert "5s" in text and "30s" in text  # seconds from the run start
        assert app.charts_drawn >= 1

    drive(app, body)


def test_phase_list_lists_training_and_its_epochs_indented(model: ReplayModel) -> None:
    app = ReplayApp(model)

    async def body(pilot: Pilot) -> None:
        names = [r[0] for r in table_rows(app)]
        assert "training" in names
        assert names.count("  epoch") == 3
        training = model.summary.row("training")  # type: ignore[union-attr]
        row = table_rows(app)[names.index("training")]
        assert row[3] == f"{training.total.energy_j:.1f}"
        assert row[4] == f"{training.total.average_w:.1f}"

    drive(app, body)


def test_the_phase_lists_figures_and_their_headers_are_right_aligned(model: ReplayModel) -> None:
    """Numbers of different widths (0.95 and 1234.5 J) read by magnitude only when their digits
    line up: every column but the name is right-aligned, before and after the summary."""
    app = ReplayApp(model)

    async def body(pilot: Pilot) -> None:
        table = app.query_one("#phases", DataTable)
        headers = [c.label for c in table.columns.values()]
        assert headers[0].justify != "right" and all(h.justify == "right" for h in headers[1:])
        assert app.summary_ready
        for i in range(table.row_count):
            row = table.get_row_at(i)
            assert not isinstance(row[0], Text) or row[0].justify != "right"
            assert all(isinstance(c, Text) and c.justify == "right" for c in row[1:]), row

    drive(app, body)


def test_enter_on_training_moves_the_window_to_it(model: ReplayModel) -> None:
    app = ReplayApp(model)
    training = next(p for p in model.trace.phases if p.name == "training")

    async def body(pilot: Pilot) -> None:
        assert app.window_ns == (model.start_ns, model.end_ns)
        await move_to(pilot, app, "training")
        await pilot.press("enter")
        await pilot.pause()
        t0, t1 = app.window_ns
        assert t0 < training.start_ns and training.end_ns < t1
        assert (t1 - t0) < 1.2 * (training.end_ns - training.start_ns)
        v0, v1 = app.query_one("#chart-0", PowerChart).view_ns
        assert abs(v0 - t0) < (t1 - t0) // 50 and abs(v1 - t1) < (t1 - t0) // 50

    drive(app, body)


def test_detail_pane_shows_the_summarys_gpu_energy_of_the_phase(trace_copy: Path, model: ReplayModel) -> None:
    # Independent figures: the whole trace in memory, as `greentop summary` gets them.
    reference = summarise(load(trace_copy), *model.carbon).row("training").domain("gpu-0")
    app = ReplayApp(model)

    async def body(pilot: Pilot) -> None:
        await move_to(pilot, app, "training")
        a, b = app.detail_text()
        assert a.splitlines()[0] == "training"
        gpu = next(line for line in a.splitlines() if line.startswith("gpu-0"))
        assert gpu.split()[1] == f"{reference.energy_j:.1f}"
        assert gpu.split()[2] == f"{reference.energy_uncertainty_j:.2f}"
        assert "J/sample" in a and "J/samples" not in a  # work was counted in this phase
        assert b == ""

    drive(app, body)


def test_c_on_two_phases_compares_them_side_by_side(model: ReplayModel) -> None:
    app = ReplayApp(model)

    async def body(pilot: Pilot) -> None:
        await move_to(pilot, app, "training")
        await pilot.press("c")
        await pilot.pause()
        assert "pinned: training" in app.detail_text()[0]
        await move_to(pilot, app, "inference")
        await pilot.press("c")
        await pilot.pause()
        a, b = app.detail_text()
        assert "training" in a.splitlines()[1] and "inference" in b.splitlines()[1]
        assert app.query_one("#detail-b").display
        inference = model.summary.row("inference").domain("gpu-0")  # type: ignore[union-attr]
        assert f"{inference.energy_j:.1f}" in b
        await pilot.press("escape")
        await pilot.pause()
        assert app.detail_text()[1] == "" and not app.query_one("#detail-b").display

    drive(app, body)


def test_zoom_scroll_home_end_change_the_window(model: ReplayModel) -> None:
    app = ReplayApp(model)
    full = model.end_ns - model.start_ns

    async def body(pilot: Pilot) -> None:
        await pilot.press("plus")
        t0, t1 = app.window_ns
        assert t1 - t0 == pytest.approx(full / 2, rel=1e-6)
        await pilot.press("right")
        u0, u1 = app.window_ns
        assert u0 - t0 == pytest.approx((t1 - t0) / 4, rel=1e-6) and u1 - u0 == t1 - t0
        await pilot.press("left")
        assert app.window_ns == (t0, t1)
        await pilot.press("home")
        assert app.window_ns[0] == model.start_ns
        await pilot.press("left")  # stays inside the run
        assert app.window_ns[0] == model.start_ns
        await pilot.press("end")
        assert app.window_ns[1] == model.end_ns
        await pilot.press("minus", "minus")
        assert app.window_ns == (model.start_ns, model.end_ns)  # never wider than the run
        for _ in range(20):
            await pilot.press("plus")
        assert app.window_ns[1] - app.window_ns[0] >= 200_000_000  # the zoom stops at 0.2 s

    drive(app, body)


def test_help_opens_and_q_quits(model: ReplayModel) -> None:
    app = ReplayApp(model)

    async def body(pilot: Pilot) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, ReplayHelp)
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ReplayHelp)
        await pilot.press("q")
        await pilot.pause()

    drive(app, body)
    assert app.return_code == 0


def test_a_row_highlight_arriving_while_the_app_closes_is_ignored(trace_copy: Path) -> None:
    """The phase list's last RowHighlighted can be handled after the list is gone (the app closing,
    seen once in CI as NoMatches '#phases' raised out of run_test): nothing to update then."""
    app = ReplayApp(ReplayModel(trace_copy))

    async def body(pilot: Pilot) -> None:
        for _ in range(400):
            if app.summary_ready:
                break
            await pilot.pause(0.05)
        assert app.summary_ready
        table = app.query_one("#phases", DataTable)
        await table.remove()
        app.on_data_table_row_highlighted(DataTable.RowHighlighted(table, 0, table.coordinate_to_cell_key((0, 0)).row_key))

    drive(app, body)


def test_summary_computed_in_the_background_fills_the_list(trace_copy: Path) -> None:
    app = ReplayApp(ReplayModel(trace_copy))

    async def body(pilot: Pilot) -> None:
        assert app.charts_drawn >= 1  # the first screen does not wait for the summary
        for _ in range(400):
            if app.summary_ready:
                break
            await pilot.pause(0.05)
        assert app.summary_ready
        assert any(r[0] == "(untagged)" for r in table_rows(app))

    drive(app, body)


def test_total_bins_sum_the_domains_means(model: ReplayModel) -> None:
    bins = model.bins(model.start_ns, model.end_ns, 200)
    gpu, cpu = (bins[c.name] for c in model.primary)
    total = bins[TOTAL]
    assert gpu.bin_ns == cpu.bin_ns == total.bin_ns
    common = np.intersect1d(gpu.t_ns, cpu.t_ns)
    i = np.searchsorted(total.t_ns, common)
    g = np.searchsorted(gpu.t_ns, common)
    c = np.searchsorted(cpu.t_ns, common)
    np.testing.assert_allclose(total.mean_w[i], gpu.mean_w[g] + cpu.mean_w[c], rtol=1e-6)
    assert total.t_ns.size <= 4 * 200 + 2


def test_detail_lines_give_energy_uncertainty_and_flags(model: ReplayModel) -> None:
    row = model.summary.row("run")  # type: ignore[union-attr]
    text = "\n".join(detail_lines(row, model.start_ns))
    assert "± J" in text and "peak W" in text and "flags: estimated" in text


def test_set_minmax_draws_each_bins_span_and_holds_the_last_bin_to_its_end() -> None:
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield PowerChart("x", y_max_w=100.0)

    app = One()

    async def go() -> None:
        async with app.run_test(size=(8 + 20, 6)) as pilot:
            chart = app.query_one(PowerChart)
            t = np.arange(4, dtype=np.int64) * 10_000
            chart.set_minmax(t, [10.0, 50.0, 10.0, 10.0], [90.0, 50.0, 90.0, 90.0], 0, 40_000, bin_ns=10_000)
            await pilot.pause()
            plot = [line[8:] for line in chart.render().plain.splitlines()[1:-1]]
            assert all(line[:1].strip() for line in plot), "the first bin spans 10 W .. 90 W: every row lit"
            assert plot[0].rstrip()[-1] != " " and len(plot[0].rstrip()) == len(plot[0]), "the last bin is held to its end"
            assert "⣇⣀⣀⣀⣸" in "".join(plot), "the 50 W bin between two wide spans"

    asyncio.run(go())


def test_cli_replay_of_a_missing_file_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay", str(tmp_path / "nope.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


def test_cli_replay_of_a_non_hdf5_file_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_text("not a trace\n")
    assert cli.main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an HDF5 file" in err


def test_replay_model_raises_trace_error_before_any_screen(tmp_path: Path) -> None:
    with pytest.raises(TraceError):
        ReplayModel(tmp_path / "missing.h5")


def _x_of(chart: PowerChart, t_ns: int) -> int:
    from greentop.tui.chart import _LABEL_W

    v0, v1 = chart.view_ns
    plot_w = chart.size.width - _LABEL_W - 1
    return _LABEL_W + 1 + int((t_ns - v0) / (v1 - v0) * plot_w)


def test_mouse_wheel_over_a_chart_zooms_about_the_pointer(model: ReplayModel) -> None:
    from textual import events

    app = ReplayApp(model, background_summary=False)

    async def body(pilot: Pilot) -> None:
        chart = app.query_one("#chart-total", PowerChart)
        t0, t1 = app.window_ns
        x = _x_of(chart, t0 + (t1 - t0) // 4)
        t_under = chart.time_at(x)
        assert t_under is not None
        await pilot._post_mouse_events([events.MouseScrollUp], chart, offset=(x, 3))
        n0, n1 = app.window_ns
        assert n1 - n0 == pytest.approx((t1 - t0) / 2, rel=0.01)
        assert n0 < t_under < n1 and (t_under - n0) / (n1 - n0) == pytest.approx((t_under - t0) / (t1 - t0), abs=0.02)
        await pilot._post_mouse_events([events.MouseScrollDown], chart, offset=(x, 3))
        assert app.window_ns[1] - app.window_ns[0] == pytest.approx(t1 - t0, rel=0.01)

    drive(app, body)


def test_click_on_a_chart_selects_the_innermost_phase_there(model: ReplayModel) -> None:
    app = ReplayApp(model, background_summary=False)
    epoch = next(i for i, p in enumerate(model.trace.phases) if p.name == "epoch")
    p = model.trace.phases[epoch]

    async def body(pilot: Pilot) -> None:
        chart = app.query_one("#chart-total", PowerChart)
        await pilot.click(chart, offset=(_x_of(chart, (p.start_ns + p.end_ns) // 2), 3))
        assert app.cursor_key() == f"p{epoch}"  # the epoch, not the training phase around it
        assert "epoch" in app.detail_text()[0]

    drive(app, body)


def test_replay_of_an_interrupted_run_says_so_in_the_status_line(tmp_path: Path) -> None:
    import h5py

    p = tmp_path / "interrupted.h5"
    shutil.copy(DATA, p)
    with h5py.File(p, "r+") as f:  # as `greentop record` stores a run stopped with Ctrl-C
        f["run"].attrs["interrupted"] = True
        f["run"].attrs["exit_code"] = 130
    app = ReplayApp(ReplayModel(p))

    async def body(pilot: Pilot) -> None:
        assert "[run interrupted]" in str(app.query_one("#status").render())

    drive(app, body)
