#!/usr/bin/env bash
#SBATCH --job-name=tacotron2
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
# Two nodes x 8 GPUs under SLURM: `sbatch scripts/train_slurm.sh -m Tacotron2 -o output/ -bs 48 --epochs 1501 --amp`.
# One torchrun per node (one task per node); torchrun starts a process per GPU.
# SLURM does not requeue a job that reaches its time limit, so five minutes before it SLURM signals this
# script (B:USR1), which asks every rank for a clean stop (SIGTERM to the job step: every rank finishes
# its step, rank 0 writes checkpoint_<Model>_last.pt), waits for it, then requeues the job; the
# requeued job continues from that checkpoint (--resume-from-last). A run that ends on its own is not
# requeued.
set -euo pipefail

nodes=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
MASTER_ADDR=$(echo "$nodes" | head -n 1)
export MASTER_ADDR
export MASTER_PORT=${MASTER_PORT:-29500}
export NNODES=$SLURM_JOB_NUM_NODES
export JOB_ID=$SLURM_JOB_ID
cd "${SLURM_SUBMIT_DIR:-.}"

stop_and_requeue() {
    echo "train_slurm.sh: time limit near; stopping job $SLURM_JOB_ID cleanly, then requeueing it" >&2
    trap '' TERM  # should the stop reach this script too, it must live on to requeue
    # the job's steps only (each node's torchrun, which passes the signal on to its workers)
    scancel --signal=TERM "$SLURM_JOB_ID"
    if [ -n "${srun_pid:-}" ]; then wait "$srun_pid" || true; fi
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
}
trap stop_and_requeue USR1

# In the background, so that the trap runs as soon as the signal arrives, not when srun returns.
srun --kill-on-bad-exit=1 bash scripts/train_multinode.sh "$@" &
srun_pid=$!
wait "$srun_pid"
