"""A frame's label map from the tracker's slot probabilities (``TEST.LABELS_AT``).

The label map is the argmax over (background = 1 - the largest object probability, the objects'
probabilities), first index on ties. ``"input"`` (2019) takes it at the network input size and
resizes it to the frame's size by nearest neighbour (OpenCV's ``INTER_NEAREST_EXACT``, the index
rule of PIL's NEAREST); objects given at a frame show their given mask at the input size.
``"frame"`` resizes the probabilities bilinearly to the frame's size first and paints given masks
at full resolution.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..config.keys import check_choice


def compose_labels(probs: torch.Tensor, slot_ids: Sequence[int], size: tuple[int, int], labels_at: str = "input",
                   given: Sequence[tuple[int, np.ndarray]] = ()) -> np.ndarray:
    """Label map of one frame.

    Args:
        probs: (O, H, W) slot probabilities at the network input size, zero for slots not shown.
        slot_ids: the object id of each slot.
        size: (h, w) original frame size.
        labels_at: "input" or "frame" (module docstring).
        given: ("frame" only) (object id, (h, w) bool mask) of the objects given at this frame,
            painted over the result at full resolution.
    Returns:
        (h, w) uint8 map of object ids, 0 for background.
    """
    h, w = size
    if probs.shape[0] == 0:
        return np.zeros((h, w), dtype=np.uint8)
    lut = np.array([0, *slot_ids], dtype=np.uint8)
    if labels_at == "input":
        background = 1.0 - probs.max(dim=0, keepdim=True).values
        winner = torch.cat([background, probs], dim=0).argmax(dim=0).to(torch.uint8).cpu().numpy()
        small = lut[winner]
        if small.shape == (h, w):
            return small
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    check_choice("TEST.LABELS_AT", labels_at)
    p = F.interpolate(probs[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    background = 1.0 - p.max(dim=0, keepdim=True).values
    labels = lut[torch.cat([background, p], dim=0).argmax(dim=0).cpu().numpy()]
    for oid, mask in given:
        labels[mask] = oid
    return labels
