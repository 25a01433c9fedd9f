#!/usr/bin/env bash
# The recipe's training-performance benchmark: 10 epochs on a subset filelist (Tacotron 2: 2500
# clips, WaveGlow: 1250), no checkpoints (--bench-class perf-train), then the throughput tables of
# every benchmark run so far (python -m common.log_summary), so running it for FP16 and FP32, or
# for 1 and 8 GPUs, gives the mixed-precision speed-up and the weak scaling.
#
#   MODEL=Tacotron2 PRECISION=amp NUM_GPUS=1 bash scripts/benchmark_train.sh [extra train.py flags]
#
# Environment: MODEL (Tacotron2 | WaveGlow), PRECISION (amp | bf16 | fp32 | tf32; default amp),
# NUM_GPUS (1), BATCH_SIZE (per GPU; default as scripts/train_<model>.sh: Tacotron 2 104 amp / 48,
# WaveGlow 10 amp / 4), EPOCHS (10), DATASET_PATH (the folder holding LJSpeech-1.1; default: the
# repository root), TRAINING_FILES, VALIDATION_FILES, BENCH_DIR (output/benchmark), PYTHON.
# Tacotron 2 reads precomputed mels when $DATASET_PATH/LJSpeech-1.1/mels exists (scripts/prepare_mels.sh).
set -euo pipefail

absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${MODEL:-Tacotron2}
PRECISION=${PRECISION:-amp}
NUM_GPUS=${NUM_GPUS:-1}
EPOCHS=${EPOCHS:-10}
DATASET_PATH=$(absolute "${DATASET_PATH:-$REPO_ROOT}")
BENCH_DIR=$(absolute "${BENCH_DIR:-$REPO_ROOT/output/benchmark}")
PYTHON=${PYTHON:-python}

# fp32 is torch's default math, as NVIDIA's H100 baseline ran it: float32 GEMMs, cuDNN convolutions in
# TF32 (so WaveGlow's fp32 is mostly TF32); tf32 also lets the GEMMs use TF32.
precision_flags=()
case $PRECISION in
    amp | fp16) precision_flags=(--amp) ;;
    bf16) precision_flags=(--bf16) ;;
    fp32) export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=0 ;;
    tf32) export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 ;;
    *) echo "error: PRECISION=$PRECISION (expected amp, bf16, fp32 or tf32)" >&2; exit 1 ;;
esac
mixed=false
if [ ${#precision_flags[@]} -gt 0 ]; then mixed=true; fi

case $MODEL in
    Tacotron2 | tacotron2)
        MODEL=Tacotron2
        if $mixed; then default_batch=104; else default_batch=48; fi
        if [ -d "$DATASET_PATH/LJSpeech-1.1/mels" ]; then
            data_flags=(--load-mel-from-disk)
            default_train=filelists/ljs_mel_text_train_subset_2500_filelist.txt
            default_val=filelists/ljs_mel_text_val_filelist.txt
        else
            data_flags=()
            default_train=filelists/ljs_audio_text_train_subset_2500_filelist.txt
            default_val=filelists/ljs_audio_text_val_filelist.txt
        fi
        model_flags=(-lr 1e-3 --weight-decay 1e-6 --grad-clip-thresh 1.0 --anneal-steps 500 1000 1500)
        if $mixed; then model_flags+=(--anneal-factor 0.3); else model_flags+=(--anneal-factor 0.1); fi
        ;;
    WaveGlow | waveglow)
        MODEL=WaveGlow
        if $mixed; then default_batch=10; else default_batch=4; fi
        data_flags=()
        default_train=filelists/ljs_audio_text_train_subset_1250_filelist.txt
        default_val=filelists/ljs_audio_text_val_filelist.txt
        model_flags=(-lr 1e-4 --segment-length 8000 --weight-decay 0 --cudnn-benchmark)
        if $mixed; then model_flags+=(--grad-clip-thresh 65504.0); else model_flags+=(--grad-clip-thresh 3.4028234663852886e+38); fi
        ;;
    *) echo "error: MODEL=$MODEL (expected Tacotron2 or WaveGlow)" >&2; exit 1 ;;
esac
BATCH_SIZE=${BATCH_SIZE:-$default_batch}
TRAINING_FILES=${TRAINING_FILES:-$default_train}
VALIDATION_FILES=${VALIDATION_FILES:-$default_val}

if [ "$NUM_GPUS" -eq 1 ]; then launcher=("$PYTHON" train.py); else launcher=("$PYTHON" -m multiproc --nproc "$NUM_GPUS" train.py); fi
OUTPUT_DIR="$BENCH_DIR/${MODEL}_${PRECISION}_${NUM_GPUS}gpu_bs${BATCH_SIZE}"
mkdir -p "$OUTPUT_DIR"
rm -f "$OUTPUT_DIR/nvlog.json"  # the logger appends; a benchmark starts afresh

cd "$REPO_ROOT"
"${launcher[@]}" -m "$MODEL" -o "$OUTPUT_DIR" -d "$DATASET_PATH" --epochs "$EPOCHS" -bs "$BATCH_SIZE" \
    --training-files "$TRAINING_FILES" --validation-files "$VALIDATION_FILES" \
    --bench-class perf-train --cudnn-enabled --log-file nvlog.json \
    "${model_flags[@]}" ${data_flags[@]+"${data_flags[@]}"} ${precision_flags[@]+"${precision_flags[@]}"} "$@"

echo
echo "Benchmark runs in $BENCH_DIR (throughput: mean over the epochs after the first):"
"$PYTHON" -m common.log_summary "$BENCH_DIR"/*/nvlog.json
