#!/usr/bin/env bash
# Precomputes the Tacotron 2 mels of LJSpeech (LJSpeech-1.1/mels/*.pt) for --load-mel-from-disk,
# which the platform/ scripts use. Resumable: files already there are skipped (pass --force to redo).
#
#   bash scripts/prepare_mels.sh [extra preprocess_audio2mel.py flags]
#
# Environment: DATASET_PATH (the folder holding LJSpeech-1.1; default: the repository root),
# PYTHON (default: python).
set -euo pipefail

absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATASET_PATH=$(absolute "${DATASET_PATH:-$REPO_ROOT}")
PYTHON=${PYTHON:-python}
cd "$REPO_ROOT"

[ -d "$DATASET_PATH/LJSpeech-1.1/wavs" ] \
    || { echo "error: $DATASET_PATH/LJSpeech-1.1/wavs not found (run scripts/prepare-dataset.sh first)" >&2; exit 1; }

# The subset lists are parts of the train list, so these three cover every ljs_mel_text_* list.
"$PYTHON" preprocess_audio2mel.py -d "$DATASET_PATH" \
    --wav-files filelists/ljs_audio_text_train_filelist.txt filelists/ljs_audio_text_val_filelist.txt \
                filelists/ljs_audio_text_test_filelist.txt \
    --mel-files filelists/ljs_mel_text_train_filelist.txt filelists/ljs_mel_text_val_filelist.txt \
                filelists/ljs_mel_text_test_filelist.txt \
    "$@"
