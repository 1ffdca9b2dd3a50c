"""Mean, recall and decay on hand-worked sequences, and the decay bins of long videos."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dmm.metrics.statistics import decay_bin_bounds, decay_bins, sequence_statistics


def davis_statistics_uint8(x: np.ndarray) -> tuple[float, float, float]:
    """Re-derivation of davis2017-evaluation's db_statistics, uint8 bin bounds included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ids = (np.round(np.linspace(1, len(x), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [x[ids[i] : ids[i + 1] + 1] for i in range(4)]
        return float(np.nanmean(x)), float(np.nanmean(x > 0.5)), float(np.nanmean(bins[0]) - np.nanmean(bins[3]))


def test_hand_worked_ten_frames():
    x = np.array([1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0, 0, 0.2])
    # linspace(1, 10, 5) = 1, 3.25, 5.5, 7.75, 10 -> rounded 1, 3, 6, 8, 10 -> minus 1.
    assert decay_bin_bounds(10).tolist() == [0, 2, 5, 7, 9]
    bins = decay_bins(x)
    assert [b.tolist() for b in bins] == [[1, 1, 1], [1, 0.5, 0.5, 0.5], [0.5, 0.5, 0], [0, 0, 0.2]]
    stats = sequence_statistics(x)
    assert stats.mean == pytest.approx(5.2 / 10)
    assert stats.recall == pytest.approx(0.3)  # 0.5 is not above 0.5
    assert stats.decay == pytest.approx(1 - 0.2 / 3)


@pytest.mark.parametrize(
    "n, bounds",
    [(1, [0, 0, 0, 0, 0]), (2, [0, 0, 1, 1, 1]), (3, [0, 1, 1, 2, 2]), (5, [0, 1, 2, 3, 4]), (7, [0, 2, 3, 5, 6])],
)
def test_short_sequences_bins(n, bounds):
    # n = 3: linspace 1, 1.5, 2, 2.5, 3 -> halves round up (the +1e-10) -> 1, 2, 2, 3, 3.
    # n = 7: 1, 2.5, 4, 5.5, 7 -> 1, 3, 4, 6, 7.
    assert decay_bin_bounds(n).tolist() == bounds


def test_two_frames_decay_compares_the_two_frames():
    stats = sequence_statistics(np.array([1.0, 0.0]))
    assert (stats.mean, stats.recall, stats.decay) == (0.5, 0.5, 1.0)


def test_agrees_with_davis_formula_up_to_255_frames():
    rng = np.random.default_rng(0)
    for n in list(range(1, 40)) + [100, 254, 255]:
        x = rng.random(n)
        assert sequence_statistics(x) == pytest.approx(davis_statistics_uint8(x), abs=1e-12), n


def test_long_video_bins_do_not_wrap():
    # 256 frames: the last bound is 255; uint8 255 + 1 overflows to 0 under NumPy 2.
    assert decay_bin_bounds(256).tolist() == [0, 64, 128, 191, 255]
    assert len(decay_bins(np.zeros(256))[3]) == 65
    # 300 frames: bounds 0, 75, 150, 224, 299. uint8 would turn 299 into 43 (empty last bin).
    assert decay_bin_bounds(300).tolist() == [0, 75, 150, 224, 299]
    x = np.r_[np.ones(150), np.zeros(150)]
    assert sequence_statistics(x).decay == 1.0
    assert np.isnan(davis_statistics_uint8(x)[2])
    # 400 frames: bounds 0, 100, 200, 299, 399; with uint8, bin 3 would be x[43:144].
    ramp = np.linspace(1, 0, 400)
    expected = ramp[0:101].mean() - ramp[299:400].mean()
    assert sequence_statistics(ramp).decay == pytest.approx(expected, abs=1e-12)
    assert davis_statistics_uint8(ramp)[2] != pytest.approx(expected, abs=1e-3)


def test_rejects_empty_sequence():
    with pytest.raises(ValueError):
        sequence_statistics(np.array([]))
