"""The matching cost: cosine similarity of ROI features mixed with mask IoU (2019 ``match_model.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IOU_EPS = 1e-6  # added to the union, as the 2019 code's compute_iou_binary_mask_2D does


def cosine_similarity(templates: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
    """templates: (B, N, D), proposals: (B, M, D) -> (B, N, M) cosine similarities.

    Computed by ``F.cosine_similarity`` over the feature dimension of the (template, proposal)
    pairs, the call the 2019 code makes, so the values carry its rounding.
    """
    b, n, d = templates.shape
    m = proposals.shape[1]
    return F.cosine_similarity(templates[:, :, :, None].expand(b, n, d, m),
                               proposals.transpose(1, 2)[:, None].expand(b, n, d, m), dim=2)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks, ``inter / (union + 1e-6)``. a: (B, N, H, W) bool, b: (B, M, H, W) bool -> (B, N, M)."""
    af = a.flatten(2).float()
    bf = b.flatten(2).float()
    inter = torch.bmm(af, bf.transpose(1, 2))
    union = af.sum(dim=2)[:, :, None] + bf.sum(dim=2)[:, None, :] - inter
    return inter / (union + IOU_EPS)


def similarity(cosine: torch.Tensor, prev_masks: torch.Tensor, proposal_masks: torch.Tensor,
               iou_weight: float = 0.3, threshold: float = 0.5) -> torch.Tensor:
    """(1 - w) * cosine + w * IoU(prev_masks > t, proposal_masks > t).

    cosine: (B, N, M), prev_masks: (B, N, H, W), proposal_masks: (B, M, H, W) -> (B, N, M).
    The cost of the matching layer is the negative similarity.
    """
    iou = mask_iou(prev_masks > threshold, proposal_masks > threshold).to(cosine.dtype)
    return cosine * (1.0 - iou_weight) + iou * iou_weight
