"""How fast are WaveGlow's convolutions in other memory layouts? One table, before any rewrite of WN.

    python scripts/wn_conv_layouts.py [--cpu] [--batch 10] [--steps 1000] [--channels 512]

WaveGlow's training step is about 16 TFLOP (batch 10, segment 8000: 10,000 columns of 8 grouped
samples through 12 x 8 WN layers, forward and backward), almost all of it in two convolutions per
layer: ``in_layer`` (kernel 3, dilation 1..128, C -> 2C) and ``res_skip`` (1x1, C -> 2C). On the
H200 our step took 120 ms (~130 TFLOP/s, a small share of the card's dense fp16 rate), so before
changing WN this measures those two convolutions forward and backward in three layouts:

- ``conv1d [B, C, T]``: what WN runs today (cuDNN; channels-first, which tensor-core kernels may
  have to transpose on the way in and out);
- ``conv2d channels-last``: the same numbers as ``[B, C, 1, T]`` stored channels-last (NHWC);
- ``GEMM [B, T, C]``: time-major activations; the dilated kernel-3 convolution as one GEMM over the
  three shifted copies of the input side by side ``[B, T, 3C] @ [3C, 2C]``, the 1x1 as a plain GEMM
  (``waveglow.model.convolve``, what ``--wn-time-major`` runs).

Each row is the mean over the layers' dilations (1, 2, ..., 2^(layers-1)) of ``--iters`` timed runs
after warm-up, device-synchronised; TFLOP/s counts 2 x MACs (3x for forward + backward). The
``max diff`` column is each layout's largest difference from ``conv1d`` relative to its peak, so
a faster row is only worth having if it also computes the same convolution. fp32 means float32
for every layout here (no TF32); in training with torch's defaults, channels-first convolutions run in
TF32 and ``--wn-time-major``'s GEMMs in float32.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.timing import device_name, synchronize  # noqa: E402
from waveglow.model import convolve  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument("--batch", type=int, default=None, help="default 10 on a GPU, 2 on the CPU")
    parser.add_argument("--steps", type=int, default=None,
                        help="time steps of a WN input (segment / n_group); default 1000 on a GPU, 250 on the CPU")
    parser.add_argument("--channels", type=int, default=None, help="WN channels; default 512 on a GPU, 128 on the CPU")
    parser.add_argument("--layers", type=int, default=8, help="WN layers: dilations 1 .. 2^(layers-1)")
    parser.add_argument("--precisions", nargs="+", choices=list(DTYPES), default=None,
                        help="default fp16 bf16 fp32 on a GPU, fp32 bf16 on the CPU")
    parser.add_argument("--iters", type=int, default=None, help="timed runs per row; default 20 on a GPU, 2 on the CPU")
    parser.add_argument("--warmup", type=int, default=3)
    return parser.parse_args(argv)


# Each layout: (prepare(x [B, C, T], weight [O, C, K]) -> (input, weight) in its layout,
#               run(input, weight, dilation) -> output, to_channels_first(output) -> [B, O, T]).
def conv1d_prepare(x, weight):
    return x, weight


def conv1d_run(x, weight, dilation):
    return F.conv1d(x, weight, padding=dilation * (weight.size(2) - 1) // 2, dilation=dilation)


def conv1d_back(out):
    return out


def conv2d_prepare(x, weight):
    channels_last = torch.channels_last
    return (x.unsqueeze(2).contiguous(memory_format=channels_last),
            weight.unsqueeze(2).contiguous(memory_format=channels_last))


def conv2d_run(x, weight, dilation):
    return F.conv2d(x, weight, padding=(0, dilation * (weight.size(3) - 1) // 2), dilation=(1, dilation))


def conv2d_back(out):
    return out.squeeze(2)


def gemm_prepare(x, weight):
    """Activations [B, T, C]; the weight as WN keeps it (--wn-time-major reshapes it per call)."""
    return x.transpose(1, 2).contiguous(), weight


def gemm_run(x, weight, dilation):
    return convolve(x, weight, None, dilation, time_major=True)


def gemm_back(out):
    return out.transpose(1, 2)


LAYOUTS = {
    "conv1d [B, C, T]": (conv1d_prepare, conv1d_run, conv1d_back),
    "conv2d channels-last": (conv2d_prepare, conv2d_run, conv2d_back),
    "GEMM [B, T, C]": (gemm_prepare, gemm_run, gemm_back),
}


def same_convolution(x, weight, dilation: int) -> dict[str, float]:
    """Each layout's output against conv1d's (float32 inputs), max |diff| / max |conv1d|."""
    reference = conv1d_run(x, weight, dilation)
    diffs = {}
    for name, (prepare, run, back) in LAYOUTS.items():
        out = back(run(*prepare(x, weight), dilation))
        diffs[name] = ((out.float() - reference.float()).abs().max() / reference.float().abs().max()).item()
    return diffs


def time_layout(layout, x, weight, dilations, iters: int, warmup: int, backward: bool, device) -> float:
    """Mean seconds of one convolution (forward, or forward + backward) over the dilations."""
    prepare, run, _ = layout
    total = 0.0
    for dilation in dilations:
        inputs, weights = prepare(x, weight)
        inputs = inputs.detach().requires_grad_(backward)
        weights = weights.detach().requires_grad_(backward)
        grad = None
        for i in range(warmup + iters):
            if i == warmup:
                synchronize(device)
                start = time.perf_counter()
            out = run(inputs, weights, dilation)
            if backward:
                grad = torch.ones_like(out) if grad is None else grad
                torch.autograd.grad(out, (inputs, weights), grad)
        synchronize(device)
        total += (time.perf_counter() - start) / iters
    return total / len(dilations)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    gpu = device.type == "cuda"
    batch = args.batch or (10 if gpu else 2)
    n_steps = args.steps or (1000 if gpu else 250)
    channels = args.channels or (512 if gpu else 128)
    iters = args.iters or (20 if gpu else 2)
    names = args.precisions or (["fp16", "bf16", "fp32"] if gpu else ["fp32", "bf16"])
    dilations = [2 ** i for i in range(args.layers)]
    if gpu:
        torch.backends.cudnn.benchmark = True  # as WaveGlow trains (--cudnn-benchmark)
        # fp32 rows and the exactness check in true float32 for every layout: torch's defaults run
        # cuDNN convolutions in TF32 but GEMMs in float32, which would compare two kinds of math
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    generator = torch.Generator().manual_seed(0)
    x32 = torch.randn(batch, channels, n_steps, generator=generator).to(device)
    convolutions = {
        "in_layer (kernel 3)": torch.randn(2 * channels, channels, 3, generator=generator).to(device) / channels,
        "res_skip (1x1)": torch.randn(2 * channels, channels, 1, generator=generator).to(device) / channels,
    }
    print(f"device {device_name(device)}, torch {torch.__version__}; "
          f"batch {batch}, {n_steps} steps, {channels} channels, dilations {dilations[0]}..{dilations[-1]}, "
          f"{iters} runs a row")
    print("| convolution | layout | precision | forward | forward + backward | TFLOP/s (f + b) | max diff |")
    print("|---|---|---|---:|---:|---:|---:|")
    for conv_name, weight32 in convolutions.items():
        diffs = {}
        for dilation in dilations:  # exactness in float32, at every dilation
            for name, diff in same_convolution(x32, weight32, dilation).items():
                diffs[name] = max(diffs.get(name, 0.0), diff)
        macs = batch * n_steps * weight32.numel()
        for precision in names:
            x, weight = x32.to(DTYPES[precision]), weight32.to(DTYPES[precision])
            for layout_name, layout in LAYOUTS.items():
                try:
                    forward = time_layout(layout, x, weight, dilations, iters, args.warmup, False, device)
                    both = time_layout(layout, x, weight, dilations, iters, args.warmup, True, device)
                except RuntimeError as error:  # e.g. a dtype the device has no kernel for
                    print(f"| {conv_name} | {layout_name} | {precision} | failed: {str(error).splitlines()[0]} |"
                          " | | |")
                    continue
                tflops = 3 * 2 * macs / both / 1e12
                print(f"| {conv_name} | {layout_name} | {precision} | {forward * 1e3:.3f} ms | {both * 1e3:.3f} ms "
                      f"| {tflops:.3g} | {diffs[layout_name]:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
