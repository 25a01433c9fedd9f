#!/usr/bin/env bash
# Tacotron 2, AMP, 1 GPU of a DGX-1 (8x V100 16GB): the recipe's convergence/performance run
# (as NVIDIA's platform/ scripts). Needs the precomputed mels: bash scripts/prepare_mels.sh
# Run from anywhere; extra arguments go to train.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python train.py -m Tacotron2 -o output/ --log-file nvlog.json --cudnn-enabled --load-mel-from-disk \
    --training-files=filelists/ljs_mel_text_train_filelist.txt \
    --validation-files=filelists/ljs_mel_text_val_filelist.txt \
    -lr 1e-3 --epochs 1501 -bs 104 --anneal-steps 500 1000 1500 --anneal-factor 0.3 \
    --weight-decay 1e-6 --grad-clip-thresh 1.0 --amp "$@"
