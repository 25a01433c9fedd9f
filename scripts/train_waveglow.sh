#!/usr/bin/env bash
# The recipe's WaveGlow training on LJSpeech (NVIDIA's command), on every visible GPU.
#
#   bash scripts/train_waveglow.sh [extra train.py flags, which override the ones below]
#   NUM_GPUS=8 AMP=true bash scripts/train_waveglow.sh
#
# Environment: NUM_GPUS (default: all visible GPUs), AMP (false: FP32/TF32 at batch 4 with no
# gradient clipping, as NVIDIA's script; true: --amp at batch 10, clipped at 65504, as their AMP
# runs), BATCH_SIZE (per GPU), EPOCHS (1501), OUTPUT_DIR (output/), DATASET_PATH (the folder holding
# LJSpeech-1.1; default: the repository root), PYTHON (python).
set -euo pipefail

absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTPUT_DIR=$(absolute "${OUTPUT_DIR:-$REPO_ROOT/output}")
DATASET_PATH=$(absolute "${DATASET_PATH:-$REPO_ROOT}")
NUM_GPUS=${NUM_GPUS:-}
EPOCHS=${EPOCHS:-1501}
PYTHON=${PYTHON:-python}

case ${AMP:-false} in
    # 65504 = largest float16; FLT_MAX = no clipping in FP32 (NVIDIA's values).
    true | True | TRUE | 1 | yes) precision=(--amp) grad_clip=65504.0 default_batch=10 ;;
    false | False | FALSE | 0 | no) precision=() grad_clip=3.4028234663852886e+38 default_batch=4 ;;
    *) echo "error: AMP=$AMP (expected true or false)" >&2; exit 1 ;;
esac
BATCH_SIZE=${BATCH_SIZE:-$default_batch}

launcher=("$PYTHON" -m multiproc)
if [ -n "$NUM_GPUS" ]; then launcher+=(--nproc "$NUM_GPUS"); fi

cd "$REPO_ROOT"
"${launcher[@]}" train.py -m WaveGlow -o "$OUTPUT_DIR" -d "$DATASET_PATH" \
    -lr 1e-4 --epochs "$EPOCHS" -bs "$BATCH_SIZE" --segment-length 8000 --weight-decay 0 \
    --grad-clip-thresh "$grad_clip" --cudnn-enabled --cudnn-benchmark --log-file nvlog.json \
    ${precision[@]+"${precision[@]}"} "$@"
