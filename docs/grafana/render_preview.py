"""Render docs/grafana/dashboard-preview.png: the dashboard's three main panels, drawn with
matplotlib from data a real Prometheus scraped from ``greentop record --export``.

No Grafana runs here, so this is not a screenshot: it draws the same PromQL queries as the
dashboard (greentop-dashboard.json) in its layout. The machine is the test suite's fake host
(tests/fakes: a RAPL package, a DRAM zone and a fake NVML of two GPUs whose power steps with the
workload's phases), so the figures are the fakes' scripted watts, measured end to end.

    python docs/grafana/render_preview.py            # needs the Debian package 'prometheus'
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fakes.host import FakeHost  # noqa: E402
from tests.fakes.nvml import FakeNvmlConfig, build_fake_nvml  # noqa: E402
from tests.fakes.profile import PowerProfile  # noqa: E402

OUT = Path(__file__).with_name("dashboard-preview.png")
# Phases (s after the epoch): warm-up 5-9, train 9-21, eval 21-26; idle around them.
SEGMENTS = ((5.0, "idle"), (4.0, "warm-up"), (12.0, "train"), (5.0, "eval"), (100.0, "idle"))
GPU_W = {"idle": (90.0, 85.0), "warm-up": (320.0, 300.0), "train": (660.0, 640.0), "eval": (380.0, 360.0)}
CPU_W = {"idle": 40.0, "warm-up": 120.0, "train": 150.0, "eval": 95.0}
TOKENS_PER_S = {"warm-up": 4000, "train": 9000, "eval": 16000}

WORKLOAD = """
import json, os, time, greentop
epoch = int(os.environ["EPOCH_NS"]) / 1e9
plan = json.loads(os.environ["PLAN"])
t = 0.0
for duration, name, tokens_per_s in plan:
    if name == "idle":
        t += min(duration, 4.0)  # the last idle stretch: a few seconds of it
        time.sleep(max(0.0, epoch + t - time.monotonic()))
        continue
    time.sleep(max(0.0, epoch + t - time.monotonic()))
    with greentop.phase(name):
        end = epoch + t + duration
        while time.monotonic() < end:
            time.sleep(0.25)
            greentop.count(tokens=int(tokens_per_s * 0.25))
    t += duration
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(base: str, path: str, **params: Any) -> Any:
    with urllib.request.urlopen(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
        doc = json.loads(r.read())
    if doc["status"] != "success":
        raise RuntimeError(doc)
    return doc["data"]["result"]


def main() -> int:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("needs a prometheus binary (apt-get install prometheus)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="greentop-dash-"))
    lib = build_fake_nvml(tmp)
    epoch = time.monotonic_ns() + 4_000_000_000  # greentop and Prometheus start in the meantime
    config = FakeNvmlConfig(devices=2, epoch_ns=epoch, update_ms=100, energy_cost_us=0, profiles={
        g: PowerProfile(tuple((d, GPU_W[name][g]) for d, name in SEGMENTS)) for g in (0, 1)})
    conf = config.write(tmp / "nvml.conf")
    host = FakeHost(tmp / "host")
    host.add_cpus(4)
    # The package's profile starts with the host (now), 3 s before the epoch: pad it.
    host.add_rapl_zone("0", "package-0", PowerProfile(((4.0, CPU_W["idle"]),) + tuple((d, CPU_W[n]) for d, n in SEGMENTS)))
    host.add_rapl_zone("0:0", "dram", PowerProfile.constant(6.0))
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=4)
    port, prom_port = free_port(), free_port()
    plan = [(d, n, TOKENS_PER_S.get(n, 0)) for d, n in SEGMENTS]
    with host:
        env = os.environ | host.environ | {"GREENTOP_NVML_LIB": str(lib), "GREENTOP_FAKE_NVML_CONFIG": str(conf),
                                           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "EPOCH_NS": str(epoch), "PLAN": json.dumps(plan)}
        (tmp / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: greentop\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
        prom = subprocess.Popen([prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"], stderr=subprocess.DEVNULL)
        try:
            rec = subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(tmp / "run.h5"), "--no-baseline",
                                  "--rate", "200", "--export", f"127.0.0.1:{port}", "--", sys.executable, "-c", WORKLOAD],
                                 env=env, capture_output=True, text=True, timeout=120)
            if rec.returncode != 0:
                print(rec.stderr, file=sys.stderr)
                return 1
            base = f"http://127.0.0.1:{prom_port}"
            end = time.time()
            start = end - 60
            power = query(base, "query_range", query="sum by (domain) (greentop_power_watts)", start=start, end=end, step=1)
            phases = query(base, "query", query="sum by (phase) (increase(greentop_phase_energy_joules_total[60s]))", time=end)
            jpt = query(base, "query_range", start=start, end=end, step=1,
                        query='sum(rate(greentop_energy_joules_total[4s])) / sum(rate(greentop_work_total{unit="tokens"}[4s]))')
        finally:
            prom.terminate()
            prom.wait(timeout=30)
    first = min((float(s["values"][0][0]) for s in power if s["values"]), default=start)
    draw(power, phases, jpt, first)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {OUT}")
    return 0


def draw(power: list[dict[str, Any]], phases: list[dict[str, Any]], jpt: list[dict[str, Any]], start: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bg, panel, fg, grid = "#111217", "#181b1f", "#ccccdc", "#2c3235"
    fig = plt.figure(figsize=(12, 6.2), facecolor=bg)
    gs = fig.add_gridspec(2, 3, height_ratios=[1.15, 1], hspace=0.45, wspace=0.28)
    axes = [fig.add_subplot(gs[0, :]), fig.add_subplot(gs[1, :2]), fig.add_subplot(gs[1, 2])]
    for ax in axes:
        ax.set_facecolor(panel)
        ax.tick_params(colors=fg, labelsize=8)
        for s in ax.spines.values():
            s.set_color(grid)
        ax.grid(color=grid, linewidth=0.6)
    ax = axes[0]
    for series in sorted(power, key=lambda s: s["metric"].get("domain", "")):
        t = [float(x) - start for x, _ in series["values"]]
        ax.plot(t, [float(v) for _, v in series["values"]], label=series["metric"].get("domain", "?"), linewidth=1.6)
    ax.set_title("Power per domain  ·  sum by (domain) (greentop_power_watts)", color=fg, fontsize=10, loc="left")
    ax.set_ylabel("W", color=fg)
    ax.set_xlabel("s since the first scrape", color=fg)
    ax.legend(facecolor=panel, edgecolor=grid, labelcolor=fg, fontsize=8, loc="upper right")
    ax = axes[1]
    for series in jpt:
        t = [float(x) - start for x, _ in series["values"]]
        ax.plot(t, [float(v) for _, v in series["values"]], color="#f2cc0c", linewidth=1.6)
    ax.set_title("Energy per token  ·  rate(energy) / rate(tokens)", color=fg, fontsize=10, loc="left")
    ax.set_ylabel("J / token", color=fg)
    ax.set_xlabel("s since the first scrape", color=fg)
    ax = axes[2]
    rows = sorted(((r["metric"].get("phase", "?"), float(r["value"][1])) for r in phases), key=lambda x: -x[1])
    ax.barh([n for n, _ in rows], [v / 1e3 for _, v in rows], color="#73bf69")
    ax.invert_yaxis()
    ax.set_title("Energy per phase (kJ)", color=fg, fontsize=10, loc="left")
    for i, (_, v) in enumerate(rows):
        ax.text(v / 1e3, i, f" {v / 1e3:.1f}", va="center", color=fg, fontsize=8)
    fig.text(0.01, 0.01, "Preview drawn with matplotlib from a real Prometheus 2.42 scraping `greentop record --export` over the "
             "test suite's fake host (scripted watts) - not a Grafana screenshot. Dashboard: docs/grafana/greentop-dashboard.json",
             color="#8e8e8e", fontsize=7.5)
    fig.savefig(OUT, dpi=90, facecolor=bg)


if __name__ == "__main__":
    raise SystemExit(main())
