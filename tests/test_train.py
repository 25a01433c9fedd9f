"""train.py end to end on tiny data: logs, checkpoints, resume, bad input, flags."""
from __future__ import annotations

import math
import shutil

import pytest
import torch

import tacotron2
import train
from common.checkpoint import load_checkpoint
from training_helpers import (read_log, tacotron2_args, tiny_filelist, values, waveglow_args,
                              write_noise_clips)


@pytest.fixture(scope="module")
def tacotron2_runs(tmp_path_factory):
    """Two epochs in one run, and one epoch + resume + one epoch, on 4 utterances."""
    tmp = tmp_path_factory.mktemp("t2")
    train_list = tiny_filelist(tmp, 4)
    whole, split = tmp / "whole", tmp / "split"
    assert train.main(tacotron2_args(whole, train_list, 2)) == 0
    assert train.main(tacotron2_args(split, train_list, 1)) == 0
    assert train.main(tacotron2_args(split, train_list, 2, "--resume-from-last")) == 0
    return whole, split


def test_resume_continues_exactly_like_an_uninterrupted_run(tacotron2_runs):
    whole, split = tacotron2_runs
    whole_log, split_log = read_log(whole / "nvlog.json"), read_log(split / "nvlog.json")
    for key in ("train_iter_loss", "val_loss", "train_epoch_avg_loss"):
        assert values(split_log, key) == values(whole_log, key), key
    # The resumed run trained epoch 1 only; its checkpoint equals the uninterrupted one.
    whole_ckpt = load_checkpoint(str(whole / "checkpoint_Tacotron2_last.pt"))
    split_ckpt = load_checkpoint(str(split / "checkpoint_Tacotron2_last.pt"))
    assert whole_ckpt["epoch"] == split_ckpt["epoch"] == 1
    for name, tensor in whole_ckpt["state_dict"].items():
        assert torch.equal(tensor, split_ckpt["state_dict"][name]), name


def test_log_holds_the_recipe_keys_with_sane_values(tacotron2_runs):
    whole, _ = tacotron2_runs
    log = read_log(whole / "nvlog.json")
    params = {k: v for r in log if r.get("step") == "PARAMETER" for k, v in r["data"].items()}
    assert params["model_name"] == "Tacotron2_PyT" and params["batch_size"] == 2
    iter_losses = values(log, "train_iter_loss")
    assert [step for step, _ in iter_losses] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(math.isfinite(loss) and loss > 0 for _, loss in iter_losses)
    for key in ("train_iter_items/sec", "train_iter_mels/sec", "train_epoch_items/sec",
                "train_epoch_mels/sec", "epoch_time", "val_loss"):
        assert values(log, key) and all(v > 0 for _, v in values(log, key)), key
    # The epoch loss is the true mean of the epoch's iterations, not the last one.
    for epoch in (0, 1):
        mean = sum(v for (e, _), v in iter_losses if e == epoch) / 2
        assert dict(values(log, "train_epoch_avg_loss"))[(epoch,)] == pytest.approx(mean)
    # Tacotron 2 items are input tokens, fewer than mel frames.
    assert values(log, "train_iter_items/sec")[0][1] < values(log, "train_iter_mels/sec")[0][1]
    assert values(log, "run_time")[-1][0] == ()


def test_checkpoints_are_self_describing(tacotron2_runs):
    whole, _ = tacotron2_runs
    assert sorted(p.name for p in whole.glob("checkpoint_*")) == [
        "checkpoint_Tacotron2_0.pt", "checkpoint_Tacotron2_1.pt", "checkpoint_Tacotron2_last.pt"]
    ckpt = load_checkpoint(str(whole / "checkpoint_Tacotron2_1.pt"))
    assert ckpt["model_name"] == "Tacotron2" and ckpt["epoch"] == 1 and ckpt["iteration"] == 4
    assert ckpt["symbols"] == list(tacotron2.symbols)
    assert ckpt["audio"]["sampling_rate"] == 22050 and ckpt["audio"]["hop_length"] == 256
    assert not any(name.startswith("module.") for name in ckpt["state_dict"])
    model = tacotron2.build_model(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])


def test_waveglow_resume_gives_the_same_next_losses(tmp_path):
    filelist = write_noise_clips(tmp_path / "clips", n_clips=4, n_samples=2048)
    whole, split = tmp_path / "whole", tmp_path / "split"
    common = (tmp_path / "clips", filelist)
    assert train.main(waveglow_args(whole, *common, 2, 2, 2048)) == 0
    assert train.main(waveglow_args(split, *common, 1, 2, 2048)) == 0
    assert train.main(waveglow_args(split, *common, 2, 2, 2048, "--resume-from-last")) == 0
    whole_log, split_log = read_log(whole / "nvlog.json"), read_log(split / "nvlog.json")
    assert values(split_log, "train_iter_loss") == values(whole_log, "train_iter_loss")
    assert values(split_log, "val_loss") == values(whole_log, "val_loss")
    # WaveGlow items are audio samples: 2 clips of 2048 per step.
    items_per_sec, step_time = values(whole_log, "train_iter_items/sec")[0][1], values(whole_log, "train_iter_time")[0][1]
    assert items_per_sec * step_time == pytest.approx(2 * 2048)


def test_bad_filelist_entries_are_reported_together_before_training(tmp_path, capsys):
    good = tiny_filelist(tmp_path, 2).read_text(encoding="utf-8").splitlines()
    bad_list = tmp_path / "bad.txt"
    bad_list.write_text("\n".join([good[0], "LJSpeech-tiny/wavs/missing.wav|Hello.", good[1].split("|")[0] + "|[]"])
                        + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, bad_list, 1)) == 2
    err = capsys.readouterr().err
    assert f"{bad_list}:2" in err and "missing.wav" in err
    assert f"{bad_list}:3" in err
    assert not list(out.glob("checkpoint_*"))


def test_resuming_from_a_checkpoint_of_the_other_model_is_refused(tmp_path, capsys):
    filelist = write_noise_clips(tmp_path / "clips", n_clips=2, n_samples=2048)
    assert train.main(waveglow_args(tmp_path / "wg", tmp_path / "clips", filelist, 1, 2, 2048)) == 0
    wrong = tmp_path / "wg" / "checkpoint_WaveGlow_last.pt"
    args = tacotron2_args(tmp_path / "t2", tiny_filelist(tmp_path, 2), 1, "--checkpoint-path", str(wrong))
    assert train.main(args) == 2
    assert "WaveGlow checkpoint, expected Tacotron2" in capsys.readouterr().err


def test_length_sort_pool_batches_similar_lengths_and_is_recorded(tmp_path, monkeypatch):
    """Tacotron 2 with --length-sort-pool: each batch comes from one sorted pool (so it holds
    neighbours in length), the checkpoint records the pool; WaveGlow refuses the flag."""
    train_list = tiny_filelist(tmp_path, 12)
    seen = []
    real_batch_to_device = tacotron2.batch_to_device

    def record(batch, device):
        seen.append(batch[4].tolist())  # mel lengths of the batch
        return real_batch_to_device(batch, device)

    monkeypatch.setattr(tacotron2, "batch_to_device", record)
    out = tmp_path / "sorted"
    assert train.main(tacotron2_args(out, train_list, 1, "--length-sort-pool", "12", "-bs", "3")) == 0
    lengths = sorted(n for batch in seen[:4] for n in batch)  # 4 training batches = the whole pool
    assert [sorted(batch) for batch in seen[:4]] in ([lengths[i:i + 3] for i in range(0, 12, 3)],
                                                    [lengths[i:i + 3] for i in range(9, -1, -3)])
    assert load_checkpoint(str(out / "checkpoint_Tacotron2_last.pt"))["sampler"]["sort_pool"] == 12


def test_steps_with_one_time_work_are_timed_apart_from_the_throughput(tmp_path, monkeypatch):
    """A step that captures a CUDA graph (here: one that says it did, and takes 0.5 s longer) is
    logged as one-time work and left out of the epoch's throughput; epochs without any log none."""
    import time

    from common.timing import note_one_time_work
    real_batch_to_device, calls = tacotron2.batch_to_device, []

    def first_step_captures(batch, device):
        calls.append(1)
        if len(calls) == 1:
            note_one_time_work()
            time.sleep(0.5)
        return real_batch_to_device(batch, device)

    monkeypatch.setattr(tacotron2, "batch_to_device", first_step_captures)
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, tiny_filelist(tmp_path, 6), 2, "--bench-class", "perf-train")) == 0
    records = read_log(out / "nvlog.json")
    iterations = [r for r in records if r["type"] == "LOG" and "train_iter_time" in r["data"]]
    assert [r["step"][0] for r in iterations] == [0, 0, 0, 1, 1, 1]
    assert [r["data"].get("train_iter_one_time_work") for r in iterations] == [1] + [None] * 5
    epoch_0 = iterations[1:3]  # the steps that count
    items = sum(r["data"]["train_iter_items/sec"] * r["data"]["train_iter_time"] for r in epoch_0)
    expected = items / sum(r["data"]["train_iter_time"] for r in epoch_0)
    assert values(records, "train_epoch_items/sec")[0][1] == pytest.approx(expected, rel=1e-6)
    assert values(records, "train_epoch_one_time_work_steps") == [((0,), 1)]
    assert values(records, "train_epoch_one_time_work_time")[0][1] == pytest.approx(
        iterations[0]["data"]["train_iter_time"])


def test_cuda_graphs_flag_falls_back_on_the_cpu_and_is_refused_for_waveglow(tmp_path, capsys):
    assert train.main(tacotron2_args(tmp_path / "t2", tiny_filelist(tmp_path, 2), 1, "--cuda-graphs")) == 0
    assert "--cuda-graphs needs a GPU" in capsys.readouterr().err
    filelist = write_noise_clips(tmp_path / "clips", n_clips=2, n_samples=2048)
    assert train.main(waveglow_args(tmp_path / "wg", tmp_path / "clips", filelist, 1, 2, 2048, "--cuda-graphs")) == 2
    assert "--cuda-graphs: WaveGlow has no graphed training path" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_torch_compile_trains_waveglow_like_eager(tmp_path):
    filelist = write_noise_clips(tmp_path / "clips", n_clips=4, n_samples=2048)
    common = (tmp_path / "clips", filelist, 1, 2, 2048)
    assert train.main(waveglow_args(tmp_path / "eager", *common)) == 0
    assert train.main(waveglow_args(tmp_path / "compiled", *common, "--torch-compile")) == 0
    eager = values(read_log(tmp_path / "eager" / "nvlog.json"), "train_iter_loss")
    compiled = values(read_log(tmp_path / "compiled" / "nvlog.json"), "train_iter_loss")
    assert [step for step, _ in compiled] == [step for step, _ in eager]
    assert [loss for _, loss in compiled] == pytest.approx([loss for _, loss in eager], rel=1e-4, abs=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_torch_compile_trains_tacotron2_like_eager(tmp_path):
    """The decoder's own dropouts off (the compiled step draws its masks from inductor's generator);
    the prenet's, the encoder's and the postnet's stay on and must draw the same masks. The steps that
    compiled are reported apart from the throughput."""
    common = (tiny_filelist(tmp_path, 4), 2, "--p-attention-dropout", "0", "--p-decoder-dropout", "0")
    assert train.main(tacotron2_args(tmp_path / "eager", *common)) == 0
    assert train.main(tacotron2_args(tmp_path / "compiled", *common, "--torch-compile")) == 0
    eager_log, compiled_log = read_log(tmp_path / "eager" / "nvlog.json"), read_log(tmp_path / "compiled" / "nvlog.json")
    eager, compiled = values(eager_log, "train_iter_loss"), values(compiled_log, "train_iter_loss")
    assert len(eager) == 4 and [step for step, _ in compiled] == [step for step, _ in eager]
    assert [loss for _, loss in compiled] == pytest.approx([loss for _, loss in eager], rel=1e-4, abs=1e-5)
    assert values(eager_log, "val_loss")[-1][1] == pytest.approx(values(compiled_log, "val_loss")[-1][1], rel=1e-4)
    compiles = [r["step"] for r in compiled_log if r["type"] == "LOG" and r["data"].get("train_iter_one_time_work")]
    assert compiles and (0, 0) in [tuple(step) for step in compiles]  # the first step compiled
    assert not any(r["data"].get("train_iter_one_time_work") for r in eager_log if r["type"] == "LOG")


def test_wn_time_major_trains_waveglow_like_channels_first(tmp_path, monkeypatch):
    from waveglow import model as waveglow_model
    calls = []
    shifted_taps = waveglow_model.shifted_taps  # only the time-major path calls it
    monkeypatch.setattr(waveglow_model, "shifted_taps", lambda *a: calls.append(1) or shifted_taps(*a))
    filelist = write_noise_clips(tmp_path / "clips", n_clips=4, n_samples=2048)
    common = (tmp_path / "clips", filelist, 1, 2, 2048, "--bench-class", "perf-train")
    assert train.main(waveglow_args(tmp_path / "first", *common)) == 0
    assert not calls
    assert train.main(waveglow_args(tmp_path / "major", *common, "--wn-time-major")) == 0
    assert calls  # the flag reached the WN blocks
    first = values(read_log(tmp_path / "first" / "nvlog.json"), "train_iter_loss")
    major = values(read_log(tmp_path / "major" / "nvlog.json"), "train_iter_loss")
    assert len(major) == len(first) == 2
    assert [loss for _, loss in major] == pytest.approx([loss for _, loss in first], rel=1e-4, abs=1e-5)


def test_length_sort_pool_is_refused_for_waveglow(tmp_path, capsys):
    filelist = write_noise_clips(tmp_path / "clips", n_clips=2, n_samples=2048)
    args = waveglow_args(tmp_path / "wg", tmp_path / "clips", filelist, 1, 2, 2048, "--length-sort-pool", "8")
    assert train.main(args) == 2
    assert "--length-sort-pool 8" in capsys.readouterr().err


def test_fp32_training_stops_after_repeated_non_finite_losses(tmp_path, monkeypatch):
    real_build_loss = tacotron2.build_loss

    def nan_loss(args):
        loss_fn = real_build_loss(args)
        return lambda outputs, targets: (loss_fn(outputs, targets)[0] * float("nan"), {})

    monkeypatch.setattr(tacotron2, "build_loss", nan_loss)
    train_list = tiny_filelist(tmp_path, 12)
    with pytest.raises(FloatingPointError, match="not finite for 5 steps"):
        train.main(tacotron2_args(tmp_path / "out", train_list, 1))


def change_training_loss(monkeypatch, change) -> dict:
    """Tacotron 2's loss with `change(loss, n)` applied at the n-th training step (1-based; validation
    untouched) -> {"train": training steps so far}."""
    real_build_loss = tacotron2.build_loss
    calls = {"train": 0}

    def build_loss(args):
        loss_fn = real_build_loss(args)

        def loss(outputs, targets):
            value, terms = loss_fn(outputs, targets)
            if torch.is_grad_enabled():
                calls["train"] += 1
                value = change(value, calls["train"])
            return value, terms
        return loss

    monkeypatch.setattr(tacotron2, "build_loss", build_loss)
    return calls


def test_fp32_training_stops_after_repeated_steps_skipped_for_non_finite_gradients(tmp_path, monkeypatch):
    """A finite loss whose gradients are NaN at every step: each step is skipped, so the weights would
    never change while the log shows finite losses; that stops like repeated non-finite losses."""
    # adds 0; its gradient is 0 * inf = NaN
    change_training_loss(monkeypatch, lambda loss, step: loss + 0 * torch.sqrt(loss - loss))
    out = tmp_path / "out"
    with pytest.raises(FloatingPointError, match="not finite for 5 steps"):
        train.main(tacotron2_args(out, tiny_filelist(tmp_path, 12), 2))
    losses = [loss for _, loss in values(read_log(out / "nvlog.json"), "train_iter_loss")]
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses)


def test_fp32_skips_a_step_with_non_finite_gradients_and_trains_on(tmp_path, monkeypatch):
    """One batch with NaN gradients: its step is skipped (as the fp16 loss scaler does), so the
    weights stay finite and the next steps' losses too."""
    # a NaN value and NaN gradients at the second step
    change_training_loss(monkeypatch, lambda loss, step: loss * float("nan") if step == 2 else loss)
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, tiny_filelist(tmp_path, 12), 1)) == 0
    losses = [loss for _, loss in values(read_log(out / "nvlog.json"), "train_iter_loss")]
    assert len(losses) == 6 and math.isnan(losses[1])
    assert all(math.isfinite(loss) for loss in losses[:1] + losses[2:])
    state = torch.load(out / "checkpoint_Tacotron2_last.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(tensor).all() for tensor in state.values() if tensor.is_floating_point())


class RecordingAdam(torch.optim.Adam):
    """Adam that notes, at each step, the learning rate it steps with and the norm of the gradients."""
    steps: list = []

    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        RecordingAdam.steps.append((self.param_groups[0]["lr"], float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g) for g in grads])))))
        return super().step(closure)


def test_the_optimizer_steps_with_clipped_gradients_and_the_annealed_rate(tmp_path, monkeypatch):
    monkeypatch.setattr(RecordingAdam, "steps", [])
    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, tiny_filelist(tmp_path, 4), 2, "--bench-class", "perf-train",
                                     "--grad-clip-thresh", "0.01", "--anneal-steps", "1")) == 0
    # 2 epochs of 2 steps; the rate annealed by the default factor 0.1 from epoch 1 on
    assert [lr for lr, _ in RecordingAdam.steps] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4], rel=1e-12)
    # an untrained model's gradients are far longer than 0.01: every step is clipped to that norm
    assert [norm for _, norm in RecordingAdam.steps] == pytest.approx([0.01] * 4, rel=1e-4)
    log = read_log(out / "nvlog.json")
    assert values(log, "learning_rate changed") == [((1, 2), "0.001 -> 0.0001")]


def test_a_non_finite_loss_is_left_out_of_the_epoch_mean_and_finite_steps_reset_the_count(tmp_path, monkeypatch):
    """Every other training step reports a NaN loss (its gradients stay finite): five in all, never
    two in a row, so the run goes on; the epoch's mean is that of its finite steps."""
    # a NaN value; the gradient is the loss's
    calls = change_training_loss(monkeypatch, lambda loss, step: loss + float("nan") if step % 2 else loss)
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, tiny_filelist(tmp_path, 20), 1, "--bench-class", "perf-train")) == 0
    log = read_log(out / "nvlog.json")
    losses = [loss for _, loss in values(log, "train_iter_loss")]
    assert len(losses) == 10 and calls["train"] == 10
    assert all(math.isnan(loss) for loss in losses[::2]) and all(math.isfinite(loss) for loss in losses[1::2])
    finite = losses[1::2]
    assert values(log, "train_epoch_avg_loss") == [((0,), pytest.approx(sum(finite) / len(finite)))]
    assert all(math.isfinite(loss) for _, loss in values(log, "val_loss"))


def test_perf_train_with_a_validation_set_under_one_batch_logs_no_validation_loss(tmp_path):
    """perf-train drops the last partial validation batch, as the recipe's does: with fewer validation
    utterances than a batch nothing is validated, and the log says nothing rather than val_loss NaN."""
    out = tmp_path / "out"
    train_list = tiny_filelist(tmp_path, 4)
    args = tacotron2_args(out, train_list, 1, "--bench-class", "perf-train")
    args[args.index("--validation-files") + 1] = str(tiny_filelist(tmp_path, 1, "val.txt"))
    assert train.main(args) == 0
    log = read_log(out / "nvlog.json")
    assert values(log, "train_epoch_avg_loss") and not any(
        key.startswith("val_") for record in log for key in record.get("data", {}))


def test_unknown_flags_are_an_error(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["-m", "Tacotron2", "-o", "x", "-lr", "1", "--epochs", "1", "-bs", "1", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize("flag, expected", [
    ([], (True, False)), (["--cudnn-benchmark"], (True, True)), (["--cudnn-benchmark=True"], (True, True)),
    (["--cudnn-benchmark=False"], (True, False)), (["--cudnn-enabled=False"], (False, False)),
    (["--cudnn-enabled", "false"], (False, False)),
])
def test_boolean_flags_read_false_as_false(flag, expected):
    args = train.parse_args(["-m", "WaveGlow", "-o", "x", "-lr", "1", "--epochs", "1", "-bs", "1", *flag])
    assert (args.cudnn_enabled, args.cudnn_benchmark) == expected


def test_amp_aliases_all_select_float16():
    for flag in ("--fp16-run", "--amp", "--amp-run"):
        assert train.parse_args(["-m", "Tacotron2", "-o", "x", "-lr", "1", "--epochs", "1", "-bs", "1", flag]).fp16_run


@pytest.mark.parametrize("factor, expected", [
    (0.1, [0.001, 0.0001, 1.0000000000000003e-05, 1.0000000000000002e-06]),
    (0.3, [0.001, 0.0003, 0.0001, 3e-05]),
])
def test_learning_rate_annealing_matches_the_recipe(factor, expected):
    steps = ["500", "1000", "1500"]
    got = [train.learning_rate_at(epoch, 1e-3, steps, factor) for epoch in (0, 500, 1000, 1500)]
    assert got == expected
    assert train.learning_rate_at(499, 1e-3, steps, factor) == 1e-3


def test_no_pinning_thread_beside_graph_captures():
    """A pinning thread's CUDA calls would break the captures of --cuda-graphs (built, not iterated:
    the CPU has no CUDA)."""
    args = train.parse_args(["-m", "Tacotron2", "-o", "x", "--epochs", "1", "-bs", "2"])
    dataset, sampler = list(range(4)), torch.utils.data.SequentialSampler(range(4))
    sampler.drop_last = False
    cuda = torch.device("cuda")
    assert train.make_loader(dataset, sampler, tacotron2, args, cuda, seed=0).pin_memory
    args.cuda_graphs = True
    assert not train.make_loader(dataset, sampler, tacotron2, args, cuda, seed=0).pin_memory
