"""The 148 input symbols of Tacotron 2, in the reference order (their index is the embedding id).

Layout: pad '_' (0), '-' (1), punctuation "!'(),.:;? " (2..11; 11 is space), A-Z (12..37),
a-z (38..63), then the 84 ARPAbet phones prefixed with '@' (64..147). Trained embeddings
(and the reference's checkpoints) depend on this exact order: never reorder it.
"""

from tacotron2.text import cmudict

PAD = '_'
SPECIAL = '-'
PUNCTUATION = "!'(),.:;? "
LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
# '@' keeps phones apart from letters ('@B' is a phone, 'B' a letter).
ARPABET = ['@' + phone for phone in cmudict.valid_symbols]

symbols: list[str] = [PAD] + list(SPECIAL) + list(PUNCTUATION) + list(LETTERS) + ARPABET

symbol_to_id: dict[str, int] = {symbol: i for i, symbol in enumerate(symbols)}
id_to_symbol: dict[int, str] = {i: symbol for i, symbol in enumerate(symbols)}

PAD_ID: int = symbol_to_id[PAD]
SPACE_ID: int = symbol_to_id[' ']
