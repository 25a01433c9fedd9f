"""Tacotron 2 model package: the surface train.py and inference.py use (docs/architecture.md)."""
import argparse

from torch import nn

from tacotron2.arguments import add_model_args, config_from_args
from tacotron2.data import TextMelCollate, TextMelDataset, batch_to_device, raise_problems
from tacotron2.loss import Tacotron2Loss
from tacotron2.model import Tacotron2
from tacotron2.text import symbols

__all__ = [
    "NAME", "add_model_args", "config_from_args", "build_model", "build_datasets", "collate_fn",
    "batch_to_device", "build_loss", "training_defaults", "symbols", "Tacotron2", "Tacotron2Loss",
    "TextMelDataset", "TextMelCollate",
]

NAME = "Tacotron2"

# The recipe's Tacotron 2 learning rate; weight decay 1e-6 and clipping at 1.0 are train.py's defaults.
training_defaults: dict = {"learning_rate": 1e-3}

collate_fn = TextMelCollate(n_frames_per_step=1)


def build_model(config: dict) -> Tacotron2:
    return Tacotron2(**config)


def build_datasets(args: argparse.Namespace) -> tuple[TextMelDataset, TextMelDataset]:
    """(train, val) datasets; both filelists are checked first and all problems raised together."""
    train = TextMelDataset.from_args(args.training_files, args, check=False)
    val = TextMelDataset.from_args(args.validation_files, args, check=False)
    raise_problems(train.problems() + val.problems())
    return train, val


def build_loss(args: argparse.Namespace | None = None) -> nn.Module:
    return Tacotron2Loss()
