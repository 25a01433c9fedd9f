#!/usr/bin/env bash
# Every measurement of the speed targets on one GPU, then their table (scripts/speed_targets.py):
# the precision check, the inference variants, a teacher-forced decoder step timed alone (eager and
# compiled), and training runs of both models in the reference's settings (the 1250-clip subset),
# the default way and with the speed flags.
#
#   DATASET_PATH=benchmark_data [MAKER=path/to/make_espeak_ljspeech.py] bash scripts/benchmark_targets.sh
#
# Environment: DATASET_PATH (the folder holding LJSpeech-1.1: the benchmark set, which the step
# `data` makes with scripts/make_benchmark_set.sh when it is missing and MAKER (and WHEELS) are set),
# OUT (output/targets), STEPS (which measurements, in order; default all: data precision inference
# t2-step t2-amp t2-amp-fast t2-amp-compiled t2-amp-compiled-graphs t2-fp32 wg-amp wg-amp-compiled
# wg-amp-block wg-fp32), EPOCHS (training epochs per run; 10), NUM_ITERS (timed inference
# iterations per variant; 20),
# VARIANTS (inference_speed_table.py variants; default its GPU list), PYTHON.
# A step that fails is reported and the rest still run; the exit status is then 1.
set -uo pipefail

absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DATASET_PATH
DATASET_PATH=$(absolute "${DATASET_PATH:-$REPO_ROOT}")
OUT=$(absolute "${OUT:-$REPO_ROOT/output/targets}")
ALL_STEPS="data precision inference t2-step t2-amp t2-amp-fast t2-amp-compiled t2-amp-compiled-graphs t2-fp32 wg-amp wg-amp-compiled wg-amp-block wg-fp32"
STEPS=${STEPS:-$ALL_STEPS}
export EPOCHS=${EPOCHS:-10}
NUM_ITERS=${NUM_ITERS:-20}
PYTHON=${PYTHON:-python}
export PYTHON

wg_files=filelists/ljs_audio_text_train_subset_1250_filelist.txt
# Tacotron 2 reads the mels from disk once they are there (the step `data` may have just made them)
t2_files() {
    if [ -d "$DATASET_PATH/LJSpeech-1.1/mels" ]; then
        echo filelists/ljs_mel_text_train_subset_1250_filelist.txt
    else
        echo filelists/ljs_audio_text_train_subset_1250_filelist.txt
    fi
}

# train <step> <model> <precision> <batch> <filelist> [train.py flags]: a folder per step, so the
# default and the fast run of a setting both stay for the table
train() {
    local step=$1 model=$2 precision=$3 batch=$4 files=$5
    shift 5
    BENCH_DIR="$OUT/train/$step" MODEL=$model PRECISION=$precision NUM_GPUS=1 BATCH_SIZE=$batch \
        TRAINING_FILES=$files bash "$REPO_ROOT/scripts/benchmark_train.sh" "$@"
}

for step in $STEPS; do
    case " $ALL_STEPS " in
        *" $step "*) ;;
        *) echo "error: STEPS: unknown step '$step' (expected some of: $ALL_STEPS)" >&2; exit 1 ;;
    esac
done

mkdir -p "$OUT"
cd "$REPO_ROOT" || exit 1
failed=()
for step in $STEPS; do
    echo "== $step"
    case $step in
        data)
            if [ -d "$DATASET_PATH/LJSpeech-1.1/wavs" ]; then
                echo "benchmark set found in $DATASET_PATH"
            elif [ -n "${MAKER:-}" ]; then
                bash scripts/make_benchmark_set.sh "$DATASET_PATH"
            else
                echo "error: no $DATASET_PATH/LJSpeech-1.1/wavs and no MAKER to make the benchmark set" >&2
                false
            fi ;;
        precision) "$PYTHON" scripts/precision_check.py ;;
        inference)
            variants=()
            if [ -n "${VARIANTS:-}" ]; then read -r -a variants <<< "$VARIANTS"; variants=(--variants "${variants[@]}"); fi
            "$PYTHON" scripts/inference_speed_table.py --out-dir "$OUT/inference" --decoder-steps 600 \
                --num-iters "$NUM_ITERS" ${variants[@]+"${variants[@]}"} ;;
        t2-step) "$PYTHON" scripts/teacher_forcing_speed.py ;;
        t2-amp) train "$step" Tacotron2 amp 128 "$(t2_files)" ;;
        t2-amp-fast) train "$step" Tacotron2 amp 128 "$(t2_files)" --length-sort-pool 1280 --cuda-graphs ;;
        t2-amp-compiled) train "$step" Tacotron2 amp 128 "$(t2_files)" --torch-compile ;;
        t2-amp-compiled-graphs) train "$step" Tacotron2 amp 128 "$(t2_files)" --torch-compile --cuda-graphs \
            --length-sort-pool 1280 ;;
        t2-fp32) train "$step" Tacotron2 fp32 128 "$(t2_files)" ;;
        wg-amp) train "$step" WaveGlow amp 10 "$wg_files" ;;
        wg-amp-compiled) train "$step" WaveGlow amp 10 "$wg_files" --torch-compile ;;
        wg-amp-block) train "$step" WaveGlow amp 10 "$wg_files" --wn-compile-block ;;
        wg-fp32) train "$step" WaveGlow fp32 4 "$wg_files" ;;
    esac || failed+=("$step")
done

"$PYTHON" scripts/speed_targets.py "$OUT" --out "$OUT/targets.md" || failed+=(table)
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
