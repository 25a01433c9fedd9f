"""Wav reading and writing with errors that name the file and say what was expected."""

from __future__ import annotations

import os
import struct

import numpy as np
import soundfile
import torch

from common.checkpoint import atomic_write
from common.errors import AudioError

_INT16_SCALE = 32768.0
# Declared data sizes that mean "unknown length" (streamed writers, RF64 placeholders).
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def _error_detail(err: Exception) -> str:
    detail = getattr(err, "error_string", None) or str(err).splitlines()[0]
    return detail.rstrip(". ")


def _open_info(path: str):
    if not os.path.exists(path):
        raise AudioError(f"{path}: file not found (expected a wav file)")
    if not os.path.isfile(path):
        raise AudioError(f"{path}: not a regular file (expected a wav file)")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file (expected a wav file)")
    try:
        return soundfile.info(path)
    except (soundfile.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(f"{path}: not a readable audio file: {_error_detail(err)} "
                         f"(expected a wav file)") from None


def _wav_data_chunk(path: str) -> tuple[int, int] | None:
    """(offset, declared size) of a RIFF/RIFX file's data chunk; None when not applicable.

    libsndfile silently clamps a too-large data size to what is in the file, so a cut-off
    download would otherwise load as a shorter clip without any warning.
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[8:12] != b"WAVE" or header[:4] not in (b"RIFF", b"RIFX"):
            return None
        endian = "<" if header[:4] == b"RIFF" else ">"
        offset = 12
        while offset + 8 <= file_size:
            f.seek(offset)
            chunk_id, size = struct.unpack(endian + "4sI", f.read(8))
            if chunk_id == b"data":
                return offset + 8, size
            offset += 8 + size + (size & 1)
    return None


def _check_header(path: str, info, sampling_rate: int | None) -> None:
    if sampling_rate is not None and info.samplerate != sampling_rate:
        raise AudioError(f"{path}: sampling rate {info.samplerate} Hz "
                         f"(expected {sampling_rate} Hz; resample the file or pass --sampling-rate)")
    if info.channels != 1:
        raise AudioError(f"{path}: {info.channels} channels (expected mono)")
    if info.frames <= 0:
        raise AudioError(f"{path}: contains no audio samples (expected a non-empty wav file)")
    if info.format in ("WAV", "WAVEX"):
        chunk = _wav_data_chunk(path)
        if chunk is not None and chunk[1] not in _UNKNOWN_SIZES:
            offset, declared = chunk
            present = os.path.getsize(path) - offset
            if present < declared:
                raise AudioError(f"{path}: truncated: the data chunk holds {present} of "
                                 f"{declared} bytes (expected a complete wav file)")


def check_wav(path: str, sampling_rate: int | None = None) -> None:
    """The checks of :func:`load_wav` from the header and file size alone (no decoding)."""
    _check_header(path, _open_info(path), sampling_rate)


def load_wav(path: str, sampling_rate: int | None = None) -> torch.Tensor:
    """Read a mono wav as a float32 tensor ``[T]``; int16 samples are scaled by 1/32768.

    Float files are returned as stored (normally already in [-1, 1]).
    """
    info = _open_info(path)
    _check_header(path, info, sampling_rate)
    dtype = "int16" if info.subtype == "PCM_16" else "float32"
    try:
        with soundfile.SoundFile(path) as f:
            data = f.read(dtype=dtype)
    except (soundfile.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(f"{path}: cannot decode audio: {_error_detail(err)} "
                         f"(expected a wav file)") from None
    if data.shape[0] < info.frames:
        raise AudioError(f"{path}: truncated: read {data.shape[0]} of {info.frames} frames "
                         f"(expected a complete audio file)")
    if dtype == "int16":
        audio = torch.from_numpy(data.astype(np.float32) / _INT16_SCALE)
    else:
        audio = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        if not torch.isfinite(audio).all():
            raise AudioError(f"{path}: contains NaN or infinite samples (expected finite audio)")
    return audio


def save_wav(path: str, audio, sampling_rate: int) -> None:
    """Write 16-bit PCM; peak-normalise only if the signal would clip. Atomic (no partial file)."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float64).squeeze()
    if audio.ndim != 1:
        raise ValueError(f"save_wav expects mono audio, got shape {audio.shape}")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    samples = np.clip(np.round(audio * _INT16_SCALE), -32768, 32767).astype(np.int16)
    with atomic_write(path) as f:
        soundfile.write(f, samples, int(sampling_rate), subtype="PCM_16", format="WAV")
