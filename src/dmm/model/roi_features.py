"""Multi-level ROIAlign features: one 512-vector per box (4 prop levels x 128, spatial mean).

Only the spatial mean of each 14x14 ROIAlign output is used, and ROIAlign's sample points form
a product grid (a y coordinate per row of samples, an x coordinate per column) with bilinear
weights that factor into a y part and an x part. The mean is therefore ``a_y^T F a_x / n``
for two weight vectors per box: ``pooled_roi_align`` computes exactly that with two small
matrix products, forward and backward, instead of ``torchvision.ops.roi_align`` followed by a
mean, whose CPU backward dominated a training step. Both give the same numbers (the tests
compare them); ``method="torchvision"`` selects the library call.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.ops import roi_align

from ..config.keys import check_choice

PROP_SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)  # levels 2, 3, 4, 5


def _sample_weights(start: torch.Tensor, length: torch.Tensor, bins: int, grid: int, size: int) -> torch.Tensor:
    """Summed 1-D bilinear weights of ROIAlign's sample coordinates along one axis.

    Args:
        start: (K,) ROI start in feature-map pixels; length: (K,) ROI length.
        bins: pooled size along the axis (14); grid: samples per bin (sampling ratio).
        size: feature-map size along the axis.

    Returns:
        (K, size): for each ROI, the total weight each pixel row (or column) receives over the
        ``bins * grid`` sample coordinates, with ROIAlign's border rules: samples beyond one pixel
        outside the map weigh nothing, the others are clamped into the map.
    """
    steps = (torch.arange(bins * grid, device=start.device, dtype=start.dtype) + 0.5) / grid  # in bins
    coords = start[:, None] + steps[None, :] * (length / bins)[:, None]  # (K, S)
    inside = (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(0, size - 1)
    pixels = torch.arange(size, device=start.device, dtype=start.dtype)
    hat = (1 - (coords[:, :, None] - pixels[None, None, :]).abs()).clamp(min=0)  # (K, S, size)
    return (hat * inside[:, :, None]).sum(dim=1)


def pooled_roi_align(feat: torch.Tensor, boxes: Sequence[torch.Tensor], output_size: int, spatial_scale: float,
                     sampling_ratio: int, aligned: bool) -> torch.Tensor:
    """``roi_align(feat, boxes, ...).mean(dim=(2, 3))``, computed through the separable weights.

    Args:
        feat: (B, C, H, W); boxes: B tensors (K_b, 4) xyxy in input pixels.
    Returns:
        (sum K_b, C).
    """
    if sampling_ratio <= 0:
        raise ValueError("pooled_roi_align needs a fixed sampling_ratio > 0")
    _, c, h, w = feat.shape
    offset = 0.5 if aligned else 0.0
    out = []
    for image, b in zip(feat, boxes):
        if b.shape[0] == 0:
            out.append(feat.new_zeros(0, c))
            continue
        x0, y0 = b[:, 0] * spatial_scale - offset, b[:, 1] * spatial_scale - offset
        bw, bh = b[:, 2] * spatial_scale - offset - x0, b[:, 3] * spatial_scale - offset - y0
        if not aligned:
            bw, bh = bw.clamp(min=1.0), bh.clamp(min=1.0)
        wy = _sample_weights(y0, bh, output_size, sampling_ratio, h)  # (K, H)
        wx = _sample_weights(x0, bw, output_size, sampling_ratio, w)  # (K, W)
        rows = torch.einsum("ky,cyx->kcx", wy, image)
        out.append(torch.einsum("kcx,kx->kc", rows, wx) / float((output_size * sampling_ratio) ** 2))
    return torch.cat(out)


def roi_features(props: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor], output_size: int = 14,
                 sampling_ratio: int = 2, aligned: bool = False, method: str = "separable") -> torch.Tensor:
    """Pooled features of boxes over all frames of a batch, one roi_align call per level.

    Args:
        props: 4 maps, levels 2..5, each (B, C, H/s, W/s).
        boxes: B tensors (K_b, 4) float xyxy in input pixels.
        method: "separable" (:func:`pooled_roi_align`), "torchvision" (``ops.roi_align``) or
            "auto" (torchvision on CUDA, where it is the faster, separable elsewhere).
    Returns:
        (sum K_b, 4 * C): per box, the spatial mean of each level's 14x14 ROIAlign, concatenated
        in level order 2, 3, 4, 5.
    """
    if len(props) != len(PROP_SCALES):
        raise ValueError(f"expected {len(PROP_SCALES)} prop maps, got {len(props)}")
    check_choice("MODEL.ROI_POOL", method)
    boxes = [b.to(props[0].dtype) for b in boxes]
    if method == "auto":
        method = "torchvision" if props[0].is_cuda else "separable"
    if method == "separable":
        pooled = [pooled_roi_align(feat, boxes, output_size, scale, sampling_ratio, aligned)
                  for feat, scale in zip(props, PROP_SCALES)]
    else:
        pooled = [
            roi_align(feat, boxes, output_size, spatial_scale=scale, sampling_ratio=sampling_ratio,
                      aligned=aligned).mean(dim=(2, 3))
            for feat, scale in zip(props, PROP_SCALES)
        ]
    return torch.cat(pooled, dim=1)
