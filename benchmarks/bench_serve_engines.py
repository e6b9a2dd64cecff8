"""Two ways of serving side by side under the same Poisson load (``--compare``):

- ``engines`` (the default): batch-level dynamic batching (the baseline) against transformers'
  continuous batching;
- ``decode-thread``: the ``--engine`` given decoding in a worker thread (the baseline, the
  arrangement before 2026-12-05) against decoding in the main thread (``serve --decode-in``);
- ``cudnn-attention``: the batch engine with attention on cuDNN's backend (the baseline, torch's
  own choice on an H100/H200) against off it (``serve --cudnn-attention``, off by default).

    python benchmarks/bench_serve_engines.py [--compare engines|decode-thread|cudnn-attention] [--engine batch]
                                             [--model-size tiny] [--device cpu] [--rates 2,8]
                                             [--repeats 3] [--duration 6] [--output-len 64]
                                             [--max-batch-size 8] [--out FILE.json]

Each run is one ``python -m workloads serve-bench`` (server and load generator, no recording),
the two variants interleaved (baseline, other, baseline, ...) so that drift in the machine's load
hits both. One JSON object per run on stdout, then one summary object per rate: the median of each
metric per variant over the repeats and the ratio other / baseline (below 1: the other is lower).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import machine_info  # noqa: E402

METRICS = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "e2e_p50_ms", "e2e_p99_ms", "throughput_output_tokens_s",
           "server_decode_step_ms", "requests_ok", "errors")


def variants(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(name, serve-bench options) of the baseline, then of the other."""
    if args.compare == "engines":
        return [("batch", ["--engine", "batch"]), ("continuous", ["--engine", "continuous"])]
    if args.compare == "cudnn-attention":
        return [("batch/cudnn-on", ["--engine", "batch", "--cudnn-attention", "on"]),
                ("batch/cudnn-off", ["--engine", "batch", "--cudnn-attention", "off"])]
    return [(f"{args.engine}/worker", ["--engine", args.engine, "--decode-in", "worker"]),
            (f"{args.engine}/main", ["--engine", args.engine, "--decode-in", "main"])]


def one_run(variant: str, options: list[str], rate: float, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    result = tmp / f"{variant.replace('/', '-')}-{rate}.json"
    cmd = [sys.executable, "-m", "workloads", "serve-bench", *options, "--model-size", args.model_size,
           "--device", args.device, "--precision", args.precision, "--rate", str(rate), "--duration", str(args.duration),
           "--prompt-len", str(args.prompt_len), "--output-len", str(args.output_len),
           "--max-batch-size", str(args.max_batch_size), "--result", str(result)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        return {"variant": variant, "rate": rate, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    metrics = json.loads(result.read_text())["metrics"]
    return {"variant": variant, "rate": rate} | {k: metrics.get(k) for k in METRICS}


def summarise(runs: list[dict[str, Any]], rate: float, names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "serve_engines_summary", "rate": rate}
    for metric in METRICS:
        med = {}
        for name in names:
            vals = [r[metric] for r in runs if r["variant"] == name and r["rate"] == rate and r.get(metric) is not None]
            med[name] = statistics.median(vals) if vals else None
        out[metric] = med
        base, new = med[names[0]], med[names[1]]
        out[f"{metric}_ratio"] = new / base if base and new is not None else None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--compare", choices=("engines", "decode-thread", "cudnn-attention"), default="engines")
    p.add_argument("--engine", choices=("batch", "compiled"), default="batch", help="decode-thread: the engine compared")
    p.add_argument("--model-size", default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--rates", default="2,8", help="requests per second, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=float, default=6.0, help="seconds of load per run")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--out", type=Path, default=None, help="also write machine info, runs and summaries here")
    args = p.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            for repeat in range(args.repeats):
                for name, options in variants(args):
                    run = {"bench": "serve_engines", "repeat": repeat} | one_run(name, options, rate, args, Path(tmp))
                    print(json.dumps(run), flush=True)
                    runs.append(run)
    summaries = [summarise(runs, rate, [name for name, _ in variants(args)]) for rate in rates]
    for s in summaries:
        print(json.dumps(s), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps({"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()},
                                        "runs": runs, "summaries": summaries}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
