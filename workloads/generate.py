"""``python -m workloads llm-infer``: batch generation at fixed lengths, prefill and decode apart.

Our own greedy loop over the KV cache (not ``model.generate``), so the phases are exact: per
repeat one ``generate`` phase holding a ``prefill`` (one forward over B x L prompt tokens, which
yields the first output token) and a ``decode`` (N - 1 single-token steps). Every row produces
exactly N tokens: there is no end-of-sequence stop, so work per run is fixed by the arguments.

``--engine compiled`` decodes with ``workloads.static_decode`` (a static KV cache and a decode step
replayed as a CUDA graph; eager on a CPU). Its set-up (cache allocation, warm-up, graph capture) is
a ``compile`` phase of its own, before the generations, never part of ``decode``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

import greentop
from workloads import llm, static_decode
from greentop.cliargs import OneLineParser
from workloads.results import mark_outcome, write_result
from workloads.torchutil import (
    PRECISIONS,
    Utilisation,
    dtype_of,
    hardware,
    resolve_device,
    seed_all,
    sync,
)


ENGINES = ("eager", "compiled")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = OneLineParser(prog="workloads llm-infer", description=__doc__)
    p.add_argument("--model-size", default="tiny", help=f"one of {', '.join(llm.SIZES)} (random weights)")
    p.add_argument("--model", default=None, metavar="PATH", help="a local checkpoint directory instead of --model-size")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--prompt-len", type=int, default=128, help="prompt tokens per sequence")
    p.add_argument("--output-len", type=int, default=128, help="generated tokens per sequence (exactly)")
    p.add_argument("--precision", default="bf16", choices=PRECISIONS)
    p.add_argument("--device", default="auto")
    p.add_argument("--engine", default="eager", choices=ENGINES,
                   help="eager: transformers' forward per step; compiled: static KV cache, decode step as a CUDA graph")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1,
                   help="untagged generations before the measured ones (the first pays for kernel loading)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--result", default=None, metavar="PATH", help="write the result document here")
    return p.parse_args(argv)


def _validate(args: argparse.Namespace) -> None:
    if args.model is None and args.model_size not in llm.SIZES:
        raise llm.UsageError(f"unknown model size {args.model_size!r}; one of: {', '.join(llm.SIZES)}")
    for name in ("batch_size", "prompt_len", "output_len", "repeats"):
        if getattr(args, name) < 1:
            raise llm.UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        raise llm.UsageError("--warmup must be 0 or more")


Decoder = llm.EagerDecoder | static_decode.StaticDecoder


def make_decoder(lm: llm.LoadedModel, engine: str, batch_size: int, max_len: int) -> Decoder:
    """The decode engine; for ``compiled``, the cache is allocated and the step captured here."""
    if engine == "eager":
        return llm.EagerDecoder(lm.model)
    try:
        dec = static_decode.StaticDecoder(lm.model, batch_size, max_len, batch_sizes=[batch_size])
    except static_decode.UnsupportedModel as exc:
        raise llm.UsageError(str(exc)) from None
    dec.prepare()
    return dec


def _kept(dec: Decoder, tokens: torch.Tensor) -> torch.Tensor:
    """Tokens safe to keep: the compiled engine overwrites its output tensor every step (a copy
    costs one small kernel); the eager one returns a new tensor each time (no copy, as before)."""
    return tokens.clone() if isinstance(dec, static_decode.StaticDecoder) else tokens


def _generate_once(lm: llm.LoadedModel, dec: Decoder, prompts: torch.Tensor, output_len: int,
                   tagged: bool) -> tuple[torch.Tensor, float, float]:
    """One generation; returns the (B, N) output ids, prefill seconds, decode seconds."""
    phase = greentop.phase if tagged else (lambda name, **attrs: contextlib.nullcontext())  # warm-up runs stay untagged
    batch, prompt_len = prompts.shape
    mask = torch.ones_like(prompts)
    t0 = time.perf_counter()
    with phase("prefill", batch_size=batch, prompt_len=prompt_len):
        tok = _kept(dec, dec.prefill(prompts, mask))
        sync(lm.device)
        if tagged:
            greentop.count(input_tokens=batch * prompt_len, output_tokens=batch)
    t1 = time.perf_counter()
    out = [tok]
    with phase("decode", batch_size=batch, steps=output_len - 1):
        for _ in range(output_len - 1):
            out.append(_kept(dec, dec.step()))
        sync(lm.device)
        if tagged and output_len > 1:
            greentop.count(output_tokens=batch * (output_len - 1))
    t2 = time.perf_counter()
    return torch.stack(out, dim=1), t1 - t0, t2 - t1


def _peak_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def resolve(device_name: str, precision: str) -> tuple[torch.device, torch.dtype]:
    """Device and dtype, or a ``UsageError`` (no GPU for ``cuda``, fp16 on the CPU)."""
    try:
        device = resolve_device(device_name)
        dtype = dtype_of(precision)
    except (ValueError, RuntimeError) as exc:  # torch.device("nonsense") is a RuntimeError
        raise llm.UsageError(str(exc)) from None
    llm.check_precision(device, precision)
    return device, dtype


def run(args: argparse.Namespace) -> dict[str, float | int | None]:
    device, dtype = resolve(args.device, args.precision)
    seed_all(args.seed)
    with greentop.phase("load-model", model=args.model or args.model_size, precision=args.precision):
        lm = llm.load_model(args.model_size, args.model, device, dtype, args.seed)
        sync(device)
    print(f"llm-infer: {lm.name}, {lm.params} parameters, on {device} in {args.precision}", flush=True)
    if args.prompt_len + args.output_len > lm.max_positions:
        raise llm.UsageError(f"--prompt-len + --output-len must be at most {lm.max_positions} for this model")
    prompts = llm.random_prompts(args.batch_size, args.prompt_len, lm.vocab_size, args.seed).to(device)
    t_compile = time.perf_counter()
    compiling = greentop.phase("compile", engine=args.engine, batch_size=args.batch_size) if args.engine == "compiled" \
        else contextlib.nullcontext()
    with compiling:
        dec = make_decoder(lm, args.engine, args.batch_size, args.prompt_len + args.output_len)
        sync(device)
    compile_s = time.perf_counter() - t_compile
    for _ in range(args.warmup):
        _generate_once(lm, dec, prompts, args.output_len, tagged=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prefill_s = decode_s = 0.0
    util = Utilisation(device)
    outputs = torch.empty(0)
    with util.measure():
        for r in range(args.repeats):
            with greentop.phase("generate", repeat=r, batch_size=args.batch_size, prompt_len=args.prompt_len,
                                output_len=args.output_len):
                outputs, p_s, d_s = _generate_once(lm, dec, prompts, args.output_len, tagged=True)
                greentop.count(requests=args.batch_size)
            prefill_s += p_s
            decode_s += d_s
    assert outputs.shape == (args.batch_size, args.output_len)  # exact length, no early stop
    out_tokens = args.batch_size * args.output_len * args.repeats
    gen_s = prefill_s + decode_s
    decode_tokens = args.batch_size * (args.output_len - 1) * args.repeats
    metrics: dict[str, float | int | None] = {
        "model_params": lm.params,
        "compile_s": compile_s,
        "output_tokens": out_tokens,
        "input_tokens": args.batch_size * args.prompt_len * args.repeats,
        "prefill_s": prefill_s / args.repeats,
        "decode_s": decode_s / args.repeats,
        "generate_s": gen_s / args.repeats,
        "output_tokens_per_s": out_tokens / gen_s if gen_s > 0 else None,
        "prefill_tokens_per_s": args.batch_size * args.prompt_len * args.repeats / prefill_s if prefill_s > 0 else None,
        "decode_tokens_per_s": decode_tokens / decode_s if decode_s > 0 and decode_tokens else None,
        # one decode step produces one token per row: the latency a single stream sees per token
        "time_per_output_token_ms": 1000.0 * decode_s / ((args.output_len - 1) * args.repeats) if args.output_len > 1 else None,
        "peak_memory_bytes": _peak_memory_bytes(device),
        **util.metrics(),
    }
    mark_outcome(metrics)
    if args.result:
        params = {k: v for k, v in vars(args).items() if k != "result"}
        write_result(args.result, workload="llm-infer", primary_phase="generate", params=params, metrics=metrics,
                     hardware=hardware(device))
    return metrics


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        _validate(args)
        metrics = run(args)
    except llm.UsageError as exc:
        return llm.usage_exit("workloads llm-infer", str(exc))
    print(f"llm-infer: {metrics['output_tokens']} output tokens, {metrics['output_tokens_per_s'] or 0:.1f} tokens/s, "
          f"prefill {metrics['prefill_s']:.3f} s, decode {metrics['decode_s']:.3f} s", flush=True)
    return 0
