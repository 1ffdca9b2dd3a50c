"""DMM-Net's training losses, returned unweighted; :func:`weighted_total` applies ``cfg.LOSS``."""

from __future__ import annotations

import torch

from .cost import mask_iou

LOSS_NAMES = ("match", "matched_iou", "refined_iou")


def soft_iou_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid objects of 1 - sum(y p) / sum(y + p - y p); 0 for an object whose union is 0.

    pred, target: (B, O, H, W) in [0, 1]; valid: (B, O) bool -> scalar (0 without valid objects).
    """
    inter = (target * pred).flatten(2).sum(2)
    union = (target + pred - target * pred).flatten(2).sum(2)
    loss = torch.where(union > 0, 1.0 - inter / union.clamp_min(1e-12), torch.zeros_like(union))
    validf = valid.to(loss.dtype)
    return (loss * validf).sum() / validf.sum().clamp_min(1.0)


def greedy_iou_assignment(iou: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Greedy one-hot assignment of proposals to objects by IoU, highest pairs first.

    Each object takes at most one proposal and each proposal at most one object; pairs with
    IoU 0 are not assigned. iou: (B, O, M), valid: (B, O, M) bool -> (B, O, M) float one-hot.
    """
    b, o, m = iou.shape
    out = torch.zeros_like(iou)
    if o == 0 or m == 0:
        return out
    free = valid.clone()
    for _ in range(min(o, m)):
        scores = iou.masked_fill(~free, -1.0).flatten(1)
        best, index = scores.max(dim=1)
        pick = torch.zeros_like(scores).scatter_(1, index[:, None], (best > 0).to(iou.dtype)[:, None])
        pick = pick.view(b, o, m)
        out = out + pick
        taken = pick > 0
        free = free & ~taken.any(dim=2, keepdim=True) & ~taken.any(dim=1, keepdim=True)
    return out


def match_loss(cosine: torch.Tensor, targets: torch.Tensor, proposal_masks: torch.Tensor,
               pair_valid: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """MSE between the cosine similarities and the greedy IoU assignment to ground truth.

    cosine: (B, O, M); targets: (B, O, H, W); proposal_masks: (B, M, H, W); pair_valid: (B, O, M)
    bool, valid objects x real proposals (the mean runs over these pairs only).
    """
    with torch.no_grad():
        iou = mask_iou(targets > threshold, proposal_masks > threshold).to(cosine.dtype)
        goal = greedy_iou_assignment(iou, pair_valid)
    validf = pair_valid.to(cosine.dtype)
    return (((cosine - goal) ** 2) * validf).sum() / validf.sum().clamp_min(1.0)


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
