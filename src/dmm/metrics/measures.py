"""Per-frame measures of the DAVIS protocol: region similarity J and boundary accuracy F.

Both follow davis2017-evaluation exactly:

- J is the IoU of two boolean masks, and 1 when both are empty.
- F is the F-measure of boundary precision and recall. A boundary pixel is a pixel whose
  value differs from its east, south or south-east neighbour (the last row compares only
  east, the last column only south, the bottom-right pixel is never a boundary). Each
  boundary is dilated by a disk (the one of ``skimage.morphology.disk``) of radius
  ``ceil(bound_th * image diagonal)``; precision is the share of predicted boundary pixels
  that fall in the dilated ground-truth boundary and recall the reverse. No boundary on
  either side gives F = 1; a boundary on one side only gives F = 0.

``f_measure`` works on the smallest window holding both masks plus one pixel each side,
which gives the same boundaries as the full frame (see ``_crop_window``) at a fraction of
the cost; the dilation radius still comes from the full frame's diagonal.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

BOUND_TH = 0.008


def jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    """IoU of two masks of shape (h, w) (any dtype, nonzero = inside); 1.0 when both are empty."""
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    union = int(np.count_nonzero(gt | pred))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(gt & pred)) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a mask (h, w) -> bool (h, w), by davis2017-evaluation's seg2bmap rule."""
    seg = mask.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def dilation_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Disk radius in pixels for a frame of shape (h, w): ``bound_th`` itself when >= 1, else
    ``ceil(bound_th * sqrt(h^2 + w^2))``."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * float(np.linalg.norm(shape))))


def _crop_window(gt: np.ndarray, pred: np.ndarray) -> tuple[slice, slice] | None:
    """Rows/columns of the union's bounding box grown by one pixel each side, clipped to
    the frame; None when both masks (h, w) bool are empty.

    Outside this window both masks and all their neighbours are empty, so no boundary lies
    there, and inside it the window's own last row/column (when not the frame's) is empty
    with empty neighbours, so the edge rules of ``boundary_map`` give the frame's values.
    """
    union = gt | pred
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(union.any(axis=0))
    h, w = union.shape
    return (
        slice(max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)),
        slice(max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, w)),
    )


@functools.lru_cache(maxsize=None)
def disk(radius: int) -> np.ndarray:
    """uint8 (2r+1, 2r+1): ``skimage.morphology.disk(radius)``, 1 where x^2 + y^2 <= r^2.

    scikit-image is imported on first use (not when a worker process starts); the kernel of
    each radius is made once and is read-only.
    """
    from skimage.morphology import disk as skimage_disk

    kernel = skimage_disk(radius)
    kernel.flags.writeable = False
    return kernel


def boundary_kernel(shape: tuple[int, int], bound_th: float = BOUND_TH) -> np.ndarray:
    """uint8 disk (2r+1, 2r+1) that dilates boundaries of frames of shape (h, w)."""
    return disk(dilation_radius(shape, bound_th))


def _boundary_f(gt: np.ndarray, pred: np.ndarray, kernel: np.ndarray) -> float:
    """F of two bool masks (h, w) cut to ``_crop_window``, dilating with ``kernel``; with
    davis2017-evaluation's rules when a boundary is empty."""
    gt_b = boundary_map(gt)
    pred_b = boundary_map(pred)
    n_gt = int(np.count_nonzero(gt_b))
    n_pred = int(np.count_nonzero(pred_b))
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    gt_dil = cv2.dilate(gt_b.view(np.uint8), kernel).view(bool)
    pred_dil = cv2.dilate(pred_b.view(np.uint8), kernel).view(bool)
    precision = int(np.count_nonzero(pred_b & gt_dil)) / float(n_pred)
    recall = int(np.count_nonzero(gt_b & pred_dil)) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def f_measure(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of two masks of shape (h, w) (nonzero = inside)."""
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: ground truth {gt.shape}, prediction {pred.shape}")
    window = _crop_window(gt, pred)
    if window is None:
        return 1.0
    return _boundary_f(gt[window], pred[window], boundary_kernel(gt.shape, bound_th))


def label_histogram(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every id of a uint8 label image (h, w) -> int64 (256,)."""
    if labels.size < 2**24:  # float32 counts are exact below 2^24
        return cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return np.bincount(labels.ravel(), minlength=256)


def frame_scores(
    gt: np.ndarray,
    pred: np.ndarray,
    object_ids: list[int],
    kernel: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each object in one frame.

    gt, pred: uint8 label images (h, w); ``kernel``: ``boundary_kernel(shape, bound_th)``
    when already built. Returns J (K,), F (K,) float64 for the K ``object_ids``.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"label image shapes differ: ground truth {gt.shape}, prediction {pred.shape}")
    if kernel is None:
        kernel = boundary_kernel(gt.shape, bound_th)
    j = np.ones(len(object_ids))
    f = np.ones(len(object_ids))
    for k, obj in enumerate(object_ids):
        gt_mask = gt == obj
        pred_mask = pred == obj
        window = _crop_window(gt_mask, pred_mask)
        if window is None:
            continue
        g, p = gt_mask[window], pred_mask[window]
        j[k] = int(np.count_nonzero(g & p)) / int(np.count_nonzero(g | p))
        f[k] = _boundary_f(g, p, kernel)
    return j, f
