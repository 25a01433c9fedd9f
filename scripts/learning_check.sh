#!/usr/bin/env bash
# Does Tacotron 2 learn to align, and how much sooner with guided attention? Trains twice for a fixed
# time (guided attention off and on), mixed precision, validating every epoch, then prints when
# val_focus (mean of each decoder step's largest attention weight) and val_walk (does the attention's
# peak walk the text token by token) first passed 0.5, and the losses.
# The two runs share the GPU side by side by default: at batch 32 each is host-bound (one CPU core
# launching kernels), so together they take half the wall time of one after the other.
#
#   DATA=benchmark_data bash scripts/learning_check.sh [extra train.py flags]
#
# Environment: DATA (the folder holding LJSpeech-1.1 with mels: scripts/make_benchmark_set.sh; required),
# MINUTES (10 per run; RUN_SECONDS overrides it), GUIDED_WEIGHT (1.0), BATCH_SIZE (32), OUTPUT_DIR
# (output/learning_check), PRECISION (--fp16-run; e.g. --bf16), SEQUENTIAL (1: one run after the
# other), PYTHON (python). Runs stopped at the deadline write checkpoint_Tacotron2_last.pt, so a
# second call with --resume-from-last continues both.
set -euo pipefail

: "${DATA:?set DATA to the folder holding LJSpeech-1.1 (scripts/make_benchmark_set.sh)}"
MINUTES=${MINUTES:-10}
RUN_SECONDS=${RUN_SECONDS:-$((MINUTES * 60))}
GUIDED_WEIGHT=${GUIDED_WEIGHT:-1.0}
BATCH_SIZE=${BATCH_SIZE:-32}
OUTPUT_DIR=${OUTPUT_DIR:-output/learning_check}
PRECISION=${PRECISION:---fp16-run}
SEQUENTIAL=${SEQUENTIAL:-0}
PYTHON=${PYTHON:-python}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$OUTPUT_DIR"

train_for_a_while() {
    local weight=$1 out="$OUTPUT_DIR/guided_$1"
    shift
    echo "== Tacotron 2, guided attention weight $weight, $RUN_SECONDS s -> $out"
    # SIGTERM at the deadline: train.py finishes its step, writes its last checkpoint and exits 0.
    timeout --preserve-status --signal=TERM --kill-after=300 "$RUN_SECONDS" \
        "$PYTHON" train.py -m Tacotron2 -o "$out" -d "$DATA" --load-mel-from-disk \
        --training-files filelists/ljs_mel_text_train_subset_1250_filelist.txt \
        --validation-files filelists/ljs_mel_text_val_filelist.txt \
        -lr 1e-3 -bs "$BATCH_SIZE" --epochs 100000 --epochs-per-checkpoint 100000 "$PRECISION" \
        --guided-attn-weight "$weight" "$@" > "$out.log" 2>&1 \
        || { echo "guided attention weight $weight failed; the end of $out.log:" >&2; tail -n 20 "$out.log" >&2; return 1; }
}

status=0
if [ "$SEQUENTIAL" = 1 ]; then
    for weight in 0 "$GUIDED_WEIGHT"; do train_for_a_while "$weight" "$@" || status=1; done
else
    pids=()
    for weight in 0 "$GUIDED_WEIGHT"; do train_for_a_while "$weight" "$@" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
fi
"$PYTHON" -m common.log_summary "$OUTPUT_DIR/guided_0/nvlog.json" "$OUTPUT_DIR/guided_$GUIDED_WEIGHT/nvlog.json"
exit $status
