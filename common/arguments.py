"""Command-line helpers shared by train.py, inference.py and the model packages."""

from __future__ import annotations

import argparse
import json
from typing import Any

from common.errors import UserError, first_line

DEFAULT_MEL_FMAX = 8000.0  # the recipe's; a sampling rate below twice this needs a lower --mel-fmax
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def str2bool(s: str | bool) -> bool:
    """Parse a command-line boolean; unlike ``type=bool`` the string "False" is False."""
    if isinstance(s, bool):
        return s
    value = str(s).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false, yes/no, 1/0), got {s!r}")


def add_bool_flag(parser_or_group: Any, *names: str, default: bool = False,
                  help: str | None = None, **kwargs: Any) -> argparse.Action:
    """Add a flag usable as ``--flag``, ``--flag=True``, ``--flag False`` or ``--flag=false``.

    The recipe's scripts pass both bare switches and ``--cudnn-benchmark=True``, so both must work.
    """
    return parser_or_group.add_argument(
        *names, nargs="?", const=True, default=default, type=str2bool,
        metavar="BOOL", help=help, **kwargs)


def add_audio_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Audio/STFT flags of the recipe (names and defaults of reference-dle b.1)."""
    group = parser.add_argument_group("audio parameters")
    group.add_argument("--max-wav-value", default=32768.0, type=float,
                       help="maximum audiowave value (int16 samples are divided by this)")
    group.add_argument("--sampling-rate", default=22050, type=int,
                       help="sampling rate; every wav must have it")
    group.add_argument("--filter-length", default=1024, type=int, help="STFT size (n_fft)")
    group.add_argument("--hop-length", default=256, type=int, help="STFT hop length")
    group.add_argument("--win-length", default=1024, type=int, help="STFT window length")
    group.add_argument("--mel-fmin", default=0.0, type=float, help="minimum mel frequency")
    group.add_argument("--mel-fmax", default=DEFAULT_MEL_FMAX, type=float, help="maximum mel frequency")
    return group


def check_audio_args(args: argparse.Namespace) -> None:
    """UserError for an audio flags' combination that cannot work: mel filters above the Nyquist
    frequency are empty (librosa only warns), so a lower --sampling-rate needs a lower --mel-fmax."""
    nyquist = args.sampling_rate / 2
    if args.mel_fmax > nyquist:
        raise UserError(f"--mel-fmax {args.mel_fmax:g} is above half of --sampling-rate {args.sampling_rate} "
                        f"({nyquist:g} Hz): the mel channels above it would be empty (expected --mel-fmax "
                        f"{nyquist:g} or lower)")
    if not 0 <= args.mel_fmin < args.mel_fmax:
        raise UserError(f"--mel-fmin {args.mel_fmin:g}: expected at least 0 and below --mel-fmax {args.mel_fmax:g}")


_AUDIO_KEYS = ("max_wav_value", "sampling_rate", "filter_length", "hop_length", "win_length",
               "mel_fmin", "mel_fmax")


def audio_config_from_args(args: argparse.Namespace) -> dict:
    """The audio/mel parameters stored in checkpoints under ``'audio'``."""
    config = {key: getattr(args, key) for key in _AUDIO_KEYS}
    if getattr(args, "n_mel_channels", None) is not None:
        config["n_mel_channels"] = args.n_mel_channels
    return config


def config_file_defaults(parser: argparse.ArgumentParser, path: str) -> dict:
    """--config-file: ``{"audio": {"mel-fmax": 7000.0}, ...}`` -> {dest: value}; group names are only
    grouping, every key must be an optional flag of this parser (required ones stay on the command
    line), and each value is checked as argparse would check it on the command line."""
    try:
        with open(path, encoding="utf-8") as f:
            groups = json.load(f)
    except (OSError, ValueError) as err:
        parser.error(f"--config-file {path}: cannot read it as JSON ({first_line(err)})")
    if not isinstance(groups, dict) or not all(isinstance(group, dict) for group in groups.values()):
        parser.error(f"--config-file {path}: expected {{group: {{flag-name: value}}}}")
    defaults = {}
    for group_name, group in groups.items():
        for name, value in group.items():
            where = f"--config-file {path}: {group_name}.{name}"
            action = parser._option_string_actions.get("--" + name.lstrip("-").replace("_", "-"))
            if action is None or action.dest in ("help", "config_file"):
                parser.error(f"{where}: not a flag of {parser.prog}")
            if action.required:
                parser.error(f"{where}: give {action.option_strings[0]} on the command line")
            try:
                defaults[action.dest] = _config_value(action, value)
            except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
                parser.error(f"{where}: {first_line(err)}")
    return defaults


def _config_value(action: argparse.Action, value: Any) -> Any:
    """A JSON value as the flag's value, checked as the command line would check its text: switches
    take true/false, numbers numbers (not booleans), text flags text (a number becomes its text),
    list flags lists (or a string of space-separated items); null only where the default is None."""
    if value is None:
        if action.default is not None:
            raise TypeError("null: expected a value")
        return None
    if action.nargs == 0:  # store_true / store_false
        flag = str2bool(value) if isinstance(value, str) else value
        if not isinstance(flag, bool):
            raise TypeError(f"{value!r}: expected true or false")
        return flag if action.const is True else not flag
    if action.nargs in ("*", "+") or isinstance(action.nargs, int):
        items = value.split() if isinstance(value, str) else value
        if not isinstance(items, list):
            raise TypeError(f"{value!r}: expected a list")
        if (action.nargs == "+" and not items) or (isinstance(action.nargs, int) and len(items) != action.nargs):
            raise ValueError(f"{value!r}: expected {action.nargs if action.nargs != '+' else 'at least 1'} item(s)")
        return [_config_scalar(action, item) for item in items]
    return _config_scalar(action, value)


def _config_scalar(action: argparse.Action, value: Any) -> Any:
    if isinstance(value, (list, dict)):
        raise TypeError(f"{value!r}: expected a single value")
    kind = action.type
    if kind is str2bool:
        if not isinstance(value, (bool, str)):
            raise TypeError(f"{value!r}: expected true or false")
        value = str2bool(value)
    elif kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (
                kind is int and isinstance(value, float)):
            raise TypeError(f"{value!r}: expected {'an integer' if kind is int else 'a number'}")
        value = kind(value)
    elif kind is None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(f"{value!r}: expected text")
        value = str(value)
    else:
        if not isinstance(value, str):
            raise TypeError(f"{value!r}: expected text")
        value = kind(value)
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, action.choices))}")
    return value
