"""Inference latency of each speed option side by side, as one markdown table (docs/performance.md).

    python scripts/inference_speed_table.py [--variants NAME ...] [--num-iters 20] [--decoder-steps 600]
                                            [--out-dir DIR] [any inference_benchmark.py flag ...]

Runs inference_benchmark.py once per variant, each in its own process (CUDA graphs, compiled
kernels and the allocator start fresh), with random weights unless --tacotron2/--waveglow are
given, and prints per variant the mean Tacotron 2, WaveGlow and denoiser latency, the end-to-end
average and p99, the real-time factor and the speed-up over the first variant. A variant that fails
gets a row saying so and the rest still run (exit status 1 then). Default variants: on a GPU --fp16
alone, with --cuda-graphs --torch-compile (the fastest measured), and that with
--gate-check-interval 16, --wn-compile-block, --wn-time-major or both, or --cudnn-benchmark, and in
bf16 with --wn-time-major (WaveGlow's convolutions as GEMMs: cuDNN's bf16 convolutions ran at half
FP16's speed on an H200); on the CPU FP32 and both bf16 ways. Every variant of VARIANTS can be named
with --variants.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from common.log_summary import LogError, markdown_table, read_run  # noqa: E402
from common.timing import device_name  # noqa: E402

VARIANTS = {
    "fp32": [],
    "fp16-autocast": ["--fp16", "--autocast"],
    "fp16": ["--fp16"],
    "fp16-compiled": ["--fp16", "--torch-compile"],
    "fp16-graphs": ["--fp16", "--cuda-graphs"],
    "fp16-graphs-compiled": ["--fp16", "--cuda-graphs", "--torch-compile"],
    "bf16-autocast": ["--bf16", "--autocast"],
    "bf16": ["--bf16"],
    "bf16-compiled": ["--bf16", "--torch-compile"],
    "fp32-compiled": ["--torch-compile"],
    "bf16-graphs-compiled": ["--bf16", "--cuda-graphs", "--torch-compile"],
    "fp16-time-major": ["--fp16", "--wn-time-major"],
    "fp16-graphs-compiled-time-major": ["--fp16", "--cuda-graphs", "--torch-compile", "--wn-time-major"],
    "fp16-graphs-compiled-cudnn-benchmark": ["--fp16", "--cuda-graphs", "--torch-compile", "--cudnn-benchmark"],
    "fp16-graphs-compiled-check16": ["--fp16", "--cuda-graphs", "--torch-compile", "--gate-check-interval", "16"],
    "fp16-graphs-compiled-wn-block": ["--fp16", "--cuda-graphs", "--torch-compile", "--wn-compile-block"],
    "fp16-graphs-compiled-time-major-wn-block": ["--fp16", "--cuda-graphs", "--torch-compile", "--wn-time-major",
                                                 "--wn-compile-block"],
    "bf16-graphs-compiled-time-major": ["--bf16", "--cuda-graphs", "--torch-compile", "--wn-time-major"],
}
# the recipe's way, the fastest measured so far, and what may beat it (every compiling variant costs
# a minute or so of a GPU's time; the others are a --variants away)
GPU_DEFAULT = ["fp16", "fp16-graphs-compiled", "fp16-graphs-compiled-check16", "fp16-graphs-compiled-wn-block",
               "fp16-graphs-compiled-time-major", "fp16-graphs-compiled-time-major-wn-block",
               "fp16-graphs-compiled-cudnn-benchmark", "bf16-graphs-compiled-time-major"]
CPU_DEFAULT = ["fp32", "bf16-autocast", "bf16"]


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: by device (see above)")
    parser.add_argument("--num-iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--decoder-steps", type=int, default=600, help="forced Tacotron 2 frames per utterance")
    parser.add_argument("--out-dir", help="keep each variant's JSON log and output here (default: a temp folder)")
    return parser.parse_known_args(argv)


def variant_command(name: str, args: argparse.Namespace, passed: list[str], log_file: str) -> list[str]:
    command = [sys.executable, os.path.join(REPO, "inference_benchmark.py"), "--num-iters", str(args.num_iters),
               "--warmup", str(args.warmup), "--decoder-steps", str(args.decoder_steps), "--log-file", log_file]
    if "--tacotron2" not in passed and "--waveglow" not in passed:
        command.append("--random-weights")
    return command + VARIANTS[name] + passed


def row_of(name: str, summary: dict, baseline: float | None) -> list[str]:
    speed_up = f"{baseline / summary['latency_avg']:.2f}x" if baseline else "1.00x"
    return [name, *(f"{summary[key]:.4f}" for key in ("tacotron2_latency", "waveglow_latency", "denoiser_latency",
                                                       "latency_avg", "latency_p99")),
            f"{summary['real_time_factor']:.1f}", speed_up]


def main(argv=None) -> int:
    args, passed = parse_args(argv)
    on_gpu = torch.cuda.is_available() and "--cpu" not in passed
    names = args.variants or (GPU_DEFAULT if on_gpu else CPU_DEFAULT)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="inference_speed_")
    os.makedirs(out_dir, exist_ok=True)
    device = device_name("cuda" if on_gpu else "cpu")
    print(f"{device}, torch {torch.__version__}; {args.decoder_steps} frames, {args.num_iters} iterations "
          f"after {args.warmup}; logs in {out_dir}", flush=True)
    rows, baseline, failed = [], None, False
    for name in names:
        log_file = os.path.join(out_dir, f"{name}.json")
        command = variant_command(name, args, passed, log_file)
        print(f"\n$ {' '.join(command)}", flush=True)
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(result.stdout, end="", flush=True)
        try:
            summary = read_run(log_file).summary if result.returncode == 0 else {}
        except LogError:
            summary = {}
        if "latency_avg" not in summary:
            failed = True
            last = (result.stdout.strip().splitlines() or ["no output"])[-1]
            rows.append([name, f"failed (exit {result.returncode}): {last[:100]}", *[""] * 6])
            continue
        rows.append(row_of(name, summary, baseline))
        baseline = baseline or summary["latency_avg"]
    header = ["variant", "Tacotron 2 s", "WaveGlow s", "denoiser s", "end to end s", "p99 s", "RTF", "speed-up"]
    print("\n" + markdown_table(header, rows, [False] + [True] * 7))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
