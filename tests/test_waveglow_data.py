"""WaveGlow data: random crops, padding, mels, up-front file checks, collate and batch_to_device."""

import argparse
import os

import numpy as np
import pytest
import torch

import waveglow
from common.arguments import add_audio_args
from common.audio import load_wav
from common.errors import DataError, UserError
from common.mel import TacotronSTFT
from waveglow.data import MelAudioDataset, random_segment


def write_filelist(path, rows) -> str:
    with open(path, "w") as f:
        f.write("".join(f"{row}|some text\n" for row in rows))
    return str(path)


def test_short_clip_is_zero_padded_not_dropped(tmp_path, tmp_wav):
    tmp_wav("short.wav", n_samples=3000)
    dataset = MelAudioDataset(write_filelist(tmp_path / "list.txt", ["short.wav"]), str(tmp_path),
                              segment_length=8000)
    assert len(dataset) == 1
    mel, audio = dataset[0]
    clip = load_wav(str(tmp_path / "short.wav"))
    assert audio.shape == (8000,)
    assert torch.equal(audio[:3000], clip)
    assert torch.count_nonzero(audio[3000:]) == 0
    assert mel.shape == (80, 32)


def test_crop_is_a_random_window_of_the_clip(tmp_path, tmp_wav, speech_like):
    tmp_wav("long.wav", n_samples=20000)
    clip = load_wav(str(tmp_path / "long.wav"))
    dataset = MelAudioDataset(write_filelist(tmp_path / "list.txt", ["long.wav"]), str(tmp_path),
                              segment_length=4000)
    stft = TacotronSTFT()
    starts = set()
    for seed in range(6):
        torch.manual_seed(seed)
        mel, audio = dataset[0]
        assert audio.shape == (4000,) and mel.shape == (80, 1 + 4000 // 256)
        start = int(torch.nonzero((clip.unfold(0, 4000, 1) == audio).all(dim=1))[0])
        starts.add(start)
        # The mel is the crop's own mel.
        assert torch.allclose(mel, stft.mel_spectrogram(audio), atol=1e-5)
    assert len(starts) > 1
    torch.manual_seed(3)
    first = dataset[0][1]
    torch.manual_seed(3)
    assert torch.equal(dataset[0][1], first)  # the torch RNG decides the crop


def test_epoch_seed_fixes_each_items_crop_whatever_the_torch_rng(tmp_path, tmp_wav):
    """After set_epoch the crop depends on (seed, index) only: the same in any process or worker,
    different between items (even of one clip) and between epochs."""
    tmp_wav("long.wav", n_samples=20000)
    clip = load_wav(str(tmp_path / "long.wav"))
    dataset = MelAudioDataset(write_filelist(tmp_path / "list.txt", ["long.wav", "long.wav"]), str(tmp_path),
                              segment_length=4000)

    def start(index, torch_seed):
        torch.manual_seed(torch_seed)
        audio = dataset[index][1]
        return int(torch.nonzero((clip.unfold(0, 4000, 1) == audio).all(dim=1))[0])

    dataset.set_epoch(5)
    first = [start(0, 0), start(1, 0)]
    assert [start(0, 1), start(1, 2)] == first  # the torch RNG plays no part
    assert first[0] != first[1]  # the index does
    dataset.set_epoch(6)
    assert start(0, 0) != first[0]  # and the epoch's seed


def test_crop_start_reaches_the_last_possible_sample():
    audio = torch.arange(10, dtype=torch.float32)
    torch.manual_seed(0)
    starts = {int(random_segment(audio, 8)[0]) for _ in range(200)}
    assert starts == {0, 1, 2}  # upper bound len - seg, inclusive
    assert torch.equal(random_segment(audio, 10), audio)


def test_mel_frames_for_8000_samples_match_librosa(tmp_path, tmp_wav):
    import librosa
    tmp_wav("clip.wav", n_samples=8000)
    dataset = MelAudioDataset(write_filelist(tmp_path / "list.txt", ["clip.wav"]), str(tmp_path),
                              segment_length=8000)
    mel, audio = dataset[0]
    assert mel.shape == (80, 32)
    basis = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)
    magnitude = np.abs(librosa.stft(audio.numpy(), n_fft=1024, hop_length=256, win_length=1024,
                                    window="hann", center=True, pad_mode="reflect"))
    expected = np.log(np.maximum(basis @ magnitude, 1e-5))
    assert np.abs(mel.numpy() - expected).max() < 1e-3


def test_audio_flags_reach_the_mel(tmp_path, tmp_wav):
    """--mel-fmin/--mel-fmax/--n-mel-channels shape the crop's mel (Slaney filters of librosa)."""
    import librosa
    tmp_wav("clip.wav", n_samples=4096)
    dataset = MelAudioDataset(write_filelist(tmp_path / "list.txt", ["clip.wav"]), str(tmp_path),
                              segment_length=4096, n_mel_channels=40, mel_fmin=60.0, mel_fmax=6000.0)
    mel, audio = dataset[0]
    basis = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=40, fmin=60.0, fmax=6000.0)
    magnitude = np.abs(librosa.stft(audio.numpy(), n_fft=1024, hop_length=256, window="hann",
                                    center=True, pad_mode="reflect"))
    np.testing.assert_allclose(mel.numpy(), np.log(np.maximum(basis @ magnitude, 1e-5)), atol=1e-3)


def test_bad_files_are_reported_together_with_list_and_line(tmp_path, tmp_wav):
    tmp_wav("good.wav", n_samples=5000)
    tmp_wav("rate.wav", n_samples=5000, sampling_rate=16000)
    tmp_wav("stereo.wav", n_samples=5000, channels=2)
    filelist = write_filelist(tmp_path / "train.txt",
                              ["good.wav", "rate.wav", "stereo.wav", "missing.wav"])
    with pytest.raises(DataError) as raised:
        MelAudioDataset(filelist, str(tmp_path), segment_length=4000)
    assert isinstance(raised.value, UserError)
    lines = str(raised.value).splitlines()
    assert lines[0].startswith("3 problem(s)")
    assert lines[1].startswith(f"{filelist}:2: ") and "16000 Hz" in lines[1]
    assert lines[2].startswith(f"{filelist}:3: ") and "mono" in lines[2]
    assert lines[3].startswith(f"{filelist}:4: ") and "not found" in lines[3]


def parse_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--training-files")
    parser.add_argument("--validation-files")
    parser.add_argument("-d", "--dataset-path", default="./")
    add_audio_args(parser)
    waveglow.add_model_args(parser)
    return parser.parse_args(argv)


def test_build_datasets_checks_both_lists_at_once(tmp_path, tmp_wav):
    tmp_wav("a.wav", n_samples=5000)
    tmp_wav("b.wav", n_samples=5000)
    train = write_filelist(tmp_path / "train.txt", ["a.wav", "gone.wav"])
    val = write_filelist(tmp_path / "val.txt", ["b.wav", "also_gone.wav"])
    args = parse_args(["--training-files", train, "--validation-files", val, "-d", str(tmp_path)])
    with pytest.raises(DataError) as raised:
        waveglow.build_datasets(args)
    message = str(raised.value)
    assert f"{train}:2: " in message and f"{val}:2: " in message
    good = write_filelist(tmp_path / "good.txt", ["a.wav", "b.wav"])
    args = parse_args(["--training-files", good, "--validation-files", good, "-d", str(tmp_path),
                       "--segment-length", "2048"])
    train_set, val_set = waveglow.build_datasets(args)
    assert len(train_set) == len(val_set) == 2
    assert train_set[0][1].shape == (2048,)


def test_too_short_segment_is_a_user_error(tmp_path, tmp_wav):
    tmp_wav("a.wav", n_samples=5000)
    with pytest.raises(DataError, match="--segment-length 400"):
        MelAudioDataset(write_filelist(tmp_path / "list.txt", ["a.wav"]), str(tmp_path),
                        segment_length=400)


def test_collate_and_batch_to_device(tmp_path, tmp_wav):
    tmp_wav("a.wav", n_samples=5000)
    tmp_wav("b.wav", n_samples=1000)
    dataset = MelAudioDataset(write_filelist(tmp_path / "list.txt", ["a.wav", "b.wav"]),
                              str(tmp_path), segment_length=4000)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=waveglow.collate_fn)
    batch = next(iter(loader))
    inputs, targets, counts = waveglow.batch_to_device(batch, "cpu")
    mel, audio = inputs
    assert mel.shape == (2, 80, 16) and audio.shape == (2, 4000)
    assert targets is audio
    assert counts == {"items": 8000} and isinstance(counts["items"], int)


def test_tiny_ljspeech_lists_load():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    filelist = os.path.join(root, "filelists", "tiny_audio_text_val_filelist.txt")
    dataset = MelAudioDataset(filelist, os.path.join(root, "data"), segment_length=8000)
    mel, audio = dataset[0]
    assert mel.shape == (80, 32) and audio.shape == (8000,)
    assert float(audio.abs().max()) > 0.01
