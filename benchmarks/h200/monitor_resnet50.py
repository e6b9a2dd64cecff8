"""ResNet-50 training measured in-process with ``greentop.Monitor``, checked against NVML's counter.

    python3 setup.py build_ext --inplace -q
    python3 benchmarks/h200/monitor_resnet50.py --out $OUT/monitor.json

No launcher: the script starts a Monitor (1 kHz fast lane, 10 Hz slow lane, every source) and
measures each phase of a ResNet-50 run (bf16 autocast, channels-last, batch 128, synthetic
ImageNet-shaped data on the GPU) in a window: warm-up, three training epochs nested in
"training", evaluation, inference. At the same window edges it reads
``nvmlDeviceGetTotalEnergyConsumption`` itself (pynvml), and prints one JSON document comparing
each window's GPU energy from the Monitor (``measurement(name).domain("gpu-0").energy_j``) with
the counter's delta. Bar: within 1 %.

Edges: the counter refreshes every ~100 ms, so a plain read is up to 100 ms stale (≈ 8 J at the
H200's ~80 W idle, ≈ 60 J at full load). So each edge is: ``torch.cuda.synchronize()``, an idle
gap, the counter read until its value changes (a reading at most one ~4 ms call old), and the
window's edge right after that read: both sides then measure the same interval to within a few
ms of idle power (well under 1 J), and the idle gap keeps even that at idle power. The Monitor also reports its start and stop cost, its
fast lane's delivered rate during training, and saves its trace beside the JSON.

Needs torch with CUDA, torchvision and nvidia-ml-py; not Textual. About 2 minutes on an H200.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # greentop from this checkout

BAR_PCT = 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the JSON report (the trace goes beside it, .h5)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epoch-s", type=float, default=10.0, help="seconds of training per epoch window")
    ap.add_argument("--phase-s", type=float, default=8.0, help="seconds of evaluation and of inference")
    ap.add_argument("--model", default="resnet50", help="a torchvision model (resnet18 for a quick CPU smoke run)")
    ap.add_argument("--warmup-s", type=float, default=6.0, help="seconds of the warm-up window")
    ap.add_argument("--gap", type=float, default=0.5, help="idle seconds at each window edge")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke run of the plumbing (with a fake NVML)")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        import pynvml
        import torch
        import torchvision
    except ImportError as exc:
        print(f"monitor_resnet50: needs torch, torchvision and nvidia-ml-py: {exc}", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("monitor_resnet50: no CUDA device", file=sys.stderr)
        return 2
    cuda = args.device == "cuda"

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize()

    import greentop

    t0 = time.perf_counter()
    mon = greentop.Monitor(rate=1000)
    start_s = time.perf_counter() - t0

    pynvml.nvmlInit()
    gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
    edges: dict[str, dict[str, Any]] = {}

    def counter() -> tuple[int, int]:
        """(mJ, CLOCK_MONOTONIC ns in the middle of the call, which takes ms)."""
        a = time.monotonic_ns()
        mj = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(gpu))
        return mj, (a + time.monotonic_ns()) // 2

    def fresh_counter() -> tuple[int, int]:
        """The counter just after it refreshed: read until the value changes (it does every ~100 ms),
        so the reading is at most one call (~4 ms) old instead of up to 100 ms."""
        first, t = counter()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            mj, t = counter()
            if mj != first:
                return mj, t
        return first, t

    @contextmanager
    def window(name: str) -> Iterator[None]:
        # Both edges: idle, then a fresh counter reading, then the window's edge right after it.
        synchronize()
        time.sleep(args.gap)
        e0, r0 = fresh_counter()
        with mon.window(name, sync="torch"):
            yield
            synchronize()
            time.sleep(args.gap)
            e1, r1 = fresh_counter()
        edges[name] = {"counter_j": (e1 - e0) / 1e3, "read0_ns": r0, "read1_ns": r1}

    device = torch.device(args.device)
    images = torch.randn(args.batch * 8, 3, 224, 224, device=device)
    labels = torch.randint(0, 1000, (args.batch * 8,), device=device)
    model = getattr(torchvision.models, args.model)(num_classes=1000).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def batch(i: int) -> tuple[Any, Any]:
        k = (i % 8) * args.batch
        return images[k:k + args.batch], labels[k:k + args.batch]

    def train_step(i: int) -> None:
        x, y = batch(i)
        with torch.autocast(args.device, dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def forward(i: int) -> None:
        x, _ = batch(i)
        with torch.no_grad(), torch.autocast(args.device, dtype=torch.bfloat16):
            model(x)

    def for_seconds(step: Any, seconds: float) -> int:
        """Run ``step`` until ``seconds`` of GPU time have passed (synchronising every 10 steps)."""
        end, i = time.monotonic() + seconds, 0
        while True:
            step(i)
            i += 1
            if i % 10 == 0 or not cuda:
                synchronize()
                if time.monotonic() >= end:
                    return i

    steps: dict[str, int] = {}
    with window("warm-up"):
        steps["warm-up"] = for_seconds(train_step, args.warmup_s)
    train_spin_from = time.monotonic_ns()
    with window("training"):
        for epoch in range(3):
            with window(f"epoch-{epoch}"):
                steps[f"epoch-{epoch}"] = for_seconds(train_step, args.epoch_s)
    train_spin_to = time.monotonic_ns()
    model.eval()
    with window("evaluation"):
        steps["evaluation"] = for_seconds(forward, args.phase_s)
    time.sleep(2.0 * args.gap / 0.5)
    with window("inference"):
        steps["inference"] = for_seconds(forward, args.phase_s)

    t0 = time.perf_counter()
    mon.stop()
    stop_s = time.perf_counter() - t0
    pynvml_name = str(pynvml.nvmlDeviceGetName(gpu))
    pynvml.nvmlShutdown()

    rows = []
    for name, e in edges.items():
        m = mon.measurement(name)
        g = m.domain("gpu-0")
        diff = 100.0 * (g.energy_j / e["counter_j"] - 1.0) if e["counter_j"] else float("nan")
        rows.append({"window": name, "duration_s": round(m.duration_s, 3), "steps": steps.get(name),
                     "counter_delta_j": round(e["counter_j"], 3), "monitor_gpu_j": round(g.energy_j, 3),
                     "monitor_uncertainty_j": round(g.energy_uncertainty_j, 3), "monitor_avg_w": round(g.average_w, 1),
                     "monitor_peak_w": round(g.peak_w, 1), "diff_pct": round(diff, 3), "within_bar": abs(diff) <= BAR_PCT,
                     "edge_offsets_ms": [round((m.start_ns - e["read0_ns"]) / 1e6, 2), round((m.end_ns - e["read1_ns"]) / 1e6, 2)]})

    power = [c.name for c in mon.channels if c.domain == "gpu-0" and c.quantity.value == "power"]
    delivery: dict[str, Any] = {}
    if power:
        import numpy as np

        t = mon.samples(power[0]).t_ns
        inside = t[(t >= train_spin_from) & (t <= train_spin_to)]
        delivery = {"channel": power[0], "rate_hz_during_training": round((inside.size - 1) / ((inside[-1] - inside[0]) / 1e9), 1),
                    "largest_gap_ms": round(float(np.diff(inside).max()) / 1e6, 2)}
    health = mon.health()
    trace = args.out.with_suffix(".h5")
    mon.save(trace)
    doc = {
        "bench": "monitor_resnet50", "bar_pct": BAR_PCT, "all_within_bar": all(r["within_bar"] for r in rows),
        "gpu": pynvml_name, "device": args.device, "torch": torch.__version__, "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "batch": args.batch,
        "monitor_start_s_first": round(start_s, 4), "monitor_stop_s": round(stop_s, 4),
        "channels": [c.name for c in mon.channels], "fast_lane_delivery": delivery,
        "lanes": {k: {"ticks": v.ticks, "missed": v.missed, "late": v.late, "cpu_s": round(v.cpu_s, 3)} for k, v in health.lanes.items()},
        "read_errors": health.read_errors, "overruns": health.overruns, "trace": str(trace), "windows": rows,
        "textual_imported": "textual" in sys.modules,
    }
    text = json.dumps(doc, indent=1)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
