"""Data for the discriminative workloads: scikit-learn's digits, a synthetic generator, CIFAR-10.

Nothing is ever downloaded: digits ship inside scikit-learn, CIFAR-10 is read from a folder the
user gives (the standard "python version": ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
pickles, each a dict with ``b"data"`` (N, 3072) uint8 and ``b"labels"``), and synthetic data is
made here.

Images are kept small in memory (digits at 8x8, CIFAR as uint8) and brought to the model's shape
a batch at a time by ``ImageCollate``, so ``--image-size 224`` does not multiply the memory by 49
and the work is spread over DataLoader workers when there are some.

Synthetic images follow a learnable rule: every class has a fixed random low-frequency pattern
(4x4 per channel, upsampled) and an image is its class's pattern plus Gaussian noise (std 1), so
accuracy well above chance is reachable; labels are uniformly random. The noise comes from a
bank of at most ~64 MiB, reused by index, so any shape costs one addition per sample.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

DIGITS_EVAL_FRACTION = 0.2  # 1797 digits -> 1437 train / 360 eval
SPLIT_SEED = 0  # the digits split never depends on --seed: every run evaluates on the same images
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
SYNTHETIC_NOISE_BANK_BYTES = 64 * 2**20
SYNTHETIC_PATTERN_SIZE = 4


class DataError(ValueError):
    """Data that cannot be had: a missing or garbled file, an impossible shape. One line."""


# A batch as every loop here sees it: the model's inputs (passed as ``model(*inputs)``), labels.
Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]


class ImageSet(Dataset[tuple[torch.Tensor, int]]):
    """Images at their stored size and type (``images``: (N, C, H, W)), labels (N,)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


class SyntheticImages(Dataset[tuple[torch.Tensor, int]]):
    """``n`` images of shape (3, size, size): class pattern + noise from a bank (see module doc)."""

    def __init__(self, n: int, size: int, num_classes: int, pattern_seed: int, sample_seed: int) -> None:
        g = torch.Generator().manual_seed(pattern_seed)
        small = torch.randn(num_classes, 3, SYNTHETIC_PATTERN_SIZE, SYNTHETIC_PATTERN_SIZE, generator=g)
        self.patterns = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
        g = torch.Generator().manual_seed(sample_seed)
        self.labels = torch.randint(0, num_classes, (n,), generator=g)
        bank = max(1, min(n, SYNTHETIC_NOISE_BANK_BYTES // (3 * size * size * 4)))
        self.noise = torch.randn(bank, 3, size, size, generator=g)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        y = int(self.labels[i])
        return self.patterns[y] + self.noise[i % self.noise.shape[0]], y


@dataclass(frozen=True)
class ImageCollate:
    """Stack a batch, scale and normalise it, resize to ``size`` and give it 3 channels.

    A module-level class, not a closure: DataLoader workers must be able to pickle it."""

    size: int
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __call__(self, items: list[tuple[torch.Tensor, int]]) -> Batch:
        x = torch.stack([img for img, _ in items]).float()
        y = torch.tensor([label for _, label in items], dtype=torch.long)
        # Skipped when it is the identity (synthetic data): at 224x224 each pass over a batch costs.
        if self.scale != 1.0:
            x = x * self.scale
        if any(m != 0.0 for m in self.mean) or any(s != 1.0 for s in self.std):
            mean = torch.tensor(self.mean).view(1, -1, 1, 1)
            std = torch.tensor(self.std).view(1, -1, 1, 1)
            x = (x - mean) / std
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x.contiguous(),), y


@dataclass
class Splits:
    """A dataset's train and eval parts and the collate function that makes their batches."""

    train: Dataset[Any] | None
    eval: Dataset[Any]
    collate: Any
    source: str  # a few words for the summary, e.g. "digits 1437/360"


def _cap(ds: Dataset[Any], n: int | None) -> Dataset[Any]:
    """The first ``n`` items (all when ``n`` is None or larger)."""
    size = len(ds)  # type: ignore[arg-type]
    if n is None or n >= size:
        return ds
    return torch.utils.data.Subset(ds, range(n))


def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits (8x8, values 0..16), split deterministically 80/20."""
    from sklearn.datasets import (
        load_digits,  # scikit-learn only when digits are asked for
    )

    d = load_digits()
    images = d.images.astype(np.uint8)  # (1797, 8, 8), 0..16
    labels = d.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    n_eval = int(round(len(labels) * DIGITS_EVAL_FRACTION))
    ev, tr = order[:n_eval], order[n_eval:]
    return images[tr], labels[tr], images[ev], labels[ev]


def digits_images(image_size: int, train_cap: int | None, eval_cap: int | None) -> Splits:
    xtr, ytr, xev, yev = digits_arrays()

    def make(x: np.ndarray, y: np.ndarray) -> ImageSet:
        return ImageSet(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y))

    train, ev = _cap(make(xtr, ytr), train_cap), _cap(make(xev, yev), eval_cap)
    collate = ImageCollate(size=image_size, scale=1.0 / 16.0, mean=(0.5,), std=(0.5,))
    return Splits(train, ev, collate, f"digits {len(train)}/{len(ev)}")  # type: ignore[arg-type]


def synthetic_images(image_size: int, num_classes: int, n_train: int, n_eval: int, seed: int) -> Splits:
    # Both parts share the class patterns (the rule to learn) but not labels or noise.
    train = SyntheticImages(n_train, image_size, num_classes, pattern_seed=seed, sample_seed=seed + 1)
    ev = SyntheticImages(n_eval, image_size, num_classes, pattern_seed=seed, sample_seed=seed + 2)
    return Splits(train, ev, ImageCollate(size=image_size), f"synthetic {n_train}/{n_eval}")


def _restricted_load(path: Path) -> Any:
    """Unpickle a CIFAR batch allowing only what one holds (numpy arrays, builtins): a pickle can
    run any code, and the path is the user's."""
    import numpy

    try:
        from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined,no-redef]
    allowed = {"_reconstruct": _reconstruct, "ndarray": numpy.ndarray, "dtype": numpy.dtype}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module.startswith("numpy") and name in allowed:
                return allowed[name]
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")

    with path.open("rb") as f:
        return Unpickler(f, encoding="bytes").load()


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> images (N, 3, 32, 32) uint8, labels (N,) int64."""
    if not path.is_file():
        raise DataError(f"CIFAR-10: {path} is missing (expected the python version: "
                        f"{', '.join(CIFAR_TRAIN_FILES)}, {CIFAR_TEST_FILE})")
    try:
        doc = _restricted_load(path)
        data = np.asarray(doc[b"data"], dtype=np.uint8)
        labels = np.asarray(doc[b"labels"], dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 -- any garbling is the same one-line error
        raise DataError(f"CIFAR-10: {path} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise DataError(f"CIFAR-10: {path} has data {data.shape} and labels {labels.shape}, "
                        "expected (N, 3072) and (N,)")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"CIFAR-10: {path} has labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """All five training batches, or the test batch. Also accepts the archive's own sub-folder."""
    if not folder.is_dir():
        raise DataError(f"CIFAR-10: {folder} is not a folder (give --data-path the unpacked cifar-10-batches-py)")
    if not (folder / CIFAR_TEST_FILE).exists() and (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = CIFAR_TRAIN_FILES if train else (CIFAR_TEST_FILE,)
    parts = [read_cifar_batch(folder / n) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cifar_images(folder: Path, image_size: int, train_cap: int | None, eval_cap: int | None,
                 need_train: bool = True) -> Splits:
    xev, yev = read_cifar(folder, train=False)
    ev = _cap(ImageSet(torch.from_numpy(xev), torch.from_numpy(yev)), eval_cap)
    train: Dataset[Any] | None = None
    if need_train:
        xtr, ytr = read_cifar(folder, train=True)
        train = _cap(ImageSet(torch.from_numpy(xtr), torch.from_numpy(ytr)), train_cap)
    collate = ImageCollate(size=image_size, scale=1.0 / 255.0, mean=CIFAR_MEAN, std=CIFAR_STD)
    n_train = len(train) if train is not None else 0  # type: ignore[arg-type]
    return Splits(train, ev, collate, f"cifar10 {n_train}/{len(ev)}")  # type: ignore[arg-type]
