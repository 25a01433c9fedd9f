"""Text front end: symbol table, cleaners, number expansion, ARPAbet, warnings, LJSpeech val list."""

import warnings
from pathlib import Path

import pytest

import tacotron2.text as text_mod
from common.errors import TextError, UserError
from tacotron2.text import (PAD_ID, sequence_to_text, symbol_to_id, symbols, text_to_sequence)
from tacotron2.text import cmudict
from tacotron2.text.cleaners import (basic_cleaners, english_cleaners, expand_abbreviations,
                                     transliteration_cleaners)
from tacotron2.text.numbers import normalize_numbers

VAL_FILELIST = Path(__file__).resolve().parents[1] / 'filelists' / 'ljs_audio_text_val_filelist.txt'


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Forget which characters were already reported, so each test sees its own first warning."""
    monkeypatch.setattr(text_mod, '_warned_chars', set())


# --- symbol table ---------------------------------------------------------------------------

def test_symbol_table_layout():
    assert len(symbols) == 148
    assert len(set(symbols)) == 148
    assert PAD_ID == 0 and symbols[0] == '_'
    assert symbol_to_id['-'] == 1
    assert ''.join(symbols[2:12]) == "!'(),.:;? "
    assert symbol_to_id[' '] == 11
    assert symbol_to_id['A'] == 12 and symbol_to_id['Z'] == 37
    assert symbol_to_id['a'] == 38 and symbol_to_id['z'] == 63
    assert symbol_to_id['@AA'] == 64
    assert symbols[-1] == '@ZH' and symbol_to_id['@ZH'] == 147


def test_arpabet_set_is_cmudict_phones_with_vowel_stress():
    phones = cmudict.valid_symbols
    assert len(phones) == 84
    assert phones == sorted(phones)
    vowels = {p[:-1] for p in phones if p[-1].isdigit()}
    assert len(vowels) == 15
    # Each vowel appears bare and with stress 0, 1, 2; the remaining 24 are consonants.
    for vowel in vowels:
        assert all(vowel + s in phones for s in ('', '0', '1', '2'))
    assert len(phones) - 4 * len(vowels) == 24
    assert symbols[64:] == ['@' + p for p in phones]


# --- cleaners and numbers -------------------------------------------------------------------

def test_english_cleaners_reference_example():
    raw = 'Mrs. De Mohrenschildt thought that Oswald, 1963 $5.50 Dr. St.'
    assert english_cleaners(raw) == ('misess de mohrenschildt thought that oswald, nineteen '
                                     'sixty-three five dollars, fifty cents doctor saint')


@pytest.mark.parametrize('raw, spoken', [
    ('1st', 'first'),
    ('22nd', 'twenty-second'),
    ('103rd', 'one hundred and third'),  # reference: ordinals keep inflect's 'and'
    ('3.14', 'three point fourteen'),
    ('1,000,000', 'one million'),
    ('12,345', 'twelve thousand, three hundred forty-five'),
    ('$5', 'five dollars'),
    ('$1', 'one dollar'),
    ('$1.01', 'one dollar, one cent'),
    ('$2.75', 'two dollars, seventy-five cents'),
    ('$0.50', 'fifty cents'),
    ('$0.00', 'zero dollars'),
    ('£250', 'two hundred fifty pounds'),
    ('£1,200', 'twelve hundred pounds'),  # reference: 1001..2999 read as years
    ('1001', 'ten oh one'),
    ('1963', 'nineteen sixty-three'),
    ('1905', 'nineteen oh five'),
    ('1900', 'nineteen hundred'),
    ('2000', 'two thousand'),
    ('2005', 'two thousand five'),
    ('2009', 'two thousand nine'),
    ('2010', 'twenty ten'),  # the "two thousand ..." reading stops at 2009
    ('2015', 'twenty fifteen'),
    ('1000', 'one thousand'),
    ('3000', 'three thousand'),
    ('101', 'one hundred one'),
])
def test_normalize_numbers(raw, spoken):
    assert normalize_numbers(raw) == spoken


def test_abbreviations_need_a_period():
    assert expand_abbreviations('mr. smith and dr. who, st. louis') == \
        'mister smith and doctor who, saint louis'
    # No period: left alone; "drs." is not "dr." + "s.".
    assert expand_abbreviations('mr smith') == 'mr smith'
    assert expand_abbreviations('the drs. met') == 'the doctors met'
    assert expand_abbreviations('Capt. Ft. Col. Ltd.') == 'captain fort colonel limited'


# reference-dle c.5: the recipe's 18 abbreviations
RECIPE_ABBREVIATIONS = {
    'mrs': 'misess', 'mr': 'mister', 'dr': 'doctor', 'st': 'saint', 'co': 'company', 'jr': 'junior',
    'maj': 'major', 'gen': 'general', 'drs': 'doctors', 'rev': 'reverend', 'lt': 'lieutenant',
    'hon': 'honorable', 'sgt': 'sergeant', 'capt': 'captain', 'esq': 'esquire', 'ltd': 'limited',
    'col': 'colonel', 'ft': 'fort',
}


@pytest.mark.parametrize('short, full', sorted(RECIPE_ABBREVIATIONS.items()))
def test_every_recipe_abbreviation_expands(short, full):
    assert expand_abbreviations(f'the {short}. went') == f'the {full} went'
    assert expand_abbreviations(f'the {short.capitalize()}. went') == f'the {full} went'
    assert english_cleaners(f'{short.upper()}. 5') == f'{full} five'


def test_abbreviations_match_whole_words_only():
    # "st." ends "first." and "co." ends "taco.": no word boundary before them, left alone
    for text in ('the first. the taco. the oft. the gardr.', 'amaj. ajr.'):
        assert expand_abbreviations(text) == text


def test_basic_and_transliteration_cleaners():
    assert basic_cleaners('Hello\t  World\n') == 'hello world '
    assert basic_cleaners('Café') == 'café'
    assert transliteration_cleaners('Café  “Noël”') == 'cafe "noel"'


# --- text_to_sequence / sequence_to_text ----------------------------------------------------

def test_sequence_of_plain_text_matches_symbol_table():
    ids = text_to_sequence('Hi, Bob!', ['english_cleaners'])
    assert ids == [symbol_to_id[c] for c in 'hi, bob!']
    # Capitals survive only without lowercasing... which no shipped cleaner does.
    assert all(not 12 <= i <= 37 for i in ids)


def test_arpabet_braces():
    ids = text_to_sequence('{HH AH0 L OW1} world', ['english_cleaners'])
    expected = [symbol_to_id[s] for s in ('@HH', '@AH0', '@L', '@OW1')]
    expected += [symbol_to_id[c] for c in ' world']
    assert ids == expected
    assert sequence_to_text(ids) == '{HH AH0 L OW1} world'


def test_arpabet_between_words_and_unknown_phone():
    ids = text_to_sequence('say {HH AH0} now', ['basic_cleaners'])
    assert sequence_to_text(ids) == 'say {HH AH0} now'
    with pytest.raises(TextError, match=r"list\.txt:3: .*'XX'"):
        text_to_sequence('say {HH XX}', ['basic_cleaners'], source='list.txt:3')


@pytest.mark.parametrize('sentence', [
    "hello, world! it's (almost) done: yes; no? a-b.",
    'the quick brown fox jumps over the lazy dog',
])
def test_round_trip_basic_cleaners(sentence):
    assert sequence_to_text(text_to_sequence(sentence, ['basic_cleaners'])) == sentence


def test_no_eos_and_no_trailing_space_from_newline():
    for line in ('Printing, in the only sense.\n', 'Printing, in the only sense.\r\n',
                 '  Printing, in the only sense.  \n'):
        ids = text_to_sequence(line)
        assert ids == [symbol_to_id[c] for c in 'printing, in the only sense.']
        assert ids[-1] != symbol_to_id[' '] and ids[0] != symbol_to_id[' ']


def test_dropped_character_at_end_leaves_no_space(fresh_warnings):
    with pytest.warns(UserWarning):
        ids = text_to_sequence('he said "', ['basic_cleaners'])
    assert sequence_to_text(ids) == 'he said'


def test_unknown_characters_dropped_and_warned_once(fresh_warnings):
    with pytest.warns(UserWarning, match=r"f\.txt:2: dropped characters not in the symbol set: "
                                         r"'\"', '\['") as record:
        ids = text_to_sequence('a "b" [c] _d~', ['basic_cleaners'], source='f.txt:2')
    assert sequence_to_text(ids) == 'a b c d'
    assert len(record) == 1
    assert all(c in record[0].message.args[0] for c in ("'_'", "'~'", "']'"))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a second warning would raise here
        assert text_to_sequence('x "y" [z]', ['basic_cleaners']) == \
            [symbol_to_id[c] for c in 'x y z']
    # A character not seen before is reported, alone.
    with pytest.warns(UserWarning, match=r"set: '#'$"):
        text_to_sequence('#x "y"', ['basic_cleaners'])


COMMAND_WITH_WARNINGS = """
import sys, warnings
from common.errors import run_cli
from tacotron2.text import text_to_sequence

def command():
    text_to_sequence('a #b', ['basic_cleaners'], source='f.txt:7')
    warnings.warn('from a library', UserWarning)
    return 0

sys.exit(run_cli(command))
"""


def test_commands_show_input_warnings_as_one_line_and_others_as_usual():
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, '-c', COMMAND_WITH_WARNINGS], cwd=repo, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "warning: f.txt:7: dropped characters not in the symbol set: '#'"
    assert lines[1].endswith('UserWarning: from a library')  # <file>:<line>: UserWarning: ..., as Python shows it


def test_commands_leave_warnings_to_whoever_records_them(fresh_warnings):
    from common.errors import InputWarning, run_cli
    with pytest.warns(InputWarning, match="dropped characters"):
        assert run_cli(lambda: text_to_sequence('a #b', ['basic_cleaners']) and 0) == 0


def test_unknown_cleaner_is_a_user_error():
    with pytest.raises(TextError, match=r"x\.txt:1: unknown text cleaner 'german_cleaners'"):
        text_to_sequence('hallo', ['german_cleaners'], source='x.txt:1')
    assert issubclass(TextError, UserError)


def test_sequence_to_text_rejects_unknown_id():
    with pytest.raises(TextError, match='148'):
        sequence_to_text([12, 148])


def test_val_filelist_transcripts_all_clean(fresh_warnings):
    lines = VAL_FILELIST.read_text(encoding='utf-8').splitlines(keepends=True)
    assert len(lines) == 100
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # '"' and '[' are expected to be dropped
        for n, line in enumerate(lines, 1):
            transcript = line.split('|')[1]
            ids = text_to_sequence(transcript, ['english_cleaners'], source=f'val:{n}')
            assert ids, f'line {n} cleaned to nothing'
            assert all(1 <= i < len(symbols) for i in ids)  # never the pad, always a symbol
            assert ids[0] != symbol_to_id[' '] and ids[-1] != symbol_to_id[' ']


def test_english_cleaners_read_the_pound_sign_as_pounds():
    # The reference transliterated '£' to 'PS' first and read "£5" as "ps five".
    assert english_cleaners('It cost £5, not £250.') == 'it cost five pounds, not two hundred fifty pounds.'
