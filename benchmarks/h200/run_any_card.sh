#!/usr/bin/env bash
# One device call of issue #16's pending GPU work, whichever card comes: the eager server's fix
# first (any card shows it), then on an H100 the rest of serving-compiled (its first 7 points ran
# on an H100), on an H200 the 8.0 B compiled repeats (the llm-infer grid ran on an H200).
#   bash benchmarks/h200/run_any_card.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "card: $card"
case "$card" in
    *H100*) bash "$here/run_pending.sh" 1 ;;
    *) bash "$here/run_pending.sh" fix && bash "$here/run_study.sh" 250 llm-infer-8b-repeat ;;
esac
