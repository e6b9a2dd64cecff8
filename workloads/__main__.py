"""``python -m workloads COMMAND ...``: one entry point for every workload and the sweeps."""

from __future__ import annotations

import importlib
import sys

# command -> (module, one-line description); each module has ``main(argv: list[str]) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("workloads.discriminative", "the README's default: a small CNN trained and run on digits, on the CPU"),
    "train": ("workloads.discriminative", "train a CNN, ViT or BERT-style classifier"),
    "infer": ("workloads.discriminative", "run inference with a CNN, ViT or BERT-style classifier"),
    "llm-infer": ("workloads.generate", "LLM batch inference: prefill and decode at fixed lengths"),
    "serve": ("workloads.server", "OpenAI-compatible completions server with dynamic batching"),
    "loadgen": ("workloads.loadgen", "Poisson or closed-loop load against an OpenAI-compatible server"),
    "serve-bench": ("workloads.serve_bench", "start the server, drive it with the load generator, stop it"),
    "sweep": ("workloads.sweep", "run a TOML grid of workloads, each point under greentop record"),
    "idle": ("workloads.idle", "a torch-free stand-in workload: tagged phases and counts, no model"),
}


def usage() -> str:
    lines = ["usage: python -m workloads COMMAND [options]   (COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<12} {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"workloads: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    if name in ("demo", "train", "infer"):
        return int(module.main([name, *rest]))
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
