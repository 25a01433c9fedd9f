#!/usr/bin/env bash
#SBATCH --job-name=tacotron2
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120
#SBATCH --requeue
# Two nodes x 8 GPUs under SLURM: `sbatch scripts/train_slurm.sh -m Tacotron2 -o output/ -bs 48 --epochs 1501 --amp`.
# One torchrun per node (one task per node); torchrun starts a process per GPU. --signal=TERM@120 asks
# for a clean stop two minutes before the time limit: every rank finishes its step, rank 0 writes
# checkpoint_<Model>_last.pt, and the requeued job continues from it (--resume-from-last).
set -euo pipefail

nodes=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
MASTER_ADDR=$(echo "$nodes" | head -n 1)
export MASTER_ADDR
export MASTER_PORT=${MASTER_PORT:-29500}
export NNODES=$SLURM_JOB_NUM_NODES
export JOB_ID=$SLURM_JOB_ID
cd "${SLURM_SUBMIT_DIR:-.}"
# srun forwards SLURM's SIGTERM to each node's torchrun, which passes it to its workers.
srun --kill-on-bad-exit=1 bash scripts/train_multinode.sh "$@"
