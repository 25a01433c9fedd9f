"""Shared test fixtures; also puts the repository root on sys.path so `import common` works."""

import os
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def make_speech_like(n_samples: int, sampling_rate: int = 22050, seed: int = 0) -> np.ndarray:
    """A voiced-speech stand-in in [-1, 1]: harmonics of a gliding f0, syllable envelope, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sampling_rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 1.5 * t)  # intonation
    phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30) if k * f0.max() < sampling_rate / 2)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) ** 2 / 4  # ~4 syllables/s, silent gaps
    audio = 0.3 * envelope * voiced + 0.01 * rng.standard_normal(n_samples)
    return (audio / max(1.0, np.abs(audio).max() / 0.95)).astype(np.float32)


@pytest.fixture
def speech_like():
    """``speech_like(n_samples, sampling_rate=22050, seed=0) -> float32 array``."""
    return make_speech_like


@pytest.fixture
def tmp_wav(tmp_path):
    """Write a wav into tmp_path: ``tmp_wav(name, audio=None, n_samples=4410, sampling_rate=22050,
    channels=1, subtype='PCM_16') -> path``; ``audio`` (float in [-1, 1]) defaults to speech-like."""
    import soundfile

    def write(name: str = "clip.wav", audio=None, n_samples: int = 4410,
              sampling_rate: int = 22050, channels: int = 1, subtype: str = "PCM_16") -> str:
        if audio is None:
            audio = make_speech_like(n_samples, sampling_rate)
            if channels > 1:
                audio = np.stack([audio] * channels, axis=1)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), np.asarray(audio), sampling_rate, subtype=subtype)
        return str(path)

    return write


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: a second intra-op thread only adds hand-off overhead (far more on a busy
    machine), and oneDNN compiles kernels for every new shape, which takes longer than running them."""
    import torch

    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn
