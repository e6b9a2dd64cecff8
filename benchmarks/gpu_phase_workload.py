"""A tagged torchvision workload that also reads NVML's energy counter at its own phase edges.

Run under ``greentop record``; it trains a ResNet-50 on synthetic ImageNet-shaped data for a few
epochs, evaluates, and runs an inference pass, each in a ``greentop.phase``. Around every phase
it synchronises the GPU and reads ``nvmlDeviceGetTotalEnergyConsumption`` itself, writing those
deltas to ``--edges FILE.json``; ``benchmarks/gpu_phase_compare.py`` then compares them with the
per-phase GPU energy greentop attributes from the trace.

    greentop record -o run.h5 -- python benchmarks/gpu_phase_workload.py --edges edges.json
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from typing import Iterator

import pynvml
import torch
import torchvision

import greentop


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=80, help="training steps per epoch")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--gap", type=float, default=0.5,
                    help="idle seconds before and after each phase: the counter refreshes only every ~100 ms, "
                         "so reading it while the GPU idles keeps that staleness at idle power")
    args = ap.parse_args()

    pynvml.nvmlInit()
    gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
    edges: list[dict[str, object]] = []

    def read_counter() -> tuple[int, int]:
        """(mJ, CLOCK_MONOTONIC ns at the middle of the ~4 ms call)."""
        a = time.monotonic_ns()
        mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(gpu)
        return mj, (a + time.monotonic_ns()) // 2

    @contextmanager
    def measured(name: str, **attrs: object) -> Iterator[None]:
        torch.cuda.synchronize()
        time.sleep(args.gap)
        e0, read0 = read_counter()
        t0 = time.monotonic_ns()
        with greentop.phase(name, **attrs):  # type: ignore[arg-type]
            yield
            torch.cuda.synchronize()
        t1 = time.monotonic_ns()
        time.sleep(args.gap)
        e1, read1 = read_counter()
        edges.append({"name": name, "attrs": attrs, "t0_ns": t0, "t1_ns": t1, "read0_ns": read0, "read1_ns": read1,
                      "counter_mj": e1 - e0})

    device = torch.device("cuda")
    with measured("data-loading"):
        images = torch.randn(args.batch * 8, 3, 224, 224, device=device)
        labels = torch.randint(0, 1000, (args.batch * 8,), device=device)
    model = getattr(torchvision.models, args.model)(num_classes=1000).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = (i % 8) * args.batch
        return images[k:k + args.batch], labels[k:k + args.batch]

    def train_step(i: int) -> None:
        x, y = batch(i)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with measured("warm-up"):
        for i in range(5):
            train_step(i)
    with measured("training"):
        for epoch in range(args.epochs):
            with measured("epoch", epoch=epoch):
                for i in range(args.steps):
                    train_step(i)
                    greentop.count(samples=args.batch)
    model.eval()
    with measured("evaluation"), torch.no_grad():
        for i in range(args.steps * 2):
            x, y = batch(i)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                model(x)
            greentop.count(samples=args.batch)
    time.sleep(2.0)  # an idle gap: the GPU cools between phases
    with measured("inference"), torch.no_grad():
        for i in range(args.steps * 4):
            x, _ = batch(i)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                model(x)
            greentop.count(samples=args.batch)
    with open(args.edges, "w") as fh:
        json.dump(edges, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
