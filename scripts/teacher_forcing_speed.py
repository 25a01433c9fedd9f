"""Time of one teacher-forced Tacotron 2 decoder step, forward and backward, eager and with train.py
--torch-compile, as one markdown table (docs/performance.md).

    python scripts/teacher_forcing_speed.py [--cpu] [--frames 200] [--tokens 150] [--repeats 3]

Training is host-bound on a GPU: a decoder step costs the host more than the GPU's work. This times
the decoder's teacher forcing alone (the loop train.py runs ~900 times a batch; no data loading,
encoder, postnet or optimizer), device-synchronised, best of --repeats after a warm-up run that
compiles. Settings: on a GPU the recipe's model at batch 128 under FP16 autocast (the training
target's setting); on the CPU the recipe's model at batch 8, and a 32-wide model at
batch 1 on one thread, whose step is all host cost: a stand-in for a launch-bound GPU.
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import inference  # noqa: E402
import tacotron2  # noqa: E402
from common.timing import DeviceTimer, device_name  # noqa: E402

NARROW = dict(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=32, decoder_rnn_dim=32,
              attention_dim=16, prenet_dim=16, attention_location_n_filters=8)


def settings(device: torch.device) -> list[tuple[str, dict, int, torch.dtype | None, int | None]]:
    """(name, model config overrides, batch, autocast dtype, threads) per row."""
    if device.type == "cuda":
        return [("recipe size, batch 128, FP16 autocast", {}, 128, torch.float16, None)]
    return [("recipe size, batch 8", {}, 8, None, None),
            ("32 wide, batch 1, 1 thread (host cost)", NARROW, 1, None, 1)]


def seconds_per_step(device: torch.device, overrides: dict, batch: int, dtype: torch.dtype | None, compiled: bool,
                     n_tokens: int, n_frames: int, repeats: int) -> float:
    """Best time of a teacher-forced forward and backward over n_frames, per decoder step."""
    torch.manual_seed(0)
    config = {**inference.default_config(tacotron2), **overrides}
    model = tacotron2.build_model(config).to(device).train()
    tacotron2.use_torch_compile(model, compiled)
    decoder = model.decoder
    memory = torch.randn(batch, n_tokens, config["encoder_embedding_dim"], device=device, requires_grad=True)
    mels = torch.randn(batch, config["n_mel_channels"], n_frames, device=device)
    lengths = torch.full((batch,), n_tokens, device=device)
    context = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    times = []
    for _ in range(repeats + 1):  # the first compiles and warms up
        with DeviceTimer(device) as timer:
            with context:
                outputs = decoder.teacher_forcing(memory, mels, lengths)
            sum(output.float().sum() for output in outputs).backward()
        times.append(timer.elapsed)
    return min(times[1:]) / n_frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="time on the CPU even when a GPU is present")
    parser.add_argument("--frames", type=int, default=200, help="teacher-forced frames a run")
    parser.add_argument("--tokens", type=int, default=150, help="encoder steps of every utterance")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up; the best counts")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    print(f"{device_name(device)}, torch {torch.__version__}: a teacher-forced decoder step, forward and backward, "
          f"{args.tokens} tokens, {args.frames} frames, best of {args.repeats}")
    print("| setting | eager | --torch-compile | speed-up |\n|---|---:|---:|---:|")
    threads = torch.get_num_threads()
    for name, overrides, batch, dtype, n_threads in settings(device):
        torch.set_num_threads(n_threads or threads)
        eager, compiled = (seconds_per_step(device, overrides, batch, dtype, compiled, args.tokens, args.frames,
                                            args.repeats) for compiled in (False, True))
        print(f"| {name} | {eager * 1e6:.0f} us | {compiled * 1e6:.0f} us | {eager / compiled:.2f}x |", flush=True)
    torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
