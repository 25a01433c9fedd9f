#!/usr/bin/env bash
# WaveGlow, AMP, 8 GPUs of an H100 80GB node: the recipe's convergence/performance run
# (as NVIDIA's platform/ scripts). Run from anywhere; extra arguments go to train.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python -m multiproc --nproc 8 train.py -m WaveGlow -o output/ --log-file nvlog.json --cudnn-enabled --cudnn-benchmark \
    -lr 1e-4 --epochs 1001 -bs 10 --segment-length 8000 --weight-decay 0 \
    --grad-clip-thresh 65504.0 --amp "$@"
