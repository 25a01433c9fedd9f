#!/usr/bin/env bash
# The benchmark set of docs/performance.md: the 1250 + 100 sentences of
# ljs_audio_text_train_subset_1250 / ljs_audio_text_val spoken by eSpeak NG (en-us, 142 words/min),
# laid out as LJSpeech-1.1 under OUT, plus their mels for --load-mel-from-disk. Works without network
# or apt when the espeakng-loader wheel (it carries libespeak-ng) is at hand.
#
#   MAKER=path/to/make_espeak_ljspeech.py bash scripts/make_benchmark_set.sh [OUT (default: benchmark_data)]
#   then: train.py ... -d OUT --training-files filelists/ljs_mel_text_train_subset_1250_filelist.txt \
#         --validation-files filelists/ljs_mel_text_val_filelist.txt --load-mel-from-disk
#
# Environment: MAKER (an eSpeak NG LJSpeech-layout generator taking filelists, OUT, --split-by-input
# --path-prefix --rate --filelist-text --jobs; with its `espeak-ng` command beside it), WHEELS (a folder
# holding espeakng-loader==0.2.4, installed offline when Debian's espeak-ng is missing), JOBS (all cores),
# MANIFEST (path,samples,md5 per clip; default: manifest_rate142.csv beside MAKER, checked when there),
# PYTHON (python).
set -euo pipefail

: "${MAKER:?set MAKER to the eSpeak NG dataset maker (make_espeak_ljspeech.py)}"
OUT=${1:-benchmark_data}
JOBS=${JOBS:-$(nproc)}
PYTHON=${PYTHON:-python}
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v espeak-ng > /dev/null && ! "$PYTHON" -c 'import espeakng_loader' 2> /dev/null; then
    if [ -n "${WHEELS:-}" ]; then
        "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" espeakng-loader==0.2.4
    else
        "$PYTHON" -m pip install -q espeakng-loader==0.2.4
    fi
fi

# The list names keep the words train/val, which is how the maker tells the splits apart.
PATH="$(dirname "$MAKER"):$PATH" "$PYTHON" "$MAKER" \
    filelists/ljs_audio_text_train_subset_1250_filelist.txt filelists/ljs_audio_text_val_filelist.txt \
    "$OUT/LJSpeech-1.1" --split-by-input --path-prefix LJSpeech-1.1/ --rate 142 --filelist-text raw \
    --jobs "$JOBS"
"$PYTHON" preprocess_audio2mel.py -d "$OUT" --num-workers "$JOBS" \
    --wav-files filelists/ljs_audio_text_train_subset_1250_filelist.txt filelists/ljs_audio_text_val_filelist.txt \
    --mel-files filelists/ljs_mel_text_train_subset_1250_filelist.txt filelists/ljs_mel_text_val_filelist.txt
# The maker ships the md5 of every clip it made for the reference numbers: same clips, comparable numbers.
MANIFEST=${MANIFEST:-$(dirname "$MAKER")/manifest_rate142.csv}
if [ -f "$MANIFEST" ]; then
    "$PYTHON" scripts/check_benchmark_set.py "$OUT" "$MANIFEST" \
        || echo "warning: the set differs from $MANIFEST: numbers measured on it are not comparable" >&2
fi
echo "Benchmark set ready: -d $OUT"
