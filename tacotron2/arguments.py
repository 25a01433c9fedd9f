"""Tacotron 2 command-line flags (reference-dle b.2, same names and defaults) and the config dict."""
import argparse
from typing import Any

from common.arguments import add_bool_flag
from tacotron2.text import symbols

# Constructor kwargs of `Tacotron2` that make up the recipe's config dict (reference-dle c.1).
CONFIG_KEYS = (
    "mask_padding", "n_mel_channels", "n_symbols", "symbols_embedding_dim", "encoder_kernel_size",
    "encoder_n_convolutions", "encoder_embedding_dim", "attention_rnn_dim", "attention_dim",
    "attention_location_n_filters", "attention_location_kernel_size", "n_frames_per_step",
    "decoder_rnn_dim", "prenet_dim", "max_decoder_steps", "gate_threshold", "p_attention_dropout",
    "p_decoder_dropout", "postnet_embedding_dim", "postnet_kernel_size", "postnet_n_convolutions",
    "decoder_no_early_stopping",
)


def _has_flag(parser: Any, name: str) -> bool:
    # train.py may already own a flag (the recipe lists some data flags under train.py)
    return name in parser._option_string_actions


def _add(parser: Any, name: str, **kwargs: Any) -> None:
    if not _has_flag(parser, name):
        parser.add_argument(name, **kwargs)


def _add_bool(parser: Any, name: str, **kwargs: Any) -> None:
    if not _has_flag(parser, name):
        add_bool_flag(parser, name, **kwargs)


def add_model_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the model flags and the Tacotron 2 data flags; flags already on `parser` are skipped."""
    model = parser.add_argument_group("Tacotron 2 model")
    _add_bool(model, "--mask-padding", default=False, help="mask padded frames in the outputs")
    _add(model, "--n-mel-channels", default=80, type=int, help="number of mel bins")
    _add(model, "--n-symbols", default=None, type=int, help="number of symbols (default: the symbol set's 148)")
    _add(model, "--symbols-embedding-dim", default=512, type=int, help="symbol embedding size")
    _add(model, "--encoder-kernel-size", default=5, type=int, help="encoder convolution kernel size")
    _add(model, "--encoder-n-convolutions", default=3, type=int, help="number of encoder convolutions")
    _add(model, "--encoder-embedding-dim", default=512, type=int, help="encoder output size")
    _add(model, "--n-frames-per-step", default=1, type=int, choices=[1],
         help="mel frames per decoder step (only 1 is supported)")
    _add(model, "--decoder-rnn-dim", default=1024, type=int, help="decoder LSTM size")
    _add(model, "--prenet-dim", default=256, type=int, help="prenet layer size")
    _add(model, "--max-decoder-steps", default=2000, type=int, help="maximum mel frames at inference")
    _add(model, "--gate-threshold", default=0.5, type=float, help="stop-token probability that ends decoding")
    _add(model, "--p-attention-dropout", default=0.1, type=float, help="dropout on the attention LSTM output")
    _add(model, "--p-decoder-dropout", default=0.1, type=float, help="dropout on the decoder LSTM output")
    _add(model, "--decoder-no-early-stopping", action="store_true",
         help="always decode --max-decoder-steps frames")
    _add(model, "--attention-rnn-dim", default=1024, type=int, help="attention LSTM size")
    _add(model, "--attention-dim", default=128, type=int, help="attention hidden size")
    _add(model, "--attention-location-n-filters", default=32, type=int, help="location filters")
    _add(model, "--attention-location-kernel-size", default=31, type=int, help="location kernel size")
    _add(model, "--postnet-embedding-dim", default=512, type=int, help="postnet channels")
    _add(model, "--postnet-kernel-size", default=5, type=int, help="postnet kernel size")
    _add(model, "--postnet-n-convolutions", default=5, type=int, help="number of postnet convolutions")
    _add(model, "--disable-uniform-initialize-bn-weight", action="store_true",
         help="keep PyTorch's BatchNorm weight init instead of the recipe's U(0, 1)")

    data = parser.add_argument_group("Tacotron 2 data")
    _add_bool(data, "--load-mel-from-disk", default=False,
              help="filelists name precomputed mel tensors (.pt or .npy, [n_mel, T]) instead of wavs")
    _add(data, "--text-cleaners", nargs="*", default=["english_cleaners"], type=str,
         help="text cleaners applied to transcripts")

    training = parser.add_argument_group("Tacotron 2 training (not part of the recipe)")
    _add(training, "--guided-attn-weight", default=0.0, type=float,
         help="weight of the guided attention loss (Tachibana et al. 2017); 0 keeps the recipe's loss")
    _add(training, "--guided-attn-sigma", default=0.2, type=float,
         help="width of the guided attention loss's diagonal band, as a fraction of the utterance")
    return parser


def config_from_args(args: argparse.Namespace) -> dict:
    """The recipe's config dict (stored as checkpoint['config']).

    The BatchNorm init choice is added only when it differs from the default, so a default config
    has exactly NVIDIA's keys and their constructor can read ours.
    """
    config = {key: getattr(args, key) for key in CONFIG_KEYS if key != "n_symbols"}
    n_symbols = getattr(args, "n_symbols", None)
    if n_symbols is None:
        n_symbols = len(symbols)
    config["n_symbols"] = n_symbols
    config = {key: config[key] for key in CONFIG_KEYS}
    if getattr(args, "disable_uniform_initialize_bn_weight", False):
        config["uniform_initialize_bn_weight"] = False
    return config
