"""Cut a line too long for one Tacotron 2 decode into chunks, at the most natural boundaries.

Tacotron 2 stops at ``max_decoder_steps`` frames; a longer utterance is cut off mid-word. We
estimate the frames from the text length (LJSpeech reads about 13-15 characters a second, i.e.
6-7 mel frames per character at 22050 Hz / hop 256) and split before the estimate gets close to
the limit: first between sentences, then between clauses (after , ; :), then between words.
Consecutive pieces are packed greedily, so chunks are as long as the limit allows.

Also here: reading an inference input file into numbered lines, and a line into symbol-id chunks.
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable

from common.errors import TextError, UserError
from tacotron2.text import clean_text, text_to_sequence

# Upper end of LJSpeech's speaking rate, at the reference frame rate (22050 / 256 frames/s).
FRAMES_PER_CHAR = 7.0
REFERENCE_FRAME_RATE = 22050 / 256
# Leave room for slow speech and pauses: split when the estimate passes this share of the limit.
FILL = 0.8

# A word: non-space characters, where an ARPAbet group such as {HH AH0 L OW1} counts as one
# piece even though it contains spaces (splitting inside the braces would break the phones).
_WORD = re.compile(r"(?:\{[^}]*\}|[^\s{])+|\{[^}]*$")
# Units of a hard cut: a closed ARPAbet group or one character.
_UNIT = re.compile(r"\{[^}]*\}|.", re.DOTALL)
# Closing quotes/brackets may follow the punctuation that ends a sentence or clause.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_CLAUSE_END = re.compile(r"[,;:][\"')\]]*$")

SENTENCE, CLAUSE, WORD = 0, 1, 2


def frames_per_char(sampling_rate: int = 22050, hop_length: int = 256) -> float:
    """Estimated mel frames per (cleaned) character at this frame rate."""
    return FRAMES_PER_CHAR * (sampling_rate / hop_length) / REFERENCE_FRAME_RATE


def estimate_frames(text: str, sampling_rate: int = 22050, hop_length: int = 256) -> float:
    """Rough number of mel frames Tacotron 2 needs to say ``text``."""
    return len(text) * frames_per_char(sampling_rate, hop_length)


def max_chunk_chars(max_decoder_steps: int, sampling_rate: int = 22050, hop_length: int = 256,
                    fill: float = FILL) -> int:
    """Longest text (in characters) whose estimated frames stay within ``fill * max_decoder_steps``."""
    return max(1, math.floor(fill * max_decoder_steps / frames_per_char(sampling_rate, hop_length)))


def _boundary_level(word: str) -> int:
    """How strong the boundary after ``word`` is: SENTENCE, CLAUSE or just WORD."""
    if _SENTENCE_END.search(word):
        return SENTENCE
    if _CLAUSE_END.search(word):
        return CLAUSE
    return WORD


def _segments(words: list[str], level: int) -> list[list[str]]:
    """Cut ``words`` after every word whose boundary is at least as strong as ``level``."""
    segments, current = [], []
    for word in words:
        current.append(word)
        if _boundary_level(word) <= level:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


def _hard_cut(word: str, max_chars: int) -> list[str]:
    """A single word longer than a chunk (e.g. a URL): cut it every ``max_chars`` characters.

    An ARPAbet group is cut between phones, each piece keeping its braces ("{HH AH0}{L OW1}").
    """
    units = []
    for match in _UNIT.finditer(word):
        unit = match.group(0)
        units += ["{" + phone + "}" for phone in unit[1:-1].split()] if unit.startswith("{") else [unit]
    pieces, current = [], ""
    for unit in units:
        if current and len(current) + len(unit) > max_chars:
            pieces.append(current)
            current = ""
        current += unit
    return pieces + [current] if current else pieces


def _split_words(words: list[str], max_chars: int, length: Callable[[str], int],
                 level: int) -> list[str]:
    text = " ".join(words)
    if length(text) <= max_chars:
        return [text]
    if level > WORD:
        return _hard_cut(text, max_chars)
    segments = _segments(words, level)
    if len(segments) == 1:
        return _split_words(words, max_chars, length, level + 1)
    chunks: list[str] = []
    current = ""
    for segment in segments:
        segment_text = " ".join(segment)
        candidate = f"{current} {segment_text}" if current else segment_text
        if length(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            chunks.append(current)
            current = ""
        if length(segment_text) <= max_chars:
            current = segment_text
        else:
            # Too long on its own: split it at the next weaker boundary and keep packing after it.
            pieces = _split_words(segment, max_chars, length, level + 1)
            chunks.extend(pieces[:-1])
            current = pieces[-1]
    if current:
        chunks.append(current)
    return chunks


def split_text(text: str, max_chars: int, length: Callable[[str], int] = len) -> list[str]:
    """Cut ``text`` into chunks with ``length(chunk) <= max_chars``, preferring sentence ends,
    then clause ends, then spaces; whitespace runs become single spaces.

    ``length`` measures a chunk (pass the cleaned-text length so that "1,000,000" counts as
    "one million"). A single word longer than ``max_chars`` is cut inside the word.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    words = _WORD.findall(text)
    if not words:
        return []
    return _split_words(words, max_chars, length, SENTENCE)


def line_to_chunks(line: str, max_chars: int, cleaner_names: list[str] | str = ("english_cleaners",),
                   source: str | None = None) -> list[list[int]]:
    """Symbol ids of each chunk of one input line, chunks measured in cleaned characters.

    Chunks that clean to nothing are dropped; a line with nothing left raises ``TextError``.
    """
    def cleaned_length(text: str) -> int:
        return len(clean_text(text, cleaner_names, source=source).strip())

    chunks = [text_to_sequence(piece, cleaner_names, source=source)
              for piece in split_text(line, max_chars, cleaned_length)]
    chunks = [ids for ids in chunks if ids]
    if not chunks:
        where = f"{source}: " if source else ""
        raise TextError(f"{where}nothing left to say after cleaning {line.strip()[:60]!r} "
                        f"(expected letters or {{ARPAbet}} phones)")
    return chunks


def read_text_lines(path: str) -> tuple[list[tuple[int, str]], list[int]]:
    """An input text file -> (non-blank lines as (0-based line index, text), indices of blank lines).

    Only newline characters end lines (so numbers match editors); carriage returns and a UTF-8 BOM
    are dropped.
    """
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder (expected a text file, one utterance per line)")
    if not os.path.isfile(path):
        raise UserError(f"{path}: input file not found (expected a text file, one utterance per line)")
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the input file ({err.strerror})") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a blank one
    blank = [i for i, line in enumerate(lines) if not line.strip()]
    if len(blank) == len(lines):
        raise UserError(f"{path}: no text (expected one utterance per line)")
    return [(i, line) for i, line in enumerate(lines) if line.strip()], blank
