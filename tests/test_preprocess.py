"""Data preparation: preprocess_audio2mel.py (mels to disk) and scripts/prepare_own_dataset.py."""

import os
import shutil

import librosa
import numpy as np
import pytest
import soundfile
import torch

import preprocess_audio2mel as pre
from common.errors import DataError, FilelistError, UserError
from common.mel import read_mel_settings
from conftest import REPO_ROOT
from tacotron2.data import TextMelDataset
from training_helpers import load_script

TINY_TRAIN = os.path.join(REPO_ROOT, "filelists", "tiny_audio_text_train_filelist.txt")
STFT_KWARGS = {"filter_length": 1024, "hop_length": 256, "win_length": 1024, "n_mel_channels": 80,
               "sampling_rate": 22050, "mel_fmin": 0.0, "mel_fmax": 8000.0}


@pytest.fixture
def tiny_copy(tmp_path):
    """The first 4 clips of LJSpeech-tiny in tmp_path/data, with wav and mel filelists."""
    data = tmp_path / "data"
    shutil.copytree(os.path.join(REPO_ROOT, "data", "LJSpeech-tiny", "wavs"), data / "LJSpeech-tiny" / "wavs")
    with open(TINY_TRAIN, encoding="utf-8") as f:
        lines = f.read().splitlines()[:4]
    wav_list, mel_list = tmp_path / "wavs.txt", tmp_path / "mels.txt"
    wav_list.write_text("".join(line + "\n" for line in lines))
    mel_list.write_text("".join(line.replace("/wavs/", "/mels/").replace(".wav|", ".pt|") + "\n" for line in lines))
    return str(data), str(wav_list), str(mel_list)


def test_mels_equal_the_training_path_and_rerun_skips(tiny_copy):
    data, wav_list, mel_list = tiny_copy
    jobs = pre.pair_filelists([wav_list], [mel_list], data)
    result = pre.preprocess(jobs, STFT_KWARGS, progress=False)
    assert (result.written, result.skipped, result.failures) == (4, 0, [])

    on_the_fly = TextMelDataset(wav_list, data)
    from_disk = TextMelDataset(mel_list, data, load_mel_from_disk=True)
    for index, job in enumerate(jobs):
        saved = torch.load(job.mel_path, weights_only=True)
        assert saved.dtype == torch.float32 and saved.dim() == 2 and saved.size(0) == 80
        assert torch.equal(saved, on_the_fly[index][1])
        assert torch.equal(from_disk[index][1], saved)

    # independent reference: librosa's centred, reflect-padded STFT magnitude and Slaney mels
    audio, rate = soundfile.read(jobs[0].wav_path, dtype="int16")
    audio = audio.astype(np.float32) / 32768.0
    magnitude = np.abs(librosa.stft(audio, n_fft=1024, hop_length=256, win_length=1024, window="hann",
                                    center=True, pad_mode="reflect"))
    mel_basis = librosa.filters.mel(sr=rate, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)
    expected = np.log(np.clip(mel_basis @ magnitude, 1e-5, None))
    np.testing.assert_allclose(torch.load(jobs[0].mel_path, weights_only=True).numpy(), expected, atol=1e-3)

    mtimes = [os.stat(job.mel_path).st_mtime_ns for job in jobs]
    again = pre.preprocess(jobs, STFT_KWARGS, progress=False)
    assert (again.written, again.skipped) == (0, 4)
    assert [os.stat(job.mel_path).st_mtime_ns for job in jobs] == mtimes

    os.remove(jobs[2].mel_path)  # an interrupted run: only the missing file is made
    resumed = pre.preprocess(jobs, STFT_KWARGS, progress=False)
    assert (resumed.written, resumed.skipped) == (1, 3)
    forced = pre.preprocess(jobs, STFT_KWARGS, force=True, progress=False, num_workers=2)
    assert (forced.written, forced.skipped) == (4, 0)
    assert torch.equal(torch.load(jobs[0].mel_path, weights_only=True), on_the_fly[0][1])


def test_main_reports_failures_and_keeps_the_rest(tiny_copy, capsys):
    data, wav_list, mel_list = tiny_copy
    first_wav = open(wav_list).readline().split("|")[0]
    os.remove(os.path.join(data, first_wav))
    argv = ["-d", data, "--wav-files", wav_list, "--mel-files", mel_list, "--num-workers", "1"]
    assert pre.main(argv) == 2
    captured = capsys.readouterr()
    assert "3 written, 0 already done, 1 failed" in captured.out
    assert f"{wav_list}:1:" in captured.err and "file not found" in captured.err
    assert len([name for name in os.listdir(os.path.join(data, "LJSpeech-tiny", "mels")) if name.endswith(".pt")]) == 3
    assert not [name for name in os.listdir(os.path.join(data, "LJSpeech-tiny", "mels")) if name.endswith(".tmp")]


def test_mels_of_other_settings_are_neither_mixed_nor_trained_on(tiny_copy, capsys):
    """The settings go beside the mels; a rerun with other settings is refused (skipping would mix two
    kinds of mel) unless --force, and training from disk with other audio flags lists the folder."""
    data, wav_list, mel_list = tiny_copy
    argv = ["-d", data, "--wav-files", wav_list, "--mel-files", mel_list, "--num-workers", "1"]
    assert pre.main(argv) == 0
    mels = os.path.join(data, "LJSpeech-tiny", "mels")
    assert read_mel_settings(mels) == {**STFT_KWARGS, "mel_fmin": 0.0, "mel_fmax": 8000.0}
    assert pre.main(argv + ["--mel-fmax", "7600"]) == 2
    err = capsys.readouterr().err
    assert f"{os.path.join(mels, 'mel_settings.json')}: made with --mel-fmax 8000.0" in err and "--force" in err
    with pytest.raises(DataError, match=r"its mels were made with --mel-fmax 8000\.0"):
        TextMelDataset(mel_list, data, load_mel_from_disk=True, mel_fmax=7600.0)
    TextMelDataset(mel_list, data, load_mel_from_disk=True)  # the same settings: fine
    before = torch.load(os.path.join(data, open(mel_list).readline().split("|")[0]), weights_only=True)
    assert pre.main(argv + ["--mel-fmax", "7600", "--force"]) == 0
    assert read_mel_settings(mels)["mel_fmax"] == 7600.0
    after = TextMelDataset(mel_list, data, load_mel_from_disk=True, mel_fmax=7600.0)[0][1]
    assert after.shape == before.shape and not torch.equal(after, before)


def test_settings_are_recorded_only_for_mels_known_to_have_them(tiny_copy, capsys):
    data, wav_list, mel_list = tiny_copy
    argv = ["-d", data, "--wav-files", wav_list, "--mel-files", mel_list, "--num-workers", "1"]
    mels = os.path.join(data, "LJSpeech-tiny", "mels")
    assert pre.main(argv + ["--sampling-rate", "16000", "--mel-fmax", "7000"]) == 2  # every wav is 22050 Hz
    assert read_mel_settings(mels) is None  # nothing made: nothing recorded, a corrected rerun is not refused
    assert pre.main(argv) == 0
    os.remove(os.path.join(mels, "mel_settings.json"))  # mels of unknown settings (e.g. the recipe's)
    capsys.readouterr()
    assert pre.main(argv + ["--mel-fmax", "7600"]) == 0  # all skipped
    assert read_mel_settings(mels) is None
    assert "4 mel(s) not made by this run" in capsys.readouterr().err
    first = os.path.join(data, open(mel_list).readline().split("|")[0])
    os.remove(first)
    assert pre.main(argv + ["--mel-fmax", "7600"]) == 0  # one remade, three of unknown settings
    assert read_mel_settings(mels) is None
    assert pre.main(argv + ["--mel-fmax", "7600", "--force"]) == 0
    assert read_mel_settings(mels)["mel_fmax"] == 7600.0


def test_an_interrupted_run_leaves_no_settings_file_that_vouches_for_other_mels(tiny_copy, monkeypatch):
    data, wav_list, mel_list = tiny_copy
    jobs = pre.pair_filelists([wav_list], [mel_list], data)
    mels = os.path.join(data, "LJSpeech-tiny", "mels")
    real_run_job, done = pre._run_job, []

    def interrupted_at_the_third(job):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(job)
        return real_run_job(job)

    with monkeypatch.context() as patch:  # a first run stopped after 2 of 4 mels: all of them 8000 Hz
        patch.setattr(pre, "_run_job", interrupted_at_the_third)
        with pytest.raises(KeyboardInterrupt):
            pre.preprocess(jobs, STFT_KWARGS, progress=False)
    assert read_mel_settings(mels) == STFT_KWARGS
    with pytest.raises(UserError, match="made with --mel-fmax 8000"):
        pre.preprocess(jobs, {**STFT_KWARGS, "mel_fmax": 7600.0}, progress=False)
    assert pre.preprocess(jobs, STFT_KWARGS, progress=False).written == 2
    done.clear()
    with monkeypatch.context() as patch:  # --force with other settings stopped half way: a mixed folder
        patch.setattr(pre, "_run_job", interrupted_at_the_third)
        with pytest.raises(KeyboardInterrupt):
            pre.preprocess(jobs, {**STFT_KWARGS, "mel_fmax": 7600.0}, force=True, progress=False)
    assert read_mel_settings(mels) is None


def test_mismatched_lists_are_rejected(tiny_copy, tmp_path):
    data, wav_list, mel_list = tiny_copy
    short = tmp_path / "short.txt"
    short.write_text("".join(open(mel_list).readlines()[:3]))
    with pytest.raises(FilelistError, match="3 entries, but .* has 4"):
        pre.pair_filelists([wav_list], [str(short)], data)
    swapped = tmp_path / "swapped.txt"
    lines = open(mel_list).readlines()
    swapped.write_text("".join([lines[1], lines[0], *lines[2:]]))
    with pytest.raises(FilelistError, match=r"swapped.txt:1: mel .* does not match wav"):
        pre.pair_filelists([wav_list], [str(swapped)], data)


def test_mel_fmax_above_half_the_sampling_rate_is_an_error(tiny_copy, capsys):
    data, wav_list, mel_list = tiny_copy
    argv = ["-d", data, "--wav-files", wav_list, "--mel-files", mel_list, "--sampling-rate", "8000"]
    assert pre.main(argv) == 2
    assert "--mel-fmax 8000 is above half of --sampling-rate 8000" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(data, "LJSpeech-tiny", "mels"))


# -- scripts/prepare_own_dataset.py ------------------------------------------------------------

@pytest.fixture
def own_source(tmp_path):
    """Six 16 kHz stereo clips (a 440 Hz tone left, 660 Hz right) with LJSpeech-style metadata."""
    source = tmp_path / "recordings"
    (source / "wavs").mkdir(parents=True)
    t = np.arange(16000) / 16000
    for i in range(6):
        stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)], axis=1)
        soundfile.write(str(source / "wavs" / f"MY-{i:03d}.wav"), stereo, 16000, subtype="PCM_16")
    (source / "metadata.csv").write_text(
        "".join(f"MY-{i:03d}|Raw text {i}.|Normalised text number {i}.\n" for i in range(6)))
    return source


def test_own_dataset_resampled_mono_with_filelists(own_source, tmp_path):
    own = load_script("prepare_own_dataset")
    output = tmp_path / "datasets" / "MyVoice"
    filelists = tmp_path / "filelists"
    argv = [str(own_source), str(output), "--filelist-dir", str(filelists), "--val-size", "2",
            "--num-workers", "1"]
    assert own.main(argv) == 0

    info = soundfile.info(str(output / "wavs" / "MY-000.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (22050, 1, "PCM_16", 22050)
    audio, _ = soundfile.read(str(output / "wavs" / "MY-000.wav"))
    # the mean of the two channels, resampled: compare with the same signal made at 22050 Hz
    t = np.arange(22050) / 22050
    expected = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.25 * np.sin(2 * np.pi * 660 * t)) / 2
    middle = slice(1000, -1000)  # away from the resampling filter's edge effects
    np.testing.assert_allclose(audio[middle], expected[middle], atol=2e-3)

    train = (filelists / "myvoice_audio_text_train_filelist.txt").read_text().splitlines()
    val = (filelists / "myvoice_audio_text_val_filelist.txt").read_text().splitlines()
    assert (len(train), len(val)) == (4, 2)
    ids = sorted(line.split("|")[0] for line in train + val)
    assert ids == [f"MyVoice/wavs/MY-{i:03d}.wav" for i in range(6)]
    assert "MyVoice/wavs/MY-003.wav|Normalised text number 3." in train + val
    mel_train = (filelists / "myvoice_mel_text_train_filelist.txt").read_text().splitlines()
    assert mel_train == [line.replace("/wavs/", "/mels/").replace(".wav|", ".pt|") for line in train]
    # the lists work with -d <parent of the output folder>, as the script prints
    dataset = TextMelDataset(str(filelists / "myvoice_audio_text_train_filelist.txt"), str(output.parent))
    assert dataset[0][1].shape == (80, 87)

    # same seed, same split; a rerun skips converted clips
    mtime = os.stat(output / "wavs" / "MY-000.wav").st_mtime_ns
    assert own.main(argv) == 0
    assert (filelists / "myvoice_audio_text_train_filelist.txt").read_text().splitlines() == train
    assert os.stat(output / "wavs" / "MY-000.wav").st_mtime_ns == mtime


def test_own_dataset_problems_reported_together(own_source, tmp_path):
    own = load_script("prepare_own_dataset")
    os.remove(own_source / "wavs" / "MY-002.wav")
    with open(own_source / "metadata.csv", "a") as f:
        f.write("MY-009|a|b|c\nMY-001|again\n")
    with pytest.raises(DataError) as err:
        own.read_metadata(str(own_source))
    message = str(err.value)
    assert message.startswith("3 problem(s)")
    assert "metadata.csv:3: no wavs/MY-002.wav" in message
    assert "metadata.csv:7: 4 fields" in message
    assert "metadata.csv:8: ID MY-001 repeats line 2" in message


def test_own_dataset_pipe_inside_a_two_column_transcript_is_reported(own_source):
    own = load_script("prepare_own_dataset")
    (own_source / "metadata.csv").write_text(
        "".join(f"MY-{i:03d}|Text {i}.\n" for i in range(5)) + "MY-005|Still he | resisted.\n")
    with pytest.raises(DataError) as err:
        own.read_metadata(str(own_source))
    assert str(err.value).splitlines()[1] == (
        f"{own_source / 'metadata.csv'}:6: 3 fields separated by '|', but most lines are ID|transcript "
        f"(a '|' inside the transcript? '|' only separates fields)")


def test_own_dataset_rerun_with_another_rate_reconverts_and_prints_the_rate(own_source, tmp_path, capsys):
    own = load_script("prepare_own_dataset")
    output = tmp_path / "datasets" / "MyVoice"
    argv = [str(own_source), str(output), "--filelist-dir", str(tmp_path / "filelists"), "--num-workers", "1"]
    assert own.main(argv) == 0
    assert soundfile.info(str(output / "wavs" / "MY-000.wav")).samplerate == 22050
    capsys.readouterr()
    assert own.main(argv + ["--sampling-rate", "8000"]) == 0
    assert soundfile.info(str(output / "wavs" / "MY-000.wav")).samplerate == 8000
    printed = capsys.readouterr().out
    assert "6 clips: 6 converted, 0 already there" in printed
    assert printed.rstrip().endswith("--sampling-rate 8000 --mel-fmax 4000")


def test_own_dataset_split_fraction_is_seeded():
    own = load_script("prepare_own_dataset")
    clips = [own.Clip(f"c{i}", "t", "s", i) for i in range(100)]
    train, val = own.split_clips(clips, 0.05, seed=7)
    assert (len(train), len(val)) == (95, 5)
    assert own.split_clips(clips, 0.05, seed=7)[1] == val
    assert own.split_clips(clips, 0.05, seed=8)[1] != val
    assert {c.clip_id for c in train}.isdisjoint(c.clip_id for c in val)
