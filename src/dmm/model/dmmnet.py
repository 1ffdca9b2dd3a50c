"""DMMNet: encoder, ROI features, matching and decoder, stepped one frame at a time.

A video (or a training clip) goes through :meth:`DMMNet.start` at the frame where its objects
are given and :meth:`DMMNet.step` at every later frame; both take and return a
:class:`~dmm.structures.TrackState`. Which slots form the matching problem and which the decoder
refines is the model's :class:`~dmm.structures.SlotRule` (``MODEL.OBJECTS``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..structures import Proposals, SlotRule, TrackState
from .cost import cosine_similarity, similarity
from .decoder import Decoder
from .encoder import Encoder, Features
from .losses import match_loss, soft_iou_loss
from .matching import Matcher, build_matcher, matched_masks
from ..boxes import mask_boxes
from .roi_features import roi_features

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


class DMMNet(nn.Module):
    """The whole network. ``model.train()`` / ``model.eval()`` select the matching settings and
    the decoder's output resize.

    State-dict keys are exactly the authors' (``encoder.*``, ``decoder.*``).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, matcher: Matcher, iou_weight: float = 0.3,
                 iou_threshold: float = 0.5, roi_size: int = 14, roi_sampling_ratio: int = 2,
                 roi_aligned: bool = False, roi_pool: str = "auto", slots: SlotRule = SlotRule(),
                 amp: bool = False) -> None:
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
        self.slots = slots
        self.amp = amp

    @classmethod
    def from_config(cls, cfg) -> "DMMNet":
        """Build from the full config (``cfg.MODEL`` and ``cfg.MATCHING``)."""
        m = cfg.MODEL
        channels = list(m.DECODER_CHANNELS)
        if channels[0] != m.HIDDEN_SIZE:
            raise ConfigError(f"MODEL.DECODER_CHANNELS[0] ({channels[0]}) must equal MODEL.HIDDEN_SIZE ({m.HIDDEN_SIZE})")
        encoder = Encoder(m.BACKBONE, m.SKIP_CHANNELS, m.PROP_MID_CHANNELS, m.PROP_CHANNELS,
                          pretrained=m.PRETRAINED, weights_dir=m.WEIGHTS_DIR, imagenet_version=m.IMAGENET_WEIGHTS)
        decoder = Decoder(m.SKIP_CHANNELS, channels, m.KERNEL_SIZE, shared_gate_conv=m.DECODER_SHARED_GATES)
        return cls(encoder, decoder, build_matcher(cfg.MATCHING), iou_weight=m.IOU_WEIGHT,
                   iou_threshold=m.IOU_MASK_THRESHOLD, roi_size=m.ROI_SIZE,
                   roi_sampling_ratio=m.ROI_SAMPLING_RATIO, roi_aligned=m.ROI_ALIGNED,
                   roi_pool=m.ROI_POOL, slots=SlotRule.from_config(cfg), amp=m.AMP)

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

    def start(self, features: Features, proposals: Sequence[Proposals], state: TrackState,
              starting: torch.Tensor) -> tuple[StepOutput, TrackState]:
        """Begin tracking the ``starting`` (B, O) slots, whose masks and templates ``state`` already
        holds (:meth:`TrackState.given`): a full step on this frame, previous = reference = IoU
        masks = the given masks (zero elsewhere), no temporal state for the starting slots; its
        decoder state becomes their temporal state for the next frame (2019 ``evaluator.py``
        frame 0, ``trainer.py`` frame 0). Returns the step's output and the state with those slots
        active."""
        given = state.reference * starting[:, :, None, None].to(state.reference.dtype)
        memory = state.memory
        if memory is not None:
            memory = [torch.where(starting.view(*starting.shape, 1, 1, 1), torch.zeros_like(m), m) for m in memory]
        out = self._match_and_refine(features, proposals, replace(
            state, active=starting, previous=given, reference=given, iou=given, memory=memory))
        return out, replace(state, active=state.active | starting, memory=out.memory, iou=None)

    def step(self, features: Features, proposals: Sequence[Proposals],
             state: TrackState) -> tuple[StepOutput, TrackState]:
        """Match and refine one frame of the tracked objects.

        Args:
            features: this frame's :class:`Features` (B frames).
            proposals: B :class:`Proposals`, full mode at (H, W), already filtered; may be empty.
            state: the objects' state after the previous frame.
        Returns:
            the frame's :class:`StepOutput`, and the next state: previous = the refined masks of
            the slots that ran, the decoder's new memory (training replaces ``previous`` and
            ``iou`` by the ground truth or the model's own prediction).
        """
        out = self._match_and_refine(features, proposals, state)
        previous = torch.where(out.run[:, :, None, None], out.refined, state.previous)
        return out, replace(state, previous=previous, memory=out.memory, iou=None)

    def _match_and_refine(self, features: Features, proposals: Sequence[Proposals], state: TrackState) -> StepOutput:
        """The matching problem of ``state.active`` against ``proposals`` (the IoU term on
        ``state.iou``, by default ``previous`` on the active slots) and the decoder on
        (previous, reference, matched) for ``state.run`` (by default the problem's rows)."""
        valid, templates = state.active, state.templates
        b, o, h, w = state.previous.shape
        if len(proposals) != b:
            raise ValueError(f"expected {b} Proposals (one per frame), got {len(proposals)}")
        rows = self.slots.rows(valid)
        iou_masks = state.iou if state.iou is not None else state.previous * valid[:, :, None, None].to(
            state.previous.dtype)
        padded = pad_proposals(proposals, rows.sum(1), (h, w), templates.device, templates.dtype, o)
        prop_feats = self.proposal_features(features, padded)
        live = valid & rows
        cosine = cosine_similarity(templates * valid[:, :, None].to(templates.dtype), prop_feats)
        sim = similarity(cosine, iou_masks, padded.masks, self.iou_weight, self.iou_threshold)
        assignment = self.matcher.match(-sim, rows[:, :, None] & padded.columns[:, None, :], self.training)
        kept = self.matcher.keep(assignment, self.training)
        matched = matched_masks(kept, padded.masks) * live[:, :, None, None].to(kept.dtype)
        run = rows if state.run is None else state.run
        refined, memory = self.decoder(features.skips, [state.previous, state.reference, matched], run, state.memory)
        return StepOutput(matched, refined, memory, assignment, cosine, padded, rows, run)
