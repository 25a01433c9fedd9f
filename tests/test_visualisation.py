"""Seeing training: figures as arrays/PNGs, alignment health numbers, and what a run writes at validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from matplotlib import image as mpl_image

import train
from common import plotting
from tacotron2.alignment import alignment_stats, focus, reached_end, walk
from training_helpers import (read_log, tacotron2_args, tiny_filelist, values, waveglow_args,
                              write_noise_clips)


def lengths(*values_: int) -> torch.Tensor:
    return torch.tensor(values_, dtype=torch.long)


def diagonal(n_frames: int, n_tokens: int) -> torch.Tensor:
    alignment = torch.zeros(n_frames, n_tokens)
    alignment[torch.arange(n_frames), torch.arange(n_frames) * n_tokens // n_frames] = 1.0
    return alignment


def ratio(pair) -> float:
    total, count = pair
    return float(total) / float(count)


# -- figures --------------------------------------------------------------------------------------

def test_figures_are_rgb_uint8_and_round_trip_through_png(tmp_path):
    rng = np.random.default_rng(0)
    images = [plotting.plot_alignment(rng.random((50, 12)), "title"),
              plotting.plot_mel_pair(torch.randn(80, 50), torch.randn(80, 50)),
              plotting.plot_gate(rng.random(50), np.r_[np.zeros(49), 1.0]),
              plotting.plot_waveform_and_mel(rng.standard_normal(2304), rng.random((80, 9)), 22050,
                                             reference=rng.standard_normal(2304))]
    for k, image in enumerate(images):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # something was drawn
        path = tmp_path / f"figure{k}.png"
        plotting.save_png(str(path), image)
        read = mpl_image.imread(str(path))
        np.testing.assert_array_equal(np.round(read[:, :, :3] * 255).astype(np.uint8), image)


def test_figures_survive_non_finite_values():
    alignment = np.full((10, 4), np.nan)
    assert plotting.plot_alignment(alignment).dtype == np.uint8
    assert plotting.plot_gate([np.inf] * 5, [0, 0, 0, 0, 1]).dtype == np.uint8


def test_save_png_rejects_float_images(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        plotting.save_png(str(tmp_path / "x.png"), np.zeros((4, 4, 3)))


# -- alignment health -----------------------------------------------------------------------------

def test_focus_is_one_for_a_hard_alignment_and_one_over_n_for_a_uniform_one():
    n_frames, n_tokens = 30, 8
    hard = diagonal(n_frames, n_tokens).unsqueeze(0)
    uniform = torch.full((1, n_frames, n_tokens), 1 / n_tokens)
    assert ratio(focus(hard, lengths(n_tokens), lengths(n_frames))) == pytest.approx(1.0)
    assert ratio(focus(uniform, lengths(n_tokens), lengths(n_frames))) == pytest.approx(1 / n_tokens)


def test_reached_end_tells_a_finished_alignment_from_a_stuck_one():
    n_frames, n_tokens = 30, 8
    done = diagonal(n_frames, n_tokens)
    stuck = torch.zeros(n_frames, n_tokens)
    stuck[:, 2] = 1.0  # never leaves the third token
    batch = torch.stack([done, stuck])
    total, count = reached_end(batch, lengths(n_tokens, n_tokens), lengths(n_frames, n_frames))
    assert (float(total), float(count)) == (1.0, 2.0)
    # "the end" is the last two real tokens: N-2 counts, N-3 does not
    near = torch.zeros(1, 5, n_tokens)
    near[0, :, n_tokens - 2] = 1.0
    assert ratio(reached_end(near, lengths(n_tokens), lengths(5))) == 1.0
    near[0, :, n_tokens - 2], near[0, :, n_tokens - 3] = 0.0, 1.0
    assert ratio(reached_end(near, lengths(n_tokens), lengths(5))) == 0.0


def test_padding_is_ignored():
    """Padded frames/tokens may hold anything; only the real region counts."""
    n_frames, n_tokens = 20, 6
    real = torch.zeros(n_frames, n_tokens)
    real[:, 0] = 0.6
    real[:, 1:] = 0.4 / (n_tokens - 1)  # stuck at the start, focus 0.6
    padded = torch.zeros(1, 32, 10)
    padded[0, :n_frames, :n_tokens] = real
    padded[0, n_frames:, :] = torch.eye(10)[9]  # padded frames "reach" padded token 9 with weight 1
    padded[0, :n_frames, n_tokens:] = 0.9  # padded tokens outweigh the real peak
    stats = alignment_stats(padded, lengths(n_tokens), lengths(n_frames))
    assert ratio(stats["focus"]) == pytest.approx(0.6)
    assert ratio(stats["reached_end"]) == 0.0


def test_reached_end_counts_only_real_decoder_steps():
    """A shorter utterance of the batch whose padded steps (after its stop) point at its last token has
    not reached the end: only its real steps say where its attention went."""
    n_frames, n_tokens = 12, 6
    stuck = torch.zeros(1, 20, n_tokens)
    stuck[0, :, 0] = 1.0  # real steps never leave the first token
    stuck[0, n_frames:, n_tokens - 1] = 2.0  # the padded steps hold anything
    assert ratio(reached_end(stuck, lengths(n_tokens), lengths(n_frames))) == 0.0
    assert ratio(reached_end(stuck, lengths(n_tokens), lengths(20))) == 1.0  # were they real, it would


def test_focus_pools_real_steps_over_the_batch_like_an_independent_loop():
    generator = torch.Generator().manual_seed(3)
    alignments = torch.softmax(4 * torch.randn(3, 15, 9, generator=generator), dim=2)
    input_lengths, output_lengths = lengths(9, 5, 7), lengths(15, 11, 4)
    peaks = [float(alignments[b, t, :int(input_lengths[b])].max())
             for b in range(3) for t in range(int(output_lengths[b]))]
    total, count = focus(alignments, input_lengths, output_lengths)
    assert float(count) == len(peaks) == 30
    assert float(total) == pytest.approx(sum(peaks), rel=1e-6)


def test_walk_tells_a_diagonal_from_stuck_attention_and_from_noise():
    n_frames, n_tokens = 60, 12
    generator = torch.Generator().manual_seed(0)
    frames, tokens = torch.arange(n_frames).float().unsqueeze(1), torch.arange(n_tokens).float()
    centre = frames * (n_tokens - 1) / (n_frames - 1)
    blurred = torch.softmax(-((tokens - centre) ** 2) / 4.0, dim=1)  # a diagonal ~3 tokens wide
    stuck = torch.zeros(n_frames, n_tokens)
    stuck[:, -2:] = 0.5
    stuck[:, -1] += 0.01  # collapsed on the last tokens from the first step
    noise = torch.softmax(3 * torch.randn(n_frames, n_tokens, generator=generator), dim=1)
    scores = {name: ratio(walk(alignment.unsqueeze(0), lengths(n_tokens), lengths(n_frames)))
              for name, alignment in [("hard", diagonal(n_frames, n_tokens)), ("blurred", blurred),
                                      ("stuck", stuck), ("noise", noise)]}
    assert scores["hard"] == pytest.approx(1.0) and scores["blurred"] > 0.9
    assert scores["stuck"] == pytest.approx(1 / n_tokens) and scores["noise"] < 0.4
    # focus cannot tell the blurred diagonal from stuck attention; walk can
    assert ratio(focus(blurred.unsqueeze(0), lengths(n_tokens), lengths(n_frames))) < 0.6
    # a jump of more than MAX_ADVANCE tokens is not a forward step
    skipping = torch.zeros(4, 20)
    skipping[torch.arange(4), torch.tensor([0, 3, 8, 9])] = 1.0
    assert ratio(walk(skipping.unsqueeze(0), lengths(20), lengths(4))) == pytest.approx((2 / 3) * (4 / 20))


def test_walk_ignores_padding_and_averages_utterances():
    padded = torch.zeros(2, 32, 10)
    padded[0, :20, :6] = diagonal(20, 6)  # a perfect walk over its 6 real tokens and 20 real frames
    padded[0, 20:, 9] = 1.0  # padded frames on a padded token
    padded[1, :8, :10] = diagonal(8, 10)  # 8 frames visit 8 of 10 tokens, every move forward by 1-2
    padded[1, 8:, 0] = 1.0  # padded frames jumping back
    total, count = walk(padded, lengths(6, 10), lengths(20, 8))
    assert float(count) == 2 and float(total) == pytest.approx(1.0 + 0.8)
    # one real step on one real token walks; no real step or no real token has no say
    total, count = walk(torch.cat([padded, padded[:1]]), lengths(1, 10, 0), lengths(1, 0, 8))
    assert (float(total), float(count)) == (1.0, 1.0)
    assert set(alignment_stats(padded, lengths(6, 10), lengths(20, 8))) == {"focus", "reached_end", "walk"}


# -- what a training run writes -------------------------------------------------------------------

def with_tensorboard(args: list[str]) -> list[str]:
    return [a for a in args if a != "--no-tensorboard"]


def event_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("events.out.tfevents.*"))


def test_tacotron2_validation_writes_figures_audio_and_tensorboard_events(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    assert train.main(with_tensorboard(tacotron2_args(out, tiny_filelist(tmp_path, 2), 1))) == 0
    for name in ("alignment_0.png", "mel_0.png", "gate_0.png"):
        image = mpl_image.imread(str(out / "validation" / name))
        assert image.shape[0] > 100 and image.shape[1] > 100, name
    audio, sampling_rate = sf.read(str(out / "validation" / "sample_0.wav"))
    assert sampling_rate == 22050 and audio.ndim == 1
    assert len(audio) % 256 == 0 and len(audio) > 22050 // 2 and np.abs(audio).max() > 0.01

    log = read_log(out / "nvlog.json")
    focus_values, end_values = values(log, "val_focus"), values(log, "val_reached_end")
    walk_values = values(log, "val_walk")
    assert [step for step, _ in focus_values] == [step for step, _ in end_values] == [(0,)]
    assert [step for step, _ in walk_values] == [(0,)]
    assert 0.0 < focus_values[0][1] <= 1.0 and 0.0 <= end_values[0][1] <= 1.0 and 0.0 < walk_values[0][1] <= 1.0

    (events,) = event_files(out)
    accumulator = EventAccumulator(str(events.parent), size_guidance={"images": 0, "audio": 0, "scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {"validation/alignment", "validation/mel", "validation/gate"} <= set(tags["images"])
    assert "validation/sample" in tags["audio"]
    assert {"train/loss", "train/items_per_sec", "train/grad_norm", "train/learning_rate",
            "train/loss_scale", "val/loss", "val/focus", "val/reached_end", "val/walk"} <= set(tags["scalars"])
    assert accumulator.Scalars("val/focus")[0].value == pytest.approx(focus_values[0][1], rel=1e-6)


def test_no_tensorboard_writes_no_events_but_still_the_figures(tmp_path):
    out = tmp_path / "out"
    assert train.main(tacotron2_args(out, tiny_filelist(tmp_path, 2), 1)) == 0
    assert event_files(out) == [] and not (out / "tensorboard").exists()
    assert all((out / "validation" / name).is_file() for name in ("alignment_0.png", "mel_0.png", "gate_0.png", "sample_0.wav"))


def test_waveglow_validation_writes_its_synthesis_figure_and_sample(tmp_path):
    clips = tmp_path / "clips"
    filelist = write_noise_clips(clips, n_clips=2, n_samples=2048)
    out = tmp_path / "out"
    assert train.main(waveglow_args(out, clips, filelist, 1, 2, 2048)) == 0
    assert mpl_image.imread(str(out / "validation" / "synthesis_0.png")).shape[0] > 100
    audio, sampling_rate = sf.read(str(out / "validation" / "sample_0.wav"))
    # infer() makes 256 samples per mel frame: 1 + 2048 // 256 = 9 frames
    assert sampling_rate == 22050 and len(audio) == 9 * 256 and np.abs(audio).max() > 0
    assert "val_loss" in {key for r in read_log(out / "nvlog.json") for key in r.get("data", {})}
