"""The speed targets as one table: NVIDIA's code on an H100, the target, and the fastest of our runs.

    python scripts/speed_targets.py LOG_OR_FOLDER [...] [--out targets.md]

Reads the JSON logs of train.py (scripts/benchmark_train.sh) and of inference_benchmark.py
(scripts/inference_speed_table.py --out-dir); a folder is searched for *.json. Each row takes the
fastest run of its setting (model, precision, batch size, one GPU; inference: batch 1, 128
characters, 600 frames forced, WaveGlow 512 channels) and says with which flags it ran; a setting
without a run says "not measured". The throughput is log_summary's: the mean over the epochs after
the first, CUDA graph captures left out. scripts/benchmark_targets.sh makes every log this needs.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from common.errors import UserError  # noqa: E402
from common.log_summary import PREFIX, LogError, Run, markdown_table, mean_throughput, read_run, run_label  # noqa: E402
from tacotron2.model import GATE_CHECK_INTERVAL  # noqa: E402

REFERENCE_CARD = "NVIDIA H100 80GB HBM3"
# within this fraction of FP16's end-to-end latency, BF16 counts as "as good as FP16"
BF16_TOLERANCE = 0.05
# flags that change speed, shown beside a run ("how to reproduce")
SPEED_FLAGS = ("cuda_graphs", "torch_compile", "length_sort_pool", "wn_time_major", "wn_compile_block",
               "cudnn_benchmark", "autocast", "gate_check_interval")


@dataclass(frozen=True)
class Target:
    """One row: NVIDIA's number on the H100 (baseline-h100.md), and the bar ours must pass."""
    what: str
    setting: str
    reference: float
    unit: str  # "mel frames/s" and "samples/s": higher is better; "s": lower is
    goal: str = ""  # as the issue words it; empty where there is no target
    bar: float | None = None  # the value that meets the goal

    @property
    def higher_is_better(self) -> bool:
        return self.unit != "s"

    def met(self, value: float) -> bool:
        return value >= self.bar if self.higher_is_better else value <= self.bar

    def speed_up(self, value: float) -> float:
        return value / self.reference if self.higher_is_better else self.reference / value


@dataclass
class Measurement:
    value: float
    source: str
    flags: str
    device_name: str


TRAINING = [  # (target, model, precision, batch size)
    (Target("Tacotron 2 training", "AMP, batch 128, 1 GPU", 32_500, "mel frames/s", ">= 3x", 3 * 32_500),
     "Tacotron2", "FP16", 128),
    (Target("Tacotron 2 training", "FP32, batch 128, 1 GPU", 30_700, "mel frames/s"), "Tacotron2", "FP32", 128),
    (Target("WaveGlow training (512 ch)", "AMP, batch 10, segment 8000", 487_000, "samples/s", ">= 2x",
            2 * 487_000), "WaveGlow", "FP16", 10),
    (Target("WaveGlow training (512 ch)", "FP32, batch 4, segment 8000", 228_500, "samples/s"), "WaveGlow", "FP32", 4),
]
INFERENCE = [  # (target, summary key)
    (Target("Tacotron 2 inference", "batch 1, FP16, 600 frames forced", 0.398, "s", "<= 50 ms", 0.050),
     "tacotron2_latency"),
    (Target("WaveGlow inference (512 ch)", "batch 1, FP16, 153,600 samples", 0.066, "s", "<= 33 ms", 0.033),
     "waveglow_latency"),
    (Target("end to end (+ denoiser)", "batch 1, FP16, 128 characters", 0.469, "s", "<= 0.1 s", 0.100),
     "latency_avg"),
]


def find_logs(paths: list[str]) -> list[Run]:
    """Every DLLogger log among ``paths`` (files, or folders searched for *.json)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(glob.glob(os.path.join(path, "**", "*.json"), recursive=True))
        elif os.path.exists(path):
            files.append(path)
        else:
            raise LogError(f"{path}: no such log file or folder")
    runs = []
    for file in files:
        with open(file, encoding="utf-8", errors="replace") as f:
            if not f.readline().startswith(PREFIX):
                continue  # another JSON file (a config, a profile trace)
        runs.append(read_run(file))
    return runs


def speed_flags(params: dict) -> str:
    shown = []
    for name in SPEED_FLAGS:
        value = params.get(name)
        if value in (None, False, 0) or (name == "gate_check_interval" and value == GATE_CHECK_INTERVAL):
            continue
        flag = "--" + name.replace("_", "-")
        shown.append(flag if value is True else f"{flag} {value}")
    return " ".join(shown)


def is_inference(run: Run) -> bool:
    return "latency_avg" in run.summary


def fastest(target: Target, candidates: list[tuple[float, Run]]) -> Measurement | None:
    if not candidates:
        return None
    value, run = (max if target.higher_is_better else min)(candidates, key=lambda pair: pair[0])
    return Measurement(value, run.source, speed_flags(run.params), str(run.params.get("device_name", "?")))


def training_measurement(target: Target, model: str, precision: str, batch: int, runs: list[Run]) -> Measurement | None:
    key = "train_epoch_mels/sec" if model == "Tacotron2" else "train_epoch_items/sec"
    candidates = []
    for run in runs:
        if is_inference(run):
            continue
        label = run_label(run)
        if (label.model, label.precision, label.world_size, label.batch_size, label.device) != (model, precision, 1,
                                                                                                batch, "cuda"):
            continue
        if model == "WaveGlow" and run.params.get("segment_length", 8000) != 8000:
            continue
        value = mean_throughput(run, key)
        if value is not None:
            candidates.append((value, run))
    return fastest(target, candidates)


def inference_runs(runs: list[Run], half: str) -> list[Run]:
    """inference_benchmark.py runs of the targets' setting in ``half`` ("fp16" or "bf16") precision."""
    return [run for run in runs if is_inference(run) and run.params.get(half)
            and run.params.get("device", "cuda") == "cuda" and run.params.get("batch_size", 1) == 1
            and run.params.get("input_length", 128) == 128 and run.params.get("decoder_steps") == 600
            and run.params.get("wn_channels") in (None, 512)]


def inference_measurement(target: Target, key: str, runs: list[Run]) -> Measurement | None:
    return fastest(target, [(run.summary[key], run) for run in inference_runs(runs, "fp16") if key in run.summary])


def format_value(value: float, unit: str) -> str:
    return f"{value * 1000:.1f} ms" if unit == "s" else f"{value:,.0f} {unit}"


def target_rows(runs: list[Run]) -> tuple[list[list[str]], set[str]]:
    """(table rows, the device names the rows' runs ran on)."""
    rows, devices = [], set()
    measured = [(target, training_measurement(target, *select, runs)) for target, *select in TRAINING]
    measured += [(target, inference_measurement(target, key, runs)) for target, key in INFERENCE]
    for target, measurement in measured:
        row = [target.what, target.setting, format_value(target.reference, target.unit), target.goal or "-"]
        if measurement is None:
            rows.append(row + ["not measured", "", "", ""])
            continue
        devices.add(measurement.device_name)
        verdict = ("yes" if target.met(measurement.value) else "no") if target.bar is not None else "-"
        rows.append(row + [format_value(measurement.value, target.unit),
                           f"{target.speed_up(measurement.value):.2f}x", verdict,
                           f"{measurement.flags or 'defaults'} ({measurement.source})"])
    rows.append(bf16_row(runs, devices))
    return rows, devices


def bf16_row(runs: list[Run], devices: set[str]) -> list[str]:
    """BF16 end to end against FP16's, the "bf16 as good as fp16" target."""
    row = ["end to end, BF16", "batch 1, BF16, 128 characters", "-", f"<= FP16 + {BF16_TOLERANCE:.0%}"]
    bf16, fp16 = (min(inference_runs(runs, half), default=None, key=lambda run: run.summary["latency_avg"])
                  for half in ("bf16", "fp16"))
    if bf16 is None or fp16 is None:
        return row + ["not measured" if bf16 is None else "FP16 not measured", "", "", ""]
    devices.add(str(bf16.params.get("device_name", "?")))
    bf16_latency, fp16_latency = bf16.summary["latency_avg"], fp16.summary["latency_avg"]
    return row + [format_value(bf16_latency, "s"), f"{fp16_latency / bf16_latency:.2f}x FP16",
                  "yes" if bf16_latency <= fp16_latency * (1 + BF16_TOLERANCE) else "no",
                  f"{speed_flags(bf16.params) or 'defaults'} ({bf16.source})"]


def targets_table(runs: list[Run]) -> str:
    rows, devices = target_rows(runs)
    cards = ", ".join(sorted(devices)) or "nothing yet"
    lines = [f"Ours measured on: {cards}. NVIDIA's code: one {REFERENCE_CARD} (docs/performance.md)."]
    if devices - {REFERENCE_CARD}:
        lines.append(f"Not all of ours ran on an {REFERENCE_CARD}: the targets are judged side by side on that card.")
    header = ["what", "setting", "NVIDIA (H100)", "target", "ours (fastest)", "vs NVIDIA", "met", "flags (log)"]
    lines += ["", markdown_table(header, rows, [False, False, True, False, True, True, False, False])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logs", nargs="+", metavar="LOG_OR_FOLDER")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    try:
        table = targets_table(find_logs(args.logs))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
