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


def _device_activity(device: torch.device):
    return {"cuda": torch.profiler.ProfilerActivity.CUDA}.get(device.type)


class StepProfiler:
    """Records training steps ``skip`` .. ``skip + steps - 1`` of the run (counted from its start).

    Call :meth:`begin_step` when a step's batch has arrived and :meth:`end_step` when the step is
    over (after its device sync); :meth:`epoch_end` before validation and :meth:`close` at the end
    of the run report a window cut short, so validation is never in it. The profiler adds host time
    to every operation: read throughput from an unprofiled run, and shares and counts from this."""

    def __init__(self, output_dir: str, rank: int, device: torch.device, steps: int, skip: int,
                 row_limit: int = 25, on_summary=None):
        if steps < 1 or skip < 0:
            raise ValueError(f"profile window: steps {steps} must be >= 1 and skip {skip} >= 0")
        self.folder = os.path.join(output_dir, "profile")
        self.rank, self.device, self.steps, self.skip, self.row_limit = rank, device, steps, skip, row_limit
        self.on_summary = on_summary
        self.summary: dict[str, float] = {}
        self.done = False
        self.profiler = None
        self._steps_seen = 0
        self._step_begin = 0.0
        self._step_walls: list[float] = []

    def begin_step(self) -> None:
        if self.done:
            return
        if self.profiler is None and self._steps_seen == self.skip:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if _device_activity(self.device) is not None:
                activities.append(_device_activity(self.device))
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.start()
        self._step_begin = time.perf_counter()

    def end_step(self) -> None:
        if self.done:
            return
        self._steps_seen += 1
        if self.profiler is not None:
            self._step_walls.append(time.perf_counter() - self._step_begin)
            if len(self._step_walls) == self.steps:
                self._finish()

    def epoch_end(self) -> None:
        """Before validation: a window already recording ends here, so no validation time is counted."""
        if self.profiler is not None and not self.done:
            self._finish()

    def close(self) -> None:
        """The run's end: report a window that was still open; nothing if none had begun."""
        self.epoch_end()
        self.done = True

    def _finish(self) -> None:
        self.done = True
        self.profiler.stop()
        if not self._step_walls:  # stopped inside its first step: nothing whole to report
            return
        os.makedirs(self.folder, exist_ok=True)
        torch.profiler.tensorboard_trace_handler(self.folder, worker_name=f"rank{self.rank}",
                                                 use_gzip=True)(self.profiler)
        self._report(self.profiler)

    def _report(self, profiler) -> None:
        steps = len(self._step_walls)
        wall = sum(self._step_walls) / steps
        summary = {"profiled_steps": float(steps), "profile_step_time": wall}
        cut_short = "" if steps == self.steps else (
            f": {steps} of the {self.steps} asked, the window reached an epoch's end")
        lines = [f"profiled training steps {self.skip}-{self.skip + steps - 1} (rank {self.rank}, "
                 f"{self.device.type}){cut_short}",
                 f"wall time per step: {wall * 1e3:.2f} ms (batch on the host to the step's end, "
                 "under the profiler)"]
        if self.device.type == "cuda":
            kernels = [e for e in profiler.events() if e.device_type == DeviceType.CUDA]
            device_time = sum(e.time_range.elapsed_us() for e in kernels) / 1e6 / steps  # s per step
            busy = device_time / max(wall, 1e-12)
            summary.update(profile_device_time=device_time, profile_device_busy=busy,
                           profile_kernels_per_step=len(kernels) / steps)
            lines += [f"device time per step (kernels, copies, memsets): {device_time * 1e3:.2f} ms",
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
