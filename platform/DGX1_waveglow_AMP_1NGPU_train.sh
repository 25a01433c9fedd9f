#!/usr/bin/env bash
# WaveGlow, AMP, 1 GPU of a DGX-1 (8x V100 16GB): the recipe's convergence/performance run
# (as NVIDIA's platform/ scripts). Run from anywhere; extra arguments go to train.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python train.py -m WaveGlow -o output/ --log-file nvlog.json --cudnn-enabled --cudnn-benchmark \
    -lr 1e-4 --epochs 1001 -bs 10 --segment-length 8000 --weight-decay 0 \
    --grad-clip-thresh 65504.0 --amp "$@"
