#!/usr/bin/env bash
# Builds the image "tacotron2" from the Dockerfile at the repository root.
#   bash scripts/docker/build.sh [extra docker build flags, e.g. --build-arg FROM_IMAGE_NAME=...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
docker build . --rm -t "${IMAGE_NAME:-tacotron2}" "$@"
