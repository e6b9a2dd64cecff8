#!/usr/bin/env bash
# The H200 part of issues #5/#6 when only a few minutes of device time are left: the quick
# sweeps, each bounded by `timeout` so a slow point cannot eat the others' time; each sweep's
# folder is packed into $OUT as soon as it ends (what is under $OUT comes back even on a kill).
set -u
export PYTHONUNBUFFERED=1
python3 setup.py build_ext --inplace -q >/dev/null 2>&1 || { echo "build failed"; exit 1; }
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv > $OUT/gpu.csv 2>&1
run() {  # NAME SECONDS
    local name=$1 secs=$2
    timeout -s INT "$secs" python3 -m workloads sweep "workloads/sweeps/$name.toml" --out "runs/$name" 2>&1 | tail -25
    tar czf "$OUT/$name.tgz" -C runs "$name"
}
run llm-h200-quick 100
run cnn-h200-quick 90
