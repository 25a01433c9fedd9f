"""Tacotron 2 data: items from wavs and from mel files, up-front checks, collate and device step."""

import argparse

import numpy as np
import pytest
import torch

import tacotron2
from common.audio import load_wav
from common.errors import DataError, UserError
from common.mel import TacotronSTFT
from tacotron2.data import TextMelCollate, TextMelDataset, batch_to_device
from tacotron2.text import text_to_sequence


pytestmark = pytest.mark.usefixtures("one_thread")


def write_list(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


# --- items -----------------------------------------------------------------------------------

def test_items_from_wavs(tmp_path, tmp_wav):
    tmp_wav("wavs/a.wav", n_samples=8000)
    tmp_wav("wavs/b.wav", n_samples=22050)
    filelist = write_list(tmp_path / "list.txt", ["wavs/a.wav|Dr. Smith, 2 cats.", "wavs/b.wav|Hello"])
    dataset = TextMelDataset(filelist, str(tmp_path))
    assert len(dataset) == 2
    text, mel = dataset[0]
    assert text.dtype == torch.long
    assert text.tolist() == text_to_sequence("Dr. Smith, 2 cats.", ["english_cleaners"])
    assert mel.shape == (80, 32)  # 1 + 8000 // 256 frames
    expected = TacotronSTFT().mel_spectrogram(load_wav(str(tmp_path / "wavs/a.wav")))
    torch.testing.assert_close(mel, expected)
    assert dataset[1][1].shape == (80, 87)


def test_items_from_mel_files(tmp_path):
    mel_pt, mel_npy = torch.randn(80, 17), np.random.default_rng(0).standard_normal((80, 9)).astype(np.float32)
    (tmp_path / "mels").mkdir()
    torch.save(mel_pt, tmp_path / "mels/a.pt")
    np.save(tmp_path / "mels/b.npy", mel_npy)
    filelist = write_list(tmp_path / "list.txt", ["mels/a.pt|first one", "mels/b.npy|Mr. Smith"])
    dataset = TextMelDataset(filelist, str(tmp_path), load_mel_from_disk=True, text_cleaners=["basic_cleaners"])
    assert torch.equal(dataset[0][1], mel_pt)
    assert torch.equal(dataset[1][1], torch.from_numpy(mel_npy))
    # the chosen cleaners, not the default english_cleaners (which would say "mister smith")
    assert dataset[1][0].tolist() == text_to_sequence("mr. smith", [])
    assert dataset[1][0].tolist() != text_to_sequence("mister smith", [])


def test_mel_file_with_wrong_shape_names_the_line(tmp_path):
    torch.save(torch.randn(40, 10), tmp_path / "a.pt")
    (tmp_path / "b.pt").write_bytes(b"not a tensor")
    filelist = write_list(tmp_path / "list.txt", ["a.pt|text", "b.pt|text"])
    dataset = TextMelDataset(filelist, str(tmp_path), load_mel_from_disk=True)
    with pytest.raises(DataError, match=r"list.txt:1: .*a.pt: mel of shape \[40, 10\] \(expected a tensor \[80, frames\]\)"):
        dataset[0]
    with pytest.raises(DataError, match=r"list.txt:2: .*b.pt: cannot read mel file"):
        dataset[1]


def test_frame_counts_without_reading_the_mels(tmp_path, tmp_wav):
    """n_frames (the --length-sort-pool key) equals each item's mel length, from wav headers or from
    the saved mels' shapes; an unreadable file is named with its line."""
    sizes = (8000, 22050, 600, 256 * 20)  # 1 + samples // 256; a whole number of hops gets one more
    for n_samples in sizes:
        tmp_wav(f"wavs/{n_samples}.wav", n_samples=n_samples)
    wav_list = write_list(tmp_path / "wavs.txt", [f"wavs/{n}.wav|Hello" for n in sizes])
    wavs = TextMelDataset(wav_list, str(tmp_path))
    assert wavs.n_frames() == [wavs[i][1].size(1) for i in range(4)] == [32, 87, 3, 21]
    # another hop: the count follows it (1 + 8000 // 200 = 41)
    other_hop = TextMelDataset(wav_list, str(tmp_path), hop_length=200, win_length=800)
    assert other_hop.n_frames()[0] == other_hop[0][1].size(1) == 41
    (tmp_path / "mels").mkdir()
    torch.save(torch.randn(80, 17), tmp_path / "mels/a.pt")
    np.save(tmp_path / "mels/b.npy", np.zeros((80, 9), dtype=np.float32))
    (tmp_path / "mels/c.pt").write_bytes(b"not a tensor")
    mel_list = write_list(tmp_path / "mels.txt", ["mels/a.pt|one", "mels/b.npy|two", "mels/c.pt|three"])
    mels = TextMelDataset(mel_list, str(tmp_path), load_mel_from_disk=True)
    assert [mels._n_frames(entry) for entry in mels.entries[:2]] == [17, 9]
    with pytest.raises(DataError, match=r"mels.txt:3: .*c.pt: cannot read its length"):
        mels.n_frames()


# --- up-front checks -------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:.*dropped characters")
def test_all_bad_entries_reported_together(tmp_path, tmp_wav):
    tmp_wav("ok.wav")
    tmp_wav("rate.wav", sampling_rate=16000)
    filelist = write_list(tmp_path / "list.txt", [
        "ok.wav|fine",
        "missing.wav|where am I",
        "rate.wav|wrong rate",
        'ok.wav|"[]"',
        "ok.wav|{HH XX1}",
    ])
    with pytest.raises(DataError) as info:
        TextMelDataset(filelist, str(tmp_path))
    lines = str(info.value).splitlines()
    assert lines[0].startswith("4 problem(s)")
    problems = sorted(lines[1:])
    assert len(problems) == 4
    assert problems[0].startswith(f"{filelist}:2: ") and "missing.wav: file not found" in problems[0]
    assert problems[1].startswith(f"{filelist}:3: ") and "16000 Hz" in problems[1] and "22050" in problems[1]
    assert problems[2].startswith(f"{filelist}:4: ") and "empty after cleaning" in problems[2]
    assert problems[3].startswith(f"{filelist}:5: ") and "XX1" in problems[3]
    assert isinstance(info.value, UserError)


def test_deferred_check_still_refuses_a_wav_of_another_rate_when_read(tmp_path, tmp_wav):
    tmp_wav("rate.wav", sampling_rate=16000)
    filelist = write_list(tmp_path / "list.txt", ["rate.wav|some text"])
    dataset = TextMelDataset(filelist, str(tmp_path), check=False)
    with pytest.raises(UserError, match=r"rate.wav: sampling rate 16000 Hz \(expected 22050 Hz"):
        dataset[0]


def test_check_can_be_deferred_and_missing_mel_files_are_found(tmp_path):
    torch.save(torch.randn(80, 5), tmp_path / "a.pt")
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    filelist = write_list(tmp_path / "list.txt", ["a.pt|one", "b.pt|two", "a.wav|three"])
    dataset = TextMelDataset(filelist, str(tmp_path), load_mel_from_disk=True, check=False)
    problems = dataset.problems()
    assert len(problems) == 2
    assert problems[0].startswith(f"{filelist}:2: ") and "mel file not found" in problems[0]
    assert problems[1].startswith(f"{filelist}:3: ") and "expected a .pt or .npy" in problems[1]


def build_args(tmp_path, **overrides):
    args = dict(training_files=str(tmp_path / "train.txt"), validation_files=str(tmp_path / "val.txt"),
                dataset_path=str(tmp_path), load_mel_from_disk=False, text_cleaners=["english_cleaners"],
                sampling_rate=22050, filter_length=1024, hop_length=256, win_length=1024,
                n_mel_channels=80, mel_fmin=0.0, mel_fmax=8000.0, max_wav_value=32768.0)
    args.update(overrides)
    return argparse.Namespace(**args)


def test_build_datasets_checks_both_filelists_at_once(tmp_path, tmp_wav):
    tmp_wav("a.wav")
    write_list(tmp_path / "train.txt", ["a.wav|one", "gone.wav|two"])
    write_list(tmp_path / "val.txt", ["a.wav|three", "lost.wav|four"])
    with pytest.raises(DataError) as info:
        tacotron2.build_datasets(build_args(tmp_path))
    message = str(info.value)
    assert message.startswith("2 problem(s)")
    assert "train.txt:2: " in message and "val.txt:2: " in message

    write_list(tmp_path / "val.txt", ["a.wav|three"])
    write_list(tmp_path / "train.txt", ["a.wav|one", "a.wav|two"])
    train, val = tacotron2.build_datasets(build_args(tmp_path))
    assert (len(train), len(val)) == (2, 1)
    assert val[0][1].shape == (80, 1 + 4410 // 256)


# --- collate and device step -----------------------------------------------------------------

def test_collate_sorts_pads_and_builds_gate_targets():
    items = [(torch.tensor([5, 6]), torch.full((3, 4), 1.0)),
             (torch.tensor([7, 8, 9, 10]), torch.full((3, 2), 2.0)),
             (torch.tensor([11, 12, 13]), torch.full((3, 5), 3.0))]
    text, input_lengths, mel, gate, output_lengths = TextMelCollate()(items)
    assert input_lengths.tolist() == [4, 3, 2]  # longest text first
    assert output_lengths.tolist() == [2, 5, 4]
    assert text.tolist() == [[7, 8, 9, 10], [11, 12, 13, 0], [5, 6, 0, 0]]
    assert mel.shape == (3, 3, 5)
    assert mel[0, :, :2].eq(2).all() and mel[0, :, 2:].eq(0).all()
    assert mel[2, :, :4].eq(1).all() and mel[2, :, 4:].eq(0).all()
    assert gate.tolist() == [[0, 1, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 1, 1]]


def test_collate_rounds_frames_up_to_frames_per_step():
    items = [(torch.tensor([1, 2]), torch.ones(3, 5)), (torch.tensor([3]), torch.ones(3, 3))]
    _, _, mel, gate, output_lengths = TextMelCollate(n_frames_per_step=3)(items)
    assert mel.shape == (2, 3, 6) and gate.shape == (2, 6)
    assert output_lengths.tolist() == [5, 3]
    assert gate.tolist() == [[0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1]]


def test_batch_to_device_counts_and_layout():
    items = [(torch.tensor([5, 6]), torch.ones(80, 4)), (torch.tensor([7, 8, 9]), torch.ones(80, 6))]
    batch = tacotron2.collate_fn(items)
    inputs, targets, counts = batch_to_device(batch, torch.device("cpu"))
    assert counts == {"items": 5, "mels": 10}
    assert all(type(v) is int for v in counts.values())
    text, input_lengths, mel, max_len, output_lengths = inputs
    assert max_len == 3 and type(max_len) is int
    assert torch.equal(text, batch[0]) and torch.equal(mel, batch[2])
    assert targets[0] is mel and torch.equal(targets[1], batch[3])
    assert targets[2] is input_lengths and targets[3] is output_lengths
