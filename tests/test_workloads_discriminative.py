"""The discriminative workloads (``python -m workloads train|infer|demo``): data readers, bad
input, and each family end to end under a real ``greentop record`` on a fake host."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")

import torch  # noqa: E402

from greentop.trace import load  # noqa: E402
from greentop.tracedata import TraceData  # noqa: E402
from workloads import discriminative  # noqa: E402
from workloads.data import DataError, cifar_images, digits_images, read_cifar  # noqa: E402
from workloads.text import range_labels, synthetic_tokens  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- helpers


def record(tmp_path: Path, env: dict[str, str], *workload_argv: str) -> tuple[subprocess.CompletedProcess[str], TraceData]:
    out = tmp_path / "run.h5"
    proc = subprocess.run([sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--",
                           sys.executable, "-m", "workloads", *workload_argv],
                          env=env, capture_output=True, text=True, cwd=REPO, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, load(out)


def names(tr: TraceData) -> list[str]:
    return [p.name for p in tr.phases]


def samples_in(tr: TraceData, phase_name: str) -> float:
    """Samples counted inside every phase of that name (counts belong to the innermost phase)."""
    inside = {p.index for p in tr.phases if p.name == phase_name}
    return sum(c.value for c in tr.counts if c.name == "samples" and c.phase in inside)


def per_sample_j(trace_path: Path, phase_name: str) -> float:
    r = subprocess.run([sys.executable, "-m", "greentop", "summary", str(trace_path), "--format", "json"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    row = next(r for r in json.loads(r.stdout)["rows"] if r["name"] == phase_name)
    total = next(d for d in row["domains"] if d["domain"] == "total")
    return float(total["per_unit_j"]["samples"])


class PhaseLog:
    """Stands in for ``greentop`` in the workload module, in process: the phases in the order they
    open, and the samples counted in each (counts belong to the innermost phase, as in a trace)."""

    def __init__(self) -> None:
        self.phases: list[str] = []
        self.samples: list[int] = []
        self._open: list[int] = []

    @contextlib.contextmanager
    def phase(self, name: str, **attrs: Any) -> Iterator[None]:
        self.phases.append(name)
        self.samples.append(0)
        self._open.append(len(self.phases) - 1)
        try:
            yield
        finally:
            self._open.pop()

    def count(self, samples: int = 0, **other: Any) -> None:
        assert self._open, "counted outside every phase"
        self.samples[self._open[-1]] += samples

    def samples_in(self, name: str) -> int:
        return sum(n for p, n in zip(self.phases, self.samples) if p == name)


@pytest.fixture
def phase_log(monkeypatch: pytest.MonkeyPatch) -> PhaseLog:
    log = PhaseLog()
    monkeypatch.setattr(discriminative, "greentop", log)
    return log


def write_cifar(folder: Path, n_per_batch: int = 4) -> None:
    """Tiny CIFAR-10 batches in the standard layout; pixel values encode (batch, index)."""
    folder.mkdir(parents=True, exist_ok=True)
    for b, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = np.full((n_per_batch, 3072), b * 10, dtype=np.uint8) + np.arange(n_per_batch, dtype=np.uint8)[:, None]
        doc = {b"batch_label": name.encode(), b"labels": [(b + i) % 10 for i in range(n_per_batch)], b"data": data}
        with (folder / name).open("wb") as f:
            pickle.dump(doc, f)


# ----------------------------------------------------------------------------- data


def test_cifar_reader_reads_the_standard_python_batches(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar")
    x, y = read_cifar(tmp_path / "cifar", train=True)
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8 and y.tolist()[:5] == [0, 1, 2, 3, 1]
    assert x[4, 0, 0, 0] == 10  # the second batch's first image follows the first's four
    xt, yt = read_cifar(tmp_path / "cifar", train=False)
    assert xt.shape == (4, 3, 32, 32) and yt.tolist() == [5, 6, 7, 8]
    splits = cifar_images(tmp_path / "cifar", image_size=40, train_cap=6, eval_cap=None)
    assert len(splits.train) == 6 and len(splits.eval) == 4  # type: ignore[arg-type]
    (images,), labels = splits.collate([splits.eval[i] for i in range(4)])
    assert images.shape == (4, 3, 40, 40) and images.dtype == torch.float32 and labels.tolist() == [5, 6, 7, 8]


@pytest.mark.parametrize("damage, message", [
    ("missing", "data_batch_3 is missing"),
    ("garbled", "not a CIFAR-10 python batch"),
    ("shape", "expected (N, 3072)"),
    ("code", "not a CIFAR-10 python batch"),  # a pickle that would call something else is refused
])
def test_cifar_reader_missing_or_garbled_files_are_one_line(tmp_path: Path, damage: str, message: str) -> None:
    write_cifar(tmp_path)
    target = tmp_path / "data_batch_3"
    if damage == "missing":
        target.unlink()
    elif damage == "garbled":
        target.write_bytes(b"\x80\x04not a pickle at all")
    elif damage == "shape":
        target.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    else:
        target.write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(DataError) as err:
        read_cifar(tmp_path, train=True)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_digits_split_is_deterministic_and_upscaled_to_three_channels() -> None:
    a = digits_images(32, None, None)
    b = digits_images(32, None, None)
    assert (len(a.train), len(a.eval)) == (1438, 359)  # type: ignore[arg-type]
    assert torch.equal(a.eval[0][0], b.eval[0][0])
    (x,), y = a.collate([a.train[i] for i in range(8)])
    assert x.shape == (8, 3, 32, 32) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_synthetic_tokens_label_is_the_most_frequent_token_range() -> None:
    ds = synthetic_tokens(200, seq_len=16, vocab_size=104, num_classes=4, seed=3)
    assert torch.equal(ds.labels, range_labels(ds.ids, 4, 104))
    assert int(ds.ids[:, 0].unique().numel()) == 1  # every sequence opens with CLS
    assert len(set(ds.labels.tolist())) == 4  # every class occurs


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv, message", [
    (["train", "--arch", "resnet9000"], "invalid choice"),
    (["train", "--precision", "fp16", "--device", "cpu"], "fp16 needs a GPU"),
    (["train", "--data", "cifar10"], "needs --data-path"),
    (["infer", "--data", "cifar10", "--data-path", "/no/such/dir"], "is not a folder"),
    (["train", "--batch-size", "0"], "must be at least 1"),
    (["train", "--arch", "vit", "--image-size", "250"], "multiple of 16"),
    (["train", "--arch", "bert-tiny", "--data", "digits", "--seq-len", "20"], "--seq-len >= 65"),
])
def test_bad_input_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert discriminative.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_input_from_the_command_line_has_no_traceback() -> None:
    r = subprocess.run([sys.executable, "-m", "workloads", "infer", "--device", "cpu", "--precision", "fp16"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "fp16" in r.stderr


# ----------------------------------------------------------------------------- training warm-up, in process


TINY_TRAIN = ["--arch", "smallcnn", "--data", "synthetic", "--eval-samples", "8", "--batch-size", "8", "--device", "cpu"]


@pytest.mark.parametrize("warmup_steps, phases", [
    ("0", ["data-loading", "train", "epoch", "evaluation"]),
    ("2", ["data-loading", "warmup", "train", "epoch", "evaluation"]),
])
def test_warmup_steps_come_before_train_uncounted(tmp_path: Path, phase_log: PhaseLog, capsys: pytest.CaptureFixture[str],
                                                 warmup_steps: str, phases: list[str]) -> None:
    result = tmp_path / "result.json"
    argv = ["train", *TINY_TRAIN, "--train-samples", "24", "--steps", "2", "--warmup-steps", warmup_steps, "--result", str(result)]
    assert discriminative.main(argv) == 0
    assert phase_log.phases == phases
    assert phase_log.samples_in("warmup") == 0 and phase_log.samples_in("epoch") == 2 * 8
    doc = json.loads(result.read_text())
    assert doc["metrics"]["steps"] == 2 and doc["metrics"]["samples"] == 16 and doc["params"]["warmup_steps"] == int(warmup_steps)
    assert "epoch 1/1: " in capsys.readouterr().out


def test_warmup_steps_train_but_leave_the_schedule_alone(phase_log: PhaseLog) -> None:
    args = discriminative.build_parser("train").parse_args([*TINY_TRAIN, "--train-samples", "16", "--optimizer", "adam",
                                                            "--schedule", "cosine", "--warmup-steps", "3"])
    cfg = discriminative.resolve("train", args)
    loader = discriminative.make_loader(cfg, discriminative.build_splits(cfg, need_train=True), "train")
    assert len(loader) == 2
    model = discriminative.build_model(cfg)
    opt = discriminative.make_optimizer(cfg, model)
    schedule = discriminative.make_schedule(cfg, opt, total_steps=2)
    assert schedule is not None
    trainer = discriminative.Trainer(cfg, model, opt, schedule, None)
    first = next(model.parameters())
    before = first.detach().clone()

    discriminative.warm_up(cfg, trainer, loader)
    assert phase_log.phases == ["warmup"] and phase_log.samples == [0]
    assert int(opt.state[first]["step"]) == 2  # a loader of 2 batches runs 2 of the 3 steps asked for
    assert not torch.equal(first.detach(), before)  # full steps: the weights move (warm_up says why that is fine)
    assert schedule.last_epoch == 0 and opt.param_groups[0]["lr"] == cfg.lr

    trained = discriminative.train(cfg, trainer, loader)
    assert trained.extra["steps"] == 2 and trained.samples == 16 and phase_log.samples_in("epoch") == 16
    assert schedule.last_epoch == 2 and opt.param_groups[0]["lr"] == pytest.approx(0.0)  # the whole cosine, after warm-up


# ----------------------------------------------------------------------------- end to end, recorded


def test_demo_trains_on_digits_beats_chance_then_infers(tmp_path: Path, host_env: dict[str, str]) -> None:
    """The README's main job (shortened): smallcnn on digits, evaluation, then inference."""
    result = tmp_path / "result.json"
    proc, tr = record(tmp_path, host_env, "demo", "--epochs", "2", "--train-samples", "640", "--samples", "100", "--schedule", "cosine",
                      "--warmup-steps", "3", "--result", str(result))
    assert names(tr) == ["data-loading", "warmup", "train", "epoch", "epoch", "evaluation", "warmup", "inference"]
    train, epochs = tr.phases[2], tr.phases[3:5]
    assert [p.attrs["epoch"] for p in epochs] == [0, 1] and all(p.parent == train.index for p in epochs)
    doc: dict[str, Any] = json.loads(result.read_text())
    m, params = doc["metrics"], doc["params"]
    assert (doc["workload"], doc["primary_phase"]) == ("train", "train")
    assert samples_in(tr, "epoch") == m["samples"] == 2 * 640  # 20 whole batches per epoch
    assert samples_in(tr, "evaluation") == m["eval_samples"] == 359
    assert samples_in(tr, "inference") == m["inference_samples"] == 4 * 32  # 100 rounded up to whole batches
    assert samples_in(tr, "warmup") == 0  # neither training's warm-up steps nor inference's warm-up batches
    assert m["steps"] == 40 and m["epochs_done"] == 2  # the warm-up steps are not training steps
    assert m["accuracy"] > 0.5  # chance is 0.1
    outcome = [mk for mk in tr.marks if mk.name == "outcome"]  # the trace holds the accuracy too
    assert len(outcome) == 1 and outcome[0].attrs["accuracy"] == pytest.approx(m["accuracy"])
    assert m["model_params"] > 0 and m["model_macs"] > 1_000_000 and m["throughput_samples_per_s"] > 0
    assert m["loss"] > 0 and m["eval_loss"] > 0 and m["cpu_util_pct"] is not None and m["gpu_util_pct"] is None
    assert params["arch"] == "smallcnn" and params["data"] == "digits" and params["batch_size"] == 32
    assert params["optimizer"] == "adam" and params["lr"] == 0.002 and params["schedule"] == "cosine"
    assert params["epochs"] == 2 and params["train_samples"] == 640 and params["phase_detail"] == "epoch" and doc["hardware"]["device"] == "cpu"
    assert params["warmup_steps"] == 3 and params["warmup_batches"] == 2
    # A CNN has no sequence: a seq_len in its row would read as one to the report's model and tables.
    assert "seq_len" not in params and "vocab_size" not in params and "image_size" in params
    assert "epoch 1/2" in proc.stdout and "epoch 2/2" in proc.stdout
    assert "accuracy" in proc.stdout.splitlines()[-1]
    assert per_sample_j(tmp_path / "run.h5", "train") > 0


def test_phase_detail_step_tags_forward_backward_optimizer(tmp_path: Path, host_env: dict[str, str]) -> None:
    _, tr = record(tmp_path, host_env, "train", "--arch", "resnet18", "--data", "synthetic", "--train-samples", "32",
                   "--eval-samples", "8", "--batch-size", "8", "--steps", "3", "--device", "cpu", "--phase-detail", "step")
    step_parts = ["forward", "backward", "optimizer"]
    # The default 5 warm-up steps run the loader's 4 batches, with no step phases of their own.
    assert names(tr) == ["data-loading", "warmup", "train", "epoch", *step_parts * 3, "evaluation"]
    epoch = tr.phases[3]
    assert all(p.parent == epoch.index for p in tr.phases[4:13])
    assert tr.phases[1].parent == -1 and tr.phases[1].end_ns <= tr.phases[2].start_ns
    assert samples_in(tr, "warmup") == 0
    assert samples_in(tr, "epoch") == 24 and samples_in(tr, "evaluation") == 8  # --steps 3 of batch 8, warm-up or not


def test_bert_tiny_trains_on_synthetic_tokens(tmp_path: Path, host_env: dict[str, str]) -> None:
    result = tmp_path / "bert.json"
    _, tr = record(tmp_path, host_env, "train", "--arch", "bert-tiny", "--data", "synthetic", "--seq-len", "32",
                   "--vocab-size", "1000", "--train-samples", "64", "--eval-samples", "32", "--batch-size", "16",
                   "--device", "cpu", "--result", str(result))
    assert names(tr) == ["data-loading", "warmup", "train", "epoch", "evaluation"]
    doc = json.loads(result.read_text())
    m = doc["metrics"]
    assert samples_in(tr, "epoch") == m["samples"] == 64 and samples_in(tr, "evaluation") == 32
    assert doc["params"]["seq_len"] == 32 and "image_size" not in doc["params"]  # a text model has no image size
    # Two layers of 128 at 32 tokens: linear layers plus attention's two matrix products.
    assert m["model_macs"] > 2 * 32 * (4 * 128 * 128 + 2 * 128 * 512)
    assert 0.0 <= m["accuracy"] <= 1.0


def test_infer_vit_at_32_counts_only_the_inference_batches(tmp_path: Path, host_env: dict[str, str]) -> None:
    result = tmp_path / "vit.json"
    _, tr = record(tmp_path, host_env, "infer", "--arch", "vit", "--image-size", "32", "--data", "synthetic",
                   "--eval-samples", "8", "--batch-size", "4", "--samples", "10", "--warmup-batches", "1",
                   "--device", "cpu", "--result", str(result))
    assert names(tr) == ["data-loading", "warmup", "inference"]
    doc = json.loads(result.read_text())
    assert (doc["workload"], doc["primary_phase"]) == ("infer", "inference")
    assert samples_in(tr, "inference") == doc["metrics"]["samples"] == 12  # 10 rounded up to whole batches
    assert samples_in(tr, "warmup") == 0
    assert doc["params"]["arch"] == "vit" and doc["params"]["image_size"] == 32
    assert per_sample_j(tmp_path / "run.h5", "inference") > 0
