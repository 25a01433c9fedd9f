#!/usr/bin/env bash
# Starts a shell in the "tacotron2" image on all GPUs, with the repository mounted at
# /workspace/tacotron2 (edits on the host are live) and the dataset folder mounted at the same path
# inside, so -d/--dataset-path works unchanged.
#   DATA_DIR=/data/ljspeech bash scripts/docker/interactive.sh [command]
# DATA_DIR: the folder holding LJSpeech-1.1 (default: the repository root, already mounted).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DATA_DIR=$(cd "${DATA_DIR:-$REPO_ROOT}" && pwd)

mounts=(-v "$REPO_ROOT:/workspace/tacotron2/")
if [ "$DATA_DIR" != "$REPO_ROOT" ]; then mounts+=(-v "$DATA_DIR:$DATA_DIR"); fi

docker run --gpus all -it --rm --shm-size=1g --ipc=host \
    --ulimit memlock=-1 --ulimit stack=67108864 \
    "${mounts[@]}" "${IMAGE_NAME:-tacotron2}" "$@"
