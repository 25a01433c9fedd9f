#!/usr/bin/env bash
# The whole recipe in minutes, on a laptop CPU (or a GPU when there is one): installs the project,
# trains small Tacotron 2 and WaveGlow models side by side on data/LJSpeech-tiny (24 clips bundled
# with the repository; nothing is downloaded), synthesizes a sentence with them (and with
# Griffin-Lim from the Tacotron 2 mel), and prints where the wavs, the alignment plot and the logs are.
#
#   bash scripts/demo.sh                 # about 6 minutes (5 of them training), whatever the machine
#   DEMO_QUICK=1 bash scripts/demo.sh    # two steps per model, tiny sizes: about a minute (CI)
#
# Environment: DEMO_OUTPUT (default demo_output/; the demo replaces its own subfolders there),
# DEMO_QUICK (1: reduced mode), DEMO_TRAIN_SECONDS (training time budget; default 300),
# DEMO_TEXT (the sentence; default one of the training clips).
#
# Training stops when its time is up the way a preempted job does: SIGTERM, the step finishes,
# checkpoint_<Model>_last.pt is written and train.py exits cleanly.
set -euo pipefail
# A relative DEMO_OUTPUT is taken from where the demo was started, not from the repository root.
case ${DEMO_OUTPUT:-} in "" | /*) ;; *) DEMO_OUTPUT="$PWD/$DEMO_OUTPUT" ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/setup.sh
source scripts/setup.sh

OUT=${DEMO_OUTPUT:-demo_output}
QUICK=${DEMO_QUICK:-0}
TRAIN_SECONDS=${DEMO_TRAIN_SECONDS:-300}
TEXT=${DEMO_TEXT:-Still he resisted.}
# Small models train fastest with one thread per process; more threads only fight over the cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

data_flags=(-d data --training-files filelists/tiny_audio_text_train_filelist.txt
            --validation-files filelists/tiny_audio_text_val_filelist.txt --num-workers 0)
if [ "$QUICK" = 1 ]; then
    # Two optimizer steps per model, models a few percent of the real size: checks the plumbing only.
    t2_flags=(--symbols-embedding-dim 32 --encoder-embedding-dim 32 --encoder-n-convolutions 1
              --attention-rnn-dim 32 --decoder-rnn-dim 32 --prenet-dim 16 --attention-dim 16
              --attention-location-n-filters 8 --postnet-embedding-dim 16 --postnet-n-convolutions 1
              -bs 10 --epochs 1 -lr 1e-3 --no-tensorboard)
    wg_flags=(--flows 4 --early-every 2 --wn-channels 32 --wn-layers 2
              -bs 10 --epochs 1 -lr 1e-4 --segment-length 4000 --no-tensorboard)
    infer_flags=(--max-decoder-steps 50 --griffin-lim-iters 4)
else
    # About an eighth of the real sizes, no dropout (the aim is to fit 20 clips), higher learning
    # rates than the recipe's; the epoch counts only matter on a GPU, the time budget rules on a CPU.
    t2_flags=(--symbols-embedding-dim 128 --encoder-embedding-dim 128 --encoder-n-convolutions 2
              --attention-rnn-dim 128 --decoder-rnn-dim 128 --prenet-dim 64 --attention-dim 64
              --attention-location-n-filters 16 --postnet-embedding-dim 64 --postnet-n-convolutions 3
              --p-attention-dropout 0 --p-decoder-dropout 0 -bs 4 --epochs 1000 -lr 2e-3)
    wg_flags=(--flows 6 --early-every 2 --wn-channels 32 --wn-layers 3
              -bs 4 --epochs 1000 -lr 1e-3 --segment-length 8000)
    infer_flags=(--max-decoder-steps 300 --griffin-lim-iters 30)
fi

# train NAME SECONDS FLAGS...: train.py in the background, sent SIGTERM after SECONDS.
# Sets $pid (training) and $timer (the watch, which takes its sleep along when it is killed).
train() {
    local name=$1 seconds=$2
    shift 2
    python train.py -o "$OUT/$name" "${data_flags[@]}" --epochs-per-checkpoint 100000 "$@" \
        > "$OUT/$name.log" 2>&1 &
    pid=$!
    (
        sleep "$seconds" &
        sleeper=$!
        trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
        wait "$sleeper" && kill -TERM "$pid" 2>/dev/null
    ) > /dev/null 2>&1 &
    timer=$!
}

# finish NAME PID TIMER: wait for a training run; on failure show its log's end and stop the demo.
finish() {
    local status=0
    wait "$2" || status=$?
    kill "$3" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        tail -n 20 "$OUT/$1.log" >&2
        echo "error: training $1 failed; its log: $OUT/$1.log" >&2
        exit 1
    fi
    grep -E ' - \([0-9]+,\) (train_epoch_avg_loss|val_loss)' "$OUT/$1.log" | tail -n 2 \
        | sed -E "s/^DLL .* - \(/  $1 epoch (/; s/ +train_epoch_items.*//"
}

mkdir -p "$OUT"
rm -rf "${OUT:?}/tacotron2" "${OUT:?}/waveglow" "${OUT:?}/audio"
printf '%s\n' "$TEXT" > "$OUT/sentence.txt"
start=$SECONDS

echo "== 1/2 Training Tacotron 2 (text -> mel) and WaveGlow (mel -> audio) on data/LJSpeech-tiny" \
     "$([ "$QUICK" = 1 ] && echo "(2 steps each)" || echo "for $TRAIN_SECONDS s") ..."
train tacotron2 "$TRAIN_SECONDS" -m Tacotron2 "${t2_flags[@]}"
t2_pid=$pid t2_timer=$timer
train waveglow "$TRAIN_SECONDS" -m WaveGlow --weight-decay 0 "${wg_flags[@]}"
wg_pid=$pid wg_timer=$timer
trap 'kill "$t2_pid" "$wg_pid" "$t2_timer" "$wg_timer" 2>/dev/null || true' INT TERM EXIT
finish tacotron2 "$t2_pid" "$t2_timer"
finish waveglow "$wg_pid" "$wg_timer"
trap - INT TERM EXIT

echo "== 2/2 Synthesizing \"$TEXT\" with WaveGlow and with Griffin-Lim ..."
t2_ckpt="$OUT/tacotron2/checkpoint_Tacotron2_last.pt"
python inference.py --tacotron2 "$t2_ckpt" --waveglow "$OUT/waveglow/checkpoint_WaveGlow_last.pt" \
    -i "$OUT/sentence.txt" -o "$OUT/audio" --save-alignments "${infer_flags[@]}" > "$OUT/inference.log" 2>&1 &
wg_infer=$!
python inference.py --tacotron2 "$t2_ckpt" --vocoder griffin-lim -i "$OUT/sentence.txt" -o "$OUT/audio" \
    --suffix _griffin_lim --log-file nvlog_griffin_lim.json "${infer_flags[@]}" \
    > "$OUT/inference_griffin_lim.log" 2>&1 &
gl_infer=$!
for job in "inference:$wg_infer" "inference_griffin_lim:$gl_infer"; do
    if ! wait "${job#*:}"; then
        tail -n 20 "$OUT/${job%%:*}.log" >&2
        echo "error: synthesis failed; its log: $OUT/${job%%:*}.log" >&2
        exit 1
    fi
done

cat <<EOF

Done in $((SECONDS - start)) s. Minutes of training on 20 short clips do not make a voice: expect
hums and noise, not words (the models do not speak yet). Real training takes days on GPUs
(scripts/train_tacotron2.sh, scripts/train_waveglow.sh, platform/).
  WaveGlow audio:     $OUT/audio/audio_0.wav
  Griffin-Lim audio:  $OUT/audio/audio_0_griffin_lim.wav
  alignment plot:     $OUT/audio/alignment_0.png
  checkpoints:        $OUT/tacotron2/checkpoint_Tacotron2_last.pt, $OUT/waveglow/checkpoint_WaveGlow_last.pt
  training logs:      $OUT/tacotron2/nvlog.json, $OUT/waveglow/nvlog.json (console output: $OUT/*.log)
  loss tables:        python -m common.log_summary $OUT/tacotron2/nvlog.json $OUT/waveglow/nvlog.json
EOF
