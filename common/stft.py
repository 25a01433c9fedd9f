"""Short-time Fourier transform as in the recipe (reference-dle c.4), plus Griffin-Lim.

Forward: reflect padding by n_fft/2, periodic window zero-padded to n_fft, hop ``hop_length``,
so ``frames = 1 + T // hop``. Inverse: per-frame inverse FFT, windowed overlap-add, divided by the
window sum-square where it is not ~0, with n_fft/2 trimmed from both ends (``T' = (frames-1)*hop``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import get_window
from torch import nn


def analysis_window(window: str | torch.Tensor, win_length: int, n_fft: int) -> torch.Tensor:
    """A periodic (``fftbins=True``) window of ``win_length`` zero-padded to ``n_fft``, centred."""
    if isinstance(window, torch.Tensor):
        w = window.detach().double()  # stays on its device: no host sync in inverse()
    else:
        w = torch.from_numpy(get_window(window, win_length, fftbins=True).astype(np.float64))
    if w.numel() > n_fft:
        raise ValueError(f"win_length {w.numel()} is larger than filter_length {n_fft}")
    left = (n_fft - w.numel()) // 2
    return F.pad(w, (left, n_fft - w.numel() - left))


def window_sumsquare(window: str | torch.Tensor, n_frames: int, hop_length: int = 256,
                     win_length: int = 1024, n_fft: int = 1024) -> torch.Tensor:
    """Sum of squared, hop-shifted windows over ``n_frames``: ``[n_fft + hop * (n_frames - 1)]``.

    It is the overlap-add gain that the inverse STFT divides out.
    """
    w2 = analysis_window(window, win_length, n_fft) ** 2
    length = n_fft + hop_length * (n_frames - 1)
    frames = w2[None, :, None].expand(1, n_fft, n_frames)
    return F.fold(frames, output_size=(1, length), kernel_size=(1, n_fft),
                  stride=(1, hop_length)).reshape(length)


class STFT(nn.Module):
    """Magnitude/phase STFT with an overlap-add inverse; bases are not part of the state dict."""

    def __init__(self, filter_length: int = 1024, hop_length: int = 256, win_length: int = 1024,
                 window: str = "hann"):
        super().__init__()
        self.filter_length = filter_length
        self.hop_length = hop_length
        self.win_length = win_length
        self.window_name = window
        self.register_buffer("window", analysis_window(window, win_length, filter_length).float(),
                             persistent=False)

    @property
    def n_freqs(self) -> int:
        return self.filter_length // 2 + 1

    def transform(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio [B, T]`` -> ``(magnitude, phase)``, each ``[B, n_fft/2 + 1, 1 + T // hop]``.

        Computed in float32, or float64 when the input is float64.
        """
        if audio.dim() != 2:
            raise ValueError(f"STFT.transform expects audio [B, T], got shape {tuple(audio.shape)}")
        pad = self.filter_length // 2
        if audio.size(1) <= pad:
            raise ValueError(f"audio of {audio.size(1)} samples is too short for an STFT with "
                             f"filter_length {self.filter_length} (need more than {pad})")
        # float64 input is kept (the mel front end asks for it); anything else runs in float32,
        # never half precision, which is too coarse for an FFT.
        if audio.dtype == torch.float64:
            # Rebuilt rather than cast: the float32 buffer is itself 3e-8 off, which matters here.
            window = analysis_window(self.window_name, self.win_length, self.filter_length)
            window = window.to(audio.device)
        else:
            audio, window = audio.float(), self.window.float()
        spec = torch.stft(audio, n_fft=self.filter_length, hop_length=self.hop_length,
                          win_length=self.filter_length, window=window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True,
                          return_complex=True)
        return spec.abs(), spec.angle()

    def inverse(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """``(magnitude, phase) [B, F, N]`` -> ``audio [B, 1, (N - 1) * hop]``."""
        magnitude, phase = magnitude.float(), phase.float()
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        frames = torch.fft.irfft(spec, n=self.filter_length, dim=1) * self.window[:, None]
        n_frames = frames.size(-1)
        length = self.filter_length + self.hop_length * (n_frames - 1)
        audio = F.fold(frames, output_size=(1, length), kernel_size=(1, self.filter_length),
                       stride=(1, self.hop_length)).reshape(frames.size(0), 1, length)
        wss = window_sumsquare(self.window, n_frames, self.hop_length, self.filter_length,
                               self.filter_length).to(audio)
        # Leave samples alone where no window reaches (the recipe's `tiny` threshold).
        nonzero = wss > torch.finfo(torch.float32).tiny
        audio = torch.where(nonzero, audio / torch.where(nonzero, wss, torch.ones_like(wss)), audio)
        pad = self.filter_length // 2
        return audio[:, :, pad:length - pad]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Analysis then synthesis with the signal's own phase."""
        return self.inverse(*self.transform(audio))


@torch.no_grad()
def griffin_lim(magnitudes: torch.Tensor, stft: STFT, n_iters: int = 30,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Estimate a phase for ``magnitudes [B, F, N]`` -> ``audio [B, (N - 1) * hop]``."""
    magnitudes = magnitudes.float()
    angles = 2 * np.pi * torch.rand(magnitudes.shape, generator=generator,
                                    device="cpu").to(magnitudes.device)
    signal = stft.inverse(magnitudes, angles).squeeze(1)
    for _ in range(n_iters):
        _, angles = stft.transform(signal)
        signal = stft.inverse(magnitudes, angles).squeeze(1)
    return signal
