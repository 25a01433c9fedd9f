"""Text cleaners: functions str -> str, selected by name (``--text-cleaners`` in the reference).

Faithful to the reference: cleaners do not strip the ends (``text_to_sequence`` does).
"""

import re
from typing import Callable

from unidecode import unidecode

from tacotron2.text.numbers import normalize_numbers

_WHITESPACE = re.compile(r'\s+')

# Each applies only when followed by '.', which is consumed ("Dr." -> "doctor").
_ABBREVIATIONS = [
    (re.compile(r'\b%s\.' % short, re.IGNORECASE), full)
    for short, full in [
        ('mrs', 'misess'), ('mr', 'mister'), ('dr', 'doctor'), ('st', 'saint'),
        ('co', 'company'), ('jr', 'junior'), ('maj', 'major'), ('gen', 'general'),
        ('drs', 'doctors'), ('rev', 'reverend'), ('lt', 'lieutenant'), ('hon', 'honorable'),
        ('sgt', 'sergeant'), ('capt', 'captain'), ('esq', 'esquire'), ('ltd', 'limited'),
        ('col', 'colonel'), ('ft', 'fort'),
    ]
]


_POUNDS_SIGN = re.compile(r'£([0-9][0-9,.]*[0-9]|[0-9])')


def lowercase(text: str) -> str:
    return text.lower()


def collapse_whitespace(text: str) -> str:
    """Turn every whitespace run (newlines and tabs included) into one space."""
    return _WHITESPACE.sub(' ', text)


def convert_to_ascii(text: str) -> str:
    """Transliterate to ASCII ("café" -> "cafe", curly quotes -> straight ones)."""
    return unidecode(text)


def expand_numbers(text: str) -> str:
    return normalize_numbers(text)


def expand_abbreviations(text: str) -> str:
    for pattern, full in _ABBREVIATIONS:
        text = pattern.sub(full, text)
    return text


def basic_cleaners(text: str) -> str:
    """Lowercase and collapse whitespace; no transliteration."""
    return collapse_whitespace(lowercase(text))


def transliteration_cleaners(text: str) -> str:
    """For non-English text: transliterate to ASCII, lowercase, collapse whitespace."""
    return collapse_whitespace(lowercase(convert_to_ascii(text)))


def english_cleaners(text: str) -> str:
    """English pipeline: ASCII, lowercase, spell out numbers, expand abbreviations, collapse spaces."""
    # Transliteration would turn '£' into 'PS' before the number rules see it, so the reference read
    # "£5" as "ps five"; marking pounds first keeps "five pounds".
    text = _POUNDS_SIGN.sub(r'\1 pounds', text)
    text = convert_to_ascii(text)
    text = lowercase(text)
    text = expand_numbers(text)
    text = expand_abbreviations(text)
    return collapse_whitespace(text)


CLEANERS: dict[str, Callable[[str], str]] = {
    'basic_cleaners': basic_cleaners,
    'transliteration_cleaners': transliteration_cleaners,
    'english_cleaners': english_cleaners,
}
