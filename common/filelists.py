"""Filelists: ``<relative path>|<transcript>`` lines (reference-dle c.6)."""

from __future__ import annotations

import os
from typing import NamedTuple

from common.audio import check_wav
from common.errors import AudioError, DataError, FilelistError
from common.mel import MEL_SUFFIXES


MAX_LISTED_LINES = 20  # malformed lines listed in one error


class FileEntry(NamedTuple):
    """One filelist line: ``path`` already joined to the dataset path; ``line`` is 1-based."""
    path: str
    text: str
    line: int
    source: str
    extra: tuple[str, ...] = ()  # fields after the transcript when n_fields > 2


def load_filelist(filelist: str, dataset_path: str = "", n_fields: int = 2) -> list[FileEntry]:
    """Read a UTF-8 filelist; blank lines are skipped, line ends never reach the transcript.

    The text may be empty here; whether that is allowed is the dataset's decision.
    """
    try:
        with open(filelist, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FilelistError(f"{filelist}: filelist not found") from None
    except OSError as err:
        raise FilelistError(f"{filelist}: cannot read filelist ({err.strerror})") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise FilelistError(f"{filelist}:{line}: not valid UTF-8 (byte {raw[err.start]:#04x})") from None

    entries, malformed = [], []
    for number, line in enumerate(content.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != n_fields:
            hint = " (<path>|<transcript>)" if n_fields == 2 else ""
            malformed.append(f"{filelist}:{number}: found {len(fields)} field(s) separated by "
                             f"'|', expected {n_fields}{hint}")
            continue
        path = fields[0]
        if not path.strip():
            malformed.append(f"{filelist}:{number}: empty path (expected <path>|<transcript>)")
            continue
        text = fields[1] if n_fields >= 2 else ""
        entries.append(FileEntry(os.path.join(dataset_path, path), text, number, filelist,
                                 tuple(fields[2:])))
    if len(malformed) == 1:
        raise FilelistError(malformed[0])
    if malformed:  # all of them at once, so that one edit fixes the list
        shown = malformed[:MAX_LISTED_LINES] + ([f"... and {len(malformed) - MAX_LISTED_LINES} more"]
                                                if len(malformed) > MAX_LISTED_LINES else [])
        raise FilelistError(f"{filelist}: {len(malformed)} malformed lines:\n" + "\n".join(shown))
    return entries


def location(entry: FileEntry) -> str:
    """``"<filelist>:<line>"``, the prefix of every message about an entry."""
    return f"{entry.source}:{entry.line}"


def wav_problems(entries: list[FileEntry], sampling_rate: int) -> list[str]:
    """One ``"<filelist>:<line>: <problem>"`` per entry whose wav is missing, unreadable, of another
    sampling rate or not mono; reads headers only, so a whole filelist is checked in seconds."""
    found = []
    for entry in entries:
        try:
            check_wav(entry.path, sampling_rate)
        except AudioError as err:
            hint = ("; it looks like a saved mel: Tacotron 2 reads mels with --load-mel-from-disk, WaveGlow needs wavs"
                    if entry.path.endswith(MEL_SUFFIXES) and os.path.isfile(entry.path) else "")
            found.append(f"{location(entry)}: {err}{hint}")
    return found


def raise_problems(problems: list[str]) -> None:
    """One DataError whose first line counts the problems and whose next lines list them all
    (each once: the training and validation lists may be the same file)."""
    problems = list(dict.fromkeys(problems))
    if problems:
        raise DataError(f"{len(problems)} problem(s) in the data filelists:\n" + "\n".join(problems))

