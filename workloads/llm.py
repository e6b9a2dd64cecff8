"""Llama-architecture language models for the generative workloads, and the greedy decode they share.

Models are built from a named shape (``tiny`` ... ``8b``) with random weights: the energy of a
forward pass depends on the shapes and the precision, not on the values. ``--model PATH`` loads a
local checkpoint instead (never the network).

No tokenizer is ever available (no downloads), so prompts are token ids. Text is mapped to ids
and back deterministically, and documented as such (see ``text_to_ids`` / ``ids_to_text``):

- text -> ids: the UTF-8 bytes of the text, each taken modulo the vocabulary size;
- id -> text: one printable ASCII character per token, ``chr(32 + id % 95)``; so a completion of
  N tokens is exactly N characters long.
"""

from __future__ import annotations

import contextlib

import sys
from dataclasses import dataclass
from typing import Any

import torch

# Named shapes. 1b/3b/8b are the Llama 3.x shapes; 0.1b and 0.5b are scaled-down members of the
# same family (GQA, SwiGLU, RMSNorm, tied embeddings), 0.1b with the 32k Llama-2 vocabulary so
# that the embedding does not dominate. Parameter counts (unique, tied counted once) are
# computed, never quoted: see ``count_params``.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=512, tie_word_embeddings=True, max_position_embeddings=2048),
    "0.1b": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                 intermediate_size=2048, vocab_size=32000, tie_word_embeddings=True, max_position_embeddings=8192),
    "0.5b": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=8,
                 intermediate_size=4096, vocab_size=128256, tie_word_embeddings=True, max_position_embeddings=8192),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True, max_position_embeddings=8192),
    "3b": dict(hidden_size=3072, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8,
               intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True, max_position_embeddings=8192),
    "8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False, max_position_embeddings=8192),
}

_INIT_STD = 0.02  # the Llama initializer range: keeps activations of a random model finite
_POOL_SIZE = 1 << 20  # random values tiled into every weight (see _fill_random)


class UsageError(ValueError):
    """Bad input from the command line: reported as one stderr line and exit status 2."""


def usage_exit(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def build_config(size: str) -> Any:
    """The ``LlamaConfig`` of a named size."""
    from transformers import LlamaConfig

    if size not in SIZES:
        raise UsageError(f"unknown model size {size!r}; one of: {', '.join(SIZES)}")
    return LlamaConfig(**SIZES[size])


def count_params(model: torch.nn.Module) -> int:
    """Unique parameters (``parameters()`` yields a tied weight once)."""
    return sum(p.numel() for p in model.parameters())


def params_of_size(size: str) -> int:
    """Parameter count of a named size, built on the meta device (no memory, about a second for 8b)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(build_config(size))
    return count_params(model)


def _fill_random(model: torch.nn.Module, seed: int) -> None:
    """Random weights, fast on any device: a seeded pool of N(0, 0.02) values tiled over every
    matrix (norm gains set to 1). ``normal_`` over 1B bf16 values takes ~30 s on a CPU; copying
    a pool is memory-bound. Values only need to be plausible: energy depends on shapes."""
    gen = torch.Generator().manual_seed(seed)
    pool_cpu = torch.randn(_POOL_SIZE, generator=gen) * _INIT_STD
    pools: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            if p.dim() < 2:  # RMSNorm gains (Llama has no biases)
                p.fill_(1.0)
                continue
            key = (p.device, p.dtype)
            if key not in pools:
                pools[key] = pool_cpu.to(device=p.device, dtype=p.dtype)
            pool = pools[key]
            flat = p.view(-1)
            shift = (i * 7919) % _POOL_SIZE  # a different phase per tensor, so layers differ
            pos = 0
            while pos < flat.numel():
                n = min(flat.numel() - pos, _POOL_SIZE - shift)
                flat[pos:pos + n].copy_(pool[shift:shift + n])
                pos += n
                shift = 0


def _rebuild_rotary(model: torch.nn.Module, device: torch.device) -> None:
    """Rotary embeddings keep computed (non-persistent) buffers, which ``to_empty`` leaves as
    garbage: rebuild those modules on the device from the config (ctor is ``(config, ...)`` in
    every transformers release we support)."""
    config = model.config
    for name, module in list(model.named_modules()):
        if "inv_freq" in dict(module.named_buffers(recurse=False)):
            with torch.device(device):
                fresh = type(module)(config)
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, fresh)


def build_random(size: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """A random-weight Llama of a named size, made directly on ``device`` in ``dtype``.

    Built on the meta device first (transformers skips weight init there), then given real but
    uninitialised storage on the device and filled by ``_fill_random``: seconds even for 8b,
    where the library's own init on a CPU takes minutes."""
    from transformers import AutoModelForCausalLM

    config = build_config(size)
    with torch.device("meta"):
        # ``dtype=`` is the keyword in transformers 5.x (``torch_dtype`` is the deprecated alias).
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.to_empty(device=device)
    if config.tie_word_embeddings:
        model.tie_weights()  # to_empty gives each reference its own storage; tie them again
    _fill_random(model, seed)
    _rebuild_rotary(model, device)
    return model.eval()


def load_checkpoint(path: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A local Hugging Face checkpoint directory; never touches the network."""
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    return model.to(device).eval()  # type: ignore[no-any-return]


@dataclass
class LoadedModel:
    model: torch.nn.Module
    name: str  # the size, or the checkpoint path
    params: int
    vocab_size: int
    max_positions: int
    device: torch.device
    dtype: torch.dtype


def load_model(size: str, path: str | None, device: torch.device, dtype: torch.dtype, seed: int = 0) -> LoadedModel:
    model = load_checkpoint(path, device, dtype) if path else build_random(size, device, dtype, seed)
    cfg: Any = model.config
    return LoadedModel(model=model, name=path or size, params=count_params(model), vocab_size=int(cfg.vocab_size),
                       max_positions=int(getattr(cfg, "max_position_embeddings", 2048) or 2048), device=device, dtype=dtype)


def check_precision(device: torch.device, precision: str) -> None:
    if device.type == "cpu" and precision == "fp16":
        raise UsageError("fp16 needs a GPU; use bf16 or fp32 on the CPU")


# ---- text <-> token ids (no tokenizer is ever available) --------------------------------------


def text_to_ids(text: str, vocab_size: int) -> list[int]:
    """UTF-8 bytes modulo the vocabulary: deterministic, no tokenizer."""
    return [b % vocab_size for b in text.encode("utf-8")]


def ids_to_text(ids: list[int]) -> str:
    """One printable ASCII character per token: ``chr(32 + id % 95)``."""
    return "".join(chr(32 + i % 95) for i in ids)


def random_prompts(batch_size: int, prompt_len: int, vocab_size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch_size, prompt_len), generator=gen, dtype=torch.long)


# ---- greedy decoding with the KV cache ---------------------------------------------------------


@dataclass
class DecodeState:
    """What one decode step needs: the cache, the attention mask so far, each row's next position."""

    past: Any
    attention_mask: torch.Tensor  # (B, tokens so far); 0 on left padding
    next_position: torch.Tensor  # (B, 1)


def _cache_keyword(model: torch.nn.Module) -> str:
    """The forward's KV-cache argument: ``cache`` in recent transformers (5.2x), where
    ``past_key_values`` still works but warns; ``past_key_values`` in earlier 5.x."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@torch.inference_mode()
def prefill(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
    """Forward over the (left-padded) prompts; returns the first greedy token of each row.

    Positions count real tokens only (left padding gets position 0 and is masked out), so a
    padded row computes what it would alone. ``logits_to_keep=1``: only the last position's
    logits are needed, as in a serving engine (saves a (B, L, vocab) matmul)."""
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    next_tokens = out.logits[:, -1, :].argmax(dim=-1)
    state = DecodeState(past=_cache_of(out), attention_mask=attention_mask,
                        next_position=positions[:, -1:] + 1)
    return next_tokens, state


@torch.inference_mode()
def decode_step(model: torch.nn.Module, tokens: torch.Tensor, state: DecodeState) -> torch.Tensor:
    """One token per row through the cache; returns the next greedy token of each row."""
    ones = torch.ones((tokens.shape[0], 1), dtype=state.attention_mask.dtype, device=tokens.device)
    state.attention_mask = torch.cat([state.attention_mask, ones], dim=-1)
    cache_kw = {_cache_keyword(model): state.past}
    out = model(input_ids=tokens[:, None], attention_mask=state.attention_mask, position_ids=state.next_position,
                use_cache=True, **cache_kw)
    state.past = _cache_of(out)
    state.next_position = state.next_position + 1
    return out.logits[:, -1, :].argmax(dim=-1)


class EagerDecoder:
    """``prefill`` and ``decode_step`` behind the two calls of ``static_decode.StaticDecoder``, so
    an engine can drive either.

    ``cudnn_attention=False`` keeps torch's attention (SDPA) off its cuDNN backend. That backend
    builds an execution graph for every new shape and caches it per thread; an eager decode's key
    length grows by one every step, so each step of a batch the thread has not seen before builds
    one per layer (3.4 ms of CPU each for the 1.24 B model on an H100: a 13 ms step became 68 ms in
    a fresh thread; ``docs/results/README.md``). A server meets new batch shapes all the time."""

    max_len: int | None = None  # no cache limit beyond the model's positions

    def __init__(self, model: torch.nn.Module, cudnn_attention: bool = True) -> None:
        self.model = model
        self.state: DecodeState | None = None
        self.tok = torch.empty(0)
        self.cudnn_attention = cudnn_attention

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with self._attention():
            self.tok, self.state = prefill(self.model, ids, mask)
        return self.tok

    def step(self) -> torch.Tensor:
        if self.state is None:
            raise RuntimeError("step() before prefill()")
        with self._attention():
            self.tok = decode_step(self.model, self.tok, self.state)
        return self.tok

    def _attention(self) -> Any:
        if self.cudnn_attention:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def left_pad(prompts: list[list[int]], device: torch.device, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths as one left-padded batch and its attention mask."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[row, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def greedy_generate(model: torch.nn.Module, prompts: list[list[int]], max_new_tokens: int, device: torch.device) -> list[list[int]]:
    """Reference greedy generation (no phases): exactly ``max_new_tokens`` per prompt."""
    ids, mask = left_pad(prompts, device)
    tok, state = prefill(model, ids, mask)
    out = [tok]
    for _ in range(max_new_tokens - 1):
        tok = decode_step(model, tok, state)
        out.append(tok)
    return torch.stack(out, dim=1).tolist()
