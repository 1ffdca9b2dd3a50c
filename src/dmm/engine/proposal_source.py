"""From the proposal store to what the model matches against.

Proposals take two steps on their way to the model: ``ProposalSource`` pastes a frame's
stored 28x28 masks into the network input frame (this runs in the data loader, before the
clip's augmentation warps them alike with the image), and ``matching_proposals`` then applies
DESIGN.md's filter (tight boxes of masks > 0.4, NMS at 0.4, top 50) to the warped masks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from yacs.config import CfgNode

from ..proposals.ops import filter_for_matching, paste_masks
from ..proposals.store import ProposalStore
from ..proposals.structures import Proposals


class ProposalSource:
    """``proposal_fn`` for ``ClipDataset``: a frame's proposals pasted at the input size.

    Returns ``{"masks": (N, H, W) float in [0, 1], "scores": (N,)}``.
    """

    def __init__(self, store_dir: str | Path):
        self.store = ProposalStore(store_dir)

    def __call__(self, video: str, frame: str, input_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        full = paste_masks(self.store.get(video, frame), input_size)
        return {"masks": full.masks, "scores": full.scores}


def matching_proposals(frame_proposals: dict[str, torch.Tensor], cfg_proposals: CfgNode) -> Proposals:
    """Filter one frame's (warped) pasted proposals for matching: tight boxes, NMS, top-k."""
    return filter_for_matching(
        frame_proposals["masks"],
        frame_proposals["scores"],
        threshold=cfg_proposals.MASK_THRESHOLD,
        nms_iou=cfg_proposals.NMS_IOU,
        topk=cfg_proposals.TOPK,
    )
