"""scripts/speed_targets.py: the targets table from training and inference benchmark logs, whose
parameters come from the real parsers (train.py, inference_benchmark.py)."""
from __future__ import annotations

import os

import pytest

import inference_benchmark
import train
from common.logger import Logger
from training_helpers import load_script

H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture(scope="module")
def targets():
    return load_script("speed_targets")


def write_training_log(path, argv, precision, epoch_rates, device_name=H100, mels=True):
    """A log with train.py's parameters for ``argv``; epoch 0 is the warm-up log_summary leaves out."""
    args = train.parse_args([*argv, "--epochs", str(len(epoch_rates))])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with Logger(str(path), stdout=False) as logger:
        logger.parameters({**vars(args), "model_name": f"{args.model_name}_PyT", "device": "cuda",
                           "device_name": device_name, "precision": precision})
        for epoch, rate in enumerate(epoch_rates):
            data = {"train_epoch_items/sec": rate / 4}
            if mels:
                data["train_epoch_mels/sec"] = rate
            else:
                data["train_epoch_items/sec"] = rate
            logger.log((epoch,), data)
    return str(path)


def write_inference_log(path, flags, summary, device_name=H100, device="cuda"):
    args = inference_benchmark.build_parser().parse_args(["--random-weights", "--decoder-steps", "600", *flags])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with Logger(str(path), stdout=False) as logger:
        logger.parameters({**vars(args), "model_name": "Tacotron2_PyT", "device": device, "device_name": device_name})
        logger.log((), summary)
    return str(path)


def latencies(t2, wg, total):
    return {"tacotron2_latency": t2, "waveglow_latency": wg, "denoiser_latency": 0.002, "latency_avg": total,
            "latency_p99": total * 1.01}


def rows_by_setting(table: str) -> dict[str, list[str]]:
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ")][1:]
    return {f"{row[0].strip()} / {row[1].strip()}": [cell.strip() for cell in row] for row in rows}


def test_each_target_takes_the_fastest_matching_run_and_says_whether_it_is_met(targets, tmp_path):
    t2 = ["-m", "Tacotron2", "-o", "out", "-bs", "128", "--amp"]
    write_training_log(tmp_path / "t2/base.json", t2, "fp16", [1_000, 50_000, 52_000])
    write_training_log(tmp_path / "t2/fast.json", t2 + ["--cuda-graphs", "--length-sort-pool", "1280"], "fp16",
                       [1_000, 99_000, 101_000])
    # another batch size, another GPU count and a CPU run are other settings
    write_training_log(tmp_path / "t2/bs64.json", ["-m", "Tacotron2", "-o", "o", "-bs", "64", "--amp"], "fp16",
                       [1, 500_000, 500_000])
    write_training_log(tmp_path / "wg/amp.json", ["-m", "WaveGlow", "-o", "o", "-bs", "10", "--amp",
                                                  "--segment-length", "8000"], "fp16", [1, 600_000, 700_000],
                       mels=False)
    write_training_log(tmp_path / "wg/short.json", ["-m", "WaveGlow", "-o", "o", "-bs", "10", "--amp",
                                                    "--segment-length", "4000"], "fp16", [1, 9e6, 9e6], mels=False)
    write_inference_log(tmp_path / "inf/fp16.json", ["--fp16"], latencies(0.30, 0.047, 0.36))
    write_inference_log(tmp_path / "inf/fast.json", ["--fp16", "--cuda-graphs", "--torch-compile"],
                        latencies(0.049, 0.044, 0.098))
    write_inference_log(tmp_path / "inf/time-major.json", ["--fp16", "--wn-time-major"], latencies(0.31, 0.041, 0.37))
    write_inference_log(tmp_path / "inf/short.json", ["--fp16", "--decoder-steps", "100"], latencies(0.01, 0.01, 0.02))
    write_inference_log(tmp_path / "inf/bf16.json", ["--bf16", "--cuda-graphs", "--torch-compile",
                                                     "--gate-check-interval", "16"], latencies(0.05, 0.045, 0.101))
    (tmp_path / "inf/profile.json").write_text('{"traceEvents": []}\n')  # not a DLLogger log: skipped

    table = targets.targets_table(targets.find_logs([str(tmp_path)]))
    rows = rows_by_setting(table)
    t2_amp = rows["Tacotron 2 training / AMP, batch 128, 1 GPU"]
    assert t2_amp[2:7] == ["32,500 mel frames/s", ">= 3x", "100,000 mel frames/s", "3.08x", "yes"]
    assert t2_amp[7].startswith("--cuda-graphs --length-sort-pool 1280 (") and "fast.json" in t2_amp[7]
    assert rows["Tacotron 2 training / FP32, batch 128, 1 GPU"][4] == "not measured"
    wg_amp = rows["WaveGlow training (512 ch) / AMP, batch 10, segment 8000"]
    assert wg_amp[4:7] == ["650,000 samples/s", "1.33x", "no"]
    t2_inference = rows["Tacotron 2 inference / batch 1, FP16, 600 frames forced"]
    assert t2_inference[4:7] == ["49.0 ms", "8.12x", "yes"]
    assert t2_inference[7].startswith("--cuda-graphs --torch-compile (")
    wg_inference = rows["WaveGlow inference (512 ch) / batch 1, FP16, 153,600 samples"]
    assert wg_inference[4:7] == ["41.0 ms", "1.61x", "no"] and wg_inference[7].startswith("--wn-time-major (")
    assert rows["end to end (+ denoiser) / batch 1, FP16, 128 characters"][4:7] == ["98.0 ms", "4.79x", "yes"]
    bf16 = rows["end to end, BF16 / batch 1, BF16, 128 characters"]
    assert bf16[4:7] == ["101.0 ms", "0.97x FP16", "yes"]  # within 5 % of FP16's 98 ms
    assert bf16[7].startswith("--cuda-graphs --torch-compile --gate-check-interval 16 (")
    assert table.startswith(f"Ours measured on: {H100}.") and "Not all of ours" not in table


def test_runs_on_another_card_are_flagged_and_a_slow_bf16_is_not_as_good(targets, tmp_path):
    write_inference_log(tmp_path / "fp16.json", ["--fp16"], latencies(0.05, 0.04, 0.095), device_name="NVIDIA H200")
    write_inference_log(tmp_path / "bf16.json", ["--bf16"], latencies(0.06, 0.05, 0.12), device_name="NVIDIA H200")
    write_inference_log(tmp_path / "cpu.json", ["--fp16"], latencies(0.001, 0.001, 0.002), device="cpu")
    table = targets.targets_table(targets.find_logs([str(tmp_path)]))
    assert "Ours measured on: NVIDIA H200." in table and "Not all of ours ran on an" in table
    rows = rows_by_setting(table)
    assert rows["end to end (+ denoiser) / batch 1, FP16, 128 characters"][4] == "95.0 ms"  # not the CPU run
    assert rows["end to end, BF16 / batch 1, BF16, 128 characters"][6] == "no"
    assert all(row[4] == "not measured" for name, row in rows.items() if "training" in name)


def test_command_line_writes_the_table_and_names_a_missing_log(targets, tmp_path, capsys):
    write_inference_log(tmp_path / "logs/fp16.json", ["--fp16"], latencies(0.05, 0.04, 0.095))
    out = tmp_path / "targets.md"
    assert targets.main([str(tmp_path / "logs"), "--out", str(out)]) == 0
    assert out.read_text() == capsys.readouterr().out and "| end to end (+ denoiser) |" in out.read_text()
    assert targets.main([str(tmp_path / "missing")]) == 2
    assert "missing: no such log file or folder" in capsys.readouterr().err
