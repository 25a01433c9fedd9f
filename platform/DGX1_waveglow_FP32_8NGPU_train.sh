#!/usr/bin/env bash
# WaveGlow, FP32, 8 GPUs of a DGX-1 (8x V100 16GB): the recipe's convergence/performance run
# (as NVIDIA's platform/ scripts). Run from anywhere; extra arguments go to train.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python -m multiproc --nproc 8 train.py -m WaveGlow -o output/ --log-file nvlog.json --cudnn-enabled --cudnn-benchmark \
    -lr 1e-4 --epochs 1001 -bs 4 --segment-length 8000 --weight-decay 0 \
    --grad-clip-thresh 3.4028234663852886e+38 "$@"
