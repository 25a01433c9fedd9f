"""scripts/check_benchmark_set.py: clips against a path,samples,md5 manifest."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile

from training_helpers import load_script


@pytest.fixture(scope="module")
def check():
    return load_script("check_benchmark_set")


def write_clip(path, samples):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, 22050, subtype="PCM_16")


def test_matching_changed_and_missing_clips(check, tmp_path, capsys):
    rng = np.random.default_rng(0)
    clips = {name: rng.integers(-3000, 3000, 500 + 10 * i).astype(np.int16) for i, name in enumerate("abc")}
    wavs = tmp_path / "LJSpeech-1.1" / "wavs"
    lines = []
    for name, samples in clips.items():
        lines.append(f"LJSpeech-1.1/wavs/{name}.wav,{len(samples)},{hashlib.md5(samples.tobytes()).hexdigest()}")
    write_clip(wavs / "a.wav", clips["a"])
    changed = clips["b"].copy()
    changed[7] += 1  # one sample off
    write_clip(wavs / "b.wav", changed)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")

    matched, problems = check.compare(str(tmp_path), str(manifest))
    assert matched == 1 and len(problems) == 2
    assert "b.wav: 510 samples, md5" in problems[0] and "c.wav: missing (manifest line 3)" in problems[1]
    assert check.main([str(tmp_path), str(manifest)]) == 1
    assert "1 of 3 clips match" in capsys.readouterr().out

    write_clip(wavs / "b.wav", clips["b"])
    write_clip(wavs / "c.wav", clips["c"])
    assert check.main([str(tmp_path), str(manifest)]) == 0
