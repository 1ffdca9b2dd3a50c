"""DMMNet: encoder, ROI features, matching and decoder, stepped one frame at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..structures import Proposals
from .cost import cosine_similarity, similarity
from .decoder import Decoder
from .encoder import Encoder, Features
from .losses import match_loss, soft_iou_loss
from .matching import Matcher, build_matcher, matched_masks
from ..boxes import mask_boxes
from .roi_features import roi_features

MATCH_ROWS = ("first_k", "valid")
OBJECT_RULE_ROWS = {"legacy": "first_k", "all": "valid"}  # MODEL.OBJECTS -> the rows rule


@dataclass
class PaddedProposals:
    """One batch's proposals padded into tensors for the matching layer.

    Attributes:
        masks: (B, M, H, W) float in [0, 1]; zero for padding columns.
        columns: (B, M) bool, the columns of each problem: its real proposals, or, with no more
            proposals than rows, those plus zero-similarity columns up to rows + 1.
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
        matched: (B, O, H, W) matched masks (not clamped: they can exceed 1); zero outside the
            matching problem's valid rows.
        refined: (B, O, H, W) refined probabilities in [0, 1]; zero for slots that did not run.
        memory: the decoder's new temporal state (one (B, O, C_l, h_l, w_l) per level).
        assignment: (B, O, M) the matching layer's output before the keep rule.
        cosine: (B, O, M) template/proposal cosine similarities.
        proposals: the padded proposals the frame was matched against.
        rows: (B, O) bool, the rows of each matching problem.
        run: (B, O) bool, the slots the decoder refined.
    """

    matched: torch.Tensor
    refined: torch.Tensor
    memory: list[torch.Tensor]
    assignment: torch.Tensor
    cosine: torch.Tensor
    proposals: PaddedProposals
    rows: torch.Tensor
    run: torch.Tensor

    def losses(self, targets: torch.Tensor, weights: torch.Tensor, threshold: float = 0.5) -> dict[str, torch.Tensor]:
        """The frame's unweighted loss terms (2019 ``trainer.py``).

        Args:
            targets: (B, O, H, W) ground truth of the frame.
            weights: (B, O) sample weights: 1 for every object of the clip, present or not.
        Returns:
            ``match``: :func:`~dmm.model.losses.match_loss` over each problem's rows x real
            proposals; ``matched_iou``: soft IoU of the matched masks over the weighted slots;
            ``refined_iou``: soft IoU of the refined masks over the weighted slots that ran.
        """
        pairs = self.rows[:, :, None] & self.proposals.real[:, None, :]
        ran = self.run.any(dim=0)
        return {
            "match": match_loss(self.cosine, targets, self.proposals.masks, pairs, threshold),
            "matched_iou": soft_iou_loss(self.matched, targets, weights),
            "refined_iou": soft_iou_loss(self.refined[:, ran], targets[:, ran], weights[:, ran]),
        }


def pad_proposals(proposals: Sequence[Proposals], num_rows: torch.Tensor, size: tuple[int, int],
                  device: torch.device, dtype: torch.dtype, max_rows: int) -> PaddedProposals:
    """Pad a batch's proposals (full mode at ``size``) to a common column count.

    num_rows: (B,) the number of rows (templates) of each problem, on ``device``; a problem with
    no more proposals than rows gets zero columns up to rows + 1 (2019 ``match_model.py``).
    ``max_rows`` bounds the rows (the slot count): the width is fixed without reading
    ``num_rows`` back to the host.
    """
    h, w = size
    for i, p in enumerate(proposals):
        if p.mask_mode != "full" or tuple(p.image_size) != (h, w):
            raise ValueError(
                f"proposals of frame {i} must be full-mode masks at the input size {(h, w)}, got "
                f"mode {p.mask_mode!r} at {tuple(p.image_size)} (paste and filter them first)"
            )
    counts = [len(p) for p in proposals]
    m = max(counts + [max_rows + 1]) if proposals else 0
    masks = torch.zeros(len(proposals), m, h, w, device=device, dtype=dtype)
    for i, (p, c) in enumerate(zip(proposals, counts)):
        masks[i, :c] = p.masks.to(device=device, dtype=dtype)
    count = torch.tensor(counts, device=device)
    width = torch.where(count > num_rows, count, num_rows + 1)
    slots = torch.arange(m, device=device)[None, :]
    boxes = [p.boxes.to(device=device, dtype=dtype) for p in proposals]
    return PaddedProposals(masks, slots < width[:, None], slots < count[:, None], boxes)


def match_rows(valid: torch.Tensor, rule: str = "first_k") -> torch.Tensor:
    """The rows of each frame's matching problem. valid: (B, O) bool -> (B, O) bool.

    ``"first_k"`` (2019 ``dmm_model.py``): the first k slots, k = the number of valid templates,
    with the templates of invalid slots among them zeroed and their outputs dropped; the same as
    ``"valid"`` whenever the valid slots are a prefix (YouTube-VOS numbers objects in order of
    appearance). ``"valid"``: exactly the valid slots.
    """
    if rule == "valid":
        return valid
    if rule == "first_k":
        slots = torch.arange(valid.shape[1], device=valid.device)
        return slots[None, :] < valid.sum(dim=1, keepdim=True)
    raise ValueError(f"unknown match-rows rule {rule!r} (one of {MATCH_ROWS})")


class DMMNet(nn.Module):
    """The whole network. ``model.train()`` / ``model.eval()`` select the matching settings and
    the decoder's output resize.

    State-dict keys are exactly the authors' (``encoder.*``, ``decoder.*``).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, matcher: Matcher, iou_weight: float = 0.3,
                 iou_threshold: float = 0.5, roi_size: int = 14, roi_sampling_ratio: int = 2,
                 roi_aligned: bool = False, roi_pool: str = "auto", match_rows: str = "first_k",
                 amp: bool = False) -> None:
        super().__init__()
        if match_rows not in MATCH_ROWS:
            raise ValueError(f"unknown match-rows rule {match_rows!r} (one of {MATCH_ROWS})")
        self.encoder = encoder
        self.decoder = decoder
        self.matcher = matcher
        self.iou_weight = iou_weight
        self.iou_threshold = iou_threshold
        self.roi_size = roi_size
        self.roi_sampling_ratio = roi_sampling_ratio
        self.roi_aligned = roi_aligned
        self.roi_pool = roi_pool
        self.match_rows = match_rows
        self.amp = amp

    @classmethod
    def from_config(cls, cfg) -> "DMMNet":
        """Build from the full config (``cfg.MODEL`` and ``cfg.MATCHING``)."""
        m = cfg.MODEL
        if m.OBJECTS not in OBJECT_RULE_ROWS:
            raise ConfigError(f"MODEL.OBJECTS {m.OBJECTS!r} is not one of {sorted(OBJECT_RULE_ROWS)}")
        channels = list(m.DECODER_CHANNELS)
        if channels[0] != m.HIDDEN_SIZE:
            raise ConfigError(f"MODEL.DECODER_CHANNELS[0] ({channels[0]}) must equal MODEL.HIDDEN_SIZE ({m.HIDDEN_SIZE})")
        encoder = Encoder(m.BACKBONE, m.SKIP_CHANNELS, m.PROP_MID_CHANNELS, m.PROP_CHANNELS,
                          pretrained=m.PRETRAINED, weights_dir=m.WEIGHTS_DIR)
        decoder = Decoder(m.SKIP_CHANNELS, channels, m.KERNEL_SIZE, shared_gate_conv=m.DECODER_SHARED_GATES)
        return cls(encoder, decoder, build_matcher(cfg.MATCHING), iou_weight=m.IOU_WEIGHT,
                   iou_threshold=m.IOU_MASK_THRESHOLD, roi_size=m.ROI_SIZE,
                   roi_sampling_ratio=m.ROI_SAMPLING_RATIO, roi_aligned=m.ROI_ALIGNED,
                   roi_pool=m.ROI_POOL, match_rows=OBJECT_RULE_ROWS[m.OBJECTS], amp=m.AMP)

    def encode(self, images: torch.Tensor) -> Features:
        """images: (B, 3, H, W) normalised -> :class:`Features` (float32; with ``MODEL.AMP`` the
        backbone and necks run under bfloat16 autocast)."""
        if not self.amp:
            return self.encoder(images)
        with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16):
            features = self.encoder(images)
        return Features([s.float() for s in features.skips], [p.float() for p in features.props])

    def _roi(self, features: Features, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        return roi_features(features.props, boxes, self.roi_size, self.roi_sampling_ratio, self.roi_aligned,
                            self.roi_pool)

    def template_features(self, features: Features, masks: torch.Tensor) -> torch.Tensor:
        """ROI features of the tight box of each mask (the whole image if empty).

        features: of B frames; masks: (B, O, H, W) reference masks -> (B, O, 512).
        """
        b, o, h, w = masks.shape
        boxes = mask_boxes(masks.reshape(b * o, h, w), 0.5, empty="image").reshape(b, o, 4)
        return self._roi(features, list(boxes.unbind(0))).reshape(b, o, -1)

    def proposal_features(self, features: Features, padded: PaddedProposals) -> torch.Tensor:
        """(B, M, 512) ROI features of the real proposals, zero in padding columns."""
        b, m = padded.real.shape
        flat = self._roi(features, padded.boxes)
        out = flat.new_zeros(b, m, flat.shape[1])
        return out.masked_scatter(padded.real[:, :, None], flat) if flat.shape[0] else out

    def step(self, features: Features, templates: torch.Tensor, proposals: Sequence[Proposals],
             prev_masks: torch.Tensor, ref_masks: torch.Tensor, iou_masks: torch.Tensor,
             valid: torch.Tensor, memory: Sequence[torch.Tensor] | None = None,
             run: torch.Tensor | None = None) -> StepOutput:
        """Match and refine one frame.

        Args:
            features: this frame's :class:`Features` (B frames).
            templates: (B, O, 512) template features.
            proposals: B :class:`Proposals`, full mode at (H, W), already filtered; may be empty.
            prev_masks: (B, O, H, W) the previous prediction (decoder input).
            ref_masks: (B, O, H, W) the reference masks (decoder input).
            iou_masks: (B, O, H, W) previous masks of the cost's IoU term.
            valid: (B, O) bool, the slots with a template.
            memory: the decoder's temporal state from the previous frame, or None (zeros).
            run: (B, O) bool, the slots the decoder refines (default: the matching problem's rows,
                as the 2019 evaluator runs the first k slots).
        """
        b, o, h, w = prev_masks.shape
        if len(proposals) != b:
            raise ValueError(f"expected {b} Proposals (one per frame), got {len(proposals)}")
        rows = match_rows(valid, self.match_rows)
        padded = pad_proposals(proposals, rows.sum(1), (h, w), templates.device, templates.dtype, o)
        prop_feats = self.proposal_features(features, padded)
        live = valid & rows
        cosine = cosine_similarity(templates * valid[:, :, None].to(templates.dtype), prop_feats)
        sim = similarity(cosine, iou_masks, padded.masks, self.iou_weight, self.iou_threshold)
        assignment = self.matcher.match(-sim, rows[:, :, None] & padded.columns[:, None, :], self.training)
        kept = self.matcher.keep(assignment, self.training)
        matched = matched_masks(kept, padded.masks) * live[:, :, None, None].to(kept.dtype)
        run = rows if run is None else run
        refined, memory = self.decoder(features.skips, [prev_masks, ref_masks, matched], run, memory)
        return StepOutput(matched, refined, memory, assignment, cosine, padded, rows, run)
