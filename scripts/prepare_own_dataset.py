"""Turn your own LJSpeech-format speech (wavs/ + metadata.csv) into what training reads.

    python scripts/prepare_own_dataset.py SOURCE_DIR OUTPUT_DIR [--name NAME] [--val-size 0.05]

SOURCE_DIR holds ``metadata.csv`` (``ID|transcript`` or LJSpeech's ``ID|raw text|normalised text``)
and ``wavs/ID.wav`` (any rate, channel count and sample format soundfile reads; ``.flac`` too).
OUTPUT_DIR receives ``wavs/ID.wav`` resampled to 22050 Hz, mono, 16-bit PCM, plus a copy of
metadata.csv. Filelists go to ``filelists/<NAME>_audio_text_{train,val}_filelist.txt`` (and the
matching ``_mel_text_`` lists for preprocess_audio2mel.py), with paths relative to the parent of
OUTPUT_DIR: train with ``-d <parent of OUTPUT_DIR>``. See docs/own-data.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing import get_context

import numpy as np
import soundfile
from scipy.signal import resample_poly
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.arguments import DEFAULT_MEL_FMAX  # noqa: E402
from common.audio import save_wav  # noqa: E402
from common.errors import AudioError, DataError, UserError, first_line  # noqa: E402

AUDIO_SUFFIXES = (".wav", ".flac")
HOP_LENGTH = 256
MAX_DECODER_STEPS = 2000  # Tacotron 2 inference default: longer clips cannot be synthesized whole


@dataclass
class Clip:
    clip_id: str
    text: str
    source: str  # input audio file
    line: int  # in metadata.csv


def read_metadata(source_dir: str) -> list[Clip]:
    """Clips of ``metadata.csv``; the last non-empty text field is the transcript.

    All problems (bad lines, missing audio, repeated IDs) are raised together in one DataError.
    """
    path = os.path.join(source_dir, "metadata.csv")
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise DataError(f"{path}: not found (expected metadata.csv with ID|transcript lines)") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 ({err.reason})") from None
    clips, problems, seen = [], [], {}
    rows = [(number, line.rstrip("\r")) for number, line in enumerate(lines, start=1)]
    rows = [(number, line) for number, line in rows if line.strip()]
    # In a file of ID|transcript lines, a line of three fields is a transcript holding a '|':
    # taking its last field would silently train on the end of the sentence only.
    two_column = sum(line.count("|") == 1 for _, line in rows) * 2 > len(rows)
    for number, line in rows:
        fields = line.split("|")
        where = f"{path}:{number}"
        if len(fields) not in (2, 3):
            problems.append(f"{where}: {len(fields)} fields separated by '|' "
                            f"(expected ID|transcript or ID|raw text|normalised text)")
            continue
        if len(fields) == 3 and two_column:
            problems.append(f"{where}: 3 fields separated by '|', but most lines are ID|transcript "
                            f"(a '|' inside the transcript? '|' only separates fields)")
            continue
        clip_id = fields[0].strip()
        text = next((field.strip() for field in reversed(fields[1:]) if field.strip()), "")
        if not clip_id or not text:
            problems.append(f"{where}: empty {'ID' if not clip_id else 'transcript'}")
            continue
        if clip_id in seen:
            problems.append(f"{where}: ID {clip_id} repeats line {seen[clip_id]}")
            continue
        seen[clip_id] = number
        audio = find_audio(source_dir, clip_id)
        if audio is None:
            problems.append(f"{where}: no wavs/{clip_id}.wav (or .flac) for ID {clip_id}")
            continue
        clips.append(Clip(clip_id, text, audio, number))
    if problems:
        raise DataError(f"{len(problems)} problem(s) in {path}:\n" + "\n".join(problems))
    if not clips:
        raise DataError(f"{path}: no clips (expected ID|transcript lines)")
    return clips


def find_audio(source_dir: str, clip_id: str) -> str | None:
    for suffix in AUDIO_SUFFIXES:
        candidate = os.path.join(source_dir, "wavs", clip_id + suffix)
        if os.path.isfile(candidate):
            return candidate
    return None


def convert_audio(source: str, sampling_rate: int) -> np.ndarray:
    """Any readable file -> mono float64 at ``sampling_rate`` (channels averaged, polyphase resampling)."""
    try:
        audio, rate = soundfile.read(source, dtype="float64", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(f"{source}: not a readable audio file: {first_line(err)}") from None
    if audio.shape[0] == 0:
        raise AudioError(f"{source}: contains no audio samples")
    mono = audio.mean(axis=1)
    if rate != sampling_rate:
        ratio = Fraction(sampling_rate, rate)
        mono = resample_poly(mono, ratio.numerator, ratio.denominator)
    return mono


def split_clips(clips: list[Clip], val_size: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Seeded random split; ``val_size`` < 1 is a fraction, otherwise a count (at least 1 each side)."""
    if len(clips) < 2:
        raise DataError(f"{len(clips)} clip(s): need at least 2 (one for training, one for validation)")
    n_val = round(len(clips) * val_size) if val_size < 1 else int(val_size)
    n_val = min(max(n_val, 1), len(clips) - 1)
    order = list(clips)
    random.Random(seed).shuffle(order)
    return order[n_val:], order[:n_val]


def write_filelist(path: str, lines: list[str]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


_job_rate = 22050


def _init_worker(sampling_rate: int) -> None:
    global _job_rate
    _job_rate = sampling_rate


def _convert_one(job: tuple[str, str]) -> tuple[str, float | None, str | None]:
    """(output, seconds or None, problem or None) for one clip."""
    source, target = job
    try:
        audio = convert_audio(source, _job_rate)
        save_wav(target, audio, _job_rate)
    except UserError as err:
        return target, None, str(err)
    return target, len(audio) / _job_rate, None


def _converted(target: str, sampling_rate: int) -> bool:
    """True when ``target`` is already a converted clip at this rate (a rerun with another
    --sampling-rate into the same folder must not keep the old rate's files)."""
    try:
        info = soundfile.info(target)
    except (soundfile.SoundFileError, RuntimeError, OSError):
        return False
    return (info.samplerate, info.channels, info.subtype) == (sampling_rate, 1, "PCM_16")


def convert_clips(clips: list[Clip], output_dir: str, sampling_rate: int, *, force: bool = False,
                  num_workers: int = 1) -> tuple[int, int, list[float]]:
    """Write OUTPUT_DIR/wavs/ID.wav for every clip; (converted, skipped, durations of converted)."""
    os.makedirs(os.path.join(output_dir, "wavs"), exist_ok=True)
    jobs = []
    for clip in clips:
        target = os.path.join(output_dir, "wavs", clip.clip_id + ".wav")
        if force or not _converted(target, sampling_rate):
            jobs.append((clip.source, target))
    skipped = len(clips) - len(jobs)
    durations, problems = [], []
    _init_worker(sampling_rate)
    if num_workers > 1 and len(jobs) > 1:
        pool = get_context("fork" if sys.platform == "linux" else "spawn").Pool(
            num_workers, initializer=_init_worker, initargs=(sampling_rate,))
        results = pool.imap_unordered(_convert_one, jobs, chunksize=4)
    else:
        pool, results = None, map(_convert_one, jobs)
    try:
        for _, seconds, problem in tqdm(results, total=len(jobs), unit="clip", disable=None):
            if problem:
                problems.append(problem)
            else:
                durations.append(seconds)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    if problems:
        raise DataError(f"{len(problems)} clip(s) could not be converted:\n" + "\n".join(problems))
    return len(jobs), skipped, durations


def filelist_lines(clips: list[Clip], output_dir: str, dataset_path: str, kind: str) -> list[str]:
    folder, suffix = ("wavs", ".wav") if kind == "audio" else ("mels", ".pt")
    prefix = os.path.relpath(os.path.join(output_dir, folder), dataset_path)
    return [f"{prefix}/{clip.clip_id}{suffix}|{clip.text}".replace(os.sep, "/") for clip in clips]


def prepare(source_dir: str, output_dir: str, *, name: str, filelist_dir: str, val_size: float,
            seed: int, sampling_rate: int, force: bool = False, num_workers: int = 1) -> dict[str, str]:
    """The whole job; returns the written filelists by role (train/val x audio/mel)."""
    if os.path.abspath(source_dir) == os.path.abspath(output_dir):
        raise UserError(f"{output_dir}: the output folder must differ from the source folder")
    clips = read_metadata(source_dir)
    converted, skipped, durations = convert_clips(clips, output_dir, sampling_rate, force=force,
                                                  num_workers=num_workers)
    shutil.copyfile(os.path.join(source_dir, "metadata.csv"), os.path.join(output_dir, "metadata.csv"))
    train, val = split_clips(clips, val_size, seed)
    dataset_path = os.path.dirname(os.path.abspath(output_dir))
    written = {}
    for split, split_clips_ in (("train", train), ("val", val)):
        for kind in ("audio", "mel"):
            path = os.path.join(filelist_dir, f"{name}_{kind}_text_{split}_filelist.txt")
            write_filelist(path, filelist_lines(split_clips_, output_dir, dataset_path, kind))
            written[f"{split}_{kind}"] = path
    print(f"{len(clips)} clips: {converted} converted, {skipped} already there; "
          f"{len(train)} train, {len(val)} val")
    if durations:
        longest = max(durations)
        print(f"converted audio: {sum(durations) / 3600:.2f} h, longest clip {longest:.1f} s")
        too_long = sum(d * sampling_rate / HOP_LENGTH > MAX_DECODER_STEPS for d in durations)
        if too_long:
            print(f"warning: {too_long} clip(s) are longer than {MAX_DECODER_STEPS} mel frames "
                  f"(~{MAX_DECODER_STEPS * HOP_LENGTH / sampling_rate:.0f} s); Tacotron 2 learns long "
                  f"clips slowly and uses much memory on them - consider splitting them", file=sys.stderr)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("source_dir", help="folder with metadata.csv and wavs/")
    parser.add_argument("output_dir", help="folder for the converted wavs/ (and later mels/)")
    parser.add_argument("--name", default=None,
                        help="filelist name prefix (default: the output folder's name, lowercased)")
    parser.add_argument("--filelist-dir", default="filelists", help="where the filelists go")
    parser.add_argument("--val-size", type=float, default=0.05,
                        help="validation clips: a fraction (< 1) or a count (>= 1)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the train/val split")
    parser.add_argument("--sampling-rate", type=int, default=22050,
                        help="output rate (train with the same --sampling-rate)")
    parser.add_argument("--force", action="store_true", help="convert clips already in the output")
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes converting audio")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = args.name or os.path.basename(os.path.abspath(args.output_dir)).lower()
    try:
        written = prepare(args.source_dir, args.output_dir, name=name, filelist_dir=args.filelist_dir,
                          val_size=args.val_size, seed=args.seed, sampling_rate=args.sampling_rate,
                          force=args.force, num_workers=args.num_workers)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    dataset_path = os.path.dirname(os.path.abspath(args.output_dir))
    print("filelists: " + ", ".join(written.values()))
    audio_flags = ""
    if args.sampling_rate != 22050:
        audio_flags = f" --sampling-rate {args.sampling_rate}"
        if args.sampling_rate / 2 < DEFAULT_MEL_FMAX:
            audio_flags += f" --mel-fmax {args.sampling_rate / 2:g}"
    print("train, e.g.: python train.py -m Tacotron2 -o output -lr 1e-3 --epochs 1501 -bs 48 "
          f"-d {dataset_path} --training-files {written['train_audio']} "
          f"--validation-files {written['val_audio']}{audio_flags}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
