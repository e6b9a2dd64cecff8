"""The Prometheus exporter: its counters (wraps, glitches, no double counting, phases, work), its
binding, and a real Prometheus server scraping a recording over the fake host."""

from __future__ import annotations

from dataclasses import replace

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("prometheus_client", reason="prometheus_client is a dependency (pyproject): pip install -e .")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from greentop.channel import Channel, Quantity, Reader, ReaderKind  # noqa: E402
from greentop.energy import converter_for, primary_channels  # noqa: E402
from greentop.export import ExportState, _Collector, parse_listen  # noqa: E402
from greentop.events import Event  # noqa: E402
from greentop.sampler import Samples  # noqa: E402
from greentop.trace import load  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WRAP_UJ = 1_000_000_000  # a counter that wraps every 1000 J


def rapl(name: str, domain: str, parent: str = "") -> Channel:
    return Channel(name=name, source="rapl-sysfs", domain=domain, quantity=Quantity.ENERGY, unit="uJ", scale=1e-6,
                   reader=Reader(ReaderKind.FILE_DECIMAL, path="/dev/null"), wrap_raw=WRAP_UJ, parent=parent)


def scrape(state: ExportState) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(state))  # type: ignore[arg-type]
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in samples.items() if n == name and all((k, v2) in ls for k, v2 in labels.items())]
    assert len(hits) == 1, (name, labels, [k for k in samples if k[0] == name])
    return hits[0]


def counter_samples(start_uj: int, power_w: float, t0_s: float, t1_s: float, step_s: float = 0.001) -> Samples:
    t = np.arange(t0_s, t1_s, step_s)
    raw = (start_uj + np.round(power_w * t * 1e6)).astype(np.int64) % WRAP_UJ
    return Samples((t * 1e9).astype(np.int64), raw)


def test_energy_counter_rises_through_a_wrap_and_a_glitch_and_counts_each_domain_once() -> None:
    pkg, core, psys = rapl("rapl:package-0", "cpu-package-0"), rapl("rapl:core", "cpu-core-0", parent="rapl:package-0"), \
        rapl("rapl:psys", "psys")
    state = ExportState([pkg, core, psys], host="h1")
    assert [c.name for c in state.primary] == [c.name for c in primary_channels([pkg, core, psys])]
    seen = []
    start = WRAP_UJ - 150_000_000  # wraps after 150 J: 1.5 s at 100 W
    for k in range(4):
        s = counter_samples(start, 100.0, k * 1.0, (k + 1) * 1.0)
        if k == 2:
            s.raw[500] = s.raw[500] - 40_000_000  # a glitch backwards that no wrap explains
        state.feed({"rapl:package-0": s, "rapl:core": s, "rapl:psys": s})
        samples = scrape(state)
        seen.append(value(samples, "greentop_energy_joules_total", domain="cpu-package-0", host="h1", estimated="false"))
        assert value(samples, "greentop_power_watts", domain="cpu-package-0") == pytest.approx(100.0, rel=0.01)
    assert all(b > a for a, b in zip(seen, seen[1:]))  # never back: not at the wrap, not at the glitch
    assert seen[-1] == pytest.approx(100.0 * 3.999, rel=1e-3)
    domains = {dict(ls)["domain"] for (n, ls) in samples if n == "greentop_energy_joules_total"}
    assert domains == {"cpu-package-0"}  # the core sub-zone is inside the package, psys covers it


def test_a_whole_system_meter_is_served_apart_and_never_in_the_domains_sum() -> None:
    pkg = rapl("rapl:package-0", "cpu-package-0")
    meter = replace(rapl("hwmon:power_meter:power1", "system-0"), source="hwmon")
    state = ExportState([pkg, meter], host="h1")
    state.feed({"rapl:package-0": counter_samples(0, 50.0, 0.0, 2.0), "hwmon:power_meter:power1": counter_samples(0, 200.0, 0.0, 2.0)})
    samples = scrape(state)
    domains = {dict(ls)["domain"] for (n, ls) in samples if n == "greentop_energy_joules_total"}
    assert domains == {"cpu-package-0"}  # a sum over domain stays the machine total
    assert value(samples, "greentop_meter_energy_joules_total", domain="system-0", scope="system") == pytest.approx(400.0, rel=0.01)
    assert value(samples, "greentop_meter_power_watts", domain="system-0") == pytest.approx(200.0, rel=0.01)


def test_cpu_total_picks_which_series_make_the_machine_total() -> None:
    pkg, dram = rapl("rapl:package-0", "cpu-package-0"), rapl("rapl:package-0:dram", "dram-0", parent="rapl:package-0")
    psys = rapl("rapl:psys", "psys")
    gpu = replace(rapl("nvml:gpu0:energy", "gpu-0"), source="nvml")
    meter = replace(rapl("hwmon:power_meter:power1", "system-0"), source="hwmon")
    watts = {pkg.name: 50.0, dram.name: 5.0, psys.name: 70.0, gpu.name: 300.0, meter.name: 450.0}
    start = Event("start", 500_000_000, 7, "train", "7:1", "", 0.0, {})

    def served(cpu_total: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        state = ExportState([pkg, dram, psys, gpu, meter], host="h1", cpu_total=cpu_total)
        state.feed({name: counter_samples(0, w, 0.0, 2.0) for name, w in watts.items()}, [start])
        return scrape(state)

    def summed(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
        return {dict(ls)["domain"]: v for (n, ls), v in samples.items() if n == "greentop_energy_joules_total"}

    def meters(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, str]:
        return {dict(ls)["domain"]: dict(ls)["scope"] for (n, ls) in samples if n == "greentop_meter_energy_joules_total"}

    packages, by_psys, system = served("packages"), served("psys"), served("system")
    assert set(summed(packages)) == {"cpu-package-0", "dram-0", "gpu-0"}
    # psys instead of the packages and DRAM it contains: a sum over domain is psys + the GPUs.
    assert set(summed(by_psys)) == {"psys", "gpu-0"}
    assert sum(summed(by_psys).values()) == pytest.approx((70.0 + 300.0) * 2, rel=0.01)
    assert meters(packages) == meters(by_psys) == {"system-0": "system"}
    # The phase's machine energy follows the same total (1.5 s of it inside the phase).
    assert value(by_psys, "greentop_phase_energy_joules", phase="train") == pytest.approx(370.0 * 1.5, rel=0.01)
    # The whole-system meter alone is the total; what it contains is served apart, never summed.
    assert summed(system) == {"system-0": pytest.approx(900.0, rel=0.01)}
    assert meters(system) == {"cpu-package-0": "inside", "dram-0": "inside", "psys": "inside", "gpu-0": "inside"}
    assert value(system, "greentop_phase_energy_joules", phase="train") == pytest.approx(450.0 * 1.5, rel=0.01)
    with pytest.raises(ValueError, match="no psys"):
        ExportState([pkg, gpu], host="h1", cpu_total="psys")


def test_phases_work_and_ranks_from_the_recording_events() -> None:
    pkg = rapl("rapl:package-0", "cpu-package-0")
    state = ExportState([pkg], host="h1")
    start = Event("start", 1_000_000_000, 7, "train", "7:1", "", 0.0, {"rank": 1, "local_rank": 1})
    count = Event("count", 1_500_000_000, 7, "tokens", "7:1", "", 512.0, {})
    end = Event("end", 3_000_000_000, 7, "train", "7:1", "", 0.0, {})
    state.feed({"rapl:package-0": counter_samples(0, 50.0, 0.0, 2.0)}, [start, count])
    mid = scrape(state)
    assert value(mid, "greentop_phase_info", phase="train", rank="1") == 1.0
    assert value(mid, "greentop_phase_energy_joules", phase="train", rank="1") == pytest.approx(50.0, rel=0.01)
    assert value(mid, "greentop_work_total", unit="tokens", rank="1") == 512.0
    # The end arrives before the samples that reach it: it waits for them.
    state.feed({"rapl:package-0": counter_samples(0, 50.0, 2.0, 2.5)}, [end])
    assert value(scrape(state), "greentop_phase_energy_joules_total", phase="train", rank="1") == pytest.approx(75.0, rel=0.01)
    state.feed({"rapl:package-0": counter_samples(0, 50.0, 2.5, 4.0)})
    done = scrape(state)
    assert value(done, "greentop_phase_energy_joules_total", phase="train", rank="1") == pytest.approx(100.0, rel=0.01)
    assert not [k for k in done if k[0] == "greentop_phase_info"]


@pytest.mark.parametrize("text", ["9464", "localhost", "host:port", ":9464", "127.0.0.1:99999"])
def test_bad_listen_address_is_one_line_and_exit_2(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)
    r = subprocess.run([sys.executable, "-m", "greentop", "export", "--listen", text, "--duration", "1"],
                       env=os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "HOST:PORT" in r.stderr, r.stderr


# ---- a real Prometheus ---------------------------------------------------------------------------

WORKLOAD = """
import time, greentop
with greentop.phase("train"):
    for _ in range(16):
        time.sleep(1.0)
        greentop.count(tokens=1000)
"""

SCRAPE_S = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def promql(base: str, path: str, **params: Any) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc["data"]


def test_a_real_prometheus_scrapes_a_recording_and_increase_matches_the_trace(tmp_path: Path, host_env: dict[str, str]) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("SKIP REASON: no prometheus binary (Debian package 'prometheus'; .ci/run installs it)")
        pytest.skip("no prometheus binary: install the Debian package 'prometheus' (.ci/run does)")
    env = host_env | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    out = tmp_path / "run.h5"
    rec = subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--rate", "500",
                            "--export", f"127.0.0.1:{port}", "--", sys.executable, "-c", WORKLOAD],
                           env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: {SCRAPE_S}s\n"
        f"scrape_configs:\n  - job_name: greentop\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        _, err = rec.communicate(timeout=180)
        assert rec.returncode == 0, err[-3000:]
        assert f"127.0.0.1:{port}/metrics" in err
        # The query window: a stretch of the run that Prometheus scraped throughout.
        series = promql(base, "query", query='greentop_energy_joules_total{domain="cpu-package-0"}[60s]', time=time.time())
        assert series["result"], "Prometheus scraped nothing"
        points = series["result"][0]["values"]
        assert len(points) >= 6, points
        metric = series["result"][0]["metric"]
        assert metric["job"] == "greentop" and metric["estimated"] == "false" and metric["host"]
        ts = [float(t) for t, _ in points]
        t_end = ts[-2]  # a scrape well inside the run, with ranges of scrapes before it
        window_s = round(t_end - ts[1])  # whole seconds; from the second scrape (the first may precede the workload)
        trace = load(out)
        offset_ns = int(trace.meta["start_wall_ns"]) - int(trace.meta["start_mono_ns"])
        primary = {c.domain: c.name for c in primary_channels([cd.channel for cd in trace.channels])}
        inc = promql(base, "query", query=f"increase(greentop_energy_joules_total[{window_s}s])", time=t_end)["result"]
        assert {r["metric"]["domain"] for r in inc} == set(primary)
        for r in inc:
            cd = trace.channel(primary[r["metric"]["domain"]])
            energy = converter_for(cd.channel).feed(cd.t_ns, cd.raw).energy_j
            lo, hi = (t_end - window_s) * 1e9 - offset_ns, t_end * 1e9 - offset_ns
            expected = float(np.interp(hi, cd.t_ns.astype(float), energy) - np.interp(lo, cd.t_ns.astype(float), energy))
            assert float(r["value"][1]) == pytest.approx(expected, rel=0.02), (r, expected, window_s)
        tokens = promql(base, "query", query=f"increase(greentop_work_total{{unit=\"tokens\"}}[{window_s}s])", time=t_end)["result"]
        assert tokens and float(tokens[0]["value"][1]) > 0
        phase = promql(base, "query", query="greentop_phase_info", time=t_end)["result"]
        assert [r["metric"]["phase"] for r in phase] == ["train"]
    finally:
        for p in (rec, prom):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


def test_greentop_export_serves_the_machine_without_a_workload(tmp_path: Path, host_env: dict[str, str]) -> None:
    env = host_env | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "greentop", "export", "--listen", "127.0.0.1:0", "--duration", "30"],
                         env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline() if p.stderr else ""
        assert "serving Prometheus metrics at http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].strip()

        def energy() -> tuple[float, float]:
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode()
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            pkg = [s for s in fams["greentop_energy_joules"].samples
                   if s.name == "greentop_energy_joules_total" and s.labels["domain"] == "cpu-package-0"]
            return pkg[0].value, time.monotonic()

        time.sleep(1.0)
        e0, t0 = energy()
        time.sleep(2.0)
        e1, t1 = energy()
        # The fake package alternates 30 W and 60 W every 0.1 s: 45 W on average.
        assert (e1 - e0) / (t1 - t0) == pytest.approx(45.0, rel=0.1)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
    assert p.returncode == 0


@pytest.mark.parametrize("command", ["export", "record"])
def test_greentop_export_cpu_total_psys_serves_psys_as_the_machine_total(tmp_path: Path, command: str) -> None:
    from tests.fakes.host import FakeHost
    from tests.fakes.profile import PowerProfile

    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(40.0))
    host.add_rapl_zone("0:0", "dram", PowerProfile.constant(5.0))
    host.add_rapl_zone("1", "psys", PowerProfile.constant(70.0))
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    env = os.environ | {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so"),
                        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with host:
        args = (["export", "--cpu-total", "psys", "--listen", "127.0.0.1:0", "--duration", "30"] if command == "export" else
                ["record", "--cpu-total", "psys", "--export", "127.0.0.1:0", "--no-baseline", "-o", str(tmp_path / "r.h5"),
                 "--", sys.executable, "-c", "import time; time.sleep(30)"])
        p = subprocess.Popen([sys.executable, "-m", "greentop", *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = ""
            while p.stderr and "serving Prometheus metrics at" not in line:  # record says what it records first
                line = p.stderr.readline()
                if not line:
                    break
            assert "serving Prometheus metrics at http://127.0.0.1:" in line, line
            time.sleep(0.5)
            with urllib.request.urlopen(line.split(" at ", 1)[1].strip(), timeout=10) as r:
                text = r.read().decode()
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=30)
    assert p.returncode == (0 if command == "export" else 130)  # record: interrupted by Ctrl-C
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    domains = {s.labels["domain"] for s in fams["greentop_energy_joules"].samples if s.name == "greentop_energy_joules_total"}
    assert domains == {"psys"}


def test_export_cpu_total_the_machine_cannot_give_is_one_line(host_env: dict[str, str]) -> None:
    for cpu_total, what in (("psys", "no psys domain"), ("system", "no whole-system meter")):
        r = subprocess.run([sys.executable, "-m", "greentop", "export", "--cpu-total", cpu_total, "--listen", "127.0.0.1:0",
                            "--duration", "5"], env=host_env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and what in r.stderr, r.stderr
        assert "serving" not in r.stderr


def served_metric_names() -> set[str]:
    """Every metric name an exporter with a domain, a whole-system meter, an open and a finished phase,
    work and health serves."""
    from greentop.sampler import ChannelHealth, LaneHealth, SamplerHealth

    meter = replace(rapl("hwmon:power_meter:power1", "system-0"), source="hwmon")
    state = ExportState([rapl("rapl:package-0", "cpu-package-0"), meter], host="h1")
    events = [Event("start", 100_000_000, 7, "train", "7:1", "", 0.0, {"rank": 0}),
              Event("count", 200_000_000, 7, "tokens", "7:1", "", 5.0, {}),
              Event("start", 300_000_000, 7, "eval", "7:2", "", 0.0, {}), Event("end", 400_000_000, 7, "eval", "7:2", "", 0.0, {})]
    state.feed({"rapl:package-0": counter_samples(0, 10.0, 0.0, 1.0), meter.name: counter_samples(0, 30.0, 0.0, 1.0)}, events)
    state.health = SamplerHealth({"fast": LaneHealth(100.0, 10, 0, 0, 0, 0.0, 1.0)},
                                 {"rapl:package-0": ChannelHealth(10, 0, "", 0, 1.0, 1)})
    return {name for name, _ in scrape(state)}


def test_docs_list_every_served_metric_and_the_dashboard_queries_only_served_ones() -> None:
    import re

    served = {n for n in served_metric_names() if not n.endswith("_created")}  # _created: the counters' start times
    doc = (REPO / "docs/prometheus.md").read_text()
    documented = set(re.findall(r"^\| `(greentop_\w+)`", doc, re.MULTILINE))
    assert documented == served
    dashboard = json.loads((REPO / "docs/grafana/greentop-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"]]
    used = {m for e in exprs for m in re.findall(r"greentop_\w+", e)}
    assert used and used <= served, used - served


def test_a_non_loopback_address_is_served_only_when_named_and_says_what_it_exposes(tmp_path: Path, host_env: dict[str, str]) -> None:
    env = host_env | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    from greentop.cli import build_parser
    from greentop.export import is_loopback

    default = build_parser().parse_args(["export"]).listen
    assert default == "127.0.0.1:9464" and is_loopback(parse_listen(default)[0])
    r = subprocess.run([sys.executable, "-m", "greentop", "export", "--listen", "127.0.0.1:0", "--duration", "0.5"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "loopback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "greentop", "export", "--listen", "0.0.0.0:0", "--duration", "0.5"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "not a loopback address" in r.stderr and "no authentication" in r.stderr, r.stderr


def test_read_metrics_script_compares_the_endpoint_read_directly_with_the_trace(tmp_path: Path, host_env: dict[str, str]) -> None:
    env = host_env | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    out = tmp_path / "run.h5"
    rec = subprocess.Popen([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--rate", "500",
                            "--export", f"127.0.0.1:{port}", "--", sys.executable, "-c", "import time; time.sleep(8)"],
                           env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        r = subprocess.run([sys.executable, str(REPO / "benchmarks/multigpu/read_metrics.py"), f"http://127.0.0.1:{port}/metrics",
                            "--every", "0.5", "--trace", str(out), "--out", str(tmp_path / "m.jsonl")],
                           env=env, capture_output=True, text=True, timeout=120)
        rec.wait(timeout=60)
    finally:
        if rec.poll() is None:
            rec.kill()
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    # DRAM lies outside the package (Intel SDM 15.10): both are domains of the machine total.
    assert [row["domain"] for row in rows] == ["cpu-package-0", "dram-0"]
    for row in rows:
        assert row["window_s"] > 3  # of 8 s: the reader's own start-up may take seconds on a loaded machine
        # The counter and the trace hold the same samples: over the window the counters name, they agree.
        assert abs(row["diff_pct"]) < 0.1, rows
