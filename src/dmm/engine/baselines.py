"""Two reference trackers with no learned features, scored beside DMM-Net.

- ``copy_first``: every object keeps its given mask in every later frame.
- ``iou_hungarian``: each frame, the objects' previous masks are matched to the frame's
  (filtered) proposals by Hungarian assignment on mask IoU; a matched object takes its
  proposal's mask, an unmatched one keeps its previous mask.

Both implement the :class:`~dmm.engine.tracker.Tracker` protocol, so they run through the same
inference loop, object plan and label composition as DMM-Net.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from scipy.optimize import linear_sum_assignment

from ..model.cost import mask_iou as batched_mask_iou
from ..structures import Proposals, TrackState


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks (the cost's own IoU, one frame). a: (O, H, W) bool, b: (M, H, W) bool -> (O, M)."""
    return batched_mask_iou(a[None], b[None])[0]


def hungarian_step(prev: torch.Tensor, proposals: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """One frame of IoU tracking.

    Args:
        prev: (O, H, W) float previous masks in [0, 1].
        proposals: (M, H, W) float proposal masks in [0, 1].

    Returns:
        (O, H, W) float {0, 1}: each object's matched proposal (IoU > 0), else its previous mask.
    """
    prev_bin = prev > threshold
    out = prev_bin.float()
    if proposals.shape[0] == 0 or prev.shape[0] == 0:
        return out
    prop_bin = proposals > threshold
    iou = mask_iou(prev_bin, prop_bin).cpu().numpy()
    rows, cols = linear_sum_assignment(-iou)
    for r, c in zip(rows, cols):
        if iou[r, c] > 0:
            out[r] = prop_bin[c].float()
    return out


def _shown(state: TrackState, masks: torch.Tensor) -> torch.Tensor:
    return masks * state.active[:, :, None, None].to(masks.dtype)


class CopyFirstTracker:
    """Every object keeps its given mask."""

    def encode(self, images: torch.Tensor) -> None:
        return None

    def start(self, state: TrackState, features, proposals: Sequence[Proposals], masks: torch.Tensor,
              starting: torch.Tensor) -> TrackState:
        sel = starting[:, :, None, None]
        return replace(state, active=state.active | starting, reference=torch.where(sel, masks, state.reference),
                       previous=torch.where(sel, masks, state.previous))

    def step(self, state: TrackState, features, proposals: Sequence[Proposals]) -> tuple[torch.Tensor, TrackState]:
        return _shown(state, state.reference), state


class IoUHungarianTracker(CopyFirstTracker):
    """Each object follows the proposal that overlaps its previous mask best (Hungarian on IoU)."""

    def step(self, state: TrackState, features, proposals: Sequence[Proposals]) -> tuple[torch.Tensor, TrackState]:
        previous = state.previous.clone()
        for b, frame in enumerate(proposals):
            idx = torch.nonzero(state.active[b]).flatten()
            if idx.numel():
                previous[b, idx] = hungarian_step(previous[b, idx], frame.masks.to(previous.device))
        state = replace(state, previous=previous)
        return _shown(state, previous), state


BASELINES = {"copy_first": CopyFirstTracker, "iou_hungarian": IoUHungarianTracker}


def build_baseline(name: str):
    """The baseline tracker called ``name`` (one of :data:`BASELINES`)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r} (one of {sorted(BASELINES)})")
    return BASELINES[name]()
