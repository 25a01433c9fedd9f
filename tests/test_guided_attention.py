"""Guided attention loss: the diagonal prior, its ordering of alignments, the loss hook and a run."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

import tacotron2
import train
from tacotron2.guided_attention import guided_attention_loss, guided_attention_weights
from tacotron2.loss import Tacotron2Loss
from training_helpers import (REPO, TINY_DATA, TINY_TRAIN, TINY_VAL, env_without_gpu, read_log, tacotron2_args,
                              tiny_filelist, values)


def diagonal(n_frames: int, n_tokens: int) -> torch.Tensor:
    """One-hot attention walking the text at constant speed: step t -> token floor(t N / T)."""
    alignment = torch.zeros(n_frames, n_tokens)
    alignment[torch.arange(n_frames), torch.arange(n_frames) * n_tokens // n_frames] = 1.0
    return alignment


def lengths(*values_: int) -> torch.Tensor:
    return torch.tensor(values_, dtype=torch.long)


def test_weights_follow_the_formula_and_vanish_on_padding():
    sigma = 0.3
    weights, mask = guided_attention_weights(lengths(3, 2), lengths(4, 5), n_frames=5, n_tokens=3, sigma=sigma)
    assert weights.shape == mask.shape == (2, 5, 3) and weights.dtype == torch.float32
    for b, (n_tokens, n_frames) in enumerate([(3, 4), (2, 5)]):
        for t in range(5):
            for n in range(3):
                real = t < n_frames and n < n_tokens
                expected = 1 - math.exp(-(n / n_tokens - t / n_frames) ** 2 / (2 * sigma ** 2)) if real else 0.0
                assert bool(mask[b, t, n]) == real
                assert float(weights[b, t, n]) == pytest.approx(expected, abs=1e-6)


def test_diagonal_attention_costs_less_than_uniform_or_anti_diagonal():
    n_frames, n_tokens = 40, 10
    diag = diagonal(n_frames, n_tokens)
    uniform = torch.full((n_frames, n_tokens), 1.0 / n_tokens)
    anti = diag.flip(1)
    losses = [float(guided_attention_loss(a.unsqueeze(0), lengths(n_tokens), lengths(n_frames)))
              for a in (diag, uniform, anti)]
    assert all(loss > 0 for loss in losses)
    assert losses[0] < 0.05 and 0.5 < losses[1] < losses[2]


def test_the_penalty_of_a_step_does_not_shrink_with_longer_text():
    # Averaged per decoder step, uniform attention costs the same for 10 or 150 tokens, so one
    # --guided-attn-weight means the same on short and long sentences.
    costs = [float(guided_attention_loss(torch.full((1, 5 * n, n), 1.0 / n), lengths(n), lengths(5 * n)))
             for n in (10, 150)]
    assert costs[0] == pytest.approx(costs[1], abs=0.02) and costs[0] > 0.5


def test_padding_does_not_change_the_loss():
    alignment = torch.softmax(torch.randn(1, 12, 7, generator=torch.Generator().manual_seed(0)), dim=2)
    alone = guided_attention_loss(alignment, lengths(7), lengths(12))
    padded = torch.rand(2, 20, 9)  # garbage everywhere, then the real utterance in row 1
    padded[1, :12, :7] = alignment[0]
    other = torch.softmax(torch.randn(20, 9), dim=1)
    padded[0] = other
    both = guided_attention_loss(padded, lengths(9, 7), lengths(20, 12))
    other_alone = guided_attention_loss(other.unsqueeze(0), lengths(9), lengths(20))
    # the batch loss is the mean over real decoder steps: a frame-count-weighted mean of the two
    expected = (other_alone * 20 + alone * 12) / (20 + 12)
    torch.testing.assert_close(both, expected)


def test_loss_is_float32_and_differentiable_for_half_precision_attention():
    alignment = torch.softmax(torch.randn(2, 8, 5), dim=2).bfloat16().requires_grad_()
    loss = guided_attention_loss(alignment, lengths(5, 4), lengths(8, 6))
    assert loss.dtype == torch.float32
    loss.backward()
    assert alignment.grad is not None and alignment.grad[1, 6:].abs().sum() == 0  # padded frames


def fake_batch(n_frames: int = 16, n_tokens: int = 6):
    mel = torch.randn(1, 80, n_frames)
    gate = torch.zeros(1, n_frames)
    gate[0, -1] = 1
    outputs = (mel + 0.1, mel - 0.1, torch.randn(1, n_frames), torch.full((1, n_frames, n_tokens), 1 / n_tokens))
    targets = (mel, gate, lengths(n_tokens), lengths(n_frames))
    return outputs, targets


def test_loss_hook_adds_the_weighted_term_only_when_asked():
    outputs, targets = fake_batch()
    base_loss, base_terms = Tacotron2Loss()(outputs, targets)
    assert set(base_terms) == {"mel_loss", "gate_loss"} and Tacotron2Loss().logged_terms == ()
    loss_fn = Tacotron2Loss(guided_attn_weight=2.5, guided_attn_sigma=0.2)
    loss, terms = loss_fn(outputs, targets)
    expected = 2.5 * guided_attention_loss(outputs[3], targets[2], targets[3], 0.2)
    torch.testing.assert_close(terms["guided_attn_loss"], expected)
    torch.testing.assert_close(loss, base_loss + expected)
    assert loss_fn.logged_terms == ("guided_attn_loss",)


def test_build_loss_reads_the_flags_and_defaults_to_the_recipe():
    args = train.parse_args(["-m", "Tacotron2", "-o", "x", "--epochs", "1", "-bs", "1"])
    assert (args.guided_attn_weight, args.guided_attn_sigma) == (0.0, 0.2)
    assert tacotron2.build_loss(args).guided_attn_weight == 0.0
    assert tacotron2.build_loss(None).guided_attn_weight == 0.0
    args = train.parse_args(["-m", "Tacotron2", "-o", "x", "--epochs", "1", "-bs", "1",
                             "--guided-attn-weight", "0.5", "--guided-attn-sigma", "0.4"])
    loss_fn = tacotron2.build_loss(args)
    assert (loss_fn.guided_attn_weight, loss_fn.guided_attn_sigma) == (0.5, 0.4)
    assert "guided_attn_weight" not in tacotron2.config_from_args(args)  # a loss flag, not model config


def test_a_short_run_logs_the_guided_attention_term(tmp_path):
    train_list = tiny_filelist(tmp_path, 4)
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, train_list, 1, "--guided-attn-weight", "1.0")) == 0
    log = read_log(out / "nvlog.json")
    guided = values(log, "train_iter_guided_attn_loss")
    assert [step for step, _ in guided] == [(0, 0), (0, 1)]
    # near-uniform attention of a fresh model sits well off the diagonal
    assert all(0.01 < value < 1.0 for _, value in guided)
    total = dict(values(log, "train_iter_loss"))
    assert all(total[step] > value for step, value in guided)


def test_validation_loss_is_the_recipes_and_the_guided_term_is_logged_beside_it(tmp_path):
    # lr 0: both runs validate the same freshly initialised model, so only the guided term differs
    train_list = tiny_filelist(tmp_path, 4)
    val_losses = {}
    for weight in ("0", "1.0"):
        out = tmp_path / f"guided_{weight}"
        assert train.main(tacotron2_args(out, train_list, 1, "-lr", "0", "--guided-attn-weight", weight)) == 0
        log = read_log(out / "nvlog.json")
        val_losses[weight] = values(log, "val_loss")[0][1]
        guided = values(log, "val_guided_attn_loss")
        if weight == "0":
            assert guided == []
        else:
            assert len(guided) == 1 and 0.1 < guided[0][1] < 1.0
    assert val_losses["1.0"] == pytest.approx(val_losses["0"], rel=1e-5)


# A Tacotron 2 between the tests' toy size and the recipe's, big enough to learn to align.
MEDIUM_TACOTRON2 = [
    "--symbols-embedding-dim", "128", "--encoder-embedding-dim", "128", "--encoder-n-convolutions", "2",
    "--attention-rnn-dim", "256", "--decoder-rnn-dim", "256", "--prenet-dim", "64", "--attention-dim", "64",
    "--attention-location-n-filters", "8", "--postnet-embedding-dim", "64", "--postnet-n-convolutions", "2",
]


@pytest.mark.slow
def test_guided_attention_makes_the_attention_diagonal_sooner(tmp_path):
    # 125 steps on the 20 demo clips, with and without the guided term, side by side (a core each).
    runs = {}
    for weight in ("0", "1.0"):
        out = tmp_path / f"guided_{weight}"
        command = [sys.executable, "train.py", "-m", "Tacotron2", "-o", str(out), "-d", str(TINY_DATA),
                   "--training-files", str(TINY_TRAIN), "--validation-files", str(TINY_VAL), "-bs", "4",
                   "--epochs", "25", "--bench-class", "perf-train", "--num-workers", "0", "--no-tensorboard",
                   "-lr", "1e-3", "--guided-attn-weight", weight, *MEDIUM_TACOTRON2]
        runs[weight] = (out, subprocess.Popen(command, cwd=REPO, env={**env_without_gpu(), "OMP_NUM_THREADS": "1"},
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    focus, walk = {}, {}
    for weight, (out, process) in runs.items():
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output
        log = read_log(out / "nvlog.json")
        focus[weight] = [value for _, value in values(log, "val_focus")]
        walk[weight] = [value for _, value in values(log, "val_walk")]
    guided_term = [value for _, value in values(read_log(runs["1.0"][0] / "nvlog.json"), "val_guided_attn_loss")]
    assert len(focus["0"]) == len(focus["1.0"]) == len(guided_term) == 25
    # measured: focus 0.06 -> 0.31 with the term, 0.06 -> 0.10 without; the term 0.55 -> 0.13;
    # walk 0.24 -> 0.56 with the term, 0.18 -> 0.26 without
    assert focus["1.0"][-1] > focus["0"][-1] + 0.1
    assert walk["1.0"][-1] > walk["0"][-1] + 0.15
    assert guided_term[-1] < guided_term[0] / 2
