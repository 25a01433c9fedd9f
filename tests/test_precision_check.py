"""scripts/precision_check.py: the mixed-precision numerics table (run on CPU here: FP32 and BF16)."""
from __future__ import annotations

import shutil

import pytest
import torch

from training_helpers import load_script


@pytest.fixture(scope="module")
def check():
    return load_script("precision_check")


def test_bf16_keeps_the_tacotron2_loss_and_the_waveglow_round_trip(check):
    cpu = torch.device("cpu")
    losses = check.tacotron2_losses(cpu, n_frames=24)
    assert set(losses) == {"fp32", "bf16"}
    assert losses["bf16"] != losses["fp32"]  # autocast really ran in bf16
    assert abs(losses["bf16"] - losses["fp32"]) / losses["fp32"] < 1e-3
    trips = check.waveglow_round_trips(cpu, n_frames=8, wn_channels=256)
    fp32_error, peak, z_dtype, log_det_dtype = trips["fp32"]
    assert fp32_error < 1e-4 * peak and z_dtype == log_det_dtype == torch.float32
    assert fp32_error < trips["bf16"][0] < 5e-2


def test_a_difference_over_the_tolerance_fails_the_check(check, capsys):
    assert check.main(["--cpu", "--frames", "24", "--waveglow-frames", "4", "--wn-channels", "256", "--decoder-steps", "8",
                       "--loss-tolerance", "0"]) == 1
    captured = capsys.readouterr()
    assert "| bf16 |" in captured.out and "Tacotron 2 bf16 loss differs from FP32" in captured.err


def test_half_precision_inference_stays_near_float32(check):
    """Both ways inference.py runs bf16 (weights cast once, autocast) change the numbers, a little."""
    rows = check.inference_differences(torch.device("cpu"), n_steps=12, waveglow_frames=4, wn_channels=256)
    assert set(rows) == {"bf16 weights", "bf16 autocast"}
    for row in rows.values():
        assert row["finite"]
        assert 0 < row["tacotron2_vs_fp32"] < 0.05 and 0 < row["waveglow_vs_fp32"] < 0.05


def test_decoder_step_ops_counts_the_casts_of_half_precision():
    module = load_script("decoder_step_ops")
    cpu = torch.device("cpu")
    fp32 = module.ops_per_step(cpu, None, False, n_steps=2, n_tokens=10)
    cast = module.ops_per_step(cpu, torch.bfloat16, False, n_steps=2, n_tokens=10)
    assert fp32["_to_copy"] == 0 and cast["_to_copy"] >= 2  # the attention's float32 <-> bf16 casts
    # 2 LSTM cells (2 GEMMs each), the second prenet layer, query, v and the projection, which also
    # gives the next step's first prenet layer
    assert fp32["addmm"] + fp32["mm"] == 8 and fp32["bernoulli_"] == 2
    assert "sigmoid" not in fp32  # the gate is checked on its logit (sigmoid_ is the LSTM cells')
    forward, both = module.training_ops_per_step(cpu, None, n_tokens=10)
    assert forward == int(forward) >= 20 and both > 2 * forward  # whole ops per step; the backward is larger


def test_a_failing_compile_still_leaves_the_eager_count():
    module = load_script("decoder_step_ops")

    def count(compiled):
        if compiled:
            raise RuntimeError("inductor failed\nand said more")
        return 12.5
    assert module.eager_and_compiled(count) == ["12.5", "failed: RuntimeError: inductor failed"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_the_compiled_step_makes_one_gemm_of_each_lstm_cell():
    module = load_script("decoder_step_ops")
    generated, library = module.compiled_step_kernels(torch.device("cpu"), None, n_tokens=10)
    # one GEMM per LSTM cell, query, v, the location convolution and the projection; eagerly the
    # cells take two GEMMs each
    assert library == 6 and generated >= 1


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_the_compiled_training_step_launches_a_fraction_of_the_eager_operations():
    module = load_script("decoder_step_ops")
    cpu = torch.device("cpu")
    graphs = module.compiled_training_kernels(cpu, n_tokens=10)
    assert len(graphs) == 2  # one forward and one backward graph: no graph breaks
    _, eager = module.training_ops_per_step(cpu, None, n_tokens=10)
    compiled = sum(generated + library for generated, library in graphs)
    assert all(library >= 4 for _, library in graphs) and compiled < eager / 3


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_teacher_forcing_speed_times_both_paths_in_every_setting(capsys):
    module = load_script("teacher_forcing_speed")
    assert module.main(["--cpu", "--frames", "9", "--tokens", "10", "--repeats", "1"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [row[0] for row in rows] == ["| " + name for name, *_ in module.settings(torch.device("cpu"))]
    for _, eager, compiled, speed_up in rows:
        assert float(eager.removesuffix(" us")) > 0 and float(compiled.removesuffix(" us")) > 0
        assert float(speed_up.removesuffix("x |")) == pytest.approx(
            float(eager.removesuffix(" us")) / float(compiled.removesuffix(" us")), rel=0.02)


def test_wn_conv_layouts_compute_the_same_convolution(capsys):
    module = load_script("wn_conv_layouts")
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 40, generator=generator)
    for kernel in (3, 1):
        weight = torch.randn(16, 8, kernel, generator=generator)
        for dilation in (1, 4, 16):
            diffs = module.same_convolution(x, weight, dilation)
            assert set(diffs) == set(module.LAYOUTS) and max(diffs.values()) < 1e-5, (kernel, dilation, diffs)
    # a wrong tap order would show: the GEMM of a kernel flipped in time is another convolution
    weight = torch.randn(16, 8, 3, generator=generator)
    flipped = module.gemm_run(*module.gemm_prepare(x, weight.flip(2)), 2).transpose(1, 2)
    assert (flipped - module.conv1d_run(x, weight, 2)).abs().max() > 0.1
    assert module.main(["--cpu", "--batch", "1", "--steps", "32", "--channels", "8", "--layers", "2",
                        "--precisions", "fp32", "--iters", "1", "--warmup", "0"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| in_layer") or
            line.startswith("| res_skip")]
    assert len(rows) == 2 * len(module.LAYOUTS) and not any("failed" in row for row in rows)
