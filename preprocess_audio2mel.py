"""Precompute Tacotron 2 training mels: one ``torch.save``d ``[n_mel, T]`` float32 tensor per wav.

    python preprocess_audio2mel.py -d DATASET --wav-files WAV_LIST [...] --mel-files MEL_LIST [...]

Line i of each mel list names where the mel of line i of the matching wav list goes (both joined
to ``-d``), e.g. ``LJSpeech-1.1/wavs/LJ001-0001.wav`` -> ``LJSpeech-1.1/mels/LJ001-0001.pt``.
The mels are computed exactly as training computes them on the fly (``common.audio.load_wav`` +
``common.mel.TacotronSTFT``), so ``train.py --load-mel-from-disk`` sees the same numbers.
Files are written atomically and existing ones are skipped, so an interrupted run is resumed by
running the command again (``--force`` recomputes everything).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Iterator, Sequence

import torch
from tqdm import tqdm

from common.arguments import add_audio_args, check_audio_args
from common.audio import load_wav
from common.checkpoint import atomic_write
from common.errors import FilelistError, UserError
from common.filelists import load_filelist
from common.mel import (MEL_SETTINGS_FILE, MEL_SUFFIXES, TacotronSTFT, mel_settings_differences, read_mel_settings,
                        remove_mel_settings, write_mel_settings)

MAX_REPORTED_FAILURES = 5


@dataclass
class MelJob:
    wav_path: str
    mel_path: str
    where: str  # "<wav list>:<line>", for error messages


@dataclass
class PreprocessResult:
    written: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)


def pair_filelists(wav_lists: Sequence[str], mel_lists: Sequence[str], dataset_path: str) -> list[MelJob]:
    """Line-by-line (wav, mel) pairs; the lists must have equal lengths and matching file stems."""
    if len(wav_lists) != len(mel_lists):
        raise UserError(f"{len(wav_lists)} --wav-files but {len(mel_lists)} --mel-files "
                        f"(expected one mel list per wav list)")
    jobs = []
    for wav_list, mel_list in zip(wav_lists, mel_lists):
        wavs = load_filelist(wav_list, dataset_path)
        mels = load_filelist(mel_list, dataset_path)
        if len(wavs) != len(mels):
            raise FilelistError(f"{mel_list}: {len(mels)} entries, but {wav_list} has {len(wavs)} "
                                f"(expected one mel path per wav)")
        for wav, mel in zip(wavs, mels):
            wav_stem = os.path.splitext(os.path.basename(wav.path))[0]
            mel_stem = os.path.splitext(os.path.basename(mel.path))[0]
            if wav_stem != mel_stem:
                raise FilelistError(f"{mel_list}:{mel.line}: mel {mel_stem!r} does not match wav "
                                    f"{wav_stem!r} of {wav_list}:{wav.line} (expected the same clip)")
            jobs.append(MelJob(wav.path, mel.path, f"{wav_list}:{wav.line}"))
    return jobs


def compute_mel(wav_path: str, stft: TacotronSTFT, sampling_rate: int) -> torch.Tensor:
    """The on-the-fly training mel of tacotron2.data.TextMelDataset: ``[n_mel, T]`` float32."""
    audio = load_wav(wav_path, sampling_rate)  # int16 scaled by 1/32768, as in training
    with torch.no_grad():
        return stft.mel_spectrogram(audio).float().contiguous().clone()


def save_mel(mel: torch.Tensor, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path) as f:
        torch.save(mel, f)


_worker_stft: TacotronSTFT | None = None
_worker_rate = 22050


def _init_worker(stft_kwargs: dict, pool_worker: bool = True) -> None:
    global _worker_stft, _worker_rate
    if pool_worker:
        torch.set_num_threads(1)  # one process per core does the parallelism
    _worker_stft = TacotronSTFT(**stft_kwargs)
    _worker_rate = stft_kwargs["sampling_rate"]


def _run_job(job: MelJob) -> tuple[str, str | None]:
    """Compute and save one mel -> (its path, None or the user-facing problem as text)."""
    try:
        save_mel(compute_mel(job.wav_path, _worker_stft, _worker_rate), job.mel_path)
    except UserError as err:
        return job.mel_path, f"{job.where}: {err}"
    return job.mel_path, None


def _results(todo: list[MelJob], stft_kwargs: dict, num_workers: int) -> Iterator[tuple[str, str | None]]:
    if num_workers <= 1 or len(todo) <= 1:
        _init_worker(stft_kwargs, pool_worker=False)
        yield from map(_run_job, todo)
        return
    # spawn, not fork: a fork taken while torch's OpenMP threads exist can hang the child in its first matmul
    with get_context("spawn").Pool(
            num_workers, initializer=_init_worker, initargs=(stft_kwargs,)) as pool:
        yield from pool.imap_unordered(_run_job, todo, chunksize=8)


def preprocess(jobs: list[MelJob], stft_kwargs: dict, *, force: bool = False, num_workers: int = 1,
               progress: bool | None = None) -> PreprocessResult:
    """Write every job's mel; skips files already there unless ``force``. A folder whose saved
    settings (MEL_SETTINGS_FILE) differ is refused unless ``force``, as skipping its files would mix
    two kinds of mel. The settings file only ever vouches for mels known to have them, also when the
    run is interrupted: a new folder gets it first, a folder with mels of other or unknown settings
    loses it first and gets it back only if every mel in it was made by this run."""
    folders = sorted({os.path.dirname(job.mel_path) or "." for job in jobs})
    differing = {folder: differences for folder in folders
                 if (differences := mel_settings_differences(folder, stft_kwargs))}
    if differing and not force:
        raise UserError("; ".join(f"{os.path.join(folder, MEL_SETTINGS_FILE)}: made with {differences}"
                                  for folder, differences in differing.items())
                        + " (expected the same settings as now: pass those flags, --force to recompute every "
                          "mel with the new ones, or other --mel-files folders)")
    unvouched = []  # folders holding mels whose settings this run cannot vouch for (yet)
    new = []  # folders without mels so far: stamped now, unstamped again if no mel gets made
    for folder in folders:
        if folder not in differing and read_mel_settings(folder) is not None:
            continue  # already these settings
        if saved_mels(folder):
            remove_mel_settings(folder)
            unvouched.append(folder)
        else:
            os.makedirs(folder, exist_ok=True)
            write_mel_settings(folder, stft_kwargs)
            new.append(folder)
    result = PreprocessResult()
    todo = jobs if force else [job for job in jobs if not os.path.exists(job.mel_path)]
    result.skipped = len(jobs) - len(todo)
    written = set()
    # disable=None: a bar on a terminal only, not in CI logs
    bar = tqdm(total=len(todo), unit="mel", disable=None if progress is None else not progress)
    for mel_path, failure in _results(todo, stft_kwargs, num_workers):
        if failure is None:
            result.written += 1
            written.add(os.path.abspath(mel_path))
        else:
            result.failures.append(failure)
        bar.update(1)
    bar.close()
    for folder in new:
        if not saved_mels(folder):  # every job failed: a corrected rerun must not be refused
            remove_mel_settings(folder)
    for folder in unvouched:
        unknown = len(saved_mels(folder) - written)
        if unknown:
            print(f"warning: {folder}: {unknown} mel(s) not made by this run, with other or unrecorded "
                  f"settings, so {MEL_SETTINGS_FILE} is not written (--force remakes them with these settings)",
                  file=sys.stderr)
        else:
            write_mel_settings(folder, stft_kwargs)
    return result


def saved_mels(folder: str) -> set[str]:
    """Absolute paths of the mel files in ``folder``."""
    if not os.path.isdir(folder):
        return set()
    return {os.path.abspath(os.path.join(folder, name)) for name in os.listdir(folder)
            if name.endswith(MEL_SUFFIXES)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Precompute Tacotron 2 mels for --load-mel-from-disk",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-d", "--dataset-path", default="./", help="prefix joined to every filelist path")
    parser.add_argument("--wav-files", nargs="+", required=True, help="filelist(s) of the input wavs")
    parser.add_argument("--mel-files", nargs="+", required=True,
                        help="filelist(s) naming the output .pt files, line by line with --wav-files")
    parser.add_argument("--text-cleaners", nargs="*", default=["english_cleaners"],
                        help="accepted for the recipe's command lines; mels do not depend on text")
    parser.add_argument("--n-mel-channels", default=80, type=int, help="number of mel bins")
    parser.add_argument("--force", action="store_true", help="recompute mels that already exist")
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes computing mels")
    add_audio_args(parser)
    return parser


def stft_kwargs_from_args(args: argparse.Namespace) -> dict:
    return {"filter_length": args.filter_length, "hop_length": args.hop_length,
            "win_length": args.win_length, "n_mel_channels": args.n_mel_channels,
            "sampling_rate": args.sampling_rate, "mel_fmin": args.mel_fmin, "mel_fmax": args.mel_fmax}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_wav_value != 32768.0:
        print("warning: --max-wav-value is ignored: 16-bit wavs are scaled by 1/32768, as in training",
              file=sys.stderr)
    try:
        check_audio_args(args)
        jobs = pair_filelists(args.wav_files, args.mel_files, args.dataset_path)
        result = preprocess(jobs, stft_kwargs_from_args(args), force=args.force,
                            num_workers=args.num_workers)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"mels: {result.written} written, {result.skipped} already done, "
          f"{len(result.failures)} failed")
    if result.failures:
        for failure in result.failures[:MAX_REPORTED_FAILURES]:
            print(f"error: {failure}", file=sys.stderr)
        if len(result.failures) > MAX_REPORTED_FAILURES:
            print(f"error: ... and {len(result.failures) - MAX_REPORTED_FAILURES} more", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
