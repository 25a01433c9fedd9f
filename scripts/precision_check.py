"""Do the mixed-precision paths keep the numbers? One table, for the GPU work of docs/performance.md.

    python scripts/precision_check.py [--cpu] [--frames 400] [--waveglow-frames 80]

With random weights (same seed for every precision) it prints, per precision the device offers
(FP32, FP16 and BF16 autocast on a GPU; FP32 and BF16 on the CPU):
- Tacotron 2's teacher-forced loss on a batch of 8 random utterances, and its relative difference
  from FP32 (the prenet's dropout is always on, so a differing mask shows up here); on a GPU also
  train.py --torch-compile's loss and gradients against eager's in FP16 autocast;
- WaveGlow's round trip, max |audio - reverse(forward(audio))|, and the dtypes of z and the
  log-determinants (float32 in every precision).
- inference.py's half precisions (weights cast once, or autocast) against FP32: Tacotron 2 free
  running (forced steps, prenet dropout off) and WaveGlow synthesis from a fixed z; on a GPU also
  the CUDA-graph decoder (--cuda-graphs) against the eager one, a cached replay against the first
  capture, and --torch-compile (the compiled decoder step, WaveGlow's compiled gates) against eager,
  and with the weights cast (not under autocast) --wn-compile-block (WaveGlow's blocks compiled whole).
Exits non-zero when a loss differs from FP32 by more than --loss-tolerance, a round trip by more
than --inversion-tolerance, a half-precision synthesis by more than --synthesis-tolerance, a
graph replay differs from its first run, or anything is not finite.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from contextlib import nullcontext

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import inference  # noqa: E402
import tacotron2  # noqa: E402
import waveglow  # noqa: E402
from common.timing import device_name  # noqa: E402

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
    parser.add_argument("--synthesis-tolerance", type=float, default=5e-2,
                        help="WaveGlow inference in half precision against FP32, relative to the peak")
    parser.add_argument("--decoder-steps", type=int, default=100, help="forced free-running Tacotron 2 steps")
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


def compiled_training_differences(device: torch.device, n_frames: int) -> tuple[float, float]:
    """train.py --torch-compile against eager, FP16 autocast (the AMP of the speed targets), forward
    and backward with the decoder's dropouts off (compiled, they draw other masks): (the loss's
    relative difference, the largest gradient difference relative to the largest gradient)."""
    torch.manual_seed(0)
    config = {**inference.default_config(tacotron2), "p_attention_dropout": 0.0, "p_decoder_dropout": 0.0}
    eager = tacotron2.build_model(config).to(device).train()
    compiled = copy.deepcopy(eager)
    tacotron2.use_torch_compile(compiled)
    loss_fn = tacotron2.build_loss()
    inputs, targets = tacotron2_batch(n_frames, device)
    results = []
    for model in (eager, compiled):
        torch.manual_seed(1)
        with autocast(device, torch.float16):
            loss, _ = loss_fn(model(inputs), targets)
        loss.backward()
        results.append((loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    (eager_loss, eager_grads), (compiled_loss, compiled_grads) = results
    return abs(compiled_loss - eager_loss) / abs(eager_loss), relative(compiled_grads, eager_grads)


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


def inference_modes(device: torch.device) -> dict[str, tuple[torch.dtype, bool]]:
    """inference.py's half precisions: name -> (dtype, autocast?); "weights" = cast once (the default)."""
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16} if device.type == "cuda" else {"bf16": torch.bfloat16}
    return {f"{name} {kind}": (dtype, kind == "autocast") for name, dtype in dtypes.items()
            for kind in ("weights", "autocast")}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def free_running(model, text, lengths, dtype, use_autocast: bool, graphs: bool) -> torch.Tensor:
    model.decoder.cuda_graphs = graphs
    with torch.no_grad(), autocast(text.device, dtype if use_autocast else None):
        return model.infer(text, lengths)[0].float()


def inference_differences(device: torch.device, n_steps: int, waveglow_frames: int,
                          wn_channels: int | None) -> dict[str, dict[str, float | bool]]:
    """Per half-precision inference mode, against float32 (relative to the float32 peak):
    Tacotron 2 free running (n_steps forced steps, prenet dropout off) and WaveGlow synthesis from a
    fixed z. On a GPU also CUDA-graph vs eager decoding and a cached graph replay vs the first run
    (in the same mode), the torch.compile'd decoder step (in graphs) vs eager, and WaveGlow with
    torch.compile'd gates vs without."""
    torch.manual_seed(0)
    config = {**inference.default_config(tacotron2), "max_decoder_steps": n_steps, "decoder_no_early_stopping": True}
    t2_fp32 = tacotron2.build_model(config).to(device).eval()
    t2_fp32.decoder.prenet.dropout = 0.0  # its draws differ between graph replays and eager launches
    text = torch.randint(1, len(tacotron2.symbols), (1, 77), generator=torch.Generator().manual_seed(0)).to(device)
    lengths = torch.tensor([77], device=device)
    mel_fp32 = free_running(t2_fp32, text, lengths, None, False, False)

    wg_fp32 = waveglow.build_model(inference.default_config(waveglow, wn_channels)).remove_weightnorm()
    with torch.no_grad():
        for coupling in wg_fp32.WN:  # the last convolution starts at zero: make each coupling act
            for parameter in coupling.end.parameters():
                parameter.normal_(0.0, 0.02)
    wg_fp32 = wg_fp32.to(device).eval()
    mel = torch.randn(1, 80, waveglow_frames, device=device) - 5
    z = 0.6 * torch.randn(1, 8, waveglow_frames * 32, device=device)
    with torch.no_grad():
        audio_fp32 = wg_fp32.infer(mel, z=z)

    results = {}
    for name, (dtype, use_autocast) in inference_modes(device).items():
        row = {}
        t2_model, wg_model = copy.deepcopy(t2_fp32), copy.deepcopy(wg_fp32)
        inference.cast_models(dtype, use_autocast, t2_model, wg_model)
        eager = free_running(t2_model, text, lengths, dtype, use_autocast, False)
        row["tacotron2_vs_fp32"] = relative(eager, mel_fp32)
        finite = [eager]
        if device.type == "cuda":
            graphed = free_running(t2_model, text, lengths, dtype, use_autocast, True)
            replayed = free_running(t2_model, text, lengths, dtype, use_autocast, True)
            row["graphs_vs_eager"] = relative(graphed, eager)
            row["replay_vs_first"] = float((replayed - graphed).abs().max())
            tacotron2.use_torch_compile(t2_model)  # --torch-compile: the fused step, in the graphs
            compiled_step = free_running(t2_model, text, lengths, dtype, use_autocast, True)
            tacotron2.use_torch_compile(t2_model, False)
            row["compiled_step_vs_eager"] = relative(compiled_step, eager)
            finite += [graphed, replayed, compiled_step]
        with torch.no_grad(), autocast(device, dtype if use_autocast else None):
            audio = wg_model.infer(mel, z=z).float()
            row["waveglow_vs_fp32"] = relative(audio, audio_fp32)
            finite.append(audio)
            if device.type == "cuda":
                compiled = wg_model.compile_gates().infer(mel, z=z).float()
                row["compiled_gates_vs_eager"] = relative(compiled, audio)
                finite.append(compiled)
                row["compiled_blocks_vs_eager"] = None
                if not use_autocast:  # --wn-compile-block; each mode compiles its own graphs: not all four
                    block = wg_model.compile_blocks().infer(mel, z=z).float()
                    row["compiled_blocks_vs_eager"] = relative(block, audio)
                    finite.append(block)
        row["finite"] = all(bool(torch.isfinite(t).all()) for t in finite)
        results[name] = row
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    print(f"{device_name(device)}, torch {torch.__version__}")
    failures = []

    losses = tacotron2_losses(device, args.frames)
    print(f"\nTacotron 2 teacher-forced loss, batch {BATCH} x {args.frames} frames, {N_TOKENS} tokens")
    print("| precision | loss | relative difference from FP32 |\n|---|---:|---:|")
    for precision, loss in losses.items():
        difference = abs(loss - losses["fp32"]) / abs(losses["fp32"])
        print(f"| {precision} | {loss:.6f} | {difference:.1e} |")
        if difference > args.loss_tolerance:
            failures.append(f"Tacotron 2 {precision} loss differs from FP32 by {difference:.1e}")

    if device.type == "cuda":
        loss_difference, gradient_difference = compiled_training_differences(device, args.frames)
        print(f"\ntrain.py --torch-compile against eager, FP16 autocast, decoder dropouts off: loss "
              f"{loss_difference:.1e} (relative), gradients {gradient_difference:.1e} (relative to the largest)")
        if loss_difference > args.loss_tolerance or gradient_difference > args.synthesis_tolerance:
            failures.append(f"the compiled training step differs from eager: loss {loss_difference:.1e}, "
                            f"gradients {gradient_difference:.1e}")

    trips = waveglow_round_trips(device, args.waveglow_frames, args.wn_channels)
    print(f"\nWaveGlow round trip, {256 * args.waveglow_frames} samples x 2")
    print("| precision | max abs error | audio peak | z | log-determinants |\n|---|---:|---:|---|---|")
    for precision, (error, peak, z_dtype, log_det_dtype) in trips.items():
        print(f"| {precision} | {error:.1e} | {peak:.2f} | {z_dtype} | {log_det_dtype} |")
        if error > args.inversion_tolerance or z_dtype != torch.float32 or log_det_dtype != torch.float32:
            failures.append(f"WaveGlow {precision} round trip: error {error:.1e}, z {z_dtype}, "
                            f"log-determinants {log_det_dtype}")

    rows = inference_differences(device, args.decoder_steps, args.waveglow_frames, args.wn_channels)
    columns = [key for key in next(iter(rows.values())) if key != "finite"]
    print(f"\nInference (inference.py --fp16/--bf16 [--autocast]): max difference relative to the FP32 peak; "
          f"Tacotron 2 {args.decoder_steps} forced free-running steps, prenet dropout off; WaveGlow "
          f"{256 * args.waveglow_frames} samples from a fixed z")
    print("| mode | " + " | ".join(columns) + " | finite |\n|---|" + "---:|" * len(columns) + "---|")
    for mode, row in rows.items():
        print(f"| {mode} | " + " | ".join("-" if row[key] is None else f"{row[key]:.1e}" for key in columns)
              + f" | {row['finite']} |")
        if not row["finite"] or row.get("replay_vs_first", 0.0) > 0:
            failures.append(f"inference in {mode}: finite {row['finite']}, "
                            f"graph replay differs by {row.get('replay_vs_first', 0.0):.1e}")
        if row["waveglow_vs_fp32"] > args.synthesis_tolerance:
            failures.append(f"WaveGlow synthesis in {mode} differs from FP32 by {row['waveglow_vs_fp32']:.1e}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
