"""Jupyter: the ``%%greentop`` cell magic (through IPython when it is installed) and what it runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from greentop.api.notebook import CellOptions, MagicError, measure_cell, parse_line
from tests.fakes.host import FakeHost
from tests.fakes.profile import PowerProfile


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    h = FakeHost(tmp_path / "host")
    h.add_rapl_zone("0", "package-0", PowerProfile.constant(40.0))
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(h.root))
    monkeypatch.setenv("GREENTOP_NVML_LIB", str(tmp_path / "no-nvml.so"))
    h.start(writer="process")
    yield h
    h.close()


def test_magic_line_options() -> None:
    assert parse_line("") == CellOptions()
    assert parse_line("train -r 250 -s rapl-sysfs,nvml --sync torch -o mon") == CellOptions(
        "train", 250.0, ("rapl-sysfs", "nvml"), "torch", "mon")
    for bad, why in (("-r fast", "invalid float"), ("-o 1x", "variable name"), ("--nope", "unrecognized"), ("'open", "quotation")):
        with pytest.raises(MagicError, match=why):
            parse_line(bad)


def test_measure_cell_runs_the_cell_in_a_window_and_keeps_the_monitor(host: FakeHost) -> None:
    ns: dict[str, Any] = {}
    m = measure_cell("step -r 500 -o mon", lambda: time.sleep(0.2), ns)
    # Wide bounds: a loaded machine wakes the sleep late, and over a 0.2 s window the fake's
    # counter writer lagging its reader by 10 ms is 5 % of the power (one CI run saw more).
    assert m.name == "step" and 0.2 <= m.duration_s < 0.5
    assert m.domain("cpu-package-0").average_w == pytest.approx(40.0, rel=0.15)
    assert not ns["mon"].running and ns["mon"].measurement("step") == m


def test_cell_magic_in_ipython(host: FakeHost) -> None:
    pytest.importorskip("IPython")
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "greentop")
    result = ip.run_cell("%%greentop cell1 -r 500 -o mon\nimport time\ntime.sleep(0.15)\nx = 41 + 1\n")
    assert result.success
    assert ip.user_ns["x"] == 42  # the cell ran, in the notebook's namespace
    m = ip.user_ns["mon"].measurement("cell1")
    assert m.duration_s >= 0.15 and m.total.energy_j > 0
    # A measurement displays as the small table (text and HTML) once the extension is loaded.
    formatters = ip.display_formatter.formatters  # (a terminal shell only shows text/plain)
    assert formatters["text/plain"](m).startswith("cell1: ") and "<table>" in formatters["text/html"].lookup(m)(m)
    for line in ("-r nope", "-s nosuch", "-r 0", "--sync jax"):
        bad = ip.run_cell(f"%%greentop {line}\nran = True\n")
        assert bad.success, line  # one printed line, no traceback
    assert "ran" not in ip.user_ns  # and the cell was not run unmeasured
