"""``python -m workloads train|infer|demo``: image (CNN, ViT) and BERT-style classifiers.

Phases (a bounded set; numbers go in attributes, never in names)::

    data-loading                     building the datasets and loaders
    warmup                           train: --warmup-steps uncounted training steps
    train                            the primary phase of ``train`` (and ``demo``)
      epoch (epoch=i)                one per epoch
        forward, backward, optimizer one each per step, with --phase-detail step
    evaluation                       one pass over the eval split after training
    warmup                           infer: --warmup-batches uncounted batches
    inference                        the primary phase of ``infer`` (demo: after evaluation)

Every batch of train, evaluation and inference is counted with ``greentop.count(samples=n)``;
warm-up steps and batches are not, so the energy per sample of each phase comes out of its own
counts, and the one-off costs of the first steps (cuDNN autotuning, lazy CUDA kernel loading,
torch.compile, DataLoader worker start-up) land in ``warmup`` instead of in ``train``.
The device is synchronised before every phase closes, so queued GPU work lands in its phase.

``demo`` is ``train`` with defaults for a laptop CPU (smallcnn on digits, 12 epochs of Adam, CPU),
then evaluation, then warm-up and inference of 8192 samples cycling the eval split; it prints one
line per epoch. Its result document is a ``train`` one, with ``inference_*`` metrics added. Models start
from random weights and nothing is downloaded, so ``infer`` without training measures cost, not
quality (its accuracy is chance).

Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import greentop
from workloads import torchutil
from greentop.cliargs import (
    OneLineParser,
    non_negative_int,
    positive_float,
    positive_int,
)
from workloads.data import (
    Batch,
    DataError,
    Splits,
    cifar_images,
    digits_images,
    synthetic_images,
)
from workloads.macs import forward_macs, parameter_count
from workloads.results import mark_outcome, write_result
from workloads.text import BERT_SIZES, BertClassifier, token_splits
from workloads.vision import (
    VISION_ARCHS,
    VisionConfigError,
    build_vision_model,
    check_image_size,
)

ARCHS = (*VISION_ARCHS, *BERT_SIZES)
DATASETS = ("digits", "synthetic", "cifar10")
SCHEDULES = ("constant", "cosine", "step")
OPTIMIZERS = ("sgd", "adam", "adamw")
PHASE_DETAILS = ("epoch", "step")
SYNTHETIC_TRAIN_SAMPLES = 8192  # synthetic sizes when --train-samples / --eval-samples are not given
SYNTHETIC_EVAL_SAMPLES = 1024
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
SGD_MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
STEP_SCHEDULE_DROPS = 3  # the "step" schedule divides the rate by 10 at 1/3 and 2/3 of training
# ~35 s on an idle 2-core laptop CPU: ~2 s per epoch, then ~4 s of inference (8192 samples).
DEMO_DEFAULTS = {"arch": "smallcnn", "data": "digits", "epochs": 12, "batch_size": 32, "device": "cpu",
                 "optimizer": "adam", "lr": 0.002, "samples": 8192}


class UsageError(ValueError):
    """Input the workload refuses: one line on stderr, exit 2."""


def build_parser(command: str) -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"python -m workloads {command}", description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--arch", choices=ARCHS, default="resnet18", help="model (default resnet18; demo: smallcnn)")
    p.add_argument("--data", choices=DATASETS, default="synthetic", help="dataset (default synthetic; demo: digits)")
    p.add_argument("--data-path", type=Path, default=None, help="folder of CIFAR-10's python batches (--data cifar10)")
    p.add_argument("--image-size", type=positive_int, default=32, help="image side in pixels (32; 224 = ImageNet shape)")
    p.add_argument("--num-classes", type=positive_int, default=10)
    p.add_argument("--seq-len", type=positive_int, default=128, help="BERT: tokens per sequence, CLS included")
    p.add_argument("--vocab-size", type=positive_int, default=30522, help="BERT: vocabulary size")
    p.add_argument("--train-samples", type=positive_int, default=None,
                   help=f"synthetic: training set size (default {SYNTHETIC_TRAIN_SAMPLES}); real data: a cap")
    p.add_argument("--eval-samples", type=positive_int, default=None,
                   help=f"synthetic: eval set size (default {SYNTHETIC_EVAL_SAMPLES}); real data: a cap")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: sgd 0.05, adam(w) 1e-3)")
    p.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning-rate schedule, stepped per batch")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default: sgd for CNNs, adamw for ViT and BERT")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default 1, or enough for --steps)")
    p.add_argument("--steps", type=positive_int, default=None, help="cap on the total training steps")
    p.add_argument("--precision", choices=torchutil.PRECISIONS, default="fp32",
                   help="autocast precision; fp16 needs a GPU (and uses a gradient scaler)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (image models)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phase-detail", choices=PHASE_DETAILS, default="epoch",
                   help="step: tag every training step's forward, backward and optimizer")
    p.add_argument("--result", type=Path, default=None, help="write the result document (JSON) here")
    p.add_argument("--warmup-steps", type=non_negative_int, default=5,
                   help="train: uncounted training steps first (autotuning, compilation, loader workers)")
    p.add_argument("--warmup-batches", type=non_negative_int, default=2, help="infer: uncounted batches first")
    p.add_argument("--batches", type=positive_int, default=None, help="infer: batches to run (cycling the eval split)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="infer: samples to run, rounded up to whole batches (default: one pass over the eval split)")
    if command == "demo":
        p.set_defaults(**DEMO_DEFAULTS)
    return p


@dataclass
class Config:
    """The parsed command line plus what follows from it (the resolved defaults)."""

    command: str
    args: argparse.Namespace
    device: torch.device
    optimizer: str
    lr: float

    @property
    def is_text(self) -> bool:
        return self.args.arch in BERT_SIZES

    def params(self) -> dict[str, Any]:
        """Every hyperparameter, flat (the result document's ``params``): those the model reads. A
        CNN's row carries no sequence length and a text model's no image size, which the report
        would otherwise take for settings."""
        skip = {"result"} | ({"image_size"} if self.args.arch in BERT_SIZES else {"seq_len", "vocab_size"})
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.args).items() if k not in skip}
        out.update(command=self.command, optimizer=self.optimizer, lr=self.lr, device=str(self.device))
        return out


def resolve(command: str, args: argparse.Namespace) -> Config:
    """Check what argparse cannot and fill the defaults that depend on other flags."""
    try:
        device = torchutil.resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(str(exc)) from None
    if args.precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a GPU; use bf16 on the CPU")
    if args.data == "cifar10" and args.data_path is None:
        raise UsageError("--data cifar10 needs --data-path DIR (the unpacked cifar-10-batches-py; nothing is downloaded)")
    if args.arch in BERT_SIZES and args.data == "cifar10":
        raise UsageError("BERT models read --data synthetic or digits, not cifar10")
    if args.arch not in BERT_SIZES:
        try:
            check_image_size(args.arch, args.image_size)
        except VisionConfigError as exc:
            raise UsageError(str(exc)) from None
    if args.data == "cifar10" and args.num_classes != 10 or args.data == "digits" and args.num_classes != 10:
        raise UsageError(f"--data {args.data} has 10 classes, not {args.num_classes}")
    if args.batches is not None and args.samples is not None:
        raise UsageError("give --batches or --samples, not both")
    optimizer = args.optimizer or ("adamw" if args.arch in BERT_SIZES or args.arch == "vit" else "sgd")
    lr = args.lr if args.lr is not None else DEFAULT_LR[optimizer]
    return Config(command, args, device, optimizer, lr)


# ----------------------------------------------------------------------------- data and model


def build_splits(cfg: Config, need_train: bool) -> Splits:
    a = cfg.args
    if cfg.is_text:
        return token_splits(a.data, a.seq_len, a.vocab_size, a.num_classes, a.train_samples, a.eval_samples,
                            a.seed, SYNTHETIC_TRAIN_SAMPLES, SYNTHETIC_EVAL_SAMPLES)
    if a.data == "digits":
        return digits_images(a.image_size, a.train_samples, a.eval_samples)
    if a.data == "cifar10":
        return cifar_images(a.data_path, a.image_size, a.train_samples, a.eval_samples, need_train)
    n_train = a.train_samples or SYNTHETIC_TRAIN_SAMPLES
    return synthetic_images(a.image_size, a.num_classes, n_train if need_train else 1,
                            a.eval_samples or SYNTHETIC_EVAL_SAMPLES, a.seed)


def make_loader(cfg: Config, splits: Splits, part: str) -> DataLoader[Any]:
    """``part``: "train" (shuffled), "eval" (every sample once) or "infer" (the eval split in
    whole batches)."""
    ds = splits.train if part == "train" else splits.eval
    assert ds is not None
    n = len(ds)  # type: ignore[arg-type]
    shuffle = part == "train"
    return DataLoader(
        ds, batch_size=cfg.args.batch_size, shuffle=shuffle,
        generator=torch.Generator().manual_seed(cfg.args.seed) if shuffle else None,
        # Whole batches only (when there is one) outside evaluation: steady shapes for throughput
        # figures and for torch.compile; evaluation needs every sample.
        drop_last=part != "eval" and n >= cfg.args.batch_size,
        num_workers=cfg.args.workers, persistent_workers=cfg.args.workers > 0,
        pin_memory=cfg.device.type == "cuda", collate_fn=splits.collate)


def build_model(cfg: Config) -> nn.Module:
    a = cfg.args
    if cfg.is_text:
        return BertClassifier(a.arch, a.num_classes, a.vocab_size, a.seq_len)
    return build_vision_model(a.arch, a.num_classes, a.image_size)


def to_device(cfg: Config, batch: Batch) -> Batch:
    inputs, labels = batch
    moved = []
    for x in inputs:
        x = x.to(cfg.device, non_blocking=True)
        if cfg.args.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        moved.append(x)
    return tuple(moved), labels.to(cfg.device, non_blocking=True)


def make_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=SGD_MOMENTUM, weight_decay=WEIGHT_DECAY)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)


def make_schedule(cfg: Config, opt: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.args.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))
    if cfg.args.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, total_steps // STEP_SCHEDULE_DROPS), gamma=0.1)
    return None


# ----------------------------------------------------------------------------- the loops


@dataclass
class Tally:
    """Loss and accuracy summed on the device: reading them per step would sync every step."""

    device: torch.device
    samples: int = 0
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        n = int(labels.shape[0])
        batch_loss = loss.detach().float() * n
        batch_correct = (logits.detach().argmax(dim=1) == labels).sum()
        self.loss_sum = batch_loss if self.loss_sum is None else self.loss_sum + batch_loss
        self.correct = batch_correct if self.correct is None else self.correct + batch_correct
        self.samples += n

    def loss(self) -> float:
        return float(self.loss_sum.item()) / self.samples if self.loss_sum is not None and self.samples else math.nan

    def accuracy(self) -> float:
        return float(self.correct.item()) / self.samples if self.correct is not None and self.samples else math.nan


@dataclass
class Stretch:
    """A timed stretch of work: its samples and wall time (for throughput)."""

    samples: int = 0
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput_samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else math.nan


@dataclass
class Trainer:
    cfg: Config
    model: nn.Module  # what runs the steps (compiled, if asked)
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler | None
    scaler: Any  # torch.amp.GradScaler for fp16, else None

    def _detail(self, name: str, warmup: bool) -> Any:
        """A phase per step part with --phase-detail step, synchronised at its end; else nothing."""
        if self.cfg.args.phase_detail == "step" and not warmup:
            return _SyncedPhase(name, self.cfg.device)
        return contextlib.nullcontext()

    def step(self, batch: Batch, tally: Tally, warmup: bool = False) -> None:
        """One training step. A warm-up step runs the same kernels but is not counted, does not
        advance the learning-rate schedule and has no step phases (its forward would otherwise
        add to the ``forward`` of the training steps)."""
        inputs, labels = to_device(self.cfg, batch)
        with self._detail("forward", warmup):
            with torchutil.autocast(self.cfg.device, self.cfg.args.precision):
                logits = self.model(*inputs)
                loss = F.cross_entropy(logits.float(), labels)
        with self._detail("backward", warmup):
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        with self._detail("optimizer", warmup):
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.schedule is not None and not warmup:
                self.schedule.step()
        tally.add(logits, labels, loss)
        if not warmup:
            greentop.count(samples=int(labels.shape[0]))


class _SyncedPhase:
    def __init__(self, name: str, device: torch.device) -> None:
        self.scope = greentop.phase(name)
        self.device = device

    def __enter__(self) -> None:
        self.scope.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            torchutil.sync(self.device)
        self.scope.__exit__(*exc)


def plan_steps(cfg: Config, batches_per_epoch: int) -> tuple[int, int]:
    """(epochs, total steps): --steps caps the total; without --epochs, enough epochs for it."""
    a = cfg.args
    if a.epochs is None:
        epochs = math.ceil(a.steps / batches_per_epoch) if a.steps else 1
    else:
        epochs = a.epochs
    total = epochs * batches_per_epoch
    if a.steps is not None:
        total = min(total, a.steps)
    return epochs, total


def warm_up(cfg: Config, trainer: Trainer, loader: DataLoader[Any]) -> None:
    """The ``warmup`` phase before ``train`` (none with --warmup-steps 0): that many full training
    steps, so the first steps' one-off costs (cuDNN autotuning every kernel of forward, backward
    and optimizer, lazy kernel loading, torch.compile, the optimizer's state, DataLoader worker
    start-up) are not charged to training. Not counted, not part of --steps, the schedule not
    stepped; a loader with fewer batches runs the ones it has."""
    if cfg.args.warmup_steps == 0:
        return
    # The warm-up steps update the weights and the optimizer's state like any other step: models
    # start from random weights and the study measures cost, so a few more updates only nudge the
    # accuracy, and undoing them would need a copy of the weights and the optimizer's state (memory
    # that training does not use).
    trainer.model.train()
    tally = Tally(cfg.device)
    with greentop.phase("warmup"):
        # Its own short pass over the loader: every epoch of train() still starts a whole pass.
        for batch in itertools.islice(iter(loader), cfg.args.warmup_steps):
            trainer.step(batch, tally, warmup=True)
        torchutil.sync(cfg.device)


def train(cfg: Config, trainer: Trainer, loader: DataLoader[Any]) -> Stretch:
    """The ``train`` phase: one ``epoch`` phase per epoch, one progress line per epoch."""
    epochs, total_steps = plan_steps(cfg, len(loader))
    done = Stretch()
    steps = epochs_done = 0
    last = Tally(cfg.device)
    trainer.model.train()
    util = torchutil.Utilisation(cfg.device)
    t0 = time.monotonic()
    with greentop.phase("train"), util.measure():
        for epoch in range(epochs):
            if steps >= total_steps:
                break
            tally, te = Tally(cfg.device), time.monotonic()
            with greentop.phase("epoch", epoch=epoch):
                for batch in loader:
                    if steps >= total_steps:
                        break
                    trainer.step(batch, tally)
                    steps += 1
                torchutil.sync(cfg.device)
            dt = time.monotonic() - te
            done.samples += tally.samples
            epochs_done += 1
            last = tally
            print(f"epoch {epoch + 1}/{epochs}: loss {tally.loss():.4f}  train acc {tally.accuracy():.3f}  "
                  f"{tally.samples} samples in {dt:.1f} s ({tally.samples / dt if dt > 0 else 0:.0f}/s)", flush=True)
    done.wall_s = time.monotonic() - t0
    done.extra = {"train_loss": last.loss(), "train_accuracy": last.accuracy(), "epochs_done": epochs_done,
                  "steps": steps, **util.metrics()}
    return done


def _predict(cfg: Config, model: nn.Module, batch: Batch, tally: Tally) -> None:
    inputs, labels = to_device(cfg, batch)
    with torchutil.autocast(cfg.device, cfg.args.precision):
        logits = model(*inputs)
    tally.add(logits, labels, F.cross_entropy(logits.float(), labels))


def evaluate(cfg: Config, model: nn.Module, loader: DataLoader[Any]) -> Tally:
    """The ``evaluation`` phase: one pass over the eval split, no gradients."""
    tally = Tally(cfg.device)
    model.eval()
    with greentop.phase("evaluation"), torch.no_grad():
        for batch in loader:
            _predict(cfg, model, batch, tally)
            greentop.count(samples=int(batch[1].shape[0]))
        torchutil.sync(cfg.device)
    return tally


def _cycle(loader: DataLoader[Any]) -> Iterator[Batch]:
    while True:
        yield from loader


def infer_done(cfg: Config, loader: DataLoader[Any], batches: int, samples: int) -> bool:
    """--batches N batches, or at least --samples N samples (whole batches); by default one
    pass over the eval split, rounded up to whole batches."""
    a = cfg.args
    if a.batches is not None:
        return batches >= a.batches
    target = a.samples if a.samples is not None else len(loader.dataset)  # type: ignore[arg-type]
    return samples >= target


def infer(cfg: Config, model: nn.Module, loader: DataLoader[Any]) -> tuple[Stretch, Tally]:
    """``warmup`` (uncounted batches: kernels chosen, caches filled) then ``inference``."""
    model.eval()
    batches = _cycle(loader)
    with torch.no_grad():
        with greentop.phase("warmup"):
            for _ in range(cfg.args.warmup_batches):
                _predict(cfg, model, next(batches), Tally(cfg.device))
            torchutil.sync(cfg.device)
        tally, util = Tally(cfg.device), torchutil.Utilisation(cfg.device)
        n_batches = 0
        t0 = time.monotonic()
        with greentop.phase("inference"), util.measure():
            while not infer_done(cfg, loader, n_batches, tally.samples):
                batch = next(batches)
                _predict(cfg, model, batch, tally)
                greentop.count(samples=int(batch[1].shape[0]))
                n_batches += 1
            torchutil.sync(cfg.device)
        wall_s = time.monotonic() - t0
    return Stretch(tally.samples, wall_s, util.metrics()), tally


# ----------------------------------------------------------------------------- main


def peak_memory() -> dict[str, float | None]:
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"peak_rss_mib": rss_mib}


def gpu_peak_memory(device: torch.device) -> dict[str, float | None]:
    if device.type != "cuda":
        return {"gpu_peak_memory_mib": None}
    return {"gpu_peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20}


@dataclass
class Loaders:
    """Only the loaders the command uses: each may hold its own persistent worker processes."""

    train: DataLoader[Any] | None
    eval: DataLoader[Any] | None
    infer: DataLoader[Any] | None

    def any(self) -> DataLoader[Any]:
        loader = self.eval or self.infer or self.train
        assert loader is not None
        return loader


def prepare(cfg: Config, need_train: bool, need_infer: bool) -> tuple[Splits, Loaders]:
    with greentop.phase("data-loading"):
        splits = build_splits(cfg, need_train)
        loaders = Loaders(make_loader(cfg, splits, "train") if need_train else None,
                          make_loader(cfg, splits, "eval") if need_train else None,
                          make_loader(cfg, splits, "infer") if need_infer else None)
    return splits, loaders


def setup_model(cfg: Config, loader: DataLoader[Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The model on its device, and its size: parameters and per-sample forward MACs."""
    torchutil.seed_all(cfg.args.seed)
    model = build_model(cfg).to(cfg.device)
    if cfg.args.channels_last and not cfg.is_text:
        model = model.to(memory_format=torch.channels_last)
    sample_inputs, _ = to_device(cfg, next(iter(loader)))
    info = {"model_params": parameter_count(model), "model_macs": forward_macs(model, sample_inputs)}
    return model, info


def run(cfg: Config) -> int:
    a = cfg.args
    t_start = time.monotonic()
    torchutil.seed_all(a.seed)
    if cfg.device.type == "cuda":
        # Batch shapes are steady (whole batches): let cuDNN pick its fastest kernels once.
        torch.backends.cudnn.benchmark = True
    need_train = cfg.command in ("train", "demo")
    need_infer = cfg.command in ("infer", "demo")
    splits, loaders = prepare(cfg, need_train, need_infer)
    print(f"{cfg.command}: {a.arch} on {splits.source} ({cfg.device}, {a.precision}, batch {a.batch_size})", flush=True)
    model, info = setup_model(cfg, loaders.any())
    # torch.compile wraps the module (an nn.Module still); compilation happens at the first batch,
    # so it lands in warm-up (--warmup-steps for train, --warmup-batches for infer), or in the first
    # epoch or inference batch when that is 0.
    runner: nn.Module = torch.compile(model) if a.compile else model  # type: ignore[assignment]
    if cfg.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(cfg.device)

    metrics: dict[str, Any] = dict(info)
    if need_train:
        assert loaders.train is not None and loaders.eval is not None
        opt = make_optimizer(cfg, model)
        _, total_steps = plan_steps(cfg, len(loaders.train))
        scaler = torch.amp.GradScaler("cuda") if a.precision == "fp16" else None
        trainer = Trainer(cfg, runner, opt, make_schedule(cfg, opt, total_steps), scaler)
        warm_up(cfg, trainer, loaders.train)
        trained = train(cfg, trainer, loaders.train)
        ev = evaluate(cfg, runner, loaders.eval)
        metrics.update(trained.extra, samples=trained.samples, wall_s=trained.wall_s,
                       throughput_samples_per_s=trained.throughput_samples_per_s,
                       accuracy=ev.accuracy(), eval_loss=ev.loss(), loss=trained.extra["train_loss"],
                       eval_samples=ev.samples)
    if need_infer:
        assert loaders.infer is not None
        done, tally = infer(cfg, runner, loaders.infer)
        inference = {"samples": done.samples, "wall_s": done.wall_s, "throughput_samples_per_s": done.throughput_samples_per_s,
                     "accuracy": tally.accuracy(), "loss": tally.loss(), **done.extra}
        if cfg.command == "infer":
            metrics.update(inference)
        else:  # demo: training stays the primary phase; inference's figures get a prefix
            metrics.update({f"inference_{k}": v for k, v in inference.items() if k in ("samples", "wall_s", "throughput_samples_per_s")})
    metrics.update(gpu_peak_memory(cfg.device), **peak_memory(), total_wall_s=time.monotonic() - t_start)

    mark_outcome(metrics)
    print(summary_line(cfg, metrics), flush=True)
    if a.result is not None:
        workload = "infer" if cfg.command == "infer" else "train"
        write_result(a.result, workload=workload, primary_phase="inference" if workload == "infer" else "train",
                     params=cfg.params(), metrics=metrics, hardware=torchutil.hardware(cfg.device))
    return 0


def summary_line(cfg: Config, m: dict[str, Any]) -> str:
    what = "inference" if cfg.command == "infer" else "training"
    line = (f"done: {cfg.args.arch} {what} {m['samples']} samples at {m['throughput_samples_per_s']:.1f} samples/s; "
            f"accuracy {m['accuracy']:.3f}, loss {m['loss']:.4f}")
    if cfg.command != "infer":
        line += f" (eval loss {m['eval_loss']:.4f})"
    if "inference_throughput_samples_per_s" in m:
        line += f"; inference {m['inference_throughput_samples_per_s']:.1f} samples/s"
    return line + f"; {m['model_macs'] / 1e6:.1f} MMAC/sample, {m['model_params'] / 1e6:.2f} M params"


def main(argv: list[str]) -> int:
    """``argv[0]`` is the command (demo, train, infer); the rest are its flags."""
    command, rest = (argv[0], argv[1:]) if argv else ("train", [])
    if command not in ("demo", "train", "infer"):
        print(f"workloads: unknown command {command!r} (demo, train, infer)", file=sys.stderr)
        return 2
    try:
        args = build_parser(command).parse_args(rest)
    except SystemExit as exc:  # --help (0) or a one-line usage error (2): a status, not an exit
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    prog = f"workloads {command}"
    try:
        cfg = resolve(command, args)
        return run(cfg)
    except (UsageError, DataError, VisionConfigError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
