"""WaveGlow command-line flags (reference-dle b.3: names and defaults unchanged since v1.0)."""

from __future__ import annotations

import argparse


def add_model_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the WaveGlow model flags and its training-data flag ``--segment-length``."""
    group = parser.add_argument_group("WaveGlow parameters")
    group.add_argument("--n-mel-channels", default=80, type=int,
                       help="number of bins in mel-spectrograms")
    group.add_argument("--flows", default=12, type=int, help="number of flows")
    group.add_argument("--groups", default=8, type=int,
                       help="number of samples in a group processed by the flows")
    group.add_argument("--early-every", default=4, type=int,
                       help="number of flows between early outputs")
    group.add_argument("--early-size", default=2, type=int, help="channels per early output")
    group.add_argument("--sigma", default=1.0, type=float,
                       help="standard deviation of the Gaussian prior in the training loss")
    group.add_argument("--segment-length", default=4000, type=int,
                       help="audio samples per training item (the recipe's scripts pass 8000)")
    group.add_argument("--wn-kernel-size", default=3, type=int, help="WN kernel size")
    group.add_argument("--wn-channels", default=512, type=int, help="WN residual channels")
    group.add_argument("--wn-layers", default=8, type=int, help="WN layers per flow")
    add_run_args(group)
    return group


def add_run_args(parser) -> None:
    """How WaveGlow computes in this run (train.py, inference.py); not part of its config or checkpoints."""
    parser.add_argument("--wn-time-major", action="store_true",
                        help="WN on time-major activations, its convolutions as GEMMs (same parameters, same "
                             "outputs up to rounding; faster inference, slower training on an H200)")
    parser.add_argument("--wn-compile-block", action="store_true",
                        help="torch.compile each WN block whole, not only its gates as --torch-compile does: the "
                             "elementwise work between the convolutions fused, forward and backward (the first "
                             "batch compiles; not yet measured on a GPU)")


def config_from_args(args: argparse.Namespace) -> dict:
    """The recipe's config dict: ``WaveGlow(**config)``, stored as ``checkpoint['config']``."""
    return {
        "n_mel_channels": args.n_mel_channels,
        "n_flows": args.flows,
        "n_group": args.groups,
        "n_early_every": args.early_every,
        "n_early_size": args.early_size,
        "WN_config": {
            "n_layers": args.wn_layers,
            "kernel_size": args.wn_kernel_size,
            "n_channels": args.wn_channels,
        },
    }
