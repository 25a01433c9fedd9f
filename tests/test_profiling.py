"""train.py --profile-steps: the window it records, what it writes, and that training is unchanged."""
from __future__ import annotations

import gzip
import json

import pytest
import torch

import train
from common.profiling import StepProfiler
from training_helpers import read_log, tacotron2_args, tiny_filelist, values


def run_steps(profiler: StepProfiler, n_steps: int) -> None:
    weights = torch.randn(64, 64)
    for _ in range(n_steps):
        profiler.begin_step()
        (weights @ weights).sum().item()
        profiler.end_step()


def test_records_the_steps_after_skip_and_reports_once(tmp_path):
    reports = []
    profiler = StepProfiler(str(tmp_path), 0, torch.device("cpu"), steps=2, skip=3,
                            on_summary=lambda summary, lines: reports.append((summary, lines)))
    run_steps(profiler, 2)
    assert profiler.profiler is None and not (tmp_path / "profile").exists()  # steps 0, 1: untouched
    run_steps(profiler, 5)  # step 2 is the profiler's warm-up, 3 and 4 are recorded, then it lets go
    assert profiler.done and profiler.profiler is None
    profiler.close()
    assert len(reports) == 1
    summary, lines = reports[0]
    assert summary["profiled_steps"] == 2 and summary["profile_step_time"] > 0
    assert lines[0] == "profiled training steps 3-4 (rank 0, cpu)"
    text = (tmp_path / "profile" / "summary_rank0.txt").read_text()
    assert "aten::mm" in text and "(the 2 steps together)" in text
    traces = list((tmp_path / "profile").glob("*.pt.trace.json.gz"))
    assert len(traces) == 1
    events = json.loads(gzip.decompress(traces[0].read_bytes()))["traceEvents"]
    assert sum(event.get("name") == "aten::mm" for event in events) == 2  # one matmul a recorded step


def test_an_epoch_end_restarts_a_window_that_has_not_recorded_and_cuts_one_that_has(tmp_path):
    reports = []
    profiler = StepProfiler(str(tmp_path), 0, torch.device("cpu"), steps=3, skip=2,
                            on_summary=lambda summary, lines: reports.append(lines[0]))
    run_steps(profiler, 2)  # step 1 warmed the profiler up, step 2 would have been recorded
    profiler.epoch_end()
    assert profiler.profiler is None and not profiler.done and not reports
    run_steps(profiler, 3)  # step 2: warm-up again; 3 and 4 recorded
    profiler.epoch_end()
    assert reports == ["profiled training steps 3-4 (rank 0, cpu): 2 of the 3 asked, the window reached "
                       "an epoch's end"]
    run_steps(profiler, 5)
    profiler.close()
    assert len(reports) == 1


def test_one_time_work_in_the_window_is_reported_and_work_before_it_is_not(tmp_path):
    from common.timing import note_one_time_work
    reports = []
    profiler = StepProfiler(str(tmp_path), 0, torch.device("cpu"), steps=2, skip=2,
                            on_summary=lambda summary, lines: reports.append((summary, lines)))
    note_one_time_work()  # before the window: not its business
    run_steps(profiler, 2)  # step 1 warms the profiler up
    profiler.begin_step()
    note_one_time_work()  # in recorded step 2
    profiler.end_step()
    run_steps(profiler, 1)
    summary, lines = reports[0]
    assert summary["profile_one_time_work"] == 1
    assert any(line.startswith("note: 1 one-time task(s)") for line in lines)
    clean = StepProfiler(str(tmp_path / "clean"), 0, torch.device("cpu"), steps=1, skip=0,
                         on_summary=lambda summary, lines: reports.append((summary, lines)))
    run_steps(clean, 1)
    assert "profile_one_time_work" not in reports[1][0]


def test_a_run_that_ends_before_the_window_writes_nothing(tmp_path):
    profiler = StepProfiler(str(tmp_path), 0, torch.device("cpu"), steps=2, skip=10)
    run_steps(profiler, 4)
    profiler.epoch_end()
    profiler.close()
    assert not (tmp_path / "profile").exists() and profiler.summary == {}


def test_train_profiles_a_window_cut_at_the_epoch_end_and_trains_the_same(tmp_path, capsys):
    """3 steps an epoch: steps 1-5 asked, 1-2 recorded (validation is never inside the window)."""
    train_list = tiny_filelist(tmp_path, 6)
    plain, profiled = tmp_path / "plain", tmp_path / "profiled"
    assert train.main(tacotron2_args(plain, train_list, 2, "--bench-class", "perf-train")) == 0
    assert train.main(tacotron2_args(profiled, train_list, 2, "--bench-class", "perf-train",
                                     "--profile-steps", "5", "--profile-skip", "1")) == 0
    assert "profiled training steps 1-2 (rank 0, cpu): 2 of the 5 asked" in capsys.readouterr().out
    summary = (profiled / "profile" / "summary_rank0.txt").read_text()
    assert "aten::" in summary
    log = read_log(profiled / "nvlog.json")
    assert values(log, "profiled_steps") == [((), 2.0)] and values(log, "profile_step_time")[0][1] > 0
    plain_log = read_log(plain / "nvlog.json")
    for key in ("train_iter_loss", "val_loss"):
        assert values(log, key) == values(plain_log, key), key


def test_negative_profile_counts_are_refused(tmp_path, capsys):
    train_list = tiny_filelist(tmp_path, 2)
    assert train.main(tacotron2_args(tmp_path / "out", train_list, 1, "--profile-steps", "-1")) != 0
    assert "--profile-steps -1" in capsys.readouterr().err


def test_gpu_summary_counts_kernel_time_against_the_wall(tmp_path):
    """The CUDA branch's arithmetic on made-up events (the CPU suite has no GPU to record): overlapping
    kernels count once, and the GPU-side spans of record_function ranges not at all."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def event(device_type, start, end, annotation=False):
        return SimpleNamespace(device_type=device_type, is_user_annotation=annotation,
                               time_range=SimpleNamespace(start=start, end=end))

    kernels = [event(DeviceType.CUDA, 0, 1000), event(DeviceType.CUDA, 500, 1500),  # two streams
               event(DeviceType.CUDA, 3000, 4000)]
    recorded = SimpleNamespace(
        events=lambda: [event(DeviceType.CPU, 0, 9000), event(DeviceType.CUDA, 0, 5000, annotation=True)] + kernels,
        key_averages=lambda: SimpleNamespace(table=lambda sort_by, row_limit: f"sorted by {sort_by}"),
        export_chrome_trace=lambda path, **_: open(path, "w").close())
    profiler = StepProfiler(str(tmp_path), 1, torch.device("cuda", 0), steps=2, skip=0)
    profiler._step_walls = [0.0025, 0.0025]
    profiler._report(recorded)
    assert profiler.summary == pytest.approx({"profiled_steps": 2.0, "profile_step_time": 0.0025,
                                              "profile_device_time": 0.00125, "profile_device_busy": 0.5,
                                              "profile_kernels_per_step": 1.5})
    text = (tmp_path / "profile" / "summary_rank1.txt").read_text()
    assert "device busy: 50.0 %" in text and "sorted by self_device_time_total" in text
