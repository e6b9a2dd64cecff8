"""The generative workloads: llm-infer, the completions server, the load generator, serve-bench.

Everything runs the ``tiny`` Llama on the CPU. Two tests run a real ``greentop record`` on a fake
host (as tests/test_record.py does); the server tests run the real aiohttp server in a thread.
No timing is asserted anywhere: only phases, counts, token lengths and status codes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("aiohttp")

from greentop.trace import load  # noqa: E402
from workloads import cbatch, generate, llm, loadgen, server, static_decode  # noqa: E402
from workloads.genrequest import Engine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def record(tmp_path: Path, env: dict[str, str], *workload: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "run.h5"
    cmd = [sys.executable, "-m", "greentop", "record", "-o", str(out), "--no-baseline", "--",
           sys.executable, "-m", "workloads", *workload]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=180)
    return proc, out


def counts_of(tr: Any) -> dict[str, float]:
    totals: dict[str, float] = {}
    for c in tr.counts:
        totals[c.name] = totals.get(c.name, 0.0) + c.value
    return totals


# ---- models -------------------------------------------------------------------------------------


def test_named_sizes_have_the_real_parameter_counts() -> None:
    # Built on the meta device: 8b costs no memory. The Llama 3.x figures are the published ones.
    counts = {size: llm.params_of_size(size) for size in llm.SIZES}
    assert counts["1b"] == 1_235_814_400
    assert counts["3b"] == 3_212_749_824
    assert counts["8b"] == 8_030_261_248
    assert 0.08e9 < counts["0.1b"] < 0.15e9 and 0.4e9 < counts["0.5b"] < 0.6e9
    assert counts["tiny"] < 200_000
    cfg = llm.build_config("8b")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.intermediate_size) == (4096, 32, 8, 14336)


def test_random_model_is_seeded_tied_and_generates_exactly_n_tokens() -> None:
    a = llm.build_random("tiny", CPU, torch.float32, seed=3)
    b = llm.build_random("tiny", CPU, torch.float32, seed=3)
    assert a.lm_head.weight is a.model.embed_tokens.weight  # tied, as the 1b/3b shapes are
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert all(torch.isfinite(p).all() for p in a.parameters())
    outs = llm.greedy_generate(a, [[1, 2, 3, 4, 5], [7, 8]], 6, CPU)
    assert [len(o) for o in outs] == [6, 6]
    # Left padding changes nothing: a padded row computes what it computes alone.
    assert outs[1] == llm.greedy_generate(a, [[7, 8]], 6, CPU)[0]
    # Our loop is the library's greedy decoding.
    ref = a.generate(torch.tensor([[1, 2, 3, 4, 5]]), max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert outs[0] == ref[0, 5:].tolist()


def test_text_maps_to_ids_and_back_deterministically() -> None:
    assert llm.text_to_ids("hé", 512) == [104, 195, 169]
    assert llm.text_to_ids("A", 50) == [65 % 50]
    assert llm.ids_to_text([0, 94, 95, 33]) == " ~ A"


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (generate.main, ["--model-size", "9b"]),
        (generate.main, ["--model-size", "tiny", "--device", "cpu", "--precision", "fp16"]),
        (generate.main, ["--batch-size", "0"]),
        (server.main, ["--port", "70000"]),
        (server.main, ["--model-size", "huge"]),
        (loadgen.main, ["--url", "http://127.0.0.1:1", "--rate", "0"]),
    ]
    for fn, argv in cases:
        capsys.readouterr()
        try:
            code = fn(argv)
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err, err


# ---- llm-infer under greentop record --------------------------------------------------------------


def test_llm_infer_under_record_tags_phases_and_counts_exactly(tmp_path: Path, host_env: dict[str, str]) -> None:
    result = tmp_path / "result.json"
    b, prompt_len, n, repeats = 2, 8, 5, 2
    proc, out = record(tmp_path, host_env, "llm-infer", "--model-size", "tiny", "--batch-size", str(b),
                       "--prompt-len", str(prompt_len), "--output-len", str(n), "--precision", "fp32",
                       "--device", "cpu", "--repeats", str(repeats), "--seed", "1", "--result", str(result))
    assert proc.returncode == 0, proc.stderr
    tr = load(out)
    names = [p.name for p in tr.phases]
    assert names == ["load-model"] + ["generate", "prefill", "decode"] * repeats
    for i in (1, 4):
        gen, pre, dec = tr.phases[i], tr.phases[i + 1], tr.phases[i + 2]
        assert gen.depth == 0 and pre.parent == gen.index and dec.parent == gen.index
        assert gen.start_ns <= pre.start_ns <= pre.end_ns <= dec.start_ns <= dec.end_ns <= gen.end_ns
        assert gen.attrs["batch_size"] == b
    assert all(p.status == "ok" for p in tr.phases)
    assert counts_of(tr) == {"input_tokens": b * prompt_len * repeats, "output_tokens": b * n * repeats,
                             "requests": b * repeats}
    doc = json.loads(result.read_text())
    assert doc["workload"] == "llm-infer" and doc["primary_phase"] == "generate"
    m = doc["metrics"]
    assert m["output_tokens"] == b * n * repeats and m["model_params"] == llm.params_of_size("tiny")
    assert {"prefill_s", "decode_s", "output_tokens_per_s", "time_per_output_token_ms", "gpu_util_pct",
            "peak_memory_bytes"} <= m.keys()


# ---- the compiled engine -------------------------------------------------------------------------


def chaotic_tiny() -> llm.LoadedModel:
    """A tiny model whose greedy tokens vary from step to step (the default random init is so flat
    that every row repeats one token, which would hide a wrong position or cache slot)."""
    lm = llm.load_model("tiny", None, CPU, torch.float32, seed=1)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in lm.model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return lm


def test_compiled_engine_gives_the_eager_engines_greedy_tokens() -> None:
    lm = chaotic_tiny()
    gen = torch.Generator().manual_seed(5)
    full = [torch.randint(0, lm.vocab_size, (12,), generator=gen).tolist() for _ in range(3)]
    ragged = [full[0][:5], full[1], full[2][:9]]  # left padding: positions must count real tokens only
    dec = static_decode.StaticDecoder(lm.model, max_batch=4, max_len=48, batch_sizes=[2, 4])
    assert not dec.use_graphs  # CPU: the same fixed-shape step, eagerly
    for prompts in (full, ragged, [full[1]], full[:2]):  # buckets 4, 4, 2 (one row padded), 2
        expected = llm.greedy_generate(lm.model, prompts, 24, CPU)
        assert len({t for row in expected for t in row}) > 20  # the tokens do vary
        assert static_decode.generate(dec, prompts, 24) == expected


def test_compiled_engine_refuses_what_does_not_fit_its_cache() -> None:
    lm = chaotic_tiny()
    dec = static_decode.StaticDecoder(lm.model, max_batch=2, max_len=8)
    with pytest.raises(ValueError):
        dec.prefill(torch.zeros((3, 4), dtype=torch.long), torch.ones((3, 4), dtype=torch.long))
    dec.prefill(torch.zeros((1, 6), dtype=torch.long), torch.ones((1, 6), dtype=torch.long))
    dec.step(), dec.step()
    with pytest.raises(ValueError, match="full"):
        dec.step()


def test_llm_infer_compiled_puts_set_up_in_its_own_phase(tmp_path: Path, host_env: dict[str, str]) -> None:
    result = tmp_path / "result.json"
    proc, out = record(tmp_path, host_env, "llm-infer", "--engine", "compiled", "--model-size", "tiny",
                       "--batch-size", "2", "--prompt-len", "8", "--output-len", "5", "--precision", "fp32",
                       "--device", "cpu", "--result", str(result))
    assert proc.returncode == 0, proc.stderr
    tr = load(out)
    assert [p.name for p in tr.phases] == ["load-model", "compile", "generate", "prefill", "decode"]
    compile_phase = tr.phases[1]
    assert compile_phase.depth == 0 and compile_phase.end_ns <= tr.phases[2].start_ns
    assert compile_phase.attrs["engine"] == "compiled"
    assert counts_of(tr)["output_tokens"] == 2 * 5
    doc = json.loads(result.read_text())
    assert doc["params"]["engine"] == "compiled" and doc["metrics"]["compile_s"] >= 0


def test_compiled_server_refuses_a_request_beyond_its_cache(tiny: llm.LoadedModel) -> None:
    dec = static_decode.StaticDecoder(tiny.model, 2, 16)
    engine = server.BatchEngine(tiny, max_batch_size=2, max_wait_ms=5, max_queue=8, decoder=dec)
    engine.start()
    with ServerThread(engine) as base:
        status, doc = post(base, {"prompt": [1] * 10, "max_tokens": 7})
        assert status == 400 and "16" in doc["error"]["message"]
        status, doc = post(base, {"prompt": [1] * 10, "max_tokens": 6})
        assert status == 200 and doc["choices"][0]["token_ids"] == llm.greedy_generate(tiny.model, [[1] * 10], 6, CPU)[0]


# ---- the server, in a thread --------------------------------------------------------------------


class ServerThread:
    """The real aiohttp app on a free port, its event loop in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from aiohttp import web

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        runner = web.AppRunner(server.CompletionServer(self.engine, "tiny").app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> str:
        self._thread.start()
        assert self._ready.wait(30)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.engine.stop()
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def tiny() -> llm.LoadedModel:
    return llm.load_model("tiny", None, CPU, torch.float32, seed=0)


def make_engine(kind: str, lm: llm.LoadedModel, max_batch_size: int, max_queue: int) -> Engine:
    if kind == "batch":
        return server.BatchEngine(lm, max_batch_size=max_batch_size, max_wait_ms=20, max_queue=max_queue)
    if kind == "compiled":  # on the CPU: the static cache and fixed-shape step, run eagerly
        dec = static_decode.StaticDecoder(lm.model, max_batch_size, lm.max_positions)
        return server.BatchEngine(lm, max_batch_size=max_batch_size, max_wait_ms=20, max_queue=max_queue, decoder=dec)
    # Its own copy of the same weights: transformers switches the model it batches to paged
    # attention (and 5.17 leaves it so), while the tests take expected outputs from a plain forward.
    own = llm.load_model("tiny", None, CPU, torch.float32, seed=0)
    return cbatch.ContinuousEngine(own, max_batch_size=max_batch_size, max_queue=max_queue)


@pytest.fixture(params=server.ENGINES)
def url(request: pytest.FixtureRequest, tiny: llm.LoadedModel) -> Iterator[str]:
    # Every HTTP test runs against both engines: the HTTP side must not care which one answers.
    engine = make_engine(request.param, tiny, max_batch_size=4, max_queue=64)
    engine.start()
    with ServerThread(engine) as base:
        yield base


def post(base: str, body: Any, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(base + "/v1/completions", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(base: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + path, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def stream_events(base: str, body: dict[str, Any]) -> list[Any]:
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(body | {"stream": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    events: list[Any] = []
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for line in resp:
            text = line.decode().strip()
            if text.startswith("data: "):
                events.append("[DONE]" if text == "data: [DONE]" else json.loads(text[6:]))
    return events


def test_completions_are_the_models_greedy_output_with_exact_lengths(url: str, tiny: llm.LoadedModel) -> None:
    assert get(url, "/health")["status"] == "ok"
    assert get(url, "/v1/models")["data"][0]["id"] == "tiny"
    prompt = [5, 17, 300, 2, 41]
    status, doc = post(url, {"model": "tiny", "prompt": prompt, "max_tokens": 7, "unknown_field": [1]})
    assert status == 200 and doc["object"] == "text_completion"
    choice = doc["choices"][0]
    expected = llm.greedy_generate(tiny.model, [prompt], 7, CPU)[0]
    assert choice["token_ids"] == expected and choice["text"] == llm.ids_to_text(expected)
    assert choice["finish_reason"] == "length"
    assert doc["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    # A text prompt is its UTF-8 bytes modulo the vocabulary.
    _, doc = post(url, {"prompt": "hello", "max_tokens": 3})
    assert doc["choices"][0]["token_ids"] == llm.greedy_generate(tiny.model, [llm.text_to_ids("hello", 512)], 3, CPU)[0]


def test_concurrent_requests_are_batched_and_each_gets_its_own_length(url: str, tiny: llm.LoadedModel) -> None:
    prompts = [[1, 2, 3], [9] * 11, [400, 401], [7, 7, 7, 7, 7, 7]]
    lengths = [4, 9, 1, 6]
    results: list[tuple[int, dict[str, Any]]] = [(0, {})] * len(prompts)

    def one(i: int) -> None:
        results[i] = post(url, {"prompt": prompts[i], "max_tokens": lengths[i]})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for (status, doc), prompt, n in zip(results, prompts, lengths):
        assert status == 200
        ids = doc["choices"][0]["token_ids"]
        assert len(ids) == n and doc["usage"]["completion_tokens"] == n
        assert ids == llm.greedy_generate(tiny.model, [prompt], n, CPU)[0]


def test_streaming_sends_one_chunk_per_token_then_done(url: str) -> None:
    events = stream_events(url, {"prompt": [3, 4, 5], "max_tokens": 5, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    tokens = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] is None]
    assert len(tokens) == 5 and all(len(t["text"]) == 1 for t in tokens)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    _, doc = post(url, {"prompt": [3, 4, 5], "max_tokens": 5})
    assert "".join(t["text"] for t in tokens) == doc["choices"][0]["text"]


def test_bad_requests_get_400_in_openais_shape_and_the_server_stays_up(url: str) -> None:
    bad = [{"prompt": 5}, {"prompt": []}, {"prompt": [1, 99999]}, {"prompt": "x", "max_tokens": 0},
           {"prompt": "x", "max_tokens": "ten"}, {"prompt": "x", "stream": "yes"}, ["not", "an", "object"],
           {"prompt": "x", "max_tokens": 10**6}]
    for body in bad:
        status, doc = post(url, body)
        assert status == 400 and doc["error"]["type"] == "invalid_request_error" and doc["error"]["message"], body
    status, doc = post(url, None, raw=b"{not json")
    assert status == 400 and "JSON" in doc["error"]["message"]
    assert post(url, {"prompt": [1], "max_tokens": 2})[0] == 200


def test_a_client_that_hangs_up_mid_stream_does_not_break_the_server(url: str) -> None:
    async def hang_up() -> int:
        import aiohttp

        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/completions", json={"prompt": [1, 2], "max_tokens": 1500, "stream": True}) as r:
                await r.content.readline()  # the first token arrived; now go away
                return r.status

    assert asyncio.run(hang_up()) == 200
    events = stream_events(url, {"prompt": [8, 9], "max_tokens": 4})
    assert events[-1] == "[DONE]" and len([e for e in events[:-1] if e["choices"][0]["finish_reason"] is None]) == 4
    assert get(url, "/health")["status"] == "ok"


def test_a_full_queue_is_refused_with_429_and_the_server_stays_up(tiny: llm.LoadedModel) -> None:
    # The engine is not started yet, so nothing leaves the queue: the third request must be
    # refused, deterministically. Once started, the two waiting ones are served.
    engine = server.BatchEngine(tiny, max_batch_size=1, max_wait_ms=0, max_queue=2)
    with ServerThread(engine) as base:
        results: list[tuple[int, dict[str, Any]]] = []
        lock = threading.Lock()

        def one() -> None:
            r = post(base, {"prompt": [1, 2, 3], "max_tokens": 3})
            with lock:
                results.append(r)

        waiting = [threading.Thread(target=one) for _ in range(2)]
        for t in waiting:
            t.start()
        while engine.queued() < 2:
            threading.Event().wait(0.01)
        status, doc = post(base, {"prompt": [1], "max_tokens": 1})
        assert status == 429 and doc["error"]["code"] == "queue_full" and "overloaded" in doc["error"]["message"]
        assert get(base, "/health")["queued"] == 2
        engine.start()
        for t in waiting:
            t.join(60)
        assert [s for s, _ in results] == [200, 200]
        assert post(base, {"prompt": [1], "max_tokens": 1})[0] == 200


def test_continuous_engine_refuses_beyond_a_full_step_and_its_queue(tiny: llm.LoadedModel) -> None:
    # Not started, nothing finishes: one step's worth (max_batch_size) plus max_queue are admitted,
    # the next is refused; once started, every admitted request is served in full.
    engine = make_engine("continuous", tiny, max_batch_size=2, max_queue=1)
    with ServerThread(engine) as base:
        results: list[tuple[int, dict[str, Any]]] = []
        lock = threading.Lock()

        def one(n: int) -> None:
            r = post(base, {"prompt": [1, 2, 3], "max_tokens": n})
            with lock:
                results.append(r)

        admitted = [threading.Thread(target=one, args=(n,)) for n in (3, 5, 2)]
        for t in admitted:
            t.start()
        while engine.queued() < 1:
            threading.Event().wait(0.01)
        status, doc = post(base, {"prompt": [1], "max_tokens": 1})
        assert status == 429 and doc["error"]["code"] == "queue_full"
        engine.start()
        for t in admitted:
            t.join(60)
        assert sorted((s, len(d["choices"][0]["token_ids"])) for s, d in results) == [(200, 2), (200, 3), (200, 5)]
        assert post(base, {"prompt": [1], "max_tokens": 1})[0] == 200
        health = get(base, "/health")
        assert health["engine"] == "continuous" and health["output_tokens"] == 11 and health["queued"] == 0


def test_continuous_engine_frees_a_hung_up_clients_slot(tiny: llm.LoadedModel) -> None:
    engine = make_engine("continuous", tiny, max_batch_size=1, max_queue=0)
    engine.start()
    with ServerThread(engine) as base:
        async def hang_up() -> None:
            import aiohttp

            async with aiohttp.ClientSession() as s:
                async with s.post(base + "/v1/completions", json={"prompt": [1, 2], "max_tokens": 1500, "stream": True}) as r:
                    await r.content.readline()

        asyncio.run(hang_up())
        deadline = time.monotonic() + 30
        while get(base, "/health")["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.01)
        # Cancelled, not run to the end: only the tokens made before the hang-up were counted.
        assert 1 <= get(base, "/health")["output_tokens"] < 1500
        status, doc = post(base, {"prompt": [4], "max_tokens": 3})
        assert status == 200 and len(doc["choices"][0]["token_ids"]) == 3


# ---- the load generator -------------------------------------------------------------------------


def test_poisson_send_times_have_the_asked_rate() -> None:
    times = loadgen.poisson_send_times(rate=40.0, seed=7, requests=20_000)
    gaps = [b - a for a, b in zip([0.0] + times, times)]
    mean = sum(gaps) / len(gaps)
    assert abs(mean - 1 / 40.0) < 0.03 / 40.0
    var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
    assert abs(var ** 0.5 / mean - 1.0) < 0.05  # exponential gaps: coefficient of variation 1
    by_time = loadgen.poisson_send_times(rate=40.0, seed=7, duration_s=250.0)
    assert abs(len(by_time) / 250.0 - 40.0) < 40.0 * 0.03 and by_time[-1] <= 250.0
    assert loadgen.poisson_send_times(40.0, seed=7, requests=50) == times[:50]  # seeded, reproducible


def test_percentiles() -> None:
    assert loadgen.percentile([], 50) is None
    assert loadgen.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert loadgen.percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_loadgen_against_the_server_measures_every_request(url: str, tmp_path: Path) -> None:
    out, result = tmp_path / "requests.jsonl", tmp_path / "loadgen.json"
    code = loadgen.main(["--url", url, "--mode", "poisson", "--rate", "50", "--requests", "12", "--prompt-len", "6",
                         "--output-len", "5", "--seed", "3", "--out", str(out), "--result", str(result)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and all(r["ok"] and r["status"] == 200 and r["output_tokens"] == 5 for r in rows)
    assert all(r["ttft_ms"] is not None and r["tpot_ms"] is not None and r["e2e_ms"] >= r["ttft_ms"] for r in rows)
    m = json.loads(result.read_text())["metrics"]
    assert m["requests"] == 12 and m["errors"] == 0 and m["output_tokens"] == 60
    assert m["ttft_p50_ms"] is not None and m["e2e_p99_ms"] is not None
    # Closed loop, without streaming, to a CSV.
    csv_out = tmp_path / "closed.csv"
    assert loadgen.main(["--url", url, "--mode", "closed", "--concurrency", "3", "--requests", "5", "--prompt-len", "4",
                         "--output-len", "3", "--no-stream", "--out", str(csv_out)]) == 0
    lines = csv_out.read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("index,")


def test_loadgen_counts_refused_connections_as_errors() -> None:
    spec = loadgen.LoadSpec(url="http://127.0.0.1:9", mode="poisson", rate=1000.0, requests=3, duration_s=None,
                            prompt_len=2, output_len=2, model="x")
    records, _ = asyncio.run(loadgen.run_load(spec))
    m = loadgen.summarise(records, 1.0)
    assert m["requests"] == 3 and m["errors"] == 3 and m["ttft_p50_ms"] is None
    assert m["errors_overloaded"] == 0  # refused connections are not overload


def test_loadgen_tells_overload_from_other_errors() -> None:
    records = [loadgen.RequestRecord(index=i, scheduled_s=0.0) for i in range(4)]
    records[0].status, records[1].status, records[2].status = 429, 429, 500
    m = loadgen.summarise(records, 1.0)
    assert m["errors"] == 4 and m["errors_overloaded"] == 2


# ---- serve-bench under greentop record ----------------------------------------------------------


def test_serve_bench_under_record_tags_the_servers_phases_and_counts(tmp_path: Path, host_env: dict[str, str]) -> None:
    result = tmp_path / "bench.json"
    n, prompt_len, output_len = 8, 6, 4
    proc, out = record(tmp_path, host_env, "serve-bench", "--model-size", "tiny", "--precision", "fp32", "--device", "cpu",
                       "--rate", "40", "--requests", str(n), "--prompt-len", str(prompt_len), "--output-len",
                       str(output_len), "--max-batch-size", "4", "--result", str(result))
    assert proc.returncode == 0, proc.stderr
    tr = load(out)
    by_name: dict[str, list[Any]] = {}
    for p in tr.phases:
        by_name.setdefault(p.name, []).append(p)
    assert [p.name for p in tr.phases][:2] == ["load-model", "serve"]
    serve = by_name["serve"][0]
    assert len(by_name["serve"]) == 1 and serve.status == "ok"  # closed by a clean SIGTERM shutdown
    assert by_name["prefill"] and by_name["decode"]
    assert all(p.parent == serve.index for p in by_name["prefill"] + by_name["decode"])
    assert sum(p.attrs["batch_size"] for p in by_name["prefill"]) == n
    assert counts_of(tr) == {"requests": n, "input_tokens": n * prompt_len, "output_tokens": n * output_len}
    doc = json.loads(result.read_text())
    assert doc["workload"] == "serve" and doc["primary_phase"] == "serve"
    m = doc["metrics"]
    assert m["requests"] == n and m["errors"] == 0 and m["model_params"] == llm.params_of_size("tiny")
    assert m["server_exit_code"] == 0
    assert {"throughput_req_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "e2e_p50_ms", "e2e_p99_ms",
            "gpu_util_pct"} <= m.keys()


def test_continuous_serve_bench_under_record_tags_busy_periods_and_counts(tmp_path: Path, host_env: dict[str, str]) -> None:
    result = tmp_path / "bench.json"
    n, prompt_len, output_len = 8, 6, 4
    proc, out = record(tmp_path, host_env, "serve-bench", "--engine", "continuous", "--model-size", "tiny", "--precision",
                       "fp32", "--device", "cpu", "--rate", "40", "--requests", str(n), "--prompt-len", str(prompt_len),
                       "--output-len", str(output_len), "--max-batch-size", "4", "--result", str(result))
    assert proc.returncode == 0, proc.stderr
    tr = load(out)
    names = [p.name for p in tr.phases]
    assert names[:2] == ["load-model", "serve"] and set(names[2:]) == {"generate"}
    serve = tr.phases[1]
    assert serve.status == "ok" and serve.attrs["engine"] == "continuous"
    busy = [p for p in tr.phases if p.name == "generate"]
    assert all(p.parent == serve.index and p.status == "ok" for p in busy)
    assert all(a.end_ns <= b.start_ns for a, b in zip(busy, busy[1:]))  # busy periods never overlap
    assert counts_of(tr) == {"requests": n, "input_tokens": n * prompt_len, "output_tokens": n * output_len}
    m = json.loads(result.read_text())["metrics"]
    assert m["requests_ok"] == n and m["server_exit_code"] == 0
