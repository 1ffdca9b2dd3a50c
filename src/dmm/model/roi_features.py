"""Multi-level ROIAlign features: one 512-vector per box (4 prop levels x 128, spatial mean)."""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.ops import masks_to_boxes, roi_align

PROP_SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)  # levels 2, 3, 4, 5


def roi_features(props: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor], output_size: int = 14,
                 sampling_ratio: int = 2, aligned: bool = False) -> torch.Tensor:
    """Pooled features of boxes over all frames of a batch, one roi_align call per level.

    Args:
        props: 4 maps, levels 2..5, each (B, C, H/s, W/s).
        boxes: B tensors (K_b, 4) float xyxy in input pixels.
    Returns:
        (sum K_b, 4 * C): per box, the spatial mean of each level's 14x14 ROIAlign, concatenated
        in level order 2, 3, 4, 5.
    """
    if len(props) != len(PROP_SCALES):
        raise ValueError(f"expected {len(PROP_SCALES)} prop maps, got {len(props)}")
    boxes = [b.to(props[0].dtype) for b in boxes]
    pooled = [
        roi_align(feat, boxes, output_size, spatial_scale=scale, sampling_ratio=sampling_ratio,
                  aligned=aligned).mean(dim=(2, 3))
        for feat, scale in zip(props, PROP_SCALES)
    ]
    return torch.cat(pooled, dim=1)


def mask_boxes(masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Tight xyxy boxes of masks > threshold; the whole image for an empty mask.

    masks: (K, H, W) float -> (K, 4) float, corners inclusive (torchvision's masks_to_boxes).
    """
    k, h, w = masks.shape
    binary = masks > threshold
    whole = torch.tensor([0.0, 0.0, w - 1.0, h - 1.0], device=masks.device).expand(k, 4)
    if k == 0:
        return whole.clone()
    empty = ~binary.flatten(1).any(dim=1)
    # masks_to_boxes needs a pixel in every mask: give empty masks one, then replace their box.
    filled = binary.clone()
    filled[:, 0, 0] |= empty
    return torch.where(empty[:, None], whole, masks_to_boxes(filled).to(whole.dtype))
