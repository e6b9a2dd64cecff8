#!/usr/bin/env bash
# One device call of issue #16's pending GPU work, whichever card comes, within SECONDS (default
# 590): the eager server's fix first (any card shows it; about 5 minutes), then with what is left
# on an H100 the rest of serving-compiled (its first 7 points ran on an H100), on an H200 the 8.0 B
# compiled repeats (the llm-infer grid ran on an H200). Both sweeps resume.
#   bash benchmarks/h200/run_any_card.sh [SECONDS]
set -u
here=$(cd "$(dirname "$0")" && pwd)
end=$(( $(date +%s) + ${1:-590} ))
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "card: $card"
bash "$here/run_pending.sh" fix
left=$(( end - $(date +%s) - 20 ))  # 20 s for packing the sweep's folder
[ "$left" -gt 60 ] || { echo "no time left for a sweep"; exit 0; }
case "$card" in
    *H100*) bash "$here/run_study.sh" "$left" serving-compiled ;;
    *) bash "$here/run_study.sh" "$left" llm-infer-8b-repeat ;;
esac
