"""maskrcnn-benchmark's box and mask heads at test time, from torchvision's modules.

maskrcnn-benchmark ``modeling/poolers.py``, ``roi_heads/box_head/inference.py`` and
``roi_heads/mask_head/inference.py``: each box is pooled on the FPN level
``floor(4 + log2(sqrt(area+1) / 224 + 1e-6))`` clamped to P2..P5 by ``torchvision.ops.roi_align``
with ``aligned=False`` (7x7 for the box head, 14x14 for the mask head, sampling ratio 2); the box
head is torchvision's ``TwoMLPHead`` + ``FastRCNNPredictor``; detections keep, for each class
``j = 1 .. C - 1`` in turn, the proposals with probability ``> SCORE_THRESH`` in proposal order,
NMS 0.5 (``box_ops``: the +1 areas, ascending indices), concatenated in class order and cut at
``DETECTIONS_PER_IMG`` by a ``kthvalue`` threshold without re-sorting; the mask head is
torchvision's ``MaskRCNNHeads`` + ``MaskRCNNPredictor`` and each detection keeps the 28x28
sigmoid of its label's channel, not pasted into the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import roi_align

from .box_ops import BOX_HEAD_WEIGHTS, box_areas, clip_boxes, decode_boxes, legacy_nms


@dataclass
class RoIHeadsSettings:
    """The test-time head settings of the caffe2 FPN configs; ``score_thresh`` and
    ``detections_per_img`` are ``MODEL.ROI_HEADS.SCORE_THRESH`` / ``DETECTIONS_PER_IMG``
    (maskrcnn-benchmark's defaults 0.05 and 100; 2019's scripts set 0.0 and 50 for some splits)."""

    pooler_scales: tuple[float, ...] = (0.25, 0.125, 0.0625, 0.03125)
    box_resolution: int = 7
    mask_resolution: int = 14
    sampling_ratio: int = 2
    canonical_scale: int = 224
    canonical_level: int = 4
    score_thresh: float = 0.05
    nms: float = 0.5
    detections_per_img: int = 100
    bbox_weights: tuple[float, ...] = BOX_HEAD_WEIGHTS


@dataclass
class Detections:
    """The box head's output for one image (maskrcnn-benchmark's order: class, then proposal).

    Attributes:
        boxes: (M, 4) xyxy, in pixels of the resized image, clipped.
        scores: (M,) float32 class probabilities.
        labels: (M,) int64 classes (1 in a binary model).
        per_class_nms: (C - 1, 2) int64 per class: boxes into NMS, boxes kept.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    per_class_nms: torch.Tensor


def box_levels(boxes: torch.Tensor, settings: RoIHeadsSettings) -> torch.Tensor:
    """(N,) float32 level indices 0..3 (P2..P5) of (N, 4) boxes: ``floor(4 + log2(sqrt(area) / 224
    + 1e-6))`` with the +1 area, clamped; int64 minus the float ``k_min`` as maskrcnn-benchmark."""
    k_min = -torch.log2(torch.tensor(settings.pooler_scales[0], dtype=torch.float32)).item()
    k_max = -torch.log2(torch.tensor(settings.pooler_scales[-1], dtype=torch.float32)).item()
    s = torch.sqrt(box_areas(boxes))
    levels = torch.floor(settings.canonical_level + torch.log2(s / settings.canonical_scale + 1e-6))
    levels = torch.clamp(levels, min=k_min, max=k_max)
    return levels.to(torch.int64) - k_min


def pool_levels(features: list[torch.Tensor], boxes: list[torch.Tensor], resolution: int,
                settings: RoIHeadsSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """ROIAlign of every image's boxes, each on its own level.

    Args:
        features: P2..P5, each (B, C, H_l, W_l).
        boxes: per image, (n_i, 4) xyxy in pixels of the resized image.
    Returns:
        (sum n_i, C, resolution, resolution) pooled features and (sum n_i,) float32 levels.
    """
    all_boxes = torch.cat(boxes)
    ids = torch.cat([torch.full((len(b), 1), i, dtype=all_boxes.dtype, device=all_boxes.device)
                     for i, b in enumerate(boxes)])
    rois = torch.cat([ids, all_boxes], dim=1)
    levels = box_levels(all_boxes, settings)
    first = features[0]
    out = first.new_zeros((len(rois), first.shape[1], resolution, resolution))
    for level, (feature, scale) in enumerate(zip(features, settings.pooler_scales)):
        index = torch.nonzero(levels == level).squeeze(1)
        if len(index):
            out[index] = roi_align(feature, rois[index], (resolution, resolution), scale,
                                   settings.sampling_ratio, aligned=False)
    return out, levels


def postprocess_detections(class_logits: torch.Tensor, box_regression: torch.Tensor,
                           proposals: torch.Tensor, image_size: tuple[int, int],
                           settings: RoIHeadsSettings) -> Detections:
    """One image's detections from its box-head outputs.

    Args:
        class_logits: (N, C) logits of the image's N proposals.
        box_regression: (N, 4C) class-specific deltas.
        proposals: (N, 4) the RPN proposals they refine.
        image_size: (h, w) of the resized image.
    """
    n, num_classes = class_logits.shape
    prob = F.softmax(class_logits, -1)
    boxes = decode_boxes(box_regression.view(n, -1), proposals, settings.bbox_weights)
    boxes = clip_boxes(boxes.reshape(-1, 4), image_size).reshape(-1, num_classes * 4)
    scores = prob.reshape(-1).reshape(-1, num_classes)
    above = scores > settings.score_thresh
    kept_boxes, kept_scores, kept_labels, counts = [], [], [], []
    for j in range(1, num_classes):
        index = above[:, j].nonzero().squeeze(1)
        scores_j = scores[index, j]
        boxes_j = boxes[index, j * 4: (j + 1) * 4]
        keep = legacy_nms(boxes_j, scores_j, settings.nms)
        kept_boxes.append(boxes_j[keep])
        kept_scores.append(scores_j[keep])
        kept_labels.append(torch.full((len(keep),), j, dtype=torch.int64, device=scores.device))
        counts.append((len(index), len(keep)))
    result = Detections(torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels),
                        torch.tensor(counts, dtype=torch.int64).reshape(-1, 2))
    total = len(result.scores)
    if total > settings.detections_per_img > 0:
        threshold, _ = torch.kthvalue(result.scores.cpu(), total - settings.detections_per_img + 1)
        keep = torch.nonzero(result.scores >= threshold.item()).squeeze(1)
        result = Detections(result.boxes[keep], result.scores[keep], result.labels[keep], result.per_class_nms)
    return result


class LegacyRoIHeads(nn.Module):
    """Box and mask heads with torchvision's modules and maskrcnn-benchmark's test-time rules.

    Submodules (torchvision's names): ``box_head`` (``TwoMLPHead``: fc6, fc7), ``box_predictor``
    (``FastRCNNPredictor``: cls_score, bbox_pred), ``mask_head`` (``MaskRCNNHeads``: four 3x3
    convs), ``mask_predictor`` (``MaskRCNNPredictor``: conv5_mask, mask_fcn_logits).
    """

    def __init__(self, num_classes: int, in_channels: int = 256, settings: RoIHeadsSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or RoIHeadsSettings()
        r = self.settings.box_resolution
        self.box_head = TwoMLPHead(in_channels * r * r, 1024)
        self.box_predictor = FastRCNNPredictor(1024, num_classes)
        self.mask_head = MaskRCNNHeads(in_channels, [256, 256, 256, 256], 1)
        self.mask_predictor = MaskRCNNPredictor(256, 256, num_classes)

    def forward(self, features: list[torch.Tensor], proposals: list[torch.Tensor],
                image_sizes: list[tuple[int, int]], trace: list[dict] | None = None
                ) -> list[tuple[Detections, torch.Tensor]]:
        """Per image, its :class:`Detections` and their (M, 1, 28, 28) mask probabilities.

        Args:
            features: P2..P6 (P6 is not pooled), each (B, 256, H_l, W_l).
            proposals: per image, (N_i, 4) RPN proposals.
            image_sizes: per image, (h, w) of the resized image.
            trace: when given, one dict per image receives the stage values.
        """
        s = self.settings
        pooled, levels = pool_levels(features[:4], proposals, s.box_resolution, s)
        box_features = self.box_head(pooled)
        class_logits, box_regression = self.box_predictor(box_features)
        counts = [len(p) for p in proposals]
        detections = [postprocess_detections(lg, rg, p, size, s) for lg, rg, p, size in
                      zip(class_logits.split(counts), box_regression.split(counts), proposals, image_sizes)]
        mask_pooled, mask_levels = pool_levels(features[:4], [d.boxes for d in detections],
                                               s.mask_resolution, s)
        mask_logits = self.mask_predictor(self.mask_head(mask_pooled))
        labels = torch.cat([d.labels for d in detections])
        masks = mask_logits.sigmoid()[torch.arange(len(labels), device=labels.device), labels][:, None]
        m_counts = [len(d.labels) for d in detections]
        if trace is not None:
            for i, (t, n0) in enumerate(zip(trace, [sum(counts[:i]) for i in range(len(counts))])):
                sl = slice(n0, n0 + counts[i])
                t.update(box_levels=levels[sl], box_pooled=pooled[sl], box_features=box_features[sl],
                         class_logits=class_logits[sl], box_regression=box_regression[sl],
                         detections=detections[i])
            for i, (t, n0) in enumerate(zip(trace, [sum(m_counts[:i]) for i in range(len(m_counts))])):
                sl = slice(n0, n0 + m_counts[i])
                t.update(mask_levels=mask_levels[sl], mask_pooled=mask_pooled[sl], mask_logits=mask_logits[sl])
        return list(zip(detections, masks.split(m_counts)))
