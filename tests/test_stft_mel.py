"""STFT / mel front end against librosa and the recipe's own formulas."""

import librosa
import numpy as np
import pytest
import torch
from scipy.signal import get_window

from common.errors import AudioError
from common.mel import (TacotronSTFT, dynamic_range_compression, dynamic_range_decompression,
                        from_audio_config)
from common.stft import STFT, griffin_lim, window_sumsquare

SR = 22050


def chirp(n_samples: int) -> np.ndarray:
    t = np.arange(n_samples) / SR
    return (0.5 * np.sin(2 * np.pi * (60 * t + 2500 * t ** 2))).astype(np.float32)


def librosa_log_mel(x: np.ndarray) -> np.ndarray:
    mel_basis = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)
    magnitude = np.abs(librosa.stft(x, n_fft=1024, hop_length=256, win_length=1024, window="hann",
                                    center=True, pad_mode="reflect"))
    return np.log(np.maximum(mel_basis @ magnitude, 1e-5))


@pytest.fixture(scope="module")
def taco_stft():
    return TacotronSTFT()


@pytest.mark.parametrize("signal", ["chirp", "speech"])
def test_mel_matches_librosa(signal, taco_stft, speech_like):
    x = chirp(2 * SR) if signal == "chirp" else speech_like(2 * SR + 123, seed=1)
    mel = taco_stft.mel_spectrogram(torch.from_numpy(x)[None])
    expected = librosa_log_mel(x)
    assert mel.shape == (1, 80, expected.shape[1])
    assert mel.dtype == torch.float32
    np.testing.assert_allclose(mel[0].numpy(), expected, atol=1e-4, rtol=0)
    # a meaningful comparison: the signal spans a wide range of levels, not just the floor
    assert expected.max() - expected.min() > 8


@pytest.mark.parametrize("n_samples", [513, 1000, 8000, 22050, 22051, 256 * 40, 256 * 40 - 1])
def test_frame_count(n_samples, taco_stft, speech_like):
    mel = taco_stft.mel_spectrogram(torch.from_numpy(speech_like(n_samples))[None])
    assert mel.shape == (1, 80, 1 + n_samples // 256)


def test_known_frame_counts_of_the_reference(taco_stft):
    assert taco_stft.mel_spectrogram(torch.zeros(8000)).shape == (80, 32)
    assert taco_stft.mel_spectrogram(torch.zeros(22050)).shape == (80, 87)


def test_batch_equals_single_items(taco_stft, speech_like):
    batch = torch.stack([torch.from_numpy(speech_like(6000, seed=s)) for s in range(3)])
    mels = taco_stft.mel_spectrogram(batch)
    for i in range(3):
        torch.testing.assert_close(mels[i], taco_stft.mel_spectrogram(batch[i]))


def test_silence_sits_on_the_floor(taco_stft):
    mel = taco_stft.mel_spectrogram(torch.zeros(1, 4000))
    torch.testing.assert_close(mel, torch.full_like(mel, float(np.log(1e-5))))


def test_audio_out_of_range_is_refused(taco_stft):
    with pytest.raises(AudioError, match=r"outside \[-1, 1\].*max 1\.5"):
        taco_stft.mel_spectrogram(torch.tensor([[0.0, 1.5] * 1000]))
    with pytest.raises(AudioError, match=r"outside \[-1, 1\].*min -1\.5"):
        taco_stft.mel_spectrogram(torch.tensor([[0.0, -1.5] * 1000]))
    # the bounds themselves are in range (a full-scale int16 -32768 / 32768 is exactly -1)
    taco_stft.mel_spectrogram(torch.tensor([[-1.0, 1.0] * 1000]))


def test_no_buffers_in_state_dict():
    assert STFT().state_dict() == {}
    assert TacotronSTFT().state_dict() == {}
    assert len(list(TacotronSTFT().buffers())) > 0  # they exist and follow .to(device)


def test_stft_magnitude_matches_librosa(speech_like):
    x = speech_like(5000, seed=2)
    magnitude, phase = STFT().transform(torch.from_numpy(x)[None])
    spec = librosa.stft(x, n_fft=1024, hop_length=256, window="hann", center=True,
                        pad_mode="reflect")
    np.testing.assert_allclose(magnitude[0].numpy(), np.abs(spec), atol=2e-4, rtol=1e-4)
    loud = np.abs(spec) > 1e-2
    np.testing.assert_allclose(np.cos(phase[0].numpy()[loud] - np.angle(spec)[loud]), 1, atol=1e-4)


def test_round_trip_reconstructs_signal(speech_like):
    stft = STFT()
    x = torch.from_numpy(speech_like(10000, seed=3))[None]
    y = stft.inverse(*stft.transform(x))
    n_frames = 1 + 10000 // 256
    assert y.shape == (1, 1, (n_frames - 1) * 256)
    inner = slice(1024, y.shape[-1] - 1024)
    torch.testing.assert_close(y[0, 0, inner], x[0, inner], atol=1e-5, rtol=0)


def test_inverse_equals_the_recipes_pseudo_inverse_formulation():
    """Independent computation: conv_transpose1d with pinv of the real/imag Fourier basis.

    A smaller STFT (n_fft 256) keeps the pinv cheap; the formulation is the same for any size.
    """
    n_fft, hop, n_frames = 256, 64, 12
    fourier = np.fft.fft(np.eye(n_fft))[: n_fft // 2 + 1]
    basis = np.vstack([fourier.real, fourier.imag])
    scale = n_fft / hop
    window = get_window("hann", n_fft, fftbins=True)
    inverse_basis = torch.from_numpy(np.linalg.pinv(scale * basis).T[:, None, :] * window)
    gen = torch.Generator().manual_seed(0)
    magnitude = torch.rand(2, n_fft // 2 + 1, n_frames, generator=gen, dtype=torch.float64)
    phase = (torch.rand(magnitude.shape, generator=gen, dtype=torch.float64) - 0.5) * 2 * np.pi
    recombined = torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)
    expected = torch.nn.functional.conv_transpose1d(recombined, inverse_basis, stride=hop)
    wss = np.zeros(n_fft + hop * (n_frames - 1))
    for i in range(n_frames):
        wss[i * hop:i * hop + n_fft] += window ** 2
    expected = expected / torch.from_numpy(wss) * scale
    expected = expected[:, :, n_fft // 2:-n_fft // 2]
    actual = STFT(n_fft, hop, n_fft).inverse(magnitude.float(), phase.float())
    assert actual.shape == (2, 1, (n_frames - 1) * hop)
    torch.testing.assert_close(actual.double(), expected, atol=1e-5, rtol=1e-5)


def test_window_sumsquare_matches_a_loop():
    win = np.pad(get_window("hann", 800, fftbins=True), (112, 112)) ** 2
    expected = np.zeros(1024 + 200 * 6)
    for i in range(7):
        expected[i * 200:i * 200 + 1024] += win
    actual = window_sumsquare("hann", 7, hop_length=200, win_length=800, n_fft=1024)
    np.testing.assert_allclose(actual.numpy(), expected, atol=1e-12)


def test_float64_and_float32_paths_agree(speech_like):
    stft = STFT()
    x = torch.from_numpy(speech_like(5000, seed=4))[None]
    m32, _ = stft.transform(x)
    m64, _ = stft.transform(x.double())
    assert m32.dtype == torch.float32 and m64.dtype == torch.float64
    torch.testing.assert_close(m32.double(), m64, atol=1e-4, rtol=1e-4)


def test_too_short_audio_gives_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        STFT().transform(torch.zeros(1, 300))


def spectral_error(stft: STFT, target: torch.Tensor, audio: torch.Tensor) -> float:
    magnitude, _ = stft.transform(audio)
    return float((magnitude - target).norm() / target.norm())


def test_griffin_lim_error_falls_with_iterations(speech_like):
    stft = STFT()
    target, _ = stft.transform(torch.from_numpy(speech_like(8192, seed=5))[None])
    errors = [spectral_error(stft, target,
                             griffin_lim(target, stft, n_iters=n,
                                         generator=torch.Generator().manual_seed(0)))
              for n in (0, 5, 30)]
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.25


def test_griffin_lim_runs_exactly_n_iters_projections(speech_like):
    """Griffin-Lim: x_0 = ISTFT(|S| e^(i phi_0)), x_(k+1) = ISTFT(|S| e^(i angle STFT(x_k))).
    n_iters=k from a seed is k such projections of the n_iters=0 signal from the same seed."""
    stft = STFT(256, 64, 256)
    target, _ = stft.transform(torch.from_numpy(speech_like(2048, seed=8))[None])
    signal = griffin_lim(target, stft, n_iters=0, generator=torch.Generator().manual_seed(1))
    for n_iters in (1, 2, 3):
        _, angles = stft.transform(signal)
        signal = stft.inverse(target, angles).squeeze(1)
        actual = griffin_lim(target, stft, n_iters=n_iters, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(actual, signal, atol=1e-6, rtol=0)


def test_dynamic_range_compression_round_trip():
    x = torch.logspace(-5, 2, 50)
    torch.testing.assert_close(dynamic_range_decompression(dynamic_range_compression(x)), x)
    torch.testing.assert_close(dynamic_range_compression(x, C=2), torch.log(x * 2))
    clipped = dynamic_range_compression(torch.tensor([0.0, 1e-9, -3.0]))
    torch.testing.assert_close(clipped, torch.full((3,), float(np.log(1e-5))))


def test_mel_to_magnitude_reprojects(taco_stft, speech_like):
    log_mel = taco_stft.mel_spectrogram(torch.from_numpy(speech_like(11025, seed=6))[None])
    magnitude = taco_stft.mel_to_magnitude(log_mel)
    assert magnitude.shape == (1, 513, log_mel.shape[-1])
    assert magnitude.min() >= 0
    reprojected = torch.log(torch.clamp(taco_stft.mel_basis @ magnitude, min=1e-5))
    # mel bands carrying energy come back closely; the clamp only touches the faint ones
    loud = log_mel > -6
    assert loud.float().mean() > 0.3
    assert (reprojected - log_mel)[loud].abs().mean() < 0.05


def test_mel_to_magnitude_is_the_clamped_least_squares_inverse(taco_stft):
    """|S| ~ max(pinv(mel_basis) @ exp(log_mel), 0): negative least-squares values become 0 (no energy),
    not their absolute value."""
    log_mel = torch.from_numpy(np.random.default_rng(9).uniform(-8, 1, (1, 80, 6)).astype(np.float32))
    pinv = np.linalg.pinv(librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0))
    unclamped = pinv.astype(np.float64) @ np.exp(log_mel[0].numpy().astype(np.float64))
    assert (unclamped < -1e-3).any()  # the case that matters is present
    np.testing.assert_allclose(taco_stft.mel_to_magnitude(log_mel)[0].numpy(), np.maximum(unclamped, 0),
                               atol=1e-4, rtol=1e-4)


def test_griffin_lim_from_mel_length_and_content(taco_stft, speech_like):
    log_mel = taco_stft.mel_spectrogram(torch.from_numpy(speech_like(8192, seed=7))[None])
    audio = taco_stft.griffin_lim_from_mel(log_mel, n_iters=30,
                                           generator=torch.Generator().manual_seed(0))
    assert audio.shape == (1, log_mel.shape[-1] * 256)
    assert torch.isfinite(audio).all()
    resynth = taco_stft.mel_spectrogram(audio.clamp(-1, 1))[:, :, :log_mel.shape[-1]]
    loud = log_mel > -6
    assert (resynth - log_mel)[loud].abs().mean() < 0.3


def test_from_audio_config():
    audio = {"max_wav_value": 32768.0, "sampling_rate": 16000, "filter_length": 512,
             "hop_length": 128, "win_length": 400, "mel_fmin": 50.0, "mel_fmax": 7000.0,
             "n_mel_channels": 40}
    stft = from_audio_config(audio)
    assert stft.mel_basis.shape == (40, 257)
    assert (stft.stft_fn.filter_length, stft.stft_fn.hop_length, stft.stft_fn.win_length) == \
        (512, 128, 400)
    expected = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=50.0, fmax=7000.0)
    np.testing.assert_allclose(stft.mel_basis.numpy(), expected)
    assert TacotronSTFT.from_audio_config({}).mel_basis.shape == (80, 513)
