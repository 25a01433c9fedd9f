"""Operations per free-running Tacotron 2 decoder step: a device-free proxy for kernel launches.

    python scripts/decoder_step_ops.py [--cpu] [--steps 8] [--tokens 77]

At batch 1 a decoder step is launch-bound on a GPU (docs/performance.md), so the number of kernels a
step launches is what the speed work counts down. This script counts the ATen operations that
reach the device backend in one chunk of free-running steps (Decoder.decode_chunk), views and
no-ops excluded, per precision mode of inference.py (FP32; half precision with the weights cast
once, or under autocast). On the CPU an LSTM cell is 8-9 operations where CUDA runs 3 kernels
(two GEMMs and one fused cell), so absolute numbers differ between devices; differences between
modes and commits carry over. A second table counts a teacher-forced (training) step, forward and
backward, in FP32 and under autocast, and what the step compiles to with train.py --torch-compile.
On a GPU a third table counts what matters there, the CUDA kernels a free-running step launches
(torch.profiler), eager and with --torch-compile (the step's elementwise chains fused; a CUDA graph
replays the same kernels, so graphs do not change the count).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from contextlib import nullcontext

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import inference  # noqa: E402
import tacotron2  # noqa: E402
from common.profiling import device_kernels  # noqa: E402
from tacotron2.model import COMPILED_STEPS  # noqa: E402


class OpCounter(TorchDispatchMode):
    """Counts backend ATen calls that are not views (views launch no kernel)."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket not in (torch.ops.aten.detach, torch.ops.aten.lift_fresh):
            self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def count_one_chunk(device: torch.device, dtype: torch.dtype | None, use_autocast: bool, compiled: bool,
                    n_steps: int, n_tokens: int, counting):
    """Run one warmed-up chunk of n_steps free-running steps (batch 1) inside ``counting()``, a context
    manager, and return what it entered as."""
    torch.manual_seed(0)
    model = tacotron2.build_model(inference.default_config(tacotron2)).to(device).eval()
    inference.cast_models(dtype, use_autocast, model)
    tacotron2.use_torch_compile(model, compiled)
    decoder = model.decoder
    # the encoder's output dtype: the half dtype whether cast or autocast
    memory = torch.randn(1, n_tokens, 512, device=device, dtype=dtype or torch.float32)
    context = torch.autocast(device.type, dtype=dtype) if use_autocast else nullcontext()
    with torch.no_grad(), context:
        buffers = decoder.free_run_buffers(memory, torch.tensor([n_tokens], device=device), n_steps)
        for _ in range(2):  # warm-up: compilation and lazy initialisation stay out of the count
            decoder.decode_chunk(buffers, n_steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        with counting() as counter:
            decoder.decode_chunk(buffers, n_steps)
            if device.type == "cuda":
                torch.cuda.synchronize()
    return counter


def ops_per_step(device: torch.device, dtype: torch.dtype | None, use_autocast: bool, n_steps: int,
                 n_tokens: int) -> Counter:
    counter = count_one_chunk(device, dtype, use_autocast, False, n_steps, n_tokens, OpCounter)
    return Counter({name: count / n_steps for name, count in counter.counts.items()})


def kernels_per_step(dtype: torch.dtype | None, compiled: bool, n_steps: int, n_tokens: int) -> float:
    """CUDA kernels (and memory copies/sets) one free-running step launches, weights cast to dtype."""
    from torch.profiler import ProfilerActivity, profile
    profiler = count_one_chunk(torch.device("cuda"), dtype, False, compiled, n_steps, n_tokens,
                               lambda: profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]))
    return len(device_kernels(profiler.events())) / n_steps


def compiled_step_kernels(device: torch.device, dtype: torch.dtype | None, n_tokens: int) -> tuple[int, int]:
    """(generated kernels, library calls: GEMMs, convolutions) of one compiled free-running step
    (--torch-compile), read from the code inductor writes for it: on the CPU too, since fusion is
    decided before the code is written for a device (the prenet and the copies into the chunk
    buffers run beside it, eagerly)."""
    from torch._inductor.utils import run_and_get_code
    torch._dynamo.reset()
    _, codes = run_and_get_code(lambda: count_one_chunk(device, dtype, False, True, 1, n_tokens, nullcontext))
    return kernel_calls(max(codes, key=len))  # the step's graph (the chunk's other work stays eager)


def kernel_calls(code: str) -> tuple[int, int]:
    """(generated kernels, library calls) that the ``call`` of inductor's output ``code`` makes."""
    call = code[code.rfind("def call("):]
    generated = len(re.findall(r"^\s+(?:cpp_fused_\w+\(|\w+\.run\()", call, re.M))
    library = len(re.findall(r"extern_kernels\.\w+\(", call))
    return generated, library


def compiled_training_kernels(device: torch.device, n_tokens: int, batch: int = 4) -> list[tuple[float, float]]:
    """[(generated kernels, library calls)] per step of the compiled teacher-forced steps (train.py
    --torch-compile, chunks of COMPILED_STEPS), forward then backward, FP32, from the code inductor
    writes for them."""
    from torch._inductor.utils import run_and_get_code
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = tacotron2.build_model(inference.default_config(tacotron2)).to(device).train()
    tacotron2.use_torch_compile(model)
    memory = torch.randn(batch, n_tokens, 512, device=device, requires_grad=True)
    mels = torch.randn(batch, 80, 1 + COMPILED_STEPS, device=device)  # the first step runs eagerly

    def forward_and_backward():
        outputs = model.decoder.teacher_forcing(memory, mels, torch.full((batch,), n_tokens, device=device))
        sum(output.sum() for output in outputs).backward()

    _, codes = run_and_get_code(forward_and_backward)
    return [tuple(count / COMPILED_STEPS for count in kernel_calls(code)) for code in codes]


def training_ops_per_step(device: torch.device, dtype: torch.dtype | None, n_tokens: int,
                          batch: int = 4) -> tuple[float, float]:
    """(forward, forward + backward) operations per teacher-forced decoder step, from the difference
    between 16 and 8 steps (what does not repeat per step cancels)."""
    torch.manual_seed(0)
    decoder = tacotron2.build_model(inference.default_config(tacotron2)).to(device).train().decoder
    memory = torch.randn(batch, n_tokens, 512, device=device, requires_grad=True)
    mels = torch.randn(batch, 80, 16, device=device)
    lengths = torch.full((batch,), n_tokens, device=device)
    context = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()

    def count(n_frames: int, backward: bool) -> int:
        with OpCounter() as counter, torch.set_grad_enabled(backward), context:
            outputs = decoder.teacher_forcing(memory, mels[:, :, :n_frames], lengths)
            if backward:
                sum(output.float().sum() for output in outputs).backward()
        return sum(counter.counts.values())

    count(16, True)  # warm-up
    return tuple((count(16, backward) - count(8, backward)) / 8 for backward in (False, True))


def training_kernels_per_step(compiled: bool, n_tokens: int, batch: int = 4, device: torch.device | None = None,
                              dtype: torch.dtype = torch.float16) -> float:
    """CUDA kernels (and memory copies/sets) a teacher-forced step launches, forward and backward,
    FP16 autocast (train.py --amp), eager or with --torch-compile: the difference between 1 + 16 and
    1 + 8 frames, so what does not repeat per step cancels."""
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    device = device or torch.device("cuda")
    model = tacotron2.build_model(inference.default_config(tacotron2)).to(device).train()
    tacotron2.use_torch_compile(model, compiled)
    memory = torch.randn(batch, n_tokens, 512, device=device, requires_grad=True)
    lengths = torch.full((batch,), n_tokens, device=device)

    def kernels(n_frames: int) -> int:
        mels = torch.randn(batch, 80, n_frames, device=device)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
            with torch.autocast(device.type, dtype=dtype):
                outputs = model.decoder.teacher_forcing(memory, mels, lengths)
            sum(output.float().sum() for output in outputs).backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
        return len(device_kernels(profiler.events()))

    for n_frames in (1 + 16, 1 + 8):  # warm-up: compilation and lazy initialisation stay out of the count
        kernels(n_frames)
    return (kernels(1 + 16) - kernels(1 + 8)) / 8


def eager_and_compiled(count) -> list[str]:
    """``count(compiled)`` for False and True, as table cells; a failing compile still leaves the eager count."""
    cells = []
    for compiled in (False, True):
        try:
            cells.append(f"{count(compiled):g}")
        except Exception as error:
            cells.append(f"failed: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
    return cells


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="count on the CPU even when a GPU is present")
    parser.add_argument("--steps", type=int, default=8, help="steps counted (one chunk)")
    parser.add_argument("--tokens", type=int, default=77, help="encoder steps of the utterance")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    half = torch.float16 if device.type == "cuda" else torch.bfloat16
    name = "fp16" if half == torch.float16 else "bf16"
    modes = {"fp32": (None, False), f"{name} weights": (half, False), f"{name} autocast": (half, True)}
    counts = {mode: ops_per_step(device, dtype, autocast, args.steps, args.tokens)
              for mode, (dtype, autocast) in modes.items()}
    ops = sorted(set().union(*counts.values()), key=lambda op: (-max(c[op] for c in counts.values()), op))
    print(f"{device.type}, torch {torch.__version__}: ATen operations per decoder step (views excluded), "
          f"batch 1, {args.tokens} tokens")
    print("| operation | " + " | ".join(modes) + " |\n|---|" + "---:|" * len(modes))
    print("| **total** | " + " | ".join(f"**{sum(c.values()):g}**" for c in counts.values()) + " |")
    for op in ops:
        print(f"| {op} | " + " | ".join(f"{counts[mode][op]:g}" for mode in modes) + " |")
    generated, library = compiled_step_kernels(device, None, args.tokens)
    print(f"\n--torch-compile: one free-running step compiles to {generated} generated kernels and {library} "
          f"library calls (GEMMs, convolution), fp32; the prenet (dropout, GEMM, dropout) runs beside it")
    print(f"\nTraining (teacher forcing), operations per decoder step, batch 4, {args.tokens} tokens")
    print("| mode | forward | forward + backward |\n|---|---:|---:|")
    for mode, dtype in (("fp32", None), (f"{name} autocast", half)):
        forward, both = training_ops_per_step(device, dtype, args.tokens)
        print(f"| {mode} | {forward:g} | {both:g} |")
    graphs = compiled_training_kernels(device, args.tokens)
    print(f"\ntrain.py --torch-compile: chunks of {COMPILED_STEPS} teacher-forced steps compile to, a step, "
          + ", ".join(f"{generated:g} generated kernels and {library:g} library calls" for generated, library in graphs)
          + " (forward, backward), fp32")
    if device.type == "cuda":
        print(f"\nCUDA kernels per free-running decoder step (torch.profiler), batch 1, {args.tokens} tokens")
        print("| precision | eager | --torch-compile |\n|---|---:|---:|")
        for mode, dtype in (("fp32", None), ("fp16 weights", torch.float16), ("bf16 weights", torch.bfloat16)):
            counts = eager_and_compiled(lambda compiled: kernels_per_step(dtype, compiled, args.steps, args.tokens))
            print(f"| {mode} | " + " | ".join(counts) + " |")
        counts = eager_and_compiled(lambda compiled: training_kernels_per_step(compiled, args.tokens))
        print(f"\nCUDA kernels per teacher-forced decoder step, forward and backward, FP16 autocast, batch 4, "
              f"{args.tokens} tokens: eager {counts[0]}, --torch-compile {counts[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
