"""DLLogger-format log: JSON lines, stdout lines, append mode, disabled ranks."""

import json
import sys
import types
from datetime import datetime

import numpy as np
import pytest
import torch

from common.logger import Logger


def records(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    assert all(line.startswith("DLLL ") for line in lines)
    return [json.loads(line[len("DLLL "):]) for line in lines]


def test_every_line_is_dllogger_json(tmp_path, capsys):
    path = str(tmp_path / "nvlog.json")
    logger = Logger(path)
    logger.metadata("val_loss", None)
    logger.metadata("run_time", "s")
    logger.parameters({"learning_rate": 1e-3, "anneal_steps": ["500", "1000"], "amp": True})
    logger.log((0, 5), {"train_loss": torch.tensor(0.25), "train_items_per_sec": np.float32(2.0)})
    logger.log([3], {"val_loss": np.float64(1.5)})
    logger.log((), {"run_time": 10.5})
    logger.log(0, {"latency": 0.1, "mel": torch.ones(2)})
    logger.close()

    recs = records(path)
    assert len(recs) == 2 + 3 + 4
    meta = recs[0]
    assert list(meta) == ["timestamp", "elapsedtime", "datetime", "type", "metric", "metadata"]
    assert (meta["type"], meta["metric"], meta["metadata"]) == ("METADATA", "val_loss", {"unit": None})
    assert recs[1]["metadata"] == {"unit": "s"}
    logs = recs[2:]
    for rec in logs:
        assert list(rec) == ["timestamp", "datetime", "elapsedtime", "type", "step", "data"]
        assert rec["type"] == "LOG"
        float(rec["timestamp"]), float(rec["elapsedtime"])
        assert isinstance(rec["timestamp"], str) and isinstance(rec["elapsedtime"], str)
    assert [r["step"] for r in logs] == ["PARAMETER"] * 3 + [[0, 5], [3], [], 0]
    assert logs[0]["data"] == {"learning_rate": 1e-3}
    assert logs[1]["data"] == {"anneal_steps": ["500", "1000"]}
    assert logs[3]["data"] == {"train_loss": 0.25, "train_items_per_sec": 2.0}
    assert logs[4]["data"] == {"val_loss": 1.5}
    assert logs[6]["data"] == {"latency": 0.1, "mel": [1.0, 1.0]}
    assert float(logs[-1]["elapsedtime"]) >= float(logs[0]["elapsedtime"]) >= 0
    for rec in recs:  # dllogger's str(datetime.now()): "YYYY-MM-DD HH:MM:SS.ffffff", local time
        stamp = datetime.strptime(rec["datetime"], "%Y-%m-%d %H:%M:%S.%f")
        assert abs(stamp.timestamp() - float(rec["timestamp"])) < 1e-3

    out = capsys.readouterr().out.splitlines()
    assert out[3].startswith("DLL ") and out[3].endswith(" - (0, 5) train_loss : 0.25  "
                                                          "train_items_per_sec : 2.0 ")
    assert out[4].endswith(" - (3,) val_loss : 1.5 ")
    assert out[5].endswith(" - () run_time : 10.5 s")
    assert out[0].endswith(" - PARAMETER learning_rate : 0.001 ")


def test_file_is_appended_and_flushed_per_line(tmp_path):
    path = str(tmp_path / "log" / "nvlog.json")  # the folder is created
    first = Logger(path, stdout=False)
    first.log((0,), {"train_loss": 1.0})
    assert len(records(path)) == 1  # on disk before close: a crash loses nothing
    first.close()
    second = Logger(path, stdout=False)
    second.log((1,), {"train_loss": 0.5})
    second.close()
    assert [r["data"]["train_loss"] for r in records(path)] == [1.0, 0.5]


def test_disabled_logger_writes_nothing(tmp_path, capsys):
    path = tmp_path / "nvlog.json"
    logger = Logger(str(path), enabled=False, tensorboard_dir=str(tmp_path / "tb"))
    logger.metadata("x", "s")
    logger.parameters({"a": 1})
    logger.log((0, 1), {"x": 1.0})
    logger.scalars(1, {"x": 1.0})
    logger.image("img", np.zeros((4, 4, 3), np.uint8), 1)
    logger.audio("wav", np.zeros(100), 22050, 1)
    logger.flush()
    logger.close()
    assert not path.exists() and not (tmp_path / "tb").exists()
    assert capsys.readouterr().out == ""


def test_no_file_no_stdout(capsys):
    with Logger(None, stdout=False) as logger:
        logger.log(0, {"x": 1})
    assert capsys.readouterr().out == ""


def test_parameters_from_namespace(tmp_path):
    import argparse
    path = str(tmp_path / "p.json")
    with Logger(path, stdout=False) as logger:
        logger.parameters(argparse.Namespace(output="out", seed=None, cleaners=("a", "b"),
                                             obj=object))
    data = [r["data"] for r in records(path)]
    assert data[:3] == [{"output": "out"}, {"seed": None}, {"cleaners": ["a", "b"]}]
    assert isinstance(data[3]["obj"], str)


def test_tensorboard_events_written(tmp_path):
    pytest.importorskip("tensorboard")
    tb = tmp_path / "tb"
    with Logger(None, stdout=False, tensorboard_dir=str(tb)) as logger:
        logger.scalars(3, {"train_loss": torch.tensor(0.5), "lr": 1e-3, "note": "skip"})
        logger.image("alignment", np.zeros((8, 6, 3), np.uint8), 3)
        logger.audio("audio", torch.zeros(1, 2205), 22050, 3)
    events = list(tb.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 100
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tb))
    acc.Reload()
    assert [e.value for e in acc.Scalars("train_loss")] == [0.5]
    assert acc.Tags()["images"] == ["alignment"] and acc.Tags()["audio"] == ["audio"]


def test_uses_dllogger_when_installed(tmp_path, monkeypatch):
    """With NVIDIA's dllogger importable, its backends do the writing (here a recording stand-in)."""
    calls = []

    class Backend:
        def __init__(self, verbosity, filename=None, append=False):
            calls.append(("backend", verbosity, filename, append))

    class FakeLogger:
        def __init__(self, backends):
            self.backends = backends

        def log(self, step, data, verbosity=1):
            calls.append(("log", step, data, verbosity))

        def metadata(self, metric, metadata):
            calls.append(("metadata", metric, metadata))

        def flush(self):
            calls.append(("flush",))

    fake = types.SimpleNamespace(Logger=FakeLogger, JSONStreamBackend=Backend,
                                 StdOutBackend=Backend,
                                 Verbosity=types.SimpleNamespace(DEFAULT=0, VERBOSE=1))
    monkeypatch.setitem(sys.modules, "dllogger", fake)
    path = str(tmp_path / "nvlog.json")
    logger = Logger(path)
    logger.metadata("run_time", "s")
    logger.log([0, 1], {"loss": torch.tensor(2.0)})
    assert ("backend", 0, path, True) in calls  # JSON backend appends
    assert ("metadata", "run_time", {"unit": "s"}) in calls
    assert ("log", (0, 1), {"loss": 2.0}, 0) in calls  # DEFAULT verbosity reaches the file


def test_dllogger_that_cannot_append_is_not_used(tmp_path, monkeypatch):
    class OldBackend:  # dllogger v0.1.0 truncated the file on open
        def __init__(self, verbosity, filename):
            raise AssertionError("must not be used")

    fake = types.SimpleNamespace(Logger=object, JSONStreamBackend=OldBackend,
                                 StdOutBackend=OldBackend,
                                 Verbosity=types.SimpleNamespace(DEFAULT=0, VERBOSE=1))
    monkeypatch.setitem(sys.modules, "dllogger", fake)
    path = str(tmp_path / "nvlog.json")
    with Logger(path, stdout=False) as logger:
        logger.log(0, {"x": 1})
    assert records(path)[0]["data"] == {"x": 1}
