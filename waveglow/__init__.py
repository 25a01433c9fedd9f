"""WaveGlow model package: the surface train.py and inference.py use (docs/architecture.md)."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from common.filelists import raise_problems
from waveglow.arguments import add_model_args, config_from_args
from waveglow.data import MelAudioDataset, batch_to_device, collate_fn
from waveglow.denoiser import Denoiser
from waveglow.loss import WaveGlowLoss
from waveglow.model import WaveGlow, remove_weightnorm

__all__ = [
    "NAME", "add_model_args", "config_from_args", "build_model", "build_datasets", "collate_fn",
    "batch_to_device", "build_loss", "training_defaults", "validation_stats", "validation_report",
    "item_lengths", "use_cuda_graphs", "use_torch_compile", "apply_run_options", "WaveGlow", "WaveGlowLoss",
    "MelAudioDataset", "Denoiser", "remove_weightnorm",
]

NAME = "WaveGlow"

# The recipe's WaveGlow settings: no weight decay and clipping effectively off (FLT_MAX).
training_defaults: dict = {"learning_rate": 1e-4, "weight_decay": 0.0,
                           "grad_clip_thresh": 3.4028234663852886e+38}


def build_model(config: dict) -> WaveGlow:
    return WaveGlow(**config)


def build_datasets(args: argparse.Namespace) -> tuple[MelAudioDataset, MelAudioDataset]:
    """(train, val) datasets; both filelists are checked first and all problems raised together."""
    train = MelAudioDataset.from_args(args.training_files, args, check=False)
    val = MelAudioDataset.from_args(args.validation_files, args, check=False)
    raise_problems(train.problems() + val.problems())
    return train, val


def item_lengths(dataset: MelAudioDataset) -> None:
    """Items are fixed-length audio segments: nothing for --length-sort-pool to sort."""
    return None


# WaveGlow's training step is a few large convolutions per layer, not a launch-bound loop: no graphs.
use_cuda_graphs = None


def use_torch_compile(model: WaveGlow, enabled: bool = True) -> None:
    """--torch-compile (train.py, inference.py): every WN gate as one fused kernel (WaveGlow.compile_gates)."""
    model.compile_gates(enabled)


def apply_run_options(model: WaveGlow, args: argparse.Namespace) -> None:
    """WaveGlow's own run flags (waveglow.arguments.add_run_args): --wn-time-major, --wn-compile-block."""
    model.use_time_major(getattr(args, "wn_time_major", False))
    model.compile_blocks(getattr(args, "wn_compile_block", False))


def build_loss(args: argparse.Namespace | None = None) -> WaveGlowLoss:
    return WaveGlowLoss(args.sigma if args is not None else 1.0)


def validation_stats(outputs, inputs, targets) -> dict:
    """No per-batch validation statistics beyond the loss."""
    return {}


def validation_report(model: nn.Module, batch: tuple, outputs, device: torch.device, epoch: int,
                      audio: dict | None = None) -> dict:
    """The model's own synthesis (sigma 0.6) of the mel of row 0 of a validation batch (the first
    list entry's validation crop): a waveform/mel figure and the audio."""
    from common import plotting

    mel, reference = batch[0][:1], batch[1][0]
    wav = torch.nan_to_num(model.infer(mel.to(device), sigma=0.6)[0].float().cpu())
    sampling_rate = int((audio or {}).get("sampling_rate", 22050))
    image = plotting.plot_waveform_and_mel(wav, mel[0], sampling_rate, reference=reference,
                                           title=f"WaveGlow synthesis (sigma 0.6), epoch {epoch}")
    return {"images": {"synthesis": image}, "audio": {"sample": (wav.numpy(), sampling_rate)}}
