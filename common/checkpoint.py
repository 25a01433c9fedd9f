"""Checkpoint files: atomic writes, safe loads, and recognising NVIDIA's formats.

Formats we read (reference-dle d.6): ours (``format_version`` key), v1.0 (exactly ``epoch``,
``config``, ``state_dict``; possibly FP16 tensors) and NGC/later DLE files (extra optimizer, amp,
scaler or RNG keys). Any of them may carry DDP ``module.`` prefixes.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import tempfile
from collections import OrderedDict
from typing import IO, Iterator

import torch

from common.errors import CheckpointError

MODEL_NAMES = ("Tacotron2", "WaveGlow")

# Read once at import (single-threaded then): os.umask can only be read by setting it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(dirname: str) -> None:
    """Make a rename durable; not possible on every platform, so best effort."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[IO[bytes]]:
    """Open a temp file beside ``path`` for binary writing; on success it replaces ``path``.

    An exception (or Ctrl-C) inside the block removes the temp file and leaves ``path`` as it was,
    so a reader never sees a half-written file.
    """
    path = os.fspath(path)
    dirname = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=dirname, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(dirname)


def atomic_copy(src: str, dst: str) -> None:
    """Copy a file so that ``dst`` is either the old file or the complete new one."""
    with open(src, "rb") as fin, atomic_write(dst) as fout:
        shutil.copyfileobj(fin, fout, length=16 * 1024 * 1024)


def link_or_copy(src: str, dst: str) -> None:
    """Make ``dst`` name the same data as ``src``, atomically: a hard link where the file system
    allows (a WaveGlow checkpoint is gigabytes), else a copy. Unlike the recipe's symlink, the
    result survives copying the folder elsewhere."""
    dirname = os.path.dirname(os.path.abspath(dst))
    tmp = os.path.join(dirname, f".{os.path.basename(dst)}.{os.getpid()}.link")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        atomic_copy(src, dst)
        return
    _fsync_dir(dirname)


def save_checkpoint(state: dict, path: str) -> None:
    """``torch.save`` atomically: an interrupted save never leaves a file at ``path``."""
    with atomic_write(path) as f:
        torch.save(state, f)


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """Load a checkpoint dict with ``weights_only=True`` (no arbitrary unpickling)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: not a regular file (expected a checkpoint file)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
        if unsafe:
            raise CheckpointError(
                f"{path}: holds a pickled {unsafe.group(1)}; refusing to unpickle it (expected "
                f"only tensors, numbers, strings and containers: a weights-only checkpoint)") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*$", str(err), re.M)
        detail = detail.group(1) if detail else str(err).splitlines()[0]
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({detail})") from None
    except Exception as err:  # corrupt bytes surface as almost any exception type
        message = str(err).splitlines()[0].split(". ")[0] if str(err) else ""
        detail = f"{type(err).__name__}: {message}" if message else type(err).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({detail})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: holds a {type(ckpt).__name__}, "
                              f"expected a checkpoint dict with a 'state_dict'")
    if "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: has no 'state_dict' key "
                              f"(keys: {', '.join(map(str, ckpt))})")
    return ckpt


def strip_module_prefix(state_dict: dict) -> "OrderedDict[str, torch.Tensor]":
    """Remove a leading ``module.1.`` or ``module.`` (DDP / hub wrappers) from every key."""
    stripped = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith("module.1."):
            key = key[len("module.1."):]
        elif key.startswith("module."):
            key = key[len("module."):]
        stripped[key] = value
    return stripped


def checkpoint_format(ckpt: dict) -> str:
    """``'ours'``, ``'v1.0'`` (epoch/config/state_dict only) or ``'ngc'`` (any other DLE file)."""
    if "state_dict" not in ckpt:
        raise CheckpointError("checkpoint has no 'state_dict' key")
    if "format_version" in ckpt:
        return "ours"
    if set(ckpt) == {"epoch", "config", "state_dict"}:
        return "v1.0"
    return "ngc"


def model_name_of_state_dict(state_dict: dict) -> str | None:
    """``'Tacotron2'``, ``'WaveGlow'`` or None, judged from parameter names."""
    keys = set(strip_module_prefix(state_dict))
    if "embedding.weight" in keys and any(k.startswith("decoder.") for k in keys):
        return "Tacotron2"
    if "upsample.weight" in keys and any(k.startswith("WN.") for k in keys):
        return "WaveGlow"
    return None


def state_dict_to_float32(state_dict: dict) -> "OrderedDict[str, torch.Tensor]":
    """Cast floating tensors (v1.0 ``--fp16-run`` files hold FP16) to float32; ints untouched."""
    return OrderedDict(
        (key, value.float() if torch.is_tensor(value) and value.is_floating_point() else value)
        for key, value in state_dict.items())


def load_model_checkpoint(path: str, expected_model: str, map_location="cpu"):
    """Load a checkpoint of ``expected_model`` -> ``(ckpt, clean float32 state_dict)``."""
    ckpt = load_checkpoint(path, map_location=map_location)
    state_dict = ckpt["state_dict"]
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, "
                              f"expected a dict of tensors")
    state_dict = state_dict_to_float32(strip_module_prefix(state_dict))
    found = model_name_of_state_dict(state_dict)
    if found is None:
        raise CheckpointError(f"{path}: state_dict is neither a Tacotron2 nor a WaveGlow model "
                              f"(expected {expected_model})")
    if found != expected_model:
        raise CheckpointError(f"{path}: is a {found} checkpoint, expected {expected_model}")
    return ckpt, state_dict
