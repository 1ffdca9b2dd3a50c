"""Per-object statistics of a sequence of per-frame scores: mean, recall and decay.

As davis2017-evaluation's ``db_statistics``: mean = nanmean(x), recall = mean(x > 0.5),
decay = nanmean(first bin) - nanmean(last bin) over four bins whose bounds come from
``round(linspace(1, n, 5) + 1e-10) - 1``; bin i is ``x[b[i] : b[i + 1] + 1]``, so
neighbouring bins share their boundary frame.

Difference on purpose: davis2017-evaluation casts the bounds to uint8, so for sequences of
more than 256 frames they wrap around and its decay is wrong or NaN (under NumPy 2 already
at 256 frames, where ``bound + 1`` overflows to 0). Here they are int64: identical results
for up to 255 frames, correct bins beyond.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

N_BINS = 4


class Statistics(NamedTuple):
    mean: float
    recall: float
    decay: float


def decay_bin_bounds(n_frames: int) -> np.ndarray:
    """Bin bounds (N_BINS + 1,) int64 for a sequence of ``n_frames`` >= 1 scores."""
    if n_frames < 1:
        raise ValueError(f"decay needs at least one frame, got {n_frames}")
    bounds = np.round(np.linspace(1, n_frames, N_BINS + 1) + 1e-10) - 1
    return bounds.astype(np.int64)


def decay_bins(values: np.ndarray) -> list[np.ndarray]:
    """The N_BINS slices of ``values`` (n,) that decay compares (they share boundary frames)."""
    b = decay_bin_bounds(len(values))
    return [values[b[i] : b[i + 1] + 1] for i in range(N_BINS)]


def sequence_statistics(values: np.ndarray) -> Statistics:
    """Mean, recall (share > 0.5) and decay of one object's per-frame scores (n,), n >= 1."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"expected a non-empty 1-d score sequence, got shape {values.shape}")
    bins = decay_bins(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return Statistics(
            mean=float(np.nanmean(values)),
            recall=float(np.mean(values > 0.5)),
            decay=float(np.nanmean(bins[0]) - np.nanmean(bins[-1])),
        )
