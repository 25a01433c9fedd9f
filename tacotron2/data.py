"""Tacotron 2 data: (text ids, log-mel) items, the padding collate and the host-to-device step."""
import argparse
import os
import pickle
from typing import Iterable

import numpy as np
import soundfile
import torch
from torch import Tensor

from common.audio import load_wav
from common.errors import DataError, TextError, first_line
from common.filelists import FileEntry, load_filelist, location, raise_problems, wav_problems
from common.mel import MEL_SETTINGS_FILE, MEL_SUFFIXES, TacotronSTFT, mel_settings_differences
from tacotron2.text import text_to_sequence


class TextMelDataset(torch.utils.data.Dataset):
    """Items `(text_ids LongTensor [N], mel FloatTensor [n_mel_channels, T])` of one filelist.

    Transcripts are converted once, up front; mels are computed from the wavs on the fly, or read
    from `.pt`/`.npy` files with `load_mel_from_disk`. Unless `check=False`, the constructor looks at
    every entry cheaply (files present, wav headers, transcripts) and raises one `DataError` listing
    every problem, so a bad line is found before training starts rather than hours into it.
    """

    def __init__(self, filelist: str, dataset_path: str = "", *,
                 text_cleaners: Iterable[str] = ("english_cleaners",), load_mel_from_disk: bool = False,
                 sampling_rate: int = 22050, filter_length: int = 1024, hop_length: int = 256,
                 win_length: int = 1024, n_mel_channels: int = 80, mel_fmin: float = 0.0,
                 mel_fmax: float = 8000.0, check: bool = True):
        self.filelist = filelist
        self.load_mel_from_disk = load_mel_from_disk
        self.sampling_rate = sampling_rate
        self.hop_length = hop_length
        self.n_mel_channels = n_mel_channels
        self.entries: list[FileEntry] = load_filelist(filelist, dataset_path)
        self.text_ids: list[Tensor | None] = []
        self._text_problems: list[str] = []
        cleaners = list(text_cleaners)
        for entry in self.entries:
            source = location(entry)
            try:
                ids = text_to_sequence(entry.text, cleaners, source=source)
            except TextError as err:
                self._text_problems.append(str(err))
                ids = None
            else:
                if not ids:
                    self._text_problems.append(f"{source}: transcript {entry.text!r} is empty after "
                                               f"cleaning (expected text with at least one symbol)")
            self.text_ids.append(torch.tensor(ids, dtype=torch.long) if ids else None)
        self.mel_settings = {"sampling_rate": sampling_rate, "filter_length": filter_length,
                             "hop_length": hop_length, "win_length": win_length, "n_mel_channels": n_mel_channels,
                             "mel_fmin": mel_fmin, "mel_fmax": mel_fmax}
        self.stft = None if load_mel_from_disk else TacotronSTFT(**self.mel_settings)
        if check:
            self.check()

    @classmethod
    def from_args(cls, filelist: str, args: argparse.Namespace, check: bool = True) -> "TextMelDataset":
        """Build from train.py's parsed flags (data, audio and --n-mel-channels)."""
        return cls(filelist, args.dataset_path, text_cleaners=args.text_cleaners,
                   load_mel_from_disk=args.load_mel_from_disk, sampling_rate=args.sampling_rate,
                   filter_length=args.filter_length, hop_length=args.hop_length,
                   win_length=args.win_length, n_mel_channels=args.n_mel_channels,
                   mel_fmin=args.mel_fmin, mel_fmax=args.mel_fmax, check=check)

    def problems(self) -> list[str]:
        """One "<filelist>:<line>: <problem>" string per bad entry; reads headers only."""
        found = list(self._text_problems)
        if not self.load_mel_from_disk:
            return found + wav_problems(self.entries, self.sampling_rate)
        for entry in self.entries:
            if not os.path.isfile(entry.path):
                found.append(f"{location(entry)}: {entry.path}: mel file not found")
            elif not entry.path.endswith(MEL_SUFFIXES):
                found.append(f"{location(entry)}: {entry.path}: expected a .pt or .npy mel file "
                             f"(made by preprocess_audio2mel.py; or leave out --load-mel-from-disk)")
        for folder in sorted({os.path.dirname(entry.path) for entry in self.entries}):
            differences = mel_settings_differences(folder, self.mel_settings)
            if differences:
                found.append(f"{os.path.join(folder, MEL_SETTINGS_FILE)}: its mels were made with {differences} "
                             f"(expected this run's audio flags; pass those, or remake the mels with "
                             f"preprocess_audio2mel.py --force)")
        return found

    def check(self) -> None:
        raise_problems(self.problems())

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        entry = self.entries[index]
        mel = self._load_mel(entry) if self.load_mel_from_disk else self._compute_mel(entry)
        return self.text_ids[index], mel

    def n_frames(self) -> list[int]:
        """Mel frames per item, without computing or reading any mel: from the wav headers
        (samples // hop + 1, the centred STFT's frame count) or the saved mels' shapes (mapped, not read)."""
        return [self._n_frames(entry) for entry in self.entries]

    def _n_frames(self, entry: FileEntry) -> int:
        try:
            if not self.load_mel_from_disk:
                return soundfile.info(entry.path).frames // self.hop_length + 1
            if entry.path.endswith(".npy"):
                return int(np.load(entry.path, mmap_mode="r", allow_pickle=False).shape[-1])
            try:
                mel = torch.load(entry.path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # a file of torch's legacy format cannot be mapped
                mel = torch.load(entry.path, map_location="cpu", weights_only=True)
            return int(mel.shape[-1])
        except (OSError, RuntimeError, ValueError, AttributeError, pickle.UnpicklingError) as err:
            raise DataError(f"{location(entry)}: {entry.path}: cannot read its length: {first_line(err)}") from None

    def _compute_mel(self, entry: FileEntry) -> Tensor:
        audio = load_wav(entry.path, self.sampling_rate)  # already scaled to [-1, 1]
        with torch.no_grad():
            return self.stft.mel_spectrogram(audio)

    def _load_mel(self, entry: FileEntry) -> Tensor:
        try:
            if entry.path.endswith(".npy"):
                mel = torch.from_numpy(np.load(entry.path, allow_pickle=False))
            else:
                mel = torch.load(entry.path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
            raise DataError(f"{location(entry)}: {entry.path}: cannot read mel file: {first_line(err)}") from None
        if not isinstance(mel, Tensor) or mel.dim() != 2 or mel.size(0) != self.n_mel_channels:
            shape = list(mel.shape) if isinstance(mel, Tensor) else type(mel).__name__
            raise DataError(f"{location(entry)}: {entry.path}: mel of shape {shape} "
                            f"(expected a tensor [{self.n_mel_channels}, frames])")
        return mel.float()


class TextMelCollate:
    """Pads a list of items into `(text_padded, input_lengths, mel_padded, gate_padded, output_lengths)`.

    Items are sorted by text length, longest first (the encoder's packed LSTM order). Mels are
    zero-padded to a multiple of n_frames_per_step; the gate target is 1 from each utterance's last
    real frame to the end.
    """

    def __init__(self, n_frames_per_step: int = 1):
        self.n_frames_per_step = n_frames_per_step

    def __call__(self, batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        order = sorted(range(len(batch)), key=lambda i: len(batch[i][0]), reverse=True)
        input_lengths = torch.tensor([len(batch[i][0]) for i in order], dtype=torch.long)
        output_lengths = torch.tensor([batch[i][1].size(1) for i in order], dtype=torch.long)
        n_mel_channels = batch[0][1].size(0)
        max_frames = int(output_lengths.max())
        max_frames += -max_frames % self.n_frames_per_step

        text_padded = torch.zeros(len(batch), int(input_lengths[0]), dtype=torch.long)
        mel_padded = torch.zeros(len(batch), n_mel_channels, max_frames)
        gate_padded = torch.zeros(len(batch), max_frames)
        for row, i in enumerate(order):
            text, mel = batch[i]
            text_padded[row, :text.size(0)] = text
            mel_padded[row, :, :mel.size(1)] = mel
            gate_padded[row, mel.size(1) - 1:] = 1.0
        return text_padded, input_lengths, mel_padded, gate_padded, output_lengths


def batch_to_device(batch: tuple, device: torch.device | str) -> tuple[tuple, tuple, dict[str, int]]:
    """Collated batch -> (inputs, targets, counts); counts are taken on the host before the copy.

    inputs = (text_padded, input_lengths, mel_padded, max_len, output_lengths);
    targets = (mel_padded, gate_padded, input_lengths, output_lengths).
    """
    text_padded, input_lengths, mel_padded, gate_padded, output_lengths = batch
    counts = {"items": int(input_lengths.sum()), "mels": int(output_lengths.sum())}
    max_len = int(input_lengths.max())

    def to_device(t: Tensor) -> Tensor:
        return t.to(device, non_blocking=True)

    text_padded, input_lengths, mel_padded, gate_padded, output_lengths = map(
        to_device, (text_padded, input_lengths, mel_padded, gate_padded, output_lengths))
    inputs = (text_padded, input_lengths, mel_padded, max_len, output_lengths)
    targets = (mel_padded, gate_padded, input_lengths, output_lengths)
    return inputs, targets, counts
