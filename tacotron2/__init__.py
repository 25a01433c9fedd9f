"""Tacotron 2 model package: the surface train.py and inference.py use (docs/architecture.md)."""
import argparse

import torch
from torch import Tensor, nn

from common.filelists import raise_problems
from tacotron2.alignment import alignment_stats
from tacotron2.arguments import add_model_args, config_from_args
from tacotron2.data import TextMelCollate, TextMelDataset, batch_to_device
from tacotron2.loss import Tacotron2Loss
from tacotron2.model import Tacotron2
from tacotron2.text import symbols

__all__ = [
    "NAME", "add_model_args", "config_from_args", "build_model", "build_datasets", "collate_fn",
    "batch_to_device", "build_loss", "training_defaults", "validation_stats", "validation_report",
    "item_lengths", "use_cuda_graphs", "use_torch_compile", "apply_run_options",
    "symbols", "Tacotron2", "Tacotron2Loss", "TextMelDataset", "TextMelCollate",
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


def item_lengths(dataset: TextMelDataset) -> list[int]:
    """Mel frames per item (the decoder's steps), the sort key of --length-sort-pool."""
    return dataset.n_frames()


def use_cuda_graphs(model: Tacotron2, enabled: bool = True) -> None:
    """--cuda-graphs (train.py, inference.py): the decoder loop of training and of free running
    through CUDA graphs where the model is on a GPU."""
    model.decoder.cuda_graphs = enabled


def use_torch_compile(model: Tacotron2, enabled: bool = True) -> None:
    """--torch-compile (train.py, inference.py): decoder steps through torch.compile, their
    elementwise chains fused (tacotron2.model.compiled). Free running: one graph for every token
    count, and with --cuda-graphs the graphs replay the fused kernels. Training: chunks of
    COMPILED_STEPS teacher-forced steps, forward and backward, one graph per bucket of TOKEN_BUCKET
    tokens (and batch size); validation, without gradients, stays eager. Each graph compiles the first
    time its shapes come."""
    import torch._dynamo

    from tacotron2.model import TOKEN_BUCKET
    # a graph per token bucket: room for texts of up to 2048 tokens (LJSpeech's longest is ~190) and a
    # second batch size; past the limit torch.compile would run further chunks eagerly
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 2 * 2048 // TOKEN_BUCKET)
    model.decoder.torch_compile = enabled


def apply_run_options(model: Tacotron2, args: argparse.Namespace) -> None:
    """How the model computes in this run, from the package's own flags: Tacotron 2 has none (its
    speed options are train.py's and inference.py's --cuda-graphs and --torch-compile)."""


def build_loss(args: argparse.Namespace | None = None) -> nn.Module:
    return Tacotron2Loss(getattr(args, "guided_attn_weight", 0.0), getattr(args, "guided_attn_sigma", 0.2))


def validation_stats(outputs: tuple, inputs: tuple, targets: tuple) -> dict[str, tuple[Tensor, Tensor]]:
    """Per validation batch: alignment health `{name: (sum, count)}` (tacotron2/alignment.py)."""
    return alignment_stats(outputs[3], targets[2], targets[3])


def validation_report(model: nn.Module, batch: tuple, outputs: tuple, device: torch.device, epoch: int,
                      audio: dict | None = None) -> dict:
    """Alignment, mel and gate figures and a Griffin-Lim sample of the teacher-forced postnet mel.

    The utterance is row 0 of the collated batch. The collate sorts by text length, so with the
    unshuffled validation sampler this is the same utterance every epoch: the longest text among
    the first batch's (the first list entry itself when -bs is 1). `audio`: the STFT/mel parameters
    (checkpoint 'audio' dict); the recipe's defaults when None.
    """
    from common import plotting
    from common.mel import TacotronSTFT

    _, input_lengths, mel_target, gate_target, output_lengths = batch
    _, mel_postnet, gate, alignments = outputs
    n_tokens, n_frames = int(input_lengths[0]), int(output_lengths[0])
    mel = torch.nan_to_num(mel_postnet[0, :, :n_frames].detach().float().cpu())
    images = {
        "alignment": plotting.plot_alignment(alignments[0, :n_frames, :n_tokens],
                                             f"epoch {epoch}, {n_tokens} tokens, {n_frames} frames"),
        "mel": plotting.plot_mel_pair(mel, mel_target[0, :, :n_frames]),
        "gate": plotting.plot_gate(torch.sigmoid(gate[0, :n_frames].float()), gate_target[0, :n_frames]),
    }
    stft = TacotronSTFT.from_audio_config(audio or {}).to(device)  # Griffin-Lim takes seconds on a CPU
    generator = torch.Generator().manual_seed(epoch)
    wav = stft.griffin_lim_from_mel(mel.unsqueeze(0).to(device), generator=generator)
    wav = torch.nan_to_num(wav[0]).cpu().numpy()
    return {"images": images, "audio": {"sample": (wav, stft.sampling_rate)}}
