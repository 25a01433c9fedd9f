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
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

import tacotron2
import waveglow
from common.audio import save_wav
from common.compiler import check_compiling_flags
from common.checkpoint import load_model_checkpoint
from common.errors import CheckpointError, UserError, run_cli
from common.logger import Logger
from common.mel import TacotronSTFT
from common.timing import DeviceTimer
from tacotron2.text_split import line_to_chunks, max_chunk_chars, read_text_lines
from waveglow.denoiser import Denoiser

# Used where a checkpoint carries no 'audio' dict (v1.0 and NGC files): the recipe's front end.
DEFAULT_AUDIO = {"sampling_rate": 22050, "filter_length": 1024, "hop_length": 256, "win_length": 1024,
                 "mel_fmin": 0.0, "mel_fmax": 8000.0, "n_mel_channels": 80}
PAUSE_SECONDS = 0.1  # silence between the chunks of a split line
LOG_MEL_FLOOR = float(np.log(1e-5))  # the log-mel of silence
MIN_STFT_FRAMES = 4
WARMUP_RUNS = 3
LOG_UNITS = {"tacotron2_items_per_sec": "frames/s", "tacotron2_latency": "s", "waveglow_items_per_sec": "samples/s",
             "waveglow_latency": "s", "denoiser_latency": "s", "latency": "s"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Synthesise speech from a text file with Tacotron 2 and WaveGlow",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("-i", "--input", help="text file, one utterance per line")
    add("-o", "--output", required=True, help="folder for the wavs and the log")
    add("--suffix", default="", help="appended to output file names")
    add("--tacotron2", help="Tacotron 2 checkpoint")
    add("--waveglow", help="WaveGlow checkpoint")
    add("--vocoder", choices=["waveglow", "griffin-lim"], default="waveglow")
    add("--griffin-lim-iters", type=int, default=60)
    add("--mel-files", nargs="+", metavar="MEL", help="vocode saved mels ([n_mel, T] or [1, n_mel, T]; .pt/.npy)")
    add("-s", "--sigma-infer", type=float, default=0.9, help="WaveGlow sampling sigma")
    add("-d", "--denoising-strength", type=float, default=0.01, help="0 turns the denoiser off")
    add("-sr", "--sampling-rate", type=int, help="wav sampling rate (default: the checkpoint's, else 22050)")
    add("--stft-hop-length", type=int, help="Griffin-Lim STFT hop (default: the checkpoint's, else 256)")
    add_precision_args(parser)
    add_speed_args(parser)
    add("--batch-size", type=int, default=8, help="lines decoded together")
    add("--seed", type=int, default=1234, help="same seed and batch size, same audio")
    add("--include-warmup", action="store_true", help="3 untimed runs of the first batch first")
    add("--log-file", default="nvlog.json",
        help="JSON log, joined to --output as the recipe does (an absolute path is kept)")
    add("--save-alignments", action="store_true",
        help="also write alignment_<i><suffix>.png (Tacotron 2's attention; not with --mel-files)")
    add("--max-decoder-steps", type=int, help="override the checkpoint's limit on mel frames per decode")
    add("--text-cleaners", nargs="+", default=["english_cleaners"])
    add("--wn-channels", type=int, help="only for checkpoints without a config (v1.0/NGC); else ignored")
    return parser


def add_precision_args(parser: argparse.ArgumentParser) -> None:
    """--fp16 | --bf16, --autocast, --cpu: shared with inference_benchmark.py."""
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", "--fp16-run", "--amp-run", dest="fp16", action="store_true",
                           help="float16 (GPU only): both models' weights cast once, as the recipe's --fp16")
    precision.add_argument("--bf16", action="store_true", help="bfloat16: both models' weights cast once")
    parser.add_argument("--autocast", action="store_true",
                        help="with --fp16/--bf16: keep float32 weights and run under torch.autocast instead")
    parser.add_argument("--cpu", "--cpu-run", action="store_true", help="run on the CPU even when a GPU is present")


def add_speed_args(parser: argparse.ArgumentParser) -> None:
    """--cuda-graphs, --torch-compile, WaveGlow's run flags (--wn-time-major): shared with
    inference_benchmark.py."""
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="Tacotron 2 decoder steps through CUDA graphs (GPU only; ~7x faster decoding on an H200)")
    parser.add_argument("--torch-compile", action="store_true",
                        help="torch.compile Tacotron 2's decoder step and WaveGlow's gated activations, fusing "
                             "their elementwise work (with --cuda-graphs the fastest measured; the first run "
                             "compiles, which takes seconds)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN time its convolution algorithms per input shape (WaveGlow, postnet): "
                             "pays where lengths repeat, as in a fixed-length benchmark; each new length searches")
    parser.add_argument("--gate-check-interval", type=int, default=tacotron2.model.GATE_CHECK_INTERVAL,
                        help="Tacotron 2 decoder steps between two host reads of the stop flags: each read waits "
                             "for the GPU, and up to this many frames past the last stop are decoded and dropped")
    waveglow.arguments.add_run_args(parser)


def check_precision_args(args: argparse.Namespace) -> None:
    """The precision and speed flags (shared with inference_benchmark.py)."""
    if args.autocast and not (args.fp16 or args.bf16):
        raise UserError("--autocast needs --fp16 or --bf16")
    if args.gate_check_interval < 1:
        raise UserError("--gate-check-interval must be at least 1")


def inference_dtype(args: argparse.Namespace, device: torch.device) -> torch.dtype | None:
    """The half precision asked for, None for float32 (--fp16 on a CPU falls back to float32)."""
    if args.fp16 and device.type != "cuda":
        warn("--fp16 needs a GPU; running in float32 on the CPU")
    return torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 and device.type == "cuda" else None


def cast_models(dtype: torch.dtype | None, use_autocast: bool, *models: torch.nn.Module | None) -> None:
    """Cast the models' weights to ``dtype`` once, unless autocast is to do it per operation.
    Call before building the denoiser, which measures the vocoder as it will run."""
    if dtype is not None and not use_autocast:
        for model in models:
            if model is not None:
                model.cast_for_inference(dtype)


def check_args(args: argparse.Namespace) -> None:
    """Flag combinations argparse cannot express; raises UserError."""
    check_precision_args(args)
    if args.mel_files and (args.input or args.tacotron2):
        raise UserError("--mel-files vocodes saved mels: leave out -i/--input and --tacotron2")
    if args.mel_files and args.save_alignments:
        raise UserError("--save-alignments plots Tacotron 2's attention; saved mels (--mel-files) have none")
    if not args.mel_files and not (args.input and args.tacotron2):
        raise UserError("-i/--input and --tacotron2 are required (or --mel-files to vocode saved mels)")
    if args.vocoder == "waveglow" and not args.waveglow:
        raise UserError("--waveglow is required (or --vocoder griffin-lim)")
    for name in ("batch_size", "max_decoder_steps", "sampling_rate", "stft_hop_length"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.sigma_infer, args.denoising_strength, args.griffin_lim_iters) < 0:
        raise UserError("--sigma-infer, --denoising-strength and --griffin-lim-iters must not be negative")
    if "/" in args.suffix or os.sep in args.suffix:
        raise UserError(f"--suffix {args.suffix!r}: expected a file-name suffix without path separators")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UserError(f"{args.output}: exists and is not a folder (expected an output folder)")


def warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)  # above the progress bar, not through it


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
    stored = [{k: v for k, v in (c or {}).get("audio", {}).items() if k in DEFAULT_AUDIO} for c in ckpts]
    audio = {**DEFAULT_AUDIO, **{k: v for config in reversed(stored) for k, v in config.items()}}
    for key in ("sampling_rate", "hop_length"):
        if len({config[key] for config in stored if key in config}) > 1:
            warn(f"the checkpoints disagree on {key}; using {audio[key]}")
    audio["sampling_rate"] = args.sampling_rate or audio["sampling_rate"]
    audio["hop_length"] = args.stft_hop_length or audio["hop_length"]
    return audio


@dataclass
class Pipeline:
    """Models and settings for text -> mel -> audio; `vocoder` None means Griffin-Lim via `stft`."""
    device: torch.device
    dtype: torch.dtype | None  # None = float32
    tacotron2: torch.nn.Module | None
    vocoder: torch.nn.Module | None
    denoiser: torch.nn.Module | None
    stft: TacotronSTFT | None
    sigma: float
    denoising_strength: float
    griffin_lim_iters: int
    generator: torch.Generator  # CPU: Griffin-Lim draws its initial phases on the CPU
    use_autocast: bool = False  # False: the models' weights are already in `dtype`

    def autocast(self):
        if self.dtype is None or not self.use_autocast:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


@torch.no_grad()
def text_to_mel(pipe: Pipeline, text: torch.Tensor, lengths: torch.Tensor):
    """-> (mel float32 [B, n_mel, T], mel_lengths [B], alignments [B, T, N], seconds)."""
    with DeviceTimer(pipe.device) as timer, pipe.autocast(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Reached max decoder steps")  # ours names the line
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


def warm_up(pipe: Pipeline, batch: list[Item]) -> None:
    """Untimed runs of the first batch (the longest), so the one-off costs of its shapes (kernel
    selection, allocator growth, a CUDA graph capture or a compile) stay out of the log. The recipe
    warms up on 50 random symbols instead, which leaves a real input's first graph capture in the
    timed run."""
    for _ in range(WARMUP_RUNS):
        mel = decode_batch(pipe, batch)[0]
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


def text_items(path: str, cleaners: list[str], max_chars: int, suffix: str = "") -> list[Item]:
    """The input file's non-blank lines as symbol ids, long lines split into chunks."""
    lines, blank = read_text_lines(path)
    if blank:
        shown = ", ".join(str(i + 1) for i in blank[:10]) + (", ..." if len(blank) > 10 else "")
        warn(f"{path}: skipping {len(blank)} blank line(s): {shown}; files keep the input numbering "
             f"(e.g. no audio_{blank[0]}{suffix}.wav)")
    items = []
    for index, line in lines:
        chunks = line_to_chunks(line, max_chars, cleaners, source=f"{path}:{index + 1}")
        if len(chunks) > 1:
            print(f"note: {path}:{index + 1}: long line split into {len(chunks)} chunks of <= {max_chars} characters")
        items += [Item(index, part, ids) for part, ids in enumerate(chunks)]
    return items


def load_mel_file(path: str, n_mel_channels: int) -> torch.Tensor:
    """A saved mel as float32 [n_mel, T]; .npy via numpy (no pickles), anything else via torch."""
    try:
        mel = (torch.from_numpy(np.load(path, allow_pickle=False)) if path.endswith(".npy")
               else torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # torch and numpy raise many types for a bad file
        raise UserError(f"{path}: not a saved tensor ({(str(err) or repr(err)).splitlines()[0]})") from None
    if isinstance(mel, torch.Tensor) and mel.dim() == 3 and mel.size(0) == 1:
        mel = mel[0]
    if not isinstance(mel, torch.Tensor) or mel.dim() != 2 or mel.size(0) != n_mel_channels or mel.size(1) < 1:
        shape = list(mel.shape) if isinstance(mel, torch.Tensor) else type(mel).__name__
        raise UserError(f"{path}: holds {shape}, expected a mel [{n_mel_channels}, T] or [1, {n_mel_channels}, T]")
    if not mel.is_floating_point() or not torch.isfinite(mel).all():
        raise UserError(f"{path}: expected finite floating-point mel values")
    return mel.float()


def save_alignments(path: str, alignments: list[torch.Tensor]) -> None:
    """One panel per chunk: encoder step over decoder step, as the reference plots them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(alignments), figsize=(6 * len(alignments), 4), squeeze=False)
    for ax, alignment in zip(axes[0], alignments):
        ax.imshow(alignment.T.numpy(), aspect="auto", origin="lower", interpolation="none")
        ax.set(xlabel="decoder step", ylabel="encoder step")
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp.png")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)  # atomic, like the wavs


def use_speed_options(args: argparse.Namespace, device: torch.device, t2_model=None, wg_model=None) -> None:
    """--cuda-graphs, --torch-compile and --cudnn-benchmark on whichever models are loaded (shared with
    inference_benchmark.py). Call before building the denoiser, which runs the vocoder as it will run."""
    torch.backends.cudnn.benchmark = args.cudnn_benchmark and device.type == "cuda"
    check_compiling_flags(args, device)
    if t2_model is not None:
        if args.cuda_graphs and device.type != "cuda":
            warn("--cuda-graphs needs a GPU; decoding eagerly on the CPU")
        tacotron2.use_cuda_graphs(t2_model, args.cuda_graphs and device.type == "cuda")
        t2_model.decoder.gate_check_interval = args.gate_check_interval
        tacotron2.use_torch_compile(t2_model, args.torch_compile)
    if wg_model is not None:
        waveglow.use_torch_compile(wg_model, args.torch_compile)
        waveglow.apply_run_options(wg_model, args)


def setup(args: argparse.Namespace, device: torch.device) -> tuple[Pipeline, dict]:
    """Load and check the models -> (pipeline, audio config)."""
    dtype = inference_dtype(args, device)
    t2_model = t2_ckpt = wg_model = wg_ckpt = denoiser = stft = None
    if not args.mel_files:
        overrides = {"max_decoder_steps": args.max_decoder_steps} if args.max_decoder_steps else {}
        t2_model, t2_ckpt = load_tacotron2(args.tacotron2, device, overrides)
        cast_models(dtype, args.autocast, t2_model)
    if args.vocoder == "waveglow":
        wg_model, wg_ckpt = load_waveglow(args.waveglow, device, args.wn_channels)
        if t2_model is not None and t2_model.n_mel_channels != wg_model.upsample.in_channels:
            raise CheckpointError(f"{args.waveglow}: takes {wg_model.upsample.in_channels} mel channels but "
                                  f"{args.tacotron2} makes {t2_model.n_mel_channels}")
        cast_models(dtype, args.autocast, wg_model)
    use_speed_options(args, device, t2_model, wg_model)
    if wg_model is not None and args.denoising_strength > 0:
        denoiser = Denoiser(wg_model).to(device)
    audio = audio_config(args, t2_ckpt, wg_ckpt)
    if t2_model is not None:
        audio["n_mel_channels"] = t2_model.n_mel_channels
    if wg_model is None:
        stft = TacotronSTFT.from_audio_config(audio).to(device)
    else:
        audio["n_mel_channels"] = wg_model.upsample.in_channels
    pipe = Pipeline(device, dtype, t2_model, wg_model, denoiser, stft, args.sigma_infer, args.denoising_strength,
                    args.griffin_lim_iters, torch.Generator(), args.autocast)
    return pipe, audio


def length_sorted_batches(items: list[Item], batch_size: int) -> list[list[Item]]:
    """Longest first: similar lengths share a batch, so less padding."""
    ordered = sorted(items, key=len, reverse=True)
    return [ordered[start:start + batch_size] for start in range(0, len(ordered), batch_size)]


def decode_batch(pipe: Pipeline, batch: list[Item]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float]:
    """Text items through Tacotron 2, or saved mels padded with silence -> (mel [B, n_mel, T] on the
    device, mel_lengths [B], alignments or None, Tacotron 2 seconds)."""
    if batch[0].mel is None:
        text = pad_sequence([torch.tensor(item.ids) for item in batch], batch_first=True).to(pipe.device)
        lengths = torch.tensor([len(item) for item in batch], device=pipe.device)
        return text_to_mel(pipe, text, lengths)
    mel = torch.full((len(batch), batch[0].mel.size(0), len(batch[0])), LOG_MEL_FLOOR)
    for row, item in enumerate(batch):
        mel[row, :, :len(item)] = item.mel
    return mel.to(pipe.device), torch.tensor([len(item) for item in batch]), None, 0.0


def synthesize(pipe: Pipeline, batches: list[list[Item]], audio: dict, args: argparse.Namespace) -> dict:
    """Decode the batches, write each line once all its chunks are done -> totals."""
    max_steps = pipe.tacotron2.decoder.max_decoder_steps if pipe.tacotron2 is not None else None
    n_parts = Counter(item.line for batch in batches for item in batch)
    pending: dict[int, dict[int, tuple]] = {}
    totals = dict.fromkeys(("frames", "samples", "tacotron2", "waveglow", "denoiser"), 0.0)
    bar = tqdm(total=len(n_parts), unit="line", disable=None)  # a terminal only, not in logs
    for batch in batches:
        mel, mel_lengths, alignments, seconds = decode_batch(pipe, batch)
        if batch[0].mel is None:
            totals["tacotron2"] += seconds
            totals["frames"] += mel.size(0) * mel.size(2)
        wavs, vocoder_seconds, denoiser_seconds = mel_to_audio(pipe, mel)
        totals["waveglow"] += vocoder_seconds
        totals["denoiser"] += denoiser_seconds
        totals["samples"] += wavs.size(0) * wavs.size(1)
        hop = wavs.size(1) // mel.size(2)  # WaveGlow: always 256; Griffin-Lim: the STFT hop
        mel_lengths, wavs = mel_lengths.cpu(), wavs.cpu()
        for row, item in enumerate(batch):
            n_frames = int(mel_lengths[row])
            alignment = alignments[row, :n_frames, :len(item)].cpu() if args.save_alignments else None
            parts = pending.setdefault(item.line, {})
            parts[item.part] = (wavs[row, :n_frames * hop], alignment, max_steps and n_frames >= max_steps)
            if len(parts) == n_parts[item.line]:
                write_line(args, item.line, [parts[p] for p in range(len(parts))], audio["sampling_rate"], max_steps)
                del pending[item.line]
                bar.update(1)
    bar.close()
    return totals


def write_line(args: argparse.Namespace, line: int, parts: list[tuple], sampling_rate: int, max_steps: int) -> None:
    """One line's wav: its chunks' audio with a short pause between them (and its alignments)."""
    n_cut = sum(bool(hit_limit) for _, _, hit_limit in parts)
    if n_cut:
        which = "" if len(parts) == 1 else f" in {n_cut} of its {len(parts)} chunks"
        warn(f"{args.input}:{line + 1}: reached the {max_steps} decoder steps limit without a stop{which}; "
             f"the audio is cut off (raise --max-decoder-steps)")
    pause = torch.zeros(int(PAUSE_SECONDS * sampling_rate))
    pieces = [piece for wav, _, _ in parts for piece in (pause, wav)][1:]
    save_wav(os.path.join(args.output, f"audio_{line}{args.suffix}.wav"), torch.cat(pieces), sampling_rate)
    if args.save_alignments and parts[0][1] is not None:
        save_alignments(os.path.join(args.output, f"alignment_{line}{args.suffix}.png"),
                        [alignment for _, alignment, _ in parts])


def run(args: argparse.Namespace) -> int:
    check_args(args)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    pipe, audio = setup(args, device)
    if args.mel_files:
        items = [Item(i, mel=load_mel_file(path, audio["n_mel_channels"])) for i, path in enumerate(args.mel_files)]
    else:
        max_chars = max_chunk_chars(pipe.tacotron2.decoder.max_decoder_steps, audio["sampling_rate"], audio["hop_length"])
        items = text_items(args.input, args.text_cleaners, max_chars, args.suffix)

    # Everything is valid: from here on files are written.
    os.makedirs(args.output, exist_ok=True)
    logger = Logger(os.path.join(args.output, args.log_file))  # joined, as the reference does
    logger.parameters({**vars(args), "model_name": "Tacotron2_PyT"})
    for key, unit in LOG_UNITS.items():
        logger.metadata(key, unit)
    batches = length_sorted_batches(items, args.batch_size)
    if args.include_warmup:
        warm_up(pipe, batches[0])
    torch.manual_seed(args.seed)
    pipe.generator.manual_seed(args.seed)
    totals = synthesize(pipe, batches, audio, args)
    logger.log(0, log_data(totals))
    logger.close()
    return 0


def log_data(totals: dict) -> dict:
    """The reference's inference keys; items/s count padded batches, as the reference does."""
    return {"tacotron2_items_per_sec": totals["frames"] / max(totals["tacotron2"], 1e-12),
            "tacotron2_latency": totals["tacotron2"],
            "waveglow_items_per_sec": totals["samples"] / max(totals["waveglow"], 1e-12),
            "waveglow_latency": totals["waveglow"], "denoiser_latency": totals["denoiser"],
            "latency": totals["tacotron2"] + totals["waveglow"] + totals["denoiser"]}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
