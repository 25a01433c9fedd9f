"""Wall-clock timing that waits for the GPU, and latency statistics for benchmarks."""

from __future__ import annotations

import math
import time
from typing import Sequence

import torch

PERCENTILES = (50, 90, 95, 99)


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work, so a timer measures the work and not just its launch."""
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device | str) -> str:
    """What a measurement ran on, for logs and tables: the GPU's name, or "CPU"."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


_one_time_work = 0


def note_one_time_work() -> None:
    """Called by work a run does once inside a training step (a CUDA graph capture of a new shape
    bucket), so that train.py reports that step's time apart from the throughput."""
    global _one_time_work
    _one_time_work += 1


def one_time_work_count() -> int:
    """How often :func:`note_one_time_work` was called in this process."""
    return _one_time_work


class DeviceTimer:
    """``with DeviceTimer(device) as t: ...`` then ``t.elapsed`` (seconds, ``perf_counter``).

    CUDA is synchronised on entry and exit; with ``device=None`` only when CUDA is in use.
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = device
        self.start = 0.0
        self.elapsed = 0.0

    def __enter__(self) -> "DeviceTimer":
        synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.elapsed = time.perf_counter() - self.start


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of the values <= it.

    Equals the reference's ``max(sorted(values)[:int(n * p / 100)])`` whenever ``n * p / 100`` is
    a whole number; otherwise the reference rounds the rank down and under-reports.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile p must be in [0, 100], got {p}")
    ordered = sorted(values)
    # round() first so that 0.9 * 10 = 9.000000000000002 does not become rank 10.
    rank = math.ceil(round(p / 100 * len(ordered), 9))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def latency_summary(latencies: Sequence[float], prefix: str = "latency") -> dict[str, float]:
    """``{prefix}_avg``, ``_std`` (population, as numpy's default), ``_p50/_p90/_p95/_p99``, ``_max``."""
    if not latencies:
        raise ValueError("latency_summary of an empty sequence")
    n = len(latencies)
    mean = sum(latencies) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in latencies) / n)
    summary = {f"{prefix}_avg": mean, f"{prefix}_std": std}
    for p in PERCENTILES:
        summary[f"{prefix}_p{p}"] = percentile(latencies, p)
    summary[f"{prefix}_max"] = max(latencies)
    return summary
