"""Removes WaveGlow's constant bias tone by spectral subtraction (reference-dle e.3)."""

from __future__ import annotations

import torch
from torch import nn

from common.stft import STFT

# The recipe estimates the bias from 88 mel frames (~1 s); only the first STFT frame is kept.
_BIAS_MEL_FRAMES = 88


class Denoiser(nn.Module):
    """Subtract ``strength`` times the magnitude spectrum WaveGlow produces for silence.

    The bias spectrum is a non-persistent buffer (never in checkpoints); the WaveGlow model is
    used once at construction and not kept.
    """

    def __init__(self, waveglow: nn.Module, filter_length: int = 1024, n_overlap: int = 4,
                 win_length: int = 1024, mode: str = "zeros"):
        super().__init__()
        param = next(waveglow.parameters())
        self.stft = STFT(filter_length, filter_length // n_overlap, win_length).to(param.device)
        n_mel_channels = waveglow.upsample.in_channels
        shape = (1, n_mel_channels, _BIAS_MEL_FRAMES)
        if mode == "zeros":
            mel = torch.zeros(shape, dtype=param.dtype, device=param.device)
        elif mode == "normal":
            mel = torch.randn(shape, dtype=param.dtype, device=param.device)
        else:
            raise ValueError(f"Denoiser mode must be 'zeros' or 'normal', got {mode!r}")
        with torch.no_grad():
            bias_audio = waveglow.infer(mel, sigma=0.0).float()
            bias_spec, _ = self.stft.transform(bias_audio)
        self.register_buffer("bias_spec", bias_spec[:, :, :1].clone(), persistent=False)

    def forward(self, audio: torch.Tensor, strength: float = 0.1) -> torch.Tensor:
        """``audio [B, T]`` -> denoised ``[B, 1, (T // hop) * hop]`` float32."""
        magnitude, phase = self.stft.transform(audio.float())
        denoised = torch.clamp(magnitude - self.bias_spec * strength, min=0.0)
        return self.stft.inverse(denoised, phase)
