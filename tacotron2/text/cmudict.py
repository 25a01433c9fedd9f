"""The CMUdict ARPAbet phone set (no dictionary file is shipped or read).

The order is the alphabetical one of keithito/tacotron's ``valid_symbols``; it fixes the ids of the
'@'-prefixed phone symbols (64..147), so it must never be re-sorted or extended.
"""

valid_symbols: list[str] = [
    'AA', 'AA0', 'AA1', 'AA2', 'AE', 'AE0', 'AE1', 'AE2', 'AH', 'AH0', 'AH1', 'AH2',
    'AO', 'AO0', 'AO1', 'AO2', 'AW', 'AW0', 'AW1', 'AW2', 'AY', 'AY0', 'AY1', 'AY2',
    'B', 'CH', 'D', 'DH', 'EH', 'EH0', 'EH1', 'EH2', 'ER', 'ER0', 'ER1', 'ER2', 'EY',
    'EY0', 'EY1', 'EY2', 'F', 'G', 'HH', 'IH', 'IH0', 'IH1', 'IH2', 'IY', 'IY0', 'IY1',
    'IY2', 'JH', 'K', 'L', 'M', 'N', 'NG', 'OW', 'OW0', 'OW1', 'OW2', 'OY', 'OY0',
    'OY1', 'OY2', 'P', 'R', 'S', 'SH', 'T', 'TH', 'UH', 'UH0', 'UH1', 'UH2', 'UW',
    'UW0', 'UW1', 'UW2', 'V', 'W', 'Y', 'Z', 'ZH',
]

_valid_symbol_set = frozenset(valid_symbols)


def is_valid_phone(phone: str) -> bool:
    """True if ``phone`` (e.g. 'AH0') is one of the 84 ARPAbet symbols."""
    return phone in _valid_symbol_set
