#!/usr/bin/env bash
# The recipe's inference latency benchmark (test_infer.sh): batch size 1, 128 input characters,
# 1003 timed iterations after 3 warm-up ones; prints latency average/std/p50/p90/p95/p99, Tacotron 2
# frames/s, WaveGlow samples/s and the real-time factor, and logs them to $LOG_FILE.
#
#   TACOTRON2=ckpt.pt WAVEGLOW=ckpt.pt PRECISION=fp16 bash scripts/inference_benchmark.sh [extra flags]
#   bash scripts/inference_benchmark.sh --random-weights --decoder-steps 600 --num-iters 20
#
# Environment: TACOTRON2, WAVEGLOW (checkpoints; leave out with --random-weights), PRECISION
# (fp32 | fp16 | amp | bf16; default fp32), BATCH_SIZE (1), INPUT_LENGTH (128), NUM_ITERS (1003),
# LOG_FILE (nvlog_inference_benchmark.json), PYTHON. Extra arguments go to inference_benchmark.py
# after these, so they override them (e.g. --num-iters 50 --cpu).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
PRECISION=${PRECISION:-fp32}

args=(-bs "${BATCH_SIZE:-1}" -il "${INPUT_LENGTH:-128}" --num-iters "${NUM_ITERS:-1003}"
      --log-file "${LOG_FILE:-nvlog_inference_benchmark.json}")
case $PRECISION in
    fp16 | amp) args+=(--fp16) ;;
    bf16) args+=(--bf16) ;;
    fp32) ;;
    *) echo "error: PRECISION=$PRECISION (expected fp32, fp16, amp or bf16)" >&2; exit 1 ;;
esac
if [ -n "${TACOTRON2:-}" ]; then args+=(--tacotron2 "$TACOTRON2"); fi
if [ -n "${WAVEGLOW:-}" ]; then args+=(--waveglow "$WAVEGLOW"); fi

exec "$PYTHON" "$REPO_ROOT/inference_benchmark.py" "${args[@]}" "$@"
