"""scripts/precision_check.py: the mixed-precision numerics table (run on CPU here: FP32 and BF16)."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

from training_helpers import REPO


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("precision_check", os.path.join(REPO, "scripts", "precision_check.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["precision_check"] = module
    spec.loader.exec_module(module)
    return module


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
    assert check.main(["--cpu", "--frames", "24", "--waveglow-frames", "4", "--wn-channels", "256",
                       "--loss-tolerance", "0"]) == 1
    captured = capsys.readouterr()
    assert "| bf16 |" in captured.out and "Tacotron 2 bf16 loss differs from FP32" in captured.err
