#!/usr/bin/env bash
# The GPU runs issue #16 still needs, as three device calls of under 10 minutes each. The sweeps
# resume (runs/<name> stays on a warm machine), so a call cut short loses at most one point:
#   bash benchmarks/h200/run_pending.sh 1   # the eager server's fix (cuDNN attention off); serving, compiled engine
#   bash benchmarks/h200/run_pending.sh fix # the eager server's fix alone (about 4.5 minutes)
#   bash benchmarks/h200/run_pending.sh 2   # transformer repeats; 8B at ML.ENERGY's batches, twice
#   bash benchmarks/h200/run_pending.sh 3   # CNN repeats
# Card-agnostic: the card is recorded in $OUT/gpu.csv and in every results row (hw.device_name).
# aiohttp (serve-bench) comes from wheels in .whl/ when the machine lacks it (device README).
set -u
case "${1:-}" in 1|2|3|fix) ;; *) echo "usage: run_pending.sh 1|2|3|fix" >&2; exit 2 ;; esac
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
if ! python3 -c "import aiohttp" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
    1|fix)
        [ -f greentop/_sampler*.so ] || python3 setup.py build_ext --inplace -q >/dev/null 2>&1
        # The fix for the eager server's slow step: attention kept off cuDNN (the cause, measured
        # on an H100 on 2026-12-05, is cuDNN's per-thread, per-shape graphs; serving-h100-diag/explain.txt).
        PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} timeout 100 python3 "$here/serve_diag.py" --model-size 1b \
            --batch-size 32 --steps 60 --trials 2 --cudnn-attention off --explain "$OUT/explain-cudnn-off.txt" \
            > "$OUT/explain-cudnn-off.jsonl"
        # The server itself, cuDNN attention on (torch's choice) against off (serve's default now).
        timeout 170 python3 benchmarks/bench_serve_engines.py --compare cudnn-attention --model-size 1b \
            --device cuda --precision bf16 --rates 4 --repeats 2 --duration 10 --output-len 128 --max-batch-size 32 \
            --out "$OUT/cudnn_attention.json" > "$OUT/cudnn_attention.jsonl" 2>&1
        [ "$1" = fix ] || bash "$here/run_study.sh" 260 serving-compiled ;;
    2) bash "$here/run_study.sh" 560 transformer-repeat llm-infer-8b-repeat ;;
    3) bash "$here/run_study.sh" 560 cnn-repeat ;;
esac
