"""--warm-start: weights only from another run's (or NVIDIA's) checkpoint, everything else fresh."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

import tacotron2
import train
import waveglow
from common.checkpoint import load_checkpoint, save_checkpoint
from common.errors import CheckpointError, UserError
from training_helpers import SMALL_WAVEGLOW, read_log, tacotron2_args, tiny_filelist, values


def small_config(train_list, **overrides) -> dict:
    args = train.parse_args(tacotron2_args("unused", train_list, 1))
    return {**tacotron2.config_from_args(args), **overrides}


def trained_looking_model(config: dict) -> torch.nn.Module:
    """A model whose weights differ visibly from any fresh init."""
    torch.manual_seed(99)
    model = tacotron2.build_model(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5)
    return model


def parameter_names(model: torch.nn.Module) -> list[str]:
    return [name for name, _ in model.named_parameters()]


@pytest.fixture
def source(tmp_path):
    """Our-format checkpoint, epoch 7, with an optimizer that has taken 5 steps, n_symbols 150."""
    train_list = tiny_filelist(tmp_path, 4)
    config = small_config(train_list, n_symbols=150)
    model = trained_looking_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(5):
        optimizer.zero_grad()
        sum(p.sum() for p in model.parameters()).backward()
        optimizer.step()
    path = tmp_path / "source.pt"
    save_checkpoint({"format_version": 1, "model_name": "Tacotron2", "epoch": 7, "iteration": 70,
                     "config": config, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "sampler": {"epoch": 7, "consumed": 2, "seed": 1234}}, str(path))
    return path, train_list, model.state_dict()


def test_warm_start_loads_all_but_the_ignored_layers_and_starts_fresh(source, tmp_path, capsys):
    path, train_list, source_weights = source
    out = tmp_path / "out"
    # -lr 0: Adam then leaves every parameter where the warm start put it
    assert train.main(tacotron2_args(out, train_list, 1, "--warm-start", str(path), "-lr", "0")) == 0
    assert "fresh init kept for embedding.weight" in capsys.readouterr().out
    ckpt = load_checkpoint(str(out / "checkpoint_Tacotron2_0.pt"))
    assert ckpt["epoch"] == 0 and ckpt["iteration"] == 2  # 4 utterances / batch 2, from epoch 0
    assert [state["step"] for state in ckpt["optimizer"]["state"].values()] == [2.0] * len(
        ckpt["optimizer"]["state"])
    assert ckpt["config"]["n_symbols"] == len(tacotron2.symbols)
    weights = ckpt["state_dict"]
    names = parameter_names(tacotron2.build_model(ckpt["config"]))
    assert weights["embedding.weight"].shape == (len(tacotron2.symbols), 32)
    for name in names:
        if name != "embedding.weight":
            assert torch.equal(weights[name], source_weights[name]), name
    log = read_log(out / "nvlog.json")
    assert [step for step, _ in values(log, "train_iter_loss")] == [(0, 0), (0, 1)]


def test_changed_shapes_are_a_clear_error_unless_ignored(source, tmp_path, capsys):
    path, train_list, _ = source
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, train_list, 1, "--warm-start", str(path), "--ignore-layers")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and "embedding.weight [150, 32] in the checkpoint, [148, 32] here" in err
    assert "--ignore-layers" in err
    assert not list(out.glob("checkpoint_*"))


def test_nvidia_v1_fp16_module_prefixed_files_warm_start(tmp_path):
    train_list = tiny_filelist(tmp_path, 2)
    config = small_config(train_list)
    source = trained_looking_model(config)
    state_dict = OrderedDict(("module." + name, value.half() if value.is_floating_point() else value)
                             for name, value in source.state_dict().items())
    path = tmp_path / "v1.pt"
    torch.save({"epoch": 3, "config": config, "state_dict": state_dict}, str(path))

    model = tacotron2.build_model(config)
    fresh = train.warm_start(model, str(path), "Tacotron2", ["embedding", "decoder.gate_layer"])
    assert fresh == ["embedding.weight", "decoder.gate_layer.linear_layer.weight",
                     "decoder.gate_layer.linear_layer.bias"]
    for name, value in model.state_dict().items():
        if name not in fresh:
            assert torch.equal(value, source.state_dict()[name].half().float()), name
    assert not torch.equal(model.embedding.weight, source.embedding.weight.half().float())


def test_ignored_layers_are_whole_name_components(tmp_path):
    """"decoder.attention" names no layer: decoder.attention_rnn and decoder.attention_layer are
    other layers whose names merely start with those letters."""
    config = small_config(tiny_filelist(tmp_path, 2))
    source = trained_looking_model(config)
    path = tmp_path / "v1.pt"
    torch.save({"epoch": 3, "config": config, "state_dict": source.state_dict()}, str(path))
    torch.manual_seed(5)
    model = tacotron2.build_model(config)
    with pytest.raises(UserError, match="--ignore-layers decoder.attention: no such layer in this Tacotron2"):
        train.warm_start(model, str(path), "Tacotron2", ["decoder.attention"], check_names=True)
    assert train.warm_start(model, str(path), "Tacotron2", ["decoder.attention"]) == []
    fresh = train.warm_start(model, str(path), "Tacotron2", ["decoder.attention_rnn"], check_names=True)
    assert fresh == [name for name in source.state_dict() if name.split(".")[:2] == ["decoder", "attention_rnn"]]
    assert len(fresh) == 4  # LSTMCell: weight_ih, weight_hh, bias_ih, bias_hh


def test_waveglow_warm_starts_and_other_models_are_refused(tmp_path):
    args = train.parse_args(["-m", "WaveGlow", "-o", "x", "--epochs", "1", "-bs", "1", *SMALL_WAVEGLOW])
    config = waveglow.config_from_args(args)
    torch.manual_seed(1)
    source = waveglow.build_model(config)
    path = tmp_path / "wg.pt"
    torch.save({"epoch": 1, "config": config, "state_dict": source.state_dict()}, str(path))
    torch.manual_seed(2)
    model = waveglow.build_model(config)
    assert train.warm_start(model, str(path), "WaveGlow", ["embedding.weight"]) == []
    for name, value in model.state_dict().items():
        assert torch.equal(value, source.state_dict()[name]), name

    t2_path = tmp_path / "t2.pt"
    t2_config = small_config(tiny_filelist(tmp_path, 1))
    torch.save({"epoch": 1, "config": t2_config, "state_dict": tacotron2.build_model(t2_config).state_dict()},
               str(t2_path))
    with pytest.raises(CheckpointError, match="is a Tacotron2 checkpoint, expected WaveGlow"):
        train.warm_start(model, str(t2_path), "WaveGlow", [])


def test_warm_start_and_checkpoint_path_exclude_each_other(source, tmp_path, capsys):
    path, train_list, _ = source
    args = tacotron2_args(tmp_path / "out", train_list, 1, "--warm-start", str(path), "--checkpoint-path", str(path))
    assert train.main(args) == 2
    err = capsys.readouterr().err
    assert "--warm-start" in err and "--checkpoint-path" in err and "exclude each other" in err


def test_a_preempted_fine_tuning_run_resumes_instead_of_warm_starting_again(source, tmp_path, capsys):
    path, train_list, _ = source
    out = tmp_path / "out"
    fine_tune = ("--warm-start", str(path), "--resume-from-last")
    assert train.main(tacotron2_args(out, train_list, 1, *fine_tune)) == 0  # no last yet: warm start
    assert "Warm start from" in capsys.readouterr().out
    first = load_checkpoint(str(out / "checkpoint_Tacotron2_last.pt"))
    assert train.main(tacotron2_args(out, train_list, 2, *fine_tune)) == 0  # same command, one more epoch
    stdout = capsys.readouterr().out
    assert "is skipped" in stdout and "Resumed from" in stdout and "Warm start from" not in stdout
    steps = [step for step, _ in values(read_log(out / "nvlog.json"), "train_iter_loss")]
    assert steps == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert load_checkpoint(str(out / "checkpoint_Tacotron2_last.pt"))["iteration"] == first["iteration"] + 2
