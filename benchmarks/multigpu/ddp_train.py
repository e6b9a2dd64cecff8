"""Data-parallel ResNet-50 training, one rank per GPU, tagged per rank, with each rank reading its
own GPU's NVML energy counter at its phase edges (issue #15).

    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    greentop record -o run.h5 --rate 1000 -- \\
        torchrun --standalone --nproc-per-node N benchmarks/multigpu/ddp_train.py --out-dir edges/
    python benchmarks/multigpu/compare.py run.h5 edges/

Every rank: warm-up, ``--epochs`` training epochs and an evaluation, each in a ``greentop.phase``
carrying ``gpu=<NVML index>`` (greentop adds ``rank``/``local_rank``), with a barrier, an idle gap
(``--gap``) and an NVML energy-counter read on each side (the counter refreshes about every 100 ms:
reading it while the GPU idles keeps that staleness at idle power). Each rank writes
``<out-dir>/rank<R>.json``: its phase edges, counter deltas, images and seconds.
ResNet-50 in bf16 autocast, channels-last, on synthetic ImageNet-shaped data (3x224x224, 1000
classes) made on the device once. A phase lasts at least ``--phase-seconds`` (the step count is
fixed after the warm-up from its measured step time, the same on every rank).

NVLink multicast stays off in every process: the variables above are also set here, before torch
loads, for a launch that forgot them. ``--device cpu --backend gloo --arch tiny`` runs the same code
path on a CPU (the tests do, under a fake NVML of two GPUs).
"""

from __future__ import annotations

import os

for _var, _value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1")):
    os.environ[_var] = _value  # before torch and NCCL read them

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager, nullcontext  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, ContextManager, Iterator  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

import greentop  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True, type=Path, help="folder for rank<R>.json")
    ap.add_argument("--arch", default="resnet50", help="a torchvision model name, or 'tiny' (a small CNN for CPU tests)")
    ap.add_argument("--batch", type=int, default=256, help="images per rank per step")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--phase-seconds", type=float, default=20.0, help="each training epoch and the evaluation last at least this")
    ap.add_argument("--gap", type=float, default=0.5, help="idle seconds before each counter read")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--backend", default="nccl", help="nccl on GPUs, gloo on the CPU")
    ap.add_argument("--amp", choices=["bf16", "none"], default="bf16")
    ap.add_argument("--no-nvml", action="store_true", help="do not read the NVML counter (a machine without one)")
    return ap.parse_args()


class Counter:
    """This rank's GPU energy counter through NVML (mJ), or nothing."""

    def __init__(self, device: torch.device, local_rank: int, enabled: bool) -> None:
        self.handle: Any = None
        self.index = -1
        if not enabled:
            return
        import pynvml

        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:
            return
        self.nvml = pynvml
        if device.type == "cuda":
            # The NVML device is the CUDA device's PCI address: CUDA_VISIBLE_DEVICES renumbers CUDA's indices, not NVML's.
            p = torch.cuda.get_device_properties(device)
            try:
                bus = f"{p.pci_domain_id:08x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0"
                self.handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus)
            except (AttributeError, pynvml.NVMLError):  # an older torch: right unless CUDA_VISIBLE_DEVICES renumbers
                self.handle = pynvml.nvmlDeviceGetHandleByIndex(device.index)
            self.index = int(pynvml.nvmlDeviceGetIndex(self.handle))
        else:  # the CPU test path: rank r reads fake GPU r (modulo the count), as greentop's --by rank assumes
            count = pynvml.nvmlDeviceGetCount()
            self.index = local_rank % count
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)

    def read(self) -> tuple[int | None, int]:
        """(mJ or None, CLOCK_MONOTONIC ns at the middle of the call)."""
        a = time.monotonic_ns()
        mj = int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)) if self.handle is not None else None
        return mj, (a + time.monotonic_ns()) // 2


def tiny_model(classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, classes))


def build_model(arch: str, classes: int) -> torch.nn.Module:
    if arch == "tiny":
        return tiny_model(classes)
    import torchvision

    return getattr(torchvision.models, arch)(num_classes=classes)


def main() -> int:
    args = parse_args()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    counter = Counter(device, local_rank, not args.no_nvml)
    gpu = counter.index if counter.index >= 0 else local_rank

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    edges: list[dict[str, Any]] = []

    @contextmanager
    def measured(name: str, images: Callable[[], int], **attrs: Any) -> Iterator[None]:
        sync()
        dist.barrier()
        time.sleep(args.gap)
        e0, read0 = counter.read()
        t0 = time.monotonic_ns()
        with greentop.phase(name, gpu=gpu, **attrs):
            yield
            sync()
        t1 = time.monotonic_ns()
        time.sleep(args.gap)
        e1, read1 = counter.read()
        edges.append({"name": name, "attrs": attrs, "t0_ns": t0, "t1_ns": t1, "read0_ns": read0, "read1_ns": read1,
                      "counter_mj": None if e0 is None or e1 is None else e1 - e0, "images": images(),
                      "seconds": (t1 - t0) / 1e9})

    n_batches = 8
    images = torch.randn(args.batch * n_batches, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, args.classes, (args.batch * n_batches,), device=device)
    model = build_model(args.arch, args.classes).to(device).to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def autocast() -> ContextManager[Any]:
        return torch.autocast(device.type, dtype=torch.bfloat16) if args.amp == "bf16" else nullcontext()

    def batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = (i % n_batches) * args.batch
        return images[k:k + args.batch], labels[k:k + args.batch]

    def train_step(i: int) -> None:
        x, y = batch(i)
        with autocast():
            loss = loss_fn(ddp(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        greentop.count(samples=args.batch)

    done = {"n": 0}
    with measured("warm-up", lambda: done["n"] * args.batch):
        start = time.monotonic()
        for i in range(args.warmup_steps):
            train_step(i)
        sync()
        done["n"] = args.warmup_steps
        step_s = (time.monotonic() - start) / max(args.warmup_steps, 1)
    # One step count for every rank (DDP's collectives need it): the slowest rank's.
    t = torch.tensor([step_s], dtype=torch.float64, device=device if args.backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    steps = max(1, math.ceil(args.phase_seconds / max(float(t.item()), 1e-6)))
    for epoch in range(args.epochs):
        with measured("train", lambda: steps * args.batch, epoch=epoch):
            for i in range(steps):
                train_step(i)
    ddp.eval()
    eval_steps = steps * 2  # a forward pass costs about a third of a training step
    with measured("eval", lambda: eval_steps * args.batch), torch.no_grad():
        for i in range(eval_steps):
            x, _ = batch(i)
            with autocast():
                ddp(x)
            greentop.count(samples=args.batch)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"rank": rank, "local_rank": local_rank, "world_size": world, "gpu": gpu, "device": str(device), "arch": args.arch,
           "batch": args.batch, "image_size": args.image_size, "amp": args.amp, "steps_per_epoch": steps,
           "host": os.uname().nodename, "nvml": counter.handle is not None, "phases": edges,
           "env": {k: os.environ.get(k, "") for k in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")}}
    (args.out_dir / f"rank{rank}.json").write_text(json.dumps(doc, indent=1))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
