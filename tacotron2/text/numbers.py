"""Spell out numbers, money, ordinals and years in English (the reference's inflect-based rules).

Input is expected lowercase ASCII (``english_cleaners`` runs this after unidecode + lowercase).
"""

import re

import inflect

_engine = inflect.engine()

# Rules run in this order; later ones see the output of earlier ones.
_COMMA_NUMBER = re.compile(r'([0-9][0-9,]+[0-9])')
_POUNDS = re.compile(r'£([0-9,]*[0-9]+)')
_DOLLARS = re.compile(r'\$([0-9.,]*[0-9]+)')
_DECIMAL = re.compile(r'([0-9]+\.[0-9]+)')
_ORDINAL = re.compile(r'[0-9]+(st|nd|rd|th)')
_INTEGER = re.compile(r'[0-9]+')


def _plural(count: int, singular: str) -> str:
    return f'{count} {singular if count == 1 else singular + "s"}'


def _dollars_to_words(match: re.Match) -> str:
    amount = match.group(1)
    parts = amount.split('.')
    if len(parts) > 2:
        # Not a price (e.g. "$1.2.3"); keep the digits for the integer rule.
        return amount + ' dollars'
    dollars = int(parts[0]) if parts[0] else 0
    cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    if dollars and cents:
        return f'{_plural(dollars, "dollar")}, {_plural(cents, "cent")}'
    if dollars:
        return _plural(dollars, 'dollar')
    if cents:
        return _plural(cents, 'cent')
    return 'zero dollars'


def _integer_to_words(match: re.Match) -> str:
    n = int(match.group(0))
    if 1000 < n < 3000:  # read as a year
        if n == 2000:
            return 'two thousand'
        if 2000 < n < 2010:
            return 'two thousand ' + _engine.number_to_words(n % 100)
        if n % 100 == 0:
            return _engine.number_to_words(n // 100) + ' hundred'
        # group=2 reads 1963 as "nineteen, sixty-three" and 1905 as "nineteen, oh five".
        return _engine.number_to_words(n, andword='', zero='oh', group=2).replace(', ', ' ')
    return _engine.number_to_words(n, andword='')


def normalize_numbers(text: str) -> str:
    """Replace every digit run in ``text`` by words, e.g. "$5.50" -> "five dollars, fifty cents"."""
    text = _COMMA_NUMBER.sub(lambda m: m.group(1).replace(',', ''), text)
    text = _POUNDS.sub(r'\1 pounds', text)
    text = _DOLLARS.sub(_dollars_to_words, text)
    text = _DECIMAL.sub(lambda m: m.group(1).replace('.', ' point '), text)
    text = _ORDINAL.sub(lambda m: _engine.number_to_words(m.group(0)), text)
    return _INTEGER.sub(_integer_to_words, text)
