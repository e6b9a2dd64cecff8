#!/usr/bin/env bash
# The H200 grids of issue #5 (workloads/sweeps/*-h200.toml), within one device call's limit:
#   bash benchmarks/h200/run_study.sh SECONDS SWEEP [SWEEP ...]
# Each sweep gets what is left of SECONDS; a sweep cut short resumes from runs/<name> on the next
# call (runs/ is ignored, so it stays on a warm machine between calls). Each sweep's folder is
# packed into $OUT when it stops, finished or not.
set -u
budget_s=$1; shift
export PYTHONUNBUFFERED=1
[ -f greentop/_sampler*.so ] || python3 setup.py build_ext --inplace -q >/dev/null 2>&1 || { echo "build failed"; exit 1; }
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1
end=$(( $(date +%s) + budget_s ))
for name in "$@"; do
    left=$(( end - $(date +%s) ))
    [ "$left" -gt 30 ] || { echo "no time left for $name"; break; }
    timeout -s INT "$left" python3 -m workloads sweep "workloads/sweeps/$name.toml" --out "runs/$name" 2>&1 | tail -40
    tar czf "$OUT/$name.tgz" -C runs "$name"
    # Over the 16 MB a returned file may hold: the tables and logs without the traces.
    [ "$(stat -c %s "$OUT/$name.tgz")" -lt 15000000 ] || tar czf "$OUT/$name.tgz" --exclude="*.h5" -C runs "$name"
done
