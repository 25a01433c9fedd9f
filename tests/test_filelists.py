"""Filelist parsing: joined paths, skipped blanks, line numbers in errors."""

import os

import pytest

from common.errors import FilelistError
from common.filelists import FileEntry, load_filelist


def write(tmp_path, content: bytes, name: str = "list.txt") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_entries_with_joined_paths_and_line_numbers(tmp_path):
    listing = write(tmp_path, "LJSpeech-1.1/wavs/LJ001-0001.wav|Printing, in the only sense\n"
                              "\n"
                              "   \n"
                              "LJSpeech-1.1/wavs/LJ001-0002.wav|Caf\u00e9 \u201cquoted\u201d\n".encode())
    entries = load_filelist(listing, dataset_path="/data")
    assert entries == [
        FileEntry("/data/LJSpeech-1.1/wavs/LJ001-0001.wav", "Printing, in the only sense", 1, listing),
        FileEntry("/data/LJSpeech-1.1/wavs/LJ001-0002.wav", "Caf\u00e9 \u201cquoted\u201d", 4, listing),
    ]
    assert entries[0].path == os.path.join("/data", "LJSpeech-1.1/wavs/LJ001-0001.wav")


def test_no_dataset_path_keeps_relative_paths(tmp_path):
    entries = load_filelist(write(tmp_path, b"a.wav|hi"))
    assert entries[0].path == "a.wav" and entries[0].text == "hi"


def test_transcripts_never_keep_line_ends(tmp_path):
    entries = load_filelist(write(tmp_path, b"a.wav|one\r\nb.wav|two \nc.wav|three"))
    assert [e.text for e in entries] == ["one", "two ", "three"]


def test_utf8_bom_is_ignored(tmp_path):
    entries = load_filelist(write(tmp_path, "\ufeffa.wav|x\n".encode()))
    assert entries[0].path == "a.wav"


def test_empty_text_is_allowed_here(tmp_path):
    assert load_filelist(write(tmp_path, b"a.wav|\n"))[0].text == ""


@pytest.mark.parametrize("content, line, what", [
    (b"a.wav|ok\nb.wav|too|many\n", 2, "found 3 field"),
    (b"a.wav|ok\n\nno-separator\n", 3, "found 1 field"),
    (b"|text without a path\n", 1, "empty path"),
    (b"a.wav|ok\nb.wav|\xff\xfe bad\n", 2, "not valid UTF-8"),
])
def test_malformed_lines_are_named(tmp_path, content, line, what):
    listing = write(tmp_path, content)
    with pytest.raises(FilelistError, match=what) as info:
        load_filelist(listing)
    assert str(info.value).startswith(f"{listing}:{line}: ")


def test_every_malformed_line_is_named_at_once(tmp_path):
    bad = b"".join(b"line-%d-without-separator\n" % i for i in range(25))
    listing = write(tmp_path, b"a.wav|ok\n|no path\n" + bad)
    with pytest.raises(FilelistError) as info:
        load_filelist(listing)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{listing}: 26 malformed lines:"
    assert lines[1] == f"{listing}:2: empty path (expected <path>|<transcript>)"
    assert lines[2].startswith(f"{listing}:3: found 1 field(s)")
    assert len(lines) == 22 and lines[-1] == "... and 6 more"


def test_other_field_counts(tmp_path):
    listing = write(tmp_path, b"a.wav|text|speaker3\n")
    entry = load_filelist(listing, n_fields=3)[0]
    assert (entry.text, entry.extra) == ("text", ("speaker3",))
    assert load_filelist(write(tmp_path, b"mels/a.pt\n", "one.txt"), n_fields=1)[0].text == ""
    with pytest.raises(FilelistError, match="expected 2"):
        load_filelist(listing)


def test_missing_list(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(FilelistError, match="not found") as info:
        load_filelist(missing)
    assert str(info.value).startswith(missing + ": ")


def test_shipped_validation_list_loads():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    listing = os.path.join(root, "filelists", "ljs_audio_text_val_filelist.txt")
    entries = load_filelist(listing, dataset_path="./")
    assert len(entries) == 100
    assert all(e.path.startswith("./LJSpeech-1.1/wavs/") and e.text for e in entries)
    assert not any(e.text.endswith("\n") for e in entries)
