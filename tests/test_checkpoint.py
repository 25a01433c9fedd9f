"""Checkpoints: atomic saves, safe loads, the three formats, model recognition."""

import collections
import os

import pytest
import torch

from common import checkpoint as ckpt_module
from common.checkpoint import (atomic_copy, checkpoint_format, load_checkpoint,
                               load_model_checkpoint, model_name_of_state_dict, save_checkpoint,
                               state_dict_to_float32, strip_module_prefix)
from common.errors import CheckpointError, UserError


def tacotron2_sd(prefix: str = "", dtype=torch.float32):
    return collections.OrderedDict([
        (prefix + "embedding.weight", torch.randn(148, 8, dtype=dtype)),
        (prefix + "decoder.attention_rnn.weight_ih", torch.randn(4, 4, dtype=dtype)),
        (prefix + "postnet.convolutions.0.1.num_batches_tracked", torch.tensor(7)),
    ])


def waveglow_sd(prefix: str = ""):
    return collections.OrderedDict([
        (prefix + "upsample.weight", torch.randn(80, 80, 4)),
        (prefix + "WN.0.in_layers.0.weight_g", torch.randn(4, 1, 1)),
        (prefix + "convinv.0.conv.weight", torch.randn(8, 8, 1)),
    ])


def test_round_trip(tmp_path):
    path = str(tmp_path / "checkpoint_Tacotron2_3.pt")
    state = {"format_version": 1, "model_name": "Tacotron2", "epoch": 3, "iteration": 120,
             "config": {"n_symbols": 148, "mask_padding": False}, "state_dict": tacotron2_sd(),
             "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
             "rng": {"torch": torch.get_rng_state(), "python": [3, (1, 2), None]},
             "audio": {"sampling_rate": 22050, "mel_fmax": 8000.0}}
    save_checkpoint(state, path)
    loaded = load_checkpoint(path)
    assert loaded.keys() == state.keys()
    for key, value in state["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], value)
    assert loaded["config"] == state["config"] and loaded["audio"] == state["audio"]
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert os.listdir(tmp_path) == ["checkpoint_Tacotron2_3.pt"]  # no temp files left
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~ckpt_module._UMASK)


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint_WaveGlow_last.pt")
    save_checkpoint({"epoch": 1, "config": {}, "state_dict": waveglow_sd()}, path)
    before = open(path, "rb").read()

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # e.g. the job is killed mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2, "config": {}, "state_dict": waveglow_sd()}, path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["checkpoint_WaveGlow_last.pt"]

    fresh = str(tmp_path / "checkpoint_WaveGlow_2.pt")
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"state_dict": {}}, fresh)
    assert not os.path.exists(fresh)


def test_atomic_copy(tmp_path):
    src = str(tmp_path / "checkpoint_Tacotron2_5.pt")
    save_checkpoint({"epoch": 5, "config": {}, "state_dict": tacotron2_sd()}, src)
    dst = str(tmp_path / "checkpoint_Tacotron2_last.pt")
    atomic_copy(src, dst)
    assert not os.path.islink(dst)
    assert open(src, "rb").read() == open(dst, "rb").read()
    assert load_checkpoint(dst)["epoch"] == 5


def test_strip_module_prefix_only_leading():
    sd = collections.OrderedDict([("module.embedding.weight", 1), ("module.1.decoder.x", 2),
                                  ("postnet.module.y", 3), ("WN.0.module.z", 4)])
    assert list(strip_module_prefix(sd).items()) == [
        ("embedding.weight", 1), ("decoder.x", 2), ("postnet.module.y", 3), ("WN.0.module.z", 4)]


def test_checkpoint_format():
    sd = tacotron2_sd()
    assert checkpoint_format({"format_version": 1, "epoch": 0, "state_dict": sd}) == "ours"
    assert checkpoint_format({"epoch": 0, "config": {}, "state_dict": sd}) == "v1.0"
    ngc = {"epoch": 0, "config": {}, "state_dict": sd, "optimizer": {}, "scaler": {},
           "cuda_rng_state_all": [], "random_rng_states_all": []}
    assert checkpoint_format(ngc) == "ngc"
    assert checkpoint_format({"epoch": 0, "config": {}, "state_dict": sd, "amp": {}}) == "ngc"
    assert checkpoint_format({"state_dict": sd}) == "ngc"  # e.g. a hub file without config
    with pytest.raises(CheckpointError, match="state_dict"):
        checkpoint_format({"epoch": 0})


def test_model_name_of_state_dict():
    assert model_name_of_state_dict(tacotron2_sd()) == "Tacotron2"
    assert model_name_of_state_dict(tacotron2_sd("module.")) == "Tacotron2"
    assert model_name_of_state_dict(waveglow_sd()) == "WaveGlow"
    assert model_name_of_state_dict(waveglow_sd("module.")) == "WaveGlow"
    assert model_name_of_state_dict({"fc.weight": torch.zeros(1)}) is None


def test_reference_state_dict_names_are_recognised():
    reference = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")
    for name, expected in [("tacotron2_state_dict.txt", "Tacotron2"),
                           ("waveglow_state_dict.txt", "WaveGlow"),
                           ("waveglow256_state_dict.txt", "WaveGlow")]:
        listing = os.path.join(reference, name)
        keys = [line.split("\t")[0] for line in open(listing) if line.strip()
                and not line.startswith("#")]
        assert model_name_of_state_dict(dict.fromkeys(keys)) == expected


def test_state_dict_to_float32():
    sd = tacotron2_sd(dtype=torch.float16)
    sd["bf"] = torch.ones(2, dtype=torch.bfloat16)
    out = state_dict_to_float32(sd)
    assert out["embedding.weight"].dtype == torch.float32
    assert out["bf"].dtype == torch.float32
    assert out["postnet.convolutions.0.1.num_batches_tracked"].dtype == torch.int64
    torch.testing.assert_close(out["embedding.weight"], sd["embedding.weight"].float())


def test_load_model_checkpoint_v1_fp16_with_prefix(tmp_path):
    path = str(tmp_path / "checkpoint_Tacotron2_1500")  # v1.0 files have no extension
    sd = tacotron2_sd("module.", dtype=torch.float16)
    torch.save({"epoch": 1500, "config": {"n_symbols": 148}, "state_dict": sd}, path)
    ckpt, state_dict = load_model_checkpoint(path, "Tacotron2")
    assert checkpoint_format(ckpt) == "v1.0"
    assert list(state_dict) == [k[len("module."):] for k in sd]
    assert all(v.dtype in (torch.float32, torch.int64) for v in state_dict.values())


def test_wrong_model_is_named(tmp_path):
    path = str(tmp_path / "waveglow.pt")
    save_checkpoint({"epoch": 0, "config": {}, "state_dict": waveglow_sd("module.")}, path)
    with pytest.raises(CheckpointError) as info:
        load_model_checkpoint(path, "Tacotron2")
    assert str(info.value) == f"{path}: is a WaveGlow checkpoint, expected Tacotron2"
    other = str(tmp_path / "other.pt")
    save_checkpoint({"state_dict": {"fc.weight": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="neither a Tacotron2 nor a WaveGlow"):
        load_model_checkpoint(other, "WaveGlow")


class Payload:
    """Stands for arbitrary code that a malicious pickle could run."""


@pytest.mark.parametrize("case", ["missing", "text", "empty", "truncated", "list", "no state_dict",
                                  "pickled object", "directory"])
def test_bad_files_give_checkpoint_errors(tmp_path, case):
    path = str(tmp_path / f"{case.replace(' ', '_')}.pt")
    what = {"missing": "not found", "text": "not a PyTorch checkpoint",
            "empty": "not a PyTorch checkpoint", "truncated": "not a PyTorch checkpoint",
            "list": "holds a list", "no state_dict": "has no 'state_dict'",
            "pickled object": "refusing to unpickle", "directory": "not a regular file"}[case]
    if case == "text":
        open(path, "w").write("LJSpeech-1.1/wavs/LJ001-0001.wav|text\n")
    elif case == "empty":
        open(path, "wb").close()
    elif case == "truncated":
        torch.save({"state_dict": tacotron2_sd()}, path)
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 2])
    elif case == "list":
        torch.save([1, 2], path)
    elif case == "no state_dict":
        torch.save({"epoch": 1, "model": {}}, path)
    elif case == "pickled object":
        torch.save({"state_dict": tacotron2_sd(), "args": Payload()}, path)
    elif case == "directory":
        os.mkdir(path)
    with pytest.raises(CheckpointError, match=what) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(path + ": ")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UserError)


def test_link_or_copy_replaces_the_last_checkpoint_atomically(tmp_path):
    from common.checkpoint import link_or_copy, load_checkpoint, save_checkpoint
    first, second, last = tmp_path / "c_0.pt", tmp_path / "c_1.pt", tmp_path / "c_last.pt"
    save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "epoch": 0}, str(first))
    save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 1}, str(second))
    link_or_copy(str(first), str(last))
    assert load_checkpoint(str(last))["epoch"] == 0
    link_or_copy(str(second), str(last))
    assert load_checkpoint(str(last))["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c_0.pt", "c_1.pt", "c_last.pt"]
