"""Text file -> wavs: `python inference.py --tacotron2 CKPT --waveglow CKPT -i text.txt -o DIR`.

Tacotron 2 turns each non-blank line into a mel spectrogram; WaveGlow (then the denoiser) or
Griffin-Lim turns mels into audio. Line i (0-based) of the input gives `audio_<i><suffix>.wav`.
Everything is checked (flags, checkpoints, input text) before the first file is written.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

import tacotron2
import waveglow
from common.audio import save_wav
from common.checkpoint import load_model_checkpoint
from common.errors import CheckpointError, UserError
from common.logger import Logger
from common.mel import TacotronSTFT
from common.timing import DeviceTimer
from tacotron2.text_split import line_to_chunks, max_chunk_chars
from waveglow.denoiser import Denoiser

# Used where a checkpoint carries no 'audio' dict (v1.0 and NGC files): the recipe's front end.
DEFAULT_AUDIO = {"sampling_rate": 22050, "filter_length": 1024, "hop_length": 256, "win_length": 1024,
                 "mel_fmin": 0.0, "mel_fmax": 8000.0, "n_mel_channels": 80}
PAUSE_SECONDS = 0.1  # silence between the chunks of a split line
LOG_MEL_FLOOR = float(np.log(1e-5))  # the log-mel of silence
MIN_STFT_FRAMES = 4
WARMUP_RUNS, WARMUP_TEXT_LENGTH = 3, 50
LOG_UNITS = {"tacotron2_items_per_sec": "frames/s", "tacotron2_latency": "s", "waveglow_items_per_sec": "samples/s",
             "waveglow_latency": "s", "denoiser_latency": "s", "latency": "s"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Synthesise speech from a text file with Tacotron 2 and WaveGlow",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-i", "--input", help="text file, one utterance per line")
    parser.add_argument("-o", "--output", required=True, help="folder for the wavs and the log")
    parser.add_argument("--suffix", default="", help="appended to output file names")
    parser.add_argument("--tacotron2", help="Tacotron 2 checkpoint")
    parser.add_argument("--waveglow", help="WaveGlow checkpoint")
    parser.add_argument("--vocoder", choices=["waveglow", "griffin-lim"], default="waveglow")
    parser.add_argument("--griffin-lim-iters", type=int, default=60)
    parser.add_argument("--mel-files", nargs="+", metavar="MEL",
                        help="vocode saved mels ([n_mel, T] or [1, n_mel, T]; .pt or .npy) instead of text")
    parser.add_argument("-s", "--sigma-infer", type=float, default=0.9, help="WaveGlow sampling sigma")
    parser.add_argument("-d", "--denoising-strength", type=float, default=0.01, help="0 turns the denoiser off")
    parser.add_argument("-sr", "--sampling-rate", type=int, default=None,
                        help="wav sampling rate (default: the checkpoint's, else 22050)")
    parser.add_argument("--stft-hop-length", type=int, default=None,
                        help="STFT hop (default: the checkpoint's, else 256)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", "--fp16-run", "--amp-run", dest="fp16", action="store_true",
                           help="float16 autocast (GPU only)")
    precision.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument("--batch-size", type=int, default=8, help="lines decoded together")
    parser.add_argument("--seed", type=int, default=1234, help="same seed and batch size, same audio")
    parser.add_argument("--include-warmup", action="store_true", help="3 untimed warm-up runs first")
    parser.add_argument("--log-file", default="nvlog.json", help="JSON log; a bare name goes inside --output")
    parser.add_argument("--save-alignments", action="store_true", help="also write alignment_<i>.png")
    parser.add_argument("--max-decoder-steps", type=int, default=None,
                        help="override the checkpoint's limit on mel frames per decode")
    parser.add_argument("--text-cleaners", nargs="+", default=["english_cleaners"])
    parser.add_argument("--wn-channels", type=int, default=None,
                        help="only for checkpoints without a config (v1.0/NGC); otherwise ignored")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Flag combinations argparse cannot express; raises UserError."""
    if args.mel_files and (args.input or args.tacotron2):
        raise UserError("--mel-files vocodes saved mels: leave out -i/--input and --tacotron2")
    if not args.mel_files and not args.input:
        raise UserError("-i/--input is required (or --mel-files to vocode saved mels)")
    if not args.mel_files and not args.tacotron2:
        raise UserError("--tacotron2 is required to synthesise text")
    if args.vocoder == "waveglow" and not args.waveglow:
        raise UserError("--waveglow is required (or --vocoder griffin-lim)")
    for name in ("batch_size", "max_decoder_steps", "sampling_rate", "stft_hop_length"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.sigma_infer < 0 or args.denoising_strength < 0 or args.griffin_lim_iters < 0:
        raise UserError("--sigma-infer, --denoising-strength and --griffin-lim-iters must not be negative")
    if args.output and os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UserError(f"{args.output}: exists and is not a folder (expected an output folder)")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def default_config(package, wn_channels: int | None = None) -> dict:
    """The package's config from its flag defaults (for files that carry no config)."""
    parser = argparse.ArgumentParser()
    package.add_model_args(parser)
    args = parser.parse_args([])
    if wn_channels is not None and hasattr(args, "wn_channels"):
        args.wn_channels = wn_channels
    return package.config_from_args(args)


def load_model(package, path: str, device: torch.device, overrides: dict | None = None,
               wn_channels: int | None = None) -> tuple[torch.nn.Module, dict]:
    """Model built from the checkpoint's config (flag defaults if it has none), weights loaded, eval."""
    ckpt, state_dict = load_model_checkpoint(path, package.NAME)
    config = ckpt.get("config")
    if isinstance(config, dict) and config:
        if wn_channels is not None:
            print(f"note: --wn-channels ignored for {path}: the model is built from its stored config")
    else:
        config = default_config(package, wn_channels)
    config = {**config, **(overrides or {})}
    try:
        model = package.build_model(config)
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError, ValueError) as err:
        detail = " ".join(str(err).split())[:300]
        hint = "" if ckpt.get("config") else " (no config stored; --wn-channels may be needed)"
        raise CheckpointError(f"{path}: weights do not fit the {package.NAME} config{hint}: {detail}") from None
    return model.to(device).eval(), ckpt


def load_tacotron2(path: str, device: torch.device, overrides: dict | None = None) -> tuple[torch.nn.Module, dict]:
    model, ckpt = load_model(tacotron2, path, device, overrides)
    stored = ckpt.get("symbols")
    if stored is not None and list(stored) != list(tacotron2.symbols):
        raise CheckpointError(f"{path}: trained on a different symbol set ({len(stored)} symbols; "
                              f"expected the recipe's {len(tacotron2.symbols)})")
    return model, ckpt


def load_waveglow(path: str, device: torch.device, wn_channels: int | None = None) -> tuple[torch.nn.Module, dict]:
    model, ckpt = load_model(waveglow, path, device, wn_channels=wn_channels)
    model.remove_weightnorm()
    return model, ckpt


def audio_config(args: argparse.Namespace, *ckpts: dict | None) -> dict:
    """Defaults < checkpoint 'audio' dicts (the first checkpoint wins) < -sr/--stft-hop-length."""
    audio = dict(DEFAULT_AUDIO)
    stored = [{k: v for k, v in (c or {}).get("audio", {}).items() if k in DEFAULT_AUDIO} for c in ckpts]
    for key in ("sampling_rate", "hop_length"):
        values = {s[key] for s in stored if key in s}
        if len(values) > 1:
            warn(f"the checkpoints disagree on {key} ({sorted(values)}); using {stored[0].get(key)}")
    for config in reversed(stored):
        audio.update(config)
    if args.sampling_rate:
        audio["sampling_rate"] = args.sampling_rate
    if args.stft_hop_length:
        audio["hop_length"] = args.stft_hop_length
    return audio


@dataclass
class Pipeline:
    """Models and settings for text -> mel -> audio; `vocoder` None means Griffin-Lim via `stft`."""
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None = float32
    tacotron2: torch.nn.Module | None
    vocoder: torch.nn.Module | None
    denoiser: torch.nn.Module | None
    stft: TacotronSTFT | None
    sigma: float = 0.9
    denoising_strength: float = 0.01
    griffin_lim_iters: int = 60
    generator: torch.Generator = field(default_factory=torch.Generator)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else nullcontext()


def pad_sequences(sequences: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    text = torch.zeros(len(sequences), int(lengths.max()), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        text[row, :len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return text.to(device), lengths.to(device)


@torch.no_grad()
def text_to_mel(pipe: Pipeline, text: torch.Tensor, lengths: torch.Tensor):
    """-> (mel float32 [B, n_mel, T], mel_lengths [B], alignments [B, T, N], seconds)."""
    with DeviceTimer(pipe.device) as timer, pipe.autocast(), warnings.catch_warnings():
        # Our own warning names the input line instead.
        warnings.filterwarnings("ignore", message="Reached max decoder steps")
        mel, mel_lengths, alignments = pipe.tacotron2.infer(text, lengths)
    return mel.float(), mel_lengths, alignments.float(), timer.elapsed


@torch.no_grad()
def mel_to_audio(pipe: Pipeline, mel: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """mel [B, n_mel, T] -> (audio float32 [B, samples], vocoder seconds, denoiser seconds)."""
    with DeviceTimer(pipe.device) as vocoder_timer:
        if pipe.vocoder is not None:
            with pipe.autocast():
                audio = pipe.vocoder.infer(mel, sigma=pipe.sigma).float()
        else:
            # The STFT needs a few frames; pad very short mels with silence (the log-mel floor).
            n_samples = mel.size(2) * pipe.stft.hop_length
            mel = F.pad(mel.float(), (0, max(0, MIN_STFT_FRAMES - mel.size(2))), value=LOG_MEL_FLOOR)
            audio = pipe.stft.griffin_lim_from_mel(mel, pipe.griffin_lim_iters, pipe.generator)[:, :n_samples]
    denoise_seconds = 0.0
    if pipe.denoiser is not None and pipe.denoising_strength > 0:
        with DeviceTimer(pipe.device) as denoiser_timer:
            n_samples = audio.size(1)
            audio = F.pad(audio, (0, max(0, pipe.denoiser.stft.filter_length - n_samples)))
            audio = pipe.denoiser(audio, strength=pipe.denoising_strength)[:, 0, :n_samples]
        denoise_seconds = denoiser_timer.elapsed
    return audio, vocoder_timer.elapsed, denoise_seconds


def warm_up(pipe: Pipeline, n_mel_channels: int) -> None:
    """Untimed runs so that one-off costs (kernel selection, allocator growth) stay out of the log."""
    for _ in range(WARMUP_RUNS):
        if pipe.tacotron2 is not None:
            ids = torch.randint(1, len(tacotron2.symbols), (1, WARMUP_TEXT_LENGTH), device=pipe.device)
            mel = text_to_mel(pipe, ids, torch.tensor([WARMUP_TEXT_LENGTH], device=pipe.device))[0]
        else:
            mel = torch.full((1, n_mel_channels, 100), -5.0, device=pipe.device)
        mel_to_audio(pipe, mel)


@dataclass
class Item:
    """One decode: a chunk of input line `line` (ids) or a saved mel (`mel` [n_mel, T])."""
    line: int  # 0-based input line (or mel file) index
    part: int = 0  # position of the chunk within its line
    ids: list[int] | None = None
    mel: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids) if self.mel is None else self.mel.size(1)


def read_lines(path: str, suffix: str = "") -> list[tuple[int, str]]:
    """Non-blank lines as (0-based index, text); blank ones are skipped with one warning."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: input file not found (expected a text file, one utterance per line)")
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a blank one
    blank = [i for i, line in enumerate(lines) if not line.strip()]
    if len(blank) == len(lines):
        raise UserError(f"{path}: no text (expected one utterance per line)")
    if blank:
        shown = ", ".join(str(i + 1) for i in blank[:10]) + (", ..." if len(blank) > 10 else "")
        warn(f"{path}: skipping {len(blank)} blank line(s): {shown}; files keep the input numbering "
             f"(e.g. no audio_{blank[0]}{suffix}.wav)")
    return [(i, line) for i, line in enumerate(lines) if line.strip()]


def text_items(path: str, lines: list[tuple[int, str]], cleaners: list[str], max_chars: int) -> list[Item]:
    items = []
    for index, line in lines:
        chunks = line_to_chunks(line, max_chars, cleaners, source=f"{path}:{index + 1}")
        if len(chunks) > 1:
            print(f"note: {path}:{index + 1}: long line split into {len(chunks)} chunks of at most {max_chars} characters")
        items += [Item(index, part, ids) for part, ids in enumerate(chunks)]
    return items


def load_mel_file(path: str, n_mel_channels: int) -> torch.Tensor:
    """A saved mel as float32 [n_mel, T]; .npy via numpy (no pickles), anything else via torch."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: mel file not found")
    try:
        if path.endswith(".npy"):
            mel = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            mel = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch/numpy raise many types for a bad file
        raise UserError(f"{path}: not a saved mel tensor ({str(err).splitlines()[0] if str(err) else err!r})") from None
    if not isinstance(mel, torch.Tensor) or not mel.is_floating_point():
        raise UserError(f"{path}: holds {type(mel).__name__}, expected a float tensor [n_mel, T]")
    if mel.dim() == 3 and mel.size(0) == 1:
        mel = mel[0]
    if mel.dim() != 2 or mel.size(0) != n_mel_channels or mel.size(1) < 1:
        raise UserError(f"{path}: mel of shape {list(mel.shape)}, expected [{n_mel_channels}, T] or [1, {n_mel_channels}, T]")
    if not torch.isfinite(mel).all():
        raise UserError(f"{path}: mel contains NaN or infinite values")
    return mel.float()


def save_alignments(path: str, alignments: list[torch.Tensor]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(alignments), figsize=(6 * len(alignments), 4), squeeze=False)
    for ax, alignment in zip(axes[0], alignments):
        ax.imshow(alignment.T.numpy(), aspect="auto", origin="lower", interpolation="none")
        ax.set_xlabel("decoder step")
        ax.set_ylabel("encoder step")
    fig.tight_layout()
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)  # atomic, like the wavs


def log_path(args: argparse.Namespace) -> str:
    if os.path.dirname(args.log_file) or os.path.isabs(args.log_file):
        return args.log_file
    return os.path.join(args.output, args.log_file)


def setup(args: argparse.Namespace, device: torch.device) -> tuple[Pipeline, dict, dict | None]:
    """Load and check models -> (pipeline, audio config, Tacotron 2 config or None)."""
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
    if args.fp16 and device.type != "cuda":
        warn("--fp16 needs a GPU; running in float32 on the CPU")
        dtype = None
    t2_model = t2_ckpt = None
    if not args.mel_files:
        overrides = {"max_decoder_steps": args.max_decoder_steps} if args.max_decoder_steps else {}
        t2_model, t2_ckpt = load_tacotron2(args.tacotron2, device, overrides)
    wg_model = wg_ckpt = denoiser = stft = None
    if args.vocoder == "waveglow":
        wg_model, wg_ckpt = load_waveglow(args.waveglow, device, args.wn_channels)
        if t2_ckpt is not None and t2_ckpt["config"].get("n_mel_channels", 80) != wg_model.upsample.in_channels:
            raise CheckpointError(f"{args.waveglow}: takes {wg_model.upsample.in_channels} mel channels but "
                                  f"{args.tacotron2} makes {t2_ckpt['config'].get('n_mel_channels')}")
        if args.denoising_strength > 0:
            denoiser = Denoiser(wg_model).to(device)
    audio = audio_config(args, t2_ckpt, wg_ckpt)
    if wg_model is None:
        stft = TacotronSTFT.from_audio_config(audio).to(device)
    elif audio["hop_length"] != 256:
        warn(f"WaveGlow makes 256 samples per mel frame; --stft-hop-length {audio['hop_length']} ignored")
        audio["hop_length"] = 256
    generator = torch.Generator(device=device)
    pipe = Pipeline(device, dtype, t2_model, wg_model, denoiser, stft, args.sigma_infer,
                    args.denoising_strength, args.griffin_lim_iters, generator)
    return pipe, audio, t2_ckpt and t2_ckpt.get("config")


def synthesize_text(pipe: Pipeline, chunks: list[Chunk], audio: dict, args: argparse.Namespace) -> dict:
    """Decode `chunks` in length-sorted batches; write each line's wav once all its chunks are done."""
    hop, sampling_rate = audio["hop_length"], audio["sampling_rate"]
    max_steps = pipe.tacotron2.decoder.max_decoder_steps
    n_parts = {}
    for chunk in chunks:
        n_parts[chunk.line] = max(n_parts.get(chunk.line, 0), chunk.part + 1)
    pending: dict[int, dict[int, tuple]] = {}
    totals = dict.fromkeys(("frames", "samples", "tacotron2", "waveglow", "denoiser"), 0.0)
    ordered = sorted(chunks, key=lambda c: -len(c.ids))  # less padding per batch
    for start in range(0, len(ordered), args.batch_size):
        batch = ordered[start:start + args.batch_size]
        text, lengths = pad_sequences([c.ids for c in batch], pipe.device)
        mel, mel_lengths, alignments, t2_seconds = text_to_mel(pipe, text, lengths)
        wavs, wg_seconds, denoise_seconds = mel_to_audio(pipe, mel)
        totals["frames"] += mel.size(0) * mel.size(2)
        totals["samples"] += wavs.size(0) * wavs.size(1)
        totals["tacotron2"] += t2_seconds
        totals["waveglow"] += wg_seconds
        totals["denoiser"] += denoise_seconds
        mel_lengths, wavs, alignments = mel_lengths.cpu(), wavs.cpu(), alignments.cpu()
        for row, chunk in enumerate(batch):
            n_frames = int(mel_lengths[row])
            alignment = alignments[row, :n_frames, :len(chunk.ids)] if args.save_alignments else None
            parts = pending.setdefault(chunk.line, {})
            parts[chunk.part] = (wavs[row, :n_frames * hop], alignment, n_frames >= max_steps)
            if len(parts) == n_parts[chunk.line]:
                write_line(args, chunk.line, [parts[p] for p in range(len(parts))], sampling_rate, max_steps)
                del pending[chunk.line]
    return totals


def write_line(args: argparse.Namespace, line: int, parts: list[tuple], sampling_rate: int, max_steps: int) -> None:
    """One line's wav: its chunks' audio with a short pause between them (and its alignments)."""
    n_cut = sum(hit_limit for _, _, hit_limit in parts)
    if n_cut:
        which = "" if len(parts) == 1 else f" in {n_cut} of its {len(parts)} chunks"
        warn(f"{args.input}:{line + 1}: reached the {max_steps} decoder steps limit without a stop{which}; "
             f"the audio is cut off (raise --max-decoder-steps)")
    pause = torch.zeros(int(PAUSE_SECONDS * sampling_rate))
    pieces = [piece for wav, _, _ in parts for piece in (pause, wav)][1:]
    save_wav(os.path.join(args.output, f"audio_{line}{args.suffix}.wav"), torch.cat(pieces), sampling_rate)
    if args.save_alignments:
        save_alignments(os.path.join(args.output, f"alignment_{line}{args.suffix}.png"),
                        [alignment for _, alignment, _ in parts])


def synthesize_mels(pipe: Pipeline, mels: list[torch.Tensor], audio: dict, args: argparse.Namespace) -> dict:
    totals = dict.fromkeys(("frames", "samples", "tacotron2", "waveglow", "denoiser"), 0.0)
    order = sorted(range(len(mels)), key=lambda i: -mels[i].size(1))
    for start in range(0, len(order), args.batch_size):
        batch = order[start:start + args.batch_size]
        n_frames = max(mels[i].size(1) for i in batch)
        padded = torch.full((len(batch), mels[batch[0]].size(0), n_frames), LOG_MEL_FLOOR)
        for row, i in enumerate(batch):
            padded[row, :, :mels[i].size(1)] = mels[i]
        wavs, wg_seconds, denoise_seconds = mel_to_audio(pipe, padded.to(pipe.device))
        totals["samples"] += wavs.size(0) * wavs.size(1)
        totals["waveglow"] += wg_seconds
        totals["denoiser"] += denoise_seconds
        for row, i in enumerate(batch):
            wav = wavs[row, :mels[i].size(1) * audio["hop_length"]].cpu()
            save_wav(os.path.join(args.output, f"audio_{i}{args.suffix}.wav"), wav, audio["sampling_rate"])
    return totals


def run(args: argparse.Namespace) -> int:
    check_args(args)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    pipe, audio, t2_config = setup(args, device)
    if args.mel_files:
        n_mel = pipe.vocoder.upsample.in_channels if pipe.vocoder is not None else audio["n_mel_channels"]
        inputs = [load_mel_file(path, n_mel) for path in args.mel_files]
    else:
        lines = read_lines(args.input, args.suffix)
        max_chars = max_chunk_chars(pipe.tacotron2.decoder.max_decoder_steps, audio["sampling_rate"],
                                    audio["hop_length"])
        inputs = prepare_chunks(args.input, lines, args.text_cleaners, max_chars)

    # Everything is valid: from here on files are written.
    os.makedirs(args.output, exist_ok=True)
    logger = Logger(log_path(args))
    logger.parameters({**vars(args), "model_name": "Tacotron2_PyT"})
    for key, unit in LOG_UNITS.items():
        logger.metadata(key, unit)
    if args.include_warmup:
        warm_up(pipe, audio["n_mel_channels"])
    torch.manual_seed(args.seed)
    pipe.generator.manual_seed(args.seed)
    if args.mel_files:
        totals = synthesize_mels(pipe, inputs, audio, args)
    else:
        totals = synthesize_text(pipe, inputs, audio, args)
    latency = totals["tacotron2"] + totals["waveglow"] + totals["denoiser"]
    result = {"tacotron2_items_per_sec": totals["frames"] / totals["tacotron2"] if totals["tacotron2"] else 0.0,
              "tacotron2_latency": totals["tacotron2"],
              "waveglow_items_per_sec": totals["samples"] / totals["waveglow"] if totals["waveglow"] else 0.0,
              "waveglow_latency": totals["waveglow"], "denoiser_latency": totals["denoiser"], "latency": latency}
    logger.log(0, result)
    logger.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
