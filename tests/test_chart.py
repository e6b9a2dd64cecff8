"""Strip-chart building blocks: min/max decimation, braille and block rendering, the widget."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

pytest.importorskip("textual")

from textual.app import App, ComposeResult  # noqa: E402

from greentop.tui.chart import (  # noqa: E402
    PowerChart,
    column_edges_ns,
    decimate_minmax,
    format_seconds,
    format_watts,
    nice_ceil,
    render_blocks,
    render_braille,
)

BRAILLE = range(0x2801, 0x2900)  # non-blank braille patterns


def _reference(
    t_ns: np.ndarray, v: np.ndarray, t0: int, t1: int, columns: int, hold: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Slow, obvious per-column min/max (with exact rational bin edges)."""
    mins = np.full(columns, np.nan)
    maxs = np.full(columns, np.nan)
    span = t1 - t0
    for k in range(columns):
        a = t0 + (k * span) // columns
        b = t0 + ((k + 1) * span) // columns
        vals = [float(x) for ti, x in zip(t_ns, v) if a <= ti < b and not np.isnan(x)]
        if hold:
            before = [i for i, ti in enumerate(t_ns) if ti < a]
            after = [i for i, ti in enumerate(t_ns) if ti >= a]
            if before and after and not np.isnan(v[before[-1]]):
                vals.append(float(v[before[-1]]))
        if vals:
            mins[k], maxs[k] = min(vals), max(vals)
    return mins, maxs


def _random_series(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Irregular times with repeated timestamps and gaps, like several drained chunks.
    dt = rng.choice([0, 1, 7, 50, 1000], size=n, p=[0.05, 0.4, 0.3, 0.2, 0.05])
    t_ns = (10_000 + np.cumsum(dt)).astype(np.int64)
    v = rng.normal(300.0, 80.0, size=n)
    return t_ns, v


@pytest.mark.parametrize("hold", [False, True])
def test_decimation_matches_slow_reference_on_random_data(hold: bool) -> None:
    rng = np.random.default_rng(1234)
    for _ in range(30):
        t_ns, v = _random_series(rng, int(rng.integers(1, 400)))
        lo_t, hi_t = int(t_ns[0]), int(t_ns[-1])
        t0 = int(rng.integers(lo_t - 500, hi_t))
        t1 = int(rng.integers(t0 + 1, hi_t + 600))
        columns = int(rng.integers(1, 97))
        mins, maxs = decimate_minmax(t_ns, v, t0, t1, columns, hold=hold)
        ref_min, ref_max = _reference(t_ns, v, t0, t1, columns, hold)
        np.testing.assert_array_equal(mins, ref_min)
        np.testing.assert_array_equal(maxs, ref_max)


def test_column_edges_are_exact_and_cover_the_window() -> None:
    edges = column_edges_ns(1_000, 1_007, 3)
    assert edges.tolist() == [1_000, 1_002, 1_004, 1_007]
    # A ten-year window in 999 columns: k * span would overflow int64, the split form does not.
    span = 10 * 365 * 86_400 * 10**9
    edges = column_edges_ns(5, 5 + span, 999)
    assert edges[0] == 5 and edges[-1] == 5 + span
    assert np.all(np.diff(edges) > 0)


def test_single_sample_spike_survives_decimation_from_1m_samples_to_80_columns() -> None:
    n = 1_000_000
    t_ns = np.arange(n, dtype=np.int64) * 1_000_000  # 1 kHz for 1000 s
    rng = np.random.default_rng(7)
    power_w = 100.0 + rng.random(n) * 5.0
    power_w[654_321] = 900.0
    for hold in (False, True):
        mins, maxs = decimate_minmax(t_ns, power_w, 0, n * 1_000_000, 80, hold=hold)
        assert np.nanmax(maxs) == 900.0
        column = 654_321 * 80 // n
        assert maxs[column] == 900.0
        assert np.all(mins >= 100.0)
    rows = render_braille(*decimate_minmax(t_ns, power_w, 0, n * 1_000_000, 80), 4, 0.0, 1000.0)
    assert rows[0][column // 2] != " "  # the spike reaches the top row


def test_empty_input_gives_nan_columns() -> None:
    empty_t = np.zeros(0, dtype=np.int64)
    mins, maxs = decimate_minmax(empty_t, np.zeros(0), 0, 1_000, 10)
    assert mins.shape == maxs.shape == (10,)
    assert np.isnan(mins).all() and np.isnan(maxs).all()
    assert render_braille(mins, maxs, 2, 0.0, 1.0) == [" " * 5, " " * 5]
    assert render_blocks(mins, maxs, 2, 0.0, 1.0) == [" " * 10, " " * 10]


def test_one_sample_fills_its_column_only() -> None:
    mins, maxs = decimate_minmax(np.array([450], dtype=np.int64), np.array([7.0]), 0, 1_000, 10)
    assert maxs[4] == 7.0 and mins[4] == 7.0
    assert np.isnan(np.delete(maxs, 4)).all()  # nothing known after the only sample


def test_hold_fills_columns_between_sparse_samples_but_not_past_the_last() -> None:
    # A 10 Hz gauge seen through 10 ms columns: held values between readings.
    t_ns = np.array([0, 100_000_000, 200_000_000], dtype=np.int64)
    power_w = np.array([50.0, 80.0, 60.0])
    mins, maxs = decimate_minmax(t_ns, power_w, 0, 300_000_000, 30)
    assert mins[0] == maxs[0] == 50.0
    assert (maxs[1:10] == 50.0).all()
    assert mins[10] == 50.0 and maxs[10] == 80.0  # the step draws as a connected span
    assert (maxs[11:20] == 80.0).all()
    assert np.isnan(maxs[21:]).all()  # after the last reading: unknown
    no_hold = decimate_minmax(t_ns, power_w, 0, 300_000_000, 30, hold=False)[1]
    assert np.isnan(no_hold[1:10]).all()


def test_window_inside_a_gap_shows_the_held_value() -> None:
    t_ns = np.array([0, 1_000_000_000], dtype=np.int64)
    mins, maxs = decimate_minmax(t_ns, np.array([42.0, 99.0]), 400_000_000, 500_000_000, 8)
    assert (mins == 42.0).all() and (maxs == 42.0).all()


def test_max_hold_leaves_long_gaps_empty() -> None:
    t_ns = np.array([0, 10, 20, 1_000, 1_010], dtype=np.int64)
    power_w = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    mins, maxs = decimate_minmax(t_ns, power_w, 0, 1_020, 102, max_hold_ns=100)
    assert np.isnan(maxs[5:100]).all()  # the 980 ns stall shows as a gap
    assert maxs[1] == 2.0
    mins, maxs = decimate_minmax(t_ns, power_w, 0, 1_020, 102)
    assert (maxs[5:100] == 3.0).all()


def test_nan_samples_are_ignored_and_all_nan_columns_stay_nan() -> None:
    t_ns = np.arange(20, dtype=np.int64)
    power_w = np.arange(20, dtype=np.float64)
    power_w[[3, 4, 10, 11, 12, 13, 14]] = np.nan
    mins, maxs = decimate_minmax(t_ns, power_w, 0, 20, 4, hold=False)  # 5 samples per column
    assert mins.tolist()[0] == 0.0 and maxs.tolist()[0] == 2.0
    assert np.isnan(mins[2]) and np.isnan(maxs[2])
    assert maxs[3] == 19.0
    mins, maxs = decimate_minmax(t_ns, power_w, 0, 20, 4, hold=True)
    assert mins[2] == maxs[2] == 9.0  # only the held value (sample 9) is known there


def test_decimation_rejects_bad_arguments() -> None:
    t_ns = np.arange(5, dtype=np.int64)
    with pytest.raises(ValueError):
        decimate_minmax(t_ns, np.zeros(5), 10, 10, 4)
    with pytest.raises(ValueError):
        decimate_minmax(t_ns, np.zeros(5), 0, 10, 0)
    with pytest.raises(ValueError):
        decimate_minmax(t_ns, np.zeros(4), 0, 10, 4)


def test_braille_flat_line_renders_in_one_row() -> None:
    flat = np.full(40, 250.0)
    rows = render_braille(flat, flat, 5, 0.0, 1000.0)
    assert len(rows) == 5 and all(len(r) == 20 for r in rows)
    drawn = [i for i, r in enumerate(rows) if r.strip()]
    # 250 W of 1000 W over 20 dot rows: dot row 5 (0-based) from the bottom, i.e. the second
    # cell row from the bottom, second dot row from that cell's bottom: dots 3 and 6.
    assert drawn == [3]
    assert set(rows[3]) == {chr(0x2800 | 0x04 | 0x20)}


def test_braille_full_height_span_fills_a_column() -> None:
    mins = np.array([0.0, np.nan, 0.0, 0.0])
    maxs = np.array([100.0, np.nan, 100.0, 100.0])
    rows = render_braille(mins, maxs, 3, 0.0, 100.0)
    assert rows == ["⡇⣿"] * 3  # left dot column only in cell 0, both in cell 1


def test_braille_dot_positions_and_odd_width() -> None:
    rows = render_braille(np.array([0.0, 0.0, 99.0]), np.array([0.0, 0.0, 99.0]), 1, 0.0, 100.0)
    assert rows == ["⣀⠁"]  # bottom dots 7 and 8; top-left dot 1; odd count -> 2 cells
    # Off-scale values pin to the edges instead of disappearing.
    rows = render_braille(np.array([-5.0]), np.array([500.0]), 2, 0.0, 100.0)
    assert rows == ["⡇", "⡇"]


def _braille_reference(mins: np.ndarray, maxs: np.ndarray, rows: int, y_min: float, y_max: float) -> list[str]:
    """Slow, obvious braille: dot by dot, each column lit from its lower to its upper dot level."""
    dots = 4 * rows
    bits = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]]  # [row in cell][dot column]

    def level(v: float) -> int:
        return int(math.floor(min(max((v - y_min) * (dots / (y_max - y_min)), 0), dots - 1)))

    width = (len(mins) + 1) // 2
    cells = [[0] * width for _ in range(rows)]
    for c, (a, b) in enumerate(zip(mins, maxs)):
        ends = [float(x) for x in (a, b) if not math.isnan(x)]
        if not ends:
            continue
        for lv in range(level(min(ends)), level(max(ends)) + 1):
            from_top = dots - 1 - lv
            cells[from_top // 4][c // 2] |= bits[from_top % 4][c % 2]
    return ["".join(chr(0x2800 + b) if b else " " for b in row) for row in cells]


def test_braille_matches_slow_reference_on_random_data() -> None:
    rng = np.random.default_rng(99)
    for _ in range(400):
        n = int(rng.integers(0, 30))
        rows = int(rng.integers(1, 8))
        mins, maxs = rng.uniform(-30.0, 130.0, n), rng.uniform(-30.0, 130.0, n)  # some swapped, some off scale
        u = rng.random(n)
        mins[u < 0.15] = np.nan  # half-NaN spans and columns without data
        maxs[u > 0.85] = np.nan
        mins[(u > 0.4) & (u < 0.5)] = maxs[(u > 0.4) & (u < 0.5)] = np.nan
        if rng.random() < 0.2:
            mins[: n // 3] = np.inf
        y_min = 0.0 if rng.random() < 0.5 else float(rng.uniform(-20.0, 50.0))
        y_max = y_min + float(rng.uniform(1.0, 150.0))
        assert render_braille(mins, maxs, rows, y_min, y_max) == _braille_reference(mins, maxs, rows, y_min, y_max)


def test_blocks_fallback_draws_spans_to_the_eighth() -> None:
    mins = np.array([0.0, 0.0, 100.0, 50.0, np.nan, 0.0])
    maxs = np.array([100.0, 50.0, 100.0, 50.0, np.nan, 0.0])
    rows = render_blocks(mins, maxs, 2, 0.0, 100.0)
    # Column 2 (a flat 100 W) is drawn in the top cell only; column 3 (a flat 50 W) fills the
    # bottom cell exactly; a 0 W reading still shows as ▁; the NaN column is blank.
    assert rows == ["█ █   ", "██ █ ▁"]
    filled = render_blocks(mins, maxs, 2, 0.0, 100.0, fill=True)
    assert filled[1][2] == "█"  # area chart: filled down to y_min
    assert render_blocks(np.array([37.5]), np.array([37.5]), 1, 0.0, 100.0) == ["▃"]


def test_rendering_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError):
        render_braille(np.zeros(2), np.zeros(2), 2, 5.0, 5.0)
    with pytest.raises(ValueError):
        render_blocks(np.zeros(2), np.zeros(2), 0, 0.0, 1.0)


def test_axis_helpers_round_and_label() -> None:
    assert nice_ceil(612.0) == 800.0
    assert nice_ceil(1000.0) == 1000.0
    assert nice_ceil(0.0) == 1.0 and nice_ceil(float("nan")) == 1.0
    assert format_watts(612.0) == "612 W" and format_watts(1500.0) == "1.5 kW"
    assert format_watts(0.0) == "0 W"
    assert format_seconds(-30.0, 10.0) == "-30s"
    assert format_seconds(-0.02, 0.01) == "-20ms"
    assert format_seconds(600.0, 300.0) == "10m"


class _ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield PowerChart("gpu-0  612 W now · 598 W avg · 690 W peak", id="gpu")
        yield PowerChart("cpu-0", id="cpu", estimated=True, braille=False)


def _screen_text(chart: PowerChart) -> list[str]:
    return [chart.render_line(y).text for y in range(chart.size.height)]


def test_widget_shows_title_axes_and_braille_after_set_data() -> None:
    async def scenario() -> None:
        app = _ChartApp()
        async with app.run_test(size=(80, 24)) as pilot:
            gpu = app.query_one("#gpu", PowerChart)
            cpu = app.query_one("#cpu", PowerChart)
            t_ns = np.arange(60_000, dtype=np.int64) * 1_000_000  # 60 s at 1 kHz
            power_w = np.full(t_ns.size, 598.0)
            power_w[30_000] = 690.0
            gpu.set_data(t_ns, power_w, 0, 60_000_000_000)
            cpu.set_data(t_ns, power_w / 10, 0, 60_000_000_000)
            await pilot.pause()

            lines = _screen_text(gpu)
            assert len(lines) == 10 and all(len(line) == 80 for line in lines)
            assert lines[0].startswith("gpu-0  612 W now · 598 W avg · 690 W peak")
            assert "(estimated)" not in lines[0]
            body = "".join(lines[1:-1])
            assert any(ord(c) in BRAILLE for c in body)
            assert "800 W" in lines[1] and "0 W" in lines[-2]  # auto range 0..800 W
            assert "-60s" in lines[-1] and lines[-1].rstrip().endswith("0s")
            assert gpu.y_range_w == (0.0, 800.0)

            cpu_lines = _screen_text(cpu)
            assert "(estimated)" in cpu_lines[0]
            assert cpu.render_line(0).text.strip() == "cpu-0  (estimated)"
            assert any(c in "▁▂▃▄▅▆▇█" for c in "".join(cpu_lines[1:-1]))
            assert not any(ord(c) in BRAILLE for c in "".join(cpu_lines))

            gpu.y_max_w = 2000.0  # fixed scale
            gpu.title = "gpu-0  idle"
            await pilot.pause()
            lines = _screen_text(gpu)
            assert lines[0].startswith("gpu-0  idle") and "2 kW" in lines[1]

            rendered = gpu.render()  # the same chart as one rich Text
            assert rendered.plain.splitlines()[0].startswith("gpu-0  idle")

    asyncio.run(scenario())


def test_widget_without_data_draws_axes_only() -> None:
    async def scenario() -> None:
        app = _ChartApp()
        async with app.run_test(size=(40, 24)) as pilot:
            await pilot.pause()
            gpu = app.query_one("#gpu", PowerChart)
            lines = _screen_text(gpu)
            assert not any(ord(c) in BRAILLE for c in "".join(lines))
            assert "1 W" in lines[1]

    asyncio.run(scenario())


def test_widget_bins_snap_so_a_sliding_window_scrolls_by_whole_columns() -> None:
    async def scenario() -> None:
        app = _ChartApp()
        async with app.run_test(size=(80, 24)) as pilot:
            gpu = app.query_one("#gpu", PowerChart)
            rng = np.random.default_rng(3)
            t_ns = np.arange(120_000, dtype=np.int64) * 1_000_000
            power_w = 300.0 + rng.normal(0.0, 50.0, t_ns.size)
            shown: list[list[str]] = []
            for shift_ms in (0, 50, 100):  # three frames, 50 ms apart
                t1 = 90_100_000_000 + shift_ms * 1_000_000  # one column: 90.0 s < t1 <= 90.42 s
                gpu.set_data(t_ns, power_w, t1 - 60_000_000_000, t1)
                await pilot.pause()
                v0, v1 = gpu.view_ns
                col_ns = (v1 - v0) // (2 * (gpu.size.width - 8))
                assert v0 % col_ns == 0 and v1 % col_ns == 0
                assert 0 <= v1 - t1 < col_ns and abs(v0 - (t1 - 60_000_000_000)) < col_ns
                shown.append(_screen_text(gpu)[1:-1])
            # 60 s over 144 dot columns: 417 ms per column, so 100 ms of sliding keeps every bin.
            assert shown[0] == shown[1] == shown[2]

    asyncio.run(scenario())


def test_widget_repaints_only_rows_that_changed() -> None:
    async def scenario() -> None:
        app = _ChartApp()
        async with app.run_test(size=(80, 24)) as pilot:
            gpu = app.query_one("#gpu", PowerChart)
            t_ns = np.arange(60_000, dtype=np.int64) * 1_000_000
            power_w = np.full(t_ns.size, 400.0)
            gpu.set_data(t_ns, power_w, 0, 60_000_000_000)
            await pilot.pause()
            before = [gpu.render_line(y) for y in range(gpu.size.height)]
            gpu.set_data(t_ns, power_w, 0, 60_000_000_000)  # same picture
            gpu.title = "gpu-0  401 W now"  # only the title row changes
            await pilot.pause()
            after = [gpu.render_line(y) for y in range(gpu.size.height)]
            assert after[0] is not before[0] and after[0].text.startswith("gpu-0  401 W now")
            assert all(a is b for a, b in zip(after[1:], before[1:]))

    asyncio.run(scenario())


def _segments(strips: list) -> list[list[tuple[str, object]]]:
    return [[(seg.text, seg.style) for seg in strip] for strip in strips]


def test_widget_paints_what_textuals_styles_cache_would_paint() -> None:
    """``render_lines`` hands the compositor its cached rows without Textual's styles cache (a
    plain box): the same segments and styles, whole or cropped, frame after frame; a box that is
    not plain (a border) goes through the styles cache."""
    from textual.geometry import Region
    from textual.widget import Widget

    async def scenario() -> None:
        app = _ChartApp()
        async with app.run_test(size=(80, 24)) as pilot:
            gpu = app.query_one("#gpu", PowerChart)
            cpu = app.query_one("#cpu", PowerChart)
            gpu.append_only = True
            rng = np.random.default_rng(5)
            t_ns = np.arange(20_000, dtype=np.int64) * 1_000_000
            power_w = 300.0 + rng.normal(0.0, 60.0, t_ns.size)
            for frame in range(4):  # a live chart scrolling: some rows kept, some redrawn
                t1 = 10_000_000_000 + frame * 50_000_000
                for chart in (gpu, cpu):
                    chart.set_data(t_ns, power_w, t1 - 1_875_000_000, t1)
                await pilot.pause()
                for chart in (gpu, cpu):
                    w, h = chart.size
                    for crop in (Region(0, 0, w, h), Region(3, 2, w - 10, h - 4)):
                        direct = chart.render_lines(crop)
                        assert chart._direct  # noqa: SLF001 -- the path under test was taken
                        chart._styles_cache.clear()  # noqa: SLF001 -- the styles cache draws afresh
                        assert _segments(direct) == _segments(Widget.render_lines(chart, crop))
            gpu.styles.border = ("round", "red")
            await pilot.pause()
            w, h = gpu.size.width + 2, gpu.size.height + 2
            lines = gpu.render_lines(Region(0, 0, w, h))
            assert not gpu._direct and lines[0].text.startswith("╭")  # noqa: SLF001
            assert _segments(lines) == _segments(Widget.render_lines(gpu, Region(0, 0, w, h)))

    asyncio.run(scenario())


class _LiveChartsApp(App[None]):
    """Two stacks of three live charts: one fed together (set_live_data), one chart by chart."""

    CSS = "PowerChart { height: 9; }"

    def compose(self) -> ComposeResult:
        for side in ("together", "alone"):
            for j in range(3):
                yield PowerChart(f"{side}-{j}", id=f"{side}-{j}")


def test_charts_fed_together_draw_what_each_draws_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """``set_live_data`` draws the scrolling charts' new cells in one pass: frame after frame the
    same rows as ``set_data`` chart by chart, through scale changes, a gap, and a chart that
    joins late (drawn alone, then with the others); and fewer drawing calls than charts."""
    from greentop.tui import chart as chart_mod
    from greentop.tui.chart import set_live_data

    draws: list[int] = []
    real = chart_mod.braille_codes

    def counting(*args: object) -> object:
        draws.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(chart_mod, "braille_codes", counting)
    rng = np.random.default_rng(11)
    t = np.arange(6000, dtype=np.int64) * 10_000_000 + 77  # the live model's 10 ms grid
    p = rng.uniform(10.0, 90.0, (t.size, 3))
    p[::997, 0] = 400.0  # spikes: chart 0's scale changes now and then
    p[1200:1260, 1] = np.nan  # a gap in chart 1

    async def scenario() -> None:
        app = _LiveChartsApp()
        async with app.run_test(size=(90, 60)) as pilot:
            together = [app.query_one(f"#together-{j}", PowerChart) for j in range(3)]
            alone = [app.query_one(f"#alone-{j}", PowerChart) for j in range(3)]
            for c in together + alone:
                c.append_only = True
            window_ns = 1_875_000_000
            frames = 0
            for end in range(400, 2000, 5):  # 50 ms of data a frame
                now = int(t[end - 1]) + 3_000_000
                fed = [0, 1] if end < 600 else [0, 1, 2]  # chart 2 joins late
                before = len(draws)
                set_live_data([together[j] for j in fed], t[:end], p[:end][:, fed], now - window_ns, now)
                if end > 620:
                    assert len(draws) - before < len(fed)  # drawn together, not one by one
                del draws[before:]
                for j in fed:
                    alone[j].set_data(t[:end], p[:end, j], now - window_ns, now)
                for j in fed:
                    assert _screen_text(together[j])[1:] == _screen_text(alone[j])[1:], (end, j)
                    assert together[j].view_ns == alone[j].view_ns and together[j].y_range_w == alone[j].y_range_w
                frames += 1
            await pilot.pause()
            assert frames > 300

    asyncio.run(scenario())
