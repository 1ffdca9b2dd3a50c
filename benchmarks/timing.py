"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import time
from typing import Callable

import torch


def best_time(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Best wall time of ``repeat`` calls of ``fn``, in seconds (CUDA work is synchronised)."""
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best
