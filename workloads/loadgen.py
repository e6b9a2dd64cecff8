"""``python -m workloads loadgen``: load against any OpenAI-compatible ``/v1/completions`` server.

Two modes:

- ``--mode poisson --rate R``: open loop. Send times are drawn in advance (exponential gaps of
  mean 1/R, seeded) and each request is sent at its time whether or not earlier ones have
  answered, so a slow server sees its queue grow, as with real users.
- ``--mode closed --concurrency C``: C clients, each sending its next request when the previous
  one has answered.

The run ends after ``--duration`` seconds of sending or ``--requests`` requests, then waits for
the requests in flight. Prompts are ``--prompt-len`` random token ids below ``--token-id-max``
(token-id prompts need no tokenizer and work on vLLM, TGI's OpenAI API and ours); each asks for
exactly ``--output-len`` tokens (``max_tokens``, plus ``ignore_eos``/``min_tokens``, which
servers that do not know them ignore).

Streaming measures the time to first token (TTFT) and the time per output token after it (TPOT);
a server that answers a streaming request with plain JSON, or ``--no-stream``, gives end-to-end
latency only. Per request: status, TTFT, TPOT, end-to-end latency, output tokens (``--out``,
``.jsonl`` or ``.csv``); per run: throughput and p50/p99 of each latency (``--result``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import greentop
from workloads import llm
from greentop.cliargs import OneLineParser


@dataclass
class RequestRecord:
    index: int
    scheduled_s: float  # planned send time, from the start of the run
    sent_s: float = math.nan  # actual send time, from the start of the run
    status: int = 0  # HTTP status; 0 when no response came (connection refused, timeout)
    ok: bool = False
    error: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None


@dataclass
class LoadSpec:
    url: str  # base URL, e.g. http://127.0.0.1:8000
    mode: str = "poisson"  # poisson | closed
    rate: float = 1.0  # requests/s (poisson)
    concurrency: int = 1  # clients (closed)
    duration_s: float | None = 10.0
    requests: int | None = None
    prompt_len: int = 128
    output_len: int = 128
    seed: int = 0
    stream: bool = True
    model: str | None = None  # None: the first of GET /v1/models, else "default"
    token_id_max: int = 500
    timeout_s: float = 600.0


def poisson_send_times(rate: float, seed: int, duration_s: float | None = None, requests: int | None = None) -> list[float]:
    """Send times (s from the start) of a Poisson process of ``rate``/s, until ``duration_s``
    or ``requests`` (whichever comes first; at least one must be given)."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    if duration_s is None and requests is None:
        raise ValueError("give a duration or a number of requests")
    rng = random.Random(seed)
    times: list[float] = []
    t = 0.0
    while requests is None or len(times) < requests:
        t += rng.expovariate(rate)
        if duration_s is not None and t > duration_s:
            break
        times.append(t)
    return times


def make_prompts(n: int, prompt_len: int, token_id_max: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed + 1)  # not the send-time stream: changing one leaves the other alone
    return [[rng.randrange(token_id_max) for _ in range(prompt_len)] for _ in range(n)]


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarise(records: list[RequestRecord], wall_s: float) -> dict[str, float | int | None]:
    ok = [r for r in records if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    m: dict[str, float | int | None] = {
        "requests": len(records),
        "requests_ok": len(ok),
        "errors": len(records) - len(ok),
        # Overload (429, the server's queue full) is the expected error at a saturating rate; the
        # rest (other statuses, no response) would mean something broke.
        "errors_overloaded": sum(1 for r in records if r.status == 429),
        "output_tokens": out_tokens,
        "input_tokens": sum(r.prompt_tokens for r in ok),
        "wall_s": wall_s,
        "throughput_req_s": len(ok) / wall_s if wall_s > 0 else None,
        "throughput_output_tokens_s": out_tokens / wall_s if wall_s > 0 else None,
    }
    for name in ("ttft_ms", "tpot_ms", "e2e_ms"):
        vals = [v for r in ok if (v := getattr(r, name)) is not None]
        m[f"{name.removesuffix('_ms')}_mean_ms"] = sum(vals) / len(vals) if vals else None
        m[f"{name.removesuffix('_ms')}_p50_ms"] = percentile(vals, 50)
        m[f"{name.removesuffix('_ms')}_p99_ms"] = percentile(vals, 99)
    return m


# ---- one request --------------------------------------------------------------------------------


async def _one(session: Any, spec: LoadSpec, model: str, rec: RequestRecord, prompt: list[int], t0: float) -> None:
    import aiohttp

    body = {"model": model, "prompt": prompt, "max_tokens": spec.output_len, "temperature": 0.0,
            "ignore_eos": True, "min_tokens": spec.output_len, "stream": spec.stream}
    if spec.stream:
        body["stream_options"] = {"include_usage": True}
    rec.prompt_tokens = len(prompt)
    start = time.monotonic()
    rec.sent_s = start - t0
    try:
        async with session.post(spec.url.rstrip("/") + "/v1/completions", json=body) as resp:
            rec.status = resp.status
            if resp.status != 200:
                text = await resp.text()
                rec.error = _error_message(text) or f"HTTP {resp.status}"
                return
            if resp.content_type == "text/event-stream":
                await _read_stream(resp, rec, start)
            else:  # no streaming (asked for or not): end-to-end only
                doc = await resp.json(content_type=None)
                rec.output_tokens = _usage_tokens(doc) or _choice_tokens(doc)
                rec.e2e_ms = 1000.0 * (time.monotonic() - start)
                rec.ok = True
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        rec.error = rec.error or f"{type(exc).__name__}: {exc}"[:200]


async def _read_stream(resp: Any, rec: RequestRecord, start: float) -> None:
    first: float | None = None
    last = start
    chunks = 0
    usage_tokens = 0
    async for raw in resp.content:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        doc = json.loads(data)
        if "error" in doc:
            rec.error = _error_message(data) or "error in stream"
            return
        usage_tokens = _usage_tokens(doc) or usage_tokens
        for choice in doc.get("choices") or []:
            # A chunk that carries text is one step of output (servers stream one token per
            # chunk); the closing chunk with only a finish_reason is not.
            if choice.get("text") or choice.get("token_ids"):
                now = time.monotonic()
                first = now if first is None else first
                last = now
                chunks += max(1, len(choice.get("token_ids") or []))
    end = time.monotonic()
    rec.output_tokens = usage_tokens or chunks
    rec.e2e_ms = 1000.0 * (end - start)
    if first is not None:
        rec.ttft_ms = 1000.0 * (first - start)
        if rec.output_tokens > 1:
            rec.tpot_ms = 1000.0 * (last - first) / (rec.output_tokens - 1)
    rec.ok = True


def _usage_tokens(doc: Any) -> int:
    usage = doc.get("usage") if isinstance(doc, dict) else None
    return int(usage.get("completion_tokens") or 0) if isinstance(usage, dict) else 0


def _choice_tokens(doc: Any) -> int:
    choices = doc.get("choices") or [{}] if isinstance(doc, dict) else [{}]
    ids = choices[0].get("token_ids")
    return len(ids) if isinstance(ids, list) else len(choices[0].get("text") or "")


def _error_message(text: str) -> str:
    try:
        return str(json.loads(text)["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return text[:200]


# ---- a run --------------------------------------------------------------------------------------


async def _model_name(session: Any, spec: LoadSpec) -> str:
    if spec.model:
        return spec.model
    try:
        async with session.get(spec.url.rstrip("/") + "/v1/models") as resp:
            doc = await resp.json(content_type=None)
            return str(doc["data"][0]["id"])
    except Exception:  # noqa: BLE001 -- a server without /v1/models takes any name
        return "default"


async def run_load(spec: LoadSpec) -> tuple[list[RequestRecord], float]:
    """Drive the server; returns every request's record and the wall time (first send to last answer)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
    # No connection limit: an open-loop generator must never queue on its own side.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        model = await _model_name(session, spec)
        if spec.mode == "poisson":
            times = poisson_send_times(spec.rate, spec.seed, spec.duration_s, spec.requests)
            prompts = make_prompts(len(times), spec.prompt_len, spec.token_id_max, spec.seed)
            records = [RequestRecord(index=i, scheduled_s=t) for i, t in enumerate(times)]
            t0 = time.monotonic()
            tasks = []
            for rec, prompt in zip(records, prompts):
                delay = t0 + rec.scheduled_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(_one(session, spec, model, rec, prompt, t0)))
            await asyncio.gather(*tasks)
        else:
            records = []
            t0 = time.monotonic()
            rng_seed = spec.seed

            async def client(worker: int) -> None:
                while True:
                    if spec.requests is not None and len(records) >= spec.requests:
                        return
                    now = time.monotonic() - t0
                    if spec.duration_s is not None and now >= spec.duration_s:
                        return
                    rec = RequestRecord(index=len(records), scheduled_s=now)
                    records.append(rec)
                    prompt = make_prompts(1, spec.prompt_len, spec.token_id_max, rng_seed + 7919 * rec.index)[0]
                    await _one(session, spec, model, rec, prompt, t0)

            await asyncio.gather(*(client(w) for w in range(spec.concurrency)))
        wall_s = time.monotonic() - t0
    return records, wall_s


def write_records(path: str | Path, records: list[RequestRecord]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(RequestRecord)])
            w.writeheader()
            for r in records:
                w.writerow(asdict(r))
    else:
        with path.open("w") as f:
            for r in records:
                row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(r).items()}
                f.write(json.dumps(row) + "\n")  # NaN (never sent) as null: JSON has no NaN


# ---- command line -------------------------------------------------------------------------------


def add_load_args(p: argparse.ArgumentParser, with_url: bool = True) -> None:
    if with_url:
        p.add_argument("--url", required=True, help="base URL of the server, e.g. http://127.0.0.1:8000")
        p.add_argument("--model-name", default=None, help="the 'model' field sent (default: from GET /v1/models)")
    p.add_argument("--mode", default="poisson", choices=("poisson", "closed"))
    p.add_argument("--rate", type=float, default=1.0, help="requests/s (poisson)")
    p.add_argument("--concurrency", type=int, default=1, help="clients (closed)")
    p.add_argument("--duration", type=float, default=None, help="seconds of sending (default 10 unless --requests)")
    p.add_argument("--requests", type=int, default=None, help="number of requests")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--token-id-max", type=int, default=500, help="prompt token ids are below this")
    p.add_argument("--no-stream", action="store_true", help="non-streaming requests (no TTFT/TPOT)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    p.add_argument("--out", default=None, metavar="FILE", help="per-request records (.jsonl or .csv)")


def spec_from_args(args: argparse.Namespace, url: str, model: str | None = None) -> LoadSpec:
    if args.mode == "poisson" and args.rate <= 0:
        raise llm.UsageError("--rate must be positive")
    if args.mode == "closed" and args.concurrency < 1:
        raise llm.UsageError("--concurrency must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise llm.UsageError("--duration must be positive")
    if args.requests is not None and args.requests < 1:
        raise llm.UsageError("--requests must be at least 1")
    if args.prompt_len < 1 or args.output_len < 1 or args.token_id_max < 1:
        raise llm.UsageError("--prompt-len, --output-len and --token-id-max must be at least 1")
    if not url.startswith(("http://", "https://")):
        raise llm.UsageError(f"--url must start with http:// or https://, not {url!r}")
    duration = args.duration if args.duration is not None or args.requests is not None else 10.0
    return LoadSpec(url=url, mode=args.mode, rate=args.rate, concurrency=args.concurrency, duration_s=duration,
                    requests=args.requests, prompt_len=args.prompt_len, output_len=args.output_len, seed=args.seed,
                    stream=not args.no_stream, model=model, token_id_max=args.token_id_max, timeout_s=args.timeout)


def report_line(prog: str, m: dict[str, Any]) -> str:
    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    return (f"{prog}: {m['requests_ok']}/{m['requests']} ok, {m['errors']} errors ({m.get('errors_overloaded', 0)} overloaded: 429), "
            f"{m['throughput_req_s'] or 0:.2f} req/s, {m['throughput_output_tokens_s'] or 0:.1f} output tokens/s, "
            f"TTFT p50/p99 {ms(m['ttft_p50_ms'])}/{ms(m['ttft_p99_ms'])} ms, "
            f"TPOT p50/p99 {ms(m['tpot_p50_ms'])}/{ms(m['tpot_p99_ms'])} ms, "
            f"e2e p50/p99 {ms(m['e2e_p50_ms'])}/{ms(m['e2e_p99_ms'])} ms")


def main(argv: list[str]) -> int:
    p = OneLineParser(prog="workloads loadgen", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--result", default=None, metavar="PATH", help="write the result document here")
    args = p.parse_args(argv)
    try:
        spec = spec_from_args(args, args.url, args.model_name)
    except llm.UsageError as exc:
        return llm.usage_exit("workloads loadgen", str(exc))
    # Standalone, the load is the phase; the server (maybe in the same recording) counts the work.
    with greentop.phase("loadgen", mode=spec.mode):
        records, wall_s = asyncio.run(run_load(spec))
    metrics = summarise(records, wall_s)
    from workloads.results import mark_outcome

    mark_outcome(metrics)
    if args.out:
        write_records(args.out, records)
    if args.result:
        from workloads.results import write_result

        params = {k: v for k, v in vars(args).items() if k not in ("result", "out")}
        write_result(args.result, workload="loadgen", primary_phase="loadgen", params=params, metrics=metrics)
    print(report_line("loadgen", metrics), flush=True)
    return 0 if metrics["requests_ok"] else 1
