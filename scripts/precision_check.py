"""Do the mixed-precision paths keep the numbers? One table, for the GPU work of docs/performance.md.

    python scripts/precision_check.py [--cpu] [--frames 400] [--waveglow-frames 80]

With random weights (same seed for every precision) it prints, per precision the device offers
(FP32, FP16 and BF16 autocast on a GPU; FP32 and BF16 on the CPU):
- Tacotron 2's teacher-forced loss on a batch of 8 random utterances, and its relative difference
  from FP32 (the prenet's dropout is always on, so a differing mask shows up here);
- WaveGlow's round trip, max |audio - reverse(forward(audio))|, and the dtypes of z and the
  log-determinants (float32 in every precision).
On a GPU also the CUDA-graph decoder (inference.py --cuda-graphs) against the eager one: max |mel|
difference over 100 forced free-running steps with the prenet's dropout off, first capture and a
cached replay. Exits non-zero when a loss differs from FP32 by more than --loss-tolerance or a round trip by more
than --inversion-tolerance.
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
import waveglow  # noqa: E402

N_TOKENS = 120
BATCH = 8


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument("--frames", type=int, default=400, help="mel frames of the longest Tacotron 2 utterance")
    parser.add_argument("--waveglow-frames", type=int, default=80, help="mel frames WaveGlow inverts")
    parser.add_argument("--wn-channels", type=int, choices=[256, 512], default=None, help="WaveGlow width")
    parser.add_argument("--loss-tolerance", type=float, default=1e-3, help="relative, against FP32")
    parser.add_argument("--inversion-tolerance", type=float, default=5e-2, help="absolute, audio peak ~1")
    return parser.parse_args(argv)


def precisions(device: torch.device) -> dict[str, torch.dtype | None]:
    if device.type == "cuda":
        return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
    return {"fp32": None, "bf16": torch.bfloat16}


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


def tacotron2_batch(n_frames: int, device: torch.device) -> tuple[tuple, tuple]:
    generator = torch.Generator().manual_seed(0)
    input_lengths = torch.randint(N_TOKENS // 2, N_TOKENS + 1, (BATCH,), generator=generator)
    input_lengths = input_lengths.sort(descending=True).values
    input_lengths[0] = N_TOKENS
    output_lengths = torch.randint(n_frames // 2, n_frames + 1, (BATCH,), generator=generator)
    output_lengths[0] = n_frames
    text = torch.randint(1, len(tacotron2.symbols), (BATCH, N_TOKENS), generator=generator)
    frame = torch.arange(n_frames)
    padded = frame.view(1, -1) >= output_lengths.view(-1, 1)
    mel = (torch.randn(BATCH, 80, n_frames, generator=generator) - 5).masked_fill(padded.unsqueeze(1), 0.0)
    gate = (frame.view(1, -1) >= output_lengths.view(-1, 1) - 1).float()
    text, input_lengths, mel, gate, output_lengths = (
        t.to(device) for t in (text, input_lengths, mel, gate, output_lengths))
    return (text, input_lengths, mel, N_TOKENS, output_lengths), (mel, gate, input_lengths, output_lengths)


def tacotron2_losses(device: torch.device, n_frames: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = tacotron2.build_model(inference.default_config(tacotron2)).to(device).train()
    loss_fn = tacotron2.build_loss()
    inputs, targets = tacotron2_batch(n_frames, device)
    losses = {}
    for name, dtype in precisions(device).items():
        torch.manual_seed(1)  # the same dropout draws for every precision
        with torch.no_grad(), autocast(device, dtype):
            loss, _ = loss_fn(model(inputs), targets)
        losses[name] = loss.item()
    return losses


def waveglow_round_trips(device: torch.device, n_frames: int, wn_channels: int | None) -> dict[str, tuple]:
    torch.manual_seed(0)
    model = waveglow.build_model(inference.default_config(waveglow, wn_channels)).to(device)
    with torch.no_grad():
        for coupling in model.WN:  # the last convolution starts at zero: make each coupling act
            for parameter in coupling.end.parameters():
                parameter.normal_(0.0, 0.02)
    model.eval()
    mel = torch.randn(2, 80, n_frames, device=device) - 5
    audio = 0.3 * torch.randn(2, 256 * n_frames, device=device)
    results = {}
    for name, dtype in precisions(device).items():
        with torch.no_grad(), autocast(device, dtype):
            z, _, log_dets = model((mel, audio))
            back = model.reverse(mel, z)
        results[name] = (float((back - audio).abs().max()), float(audio.abs().max()), z.dtype, log_dets[0].dtype)
    return results


def cuda_graph_differences(device: torch.device, n_steps: int = 100) -> dict[str, tuple[float, float, bool]]:
    """Per precision: (max |graphed - eager| mel, max |second graphed run - first|, all finite)."""
    torch.manual_seed(0)
    config = {**inference.default_config(tacotron2), "max_decoder_steps": n_steps,
              "decoder_no_early_stopping": True}
    model = tacotron2.build_model(config).to(device).eval()
    model.decoder.prenet.dropout = 0.0  # its draws differ between graph replays and eager launches
    text = torch.randint(1, len(tacotron2.symbols), (1, 77), generator=torch.Generator().manual_seed(0)).to(device)
    lengths = torch.tensor([77], device=device)
    results = {}
    for name, dtype in precisions(device).items():
        with torch.no_grad(), autocast(device, dtype):
            model.decoder.cuda_graphs = False
            eager = model.infer(text, lengths)[0].float()
            model.decoder.cuda_graphs = True
            graphed = model.infer(text, lengths)[0].float()
            replayed = model.infer(text, lengths)[0].float()
        finite = bool(torch.isfinite(graphed).all() and torch.isfinite(replayed).all())
        results[name] = (float((graphed - eager).abs().max()), float((replayed - graphed).abs().max()), finite)
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}")
    failures = []

    losses = tacotron2_losses(device, args.frames)
    print(f"\nTacotron 2 teacher-forced loss, batch {BATCH} x {args.frames} frames, {N_TOKENS} tokens")
    print("| precision | loss | relative difference from FP32 |\n|---|---:|---:|")
    for precision, loss in losses.items():
        difference = abs(loss - losses["fp32"]) / abs(losses["fp32"])
        print(f"| {precision} | {loss:.6f} | {difference:.1e} |")
        if difference > args.loss_tolerance:
            failures.append(f"Tacotron 2 {precision} loss differs from FP32 by {difference:.1e}")

    trips = waveglow_round_trips(device, args.waveglow_frames, args.wn_channels)
    print(f"\nWaveGlow round trip, {256 * args.waveglow_frames} samples x 2")
    print("| precision | max abs error | audio peak | z | log-determinants |\n|---|---:|---:|---|---|")
    for precision, (error, peak, z_dtype, log_det_dtype) in trips.items():
        print(f"| {precision} | {error:.1e} | {peak:.2f} | {z_dtype} | {log_det_dtype} |")
        if error > args.inversion_tolerance or z_dtype != torch.float32 or log_det_dtype != torch.float32:
            failures.append(f"WaveGlow {precision} round trip: error {error:.1e}, z {z_dtype}, "
                            f"log-determinants {log_det_dtype}")
    if device.type == "cuda":
        print("\nTacotron 2 free running, CUDA graphs vs eager, 100 steps, prenet dropout off")
        print("| precision | max mel difference | second run vs first | finite |\n|---|---:|---:|---|")
        for precision, (difference, replay_difference, finite) in cuda_graph_differences(device).items():
            print(f"| {precision} | {difference:.1e} | {replay_difference:.1e} | {finite} |")
            if not finite or replay_difference > 0:
                failures.append(f"CUDA-graph decoding in {precision}: finite {finite}, "
                                f"replay differs by {replay_difference:.1e}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
