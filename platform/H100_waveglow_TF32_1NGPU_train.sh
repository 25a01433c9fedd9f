#!/usr/bin/env bash
# WaveGlow, TF32, 1 GPU of an H100 80GB node: the recipe's convergence/performance run
# (as NVIDIA's platform/ scripts). Run from anywhere; extra arguments go to train.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# TF32 for matmuls as well (PyTorch uses it for cuDNN convolutions by default).
export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1
python train.py -m WaveGlow -o output/ --log-file nvlog.json --cudnn-enabled --cudnn-benchmark \
    -lr 1e-4 --epochs 1001 -bs 4 --segment-length 8000 --weight-decay 0 \
    --grad-clip-thresh 3.4028234663852886e+38 "$@"
