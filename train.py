"""Trains Tacotron 2 or WaveGlow: `python train.py -m Tacotron2|WaveGlow -o OUT -lr LR --epochs N -bs BS`.

One loop for both models; everything model-specific comes from the model package's surface
(docs/architecture.md). Runs on one CPU or GPU, or on many under torchrun / `python -m multiproc`.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

import tacotron2
import waveglow
from common import checkpoint as ckpt_io
from common import distributed
from common.arguments import (add_audio_args, add_bool_flag, audio_config_from_args, check_audio_args,
                              config_file_defaults)
from common.audio import save_wav
from common.compiler import check_compiling_flags
from common.errors import CheckpointError, UserError, run_cli
from common.logger import Logger
from common.profiling import StepProfiler
from common.run_state import (StopRequest, checkpoint_file, choose_warm_start, find_resume_checkpoint,
                              ignore_stop_signals, mixed_seed, rng_state, set_rng_state, warm_start)
from common.sampler import ResumableSampler
from common.timing import device_name, one_time_work_count

MODELS = {package.NAME: package for package in (tacotron2, waveglow)}
MAX_NONFINITE_STEPS = 5
IGNORE_LAYERS_DEFAULT = ["embedding.weight"]


def build_parser(package=None) -> argparse.ArgumentParser:
    # No abbreviations: a flag of another version that is a prefix of one of ours must not quietly set it
    # (the recipe's --grad-clip once set --grad-clip-thresh here).
    parser = argparse.ArgumentParser(prog="train.py", description="Train Tacotron 2 or WaveGlow", allow_abbrev=False,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-o", "--output", "--output-directory", "--output_directory", required=True,
                        help="folder for checkpoints, logs and plots")
    parser.add_argument("-d", "--dataset-path", default="./", help="prefix joined to every filelist path")
    parser.add_argument("-m", "--model-name", required=True, choices=sorted(MODELS))
    parser.add_argument("--log-file", default="nvlog.json",
                        help="JSON log; a bare file name goes inside --output")
    parser.add_argument("--anneal-steps", nargs="*", default=None, help="epochs at which the LR is annealed")
    parser.add_argument("--anneal-factor", type=float, choices=[0.1, 0.3], default=0.1)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--epochs-per-checkpoint", type=int, default=50)
    parser.add_argument("--checkpoint-path", default="", help="checkpoint to resume from")
    parser.add_argument("--resume-from-last", action="store_true",
                        help="resume from checkpoint_<model>_last.pt in --output when it exists")
    parser.add_argument("--warm-start", default="", metavar="CKPT", help="take only the weights from CKPT")
    parser.add_argument("--ignore-layers", nargs="*", default=IGNORE_LAYERS_DEFAULT, metavar="NAME",
                        help="state-dict names (or module prefixes) --warm-start leaves at their fresh init")
    parser.add_argument("--fp16-run", "--amp", "--amp-run", dest="fp16_run", action="store_true",
                        help="mixed precision: float16 autocast with dynamic loss scaling")
    parser.add_argument("--bf16", action="store_true", help="mixed precision with bfloat16 autocast")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="Tacotron 2 on a GPU: the decoder loop's forward and backward replayed as CUDA graphs, "
                             "one per padded shape bucket while GPU memory holds them, other shapes eagerly "
                             "(experimental: a capture costs a few steps' time once; speed not yet measured)")
    parser.add_argument("--torch-compile", action="store_true",
                        help="torch.compile (experimental: not yet measured in training; each new shape compiles "
                             "once): Tacotron 2's decoder steps, 8 a graph, forward and backward, one graph per "
                             "32-token bucket; WaveGlow's gated activations")
    add_bool_flag(parser, "--cudnn-enabled", default=True, help="enable cuDNN")
    add_bool_flag(parser, "--cudnn-benchmark", default=False, help="let cuDNN pick kernels per shape")
    add_bool_flag(parser, "--dynamic-loss-scaling", default=True,
                  help="accepted for old scripts; loss scaling is always dynamic")
    add_bool_flag(parser, "--use-saved-learning-rate", default=False, help="accepted for old scripts; unused, "
                  "as in the recipe (a resumed run takes the learning rate from --anneal-steps)")
    parser.add_argument("--grad-clip", type=float, default=5.0,
                        help="accepted for old scripts; unused, as in the recipe (the norm is --grad-clip-thresh)")
    parser.add_argument("--config-file", metavar="JSON",
                        help="the recipe's {group: {flag-name: value}} file; its values become the flags' "
                             "defaults (flags given on the command line win)")
    parser.add_argument("-lr", "--learning-rate", type=float, default=None,
                        help="Tacotron 2: 1e-3, WaveGlow: 1e-4 when not given")
    parser.add_argument("--weight-decay", type=float, default=1e-6)
    parser.add_argument("--grad-clip-thresh", type=float, default=1.0, help="max gradient norm")
    parser.add_argument("-bs", "--batch-size", type=int, required=True, help="per process")
    parser.add_argument("--training-files", default="filelists/ljs_audio_text_train_filelist.txt")
    parser.add_argument("--validation-files", default="filelists/ljs_audio_text_val_filelist.txt")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers per process")
    parser.add_argument("--length-sort-pool", type=int, default=0, metavar="N",
                        help="Tacotron 2: sort each run of N shuffled training utterances by mel length before "
                             "batching, so a batch holds similar lengths (less padding, fewer decoder steps); "
                             "0 = the recipe's random batches")
    parser.add_argument("--bench-class", default="", choices=["", "train", "perf-train"],
                        help="perf-train: no checkpoints")
    parser.add_argument("--profile-steps", type=int, default=0, metavar="N",
                        help="profile N training steps (torch.profiler) after --profile-skip: device busy %%, kernels "
                             "per step, top operations and a timeline in OUT/profile/ (common/profiling.py)")
    parser.add_argument("--profile-skip", type=int, default=10, metavar="K",
                        help="steps to run before --profile-steps starts recording (warm-up, graph captures)")
    parser.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard events")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    dist_group = parser.add_argument_group("distributed (torchrun's environment takes precedence)")
    dist_group.add_argument("--rank", type=int, default=0)
    dist_group.add_argument("--world-size", type=int, default=1)
    dist_group.add_argument("--dist-url", default="tcp://localhost:23456")
    dist_group.add_argument("--dist-backend", default=None, choices=["nccl", "gloo"])
    dist_group.add_argument("--group-name", default="group_name")
    add_audio_args(parser)
    if package is not None:
        package.add_model_args(parser)
        parser.set_defaults(**package.training_defaults)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    probe = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    probe.add_argument("-m", "--model-name", choices=sorted(MODELS))
    probe.add_argument("--config-file")
    known, _ = probe.parse_known_args(argv)
    parser = build_parser(MODELS.get(known.model_name))
    if known.config_file:
        parser.set_defaults(**config_file_defaults(parser, known.config_file))
    # Unknown flags are an error: a mistyped flag must not silently train with a default.
    return parser.parse_args(argv)


def check_args(args) -> None:
    """Flag values argparse cannot check; raises UserError before anything is loaded or written."""
    for flag, value, minimum in (("--epochs", args.epochs, 1), ("-bs/--batch-size", args.batch_size, 1),
                                 ("--epochs-per-checkpoint", args.epochs_per_checkpoint, 1),
                                 ("--num-workers", args.num_workers, 0), ("--profile-steps", args.profile_steps, 0),
                                 ("--profile-skip", args.profile_skip, 0)):
        if value < minimum:
            raise UserError(f"{flag} {value}: expected at least {minimum}")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UserError(f"{args.output}: exists and is not a folder (expected an output folder for -o)")
    if not 0 <= args.seed < 2 ** 32 - 1024:  # seed + rank seeds numpy, which takes 32 bits
        raise UserError(f"--seed {args.seed}: expected 0 <= seed < {2 ** 32 - 1024}")
    check_audio_args(args)


def open_resume_checkpoint(path: str, args, config: dict, warn: bool) -> tuple[dict, dict]:
    """(the checkpoint, the model config to build): the checkpoint's own, since a resumed run goes on
    with the model it trained; flags that say otherwise, model or audio, are named in a warning."""
    resume = ckpt_io.load_checkpoint(path)
    found = resume.get("model_name") or ckpt_io.model_name_of_state_dict(resume["state_dict"])
    if found and found != args.model_name:
        raise CheckpointError(f"{path}: is a {found} checkpoint, expected {args.model_name}")
    stored_config = resume.get("config") or config
    differ = [f"{key} {config[key]} (checkpoint: {stored_config[key]})" for key in config
              if key in stored_config and stored_config[key] != config[key]]
    if differ and warn:
        print(f"warning: {path}: the model is built from the checkpoint's config; ignoring "
              f"{', '.join(differ)}", file=sys.stderr)
    stored_audio, audio = resume.get("audio") or {}, audio_config_from_args(args)
    differ = [f"--{key.replace('_', '-')} {audio[key]:g} (checkpoint: {stored_audio[key]:g})" for key in audio
              if key in stored_audio and stored_audio[key] != audio[key]]
    if differ and warn:
        print(f"warning: {path}: was trained with other audio settings: {', '.join(differ)} "
              f"(pass the checkpoint's values to continue the same run)", file=sys.stderr)
    return resume, stored_config


def restore_training_state(resume: dict, path: str, model, optimizer, scaler, args,
                           dist_info) -> tuple[int, int, int, tuple[float, int]]:
    """Model, optimizer, scaler and RNG from the checkpoint -> (start epoch, iteration, utterances of
    that epoch already consumed, their (loss sum, steps)); a run stopped mid-epoch goes on inside it."""
    model.load_state_dict(ckpt_io.strip_module_prefix(resume["state_dict"]))
    if "optimizer" in resume:
        optimizer.load_state_dict(resume["optimizer"])
    if resume.get("scaler"):
        scaler.load_state_dict(resume["scaler"])
    saved_sampler = resume.get("sampler", {})
    consumed = saved_sampler.get("consumed", 0)
    resumed_loss = (0.0, 0)
    if consumed:
        resumed_loss = (float(saved_sampler.get("epoch_loss_sum", 0.0)), int(saved_sampler.get("epoch_loss_steps", 0)))
        if saved_sampler.get("sort_pool", 0) != args.length_sort_pool and dist_info.is_main:
            print(f"warning: {path} stopped mid-epoch with --length-sort-pool {saved_sampler.get('sort_pool', 0)}; "
                  f"finishing that epoch with {args.length_sort_pool} repeats or skips some of its utterances",
                  file=sys.stderr)
    start_epoch = resume["epoch"] if consumed else resume["epoch"] + 1
    iteration = resume.get("iteration", 0)
    rng_states = resume.get("rng")
    if rng_states:
        set_rng_state(rng_states[dist_info.rank % len(rng_states)])
    if dist_info.is_main:
        print(f"Resumed from {path}: epoch {start_epoch}, iteration {iteration}", flush=True)
        if start_epoch >= args.epochs:
            print(f"note: {path} has already trained {start_epoch} epoch(s); nothing to do for "
                  f"--epochs {args.epochs} (raise --epochs to train on)", flush=True)
    return start_epoch, iteration, consumed, resumed_loss


def check_ranks_start_alike(start: tuple[int, int, int], resume_path: str | None) -> None:
    """Every rank must start from the same (epoch, iteration, consumed). A rank that does not see the
    checkpoint the others resume from (-o on a disk of its own node) would train other epochs than
    they do and wait forever in a collective they never make; refuse, on every rank, instead."""
    starts = distributed.all_gather_objects((start, resume_path))
    if len({rank_start for rank_start, _ in starts}) > 1:
        seen = "; ".join(f"rank {rank}: epoch {epoch}, iteration {iteration} from {path or 'no checkpoint'}"
                         for rank, ((epoch, iteration, _), path) in enumerate(starts))
        raise CheckpointError(f"the processes would resume from different states ({seen}); expected every "
                              f"process to see the same checkpoints (-o on a file system every node shares)")


def learning_rate_at(epoch: int, base_lr: float, anneal_steps, anneal_factor: float) -> float:
    """The recipe's epoch-based annealing; factor 0.3 alternates 0.3 and 0.1 steps."""
    if not anneal_steps:
        return base_lr
    passed = sum(epoch >= int(step) for step in anneal_steps)
    if anneal_factor == 0.3:
        return base_lr * 0.1 ** (passed // 2) * (1.0 if passed % 2 == 0 else 0.3)
    return base_lr * anneal_factor ** passed


def log_path(args) -> str:
    if os.path.dirname(args.log_file) or os.path.isabs(args.log_file):
        return args.log_file
    return os.path.join(args.output, args.log_file)


def write_validation_report(package, model, first_val, args, device, epoch: int, iteration: int,
                            logger) -> None:
    """Rank 0: the package's figures and audio of a fixed validation utterance -> -o and TensorBoard."""
    from common.plotting import save_png  # matplotlib is slow to import and needed only here

    was_training = model.training
    model.eval()
    # Synthesis draws random numbers; forking keeps the training RNG stream (and resumes) unchanged.
    with torch.no_grad(), torch.random.fork_rng(devices=[device.index] if device.type == "cuda" else []):
        report = package.validation_report(model, *first_val, device, epoch, audio=audio_config_from_args(args))
    model.train(was_training)
    # A folder of its own: a long run writes several files per epoch.
    folder = os.path.join(args.output, "validation")
    os.makedirs(folder, exist_ok=True)
    for name, image in report.get("images", {}).items():
        save_png(os.path.join(folder, f"{name}_{epoch}.png"), image)
        logger.image(f"validation/{name}", image, iteration)
    for name, (samples, sampling_rate) in report.get("audio", {}).items():
        save_wav(os.path.join(folder, f"{name}_{epoch}.wav"), samples, sampling_rate)
        logger.audio(f"validation/{name}", samples, sampling_rate, iteration)


def save_training_checkpoint(path: str, *, args, config, model, optimizer, scaler, epoch, iteration,
                             consumed, rng_states, link_last: bool, epoch_loss: tuple[float, int] = (0.0, 0)) -> None:
    """`consumed` > 0: stopped mid-epoch; `epoch_loss` (sum, steps) so far lets the resumed run log
    the whole epoch's mean loss."""
    state = {
        "format_version": 1,
        "model_name": args.model_name,
        "epoch": epoch,
        "iteration": iteration,
        "config": config,
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_states,
        "sampler": {"epoch": epoch, "consumed": consumed, "seed": args.seed, "sort_pool": args.length_sort_pool,
                    "epoch_loss_sum": epoch_loss[0], "epoch_loss_steps": epoch_loss[1]},
        "args": {key: value for key, value in vars(args).items()
                 if isinstance(value, (int, float, str, bool, list, type(None)))},
        "audio": audio_config_from_args(args),
    }
    if args.model_name == tacotron2.NAME:
        state["symbols"] = list(tacotron2.symbols)
    ckpt_io.save_checkpoint(state, path)
    if link_last:
        ckpt_io.link_or_copy(path, checkpoint_file(args.output, args.model_name, "last"))


def autocast_context(args, device: torch.device):
    if device.type != "cuda" and args.fp16_run:
        return nullcontext()
    # CUDA graphs may not keep autocast's cast cache (its tensors would outlive the capture)
    cache = not args.cuda_graphs
    if args.bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    if args.fp16_run:
        return torch.autocast(device.type, dtype=torch.float16, cache_enabled=cache)
    return nullcontext()


def make_loader(dataset, sampler, package, args, device, seed: int) -> DataLoader:
    """``seed``: the loader's own generator (its workers' seeds). Without one, starting to iterate
    draws from the global RNG, which a run resumed mid-epoch would draw twice, and its dropout and
    crops would then differ from those of the run it continues."""
    # No pinning thread with --cuda-graphs: a graph capture in the main thread fails when another
    # thread makes CUDA calls meanwhile, and entering a capture empties the pinned-memory cache the
    # thread would then allocate from.
    pin_memory = device.type == "cuda" and not args.cuda_graphs
    return DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.num_workers,
                      collate_fn=package.collate_fn, pin_memory=pin_memory,
                      drop_last=sampler.drop_last, persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=ignore_stop_signals if args.num_workers > 0 else None)


def epoch_seed(args, epoch: int, validation: bool = False) -> int:
    """The seed of per-item randomness (datasets with ``set_epoch``, e.g. WaveGlow's crops), the same
    on every rank; validation's is the same every epoch, so val_loss moves with the model only."""
    return mixed_seed(args.seed, 0 if validation else epoch, validation)


def loader_seed(args, epoch: int, rank: int, validation: bool = False) -> int:
    """A seed of its own for every (run seed, epoch, rank, train/validation) loader."""
    return mixed_seed(args.seed, epoch, validation, rank)


def make_profiler(args, dist_info, device, logger) -> StepProfiler:
    def report(summary: dict, lines: list[str]) -> None:
        logger.log([], summary)
        if dist_info.is_main:
            print("\n".join(lines), flush=True)

    return StepProfiler(args.output, dist_info.rank, device, args.profile_steps, args.profile_skip,
                        on_summary=report)


@torch.no_grad()
def validate(model, loss_fn, loader, package, args, device) -> tuple[dict, tuple | None]:
    """Teacher-forced loss and the package's validation_stats over the whole validation set, true means
    over all ranks' batches -> ({name: mean}, (first batch, its outputs) or None).

    "loss" is the recipe's loss: optional terms (the loss's logged_terms, e.g. guided attention) are
    reported on their own, so validation losses of runs with and without them compare."""
    was_training = model.training
    model.eval()
    optional_terms = tuple(getattr(loss_fn, "logged_terms", ()))
    totals = {"loss": torch.zeros(2, dtype=torch.float64, device=device)}
    first = None
    for batch in loader:
        inputs, targets, counts = package.batch_to_device(batch, device)
        with autocast_context(args, device):
            outputs = model(inputs)
            loss, terms = loss_fn(outputs, targets)
        n_utterances = len(batch[0])
        recipe_loss = loss.detach().double() - sum(terms[name].double() for name in optional_terms)
        stats = {"loss": (recipe_loss * n_utterances, n_utterances),
                 **{name: (terms[name].double() * n_utterances, n_utterances) for name in optional_terms},
                 **package.validation_stats(outputs, inputs, targets)}
        for name, pair in stats.items():
            pair = torch.stack([torch.as_tensor(x, dtype=torch.float64, device=device) for x in pair])
            totals[name] = totals[name] + pair if name in totals else pair
        first = first or (batch, outputs)
    # Each utterance is validated once, so a rank may have had fewer batches or none (a validation
    # set smaller than the world): the ranks agree on the statistics' names before summing them.
    names = list(dict.fromkeys(name for rank_names in distributed.all_gather_objects(list(totals))
                               for name in rank_names))
    zero = torch.zeros(2, dtype=torch.float64, device=device)
    reduced = distributed.all_reduce_sum(torch.stack([totals.get(name, zero) for name in names]))
    model.train(was_training)
    # none counted: no validation batch at all (perf-train drops a last partial batch, as the recipe)
    return {name: s / c for name, (s, c) in zip(names, reduced.tolist()) if c > 0}, first


def start_process(args) -> distributed.DistInfo:
    """Joins the process group (if any), records the world in args, sets backend flags and seeds."""
    dist_info = distributed.init_distributed(args.rank, args.world_size, args.dist_url, args.dist_backend,
                                             args.group_name, cpu=args.cpu)
    # The log and checkpoints record the world the run really had, whoever set it up.
    args.rank, args.world_size = dist_info.rank, dist_info.world_size
    if args.fp16_run and dist_info.device.type != "cuda" and dist_info.is_main:
        print("warning: --fp16-run needs a GPU; training in float32 on the CPU", file=sys.stderr)
    torch.backends.cudnn.enabled = args.cudnn_enabled
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.manual_seed(args.seed + dist_info.rank)
    np.random.seed(args.seed + dist_info.rank)
    random.seed(args.seed + dist_info.rank)
    return dist_info


def build_model(package, config: dict, args, device: torch.device, is_main: bool) -> torch.nn.Module:
    """The model on its device with the run's speed options (--cuda-graphs, --torch-compile, ...)."""
    model = package.build_model(config).to(device)
    package.apply_run_options(model, args)
    if args.cuda_graphs:
        if package.use_cuda_graphs is None:
            raise UserError(f"--cuda-graphs: {args.model_name} has no graphed training path (Tacotron 2 has)")
        if device.type != "cuda":
            if is_main:
                print("warning: --cuda-graphs needs a GPU; training eagerly on the CPU", file=sys.stderr)
        else:
            package.use_cuda_graphs(model)
    if args.torch_compile:
        package.use_torch_compile(model)
    check_compiling_flags(args, device)
    return model


def make_samplers(package, trainset, valset, args, dist_info) -> tuple[ResumableSampler, ResumableSampler]:
    """Training: shuffled (optionally length-sorted in pools), whole global batches; validation: in order."""
    lengths = package.item_lengths(trainset) if args.length_sort_pool else None
    if args.length_sort_pool < 0 or (args.length_sort_pool and lengths is None):
        raise UserError(f"--length-sort-pool {args.length_sort_pool}: expected 0, or a positive pool size for "
                        f"Tacotron 2 ({args.model_name} trains on fixed-length items)")
    sampler = ResumableSampler(len(trainset), dist_info.world_size, dist_info.rank, seed=args.seed,
                               batch_size=args.batch_size, drop_last=True, lengths=lengths,
                               sort_pool=args.length_sort_pool)
    # every validation utterance once: val_loss is the mean over the validation set whatever the
    # number of processes (validation runs the bare model, so the ranks' batch counts may differ)
    val_sampler = ResumableSampler(len(valset), dist_info.world_size, dist_info.rank, shuffle=False,
                                   batch_size=args.batch_size, drop_last=args.bench_class == "perf-train")
    if sampler.batches_per_epoch() == 0:
        raise UserError(f"{args.training_files}: {len(trainset)} utterances are fewer than one global batch "
                        f"({args.batch_size} x {dist_info.world_size} processes)")
    return sampler, val_sampler


def open_logger(args, device: torch.device, is_main: bool) -> Logger:
    """The JSON log (rank 0 writes), TensorBoard unless --no-tensorboard, and the run's parameters."""
    os.makedirs(args.output, exist_ok=True)
    logger = Logger(log_path(args), enabled=is_main,
                    tensorboard_dir=None if args.no_tensorboard else os.path.join(args.output, "tensorboard"))
    precision = "bf16" if args.bf16 else "fp16" if args.fp16_run and device.type == "cuda" else "fp32"
    logger.parameters({**vars(args), "model_name": f"{args.model_name}_PyT", "device": device.type,
                       "device_name": device_name(device), "precision": precision})
    for key, unit in (("run_time", "s"), ("val_loss", None), ("train_iter_items/sec", "items/s"),
                      ("train_epoch_items/sec", "items/s"), ("epoch_time", "s")):
        logger.metadata(key, unit)
    return logger


@dataclass
class StepStats:
    """One optimizer step as all ranks agree on it: loss and logged terms are means over the ranks,
    items and mels sums."""
    loss: float
    items: float
    mels: float
    stop_requested: bool  # on any rank
    one_time_work: bool  # on any rank (a CUDA graph capture): the others waited for it
    terms: dict[str, float]
    seconds: float


def reduce_step(loss, counts: dict, terms: dict, logged_terms: tuple, stop_requested: bool,
                one_time_work: bool, step_start: float, device, world_size: int) -> StepStats:
    """One all-reduce carries everything, so every rank agrees without another collective."""
    on_host = torch.tensor([counts["items"], counts.get("mels", 0), float(stop_requested), float(one_time_work)],
                           dtype=torch.float64)
    # the loss and terms stay on the device until the one copy to the host below (one sync a step)
    on_device = [torch.as_tensor(value, dtype=torch.float64, device=device).detach().reshape(1)
                 for value in (loss, *(terms[name] for name in logged_terms))]
    stats = torch.cat([on_device[0], on_host.to(device), *on_device[1:]])
    distributed.all_reduce_sum(stats)
    reduced = stats.tolist()
    seconds = time.perf_counter() - step_start
    return StepStats(reduced[0] / world_size, reduced[1], reduced[2], reduced[3] > 0, reduced[4] > 0,
                     {name: reduced[5 + k] / world_size for k, name in enumerate(logged_terms)}, seconds)


class EpochMeter:
    """An epoch's mean loss (finite steps, also those before a mid-epoch resume, summed in the same
    order) and its throughput (this run's steps without one-time work)."""

    def __init__(self, loss_sum: float = 0.0, loss_steps: int = 0):
        self.loss_sum, self.loss_steps = loss_sum, loss_steps
        # [items, mels, seconds, steps] of the steps without and with one-time work
        self.totals = {False: [0, 0, 0.0, 0], True: [0, 0, 0.0, 0]}

    def add(self, step: StepStats) -> None:
        if math.isfinite(step.loss):
            self.loss_sum += step.loss
            self.loss_steps += 1
        self.totals[step.one_time_work] = [total + value for total, value in
                                           zip(self.totals[step.one_time_work],
                                               (step.items, step.mels, step.seconds, 1))]

    def mean_loss(self) -> float | None:
        return self.loss_sum / self.loss_steps if self.loss_steps else None

    def log_data(self, epoch_time: float) -> dict:
        data = {} if self.mean_loss() is None else {"train_epoch_avg_loss": self.mean_loss()}
        if not self.totals[False][3] + self.totals[True][3]:
            return data  # a run stopped right at an epoch's end resumes into an empty remainder
        # an epoch of nothing but one-time work reports the throughput of those steps
        items, mels, seconds, _ = self.totals[not self.totals[False][3]]
        data.update({"train_epoch_items/sec": items / max(seconds, 1e-9), "epoch_time": epoch_time})
        if mels:
            data["train_epoch_mels/sec"] = mels / max(seconds, 1e-9)
        if self.totals[True][3]:
            data.update({"train_epoch_one_time_work_steps": self.totals[True][3],
                         "train_epoch_one_time_work_time": self.totals[True][2]})
        return data


def log_step(logger: Logger, epoch: int, i: int, iteration: int, step: StepStats, lr: float, grad_norm,
             scaler, terms: dict) -> None:
    iter_data = {"train_iter_loss": step.loss, "train_iter_items/sec": step.items / step.seconds,
                 "train_iter_time": step.seconds}
    if step.one_time_work:
        iter_data["train_iter_one_time_work"] = 1
    if step.mels:
        iter_data["train_iter_mels/sec"] = step.mels / step.seconds
    iter_data.update({f"train_iter_{name}": value for name, value in step.terms.items()})
    logger.log([epoch, i], iter_data)
    logger.scalars(iteration, {"train/loss": step.loss, "train/learning_rate": lr,
                               "train/items_per_sec": step.items / step.seconds,
                               "train/grad_norm": float(grad_norm), "train/loss_scale": scaler.get_scale(),
                               **{f"train/{k}": float(v) for k, v in terms.items()}})


def train(args) -> int:
    check_args(args)
    package = MODELS[args.model_name]
    dist_info = start_process(args)
    device = dist_info.device
    resume_path = find_resume_checkpoint(args)
    warm_path = choose_warm_start(args, resume_path)
    resume, config = None, package.config_from_args(args)
    if resume_path:
        resume, config = open_resume_checkpoint(resume_path, args, config, warn=dist_info.is_main)

    model = build_model(package, config, args, device, dist_info.is_main)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=args.fp16_run and device.type == "cuda")
    loss_fn = package.build_loss(args)
    trainset, valset = package.build_datasets(args)
    sampler, val_sampler = make_samplers(package, trainset, valset, args, dist_info)

    # where the run starts: epoch, iteration, utterances of that epoch already trained on, and their
    # (loss sum, steps) for the epoch's mean
    start_epoch, iteration, consumed, resumed_loss = 0, 0, 0, (0.0, 0)
    if resume is not None:
        start_epoch, iteration, consumed, resumed_loss = restore_training_state(
            resume, resume_path, model, optimizer, scaler, args, dist_info)
    elif warm_path:
        fresh = warm_start(model, warm_path, args.model_name, args.ignore_layers,
                           check_names=args.ignore_layers != IGNORE_LAYERS_DEFAULT)
        if dist_info.is_main:
            print(f"Warm start from {warm_path}; fresh init kept for {', '.join(fresh) or 'no layer'}", flush=True)
    check_ranks_start_alike((start_epoch, iteration, consumed), resume_path)

    # Flags, checkpoints and data are checked: from here on the output folder is written.
    logger = open_logger(args, device, dist_info.is_main)
    train_model = model
    if dist_info.enabled:
        train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    save = partial(save_training_checkpoint, args=args, config=config, model=model, optimizer=optimizer,
                   scaler=scaler)
    logged_terms = tuple(getattr(loss_fn, "logged_terms", ()))  # loss terms also written to the JSON log
    profiler = make_profiler(args, dist_info, device, logger) if args.profile_steps else None
    stop = StopRequest()
    nonfinite_steps = 0
    run_start = time.perf_counter()
    current_lr = None
    epoch, stopped_after = start_epoch, 0
    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch, consumed)
        meter = EpochMeter(*(resumed_loss if consumed else (0.0, 0)))
        consumed = 0
        for dataset, validation in ((trainset, False), (valset, True)):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch_seed(args, epoch, validation))
        loader = make_loader(trainset, sampler, package, args, device, loader_seed(args, epoch, dist_info.rank))
        epoch_start = time.perf_counter()
        global_batch = args.batch_size * dist_info.world_size
        steps_done_before = sampler.consumed // global_batch
        train_model.train()
        for i, batch in enumerate(loader, start=steps_done_before):
            lr = learning_rate_at(epoch, args.learning_rate, args.anneal_steps, args.anneal_factor)
            if lr != current_lr:
                if current_lr is not None:
                    logger.log([epoch, iteration], {"learning_rate changed": f"{current_lr} -> {lr}"})
                for group in optimizer.param_groups:
                    group["lr"] = lr
                current_lr = lr

            step_start = time.perf_counter()
            one_time_work_before = one_time_work_count()
            if profiler is not None:
                profiler.begin_step()
            inputs, targets, counts = package.batch_to_device(batch, device)
            with autocast_context(args, device):
                outputs = train_model(inputs)
                loss, terms = loss_fn(outputs, targets)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip_thresh)
            # Under --fp16-run the loss scaler skips a step whose gradients are not finite; float32
            # has no scaler, so it is skipped here, or one bad batch would make every weight NaN.
            # (The gradients are all-reduced, so every rank skips the same steps. Reading the norm is a
            # host sync, as the fp16 scaler's own found-inf check is.)
            skipped = not scaler.is_enabled() and not torch.isfinite(grad_norm)
            if not skipped:
                scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step = reduce_step(loss, counts, terms, logged_terms, stop.requested,
                               one_time_work_count() != one_time_work_before, step_start, device,
                               dist_info.world_size)

            # A skipped step counts too: with a finite loss but non-finite gradients every step,
            # the run would otherwise go on without ever updating the weights.
            if math.isfinite(step.loss) and not skipped:
                nonfinite_steps = 0
            else:
                nonfinite_steps += 1
                if not scaler.is_enabled() and nonfinite_steps >= MAX_NONFINITE_STEPS:
                    raise FloatingPointError(
                        f"loss or gradients were not finite for {nonfinite_steps} steps in a row (epoch {epoch}, "
                        f"iteration {iteration}); lower the learning rate or check the data")
            meter.add(step)
            iteration += 1
            log_step(logger, epoch, i, iteration, step, lr, grad_norm, scaler, terms)
            if profiler is not None:
                profiler.end_step()
            if step.stop_requested:
                # Counted on from where this run started: one resumed on another number of processes
                # (or -bs) started at a position that need not be a whole number of its global batches.
                stopped_after = sampler.consumed + (i + 1 - steps_done_before) * global_batch
                break
        if stopped_after:
            break

        epoch_data = meter.log_data(time.perf_counter() - epoch_start)
        if profiler is not None:
            profiler.epoch_end()
        if epoch_data:
            logger.log([epoch], epoch_data)

        val_loader = make_loader(valset, val_sampler, package, args, device,
                                 loader_seed(args, epoch, dist_info.rank, validation=True))
        # The bare model, not the DDP wrapper: the ranks' validation batch counts may differ, and no
        # rank may wait in a collective inside a forward the others do not make. The BatchNorm
        # statistics DDP would have synchronised come from rank 0, as the checkpoint's do.
        distributed.broadcast_buffers(model)
        val_means, first_val = validate(model, loss_fn, val_loader, package, args, device)
        if val_means:
            logger.log([epoch], {f"val_{name}": value for name, value in val_means.items()})
        epoch_loss_scalar = {} if meter.mean_loss() is None else {"train/epoch_loss": meter.mean_loss()}
        logger.scalars(iteration, {**{f"val/{name}": value for name, value in val_means.items()},
                                   **epoch_loss_scalar})
        if dist_info.is_main and first_val is not None and args.bench_class != "perf-train":
            write_validation_report(package, model, first_val, args, device, epoch, iteration, logger)

        is_last_epoch = epoch == args.epochs - 1
        if args.bench_class != "perf-train" and (epoch % args.epochs_per_checkpoint == 0 or is_last_epoch):
            states = distributed.all_gather_objects(rng_state())
            if dist_info.is_main:
                save(checkpoint_file(args.output, args.model_name, epoch), epoch=epoch, iteration=iteration,
                     consumed=0, rng_states=states, link_last=True)
        logger.flush()

    if profiler is not None:
        profiler.close()
    if stopped_after:
        states = distributed.all_gather_objects(rng_state())
        if dist_info.is_main and args.bench_class != "perf-train":
            path = checkpoint_file(args.output, args.model_name, "last")
            save(path, epoch=epoch, iteration=iteration, consumed=stopped_after, rng_states=states,
                 link_last=False, epoch_loss=(meter.loss_sum, meter.loss_steps))
            print(f"Stopped by signal at epoch {epoch}, iteration {iteration}; checkpoint written to "
                  f"{path}. Continue with --resume-from-last.", flush=True)
    logger.log([], {"run_time": time.perf_counter() - run_start})
    logger.close()
    distributed.barrier()
    distributed.destroy()
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(train, args)


if __name__ == "__main__":
    sys.exit(main())
