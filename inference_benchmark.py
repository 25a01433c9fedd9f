"""Latency benchmark of text -> audio, after the reference's test_infer.py (reference-dle b.6).

`python inference_benchmark.py --tacotron2 CKPT --waveglow CKPT -bs 1 -il 128 --num-iters 100`
(or `--random-weights`). The input is the "printed letters" sentence cut to `-il` characters,
repeated `-bs` times. After `--warmup` untimed iterations each iteration is timed per stage with
device-synchronised clocks; the log gets per-iteration keys at step (i,) and a summary at step ().
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys

import torch

import inference
import tacotron2
import waveglow
from common.errors import UserError, run_cli
from common.logger import Logger
from common.timing import device_name, latency_summary
from tacotron2.text import text_to_sequence
from waveglow.denoiser import Denoiser

SENTENCE = ("The forms of printed letters should be beautiful, and that their arrangement on the page "
            "should be reasonable and a help to the shapeliness of the letters themselves.")
UNITS = {"tacotron2_latency": "s", "waveglow_latency": "s", "denoiser_latency": "s", "latency": "s",
         "tacotron2_items_per_sec": "frames/s", "waveglow_items_per_sec": "samples/s", "throughput": "samples/s",
         "num_mels_per_audio": "frames", "audio_seconds": "s", "real_time_factor": None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Tacotron 2 + WaveGlow inference latency benchmark",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--tacotron2", help="Tacotron 2 checkpoint")
    add("--waveglow", help="WaveGlow checkpoint")
    add("--random-weights", action="store_true", help="random models of the default config (no checkpoints)")
    add("--wn-channels", type=int, choices=[256, 512], default=None,
        help="WaveGlow residual channels of random models (default 512)")
    add("-il", "--input-length", type=int, default=128, help="input characters per utterance")
    add("-bs", "--batch-size", type=int, default=1)
    add("--random-ids", action="store_true", help="random symbol ids instead of the sentence")
    inference.add_precision_args(parser)
    inference.add_speed_args(parser)
    add("--num-iters", type=int, default=10, help="timed iterations")
    add("--warmup", type=int, default=3, help="untimed iterations first")
    add("--decoder-steps", type=int, default=None,
        help="always decode exactly this many mel frames (no early stop), to compare speed at a fixed length")
    add("-s", "--sigma-infer", type=float, default=0.6, help="WaveGlow sampling sigma")
    add("-d", "--denoising-strength", type=float, default=0.01, help="0 turns the denoiser off")
    add("-sr", "--sampling-rate", type=int, default=None, help="for audio seconds (default: checkpoint's, else 22050)")
    add("--seed", type=int, default=1234)
    add("--log-file", default="nvlog.json", help="JSON log (a path, not joined to any folder)")
    return parser


def check_args(args: argparse.Namespace) -> None:
    inference.check_precision_args(args)
    if args.random_weights == bool(args.tacotron2 or args.waveglow):
        raise UserError("pass --tacotron2 and --waveglow checkpoints, or --random-weights")
    if not args.random_weights and not (args.tacotron2 and args.waveglow):
        raise UserError("both --tacotron2 and --waveglow are needed (or --random-weights)")
    for name in ("input_length", "batch_size", "num_iters", "decoder_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        raise UserError("--warmup must not be negative")


def load_models(args: argparse.Namespace, device: torch.device):
    """-> (Tacotron 2, WaveGlow with weight norm folded, sampling rate)."""
    overrides = {}
    if args.decoder_steps:
        overrides = {"max_decoder_steps": args.decoder_steps, "decoder_no_early_stopping": True}
    if not args.random_weights:
        t2_model, t2_ckpt = inference.load_tacotron2(args.tacotron2, device, overrides)
        wg_model, wg_ckpt = inference.load_waveglow(args.waveglow, device, args.wn_channels)
        rate = inference.audio_config(argparse.Namespace(sampling_rate=args.sampling_rate, stft_hop_length=None),
                                      t2_ckpt, wg_ckpt)["sampling_rate"]
        return t2_model, wg_model, rate
    if not args.decoder_steps:
        print("warning: an untrained Tacotron 2 stops after one frame; pass --decoder-steps N for a "
              "realistic length", file=sys.stderr)
    t2_model = tacotron2.build_model({**inference.default_config(tacotron2), **overrides})
    wg_model = waveglow.build_model(inference.default_config(waveglow, args.wn_channels)).remove_weightnorm()
    return t2_model.to(device).eval(), wg_model.to(device).eval(), args.sampling_rate or 22050


def input_batch(args: argparse.Namespace, n_symbols: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The sentence cut to --input-length characters (or random ids), --batch-size times."""
    if args.random_ids:
        ids = torch.randint(1, n_symbols, (args.input_length,)).tolist()
    else:
        repeats = math.ceil(args.input_length / (len(SENTENCE) + 1))
        ids = text_to_sequence(" ".join([SENTENCE] * repeats)[:args.input_length])
    text = torch.tensor([ids] * args.batch_size, dtype=torch.long, device=device)
    return text, torch.full((args.batch_size,), len(ids), dtype=torch.long, device=device)


def iteration(pipe: inference.Pipeline, text: torch.Tensor, lengths: torch.Tensor, sampling_rate: int) -> dict:
    mel, _, _, t2_seconds = inference.text_to_mel(pipe, text, lengths)
    audio, wg_seconds, denoiser_seconds = inference.mel_to_audio(pipe, mel)
    latency = t2_seconds + wg_seconds + denoiser_seconds
    samples = audio.size(0) * audio.size(1)
    audio_seconds = audio.size(1) / sampling_rate
    return {"tacotron2_latency": t2_seconds, "waveglow_latency": wg_seconds, "denoiser_latency": denoiser_seconds,
            "latency": latency, "tacotron2_items_per_sec": mel.size(0) * mel.size(2) / t2_seconds,
            "waveglow_items_per_sec": samples / wg_seconds, "throughput": samples / latency,
            "num_mels_per_audio": mel.size(2), "audio_seconds": audio_seconds,
            "real_time_factor": audio.size(0) * audio_seconds / latency}


def summarize(results: list[dict]) -> dict:
    """Latency statistics plus the mean of every other per-iteration value."""
    summary = latency_summary([r["latency"] for r in results])
    for key in UNITS:
        if key != "latency":
            summary[key] = statistics.fmean(r[key] for r in results)
    return summary


def print_table(args: argparse.Namespace, summary: dict, device: torch.device) -> None:
    mode = "bf16" if args.bf16 else "fp16" if args.fp16 and device.type == "cuda" else "fp32"
    if mode != "fp32":
        mode += " autocast" if args.autocast else " weights"
    graphs = ", CUDA graphs" if args.cuda_graphs and device.type == "cuda" else ""
    graphs += ", torch.compile (decoder step, WaveGlow gates)" if args.torch_compile else ""
    graphs += ", WaveGlow blocks compiled whole" if args.wn_compile_block else ""
    graphs += ", cuDNN benchmark mode" if args.cudnn_benchmark and device.type == "cuda" else ""
    print(f"\nbatch size {args.batch_size}, input length {args.input_length}, {args.num_iters} iterations, "
          f"{mode}, {device.type}{graphs}")
    rows = [("latency average", f"{summary['latency_avg']:.4f} s"), ("latency std", f"{summary['latency_std']:.4f} s")]
    rows += [(f"latency p{p}", f"{summary[f'latency_p{p}']:.4f} s") for p in (50, 90, 95, 99)]
    rows += [("Tacotron 2", f"{summary['tacotron2_items_per_sec']:.1f} frames/s"),
             ("WaveGlow", f"{summary['waveglow_items_per_sec']:.1f} samples/s"),
             ("mel frames", f"{summary['num_mels_per_audio']:.0f}"),
             ("audio", f"{summary['audio_seconds']:.3f} s per utterance"),
             ("real-time factor", f"{summary['real_time_factor']:.2f}x (audio seconds / latency)")]
    for name, value in rows:
        print(f"  {name:<18} {value}")


def run(args: argparse.Namespace) -> int:
    check_args(args)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    dtype = inference.inference_dtype(args, device)
    torch.manual_seed(args.seed)
    t2_model, wg_model, sampling_rate = load_models(args, device)
    inference.cast_models(dtype, args.autocast, t2_model, wg_model)
    inference.use_speed_options(args, device, t2_model, wg_model)
    denoiser = Denoiser(wg_model).to(device) if args.denoising_strength > 0 else None
    pipe = inference.Pipeline(device, dtype, t2_model, wg_model, denoiser, None, args.sigma_infer,
                              args.denoising_strength, 0, torch.Generator(), args.autocast)
    text, lengths = input_batch(args, t2_model.embedding.num_embeddings, device)

    logger = Logger(args.log_file)
    logger.parameters({**vars(args), "model_name": "Tacotron2_PyT", "device": device.type,
                       "device_name": device_name(device)})
    for key, unit in UNITS.items():
        logger.metadata(key, unit)
    for _ in range(args.warmup):
        iteration(pipe, text, lengths, sampling_rate)
    results = []
    for i in range(args.num_iters):
        results.append(iteration(pipe, text, lengths, sampling_rate))
        logger.log((i,), results[-1])
    summary = summarize(results)
    logger.log((), summary)
    logger.close()
    print_table(args, summary, device)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
