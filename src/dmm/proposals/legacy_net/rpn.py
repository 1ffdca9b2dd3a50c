"""maskrcnn-benchmark's RPN at test time: torchvision's ``RPNHead`` and the legacy post-processing.

maskrcnn-benchmark ``modeling/rpn/inference.py``: per level and image, the
top ``PRE_NMS_TOP_N_TEST`` anchors by sigmoid **probability**, decoded with weights (1, 1, 1, 1)
and the +1 coder, clipped, NMS 0.7 (``box_ops``: the +1 areas), the first ``POST_NMS_TOP_N_TEST`` survivors;
then the levels P2..P6 concatenated and the top ``FPN_POST_NMS_TOP_N_TEST`` by probability kept
per image. torchvision ranks logits, runs one batched NMS over the levels and drops small and
low-scoring boxes instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.detection.rpn import RPNHead

from .anchors import ANCHOR_SIZES, ANCHOR_STRIDES, ASPECT_RATIOS, cell_anchors, grid_anchors
from .box_ops import RPN_WEIGHTS, clip_boxes, decode_boxes, legacy_nms, remove_small_boxes


@dataclass
class RPNSettings:
    """The test-time RPN settings of the caffe2 FPN configs (yaml and ``config/defaults.py``)."""

    anchor_sizes: tuple[int, ...] = ANCHOR_SIZES
    anchor_strides: tuple[int, ...] = ANCHOR_STRIDES
    aspect_ratios: tuple[float, ...] = ASPECT_RATIOS
    pre_nms_top_n: int = 1000
    post_nms_top_n: int = 1000
    fpn_post_nms_top_n: int = 1000
    nms_thresh: float = 0.7
    min_size: float = 0.0


@dataclass
class LevelProposals:
    """One level's proposals of one image.

    Attributes:
        topk_index: (k,) int64 positions in the level's (y, x, anchor) order.
        topk_prob: (k,) float32 probabilities there, decreasing.
        regression: (k, 4) deltas there.
        decoded: (k, 4) decoded boxes before clipping.
        boxes: (n, 4) clipped boxes kept by NMS, by decreasing probability.
        objectness: (n,) their probabilities.
    """

    topk_index: torch.Tensor
    topk_prob: torch.Tensor
    regression: torch.Tensor
    decoded: torch.Tensor
    boxes: torch.Tensor
    objectness: torch.Tensor


def flatten_level(objectness: torch.Tensor, regression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, A, H, W) logits and (N, 4A, H, W) deltas as (N, H*W*A) and (N, H*W*A, 4), (y, x, a) order."""
    n, a, h, w = objectness.shape
    logits = objectness.permute(0, 2, 3, 1).reshape(n, -1)
    deltas = regression.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
    return logits, deltas


def level_proposals(logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor,
                    image_size: tuple[int, int], settings: RPNSettings) -> LevelProposals:
    """One level's proposals of one image.

    Args:
        logits: (L,) objectness logits, (y, x, anchor) order.
        deltas: (L, 4) box deltas, same order.
        anchors: (L, 4) the level's anchors.
        image_size: (h, w) of the resized, unpadded image (the clip bounds).
    """
    prob = logits.sigmoid()
    k = min(settings.pre_nms_top_n, int(prob.shape[0]))
    topk_prob, topk_index = (t[0] for t in prob[None].topk(k, dim=1, sorted=True))  # as batched
    regression = deltas[topk_index]
    decoded = decode_boxes(regression.reshape(-1, 4), anchors[topk_index], RPN_WEIGHTS)
    boxes = clip_boxes(decoded, image_size)
    keep = remove_small_boxes(boxes, settings.min_size)
    boxes, objectness = boxes[keep], topk_prob[keep]
    keep = legacy_nms(boxes, objectness, settings.nms_thresh)
    if settings.post_nms_top_n > 0:
        keep = keep[: settings.post_nms_top_n]
    return LevelProposals(topk_index, topk_prob, regression, decoded, boxes[keep], objectness[keep])


def merge_levels(levels: list[LevelProposals], top_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The image's proposals: the levels concatenated (P2..P6), the ``top_n`` best by probability
    (sorted, decreasing). Returns (n, 4) boxes and (n,) probabilities."""
    boxes = torch.cat([lv.boxes for lv in levels])
    objectness = torch.cat([lv.objectness for lv in levels])
    k = min(top_n, int(objectness.shape[0]))
    _, order = torch.topk(objectness, k, dim=0, sorted=True)
    return boxes[order], objectness[order]


class LegacyRPN(nn.Module):
    """torchvision's ``RPNHead`` (one 3x3 conv + ReLU, 1x1 logits and deltas) with
    maskrcnn-benchmark's anchors and test-time post-processing.

    Args:
        in_channels: FPN channels (256).
        settings: :class:`RPNSettings`.
    Attributes:
        cells: per level, the (A, 4) float32 cell anchors (CPU; not in the state dict, which
            maskrcnn-benchmark's holds as ``rpn.anchor_generator.cell_anchors.<level>``).
    """

    def __init__(self, in_channels: int = 256, settings: RPNSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or RPNSettings()
        s = self.settings
        self.head = RPNHead(in_channels, len(s.aspect_ratios))
        self.cells = [cell_anchors(st, sz, s.aspect_ratios) for st, sz in zip(s.anchor_strides, s.anchor_sizes)]

    def anchors(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level, the (H*W*A, 4) anchors of the padded batch's feature maps."""
        return [grid_anchors(cell.to(f.device), stride, tuple(f.shape[-2:]))
                for cell, stride, f in zip(self.cells, self.settings.anchor_strides, features)]

    def forward(self, features: list[torch.Tensor], image_sizes: list[tuple[int, int]],
                trace: list[dict] | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image, ``(boxes (n, 4), objectness (n,))`` proposals.

        Args:
            features: P2..P6, each (B, 256, H_l, W_l).
            image_sizes: per image, (h, w) of the resized, unpadded image.
            trace: when given, one dict per image receives the stage values (``rpn_*`` keys).
        """
        logits, deltas = self.head(features)
        anchors = self.anchors(features)
        flat = [flatten_level(o, r) for o, r in zip(logits, deltas)]
        out = []
        for i, size in enumerate(image_sizes):
            levels = [level_proposals(lg[i], dl[i], anc, size, self.settings)
                      for (lg, dl), anc in zip(flat, anchors)]
            boxes, objectness = merge_levels(levels, self.settings.fpn_post_nms_top_n)
            if trace is not None:
                trace[i].update(rpn_logits=[o[i] for o in logits], rpn_regression=[r[i] for r in deltas],
                                anchors=anchors, rpn_levels=levels, proposals=boxes,
                                proposals_objectness=objectness)
            out.append((boxes, objectness))
        return out
