"""DMMNet: encoder, ROI features, matching and decoder, stepped one frame at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..proposals.structures import Proposals
from .cost import cosine_similarity, similarity
from .decoder import Decoder, DecoderState
from .encoder import Encoder, Features
from .losses import match_loss, soft_iou_loss
from .matching import Matcher, build_matcher, matched_masks
from .roi_features import mask_boxes, roi_features


@dataclass
class PaddedProposals:
    """One batch's proposals padded into tensors for the matching layer.

    Attributes:
        masks: (B, M, H, W) float in [0, 1]; zero for padding columns.
        columns: (B, M) bool, the columns of each problem: its real proposals, or, with no more
            proposals than valid objects, those plus zero-similarity columns up to objects + 1.
        real: (B, M) bool, the real proposals.
        boxes: B tensors (M_b, 4), the real proposals' boxes.
    """

    masks: torch.Tensor
    columns: torch.Tensor
    real: torch.Tensor
    boxes: list[torch.Tensor]


@dataclass
class StepOutput:
    """What :meth:`DMMNet.step` returns for one frame.

    Attributes:
        matched: (B, O, H, W) matched masks in [0, 1] (zero for invalid objects).
        refined: (B, O, H, W) refined probabilities in [0, 1] (zero for invalid objects).
        state: the decoder's new :class:`DecoderState`.
        assignment: (B, O, M) the matching layer's output before the keep rule.
        losses: unweighted "match", "matched_iou", "refined_iou" when targets were given, else empty.
    """

    matched: torch.Tensor
    refined: torch.Tensor
    state: DecoderState
    assignment: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


def pad_proposals(proposals: Sequence[Proposals], num_valid: Sequence[int], size: tuple[int, int],
                  device: torch.device, dtype: torch.dtype) -> PaddedProposals:
    """Pad a batch's proposals (full mode at ``size``) to a common column count.

    num_valid: per frame, the number of valid objects (templates) of its problem.
    """
    h, w = size
    for i, p in enumerate(proposals):
        if p.mask_mode != "full" or tuple(p.image_size) != (h, w):
            raise ValueError(
                f"proposals of frame {i} must be full-mode masks at the input size {(h, w)}, got "
                f"mode {p.mask_mode!r} at {tuple(p.image_size)} (paste and filter them first)"
            )
    counts = [len(p) for p in proposals]
    widths = [max(c, n + 1) if c <= n else c for c, n in zip(counts, num_valid)]
    m = max(widths) if widths else 0
    masks = torch.zeros(len(proposals), m, h, w, device=device, dtype=dtype)
    columns = torch.zeros(len(proposals), m, dtype=torch.bool, device=device)
    real = torch.zeros_like(columns)
    for i, (p, c, width) in enumerate(zip(proposals, counts, widths)):
        masks[i, :c] = p.masks.to(device=device, dtype=dtype)
        columns[i, :width] = True
        real[i, :c] = True
    boxes = [p.boxes.to(device=device, dtype=dtype) for p in proposals]
    return PaddedProposals(masks, columns, real, boxes)


class DMMNet(nn.Module):
    """The whole network. ``model.train()`` / ``model.eval()`` select the matching settings.

    State-dict keys are exactly the authors' (``encoder.*``, ``decoder.*``).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, matcher: Matcher, iou_weight: float = 0.3,
                 iou_threshold: float = 0.5, roi_size: int = 14, roi_sampling_ratio: int = 2,
                 roi_aligned: bool = False, roi_pool: str = "separable") -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.matcher = matcher
        self.iou_weight = iou_weight
        self.iou_threshold = iou_threshold
        self.roi_size = roi_size
        self.roi_sampling_ratio = roi_sampling_ratio
        self.roi_aligned = roi_aligned
        self.roi_pool = roi_pool

    @classmethod
    def from_config(cls, cfg) -> "DMMNet":
        """Build from the full config (``cfg.MODEL`` and ``cfg.MATCHING``)."""
        m = cfg.MODEL
        channels = list(m.DECODER_CHANNELS)
        if channels[0] != m.HIDDEN_SIZE:
            raise ValueError(f"MODEL.DECODER_CHANNELS[0] ({channels[0]}) must equal MODEL.HIDDEN_SIZE ({m.HIDDEN_SIZE})")
        encoder = Encoder(m.BACKBONE, m.SKIP_CHANNELS, m.PROP_MID_CHANNELS, m.PROP_CHANNELS,
                          pretrained=m.PRETRAINED, weights_dir=m.WEIGHTS_DIR)
        decoder = Decoder(m.SKIP_CHANNELS, channels, m.KERNEL_SIZE)
        return cls(encoder, decoder, build_matcher(cfg.MATCHING), iou_weight=m.IOU_WEIGHT,
                   iou_threshold=m.IOU_MASK_THRESHOLD, roi_size=m.ROI_SIZE,
                   roi_sampling_ratio=m.ROI_SAMPLING_RATIO, roi_aligned=m.ROI_ALIGNED,
                   roi_pool=m.ROI_POOL)

    def encode(self, images: torch.Tensor) -> Features:
        """images: (B, 3, H, W) normalised -> :class:`Features`."""
        return self.encoder(images)

    def _roi(self, features: Features, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        return roi_features(features.props, boxes, self.roi_size, self.roi_sampling_ratio, self.roi_aligned,
                            self.roi_pool)

    def template_features(self, features: Features, masks: torch.Tensor) -> torch.Tensor:
        """ROI features of the tight box of each mask (the whole image if empty).

        features: of B frames; masks: (B, O, H, W) reference masks -> (B, O, 512).
        """
        b, o, h, w = masks.shape
        boxes = mask_boxes(masks.reshape(b * o, h, w), self.iou_threshold).reshape(b, o, 4)
        return self._roi(features, list(boxes.unbind(0))).reshape(b, o, -1)

    def proposal_features(self, features: Features, padded: PaddedProposals) -> torch.Tensor:
        """(B, M, 512) ROI features of the real proposals, zero in padding columns."""
        b, m = padded.real.shape
        flat = self._roi(features, padded.boxes)
        out = flat.new_zeros(b, m, flat.shape[1])
        return out.masked_scatter(padded.real[:, :, None], flat) if flat.shape[0] else out

    def step(self, features: Features, templates: torch.Tensor, proposals: Sequence[Proposals],
             prev_masks: torch.Tensor, ref_masks: torch.Tensor, iou_masks: torch.Tensor,
             valid: torch.Tensor, state: DecoderState | None = None,
             targets: torch.Tensor | None = None) -> StepOutput:
        """Match and refine one frame.

        Args:
            features: this frame's :class:`Features` (B frames).
            templates: (B, O, 512) template features.
            proposals: B :class:`Proposals`, full mode at (H, W), already filtered; may be empty.
            prev_masks: (B, O, H, W) the previous prediction (decoder input).
            ref_masks: (B, O, H, W) the first-frame reference masks (decoder input).
            iou_masks: (B, O, H, W) previous masks of the cost's IoU term.
            valid: (B, O) bool.
            state: the previous :class:`DecoderState` or None.
            targets: (B, O, H, W) ground truth, or None (no losses).
        """
        b, o, h, w = prev_masks.shape
        if len(proposals) != b:
            raise ValueError(f"expected {b} Proposals (one per frame), got {len(proposals)}")
        dtype = templates.dtype
        padded = pad_proposals(proposals, valid.sum(1).tolist(), (h, w), templates.device, dtype)
        prop_feats = self.proposal_features(features, padded)
        cosine = cosine_similarity(templates, prop_feats)
        sim = similarity(cosine, iou_masks, padded.masks, self.iou_weight, self.iou_threshold)
        pair_valid = valid[:, :, None] & padded.columns[:, None, :]
        assignment = self.matcher.match(-sim, pair_valid, self.training)
        kept = self.matcher.keep(assignment, self.training)
        matched = matched_masks(kept, padded.masks)
        refined, state = self.decoder(features.skips, [prev_masks, ref_masks, matched], valid, state)
        losses = {}
        if targets is not None:
            losses = {
                "match": match_loss(cosine, targets, padded.masks, valid[:, :, None] & padded.real[:, None, :],
                                    self.iou_threshold),
                "matched_iou": soft_iou_loss(matched, targets, valid),
                "refined_iou": soft_iou_loss(refined, targets, valid),
            }
        return StepOutput(matched, refined, state, assignment, losses)
