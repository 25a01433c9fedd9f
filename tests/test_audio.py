"""Wav I/O (bad inputs named clearly, atomic 16-bit writes) and the audio/boolean flags."""

import argparse
import os
import struct

import numpy as np
import pytest
import soundfile
import torch

from common.arguments import add_audio_args, add_bool_flag, audio_config_from_args, str2bool
from common.audio import check_wav, load_wav, save_wav
from common.errors import AudioError, UserError


def test_load_int16_scales_by_32768(tmp_path):
    samples = np.array([-32768, -16384, 0, 1, 16384, 32767] * 100, dtype=np.int16)
    path = str(tmp_path / "a.wav")
    soundfile.write(path, samples, 22050, subtype="PCM_16")
    audio = load_wav(path, 22050)
    assert audio.dtype == torch.float32 and audio.shape == (600,)
    np.testing.assert_array_equal(audio.numpy(), samples.astype(np.float32) / 32768.0)
    check_wav(path, 22050)


def test_load_float_file_as_is(tmp_wav):
    data = np.linspace(-0.9, 0.9, 2000).astype(np.float32)
    audio = load_wav(tmp_wav("f.wav", audio=data, subtype="FLOAT"), 22050)
    np.testing.assert_array_equal(audio.numpy(), data)


def test_sampling_rate_none_skips_rate_check(tmp_wav):
    assert load_wav(tmp_wav(sampling_rate=16000)).shape == (4410,)


def truncate_data_chunk(path: str, keep_bytes_of_data: int) -> None:
    with open(path, "rb") as f:
        raw = f.read()
    data_at = raw.index(b"data") + 8
    declared = struct.unpack("<I", raw[data_at - 4:data_at])[0]
    assert declared > keep_bytes_of_data
    with open(path, "wb") as f:
        f.write(raw[:data_at + keep_bytes_of_data])


def bad_files(tmp_path, tmp_wav):
    missing = str(tmp_path / "missing.wav")
    garbage = str(tmp_path / "garbage.wav")
    with open(garbage, "wb") as f:
        f.write(os.urandom(200))
    empty = str(tmp_path / "empty.wav")
    open(empty, "wb").close()
    truncated = tmp_wav("truncated.wav", n_samples=5000)
    truncate_data_chunk(truncated, 3001)
    return {
        "missing": (missing, "not found"),
        "garbage": (garbage, "not a readable audio file"),
        "empty": (empty, "empty file"),
        "truncated": (truncated, r"truncated.*3001 of 10000 bytes"),
        "rate": (tmp_wav("rate.wav", sampling_rate=16000), r"16000 Hz \(expected 22050 Hz"),
        "stereo": (tmp_wav("stereo.wav", channels=2), r"2 channels \(expected mono\)"),
        "no samples": (tmp_wav("zero.wav", audio=np.zeros(0, np.float32)), "no audio samples"),
        "directory": (str(tmp_path), "not a regular file"),
    }


@pytest.mark.parametrize("case", ["missing", "garbage", "empty", "truncated", "rate", "stereo",
                                  "no samples", "directory"])
@pytest.mark.parametrize("reader", [load_wav, check_wav])
def test_bad_input_names_the_file(case, reader, tmp_path, tmp_wav):
    path, what = bad_files(tmp_path, tmp_wav)[case]
    with pytest.raises(AudioError, match=what) as info:
        reader(path, 22050)
    message = str(info.value)
    assert message.startswith(path + ": ")
    assert "\n" not in message
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_truncation_is_caught_although_libsndfile_hides_it(tmp_path, tmp_wav):
    path = tmp_wav("cut.wav", n_samples=5000)
    truncate_data_chunk(path, 4000)
    assert soundfile.info(path).frames == 2000  # libsndfile quietly reports the shorter clip
    with pytest.raises(AudioError, match="truncated"):
        load_wav(path, 22050)


@pytest.mark.parametrize("reader", [load_wav, check_wav])
def test_a_single_missing_byte_is_truncation(reader, tmp_path, tmp_wav):
    path = tmp_wav("cut.wav", n_samples=5000)  # 10000 data bytes declared
    truncate_data_chunk(path, 9998)  # one whole sample short
    with pytest.raises(AudioError, match="truncated: the data chunk holds 9998 of 10000 bytes"):
        reader(path, 22050)


def test_streamed_wav_with_an_unknown_data_size_loads(tmp_path, tmp_wav):
    """Writers that stream to a pipe cannot seek back to fill in the sizes; they leave 0xFFFFFFFF."""
    declared = 0xFFFFFFFF
    path = tmp_wav("streamed.wav", n_samples=3000)
    expected = load_wav(path, 22050)
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    data_at = raw.index(b"data") + 8
    raw[4:8] = struct.pack("<I", declared)
    raw[data_at - 4:data_at] = struct.pack("<I", declared)
    with open(path, "wb") as f:
        f.write(raw)
    check_wav(path, 22050)
    torch.testing.assert_close(load_wav(path, 22050), expected, atol=0, rtol=0)


def test_odd_chunks_before_data_and_trailing_chunks_are_fine(tmp_path):
    samples = (np.arange(1000) % 200 - 100).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt
              + b"junk" + struct.pack("<I", 3) + b"abc\x00"  # odd size + pad byte
              + b"data" + struct.pack("<I", len(samples)) + samples
              + b"LIST" + struct.pack("<I", 4) + b"INFO")
    path = str(tmp_path / "chunks.wav")
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    check_wav(path, 22050)
    assert load_wav(path, 22050).shape == (1000,)


def test_non_finite_float_samples(tmp_wav):
    data = np.zeros(1000, np.float32)
    data[10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        load_wav(tmp_wav("nan.wav", audio=data, subtype="FLOAT"))


def test_save_wav_writes_int16_without_normalising_quiet_audio(tmp_path):
    audio = torch.linspace(-0.5, 0.5, 3000)
    path = str(tmp_path / "out.wav")
    save_wav(path, audio, 22050)
    info = soundfile.info(path)
    assert (info.subtype, info.samplerate, info.channels) == ("PCM_16", 22050, 1)
    samples, _ = soundfile.read(path, dtype="int16")
    np.testing.assert_array_equal(samples, np.round(audio.numpy().astype(np.float64) * 32768))
    torch.testing.assert_close(load_wav(path, 22050), audio, atol=1 / 32768, rtol=0)


def test_save_wav_normalises_only_when_clipping(tmp_path):
    path = str(tmp_path / "loud.wav")
    audio = np.sin(np.linspace(0, 20, 4000)) * 3.0
    save_wav(path, audio, 16000)
    samples, rate = soundfile.read(path, dtype="int16")
    assert rate == 16000
    assert np.abs(samples).max() == 32767
    np.testing.assert_allclose(samples / 32768.0, audio / np.abs(audio).max(), atol=2 / 32768)
    save_wav(path, np.array([1.0, -1.0, 0.25]), 16000)  # full scale does not clip
    samples, _ = soundfile.read(path, dtype="int16")
    np.testing.assert_array_equal(samples, [32767, -32768, 8192])


def test_save_wav_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "keep.wav")
    save_wav(path, np.zeros(100), 22050)
    before = open(path, "rb").read()

    def failing_write(file, *args, **kwargs):
        file.write(b"RIFF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(soundfile, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        save_wav(path, np.ones(100) * 0.5, 22050)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["keep.wav"]


# -- flags ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("YES", True), ("1", True),
                                         ("false", False), ("False", False), ("no", False),
                                         ("0", False)])
def test_str2bool(text, value):
    assert str2bool(text) is value


def test_str2bool_rejects_other_words():
    with pytest.raises(argparse.ArgumentTypeError, match="maybe"):
        str2bool("maybe")


@pytest.mark.parametrize("argv, value", [([], False), (["--cudnn-benchmark"], True),
                                         (["--cudnn-benchmark=True"], True),
                                         (["--cudnn-benchmark", "False"], False),
                                         (["--cudnn-benchmark=false"], False),
                                         (["--cudnn-benchmark", "--other", "3"], True)])
def test_bool_flag_forms(argv, value):
    parser = argparse.ArgumentParser()
    add_bool_flag(parser, "--cudnn-benchmark", default=False, help="x")
    parser.add_argument("--other")
    assert parser.parse_args(argv).cudnn_benchmark is value


def test_bool_flag_in_group_with_aliases_and_true_default(capsys):
    parser = argparse.ArgumentParser()
    group = parser.add_argument_group("training")
    add_bool_flag(group, "--fp16-run", "--amp", dest="amp", default=True)
    assert parser.parse_args([]).amp is True
    assert parser.parse_args(["--fp16-run=no"]).amp is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--amp=perhaps"])
    assert "expected a boolean" in capsys.readouterr().err


def test_audio_args_defaults_and_config():
    parser = argparse.ArgumentParser()
    add_audio_args(parser)
    args = parser.parse_args([])
    expected = {"max_wav_value": 32768.0, "sampling_rate": 22050, "filter_length": 1024,
                "hop_length": 256, "win_length": 1024, "mel_fmin": 0.0, "mel_fmax": 8000.0}
    assert audio_config_from_args(args) == expected
    args = parser.parse_args(["--sampling-rate", "16000", "--mel-fmax", "7600"])
    args.n_mel_channels = 80
    config = audio_config_from_args(args)
    assert config["sampling_rate"] == 16000 and config["mel_fmax"] == 7600.0
    assert config["n_mel_channels"] == 80
