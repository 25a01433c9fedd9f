#!/usr/bin/env bash
# Downloads LJSpeech-1.1, checks its sha256 and unpacks it to $DATA_DIR/LJSpeech-1.1, the layout the
# filelists in filelists/ expect (train with -d "$DATA_DIR"; the default "." is the repository root).
#
#   bash scripts/prepare-dataset.sh
#   LJSPEECH_TARBALL=/data/LJSpeech-1.1.tar.bz2 DATA_DIR=/data bash scripts/prepare-dataset.sh
#
# Environment: DATA_DIR (default: the repository root), LJSPEECH_TARBALL (a local copy: no
# download), LJSPEECH_URL, LJSPEECH_SHA256 (expected checksum). The archive is unpacked into a
# temporary folder beside the target and moved into place only when complete, so an interrupted or
# failed run never leaves a half-extracted LJSpeech-1.1.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LJSPEECH_URL=${LJSPEECH_URL:-https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2}
LJSPEECH_SHA256=${LJSPEECH_SHA256:-be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5}
DATA_DIR=${DATA_DIR:-$REPO_ROOT}
DATASET_NAME=LJSpeech-1.1

# The recipe's filelists (reference-dle c.6); they ship with the repository.
RECIPE_FILELISTS=(
    ljs_audio_text_train_filelist.txt ljs_audio_text_val_filelist.txt ljs_audio_text_test_filelist.txt
    ljs_audio_text_train_subset_2500_filelist.txt ljs_audio_text_train_subset_1250_filelist.txt
    ljs_audio_text_train_subset_625_filelist.txt ljs_audio_text_train_subset_300_filelist.txt
    ljs_audio_text_train_subset_64_filelist.txt
    ljs_mel_text_filelist.txt ljs_mel_text_train_filelist.txt ljs_mel_text_val_filelist.txt
    ljs_mel_text_test_filelist.txt ljs_mel_text_train_subset_2500_filelist.txt
    ljs_mel_text_train_subset_1250_filelist.txt ljs_mel_text_train_subset_625_filelist.txt
)

die() {
    echo "error: $*" >&2
    exit 1
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "neither sha256sum nor shasum found (needed to check the download)"
    fi
}

download() {  # url destination
    local part="$2.part"
    echo "Downloading $1 (2.6 GB) ..."
    if command -v curl >/dev/null 2>&1; then
        curl -fL --retry 3 -C - --progress-bar -o "$part" "$1" || die "download of $1 failed (run again to resume)"
    elif command -v wget >/dev/null 2>&1; then
        wget -c -O "$part" "$1" || die "download of $1 failed (run again to resume)"
    else
        die "neither curl nor wget found; download $1 yourself and set LJSPEECH_TARBALL=<file>"
    fi
    mv -f "$part" "$2"
}

check_dataset() {  # folder
    [ -d "$1/wavs" ] || die "$1: no wavs/ folder (expected the LJSpeech-1.1 layout: wavs/*.wav, metadata.csv)"
    [ -f "$1/metadata.csv" ] || die "$1: no metadata.csv (expected the LJSpeech-1.1 layout: wavs/*.wav, metadata.csv)"
}

restore_filelists() {
    local missing=() name
    for name in "${RECIPE_FILELISTS[@]}"; do
        [ -f "$REPO_ROOT/filelists/$name" ] || missing+=("filelists/$name")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Restoring ${#missing[@]} missing filelist(s) from git ..."
    git -C "$REPO_ROOT" checkout HEAD -- "${missing[@]}" >/dev/null 2>&1 \
        || die "${missing[0]} (and $((${#missing[@]} - 1)) more) missing and not restorable from git; get filelists/ from the repository"
}

mkdir -p "$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
TARGET="$DATA_DIR/$DATASET_NAME"

if [ -e "$TARGET" ]; then
    check_dataset "$TARGET"
    echo "$TARGET already exists; not downloading again."
else
    if [ -n "${LJSPEECH_TARBALL:-}" ]; then
        TARBALL=$LJSPEECH_TARBALL
        [ -f "$TARBALL" ] || die "$TARBALL: LJSPEECH_TARBALL file not found"
    else
        TARBALL="$DATA_DIR/$DATASET_NAME.tar.bz2"
        [ -f "$TARBALL" ] || download "$LJSPEECH_URL" "$TARBALL"
    fi

    echo "Checking the sha256 of $TARBALL ..."
    actual=$(sha256_of "$TARBALL")
    [ "$actual" = "$LJSPEECH_SHA256" ] \
        || die "$TARBALL: sha256 $actual does not match the expected $LJSPEECH_SHA256 (damaged or different file; delete it and run again)"

    STAGING=$(mktemp -d "$DATA_DIR/.$DATASET_NAME.extract.XXXXXX")
    trap 'rm -rf "$STAGING"' EXIT
    trap 'exit 130' INT TERM
    echo "Extracting into $TARGET ..."
    tar -xjf "$TARBALL" -C "$STAGING" || die "$TARBALL: cannot be extracted (expected a .tar.bz2 archive)"
    [ -d "$STAGING/$DATASET_NAME" ] || die "$TARBALL: holds no $DATASET_NAME/ folder (expected the LJSpeech-1.1 archive)"
    check_dataset "$STAGING/$DATASET_NAME"
    mv "$STAGING/$DATASET_NAME" "$TARGET"
fi

restore_filelists
n_wavs=$(find "$TARGET/wavs" -name '*.wav' | wc -l | tr -d ' ')
echo "LJSpeech ready: $TARGET ($n_wavs wavs; the full set has 13100)."
echo "Train with: -d $DATA_DIR (filelists/ljs_audio_text_*_filelist.txt)"
