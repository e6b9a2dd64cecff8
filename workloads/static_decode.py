"""The ``compiled`` decode engine: a fixed-shape decode step over a static KV cache, replayed as a
CUDA graph (gpt-fast's recipe, written against the weights of the Llama models ``workloads.llm``
builds).

Eager transformers spends most of a small-batch decode step in Python and kernel launches (the
H200 study: 23-35 ms a step for 8 B at batch 8, against ~4 ms of memory traffic). Here:

- the KV cache is preallocated, ``[batch, kv_heads, max_len, head_dim]`` per layer, and a step
  writes its key and value at one slot with ``index_copy_``;
- attention covers all ``max_len`` slots, with a per-row boolean mask of the slots filled so far,
  so the step's shapes never change;
- the step reads its inputs (tokens, positions, slot) from static tensors and advances them
  itself, so on a GPU it is captured once as a ``torch.cuda.CUDAGraph`` and each step is one
  ``replay()``: no Python per layer, no host work per step.

Prefill (variable length) runs eagerly through the same layer code and fills the cache. On a CPU
the same step runs eagerly (no graphs): same code path, so its tokens can be checked against the
eager engine's. Batches smaller than a captured size ride in the next captured size up (the extra
rows are padding that never reaches the caller).

Only the Llama family (RMSNorm, rotary, GQA, SwiGLU) is supported: the models here are all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


class UnsupportedModel(ValueError):
    """A model whose layers this engine does not know how to run."""


@dataclass(frozen=True)
class Shape:
    layers: int
    heads: int
    kv_heads: int
    head_dim: int


def _shape_of(model: torch.nn.Module) -> Shape:
    cfg: Any = model.config
    if getattr(cfg, "model_type", None) != "llama":
        raise UnsupportedModel(f"the compiled engine runs Llama models only, not {getattr(cfg, 'model_type', '?')!r}")
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    return Shape(int(cfg.num_hidden_layers), heads, int(cfg.num_key_value_heads or heads), head_dim)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


def default_batch_sizes(max_batch: int) -> list[int]:
    """Captured batch sizes: powers of two up to ``max_batch``, and ``max_batch`` itself."""
    sizes = [1 << i for i in range(max_batch.bit_length()) if (1 << i) < max_batch]
    return sizes + [max_batch]


class StaticDecoder:
    """A static KV cache for up to ``max_batch`` rows of ``max_len`` tokens, with the decode step
    captured per batch size in ``batch_sizes`` (CUDA only; ``use_graphs=False`` runs it eagerly).

    Use: ``prepare()`` once (the compile phase: warm-up and capture), then per batch
    ``first = prefill(ids, mask)`` and ``step()`` per further token (returns the tokens of the
    rows prefilled). Positions count real tokens only (left padding is masked out and gets
    position 0), as ``llm.prefill`` does."""

    def __init__(self, model: torch.nn.Module, max_batch: int, max_len: int, *, use_graphs: bool | None = None,
                 batch_sizes: list[int] | None = None) -> None:
        if max_batch < 1 or max_len < 2:
            raise ValueError("max_batch must be at least 1 and max_len at least 2")
        self.model = model
        self.shape = _shape_of(model)
        inner: Any = model.model  # type: ignore[union-attr]
        self.embed = inner.embed_tokens
        self.layers = list(inner.layers)
        self.norm = inner.norm
        self.lm_head: Any = model.lm_head  # type: ignore[union-attr]
        self.scaling = float(getattr(self.layers[0].self_attn, "scaling", self.shape.head_dim ** -0.5))
        weight = self.embed.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.max_batch, self.max_len = max_batch, max_len
        self.use_graphs = (self.device.type == "cuda") if use_graphs is None else use_graphs
        if self.use_graphs and self.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.batch_sizes = sorted(set(batch_sizes or default_batch_sizes(max_batch)))
        if self.batch_sizes[-1] != max_batch or self.batch_sizes[0] < 1:
            raise ValueError("batch_sizes must lie in 1..max_batch and include max_batch")
        s = self.shape
        dev = self.device
        with torch.no_grad():
            cache_shape = (max_batch, s.kv_heads, max_len, s.head_dim)
            self.k_cache = [torch.zeros(cache_shape, device=dev, dtype=self.dtype) for _ in range(s.layers)]
            self.v_cache = [torch.zeros(cache_shape, device=dev, dtype=self.dtype) for _ in range(s.layers)]
            self.filled = torch.zeros((max_batch, max_len), device=dev, dtype=torch.bool)  # slots a row may attend to
            self.tokens = torch.zeros(max_batch, device=dev, dtype=torch.long)  # each row's input to the next step
            self.positions = torch.zeros(max_batch, device=dev, dtype=torch.long)
            self.slot = torch.zeros(1, device=dev, dtype=torch.long)  # the cache column the next step writes
            # The rotary tables, from the model's own rotary module (same values it computes).
            pos = torch.arange(max_len, device=dev)[None]
            cos, sin = inner.rotary_emb(weight[:1, None], pos)
            self.cos, self.sin = cos[0], sin[0]  # (max_len, head_dim)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._out: dict[int, torch.Tensor] = {}
        self._rows = 0  # rows in the current batch
        self._bucket = max_batch  # the captured size they ride in
        self._next_slot = 0  # host-side copy of ``slot``: bounds-checks without a sync

    # ---- the layer code (shared by prefill and the step) ------------------------------------

    def _layer(self, i: int, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
               attend: Any) -> torch.Tensor:
        """One decoder layer on ``x`` (B, T, hidden); ``attend(i, q, k, v)`` stores k/v and attends."""
        s = self.shape
        layer = self.layers[i]
        attn = layer.self_attn
        b, t, _ = x.shape
        h = layer.input_layernorm(x)
        q = attn.q_proj(h).view(b, t, s.heads, s.head_dim).transpose(1, 2)
        k = attn.k_proj(h).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        v = attn.v_proj(h).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        out = attend(i, q, k, v)  # (B, heads, T, head_dim)
        x = x + attn.o_proj(out.transpose(1, 2).reshape(b, t, s.heads * s.head_dim))
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def _logits_last(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(x[:, -1:, :]))[:, -1, :]

    # ---- prefill ----------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Forward over left-padded prompts (n, L) into cache rows 0..n-1, slots 0..L-1; returns
        each row's first greedy token (n,) and readies ``step``."""
        n, length = input_ids.shape
        if n > self.max_batch:
            raise ValueError(f"batch of {n} rows exceeds the engine's {self.max_batch}")
        if length >= self.max_len:
            raise ValueError(f"prompt of {length} tokens leaves no room in a {self.max_len}-token cache")
        s = self.shape
        mask = attention_mask.to(torch.bool)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # (n, 1, L, head_dim)
        idx = torch.arange(length, device=self.device)
        causal = idx[None, :] <= idx[:, None]  # (L query, L key)
        # A real query sees real keys up to itself; a padding query sees itself only (it needs
        # some key to stay finite, and no real query ever reads it).
        allowed = (causal[None] & mask[:, None, :]) | torch.eye(length, dtype=torch.bool, device=self.device)[None]
        allowed = allowed[:, None]  # (n, 1, L, L)
        group = s.heads // s.kv_heads

        def attend(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            self.k_cache[i][:n, :, :length].copy_(k)
            self.v_cache[i][:n, :, :length].copy_(v)
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=self.scaling)

        x = self.embed(input_ids)
        for i in range(s.layers):
            x = self._layer(i, x, cos, sin, attend)
        first = self._logits_last(x).argmax(dim=-1)
        bucket = next(b for b in self.batch_sizes if b >= n)
        self.filled[:bucket].zero_()
        self.filled[:n, :length] = mask
        self.tokens[:bucket].zero_()
        self.tokens[:n] = first
        self.positions[:bucket].zero_()
        self.positions[:n] = positions[:, -1] + 1
        self.slot.fill_(length)
        self._rows, self._bucket, self._next_slot = n, bucket, length
        return first

    # ---- the fixed-shape step ----------------------------------------------------------------

    def _step_body(self, b: int) -> torch.Tensor:
        """One token for rows 0..b-1, reading and advancing the static inputs (captured as is)."""
        s = self.shape
        group = s.heads // s.kv_heads
        tokens, positions = self.tokens[:b], self.positions[:b]
        cos, sin = self.cos[positions][:, None, None], self.sin[positions][:, None, None]  # (b, 1, 1, hd)
        self.filled.index_fill_(1, self.slot, True)
        mask = self.filled[:b, None, None, :]  # (b, 1, 1, max_len)

        def attend(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            kc, vc = self.k_cache[i][:b], self.v_cache[i][:b]
            kc.index_copy_(2, self.slot, k)
            vc.index_copy_(2, self.slot, v)
            # GQA without repeating the cache: the one query of each head in a group becomes a
            # query row against that group's keys. (b, kv_heads, group, hd) against (b, kv_heads, L, hd).
            qg = q.reshape(b, s.kv_heads, group, s.head_dim)
            out = F.scaled_dot_product_attention(qg, kc, vc, attn_mask=mask, scale=self.scaling)
            return out.reshape(b, s.heads, 1, s.head_dim)

        x = self.embed(tokens[:, None])
        for i in range(s.layers):
            x = self._layer(i, x, cos, sin, attend)
        nxt = self._logits_last(x).argmax(dim=-1)
        tokens.copy_(nxt)
        positions.add_(1)
        self.slot.add_(1)
        return nxt

    @torch.inference_mode()
    def prepare(self, warmup_steps: int = 2) -> None:
        """Warm the step up and capture one CUDA graph per batch size (no-op without graphs).
        Leaves the cache dirty: every ``prefill`` resets what the step reads."""
        if not self.use_graphs or self._graphs:
            return
        pool = torch.cuda.graph_pool_handle()
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        for b in sorted(self.batch_sizes, reverse=True):  # the largest first: it sizes the shared pool
            self.slot.fill_(0)
            with torch.cuda.stream(stream):
                for _ in range(warmup_steps):
                    self._step_body(b)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self.slot.fill_(0)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self._out[b] = self._step_body(b)
            self._graphs[b] = graph
        torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def step(self) -> torch.Tensor:
        """The next token of each prefilled row, (n,). The tensor is overwritten by the next step."""
        if self._rows == 0:
            raise RuntimeError("step() before prefill()")
        if self._next_slot >= self.max_len:
            raise ValueError(f"the {self.max_len}-token cache is full")
        self._next_slot += 1
        b = self._bucket
        if self.use_graphs:
            if not self._graphs:
                raise RuntimeError("step() before prepare()")
            self._graphs[b].replay()
            return self._out[b][:self._rows]
        return self._step_body(b)[:self._rows]

    def room(self) -> int:
        """Steps left before the cache is full."""
        return self.max_len - self._next_slot


def generate(engine: StaticDecoder, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Greedy generation with the engine (no phases): exactly ``max_new_tokens`` per prompt."""
    from workloads.llm import left_pad

    ids, mask = left_pad(prompts, engine.device)
    out = [engine.prefill(ids, mask).clone()]
    for _ in range(max_new_tokens - 1):
        out.append(engine.step().clone())
    return torch.stack(out, dim=1).tolist()
