"""maskrcnn-benchmark's box arithmetic: the +1 box coder, clip, areas and the legacy NMS.

From maskrcnn-benchmark ``modeling/box_coder.py``,
``structures/bounding_box.py``, ``structures/boxlist_ops.py`` and ``csrc/*/nms*``. Boxes are
xyxy float32 in pixels with the "+1" convention: a box's width is ``x2 - x1 + 1``. Every
expression keeps maskrcnn-benchmark's operation order, so results are bit-identical in float32.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

#: ``box_coder.py``: deltas of width and height are clamped at ``log(1000 / 16)``.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
BOX_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def decode_boxes(deltas: torch.Tensor, boxes: torch.Tensor,
                 weights: Sequence[float] = RPN_WEIGHTS) -> torch.Tensor:
    """Apply (N, 4k) ``deltas`` to (N, 4) reference ``boxes``: (N, 4k) boxes, +1 convention.

    ``w = x2 - x1 + 1``, centre ``x1 + 0.5 w``; ``dx = d0 / wx`` ...; ``dw``, ``dh`` clamped at
    :data:`BBOX_XFORM_CLIP`; the box is ``[cx - 0.5 pw, cy - 0.5 ph, cx + 0.5 pw - 1,
    cy + 0.5 ph - 1]``.
    """
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0] + 1
    heights = boxes[:, 3] - boxes[:, 1] + 1
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=BBOX_XFORM_CLIP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=BBOX_XFORM_CLIP)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    out = torch.zeros_like(deltas)
    out[:, 0::4] = pred_ctr_x - 0.5 * pred_w
    out[:, 1::4] = pred_ctr_y - 0.5 * pred_h
    out[:, 2::4] = pred_ctr_x + 0.5 * pred_w - 1
    out[:, 3::4] = pred_ctr_y + 0.5 * pred_h - 1
    return out


def clip_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """(N, 4) boxes clipped to x in [0, w - 1], y in [0, h - 1] of ``image_size = (h, w)``
    (a new tensor; empty boxes are kept)."""
    height, width = image_size
    out = boxes.clone()
    out[:, 0].clamp_(min=0, max=width - 1)
    out[:, 1].clamp_(min=0, max=height - 1)
    out[:, 2].clamp_(min=0, max=width - 1)
    out[:, 3].clamp_(min=0, max=height - 1)
    return out


def box_areas(boxes: torch.Tensor) -> torch.Tensor:
    """(N,) ``(x2 - x1 + 1) * (y2 - y1 + 1)``."""
    return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)


def remove_small_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of the boxes whose +1 width and height are both at least ``min_size``."""
    ws = boxes[:, 2] - boxes[:, 0] + 1
    hs = boxes[:, 3] - boxes[:, 1] + 1
    return ((ws >= min_size) & (hs >= min_size)).nonzero().squeeze(1)


def _suppression_rows(boxes: np.ndarray, threshold: float, block: int = 64) -> list[np.ndarray]:
    """Row ``i`` of the result: whether each later box ``j > i`` (of (N, 4) float32 boxes in
    visiting order) overlaps box ``i`` with IoU above ``threshold`` (``over[i][j - i - 1]``).

    The float32 arithmetic of the CUDA kernel (``devIoU``), a block of rows at a time (the
    upper triangle only, in cache-sized buffers).
    """
    n = len(boxes)
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    one, zero, thr = np.float32(1), np.float32(0), np.float32(threshold)
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    rows: list[np.ndarray] = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        cols = slice(start, n)
        w = np.minimum(x2[start:stop, None], x2[None, cols])
        w -= np.maximum(x1[start:stop, None], x1[None, cols])
        w += one
        np.maximum(w, zero, out=w)
        h = np.minimum(y2[start:stop, None], y2[None, cols])
        h -= np.maximum(y1[start:stop, None], y1[None, cols])
        h += one
        np.maximum(h, zero, out=h)
        w *= h  # the intersections
        union = areas[start:stop, None] + areas[None, cols]
        union -= w
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 (two empty boxes): NaN, not above
            over = (w / union) > thr
        rows.extend(over[r, r + 1:] for r in range(stop - start))
    return rows


def _suppression_rows_on_device(boxes: torch.Tensor, threshold: float) -> list[np.ndarray]:
    """:func:`_suppression_rows` computed on the boxes' device (CUDA) in one matrix, the same
    float32 operations, then brought to the CPU for the greedy pass."""
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    w = (torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :]) + 1).clamp_(min=0)
    h = (torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :]) + 1).clamp_(min=0)
    inter = w * h
    over = (inter / (areas[:, None] + areas[None, :] - inter)) > torch.tensor(threshold, dtype=torch.float32)
    over = over.cpu().numpy()
    return [over[i, i + 1:] for i in range(len(over))]


def legacy_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """maskrcnn-benchmark's NMS: kept indices in **ascending index order** (int64).

    Boxes are visited by decreasing score (equal scores: lower index first); a later box is
    suppressed when its IoU with a kept one is ``> threshold`` (the CUDA kernel the authors ran),
    the IoU computed in float32 with the +1 areas: ``w = max(0, min(x2) - max(x1) + 1)``,
    ``inter = w * h``, ``iou = inter / (area_i + area_j - inter)``. torchvision's ``nms`` has no
    +1 and returns the kept boxes by decreasing score.
    """
    n = int(boxes.shape[0])
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ordered = boxes[order].detach().to(torch.float32)
    if ordered.is_cuda:
        rows = _suppression_rows_on_device(ordered, threshold)
    else:
        rows = _suppression_rows(ordered.numpy(), threshold)
    removed = np.zeros(n, dtype=bool)
    for i in range(n):
        if not removed[i]:
            removed[i + 1:] |= rows[i]
    kept = order[torch.from_numpy(~removed).to(order.device)]
    return kept.sort().values
