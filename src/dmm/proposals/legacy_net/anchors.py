"""maskrcnn-benchmark's FPN anchors (maskrcnn-benchmark ``modeling/rpn/anchor_generator.py``).

A cell anchor of stride ``s`` and size ``S`` is centred on ``(s - 1) / 2``, its width and
height rounded (half to even) from ``sqrt(s * s / ratio)``, both scaled by ``S / s``, with
corners ``centre -+ (size - 1) / 2``; computed in float64 and cast to float32. The grid adds
shifts ``0, s, 2s, ...`` (no half-stride offset) over the padded image's feature map, in (y, x,
anchor) order. torchvision's ``AnchorGenerator`` centres anchors on 0 with ``round(+-w / 2)``.
"""

from __future__ import annotations

from typing import Sequence

import torch

#: The caffe2 FPN configs: one size per level P2..P6, strides 4..64, ratios 0.5, 1, 2.
ANCHOR_SIZES = (32, 64, 128, 256, 512)
ANCHOR_STRIDES = (4, 8, 16, 32, 64)
ASPECT_RATIOS = (0.5, 1.0, 2.0)


def _corners(ws: torch.Tensor, hs: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """(n, 4) boxes of widths ``ws`` and heights ``hs`` centred on (cx, cy), +1 convention."""
    return torch.stack([cx - 0.5 * (ws - 1), cy - 0.5 * (hs - 1),
                        cx + 0.5 * (ws - 1), cy + 0.5 * (hs - 1)], dim=1)


def _size_and_centre(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return w, h, boxes[:, 0] + 0.5 * (w - 1), boxes[:, 1] + 0.5 * (h - 1)


def cell_anchors(stride: int, size: float, ratios: Sequence[float] = ASPECT_RATIOS) -> torch.Tensor:
    """(len(ratios), 4) float32 xyxy anchors of one level, centred on the first cell.

    In float64: the ``stride x stride`` window's area divided by each ratio gives
    ``ws = round(sqrt(area / r))``, ``hs = round(ws * r)`` (half to even), then each box is
    scaled by ``size / stride`` about its centre.
    """
    window = torch.tensor([[0.0, 0.0, stride - 1.0, stride - 1.0]], dtype=torch.float64, device="cpu")
    w, h, cx, cy = _size_and_centre(window)
    r = torch.tensor(ratios, dtype=torch.float64, device="cpu")
    ws = torch.round(torch.sqrt(w * h / r))
    hs = torch.round(ws * r)
    by_ratio = _corners(ws, hs, cx.expand_as(ws), cy.expand_as(ws))
    w, h, cx, cy = _size_and_centre(by_ratio)
    scale = float(size) / float(stride)
    return _corners(w * scale, h * scale, cx, cy).to(torch.float32)


def grid_anchors(cell: torch.Tensor, stride: int, grid: tuple[int, int]) -> torch.Tensor:
    """(H * W * A, 4) float32 anchors of a ``grid = (H, W)`` feature map, (y, x, anchor) order."""
    height, width = grid
    shifts_x = torch.arange(0, width * stride, step=stride, dtype=torch.float32, device=cell.device)
    shifts_y = torch.arange(0, height * stride, step=stride, dtype=torch.float32, device=cell.device)
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4)
