"""The server decodes in its main thread and serves HTTP from another (server.HttpThread says why;
``--decode-in worker`` keeps the old arrangement to measure against), shuts down cleanly on
SIGTERM, and says in one line when it cannot listen."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Runs server.main in this process's main thread, with each decode step noting which thread ran it;
# a helper thread sends one request once the server answers /health, then SIGTERMs the process.
SCRIPT = r"""
import json, os, signal, sys, threading, time, urllib.request
from workloads import llm, server, static_decode

engine, decode_in, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
cls = static_decode.StaticDecoder if engine == "compiled" else llm.EagerDecoder
seen = []
plain_step = cls.step
def step(self):
    seen.append(threading.current_thread() is threading.main_thread())
    return plain_step(self)
cls.step = step

def client():
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/health", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    body = json.dumps({"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 5}).encode()
    req = urllib.request.Request(base + "/v1/completions", body, {"Content-Type": "application/json"})
    out = json.loads(urllib.request.urlopen(req, timeout=60).read())
    print("TOKENS", json.dumps(out["choices"][0]["token_ids"]), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=client, daemon=True).start()
rc = server.main(["--model-size", "tiny", "--precision", "fp32", "--device", "cpu", "--engine", engine,
                  "--max-batch-size", "2", "--max-seq-len", "64", "--decode-in", decode_in, "--port", str(port)])
print("RESULT", json.dumps({"rc": rc, "steps": len(seen), "in_main": sorted(set(seen))}), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _line(out: str, tag: str) -> str:
    return next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith(tag + " "))


@pytest.mark.parametrize(("engine", "decode_in"), [("batch", "main"), ("compiled", "main"), ("batch", "worker")])
def test_the_server_decodes_in_the_thread_asked_and_stops_cleanly_on_sigterm(engine: str, decode_in: str) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, engine, decode_in, str(_free_port())], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(_line(proc.stdout, "TOKENS"))) == 5
    result = json.loads(_line(proc.stdout, "RESULT"))
    assert result["rc"] == 0
    assert result["steps"] >= 4  # 5 tokens: one from the prefill, four decode steps
    assert result["in_main"] == [decode_in == "main"], "a decode step ran in another thread than asked"
    assert "serve: shutting down" in proc.stdout


def test_a_port_in_use_is_one_line_and_a_usage_exit() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "workloads", "serve", "--model-size", "tiny", "--precision", "fp32",
                               "--device", "cpu", "--port", str(port)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("workloads serve: ") and f"cannot listen on 127.0.0.1:{port}: " in errors[0]
    assert "in use" in errors[0].lower() and "Traceback" not in proc.stderr


def test_the_batch_engine_keeps_attention_off_cudnn_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuDNN's attention builds a graph per new shape, per thread (llm.EagerDecoder says why): the
    server's eager decode runs with that backend off, and ``--cudnn-attention on`` leaves it on."""
    import torch

    from workloads import llm, server

    seen: list[bool] = []

    def step(model: object, tokens: torch.Tensor, state: object) -> torch.Tensor:
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return tokens

    monkeypatch.setattr(llm, "decode_step", step)
    lm = llm.load_model("tiny", None, torch.device("cpu"), torch.float32)
    for flag, expected in (("off", False), ("on", True)):
        args = server.parse_args(["--model-size", "tiny", "--device", "cpu", "--cudnn-attention", flag])
        engine = server.make_engine(args, lm)
        dec = engine.decoder  # type: ignore[attr-defined]
        dec.prefill(torch.tensor([[1, 2, 3]]), torch.ones((1, 3), dtype=torch.long))
        dec.step()
        assert seen[-1] is expected, flag
    assert torch.backends.cuda.cudnn_sdp_enabled()  # the setting is torch's own again after each step
    assert server.parse_args([]).cudnn_attention == "off"
