"""The recipe's log-mel front end (``TacotronSTFT``), numerically equal to NVIDIA's.

``mel = log(clamp(mel_basis @ |STFT(audio)|, 1e-5))`` with librosa's Slaney mel filters,
magnitude (power 1) spectra and natural log (reference-dle c.4).
"""

from __future__ import annotations

import contextlib
import json
import os

import librosa
import numpy as np
import torch
from torch import nn

from common.checkpoint import atomic_write
from common.errors import AudioError
from common.stft import STFT, griffin_lim


def dynamic_range_compression(x: torch.Tensor, C: float = 1,
                              clip_val: float = 1e-5) -> torch.Tensor:
    """``log(clamp(x, clip_val) * C)``."""
    return torch.log(torch.clamp(x, min=clip_val) * C)


def dynamic_range_decompression(x: torch.Tensor, C: float = 1) -> torch.Tensor:
    """Inverse of :func:`dynamic_range_compression` (above the clip value): ``exp(x) / C``."""
    return torch.exp(x) / C


class TacotronSTFT(nn.Module):
    """Audio ``[B, T]`` in [-1, 1] -> log-mel ``[B, n_mel_channels, 1 + T // hop]``."""

    def __init__(self, filter_length: int = 1024, hop_length: int = 256, win_length: int = 1024,
                 n_mel_channels: int = 80, sampling_rate: int = 22050, mel_fmin: float = 0.0,
                 mel_fmax: float | None = 8000.0):
        super().__init__()
        self.n_mel_channels = n_mel_channels
        self.sampling_rate = sampling_rate
        self.hop_length = hop_length
        self.stft_fn = STFT(filter_length, hop_length, win_length)
        mel_basis = librosa.filters.mel(sr=sampling_rate, n_fft=filter_length,
                                        n_mels=n_mel_channels, fmin=mel_fmin, fmax=mel_fmax)
        self.register_buffer("mel_basis", torch.from_numpy(mel_basis).float(), persistent=False)
        # For Griffin-Lim synthesis from a mel: least-squares inverse of the filter bank.
        # (numpy: torch.linalg.pinv can take seconds on its first call on a busy host)
        mel_basis_pinv = np.linalg.pinv(mel_basis.astype(np.float64))
        self.register_buffer("mel_basis_pinv", torch.from_numpy(mel_basis_pinv).float(),
                             persistent=False)

    @classmethod
    def from_audio_config(cls, audio: dict) -> "TacotronSTFT":
        """Build from a checkpoint's ``'audio'`` dict (extra keys such as max_wav_value ignored)."""
        keys = ("filter_length", "hop_length", "win_length", "n_mel_channels", "sampling_rate",
                "mel_fmin", "mel_fmax")
        return cls(**{key: audio[key] for key in keys if key in audio})

    def spectral_normalize(self, magnitudes: torch.Tensor) -> torch.Tensor:
        return dynamic_range_compression(magnitudes)

    def spectral_de_normalize(self, magnitudes: torch.Tensor) -> torch.Tensor:
        return dynamic_range_decompression(magnitudes)

    def mel_spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio [B, T]`` in [-1, 1] -> ``[B, n_mel, 1 + T // hop]`` (``[T]`` -> 2-D)."""
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        low, high = float(audio.min()), float(audio.max())
        if low < -1 or high > 1:
            raise AudioError(f"audio samples outside [-1, 1] (min {low:.4g}, max {high:.4g}) "
                             f"(expected samples scaled by 1/max_wav_value)")
        # STFT in float64: in float32 the window's rounding leaks ~1e-7 of a loud frame into
        # quiet bands, and the log magnifies that (0.005 off librosa on a pure chirp).
        magnitudes, _ = self.stft_fn.transform(audio.double())
        mel = self.spectral_normalize(torch.matmul(self.mel_basis, magnitudes.float()))
        return mel.squeeze(0) if squeeze else mel

    def mel_to_magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``[B, n_mel, N]`` -> a non-negative linear magnitude ``[B, F, N]``."""
        mel = self.spectral_de_normalize(log_mel.float())
        return torch.clamp(torch.matmul(self.mel_basis_pinv, mel), min=0)

    def griffin_lim_from_mel(self, log_mel: torch.Tensor, n_iters: int = 30,
                             generator: torch.Generator | None = None) -> torch.Tensor:
        """Log-mel ``[B, n_mel, N]`` -> audio ``[B, N * hop]`` (no vocoder needed)."""
        magnitude = self.mel_to_magnitude(log_mel)
        # One repeated frame so the output has N * hop samples, the length WaveGlow gives.
        magnitude = torch.cat([magnitude, magnitude[:, :, -1:]], dim=2)
        return griffin_lim(magnitude, self.stft_fn, n_iters=n_iters, generator=generator)


def from_audio_config(audio: dict) -> TacotronSTFT:
    """Module-level alias of :meth:`TacotronSTFT.from_audio_config`."""
    return TacotronSTFT.from_audio_config(audio)


# Saved mels (preprocess_audio2mel.py) are bare tensors, as the recipe's: the settings they were
# made with live beside them, one file per folder, so that training with --load-mel-from-disk or a
# rerun with other settings can tell instead of silently mixing two kinds of mel.
MEL_SETTINGS_FILE = "mel_settings.json"
MEL_SUFFIXES = (".pt", ".npy")  # saved mel files: torch tensors or numpy arrays
MEL_SETTINGS_KEYS = ("sampling_rate", "filter_length", "hop_length", "win_length", "n_mel_channels",
                     "mel_fmin", "mel_fmax")


def read_mel_settings(folder: str) -> dict | None:
    """The settings saved beside a folder's mels, or None when there is no (readable) file."""
    try:
        with open(os.path.join(folder, MEL_SETTINGS_FILE), encoding="utf-8") as f:
            settings = json.load(f)
    except (OSError, ValueError):
        return None
    return settings if isinstance(settings, dict) else None


def write_mel_settings(folder: str, settings: dict) -> None:
    with atomic_write(os.path.join(folder, MEL_SETTINGS_FILE)) as f:
        f.write(json.dumps({key: settings[key] for key in MEL_SETTINGS_KEYS}, indent=1).encode())


def remove_mel_settings(folder: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(folder, MEL_SETTINGS_FILE))


def mel_settings_differences(folder: str, settings: dict) -> str | None:
    """How the folder's saved mel settings differ from ``settings`` (flag = saved value, ...), or None
    when they agree or the folder says nothing (mels made elsewhere, e.g. by the recipe)."""
    saved = read_mel_settings(folder)
    if saved is None:
        return None
    differ = [f"--{key.replace('_', '-')} {saved[key]}" for key in MEL_SETTINGS_KEYS
              if key in saved and saved[key] != settings[key]]
    return ", ".join(differ) or None
