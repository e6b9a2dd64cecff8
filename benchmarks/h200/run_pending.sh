#!/usr/bin/env bash
# The GPU runs issue #16 still needs, as three device calls of under 10 minutes each. The sweeps
# resume (runs/<name> stays on a warm machine), so a call cut short loses at most one point:
#   bash benchmarks/h200/run_pending.sh 1   # why eager decode is slow in a thread; serving, compiled engine
#   bash benchmarks/h200/run_pending.sh 2   # transformer repeats; 8B at ML.ENERGY's batches, twice
#   bash benchmarks/h200/run_pending.sh 3   # CNN repeats
# Card-agnostic: the card is recorded in $OUT/gpu.csv and in every results row (hw.device_name).
# aiohttp (serve-bench) comes from wheels in .whl/ when the machine lacks it (device README).
set -u
case "${1:-}" in 1|2|3) ;; *) echo "usage: run_pending.sh 1|2|3" >&2; exit 2 ;; esac
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
if ! python3 -c "import aiohttp" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
    1)
        PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} timeout 100 python3 "$here/serve_diag.py" --model-size 1b \
            --batch-size 32 --steps 60 --trials 2 --explain "$OUT/explain.txt" > "$OUT/explain.jsonl"
        # The server decoding in a worker thread (before 2026-12-05) against in its main thread.
        timeout 170 python3 benchmarks/bench_serve_engines.py --compare decode-thread --engine batch --model-size 1b \
            --device cuda --precision bf16 --rates 4 --repeats 2 --duration 10 --output-len 128 --max-batch-size 32 \
            --out "$OUT/decode_thread.json" > "$OUT/decode_thread.jsonl" 2>&1
        bash "$here/run_study.sh" 300 serving-compiled ;;
    2) bash "$here/run_study.sh" 560 transformer-repeat llm-infer-8b-repeat ;;
    3) bash "$here/run_study.sh" 560 cnn-repeat ;;
esac
