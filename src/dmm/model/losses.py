"""DMM-Net's training losses (2019 ``match_helper.py``, ``objectives.py``, ``trainer.py``).

Each function returns one frame's unweighted term; :data:`LOSS_NAMES` lists them and
:func:`weighted_total` applies the ``LOSS`` weights, the one place they are combined.
"""

from __future__ import annotations

import torch

from .cost import IOU_EPS, mask_iou
from .matching import greedy_start

LOSS_NAMES = ("match", "matched_iou", "refined_iou")


def soft_iou_costs(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-object soft IoU cost ``1 - sum(y p) / (sum(y + p - y p) + 1e-6)``.

    pred, target: (B, O, H, W) -> (B, O). An empty target with an empty prediction costs 1; a
    prediction above 1 (unclamped matched masks) can make the cost negative.
    """
    inter = (target * pred).flatten(2).sum(2)
    union = (target + pred - target * pred).flatten(2).sum(2)
    return 1.0 - inter / (union + IOU_EPS)


def soft_iou_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean soft IoU cost over the slots with a positive sample weight (all slots when none has one).

    pred, target: (B, O, H, W); weights: (B, O) -> scalar.
    """
    costs = soft_iou_costs(pred, target)
    selected = weights > 0
    if bool(selected.any()):
        return costs[selected].mean()
    return costs.mean()


def match_target(targets: torch.Tensor, proposal_masks: torch.Tensor, pairs: torch.Tensor,
                 threshold: float = 0.5) -> torch.Tensor:
    """The match loss's target: the matching start point on cost ``-IoU(target > t, proposal > t)``.

    targets: (B, O, H, W); proposal_masks: (B, M, H, W); pairs: (B, O, M) bool, the rows x real
    proposals of each problem (no padding columns) -> (B, O, M) one-hot rows.
    """
    iou = mask_iou(targets > threshold, proposal_masks > threshold)
    return greedy_start(-iou, pairs)


def match_loss(cosine: torch.Tensor, targets: torch.Tensor, proposal_masks: torch.Tensor,
               pairs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """MSE between the cosine similarities and :func:`match_target`, per video, averaged over the batch.

    Each video's MSE is the mean over its rows x real proposals; a video without rows or
    without proposals contributes 0 to the mean.

    cosine: (B, O, M); targets: (B, O, H, W); proposal_masks: (B, M, H, W); pairs: (B, O, M)
    bool -> scalar.
    """
    with torch.no_grad():
        goal = match_target(targets, proposal_masks, pairs, threshold).to(cosine.dtype)
    pairsf = pairs.to(cosine.dtype)
    squared = ((cosine - goal) ** 2 * pairsf).flatten(1).sum(1)
    count = pairsf.flatten(1).sum(1)
    per_video = torch.where(count > 0, squared / count.clamp_min(1.0), torch.zeros_like(squared))
    return per_video.mean()


def weighted_total(losses: dict[str, torch.Tensor], cfg_loss) -> torch.Tensor:
    """Sum of the losses weighted by ``cfg.LOSS`` (MATCH_WEIGHT, MATCHED_IOU_WEIGHT, REFINED_IOU_WEIGHT)."""
    weights = {
        "match": float(cfg_loss.MATCH_WEIGHT),
        "matched_iou": float(cfg_loss.MATCHED_IOU_WEIGHT),
        "refined_iou": float(cfg_loss.REFINED_IOU_WEIGHT),
    }
    unknown = set(losses) - set(weights)
    if unknown:
        raise KeyError(f"no LOSS weight for {sorted(unknown)}")
    return sum(weights[name] * value for name, value in losses.items())
