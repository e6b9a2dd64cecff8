"""``python -m workloads serve``: an OpenAI-compatible completions server with dynamic batching.

Endpoints: ``POST /v1/completions`` (``model``, ``prompt`` as a string or a list of token ids,
``max_tokens``, ``stream``, ``stream_options.include_usage``; unknown fields are ignored),
``GET /v1/models``, ``GET /health``. Decoding is greedy and always produces exactly
``max_tokens`` tokens (no end-of-sequence stop), so the work per request is fixed by the client.
There is no tokenizer: text prompts become token ids and outputs text as documented in
``workloads.llm`` (UTF-8 bytes mod vocab in; one printable character per token out). Each choice
also carries the output ``token_ids`` (a vLLM-style extension).

Two engines (``--engine``):

- ``batch`` (the default): batch-level dynamic batching. A scheduler thread takes the first
  waiting request, waits at most ``--max-wait-ms`` for more (up to ``--max-batch-size``), then runs
  them as one batch: a left-padded prefill with an attention mask, then decode steps up to the
  batch's largest ``max_tokens``. A request finishes (its stream ends) as soon as it has its own
  ``max_tokens``; requests that arrive meanwhile wait for the next batch. Each batch is a
  ``prefill`` and a ``decode`` phase (attribute ``batch_size``).
- ``compiled``: the same batch-level batching, decoding with ``workloads.static_decode``: a
  static KV cache of ``--max-seq-len`` tokens per row and the decode step replayed as a CUDA graph
  (captured per batch size 1, 2, 4, ... ``--max-batch-size`` in a ``compile`` phase before
  ``serve``; a batch rides in the next captured size up). A request whose prompt plus
  ``max_tokens`` exceeds ``--max-seq-len`` is refused with 400.
- ``continuous``: transformers' continuous batching (``workloads.cbatch``): a request joins the
  running batch at the next step. Prefill and decode share steps there, so each busy period is
  one ``generate`` phase instead.

Requests beyond ``--max-queue`` waiting ones are refused at once with 429. The engine decodes in
the main thread and the HTTP event loop runs in a thread of its own (``HttpThread`` says why), so
the loop stays responsive while a batch runs. The whole server lifetime is a ``serve`` phase; the
engine's phases nest inside it, counting ``input_tokens``, ``output_tokens`` and ``requests``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable

import greentop
from workloads import llm
from greentop.cliargs import OneLineParser
from workloads.genrequest import (
    Engine,
    GenRequest,
    QueueFull,
    deliver,
    deliver_many,
    start_engine_thread,
)

STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
ENGINES = ("batch", "compiled", "continuous")


class RequestError(ValueError):
    """A bad request: answered with 400 and an OpenAI-shaped error body."""


class BatchEngine:
    """The scheduler and the model, in one thread: ``run`` in the caller's (the server's main
    thread), or ``start`` in a worker thread. torch releases the GIL in its kernels, so the event
    loop keeps accepting and streaming while a batch runs."""

    def __init__(self, lm: llm.LoadedModel, max_batch_size: int, max_wait_ms: float, max_queue: int,
                 stream_interval_ms: float = 0.0, decoder: Any = None, cudnn_attention: bool = False) -> None:
        self.lm = lm
        # llm.EagerDecoder or static_decode.StaticDecoder: prefill(ids, mask) and step()
        self.decoder = decoder if decoder is not None else llm.EagerDecoder(lm.model, cudnn_attention=cudnn_attention)
        self.max_len: int | None = self.decoder.max_len  # tokens per row (prompt + output), None: no cap
        self._held: GenRequest | None = None  # did not fit in the last batch's cache: first in the next
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._waiting: queue.Queue[GenRequest] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.decode_steps = 0  # totals over the server's life, for /health (diagnosing slow steps)
        self.decode_s = 0.0
        self.stream_interval_s = stream_interval_ms / 1000.0
        self._pending: list[tuple[GenRequest, int | Exception | None]] = []  # tokens not yet handed over
        self._last_flush = 0.0

    def start(self) -> None:
        self._thread = start_engine_thread(self.run, "batch-engine")

    def ask_stop(self) -> None:
        """``run`` returns after the current decode step (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish at the next decode step; requests still waiting get an error."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        while True:
            try:
                req = self._waiting.get_nowait()
            except queue.Empty:
                break
            deliver(req, RuntimeError("server shutting down"))

    def submit(self, req: GenRequest) -> None:
        try:
            self._waiting.put_nowait(req)
        except queue.Full:
            raise QueueFull(f"server overloaded: {self.max_queue} requests already waiting; retry later") from None

    def queued(self) -> int:
        return self._waiting.qsize()

    def health(self) -> dict[str, Any]:
        return {"engine": "batch" if self.max_len is None else "compiled", "batches": self.batches, "decode_steps": self.decode_steps,
                "decode_step_mean_ms": 1000.0 * self.decode_s / max(1, self.decode_steps)}

    def _next_batch(self) -> list[GenRequest]:
        """Block for the first request, then gather more for at most ``max_wait_s``."""
        while not self._stop.is_set():
            if self._held is not None:
                first, self._held = self._held, None
            else:
                try:
                    first = self._waiting.get(timeout=0.1)
                except queue.Empty:
                    continue
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                left_s = deadline - time.monotonic()
                try:
                    batch.append(self._waiting.get(timeout=left_s) if left_s > 0 else self._waiting.get_nowait())
                except queue.Empty:
                    break
                if not self._fits(batch):  # a static cache holds max prompt + max output per row
                    self._held = batch.pop()
                    break
            live = [r for r in batch if not r.cancelled.is_set()]  # gone before they started
            if live:
                return live
        return []

    def _fits(self, batch: list[GenRequest]) -> bool:
        if self.max_len is None:
            return True
        return max(len(r.prompt_ids) for r in batch) + max(r.max_tokens for r in batch) <= self.max_len

    def run(self) -> None:
        """Serve batches in this thread until ``ask_stop`` or ``stop``."""
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self._run_batch(batch)
            except Exception as exc:  # noqa: BLE001 -- a failed batch fails its requests, not the server
                print(f"serve: batch of {len(batch)} failed: {exc!r}", file=sys.stderr, flush=True)
                self._flush(batch[0].loop)  # tokens already made go out before the error
                for req in batch:
                    deliver(req, RuntimeError(f"generation failed: {exc}"))

    def _run_batch(self, batch: list[GenRequest]) -> None:
        from workloads.torchutil import sync

        n = len(batch)
        device = self.lm.device
        steps = max(r.max_tokens for r in batch)
        self.batches += 1
        with greentop.phase("prefill", batch_size=n):
            ids, mask = llm.left_pad([r.prompt_ids for r in batch], device)
            firsts = self.decoder.prefill(ids, mask).tolist()  # .tolist() synchronises: the phase ends when the work does
            sync(device)
            greentop.count(input_tokens=sum(len(r.prompt_ids) for r in batch), output_tokens=n, requests=n)
        self._emit(batch, firsts, step=1)
        last_step = 1
        if steps > 1:
            with greentop.phase("decode", batch_size=n, steps=steps - 1):
                t_decode = time.perf_counter()
                produced = 0
                for step in range(2, steps + 1):
                    if self._stop.is_set() or all(r.cancelled.is_set() for r in batch):
                        break  # nobody is listening any more (or shutting down): stop spending energy
                    tok = self.decoder.step()
                    produced += sum(1 for r in batch if r.max_tokens >= step)
                    self._emit(batch, tok.tolist(), step)
                    last_step = step
                sync(device)
                self.decode_s += time.perf_counter() - t_decode
                self.decode_steps += last_step - 1
                # Rows past their own max_tokens still ride along in the batch (its shape is
                # fixed), but only tokens a request asked for are counted as output.
                greentop.count(output_tokens=produced)
        self._flush(batch[0].loop)
        for req in batch:
            if req.max_tokens > last_step and not req.cancelled.is_set():  # cut short by shutdown
                deliver(req, RuntimeError("server shutting down"))

    def _emit(self, batch: list[GenRequest], tokens: list[int], step: int) -> None:
        """Hand this step's tokens to the event loop: at once for first and last tokens, else at
        most every ``stream_interval_s``. Each hand-over wakes the loop, whose socket writes then
        contend with this thread for the GIL; the interval bounds that cost (as vLLM's
        ``--stream-interval`` does), TTFT and completion times stay exact."""
        urgent = step == 1
        for req, t in zip(batch, tokens):
            if req.max_tokens >= step and not req.cancelled.is_set():
                self._pending.append((req, t))
                if req.max_tokens == step:
                    self._pending.append((req, None))
                    urgent = True
        if urgent or time.monotonic() - self._last_flush >= self.stream_interval_s:
            self._flush(batch[0].loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending:
            # One wake-up of the event loop for all requests, not one per request.
            deliver_many(loop, self._pending)
            self._pending = []
        self._last_flush = time.monotonic()


# ---- HTTP ---------------------------------------------------------------------------------------


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def parse_completion_request(body: Any, vocab_size: int, max_positions: int) -> tuple[list[int], int, bool, bool]:
    """(prompt ids, max_tokens, stream, include_usage) of a request body, or ``RequestError``."""
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one prompt
    if isinstance(prompt, str):
        ids = llm.text_to_ids(prompt, vocab_size)
    elif isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        ids = list(prompt)
        if any(t < 0 or t >= vocab_size for t in ids):
            raise RequestError(f"prompt token ids must be in [0, {vocab_size})")
    else:
        raise RequestError("'prompt' must be a string or a list of token ids (one prompt per request)")
    if not ids:
        raise RequestError("'prompt' must not be empty")
    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise RequestError("'max_tokens' must be a positive integer")
    if len(ids) + max_tokens > max_positions:
        raise RequestError(f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds the server's {max_positions} positions")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean")
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    return ids, max_tokens, stream, include_usage


class CompletionServer:
    def __init__(self, engine: Engine, model_name: str) -> None:
        self.engine = engine
        self.model_name = model_name
        self.started = int(time.time())

    def app(self) -> Any:
        from aiohttp import web

        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        return app

    async def health(self, request: Any) -> Any:
        from aiohttp import web

        lm = self.engine.lm
        return web.json_response({"status": "ok", "model": self.model_name, "model_params": lm.params,
                                  "vocab_size": lm.vocab_size, "device": str(lm.device), "queued": self.engine.queued()}
                                 | self.engine.health())

    async def models(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"object": "list", "data": [
            {"id": self.model_name, "object": "model", "created": self.started, "owned_by": "greentop"}]})

    async def completions(self, request: Any) -> Any:
        from aiohttp import web

        lm = self.engine.lm
        max_len = getattr(self.engine, "max_len", None) or lm.max_positions
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response(error_body("request body is not valid JSON", "invalid_request_error"), status=400)
        try:
            ids, max_tokens, stream, include_usage = parse_completion_request(body, lm.vocab_size, max_len)
        except RequestError as exc:
            return web.json_response(error_body(str(exc), "invalid_request_error"), status=400)
        req = GenRequest(prompt_ids=ids, max_tokens=max_tokens, loop=asyncio.get_running_loop())
        try:
            self.engine.submit(req)
        except QueueFull as exc:
            return web.json_response(error_body(str(exc), "server_overloaded", code="queue_full"), status=429,
                                     headers={"Retry-After": "1"})
        cid = f"cmpl-{uuid.uuid4().hex[:24]}"
        meta = {"id": cid, "object": "text_completion", "created": int(time.time()), "model": self.model_name}
        usage = {"prompt_tokens": len(ids), "completion_tokens": max_tokens, "total_tokens": len(ids) + max_tokens}
        if stream:
            return await self._stream(request, req, meta, usage, include_usage)
        try:
            tokens = await self._collect(req)
        except asyncio.CancelledError:  # the client went away: the worker stops sending to it
            req.cancelled.set()
            raise
        except RuntimeError as exc:
            return web.json_response(error_body(str(exc), "server_error"), status=503)
        choice = {"text": llm.ids_to_text(tokens), "index": 0, "logprobs": None, "finish_reason": "length",
                  "token_ids": tokens}
        return web.json_response(meta | {"choices": [choice], "usage": usage})

    @staticmethod
    async def _collect(req: GenRequest) -> list[int]:
        tokens: list[int] = []
        while True:
            item = await req.events.get()
            if item is None:
                return tokens
            if isinstance(item, Exception):
                raise RuntimeError(str(item))
            tokens.append(item)

    async def _stream(self, request: Any, req: GenRequest, meta: dict[str, Any], usage: dict[str, int],
                      include_usage: bool) -> Any:
        from aiohttp import web

        resp = web.StreamResponse(status=200, headers=STREAM_HEADERS)
        try:
            await resp.prepare(request)
            finished = False
            while not finished:
                # Everything already produced goes out in one write (still one SSE event per
                # token): when the loop falls behind the decode steps it catches up in one go.
                items = [await req.events.get()]
                while not req.events.empty():
                    items.append(req.events.get_nowait())
                out: list[bytes] = []
                for item in items:
                    if isinstance(item, Exception):
                        out.append(_sse_bytes(error_body(str(item), "server_error")))
                        finished = True
                        break
                    done = item is None
                    ids = [] if item is None else [item]
                    choice = {"text": llm.ids_to_text(ids), "index": 0, "logprobs": None,
                              "finish_reason": "length" if done else None, "token_ids": ids}
                    out.append(_sse_bytes(meta | {"choices": [choice]}))
                    if done:
                        if include_usage:
                            out.append(_sse_bytes(meta | {"choices": [], "usage": usage}))
                        finished = True
                        break
                await resp.write(b"".join(out))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError) as exc:
            # The client hung up mid-stream: stop producing for it; the batch carries on.
            req.cancelled.set()
            if isinstance(exc, asyncio.CancelledError):
                raise
        return resp


def _sse_bytes(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


# ---- command line -------------------------------------------------------------------------------


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``serve`` and ``serve-bench``."""
    p.add_argument("--model-size", default="tiny", help=f"one of {', '.join(llm.SIZES)} (random weights)")
    p.add_argument("--model", default=None, metavar="PATH", help="a local checkpoint directory instead of --model-size")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--device", default="auto")
    p.add_argument("--engine", choices=ENGINES, default="batch",
                   help="batch: batch-level dynamic batching (prefill and decode phases); continuous: transformers' "
                        "continuous batching (a request joins the running batch at the next step; busy periods tagged "
                        "as generate)")
    p.add_argument("--max-batch-size", type=int, default=8, help="requests per batch (continuous: per step)")
    p.add_argument("--max-seq-len", type=int, default=1024,
                   help="compiled: KV cache tokens per row (prompt + max_tokens of any request)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="batch: how long a batch waits to fill up")
    p.add_argument("--max-queue", type=int, default=256, help="waiting requests beyond this get 429")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stream-interval-ms", type=float, default=0.0,
                   help="hand streamed tokens to the HTTP side at most this often (0: every step)")
    p.add_argument("--gil-switch-ms", type=float, default=0.5,
                   help="Python's thread switch interval (its default is 5 ms; see main())")
    p.add_argument("--cudnn-attention", choices=("off", "on"), default="off",
                   help="batch: let attention use cuDNN's backend, which builds a graph per new shape "
                        "(see llm.EagerDecoder; off: flash, memory-efficient or math attention)")
    p.add_argument("--decode-in", choices=("main", "worker"), default="main",
                   help="the thread the engine decodes in: main (HTTP in a thread of its own; see HttpThread), "
                        "or worker (the arrangement before 2026-12-05, kept to measure against)")


def check_engine_args(args: argparse.Namespace) -> None:
    if args.model is None and args.model_size not in llm.SIZES:
        raise llm.UsageError(f"unknown model size {args.model_size!r}; one of: {', '.join(llm.SIZES)}")
    if args.max_batch_size < 1:
        raise llm.UsageError("--max-batch-size must be at least 1")
    if args.max_seq_len < 2:
        raise llm.UsageError("--max-seq-len must be at least 2")
    if args.max_queue < 1:
        raise llm.UsageError("--max-queue must be at least 1")
    if args.max_wait_ms < 0:
        raise llm.UsageError("--max-wait-ms must be 0 or more")
    if args.stream_interval_ms < 0:
        raise llm.UsageError("--stream-interval-ms must be 0 or more")
    if args.gil_switch_ms <= 0:
        raise llm.UsageError("--gil-switch-ms must be positive")


def check_port(port: int, allow_zero: bool = True) -> None:
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise llm.UsageError(f"--port must be in {0 if allow_zero else 1}..65535, not {port}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = OneLineParser(prog="workloads serve", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add_engine_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: any free port (printed on stdout)")
    return p.parse_args(argv)


class HttpThread:
    """The HTTP side's event loop in a thread of its own, so that the engine decodes in the main
    thread.

    Why not the other way round: torch's CPU kernels run on an OpenMP team owned by the calling
    thread. The main thread built the model and owns a full team; an engine thread brings a second
    one, and once the teams' threads outnumber the cores, libgomp stops spin-waiting and every small
    matmul puts its team to sleep and wakes it again. On the dev VM (2 cores) the same eager decode
    step took 4.0 ms in a worker thread and 2.1 ms in the main thread (``docs/benchmarks.md``)."""

    def __init__(self, args: argparse.Namespace, engine: Engine, model_name: str, on_exit: Callable[[], None]) -> None:
        self._args, self._engine, self._model_name, self._on_exit = args, engine, model_name, on_exit
        self._listening = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="http", daemon=True)
        self._thread.start()

    def wait_listening(self) -> None:
        """Return once the server listens; raise what kept it from listening."""
        self._listening.wait()
        if self.error is not None:
            raise self.error

    def shut_down(self, timeout_s: float = 30.0) -> None:
        """Close connections with a short grace period and end the thread."""
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop has already closed
                pass
        self._thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 -- handed to the main thread, which reports it
            self.error = exc
        finally:
            self._listening.set()
            self._on_exit()  # the HTTP side is gone: nothing more can arrive

    async def _serve(self) -> None:
        from aiohttp import web

        args = self._args
        runner = web.AppRunner(CompletionServer(self._engine, self._model_name).app(), handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise llm.UsageError(f"cannot listen on {args.host}:{args.port}: {why}") from None
        port = runner.addresses[0][1] if runner.addresses else args.port
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        print(f"serve: listening on http://{args.host}:{port}", flush=True)
        self._listening.set()
        await self._stop.wait()
        await runner.shutdown()
        await runner.cleanup()


def _serve(args: argparse.Namespace, engine: Engine, model_name: str) -> int:
    """Serve until SIGTERM or SIGINT: the engine in this (main) thread, HTTP in its own."""
    asked = threading.Event()

    def stop_soon(*_: Any) -> None:
        asked.set()
        engine.ask_stop()

    http = HttpThread(args, engine, model_name, stop_soon)
    http.wait_listening()
    old = {sig: signal.signal(sig, stop_soon) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.decode_in == "main":
            engine.run()
        else:
            engine.start()
            while not asked.wait(0.1):  # a timed wait, so that signal handlers run
                pass
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        print("serve: shutting down", flush=True)
        # The engine first (waiting requests get an error, the running batch has ended at its
        # last step), then the connections, which still carry those errors out.
        engine.stop()
        http.shut_down()
    if http.error is not None:
        print(f"workloads serve: the HTTP side failed: {http.error!r}", file=sys.stderr, flush=True)
        return 1
    return 0


def make_engine(args: argparse.Namespace, lm: llm.LoadedModel) -> Engine:
    if args.engine == "batch":
        return BatchEngine(lm, args.max_batch_size, args.max_wait_ms, args.max_queue, args.stream_interval_ms,
                           cudnn_attention=args.cudnn_attention == "on")
    if args.engine == "compiled":
        from workloads import static_decode

        max_len = min(args.max_seq_len, lm.max_positions)
        try:
            dec = static_decode.StaticDecoder(lm.model, args.max_batch_size, max_len)
        except static_decode.UnsupportedModel as exc:
            raise llm.UsageError(str(exc)) from None
        # Cache allocation, warm-up and graph capture: their own phase, never part of serving.
        with greentop.phase("compile", engine="compiled", max_batch_size=args.max_batch_size, max_seq_len=max_len):
            dec.prepare()
        return BatchEngine(lm, args.max_batch_size, args.max_wait_ms, args.max_queue, args.stream_interval_ms, dec)
    from workloads import cbatch

    if not cbatch.available(lm.model):
        import transformers

        raise llm.UsageError(f"--engine continuous needs transformers with continuous batching (4.56 or later); "
                             f"this is {transformers.__version__}")
    return cbatch.ContinuousEngine(lm, args.max_batch_size, args.max_queue, args.stream_interval_ms)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        check_engine_args(args)
        check_port(args.port)
        from workloads.generate import (
            resolve,  # torch is imported only once the arguments are good
        )
        from workloads.torchutil import seed_all, sync

        device, dtype = resolve(args.device, args.precision)
        seed_all(args.seed)
        with greentop.phase("load-model", model=args.model or args.model_size, precision=args.precision):
            lm = llm.load_model(args.model_size, args.model, device, dtype, args.seed)
            # One small generation so the first request does not pay for kernel loading and
            # library handles (part of getting the model ready, hence inside load-model).
            llm.greedy_generate(lm.model, [[0] * 8], 2, device)
            sync(device)
        print(f"serve: {lm.name}, {lm.params} parameters, on {device} in {args.precision}", flush=True)
        # The decode loop holds the GIL for most of each step (eager transformers is Python-heavy);
        # every socket write the event loop makes releases the GIL and then waits up to the switch
        # interval to get it back. With Python's 5 ms default, streaming to a full batch costs
        # tens of ms per step; a shorter interval keeps the loop's latency low.
        sys.setswitchinterval(args.gil_switch_ms / 1000.0)
        engine = make_engine(args, lm)
        with greentop.phase("serve", engine=args.engine, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms):
            return _serve(args, engine, lm.name)
    except llm.UsageError as exc:
        return llm.usage_exit("workloads serve", str(exc))
