"""Where the server's decode step loses time: one model, one batch, decoded several ways side by side.

    python benchmarks/h200/serve_diag.py --model-size 1b --batch-size 32 --steps 100 [--device cuda]

Each mode runs the same number of decode steps over the same prefilled batch and prints one JSON
line with its median ms per step (over --trials runs):

- ``offline``: the llm-infer loop (main thread, no host read per step);
- ``read``: plus ``.tolist()`` of each step's tokens, as the server does to stream them;
- ``thread``: ``read`` in a worker thread, the main thread idle;
- ``thread+loop``: ``thread`` with an asyncio event loop in the main thread receiving every step's
  tokens through ``call_soon_threadsafe`` and writing one SSE chunk per token per request
  (JSON-encoded, into a buffer), as the streaming server does;
- ``thread+loop@5ms``: the same with Python's default 5 ms thread switch interval;
- ``main+loop``: the roles swapped: decoding in the main thread, the event loop in a worker thread.

Every mode runs for ``--engine eager`` and ``compiled``.

``--explain`` runs instead the eager decode in the main thread and in a worker thread and prints,
for each, what the thread itself spent per step (``getrusage(RUSAGE_THREAD)``: user and system
CPU time, page faults, context switches), then the top of a ``cProfile`` and of a
``torch.profiler`` table of each, so that a slower thread shows where its time goes. A third
arrangement, ``thread-1``, is the worker with torch's CPU ops on one thread: if it is as fast as the
main thread, the worker's loss is OpenMP's (its own team beside the main thread's; on the dev VM's
CPU that doubles the step, ``server.HttpThread``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import cProfile
import json
import pstats
import resource
import statistics
import sys
import threading
import time
from typing import Any, Callable

import torch

from workloads import llm, static_decode
from workloads.torchutil import sync


def _decoder(lm: llm.LoadedModel, engine: str, batch: int, max_len: int, cudnn_attention: bool = True) -> Any:
    if engine == "eager":
        return llm.EagerDecoder(lm.model, cudnn_attention=cudnn_attention)
    dec = static_decode.StaticDecoder(lm.model, batch, max_len, batch_sizes=[batch])
    dec.prepare()
    return dec


def _loop_sink(batch: int) -> tuple[Callable[[list[int]], None], Callable[[], None]]:
    """A running event loop in this thread's stead and a hand-off that feeds it per step."""
    loop = asyncio.new_event_loop()
    out = io.BytesIO()
    ready = threading.Event()
    stop = asyncio.Event()

    def put(tokens: list[int]) -> None:
        for i, t in enumerate(tokens):
            chunk = {"id": f"cmpl-{i}", "object": "text_completion", "choices": [
                {"text": llm.ids_to_text([t]), "index": 0, "logprobs": None, "finish_reason": None, "token_ids": [t]}]}
            out.write(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")

    async def main() -> None:
        ready.set()
        await stop.wait()

    th = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    th.start()
    ready.wait()

    def hand(tokens: list[int]) -> None:
        loop.call_soon_threadsafe(put, tokens)

    def close() -> None:
        loop.call_soon_threadsafe(stop.set)
        th.join(10)

    return hand, close


def run_mode(dec: Any, ids: torch.Tensor, mask: torch.Tensor, steps: int, mode: str, device: torch.device) -> float:
    """Seconds per decode step in one mode."""
    def body(read: bool, hand: Callable[[list[int]], None] | None) -> float:
        dec.prefill(ids, mask)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            tok = dec.step()
            if read:
                values = tok.tolist()
                if hand is not None:
                    hand(values)
        sync(device)
        return (time.perf_counter() - t0) / steps

    if mode == "offline":
        return body(False, None)
    if mode == "read":
        return body(True, None)
    if mode == "main+loop":
        hand, close = _loop_sink(ids.shape[0])
        try:
            return body(True, hand)
        finally:
            close()
    result: list[float] = []
    hand = close = None
    old = sys.getswitchinterval()
    if mode.startswith("thread+loop"):
        hand, close = _loop_sink(ids.shape[0])
        sys.setswitchinterval(0.005 if mode.endswith("@5ms") else 0.0005)
    th = threading.Thread(target=lambda: result.append(body(True, hand)))
    th.start()
    th.join()
    if close is not None:
        close()
    sys.setswitchinterval(old)
    return result[0]


def _thread_usage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_THREAD)
    return {"user_s": ru.ru_utime, "sys_s": ru.ru_stime, "minor_faults": ru.ru_minflt, "major_faults": ru.ru_majflt,
            "voluntary_switches": ru.ru_nvcsw, "involuntary_switches": ru.ru_nivcsw}


def _in_thread(where: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` in the main thread, in a worker (``thread``), or in a worker that runs torch's CPU
    ops on one thread (``thread-1``: no OpenMP team of its own, see ``server.HttpThread``)."""
    if where == "main":
        return fn()
    out: list[Any] = []

    def body() -> None:
        if where == "thread-1":
            torch.set_num_threads(1)
        out.append(fn())

    threads = torch.get_num_threads()
    th = threading.Thread(target=body)
    th.start()
    th.join()
    torch.set_num_threads(threads)  # torch's count is shared across threads: give the main thread its own back
    return out[0]


def explain(dec: Any, ids: torch.Tensor, mask: torch.Tensor, steps: int, trials: int, device: torch.device,
            report: io.TextIOBase) -> None:
    """Per-step wall and per-thread resource use of the eager decode, main thread against a worker."""
    def timed() -> dict[str, float]:
        dec.prefill(ids, mask)
        sync(device)
        u0, t0 = _thread_usage(), time.perf_counter()
        for _ in range(steps):
            dec.step().tolist()
        wall = time.perf_counter() - t0
        u1 = _thread_usage()
        return {"ms_per_step": 1000 * wall / steps} | {f"{k}_per_step": (u1[k] - u0[k]) / steps for k in u0}

    for _ in range(trials):
        for where in ("main", "thread", "thread-1"):
            print(json.dumps({"explain": where, "steps": steps} | _in_thread(where, timed)), flush=True)

    def profiled_python() -> str:
        prof = cProfile.Profile()
        dec.prefill(ids, mask)
        prof.enable()
        for _ in range(steps):
            dec.step().tolist()
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        return buf.getvalue()

    def profiled_torch() -> str:
        from torch.profiler import ProfilerActivity, profile

        dec.prefill(ids, mask)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                dec.step().tolist()
        return str(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))

    for where in ("main", "thread"):
        report.write(f"===== cProfile, {where} thread, {steps} steps\n{_in_thread(where, profiled_python)}\n")
        report.write(f"===== torch.profiler, {where} thread, {steps} steps\n{_in_thread(where, profiled_torch)}\n")
        report.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-size", default="1b")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--device", default="cuda")
    p.add_argument("--engines", default="eager,compiled")
    p.add_argument("--cudnn-attention", choices=("on", "off"), default="on",
                   help="--explain: the eager engine's attention on cuDNN (torch's default) or off it")
    p.add_argument("--explain", metavar="PATH", default=None,
                   help="explain the eager engine's thread slowdown instead; profiles go to PATH")
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16
    lm = llm.load_model(args.model_size, None, device, dtype)
    ids = llm.random_prompts(args.batch_size, args.prompt_len, lm.vocab_size, 0).to(device)
    mask = torch.ones_like(ids)
    if args.explain:
        dec = _decoder(lm, "eager", args.batch_size, args.prompt_len + args.steps + 1, args.cudnn_attention == "on")
        run_mode(dec, ids, mask, 5, "offline", device)  # warm-up
        with open(args.explain, "w") as report:
            explain(dec, ids, mask, args.steps, args.trials, device, report)
        return 0
    modes = ("offline", "read", "thread", "thread+loop", "thread+loop@5ms", "main+loop")
    for engine in args.engines.split(","):
        dec = _decoder(lm, engine, args.batch_size, args.prompt_len + args.steps + 1)
        run_mode(dec, ids, mask, 5, "offline", device)  # warm-up
        times_of: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.trials):  # modes interleaved, so drift over time hits each alike
            for mode in modes:
                times_of[mode].append(run_mode(dec, ids, mask, args.steps, mode, device))
        for mode, times in times_of.items():
            print(json.dumps({"model_size": args.model_size, "batch_size": args.batch_size, "engine": engine, "mode": mode,
                              "ms_per_step_median": 1000 * statistics.median(times),
                              "ms_per_step_min": 1000 * min(times), "ms_per_step_max": 1000 * max(times),
                              "trials": args.trials, "steps": args.steps}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
