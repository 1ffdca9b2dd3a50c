"""The matching cost: cosine similarity of ROI features mixed with mask IoU."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_similarity(templates: torch.Tensor, proposals: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """templates: (B, N, D), proposals: (B, M, D) -> (B, N, M) cosine similarities."""
    return torch.bmm(F.normalize(templates, dim=2, eps=eps), F.normalize(proposals, dim=2, eps=eps).transpose(1, 2))


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks. a: (B, N, H, W) bool, b: (B, M, H, W) bool -> (B, N, M); 0 if both empty."""
    af = a.flatten(2).float()
    bf = b.flatten(2).float()
    inter = torch.bmm(af, bf.transpose(1, 2))
    union = af.sum(dim=2)[:, :, None] + bf.sum(dim=2)[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.zeros_like(inter))


def similarity(cosine: torch.Tensor, prev_masks: torch.Tensor, proposal_masks: torch.Tensor,
               iou_weight: float = 0.3, threshold: float = 0.5) -> torch.Tensor:
    """(1 - w) * cosine + w * IoU(prev_masks > t, proposal_masks > t).

    cosine: (B, N, M), prev_masks: (B, N, H, W), proposal_masks: (B, M, H, W) -> (B, N, M).
    The cost of the matching layer is the negative similarity.
    """
    iou = mask_iou(prev_masks > threshold, proposal_masks > threshold).to(cosine.dtype)
    return (1.0 - iou_weight) * cosine + iou_weight * iou
