#!/usr/bin/env bash
# Tacotron 2 or WaveGlow on several nodes with plain torchrun. Run the same command on every node:
#
#   MASTER_ADDR=node0 NNODES=2 bash scripts/train_multinode.sh -m Tacotron2 -o output/ -bs 48 --epochs 1501 --amp
#
# Environment: MASTER_ADDR (host of the rendezvous, reachable from every node; required), MASTER_PORT
# (29500), NNODES (2), GPUS_PER_NODE (all visible GPUs), JOB_ID (rendezvous id, the same on every
# node), MAX_RESTARTS (3: a crashed worker group restarts and resumes from checkpoint_<Model>_last.pt),
# TORCH_ELASTIC_SHUTDOWN_TIMEOUT (300: seconds stopped workers get to finish their step and write the
# stop checkpoint before torchrun kills them), PYTHON (python). Arguments go to train.py;
# --resume-from-last is added so a resubmitted job continues. After a stop torchrun exits 1.
# -o must be on a file system every node sees: rank 0 writes the checkpoints, every rank resumes from them.
set -euo pipefail

: "${MASTER_ADDR:?set MASTER_ADDR to the host that runs the rendezvous}"
MASTER_PORT=${MASTER_PORT:-29500}
NNODES=${NNODES:-2}
PYTHON=${PYTHON:-python}
GPUS_PER_NODE=${GPUS_PER_NODE:-$("$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
JOB_ID=${JOB_ID:-tacotron2-waveglow}
MAX_RESTARTS=${MAX_RESTARTS:-3}

# Stopped workers finish their step and write the stop checkpoint (WaveGlow's is about 1 GB) before
# torchrun kills them; torchrun's own default allows 30 s.
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-300}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --nproc-per-node="$GPUS_PER_NODE" \
    --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv-id="$JOB_ID" \
    --max-restarts="$MAX_RESTARTS" train.py --resume-from-last "$@"
