"""BERT-style classifiers (random init, nothing downloaded) and the token data they read.

Models: ``BertForSequenceClassification`` from a ``BertConfig`` (tiny: 2 layers / 128 hidden /
2 heads; base: 12 / 768 / 12; large: 24 / 1024 / 16; feed-forward 4x hidden), wrapped so that
``model(input_ids, attention_mask)`` returns the logits like every other model here.

Data (``--data``):

- ``synthetic``: sequences of ``--seq-len`` tokens, the first a CLS token (id 1). The content
  ids ``4 .. vocab-1`` are cut into ``num_classes`` equal ranges; each sequence leans on one
  range (half of its tokens drawn from it, the rest uniform) and its label is *the range that
  holds the most of its tokens* (ties: the lowest), computed from the tokens themselves, so the
  rule is exact and learnable: accuracy far above chance means the model learned to count.
- ``digits``: each 8x8 digit (values 0..16) becomes CLS followed by 64 tokens, token = 4 +
  17 * pixel_position + value (needs vocab >= 1092), padded (id 0, masked out) to ``--seq-len``
  (>= 65). Real data, same split as the image workloads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from workloads.data import Batch, DataError, Splits, _cap, digits_arrays

PAD_ID, CLS_ID, FIRST_CONTENT_ID = 0, 1, 4
DIGIT_LEVELS = 17  # digit pixels are 0..16
DIGIT_PIXELS = 64

# name -> (layers, hidden, heads)
BERT_SIZES: dict[str, tuple[int, int, int]] = {
    "bert-tiny": (2, 128, 2),
    "bert-base": (12, 768, 12),
    "bert-large": (24, 1024, 16),
}


class BertClassifier(nn.Module):
    """``BertForSequenceClassification`` with a plain ``(input_ids, attention_mask) -> logits``."""

    def __init__(self, arch: str, num_classes: int, vocab_size: int, seq_len: int) -> None:
        super().__init__()
        from transformers import (  # slow import: only for BERT
            BertConfig,
            BertForSequenceClassification,
        )

        layers, hidden, heads = BERT_SIZES[arch]
        config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=4 * hidden,
                            max_position_embeddings=max(512, seq_len),
                            num_labels=num_classes)  # type: ignore[call-arg]  # a PretrainedConfig kwarg
        self.bert = BertForSequenceClassification(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).logits  # type: ignore[no-any-return]


class TokenSet(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    def __init__(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.mask, self.labels = ids, mask, labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.ids[i], self.mask[i], int(self.labels[i])


@dataclass(frozen=True)
class TokenCollate:
    """Stack a batch of (ids, mask, label) into ``((ids, mask), labels)``; picklable for workers."""

    def __call__(self, items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
        ids = torch.stack([it[0] for it in items])
        mask = torch.stack([it[1] for it in items])
        labels = torch.tensor([it[2] for it in items], dtype=torch.long)
        return (ids, mask), labels


def range_labels(ids: torch.Tensor, num_classes: int, vocab_size: int) -> torch.Tensor:
    """The class whose token range holds most of each row's content tokens (ties: lowest)."""
    width = (vocab_size - FIRST_CONTENT_ID) // num_classes
    content = ids >= FIRST_CONTENT_ID
    which = ((ids - FIRST_CONTENT_ID).clamp(min=0) // width).clamp(max=num_classes - 1)
    counts = torch.zeros(ids.shape[0], num_classes, dtype=torch.long)
    counts.scatter_add_(1, which, content.long())
    return counts.argmax(dim=1)  # argmax returns the first maximum


def synthetic_tokens(n: int, seq_len: int, vocab_size: int, num_classes: int, seed: int) -> TokenSet:
    g = torch.Generator().manual_seed(seed)
    width = (vocab_size - FIRST_CONTENT_ID) // num_classes
    lean = torch.randint(0, num_classes, (n, 1), generator=g)
    from_range = FIRST_CONTENT_ID + lean * width + torch.randint(0, width, (n, seq_len - 1), generator=g)
    uniform = torch.randint(FIRST_CONTENT_ID, vocab_size, (n, seq_len - 1), generator=g)
    body = torch.where(torch.rand(n, seq_len - 1, generator=g) < 0.5, from_range, uniform)
    ids = torch.cat([torch.full((n, 1), CLS_ID, dtype=torch.long), body], dim=1)
    return TokenSet(ids, torch.ones_like(ids), range_labels(ids, num_classes, vocab_size))


def check_token_shape(data: str, seq_len: int, vocab_size: int, num_classes: int) -> None:
    """Refuse shapes the data cannot take, with one line (DataError)."""
    if data == "digits":
        if seq_len < DIGIT_PIXELS + 1:
            raise DataError(f"digits as tokens need --seq-len >= {DIGIT_PIXELS + 1}, not {seq_len}")
        if vocab_size < FIRST_CONTENT_ID + DIGIT_PIXELS * DIGIT_LEVELS:
            raise DataError(f"digits as tokens need --vocab-size >= {FIRST_CONTENT_ID + DIGIT_PIXELS * DIGIT_LEVELS}")
    elif data == "synthetic":
        if seq_len < 2:
            raise DataError("--seq-len must be at least 2 (CLS and one token)")
        if vocab_size - FIRST_CONTENT_ID < num_classes:
            raise DataError(f"--vocab-size {vocab_size} is too small for {num_classes} classes")
    else:
        raise DataError(f"BERT models read --data synthetic or digits, not {data}")


def digit_tokens(images: torch.Tensor, labels: torch.Tensor, seq_len: int) -> TokenSet:
    n = images.shape[0]
    pixels = images.reshape(n, DIGIT_PIXELS).long()
    body = FIRST_CONTENT_ID + DIGIT_LEVELS * torch.arange(DIGIT_PIXELS) + pixels
    ids = torch.full((n, seq_len), PAD_ID, dtype=torch.long)
    ids[:, 0] = CLS_ID
    ids[:, 1:DIGIT_PIXELS + 1] = body
    mask = (ids != PAD_ID).long()
    return TokenSet(ids, mask, labels)


def token_splits(data: str, seq_len: int, vocab_size: int, num_classes: int, n_train: int | None,
                 n_eval: int | None, seed: int, synthetic_train: int, synthetic_eval: int) -> Splits:
    check_token_shape(data, seq_len, vocab_size, num_classes)
    if data == "digits":
        xtr, ytr, xev, yev = digits_arrays()
        train = _cap(digit_tokens(torch.from_numpy(xtr), torch.from_numpy(ytr), seq_len), n_train)
        ev = _cap(digit_tokens(torch.from_numpy(xev), torch.from_numpy(yev), seq_len), n_eval)
        return Splits(train, ev, TokenCollate(), f"digit tokens {len(train)}/{len(ev)}")  # type: ignore[arg-type]
    n_tr = n_train if n_train is not None else synthetic_train
    n_ev = n_eval if n_eval is not None else synthetic_eval
    train_set = synthetic_tokens(n_tr, seq_len, vocab_size, num_classes, seed + 1)
    eval_set = synthetic_tokens(n_ev, seq_len, vocab_size, num_classes, seed + 2)
    return Splits(train_set, eval_set, TokenCollate(), f"synthetic tokens {n_tr}/{n_ev}")
