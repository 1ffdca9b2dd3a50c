"""One training clip through DMM-Net: the forward pass the trainer (and DDP) wraps.

Frame 0 of a clip is the reference: its annotation gives the templates and the reference
masks. Frames 1..T-1 are predicted in order; the decoder's temporal state and the previous
mask run from frame to frame. The previous mask is the ground truth, or (from epoch
``FINETUNE_AFTER`` on, with probability ``OWN_PRED_PROB`` per step) the model's own refined
prediction, detached.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from yacs.config import CfgNode

from .proposal_source import matching_proposals

LOSS_TERMS = ("match", "matched_iou", "refined_iou")


def loss_weights(cfg_loss: CfgNode) -> dict[str, float]:
    return {
        "match": cfg_loss.MATCH_WEIGHT,
        "matched_iou": cfg_loss.MATCHED_IOU_WEIGHT,
        "refined_iou": cfg_loss.REFINED_IOU_WEIGHT,
    }


class ClipLoss(nn.Module):
    """Wraps the model so a whole clip is one ``forward`` (what DDP needs to sync gradients)."""

    def __init__(self, model: nn.Module, cfg: CfgNode):
        super().__init__()
        self.model = model
        self.cfg_proposals = cfg.PROPOSALS
        self.weights = loss_weights(cfg.LOSS)

    def forward(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        valid: torch.Tensor,
        proposals: Sequence[Sequence[dict[str, torch.Tensor]]],
        feed_own: Sequence[bool],
    ) -> dict[str, torch.Tensor]:
        """Losses of a batch of clips.

        Args:
            images: (B, T, 3, H, W) normalised frames.
            masks: (B, T, O, H, W) float {0, 1} ground truth per object.
            valid: (B, O) bool, objects present in frame 0.
            proposals: B lists of T dicts (``masks (N, H, W)``, ``scores (N,)``) on the device.
            feed_own: T - 1 flags: feed the model's own prediction of frame t - 1 at step t.

        Returns:
            ``{"total", "match", "matched_iou", "refined_iou"}``: scalars, each term averaged
            over the T - 1 predicted frames, ``total`` the weighted sum.
        """
        model = self.model
        T = images.shape[1]
        reference = masks[:, 0]
        features = model.encode(images[:, 0])
        templates = model.template_features(features, reference)
        prev = reference
        state = None
        sums = {k: images.new_zeros(()) for k in LOSS_TERMS}
        for t in range(1, T):
            features = model.encode(images[:, t])
            frame_props = [matching_proposals(clip[t], self.cfg_proposals) for clip in proposals]
            out = model.step(
                features,
                templates,
                frame_props,
                prev_masks=prev,
                ref_masks=reference,
                iou_masks=prev,
                valid=valid,
                state=state,
                targets=masks[:, t],
            )
            for k in LOSS_TERMS:
                sums[k] = sums[k] + out.losses[k]
            state = out.state
            prev = out.refined.detach() if feed_own[t - 1] else masks[:, t]
        losses = {k: v / (T - 1) for k, v in sums.items()}
        losses["total"] = sum(self.weights[k] * losses[k] for k in LOSS_TERMS)
        return losses
