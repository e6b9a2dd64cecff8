"""Per-sample forward multiply-accumulates (MACs) of a model, for the result document.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2) over one forward pass of a
single sample: convolutions, linear layers and matrix products, attention's QK^T and AV
included. Attention is forced onto SDPA's "math" backend for the count, so it decomposes into
matrix products the counter sees on every device; the fused CPU/GPU kernels it replaces do the
same multiplications. Normalisation, activations, pooling and embedding look-ups are not MACs
and are not counted. BERT counts its padded positions too (they are computed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def _math_attention() -> Iterator[None]:
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # very old torch: nothing to force
        yield
        return
    with sdpa_kernel(SDPBackend.MATH):
        yield


def forward_macs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """MACs of ``model(*inputs)`` for the first sample of ``inputs``; the model's mode is restored.

    Eval mode (BatchNorm must not update its statistics) but with autograd on: in eval mode
    without grad, ``nn.MultiheadAttention`` takes a fused fast path the counter cannot see."""
    from torch.utils.flop_counter import FlopCounterMode

    one = tuple(x[:1] for x in inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), _math_attention(), FlopCounterMode(display=False) as counter:
            model(*one)
        return int(counter.get_total_flops()) // 2
    finally:
        model.train(was_training)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
