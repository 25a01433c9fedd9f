"""Shared by the tests: tiny model flags, small filelists, reading the JSON log, loading a script."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
TINY_DATA = REPO / "data"
TINY_TRAIN = REPO / "filelists" / "tiny_audio_text_train_filelist.txt"
TINY_VAL = REPO / "filelists" / "tiny_audio_text_val_filelist.txt"

SMALL_TACOTRON2 = [
    "--symbols-embedding-dim", "32", "--encoder-embedding-dim", "32", "--encoder-n-convolutions", "1",
    "--attention-rnn-dim", "32", "--decoder-rnn-dim", "32", "--prenet-dim", "16", "--attention-dim", "16",
    "--attention-location-n-filters", "4", "--postnet-embedding-dim", "16", "--postnet-n-convolutions", "2",
]
SMALL_WAVEGLOW = ["--flows", "4", "--early-every", "2", "--wn-channels", "16", "--wn-layers", "2"]


def tiny_filelist(tmp_path: Path, n_lines: int, name: str = "train.txt") -> Path:
    """The first n lines of the shipped tiny training list."""
    lines = TINY_TRAIN.read_text(encoding="utf-8").splitlines()[:n_lines]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tacotron2_args(output: Path, train_list: Path, epochs: int, *extra: str) -> list[str]:
    return ["-m", "Tacotron2", "-o", str(output), "-lr", "1e-3", "--epochs", str(epochs), "-bs", "2",
            "--training-files", str(train_list), "--validation-files", str(train_list),
            "-d", str(TINY_DATA), "--num-workers", "0", "--no-tensorboard", *SMALL_TACOTRON2, *extra]


def write_noise_clips(folder: Path, n_clips: int, n_samples: int, seed: int = 0) -> Path:
    """n mono 22050 Hz clips of exactly n_samples (so WaveGlow crops are deterministic) and their list."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    t = np.arange(n_samples) / 22050
    for i in range(n_clips):
        f0 = 110 + 20 * i
        clip = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(n_samples)
        sf.write(folder / f"clip{i}.wav", clip.astype(np.float32), 22050, subtype="PCM_16")
        lines.append(f"clip{i}.wav|clip {i}")
    filelist = folder / "list.txt"
    filelist.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return filelist


def waveglow_args(output: Path, data_dir: Path, filelist: Path, epochs: int, batch_size: int,
                  segment_length: int, *extra: str) -> list[str]:
    return ["-m", "WaveGlow", "-o", str(output), "-lr", "1e-3", "--epochs", str(epochs),
            "-bs", str(batch_size), "--segment-length", str(segment_length), "--weight-decay", "0",
            "--training-files", str(filelist), "--validation-files", str(filelist), "-d", str(data_dir),
            "--num-workers", "0", "--no-tensorboard", *SMALL_WAVEGLOW, *extra]


def read_log(path: Path) -> list[dict]:
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        assert line.startswith("DLLL "), line
        records.append(json.loads(line[len("DLLL "):]))
    return records


def values(records: list[dict], key: str) -> list[tuple]:
    """(step, value) of every LOG record carrying `key`, in file order."""
    return [(tuple(r["step"]) if isinstance(r["step"], list) else r["step"], r["data"][key])
            for r in records if r["type"] == "LOG" and key in r["data"]]


def env_without_gpu() -> dict:
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are programs, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module
