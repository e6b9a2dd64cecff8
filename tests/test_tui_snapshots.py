"""Snapshot tests of the live and the replay view (pytest-textual-snapshot).

A snapshot is the SVG of the whole screen, compared with the one committed under
``tests/__snapshots__``; after a deliberate change to the views, look at the new pictures
(``pytest --snapshot-update`` writes them, the report shows both) and commit them. Everything
on screen must be deterministic: the live view runs on the scripted sampler's synthetic clock
and greentop's own CPU use is pinned."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from greentop.tui import app as live_app
from greentop.tui.replay import ReplayApp, ReplayModel
from tests.test_tui_live import ScriptedListener, _ev, make_app, step

DATA = Path(__file__).parent / "data" / "h200_resnet50.h5"


@pytest.fixture
def pinned_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """greentop's own CPU use, shown in the health pane, is whatever this machine does: pin it."""
    clock = iter(range(0, 10_000, 1))

    def now() -> Any:
        t = float(next(clock))
        return live_app._Cpu(wall=t, cpu=0.05 * t)

    monkeypatch.setattr(live_app._Cpu, "now", staticmethod(now))


def test_live_view_with_nested_phases(snap_compare: Any, pinned_cpu: None) -> None:
    listener = ScriptedListener()
    app, sampler = make_app(listener=listener)

    async def before(pilot: Pilot) -> None:
        step(app, 20)  # 1 s of idle
        t = sampler.t_ns
        listener.pending = [_ev("start", t, "training", "a"), _ev("start", t + 1, "epoch", "b", "a")]
        step(app, 20)
        t = sampler.t_ns
        listener.pending = [_ev("end", t, "epoch", "b", "a"), _ev("start", t + 1, "evaluation", "c", "a")]
        sampler.power_w["nvml:gpu0:power"] = 250.0
        step(app, 20)
        app._update_health()
        app.refresh_view()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_live_view_paused_with_help_open(snap_compare: Any, pinned_cpu: None) -> None:
    app, _ = make_app()

    async def before(pilot: Pilot) -> None:
        step(app, 40)
        app._update_health()
        await pilot.press("p")
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_replay_view_of_the_h200_trace_with_a_phase_selected(snap_compare: Any, tmp_path: Path) -> None:
    trace = tmp_path / "run.h5"
    shutil.copy(DATA, trace)
    model = ReplayModel(trace)
    model.summarise()  # the list fills at once, not when a background thread happens to finish
    app = ReplayApp(model, background_summary=False)

    async def before(pilot: Pilot) -> None:
        await pilot.pause()
        await pilot.press("down", "down", "enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(140, 50), run_before=before)


@pytest.mark.parametrize("size", [(80, 24), (160, 40)])
def test_live_view_help_overlay_fits(snap_compare: Any, pinned_cpu: None, size: tuple[int, int]) -> None:
    """The help at the smallest terminal the view allows and at a wide one: no line wraps into
    the key column, nothing is cut off."""
    app, _ = make_app()

    async def before(pilot: Pilot) -> None:
        step(app, 20)
        app._update_health()
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)
