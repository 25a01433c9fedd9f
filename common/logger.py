"""One logging call for the DLLogger JSON-lines file, stdout and TensorBoard (reference-dle d.8).

File lines: ``DLLL {"timestamp", "datetime", "elapsedtime", "type": "LOG", "step", "data"}`` and
``DLLL {"timestamp", "elapsedtime", "datetime", "type": "METADATA", "metric", "metadata"}``.
Stdout lines: ``DLL <datetime> - <step> <key> : <value> <unit>``. NVIDIA's ``dllogger`` is used
when it is installed and can append; otherwise the same format comes from the writer here.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from datetime import datetime
from typing import Any

import numpy as np
import torch


def _plain(value: Any) -> Any:
    """Tensors, numpy values and other objects -> JSON-serialisable python values."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _step(step: Any) -> str | int | tuple:
    """Steps are a string, an int, or a tuple (printed ``(0, 5)``, stored as a JSON list)."""
    if isinstance(step, (list, tuple)):
        return tuple(_plain(s) for s in step)
    if isinstance(step, str):
        return step
    return _plain(step)


def _import_dllogger():
    """NVIDIA's dllogger if installed and able to append (v1.0+); v0.1.0 would truncate the log."""
    try:
        import dllogger
    except ImportError:
        return None
    backend = getattr(dllogger, "JSONStreamBackend", None)
    if backend is None or not hasattr(dllogger, "Logger"):
        return None
    try:
        if "append" not in inspect.signature(backend).parameters:
            return None
    except (TypeError, ValueError):
        return None
    return dllogger


def _summary_writer(log_dir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=log_dir)


class Logger:
    """DLLogger-format run log. ``enabled=False`` (ranks > 0) turns every method into a no-op."""

    def __init__(self, log_file: str | None = None, enabled: bool = True,
                 tensorboard_dir: str | None = None, stdout: bool = True):
        self.enabled = enabled
        self.stdout = stdout
        self._units: dict[str, Any] = {}
        self._file = None
        self._dllogger = None
        self._tensorboard = None
        self._start = datetime.now()
        if not enabled:
            return
        if log_file:
            os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        dllogger = _import_dllogger()
        if dllogger is not None:
            backends = []
            if log_file:
                backends.append(dllogger.JSONStreamBackend(dllogger.Verbosity.DEFAULT, log_file,
                                                           append=True))
            if stdout:
                backends.append(dllogger.StdOutBackend(dllogger.Verbosity.VERBOSE))
            self._dllogger = dllogger.Logger(backends)
        elif log_file:
            # Append: a resumed run keeps writing the same file.
            self._file = open(log_file, "a", encoding="utf-8")
        if tensorboard_dir:
            self._tensorboard = _summary_writer(tensorboard_dir)

    # -- DLLogger lines -------------------------------------------------------------------------

    def _write(self, record: dict) -> None:
        if self._file is not None:
            self._file.write("DLLL " + json.dumps(record) + "\n")
            self._file.flush()  # a crash must not lose the lines before it

    def log(self, step: Any, data: dict) -> None:
        """One event: ``step`` a string ("PARAMETER"), an int, or a tuple/list such as (epoch, i)."""
        if not self.enabled:
            return
        step = _step(step)
        data = {str(key): _plain(value) for key, value in data.items()}
        if self._dllogger is not None:
            self._dllogger.log(step, data, verbosity=0)
            self._dllogger.flush()
            return
        now = datetime.now()
        self._write({"timestamp": str(now.timestamp()), "datetime": str(now),
                     "elapsedtime": str((now - self._start).total_seconds()), "type": "LOG",
                     "step": step, "data": data})
        if self.stdout:
            metrics = " ".join(f"{key} : {value} {self._unit_text(key)}"
                               for key, value in data.items())
            print(f"DLL {now} - {step} {metrics}", file=sys.stdout, flush=True)

    def _unit_text(self, key: str) -> str:
        unit = self._units.get(key)
        return "" if unit is None else str(unit)

    def metadata(self, key: str, unit: str | None) -> None:
        """Declare the unit of a metric (a METADATA line; shown after its values on stdout)."""
        if not self.enabled:
            return
        self._units[key] = unit
        if self._dllogger is not None:
            self._dllogger.metadata(key, {"unit": unit})
            self._dllogger.flush()
            return
        now = datetime.now()
        self._write({"timestamp": str(now.timestamp()),
                     "elapsedtime": str((now - self._start).total_seconds()),
                     "datetime": str(now), "type": "METADATA", "metric": key,
                     "metadata": {"unit": unit}})

    def parameters(self, params: dict | argparse.Namespace) -> None:
        """The run configuration: one ``PARAMETER`` line per entry, as NVIDIA's train.py does."""
        if isinstance(params, argparse.Namespace):
            params = vars(params)
        for key, value in params.items():
            self.log("PARAMETER", {key: value})

    # -- TensorBoard ----------------------------------------------------------------------------

    def scalars(self, global_step: int, data: dict) -> None:
        if not self.enabled or self._tensorboard is None:
            return
        for key, value in data.items():
            value = _plain(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._tensorboard.add_scalar(key, value, global_step)

    def image(self, tag: str, image: Any, global_step: int) -> None:
        """An ``[H, W, C]`` uint8 array/tensor (or ``[H, W]``), or a matplotlib figure."""
        if not self.enabled or self._tensorboard is None:
            return
        if hasattr(image, "savefig"):
            self._tensorboard.add_figure(tag, image, global_step, close=True)
            return
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().numpy()
        array = np.asarray(image)
        self._tensorboard.add_image(tag, array, global_step,
                                    dataformats="HW" if array.ndim == 2 else "HWC")

    def audio(self, tag: str, audio: Any, sampling_rate: int, global_step: int) -> None:
        if not self.enabled or self._tensorboard is None:
            return
        if not isinstance(audio, torch.Tensor):
            audio = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        audio = audio.detach().float().cpu().reshape(-1).clamp(-1, 1)
        self._tensorboard.add_audio(tag, audio, global_step, sample_rate=int(sampling_rate))

    # -- lifetime -------------------------------------------------------------------------------

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        if self._dllogger is not None:
            self._dllogger.flush()
        if self._tensorboard is not None:
            self._tensorboard.flush()

    def close(self) -> None:
        """Flush and close the file and TensorBoard; later calls only print to stdout."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._dllogger is not None:
            for backend in self._dllogger.backends:
                if getattr(backend, "file", None) is not None:
                    backend.file.close()
            self._dllogger = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
