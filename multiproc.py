"""`python -m multiproc train.py ARGS`: one training process per visible GPU, through torch.distributed.run.

On a machine without GPUs, `--nproc N` (before the script name) or the MULTIPROC_NPROC environment
variable picks the number of CPU processes (gloo); anything but a whole number of at least 1 is an
error (exit code 2). The recipe's `--rank/--world-size` arguments in ARGS are dropped: torchrun's
environment carries them.

On SIGTERM/SIGINT the workers get TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (default here 300, torchrun's
own is 30) to finish their step and write the stop checkpoint. The exit code is then 0 when every
worker stopped cleanly, else 128 + the signal's number.
"""
from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

import torch
from torch.distributed import run as torchrun
from torch.distributed.elastic.agent.server import local_elastic_agent
from torch.distributed.elastic.multiprocessing.api import SignalException

LEGACY_FLAGS = ("--rank", "--world-size")
# How long torchrun lets stopped workers finish their step and write the stop checkpoint (WaveGlow's
# is about 1 GB) before it kills them; torchrun's own default is 30 s.
STOP_GRACE_SECONDS = 300


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


def parse_count(value: str, source: str) -> int:
    """A number of processes from --nproc or MULTIPROC_NPROC. Anything but a positive whole number is
    a one-line error (exit 2): 0 must not quietly become one process per GPU, nor a typo a traceback."""
    count = int(value) if value.strip().isdecimal() else 0
    if count < 1:
        print(f"error: {source} {value!r}: expected a number of processes, at least 1", file=sys.stderr)
        sys.exit(2)
    return count


def process_count(requested: int | None) -> int:
    if requested:
        return requested
    if os.environ.get("MULTIPROC_NPROC"):
        return parse_count(os.environ["MULTIPROC_NPROC"], "MULTIPROC_NPROC")
    return max(torch.cuda.device_count(), 1)


@contextmanager
def recording_workers():
    """-> the worker groups torchrun starts (one more per restart). torchrun reports a stop the same
    way whether its workers finished cleanly, failed, or were killed at the end of the grace time; their
    exit codes tell which."""
    started = []
    start = getattr(local_elastic_agent, "start_processes", None)
    if start is None:  # a torch that launches otherwise: no record, so a stop is never called clean
        yield started
        return

    def start_and_record(*args, **kwargs):
        started.append(start(*args, **kwargs))
        return started[-1]

    local_elastic_agent.start_processes = start_and_record
    try:
        yield started
    finally:
        local_elastic_agent.start_processes = start


def unclean_exits(started: list) -> str:
    """'' when every worker of the last group exited 0 (rank 0 after writing the stop checkpoint), else
    which did not."""
    if not started:
        return "no worker had started"
    result = started[-1].wait(0)
    if result is None:
        return "workers were still running"
    return ", ".join(f"local rank {rank}: exit code {failure.exitcode}"
                     for rank, failure in sorted(result.failures.items()))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    requested = None
    if argv[:1] == ["--nproc"] and len(argv) > 1:
        requested, argv = parse_count(argv[1], "--nproc"), argv[2:]
    elif argv and argv[0].startswith("--nproc="):
        requested, argv = parse_count(argv[0].split("=", 1)[1], "--nproc"), argv[1:]
    if not argv:
        sys.exit("usage: python -m multiproc [--nproc N] train.py ARGS")
    nproc = process_count(requested)
    # An environment variable, not a flag, so that torch versions without the setting still launch.
    os.environ.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(STOP_GRACE_SECONDS))
    with recording_workers() as started:
        try:
            # --standalone picks a free rendezvous port, so two jobs on one machine do not collide.
            torchrun.main(["--standalone", f"--nproc-per-node={nproc}", argv[0], *strip_legacy_flags(argv[1:])])
        except SignalException as stop:
            name = signal.Signals(stop.sigval).name
            failed = unclean_exits(started)
            if failed:  # killed at the end of the grace time, or a signal train.py does not stop on
                print(f"multiproc: stopped by {name}, but not cleanly ({failed}); the stop checkpoint may be "
                      f"missing", file=sys.stderr, flush=True)
                sys.exit(128 + stop.sigval)
            # A requested stop, not a failure: every worker finished its step and exited 0 after rank 0
            # wrote the stop checkpoint (its own message says where); torchrun raises all the same.
            print(f"multiproc: stopped by {name}", file=sys.stderr, flush=True)
            sys.exit(0)


if __name__ == "__main__":
    main()
