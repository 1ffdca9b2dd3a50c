"""A batch of training clips through DMM-Net: the 2019 trainer's forward (``modules/trainer.py``).

- **Frame 0** gives the templates (ROI features of every slot's ground-truth mask; an empty slot
  takes the whole image) and then runs the model's start step (:meth:`DMMNet.start`): its
  "proposals" are the template masks themselves (scores 1, template boxes) after NMS at
  ``PROPOSALS.NMS_IOU``, ties kept in slot order; previous, reference and IoU masks are the ground
  truth. Its decoder state feeds frame 1. The encoder runs on frame 0 twice, as in 2019
  (``SOLVER.FRAME0_TWICE``): the outputs are the same, the batch-norm running statistics see
  frame 0 twice.
- **Frames 1..T-1** step the model (:meth:`DMMNet.step`) against their proposals (pasted, flipped
  and warped alike with the frame). The previous mask of the IoU term and the decoder is the
  ground truth of frame t - 1, or from epoch ``SOLVER.FINETUNE_AFTER`` on with probability
  ``SOLVER.OWN_PRED_PROB`` the model's own refined output of frame t - 1, with its gradient: the
  one thing this wrapper adds to the model's steps. The reference is always frame 0's ground truth.
- The decoder refines the slot rule's decoder slots of the batch (:meth:`SlotRule.decoder_slots`).
- The loss is the sum over all T frames of ``LOSS`` weights times the frame's terms
  (:meth:`dmm.model.dmmnet.StepOutput.losses`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from torch import nn
from torchvision.ops import nms
from yacs.config import CfgNode

from ..boxes import mask_boxes
from ..model.losses import LOSS_NAMES, weighted_total
from ..proposals.ops import prepare_training_proposals
from ..structures import Proposals, TrackState


def template_proposals(masks: torch.Tensor, nms_iou: float) -> list[Proposals]:
    """Frame 0's proposals: each clip's slot masks with their template boxes and score 1, after NMS.

    masks: (B, O, H, W) ground truth of frame 0 -> B full-mode :class:`Proposals` (kept slots in
    slot order; ties between equal scores go to the lower slot, as the 2019 sort left them).
    """
    b, o, h, w = masks.shape
    out = []
    for clip in masks:
        boxes = mask_boxes(clip, 0.5, empty="image")
        order = torch.arange(o, device=masks.device, dtype=torch.float32)
        # scores 1 for all; the tiny slot-order tilt only breaks NMS ties, the kept scores stay 1
        keep = nms(boxes + boxes.new_tensor([0.0, 0.0, 1.0, 1.0]), 1.0 - 1e-6 * order, nms_iou).sort().values
        out.append(Proposals(boxes[keep], torch.ones(len(keep), device=masks.device), clip[keep], (h, w), "full"))
    return out


class ClipLoss(nn.Module):
    """Wraps the model so a whole batch of clips is one ``forward`` (what DDP needs)."""

    def __init__(self, model: nn.Module, cfg: CfgNode):
        super().__init__()
        self.model = model
        self.cfg_loss = cfg.LOSS
        self.cfg_proposals = cfg.PROPOSALS
        self.flip_proposals = cfg.DATA.FLIP_PROPOSALS
        self.augment = cfg.DATA.AUGMENT
        self.frame0_twice = cfg.SOLVER.FRAME0_TWICE

    def forward(self, images: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor,
                proposals: Sequence[Sequence[Proposals]], flips: torch.Tensor, affines: torch.Tensor,
                feed_own: Sequence[bool]) -> dict[str, torch.Tensor]:
        """Losses of a batch of clips.

        Args:
            images: (B, T, 3, H, W) normalised frames.
            masks: (B, T, O, H, W) float {0, 1} ground truth per slot.
            weights: (B, O) sample weights.
            proposals: B lists of T stored :class:`Proposals` (on the device).
            flips: (B,) bool; affines: (B, T, 3, 3) per-frame affines.
            feed_own: T - 1 flags: after frame t (1..T-1), feed its own prediction to frame t + 1.
        Returns:
            ``{"total", "match", "matched_iou", "refined_iou"}``: each term summed over the T
            frames, ``total`` the ``LOSS``-weighted sum.
        """
        model = self.model
        b, t_len, _, h, w = images.shape
        reference = masks[:, 0]
        valid = reference.flatten(2).any(dim=2)
        features = model.encode(images[:, 0])
        state = replace(TrackState.empty(b, masks.shape[2], (h, w), device=images.device, dtype=reference.dtype),
                        run=model.slots.decoder_slots(valid))
        state = state.given(reference, valid, model.template_features(features, reference))
        if self.frame0_twice:
            features = model.encode(images[:, 0])
        out, state = model.start(features, template_proposals(reference, self.cfg_proposals.NMS_IOU), state, valid)
        sums = out.losses(reference, weights)
        state = replace(state, iou=reference)
        for t in range(1, t_len):
            features = model.encode(images[:, t])
            frame_proposals = prepare_training_proposals(
                [clip[t] for clip in proposals], (h, w), flips.tolist(),
                [a[t] if self.augment else None for a in affines],
                threshold=self.cfg_proposals.MASK_THRESHOLD, nms_iou=self.cfg_proposals.NMS_IOU,
                topk=self.cfg_proposals.TOPK, flip_proposals=self.flip_proposals,
                order=self.cfg_proposals.KEEP_ORDER)
            out, state = model.step(features, frame_proposals, state)
            losses = out.losses(masks[:, t], weights)
            sums = {k: sums[k] + losses[k] for k in LOSS_NAMES}
            previous = out.refined if feed_own[t - 1] else masks[:, t]
            state = replace(state, previous=previous, iou=previous)
        sums["total"] = weighted_total({k: sums[k] for k in LOSS_NAMES}, self.cfg_loss)
        return sums
