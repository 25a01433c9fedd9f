"""train.py --profile-steps: where a training step's time goes, from the real loop on real batches.

The speed work needs two facts a throughput number hides: whether the GPU is busy or waiting for
the host (Tacotron 2's decoder loop launches a few kernels per frame, forward and backward), and
which operations the time goes to (WaveGlow's convolutions, its gates, the optimizer). This wraps
torch.profiler around a window of training steps after the first ones (cuDNN's algorithm search,
graph captures and the allocator's warm-up would otherwise dominate) and, when it closes, writes
per rank:

    <output>/profile/summary_rank<r>.txt    wall, device time and kernels per step; top operations
    <output>/profile/*.pt.trace.json.gz     the timeline (TensorBoard's profiler plugin, Perfetto)

The summary's headline numbers also go to the JSON log (profiled_steps, profile_step_time,
profile_device_busy, ...).
"""
from __future__ import annotations

import os
import time

import torch
from torch.autograd import DeviceType

from common.timing import one_time_work_count


def device_kernels(events) -> list:
    """The GPU work among profiler events: kernels, copies, memsets, not the spans the profiler
    mirrors onto the GPU timeline for record_function ranges (optimizer steps, DDP)."""
    return [e for e in events if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]


def busy_seconds(kernels) -> float:
    """Time the GPU ran anything: the union of the kernels' intervals (streams may overlap)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted((e.time_range.start, e.time_range.end) for e in kernels):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total / 1e6  # us -> s


class StepProfiler:
    """Records ``steps`` training steps after the first ``skip`` of the run (counted from its start).

    Call :meth:`begin_step` when a step's batch has arrived and :meth:`end_step` when the step is
    over (after its device sync); :meth:`epoch_end` before validation and :meth:`close` at the end
    of the run, so validation is never in the window: a window that has recorded steps closes there
    and reports them; one that has not starts again in the next epoch. The step before the window
    runs under the profiler unrecorded (its warm-up, so start-up costs stay out of the numbers).
    The profiler adds host time to every operation: read throughput from an unprofiled run, and
    shares and counts from this."""

    def __init__(self, output_dir: str, rank: int, device: torch.device, steps: int, skip: int,
                 row_limit: int = 25, on_summary=None):
        if steps < 1 or skip < 0:
            raise ValueError(f"profile window: steps {steps} must be >= 1 and skip {skip} >= 0")
        self.folder = os.path.join(output_dir, "profile")
        self.rank, self.device, self.steps, self.skip, self.row_limit = rank, device, steps, skip, row_limit
        self.on_summary = on_summary
        self.summary: dict[str, float] = {}
        self.phase = "waiting"  # -> warmup -> recording -> done
        self.profiler = None
        self.end_reason = ""
        self._steps_seen = 0
        self._first_recorded = 0
        self._step_begin = 0.0
        self._step_walls: list[float] = []
        self._one_time_work_before = one_time_work_count()

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def begin_step(self) -> None:
        if self.phase == "waiting" and self._steps_seen >= self.skip - 1:
            warmup = 1 if self.skip else 0
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(
                activities=activities, on_trace_ready=self._report,
                schedule=torch.profiler.schedule(wait=0, warmup=warmup, active=self.steps, repeat=1))
            self.profiler.start()
            self.phase = "warmup" if warmup else "recording"
            self._first_recorded = self._steps_seen + warmup
            self._one_time_work_before = one_time_work_count()
        self._step_begin = time.perf_counter()

    def end_step(self) -> None:
        self._steps_seen += 1
        if self.phase == "warmup":
            self.profiler.step()
            self.phase = "recording"
            self._one_time_work_before = one_time_work_count()
        elif self.phase == "recording":
            self._step_walls.append(time.perf_counter() - self._step_begin)
            self.profiler.step()  # after the window's last step this writes the report (on_trace_ready)
            if len(self._step_walls) == self.steps:
                self._release()

    def epoch_end(self) -> None:
        """Before validation: a recording window reports here; a warm-up starts again next epoch."""
        self._stop("an epoch's end")

    def close(self) -> None:
        """The run's end (or a stop signal): report a window that was still recording."""
        self._stop("the run's end")
        self.phase = "done"

    def _stop(self, reason: str) -> None:
        if self.phase == "recording" and self._step_walls:
            self.end_reason = reason
            self.profiler.stop()  # reports what was recorded (on_trace_ready)
            self._release()
        elif self.phase in ("warmup", "recording"):  # nothing recorded yet: start again next epoch
            self.profiler.on_trace_ready = None
            self.profiler.stop()
            self.profiler, self.phase = None, "waiting"

    def _release(self) -> None:
        # the profiler holds every recorded event (a Tacotron 2 step is tens of thousands): let go
        self.profiler, self.phase = None, "done"

    def _report(self, profiler) -> None:
        steps = len(self._step_walls)
        os.makedirs(self.folder, exist_ok=True)
        torch.profiler.tensorboard_trace_handler(self.folder, worker_name=f"rank{self.rank}", use_gzip=True)(profiler)
        wall = sum(self._step_walls) / steps
        summary = {"profiled_steps": float(steps), "profile_step_time": wall}
        first = self._first_recorded
        cut_short = "" if steps == self.steps else (
            f": {steps} of the {self.steps} asked, the window reached {self.end_reason}")
        lines = [f"profiled training steps {first}-{first + steps - 1} (rank {self.rank}, "
                 f"{self.device.type}){cut_short}",
                 f"wall time per step: {wall * 1e3:.2f} ms (batch on the host to the step's end, "
                 "under the profiler)"]
        one_time_work = one_time_work_count() - self._one_time_work_before
        if one_time_work:
            summary["profile_one_time_work"] = float(one_time_work)
            lines.append(f"note: {one_time_work} one-time task(s) (CUDA graph captures) ran on this rank in the "
                         "window and are in its numbers (other ranks' captures are not counted here); a later "
                         "window (--profile-skip) leaves them out")
        if self.device.type == "cuda":
            kernels = device_kernels(profiler.events())
            device_time = busy_seconds(kernels) / steps
            busy = device_time / max(wall, 1e-12)
            summary.update(profile_device_time=device_time, profile_device_busy=busy,
                           profile_kernels_per_step=len(kernels) / steps)
            lines += [f"device busy per step (kernels, copies, memsets; overlaps once): {device_time * 1e3:.2f} ms",
                      f"device busy: {100 * busy:.1f} % of the wall time (low: the host sets the pace)",
                      f"kernels per step: {len(kernels) / steps:.0f}"]
            sort_by = "self_device_time_total"
        else:
            sort_by = "self_cpu_time_total"
        table = profiler.key_averages().table(sort_by=sort_by, row_limit=self.row_limit)
        path = os.path.join(self.folder, f"summary_rank{self.rank}.txt")
        partial = path + ".partial"
        with open(partial, "w") as f:
            f.write("\n".join(lines) + f"\n\ntop operations by {sort_by} (the {steps} steps together):\n")
            f.write(table + "\n")
        os.replace(partial, path)
        self.summary = summary
        if self.on_summary is not None:
            self.on_summary(summary, lines + [f"table and timeline in {self.folder}"])
