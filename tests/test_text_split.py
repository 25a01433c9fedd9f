"""Splitting long input lines for Tacotron 2 (tacotron2/text_split.py)."""

import math
import warnings

import pytest

from common.errors import TextError, UserError
from tacotron2.text import clean_text, text_to_sequence
from tacotron2.text_split import (FRAMES_PER_CHAR, estimate_frames, frames_per_char, line_to_chunks,
                                  max_chunk_chars, read_text_lines, split_text)

TEXT = ("Hello there, my friend. How are you today? I am fine; thanks: "
        "a lot {HH AH0 L OW1} superlongwordthatneverends.")


def words(text: str) -> list[str]:
    return text.replace("{", " {").split()


def test_short_text_is_one_chunk_with_whitespace_collapsed():
    assert split_text("  Hello   world.\t", 100) == ["Hello world."]
    assert split_text("   ", 10) == []


def test_sentences_first():
    chunks = split_text("One two three. Four five six! Seven eight?", 20)
    assert chunks == ["One two three.", "Four five six!", "Seven eight?"]


def test_sentences_are_packed_greedily():
    chunks = split_text("Aa. Bb. Cc. Dd. Ee.", 7)
    assert chunks == ["Aa. Bb.", "Cc. Dd.", "Ee."]


def test_clauses_before_words():
    chunks = split_text("first part, second part; third part: the end.", 16)
    assert chunks == ["first part,", "second part;", "third part:", "the end."]
    # Words only where a clause alone is too long.
    assert split_text("one two three four, five.", 12) == ["one two", "three four,", "five."]


def test_closing_quote_after_sentence_end_still_ends_the_sentence():
    assert split_text('He said "stop." Then left.', 16) == ['He said "stop."', "Then left."]


@pytest.mark.parametrize("max_chars", [200, 40, 20, 9, 5, 1])
def test_every_chunk_fits_and_no_word_is_lost(max_chars):
    chunks = split_text(TEXT, max_chars)
    # A single phone ("{AH0}") cannot be cut further, whatever the limit.
    assert all(len(chunk) <= max(max_chars, 5) for chunk in chunks)
    # Rejoined without spaces/braces the characters are exactly those of the text.
    strip = lambda s: "".join(c for c in s if c not in " {}")  # noqa: E731
    assert strip("".join(chunks)) == strip(TEXT)


def test_arpabet_groups_stay_valid():
    for max_chars in (40, 9, 5):
        for chunk in split_text(TEXT, max_chars):
            text_to_sequence(chunk)  # raises TextError for a phone cut in half


def test_arpabet_group_with_spaces_is_one_word():
    assert split_text("say {HH AH0 L OW1} now", 14) == ["say", "{HH AH0 L OW1}", "now"]


def test_long_word_is_hard_cut():
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_length_function_is_used():
    # "1000000" is 7 characters but "one million" after cleaning.
    text = "It cost 1000000 dollars. Cheap."
    cleaned = lambda s: len(clean_text(s).strip())  # noqa: E731
    assert len(text) == 31 and cleaned(text) == 35
    assert split_text(text, 31) == [text]
    assert split_text(text, 31, cleaned) == ["It cost 1000000 dollars.", "Cheap."]


def test_frame_estimates():
    assert frames_per_char() == pytest.approx(FRAMES_PER_CHAR)
    # Twice the frame rate, twice the frames per character.
    assert frames_per_char(44100, 256) == pytest.approx(2 * FRAMES_PER_CHAR)
    assert estimate_frames("a" * 10) == pytest.approx(10 * FRAMES_PER_CHAR)
    assert max_chunk_chars(2000) == math.floor(0.8 * 2000 / FRAMES_PER_CHAR)
    assert max_chunk_chars(2000) * FRAMES_PER_CHAR <= 0.8 * 2000
    assert max_chunk_chars(3) == 1


def test_invalid_max_chars():
    with pytest.raises(ValueError):
        split_text("abc", 0)


def test_line_to_chunks_gives_symbol_ids_per_chunk():
    line = "One two, three four. Five six."
    chunks = line_to_chunks(line, 11)
    assert chunks == [text_to_sequence(piece) for piece in ("One two,", "three four.", "Five six.")]
    assert line_to_chunks(line, 100) == [text_to_sequence(line)]


def test_line_to_chunks_measures_cleaned_text():
    # "Dr." cleans to "doctor": 10 raw characters but 14 cleaned ones.
    assert len(line_to_chunks("Dr. Smith.", 12)) == 2
    assert len(line_to_chunks("Mx. Smith.", 12)) == 1


def test_line_to_chunks_nothing_to_say():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped '~' (reported once per process)
        with pytest.raises(TextError, match=r"^in\.txt:3: nothing left to say"):
            line_to_chunks("~~ ~", 100, source="in.txt:3")


def test_read_text_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("\ufeffFirst line\r\n\r\n  \nFourth\n".encode("utf-8"))
    lines, blank = read_text_lines(str(path))
    assert lines == [(0, "First line"), (3, "Fourth")]
    assert blank == [1, 2]
    path.write_text("no final newline")
    assert read_text_lines(str(path)) == ([(0, "no final newline")], [])


@pytest.mark.parametrize("content,message", [(None, "not found"), (b"", "no text"), (b"\n \n", "no text"),
                                             (b"\xff\xfe bad", "not UTF-8")])
def test_read_text_lines_errors(tmp_path, content, message):
    path = tmp_path / "in.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_text_lines(str(path))
