"""J and F on hand-worked cases, and F against a slow re-derivation of the DAVIS rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dmm.metrics.measures import boundary_map, dilation_radius, disk, f_measure, frame_scores, jaccard

from .metric_masks import rect


def reference_boundary(seg: np.ndarray) -> np.ndarray:
    """Pixel-by-pixel seg2bmap: differs from E, S or SE; last row E only; last column S only;
    bottom-right corner never."""
    h, w = seg.shape
    out = np.zeros((h, w), dtype=bool)
    for r in range(h):
        for c in range(w):
            east = seg[r, c + 1] if c + 1 < w else False
            south = seg[r + 1, c] if r + 1 < h else False
            south_east = seg[r + 1, c + 1] if r + 1 < h and c + 1 < w else False
            if r == h - 1 and c == w - 1:
                out[r, c] = False
            elif r == h - 1:
                out[r, c] = seg[r, c] != east
            elif c == w - 1:
                out[r, c] = seg[r, c] != south
            else:
                out[r, c] = seg[r, c] != east or seg[r, c] != south or seg[r, c] != south_east
    return out


def reference_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> float:
    """F by brute force: a boundary pixel matches when the other boundary has a pixel within
    Euclidean distance ceil(bound_th * diagonal)."""
    radius = math.ceil(bound_th * math.hypot(*gt.shape))
    bg, bp = reference_boundary(gt), reference_boundary(pred)
    pg, pp = np.argwhere(bg), np.argwhere(bp)
    if len(pg) == 0 and len(pp) == 0:
        return 1.0
    if len(pg) == 0 or len(pp) == 0:
        return 0.0
    d2 = ((pp[:, None, :] - pg[None, :, :]) ** 2).sum(-1)
    precision = float(np.mean(d2.min(axis=1) <= radius**2))
    recall = float(np.mean(d2.min(axis=0) <= radius**2))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_jaccard_hand_worked():
    gt = rect((10, 10), 2, 2, 3, 3)  # 9 pixels
    assert jaccard(gt, rect((10, 10), 2, 4, 3, 3)) == pytest.approx(3 / 15)
    assert jaccard(gt, rect((10, 10), 2, 2, 3, 2)) == pytest.approx(6 / 9)
    assert jaccard(gt, gt) == 1.0
    assert jaccard(gt, np.zeros_like(gt)) == 0.0
    assert jaccard(np.zeros_like(gt), np.zeros_like(gt)) == 1.0


def test_boundary_of_square_hand_worked():
    expected = {(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (3, 1), (4, 1), (2, 4), (3, 4), (4, 2), (4, 3), (4, 4)}
    got = {tuple(p) for p in np.argwhere(boundary_map(rect((10, 10), 2, 2, 3, 3)))}
    assert got == expected


def test_full_frame_mask_has_no_boundary():
    assert not boundary_map(np.ones((5, 7), dtype=bool)).any()
    # ... so a full-frame prediction of an object that fills the frame scores F = 1.
    assert f_measure(np.ones((5, 7), dtype=bool), np.ones((5, 7), dtype=bool)) == 1.0


def test_f_hand_worked_shift_by_two():
    # 10x10 frame: radius ceil(0.008 * 14.14) = 1 (a 3x3 cross). Shifting the 3x3 square by
    # two columns leaves 8 of the 12 boundary pixels within reach on each side: P = R = 2/3.
    gt = rect((10, 10), 2, 2, 3, 3)
    assert dilation_radius(gt.shape) == 1
    assert f_measure(gt, rect((10, 10), 2, 4, 3, 3)) == pytest.approx(2 / 3)
    assert f_measure(gt, rect((10, 10), 2, 3, 3, 3)) == 1.0


def test_disk_is_the_dilation_kernel_of_davis2017():
    """``x^2 + y^2 <= r^2`` as uint8 (skimage.morphology.disk, which davis2017-evaluation dilates with)."""
    assert disk(0).tolist() == [[1]]
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).tolist() == [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]
    for radius in (3, 8, 17):
        offsets = np.arange(-radius, radius + 1)
        expected = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
        assert disk(radius).dtype == np.uint8 and np.array_equal(disk(radius), expected)
    assert not disk(4).flags.writeable


def test_f_empty_cases():
    gt = rect((10, 10), 2, 2, 3, 3)
    empty = np.zeros_like(gt)
    assert f_measure(empty, empty) == 1.0
    assert f_measure(gt, empty) == 0.0
    assert f_measure(empty, gt) == 0.0


def test_f_tolerance_radius_is_ceil_of_point_eight_percent_of_diagonal():
    shape = (480, 854)  # diagonal 979.6 -> 7.84 -> radius 8
    assert dilation_radius(shape) == 8
    gt = rect(shape, 100, 100, 200, 300)
    assert f_measure(gt, rect(shape, 100, 108, 200, 300)) == 1.0
    assert f_measure(gt, rect(shape, 100, 109, 200, 300)) < 0.7


def test_f_matches_brute_force_on_random_masks():
    rng = np.random.default_rng(1)
    for trial in range(40):
        h, w = rng.integers(3, 40, size=2)
        # blobs that often touch the frame's edges and corners
        gt = rng.random((h, w)) < rng.uniform(0.05, 0.9)
        pred = gt.copy()
        pred[rng.random((h, w)) < 0.2] ^= True
        if trial % 5 == 0:
            pred = np.roll(gt, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
        th = 0.008 if trial % 2 else 0.05
        assert f_measure(gt, pred, th) == pytest.approx(reference_f(gt, pred, th), abs=1e-12), trial
        assert (boundary_map(gt) == reference_boundary(gt)).all()


def test_f_window_crop_agrees_near_and_far_from_edges():
    shape = (30, 40)
    for top, left in [(0, 0), (25, 35), (0, 35), (25, 0), (10, 10), (27, 37)]:
        gt = rect(shape, top, left, 3, 3)
        for dy, dx in [(0, 1), (1, 1), (2, -2), (-1, 3)]:
            pred = rect(shape, top + dy, left + dx, 4, 2)
            assert f_measure(gt, pred, 0.05) == pytest.approx(reference_f(gt, pred, 0.05), abs=1e-12)


def test_frame_scores_per_object():
    shape = (20, 20)
    gt = np.zeros(shape, np.uint8)
    gt[rect(shape, 2, 2, 4, 4)] = 1
    gt[rect(shape, 10, 10, 5, 5)] = 2
    pred = np.zeros(shape, np.uint8)
    pred[rect(shape, 2, 2, 4, 2)] = 1  # half of object 1
    j, f = frame_scores(gt, pred, [1, 2, 3])
    assert j.tolist() == pytest.approx([0.5, 0.0, 1.0])
    assert f[1] == 0.0 and f[2] == 1.0
    assert f[0] == pytest.approx(reference_f(gt == 1, pred == 1))
