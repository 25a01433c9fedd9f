"""Text front end: transcripts -> symbol ids (and back), after keithito/tacotron's rules.

Differences from the reference, on purpose: surrounding whitespace (a line's trailing '\\n'
included) never becomes a space id at either end; unknown ARPAbet phones and cleaner names raise
``TextError`` instead of being ignored; dropped characters are reported once per process.
"""

import re
import warnings
from typing import Iterable, Sequence

from common.errors import InputWarning, TextError
from tacotron2.text import cmudict
from tacotron2.text.cleaners import CLEANERS
from tacotron2.text.symbols import PAD_ID, SPACE_ID, id_to_symbol, symbol_to_id, symbols

__all__ = [
    'TextError', 'symbols', 'symbol_to_id', 'id_to_symbol', 'PAD_ID', 'SPACE_ID',
    'clean_text', 'text_to_sequence', 'sequence_to_text',
]


# re.split with one group alternates [text, phones, text, phones, ..., text].
_CURLY = re.compile(r'\{(.+?)\}', re.DOTALL)

# Plain-text characters that map to an id. The pad '_' is a symbol but must never come from text.
_CHAR_TO_ID = {s: i for s, i in symbol_to_id.items() if len(s) == 1 and s != '_'}

# Characters already reported as dropped; one warning per new set keeps a 13k-line filelist quiet.
_warned_chars: set[str] = set()


def _prefix(source: str | None) -> str:
    return f'{source}: ' if source else ''


def _resolve_cleaners(cleaner_names: Iterable[str] | str, source: str | None):
    if isinstance(cleaner_names, str):
        cleaner_names = [cleaner_names]
    cleaners = []
    for name in cleaner_names:
        if name not in CLEANERS:
            raise TextError(f'{_prefix(source)}unknown text cleaner {name!r}; '
                            f'expected one of {", ".join(CLEANERS)}')
        cleaners.append(CLEANERS[name])
    return cleaners


def clean_text(text: str, cleaner_names: Iterable[str] | str = ('english_cleaners',),
               source: str | None = None) -> str:
    """Run the named cleaners over ``text`` in order (ends are not stripped)."""
    for cleaner in _resolve_cleaners(cleaner_names, source):
        text = cleaner(text)
    return text


def _phones_to_ids(phones: str, source: str | None) -> list[int]:
    ids = []
    for phone in phones.split():
        if not cmudict.is_valid_phone(phone):
            raise TextError(f'{_prefix(source)}unknown ARPAbet phone {phone!r} in {{{phones}}}; '
                            f'expected CMUdict symbols such as AH0, HH, OW1')
        ids.append(symbol_to_id['@' + phone])
    return ids


def _chars_to_ids(text: str, dropped: set[str]) -> list[int]:
    ids = []
    for char in text:
        symbol_id = _CHAR_TO_ID.get(char)
        if symbol_id is None:
            dropped.add(char)
        else:
            ids.append(symbol_id)
    return ids


def _warn_dropped(dropped: set[str], source: str | None) -> None:
    new = dropped - _warned_chars
    if not new:
        return
    _warned_chars.update(new)
    listed = ', '.join(repr(c) for c in sorted(new))
    warnings.warn(f'{_prefix(source)}dropped characters not in the symbol set: {listed}',
                  InputWarning, stacklevel=3)


def text_to_sequence(text: str, cleaner_names: Iterable[str] | str = ('english_cleaners',),
                     source: str | None = None) -> list[int]:
    """Symbol ids of ``text``; ``{HH AH0 L OW1}`` segments are ARPAbet, the rest is cleaned text.

    ``source`` (e.g. "list.txt:12") prefixes warnings and errors. No EOS id is appended.
    """
    cleaners = _resolve_cleaners(cleaner_names, source)
    pieces = _CURLY.split(text.strip())
    ids: list[int] = []
    dropped: set[str] = set()
    for i, piece in enumerate(pieces):
        if i % 2 == 1:
            ids += _phones_to_ids(piece, source)
            continue
        for cleaner in cleaners:
            piece = cleaner(piece)
        ids += _chars_to_ids(piece, dropped)
    _warn_dropped(dropped, source)
    # Dropped characters or cleaners can still leave a space at an end (e.g. 'he said "' ).
    start, end = 0, len(ids)
    while start < end and ids[start] == SPACE_ID:
        start += 1
    while end > start and ids[end - 1] == SPACE_ID:
        end -= 1
    return ids[start:end]


def sequence_to_text(ids: Sequence[int]) -> str:
    """Text of symbol ids; ARPAbet phones come back inside braces, e.g. "{HH AH0} world"."""
    parts = []
    for raw_id in ids:
        symbol = id_to_symbol.get(int(raw_id))
        if symbol is None:
            raise TextError(f'symbol id {int(raw_id)} out of range; expected 0..{len(symbols) - 1}')
        parts.append('{' + symbol[1:] + '}' if symbol.startswith('@') else symbol)
    # Adjacent phones share one pair of braces.
    return ''.join(parts).replace('}{', ' ')
