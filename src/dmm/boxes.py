"""Boxes from masks: the project's one implementation (a leaf module)."""

from __future__ import annotations

from typing import Literal

import torch

EmptyBox = Literal["zeros", "image", "legacy"]


def mask_boxes(masks: torch.Tensor, threshold: float = 0.5, empty: EmptyBox = "zeros",
               half_open: bool = False) -> torch.Tensor:
    """Tight xyxy boxes of ``masks > threshold``.

    Args:
        masks: (N, H, W) float or bool.
        threshold: a pixel belongs to the mask when its value is above this.
        empty: the box of an empty mask: ``"zeros"`` ``[0, 0, 0, 0]``; ``"image"`` the whole
            image ``[0, 0, W - 1, H - 1]`` (2019 template boxes); ``"legacy"`` ``[0, 0, H, W]``
            (2019 ``masker.py``, height and width in the x and y places, kept for faithfulness).
        half_open: max coordinates one past the last pixel (detection targets) instead of the
            last pixel itself (``torchvision.ops.masks_to_boxes``'s convention).
    Returns:
        (N, 4) float32 [x_min, y_min, x_max, y_max].
    """
    n, h, w = masks.shape
    binary = masks > threshold
    rows = binary.any(dim=2)  # (N, H)
    cols = binary.any(dim=1)  # (N, W)
    nonempty = rows.any(dim=1)
    y0 = rows.to(torch.uint8).argmax(dim=1)
    y1 = h - 1 - rows.flip(1).to(torch.uint8).argmax(dim=1)
    x0 = cols.to(torch.uint8).argmax(dim=1)
    x1 = w - 1 - cols.flip(1).to(torch.uint8).argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).to(torch.float32)
    if half_open:
        boxes = boxes + boxes.new_tensor([0.0, 0.0, 1.0, 1.0])
    fill = {"zeros": [0.0, 0.0, 0.0, 0.0], "image": [0.0, 0.0, w - 1.0, h - 1.0],
            "legacy": [0.0, 0.0, float(h), float(w)]}
    if empty not in fill:
        raise ValueError(f"unknown empty-box rule {empty!r} (one of {sorted(fill)})")
    return torch.where(nonempty[:, None], boxes, boxes.new_tensor(fill[empty]))
