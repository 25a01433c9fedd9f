"""train.py on bad flags and inputs: one clear error before anything is written; a resumed epoch's
mean loss; warnings where a flag is silently overridden."""
from __future__ import annotations

import pytest
import torch

import tacotron2
import train
from common.arguments import audio_config_from_args
from common.checkpoint import save_checkpoint
from common.errors import UserError
from tacotron2.text_split import read_text_lines
from training_helpers import read_log, tacotron2_args, tiny_filelist, values, waveglow_args, write_noise_clips


@pytest.mark.parametrize("extra, message", [
    (("--epochs-per-checkpoint", "0"), "--epochs-per-checkpoint 0: expected at least 1"),
    (("-bs", "0"), "-bs/--batch-size 0: expected at least 1"),
    (("--epochs", "0"), "--epochs 0: expected at least 1"),
    (("--seed", "-1"), f"--seed -1: expected 0 <= seed < {2 ** 32 - 1024}"),
    (("--profile-steps", "-2"), "--profile-steps -2: expected at least 0"),
])
def test_bad_counts_are_one_line_errors_before_anything_is_written(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, tiny_filelist(tmp_path, 2), 1, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {message}"
    assert not out.exists()


def no_cpp_compiler():
    from torch._inductor import exc
    raise exc.InvalidCxxCompiler


@pytest.mark.parametrize("model", ["Tacotron2", "WaveGlow"])
def test_compiling_without_a_compiler_is_a_one_line_error_before_anything_is_written(tmp_path, capsys,
                                                                                    monkeypatch, model):
    from torch._inductor import cpp_builder
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_cpp_compiler)
    out = tmp_path / "out"
    if model == "Tacotron2":
        argv, flag = tacotron2_args(out, tiny_filelist(tmp_path, 2), 1, "--torch-compile"), "--torch-compile"
    else:
        filelist = write_noise_clips(tmp_path / "clips", n_clips=2, n_samples=2048)
        argv = waveglow_args(out, tmp_path / "clips", filelist, 1, 2, 2048, "--wn-compile-block")
        flag = "--wn-compile-block"
    assert train.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {flag} on the CPU needs a C++ compiler (g++ or clang++, or CXX=path): none found")
    assert not out.exists()


def test_compiling_on_a_gpu_needs_a_c_compiler_for_triton(monkeypatch):
    from common import compiler
    monkeypatch.setattr(compiler.shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(UserError, match=r"^--torch-compile on a GPU needs a C compiler for Triton"):
        compiler.require_compiler(torch.device("cuda"), "--torch-compile")
    monkeypatch.setenv("CC", "/opt/cc")
    compiler.require_compiler(torch.device("cuda"), "--torch-compile")
    monkeypatch.delenv("CC")
    monkeypatch.setattr(compiler.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "clang" else None)
    compiler.require_compiler(torch.device("cuda"), "--torch-compile")


def test_output_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "out.txt"
    out.write_text("not a folder\n")
    assert train.main(tacotron2_args(out, tiny_filelist(tmp_path, 2), 1)) == 2
    expected = f"error: {out}: exists and is not a folder (expected an output folder for -o)"
    assert capsys.readouterr().err.strip() == expected


def test_a_missing_checkpoint_leaves_no_output_folder(tmp_path, capsys):
    out = tmp_path / "out"
    args = tacotron2_args(out, tiny_filelist(tmp_path, 2), 1, "--checkpoint-path", str(tmp_path / "nothere.pt"))
    assert train.main(args) == 2
    assert "checkpoint file not found" in capsys.readouterr().err
    assert not out.exists()  # no log with only PARAMETER lines, no tensorboard folder


def test_problems_of_a_list_used_for_training_and_validation_are_reported_once(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("LJSpeech-tiny/wavs/missing.wav|Hello.\n", encoding="utf-8")
    assert train.main(tacotron2_args(tmp_path / "out", bad, 1)) == 2  # the helper validates on the same list
    err = capsys.readouterr().err
    assert err.count("missing.wav") == 1 and err.startswith("error: 1 problem(s)")


def test_a_mel_list_without_load_mel_from_disk_gets_a_hint(tmp_path, capsys):
    (tmp_path / "mels").mkdir()
    torch.save(torch.zeros(80, 10), tmp_path / "mels" / "a.pt")
    mel_list = tmp_path / "mels.txt"
    mel_list.write_text("mels/a.pt|Hello.\n", encoding="utf-8")
    args = tacotron2_args(tmp_path / "out", mel_list, 1)
    args[args.index("-d") + 1] = str(tmp_path)
    assert train.main(args) == 2
    assert "it looks like a saved mel: Tacotron 2 reads mels with --load-mel-from-disk" in capsys.readouterr().err


@pytest.fixture
def small_checkpoint(tmp_path):
    """An our-format Tacotron 2 checkpoint of the tests' small config, epoch 0 finished."""
    train_list = tiny_filelist(tmp_path, 2)
    config = tacotron2.config_from_args(train.parse_args(tacotron2_args("unused", train_list, 1)))
    path = tmp_path / "small.pt"
    save_checkpoint({"format_version": 1, "model_name": "Tacotron2", "epoch": 0, "iteration": 1, "config": config,
                     "state_dict": tacotron2.build_model(config).state_dict()}, str(path))
    return path, train_list


def test_an_ignore_layers_name_matching_no_layer_is_an_error(small_checkpoint, tmp_path, capsys):
    path, train_list = small_checkpoint
    out = tmp_path / "out"
    args = tacotron2_args(out, train_list, 1, "--warm-start", str(path), "--ignore-layers", "embeding.weight")
    assert train.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--ignore-layers embeding.weight: no such layer in this Tacotron2" in err
    assert not out.exists()


def test_resuming_with_other_model_flags_warns_that_the_checkpoint_config_wins(small_checkpoint, tmp_path, capsys):
    path, train_list = small_checkpoint
    args = tacotron2_args(tmp_path / "out", train_list, 1, "--checkpoint-path", str(path), "--decoder-rnn-dim", "48")
    assert train.main(args) == 0
    captured = capsys.readouterr()
    assert "ignoring decoder_rnn_dim 48 (checkpoint: 32)" in captured.err
    assert "nothing to do for --epochs 1" in captured.out


def test_resuming_with_other_audio_flags_warns(small_checkpoint, tmp_path, capsys):
    path, train_list = small_checkpoint
    ckpt = torch.load(path, weights_only=True)
    ckpt["audio"] = audio_config_from_args(train.parse_args(tacotron2_args("unused", train_list, 1)))
    save_checkpoint(ckpt, str(path))
    args = tacotron2_args(tmp_path / "out", train_list, 1, "--checkpoint-path", str(path), "--mel-fmax", "7600")
    assert train.main(args) == 0
    assert ("was trained with other audio settings: --mel-fmax 7600 (checkpoint: 8000)"
            in capsys.readouterr().err)


class StopAfterTwoSteps:
    """StopRequest stand-in: a stop is requested during the second step (train.py reads it once a step)."""

    def __init__(self):
        self.reads = 0

    @property
    def requested(self) -> bool:
        self.reads += 1
        return self.reads >= 2


def test_a_run_stopped_mid_epoch_and_resumed_logs_what_an_uninterrupted_run_logs(tmp_path, monkeypatch):
    """The same losses step by step (dropout draws included) and the same mean loss of the epoch
    that was cut in two."""
    train_list = tiny_filelist(tmp_path, 6)  # batch 2: three steps an epoch
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert train.main(tacotron2_args(whole, train_list, 2)) == 0
    with monkeypatch.context() as patch:
        patch.setattr(train, "StopRequest", StopAfterTwoSteps)
        assert train.main(tacotron2_args(split, train_list, 2)) == 0
    assert train.main(tacotron2_args(split, train_list, 2, "--resume-from-last")) == 0
    whole_log, split_log = read_log(whole / "nvlog.json"), read_log(split / "nvlog.json")
    losses = values(split_log, "train_iter_loss")
    assert [step for step, _ in losses] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    for key in ("train_iter_loss", "train_epoch_avg_loss", "val_loss"):
        assert values(split_log, key) == values(whole_log, key), key
    assert values(split_log, "train_epoch_avg_loss")[0][1] == pytest.approx(sum(v for _, v in losses[:3]) / 3)


def test_waveglow_crops_survive_a_mid_epoch_resume_whatever_the_loader_workers(tmp_path, monkeypatch):
    """Clips longer than the segment, so every step crops at random: an uninterrupted run without
    loader workers and one stopped mid-epoch and resumed with two workers train on the same crops."""
    filelist = write_noise_clips(tmp_path / "clips", n_clips=6, n_samples=4096)
    common = (tmp_path / "clips", filelist, 2, 2, 2048)
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert train.main(waveglow_args(whole, *common)) == 0
    with monkeypatch.context() as patch:
        patch.setattr(train, "StopRequest", StopAfterTwoSteps)
        assert train.main(waveglow_args(split, *common, "--num-workers", "2")) == 0
    assert train.main(waveglow_args(split, *common, "--num-workers", "2", "--resume-from-last")) == 0
    whole_log, split_log = read_log(whole / "nvlog.json"), read_log(split / "nvlog.json")
    assert len(values(split_log, "train_iter_loss")) == 6
    for key in ("train_iter_loss", "train_epoch_avg_loss", "val_loss"):
        assert values(split_log, key) == values(whole_log, key), key


def test_inference_input_that_is_a_folder_is_named_as_such(tmp_path):
    with pytest.raises(UserError, match="is a folder"):
        read_text_lines(str(tmp_path))


def test_flag_prefixes_are_not_abbreviations(capsys):
    with pytest.raises(SystemExit):  # not --epochs-per-checkpoint
        train.parse_args(["-m", "Tacotron2", "-o", "x", "--epochs", "1", "-bs", "1", "--epochs-per", "5"])
    assert "unrecognized arguments: --epochs-per 5" in capsys.readouterr().err


def test_the_recipes_unused_flags_are_accepted_and_change_nothing():
    base = ["-m", "Tacotron2", "-o", "x", "--epochs", "1", "-bs", "1"]
    args = train.parse_args(base + ["--grad-clip", "5.0", "--use-saved-learning-rate=False",
                                    "--dynamic-loss-scaling=True"])
    assert vars(args) == {**vars(train.parse_args(base)), "grad_clip": 5.0, "use_saved_learning_rate": False,
                          "dynamic_loss_scaling": True}
    assert args.grad_clip_thresh == 1.0


def test_config_file_values_become_defaults_and_command_line_flags_win(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text('{"audio": {"mel-fmax": 7000.0, "sampling-rate": "16000"}, '
                      '"training": {"anneal_factor": 0.3, "--weight-decay": 0}}', encoding="utf-8")
    base = ["-m", "Tacotron2", "-o", "x", "--epochs", "1", "-bs", "1", "--config-file", str(config)]
    args = train.parse_args(base)
    assert (args.mel_fmax, args.sampling_rate, args.anneal_factor, args.weight_decay) == (7000.0, 16000, 0.3, 0)
    assert train.parse_args(base + ["--mel-fmax", "8000"]).mel_fmax == 8000.0
    # switches take booleans (the string "false" too), list flags lists or space-separated strings
    config.write_text('{"run": {"amp": "false", "cudnn-benchmark": "true", "anneal-steps": "500 1000", '
                      '"text-cleaners": "basic_cleaners", "load-mel-from-disk": false}}', encoding="utf-8")
    args = train.parse_args(base)
    assert (args.fp16_run, args.cudnn_benchmark, args.anneal_steps, args.text_cleaners, args.load_mel_from_disk) == (
        False, True, ["500", "1000"], ["basic_cleaners"], False)
    assert train.learning_rate_at(0, 1e-3, args.anneal_steps, 0.1) == 1e-3
    config.write_text('{"run": {"amp": true, "anneal-steps": [500, 1000]}}', encoding="utf-8")
    args = train.parse_args(base)
    assert args.fp16_run is True and train.learning_rate_at(1000, 1e-3, args.anneal_steps, 0.1) == pytest.approx(1e-5)
    for text, message in (('{"audio": {"mel-fmaks": 1}}', "audio.mel-fmaks: not a flag of train.py"),
                          ('{"training": {"anneal-factor": 0.2}}', "0.2 is not one of 0.1, 0.3"),
                          ('{"audio": {"hop-length": "wide"}}', "audio.hop-length: invalid literal"),
                          ('{"audio": 1}', "expected {group: {flag-name: value}}"),
                          ('{"run": {"epochs": 3}}', "run.epochs: give --epochs on the command line"),
                          ('{"run": {"amp": "maybe"}}', "run.amp:"),
                          ('{"run": {"anneal-steps": {"a": 1}}}', "expected a list"),
                          ('{"run": {"num-workers": 1.7}}', "1.7: expected an integer"),
                          ('{"run": {"learning-rate": true}}', "True: expected a number"),
                          ('{"run": {"cudnn-benchmark": 5}}', "5: expected true or false"),
                          ('{"run": {"log-file": false}}', "False: expected text"),
                          ('{"audio": {"mel-fmax": null}}', "null: expected a value"),
                          ('{"audio": ', "cannot read it as JSON")):
        config.write_text(text, encoding="utf-8")
        with pytest.raises(SystemExit):
            train.parse_args(base)
        assert message in capsys.readouterr().err


def test_a_mel_fmax_above_half_the_sampling_rate_is_an_error_before_anything_is_written(tmp_path, capsys):
    # 8 kHz audio with the default --mel-fmax 8000: 17 of the 80 mel filters would be empty
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, tiny_filelist(tmp_path, 2), 1, "--sampling-rate", "8000")) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --mel-fmax 8000 is above half of --sampling-rate 8000 (4000 Hz): the mel channels "
                   "above it would be empty (expected --mel-fmax 4000 or lower)")
    assert not out.exists()


def test_resume_from_last_without_a_last_link_takes_the_newest_numbered_checkpoint(tmp_path, capsys):
    import argparse

    from common.run_state import find_resume_checkpoint
    out = tmp_path / "out"
    out.mkdir()
    for name in ("checkpoint_Tacotron2_2.pt", "checkpoint_Tacotron2_10.pt", "checkpoint_WaveGlow_50.pt",
                 "checkpoint_Tacotron2_11.pt.tmp"):
        (out / name).write_bytes(b"x")
    args = argparse.Namespace(checkpoint_path="", resume_from_last=True, output=str(out), model_name="Tacotron2")
    assert find_resume_checkpoint(args) == str(out / "checkpoint_Tacotron2_10.pt")
    # a last link whose target is gone (the recipe's symlink, moved or synced without it)
    (out / "checkpoint_Tacotron2_last.pt").symlink_to(tmp_path / "gone" / "checkpoint_Tacotron2_10.pt")
    assert find_resume_checkpoint(args) == str(out / "checkpoint_Tacotron2_10.pt")
    assert "a link to a missing file; resuming from the newest numbered checkpoint" in capsys.readouterr().out
    args.output = str(tmp_path / "empty")
    assert find_resume_checkpoint(args) is None
