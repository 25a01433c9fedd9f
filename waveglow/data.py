"""WaveGlow data: random fixed-length audio crops with their log-mels (reference-dle d.4)."""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor

from common.audio import load_wav
from common.errors import DataError
from common.filelists import FileEntry, load_filelist, raise_problems, wav_problems
from common.mel import TacotronSTFT
from common.run_state import mixed_seed


class MelAudioDataset(torch.utils.data.Dataset):
    """Items ``(mel [n_mel_channels, 1 + segment_length // hop], audio [segment_length])``.

    Only the path column of the filelist is used. Each access crops a random segment: drawn from the
    torch RNG, or after :meth:`set_epoch` from the epoch's seed and the item's index; clips shorter
    than a segment are zero-padded at the end, never dropped. Unless ``check=False``, every wav
    header is checked up front and all problems are raised together in one ``DataError``.
    """

    def __init__(self, filelist: str, dataset_path: str = "", segment_length: int = 4000, *,
                 sampling_rate: int = 22050, filter_length: int = 1024, hop_length: int = 256,
                 win_length: int = 1024, n_mel_channels: int = 80, mel_fmin: float = 0.0,
                 mel_fmax: float = 8000.0, check: bool = True):
        if segment_length <= filter_length // 2:
            raise DataError(f"--segment-length {segment_length} is too short for an STFT with "
                            f"filter_length {filter_length} "
                            f"(expected more than {filter_length // 2} samples)")
        self.filelist = filelist
        self.segment_length = segment_length
        self.sampling_rate = sampling_rate
        self.entries: list[FileEntry] = load_filelist(filelist, dataset_path)
        self.stft = TacotronSTFT(filter_length, hop_length, win_length, n_mel_channels,
                                 sampling_rate, mel_fmin, mel_fmax)
        self.crop_seed: int | None = None
        if check:
            raise_problems(self.problems())

    @classmethod
    def from_args(cls, filelist: str, args: argparse.Namespace, check: bool = True
                  ) -> "MelAudioDataset":
        """Build from train.py's parsed flags (data, audio, --segment-length, --n-mel-channels)."""
        return cls(filelist, args.dataset_path, args.segment_length,
                   sampling_rate=args.sampling_rate, filter_length=args.filter_length,
                   hop_length=args.hop_length, win_length=args.win_length,
                   n_mel_channels=args.n_mel_channels, mel_fmin=args.mel_fmin,
                   mel_fmax=args.mel_fmax, check=check)

    def problems(self) -> list[str]:
        """One ``"<filelist>:<line>: <problem>"`` string per bad entry; reads headers only."""
        return wav_problems(self.entries, self.sampling_rate)

    def set_epoch(self, seed: int) -> None:
        """Crops from now on depend only on ``seed`` and the item's index, not on the process or loader
        worker that draws them or on what was drawn before: a run resumed mid-epoch crops what the
        interrupted one would have, with any number of workers or processes (train.py sets it per epoch)."""
        self.crop_seed = seed

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        audio = load_wav(self.entries[index].path, self.sampling_rate)
        generator = None
        if self.crop_seed is not None:
            generator = torch.Generator().manual_seed(mixed_seed(self.crop_seed, index))
        audio = random_segment(audio, self.segment_length, generator)
        with torch.no_grad():
            mel = self.stft.mel_spectrogram(audio)
        return mel, audio


def random_segment(audio: Tensor, segment_length: int, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly placed crop of ``segment_length`` samples, or the clip zero-padded to it."""
    if audio.size(0) < segment_length:
        return F.pad(audio, (0, segment_length - audio.size(0)))
    start = int(torch.randint(0, audio.size(0) - segment_length + 1, (1,), generator=generator))
    return audio[start:start + segment_length]


def collate_fn(batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Stack equal-length items into ``(mel [B, n_mel, frames], audio [B, segment_length])``."""
    mels, audios = zip(*batch)
    return torch.stack(mels), torch.stack(audios)


def batch_to_device(batch: tuple[Tensor, Tensor], device: torch.device | str
                    ) -> tuple[tuple[Tensor, Tensor], Tensor, dict[str, int]]:
    """``(mel, audio)`` -> ``(inputs=(mel, audio), targets=audio, counts={'items': samples})``."""
    mel, audio = batch
    counts = {"items": audio.numel()}
    mel = mel.to(device, non_blocking=True)
    audio = audio.to(device, non_blocking=True)
    return (mel, audio), audio, counts
