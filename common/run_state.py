"""What a training run saves and restores besides the model: RNG states, where to resume, warm starts,
and the stop request of a preempted job."""
from __future__ import annotations

import os
import random
import re
import signal
import time

import numpy as np
import torch

from common import checkpoint as ckpt_io
from common.errors import CheckpointError, UserError

FORWARDED_SIGNAL_SECONDS = 2.0  # a launcher's copy of a signal arrives within this of the original


class StopRequest:
    """SIGTERM/SIGINT ask for a clean stop at the end of the current step (preemptible machines); a
    second Ctrl-C, later than a launcher's forwarded copy of the first, stops at once."""

    def __init__(self, clock=time.monotonic):
        self.requested = False
        self.requested_at = 0.0
        self.clock = clock
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        now = self.clock()
        if self.requested:
            # Ctrl-C reaches every process of the terminal's group, and torchrun then passes its own
            # copy on to its workers: that copy must not cut the stop checkpoint short.
            if signum == signal.SIGINT and now - self.requested_at > FORWARDED_SIGNAL_SECONDS:
                raise KeyboardInterrupt
            return
        self.requested, self.requested_at = True, now


def ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader worker_init_fn. timeout, SLURM and Ctrl-C signal the whole process group; PyTorch's
    workers die of SIGTERM, which aborts the main process mid-step, before its stop checkpoint. The
    stop is the main process's to make; it ends its workers when the loader goes."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def mixed_seed(*parts: int) -> int:
    """A 32-bit seed for each combination of the parts (torch's CPU generators use 32 bits)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def checkpoint_file(output: str, model_name: str, tag) -> str:
    return os.path.join(output, f"checkpoint_{model_name}_{tag}.pt")


def find_resume_checkpoint(args) -> str | None:
    if args.checkpoint_path:
        return args.checkpoint_path
    # A worker restarted by `torchrun --max-restarts` continues where the run stopped.
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    if args.resume_from_last or restarted:
        last = checkpoint_file(args.output, args.model_name, "last")
        if os.path.exists(last):
            return last
        # No (or a dangling) last link, e.g. a folder synced without its links, or written by a
        # recipe version before the last link: resume from the newest numbered checkpoint rather than
        # start from epoch 0 and overwrite it.
        newest = newest_numbered_checkpoint(args.output, args.model_name)
        why = "a link to a missing file" if os.path.islink(last) else "missing"
        if newest:
            print(f"{last}: {why}; resuming from the newest numbered checkpoint, {newest}", flush=True)
            return newest
        print(f"No last checkpoint in {args.output} - starting from epoch 0", flush=True)
    return None


def newest_numbered_checkpoint(output: str, model_name: str) -> str | None:
    """``checkpoint_<model>_<epoch>.pt`` in ``output`` with the highest epoch, or None."""
    pattern = re.compile(rf"checkpoint_{re.escape(model_name)}_(\d+)\.pt")
    try:
        names = os.listdir(output)
    except OSError:
        return None
    epochs = [(int(match.group(1)), name) for name in names if (match := pattern.fullmatch(name))
              and os.path.isfile(os.path.join(output, name))]
    return os.path.join(output, max(epochs)[1]) if epochs else None


def choose_warm_start(args, resume_path: str | None) -> str | None:
    """--warm-start excludes --checkpoint-path; a last checkpoint found by --resume-from-last wins, so a
    preempted fine-tuning run continues with the command line that started it."""
    if not args.warm_start:
        return None
    if args.checkpoint_path:
        raise UserError(f"--warm-start {args.warm_start} and --checkpoint-path {args.checkpoint_path} "
                        f"exclude each other (expected one: weights only, or a training state to resume)")
    if resume_path:
        print(f"Resuming {resume_path}; --warm-start {args.warm_start} is skipped", flush=True)
        return None
    return args.warm_start


def warm_start(model, path: str, model_name: str, ignore_layers, check_names: bool = False) -> list[str]:
    """Copy `path`'s weights into `model` except the ignored layers -> the names kept at their fresh init.

    ``check_names``: every ignored name must name a layer (state-dict name or module prefix) of
    `model`, since a typo would silently warm-start everything; off for the recipe's default
    (embedding.weight), which WaveGlow does not have."""
    own = model.state_dict()

    def ignored(name: str, layer: str) -> bool:
        return name == layer or name.startswith(layer + ".")

    unknown = [layer for layer in ignore_layers if not any(ignored(name, layer) for name in own)] if check_names else []
    if unknown:
        modules = ", ".join(sorted({name.split(".")[0] for name in own}))
        raise UserError(f"--ignore-layers {' '.join(unknown)}: no such layer in this {model_name} (expected "
                        f"state-dict names or module prefixes, e.g. embedding.weight; top-level modules: {modules})")
    _, state_dict = ckpt_io.load_model_checkpoint(path, model_name)
    fresh = [name for name in own if any(ignored(name, layer) for layer in ignore_layers)]
    state_dict = {name: value for name, value in state_dict.items() if name not in fresh}
    differ = [f"{name} {list(value.shape)} in the checkpoint, {list(own[name].shape)} here"
              for name, value in state_dict.items() if name in own and value.shape != own[name].shape]
    if differ:
        more = f"; and {len(differ) - 5} more" if len(differ) > 5 else ""
        raise CheckpointError(f"{path}: layer shapes differ from this {model_name}: "
                              f"{'; '.join(differ[:5])}{more} (expected equal shapes, or these names in "
                              f"--ignore-layers)")
    try:
        model.load_state_dict({**state_dict, **{name: own[name] for name in fresh}})
    except RuntimeError as error:
        raise CheckpointError(f"{path}: does not fit this {model_name}: "
                              f"{' '.join(str(error).split())}") from None
    return fresh
