#!/usr/bin/env bash
# The recipe's Tacotron 2 training on LJSpeech (NVIDIA's command), on every visible GPU.
#
#   bash scripts/train_tacotron2.sh [extra train.py flags, which override the ones below]
#   NUM_GPUS=4 AMP=true bash scripts/train_tacotron2.sh --epochs-per-checkpoint 10
#
# Environment: NUM_GPUS (default: all visible GPUs), AMP (false: FP32/TF32 at batch 48, anneal
# factor 0.1, as NVIDIA's script; true: --amp at batch 104, factor 0.3, as their DGX-1 AMP runs),
# BATCH_SIZE (per GPU), EPOCHS (1501), OUTPUT_DIR (output/), DATASET_PATH (the folder holding
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
    true | True | TRUE | 1 | yes) precision=(--amp) anneal_factor=0.3 default_batch=104 ;;
    false | False | FALSE | 0 | no) precision=() anneal_factor=0.1 default_batch=48 ;;
    *) echo "error: AMP=$AMP (expected true or false)" >&2; exit 1 ;;
esac
BATCH_SIZE=${BATCH_SIZE:-$default_batch}

launcher=("$PYTHON" -m multiproc)
if [ -n "$NUM_GPUS" ]; then launcher+=(--nproc "$NUM_GPUS"); fi

cd "$REPO_ROOT"
"${launcher[@]}" train.py -m Tacotron2 -o "$OUTPUT_DIR" -d "$DATASET_PATH" \
    -lr 1e-3 --epochs "$EPOCHS" -bs "$BATCH_SIZE" --weight-decay 1e-6 --grad-clip-thresh 1.0 \
    --cudnn-enabled --log-file nvlog.json --anneal-steps 500 1000 1500 --anneal-factor "$anneal_factor" \
    ${precision[@]+"${precision[@]}"} "$@"
