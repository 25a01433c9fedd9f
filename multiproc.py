"""`python -m multiproc train.py ARGS`: one training process per visible GPU, through torch.distributed.run.

On a machine without GPUs, `--nproc N` (before the script name) or the MULTIPROC_NPROC environment
variable picks the number of CPU processes (gloo). The recipe's `--rank/--world-size` arguments in ARGS
are dropped: torchrun's environment carries them.
"""
from __future__ import annotations

import os
import sys

import torch
from torch.distributed import run as torchrun

LEGACY_FLAGS = ("--rank", "--world-size")


def strip_legacy_flags(args: list[str]) -> list[str]:
    kept, skip_next = [], False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        if name in LEGACY_FLAGS:
            skip_next = "=" not in arg
            continue
        kept.append(arg)
    return kept


def process_count(requested: int | None) -> int:
    if requested:
        return requested
    if os.environ.get("MULTIPROC_NPROC"):
        return int(os.environ["MULTIPROC_NPROC"])
    return max(torch.cuda.device_count(), 1)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    requested = None
    if argv[:1] == ["--nproc"] and len(argv) > 1:
        requested, argv = int(argv[1]), argv[2:]
    elif argv and argv[0].startswith("--nproc="):
        requested, argv = int(argv[0].split("=", 1)[1]), argv[1:]
    if not argv:
        sys.exit("usage: python -m multiproc [--nproc N] train.py ARGS")
    nproc = process_count(requested)
    # --standalone picks a free rendezvous port, so two jobs on one machine do not collide.
    torchrun.main(["--standalone", f"--nproc-per-node={nproc}", argv[0], *strip_legacy_flags(argv[1:])])


if __name__ == "__main__":
    main()
