"""scripts/demo.sh in its reduced mode (DEMO_QUICK=1): trains both models a couple of steps on
data/LJSpeech-tiny, synthesizes with WaveGlow and with Griffin-Lim, and writes real wavs."""

import os
import subprocess
import sys
import time

import pytest
import soundfile

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_quick_demo_writes_wavs(tmp_path):
    output = tmp_path / "demo"
    # setup.sh installs into the active virtualenv: this test's own interpreter's
    venv = os.path.dirname(os.path.dirname(sys.executable))
    env = {**os.environ, "DEMO_QUICK": "1", "DEMO_OUTPUT": str(output), "VIRTUAL_ENV": venv,
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "PIP_NO_INDEX": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    start = time.monotonic()
    result = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "demo.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    for name in ("audio_0.wav", "audio_0_griffin_lim.wav"):
        info = soundfile.info(str(output / "audio" / name))
        assert info.samplerate == 22050 and info.channels == 1
        assert info.frames > 0
    assert (output / "audio" / "alignment_0.png").read_bytes()[:4] == b"\x89PNG"
    for model in ("Tacotron2", "WaveGlow"):
        assert (output / model.lower() / f"checkpoint_{model}_last.pt").is_file()
    assert "do not speak" in result.stdout and str(output / "audio" / "audio_0.wav") in result.stdout
    assert elapsed < 240
