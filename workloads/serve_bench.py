"""``python -m workloads serve-bench``: start the server, drive it with the load generator, stop it.

The server runs as a child process (``python -m workloads serve``) on a free port; under
``greentop record`` it inherits the launcher's environment, so its ``load-model``, ``serve``,
``prefill`` and ``decode`` phases and its token and request counts reach the recording. This
process waits for ``/health``, runs the load (``workloads.loadgen``) without tagging phases of its
own (the server's ``serve`` phase is the primary one), stops the server with SIGTERM so it closes
its phases, and writes one result document (workload ``serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from workloads import llm, loadgen, server
from greentop.cliargs import OneLineParser

HEALTH_TIMEOUT_S = 600.0  # loading 8b onto a GPU from nothing can take minutes on a cold host
STOP_TIMEOUT_S = 60.0


def free_port(host: str) -> int:
    """A port free now (bound to 0, then released); the tiny race with other processes is accepted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.1)
    raise RuntimeError(f"the server was not healthy within {timeout_s:.0f} s")


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (the server closes its phases), then SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _health_or(url: str, fallback: dict[str, Any]) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            return dict(json.loads(resp.read()))
    except (urllib.error.URLError, OSError, ValueError):
        return fallback


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = OneLineParser(prog="workloads serve-bench", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    server.add_engine_args(p)
    loadgen.add_load_args(p, with_url=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--result", default=None, metavar="PATH", help="write the result document here")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    prog = "workloads serve-bench"
    args = parse_args(argv)
    try:
        server.check_engine_args(args)
        server.check_port(args.port)
        if args.duration is None and args.requests is None:
            args.duration = 10.0
        port = args.port or free_port(args.host)
        url = f"http://{args.host}:{port}"
        spec = loadgen.spec_from_args(args, url)
        from workloads.generate import (
            resolve,  # validates device/precision before the server starts
        )

        device, _ = resolve(args.device, args.precision)
    except llm.UsageError as exc:
        return llm.usage_exit(prog, str(exc))

    cmd = [sys.executable, "-m", "workloads", "serve", "--host", args.host, "--port", str(port),
           "--model-size", args.model_size, "--precision", args.precision, "--device", args.device, "--engine", args.engine,
           "--max-batch-size", str(args.max_batch_size), "--max-seq-len", str(args.max_seq_len), "--max-wait-ms", str(args.max_wait_ms),
           "--max-queue", str(args.max_queue), "--seed", str(args.seed), "--gil-switch-ms", str(args.gil_switch_ms),
           "--stream-interval-ms", str(args.stream_interval_ms), "--decode-in", args.decode_in, "--cudnn-attention", args.cudnn_attention]
    if args.model:
        cmd += ["--model", args.model]
    # The server's output goes to our stderr: our stdout is the bench's report only.
    proc = subprocess.Popen(cmd, stdout=sys.stderr, stderr=sys.stderr, env=os.environ.copy())
    try:
        try:
            health = wait_healthy(url, proc, HEALTH_TIMEOUT_S)
        except RuntimeError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 1
        from workloads.torchutil import Utilisation, hardware

        util = Utilisation(device)  # NVML's utilisation is the device's, whichever process drives it
        with util.measure():
            records, wall_s = asyncio.run(loadgen.run_load(spec))
        health = _health_or(url, health)  # the engine's own decode-step figures, after the load
    finally:
        status = stop_server(proc)
    metrics: dict[str, Any] = loadgen.summarise(records, wall_s)
    metrics["model_params"] = health.get("model_params")
    metrics["gpu_util_pct"] = util.metrics()["gpu_util_pct"]
    metrics["server_exit_code"] = status
    if "decode_step_mean_ms" in health:  # the server's decode step, timed where it runs (batch engines)
        metrics["server_decode_step_ms"] = health["decode_step_mean_ms"]
        metrics["server_decode_steps"] = health.get("decode_steps")
    from workloads.results import mark_outcome

    mark_outcome(metrics)
    if args.out:
        loadgen.write_records(args.out, records)
    if args.result:
        from workloads.results import write_result

        params = {k: v for k, v in vars(args).items() if k not in ("result", "out", "host", "port")}
        write_result(args.result, workload="serve", primary_phase="serve", params=params, metrics=metrics,
                     hardware=hardware(device))
    print(loadgen.report_line("serve-bench", metrics), flush=True)
    return 0 if metrics["requests_ok"] and status == 0 else 1
