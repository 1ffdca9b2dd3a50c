"""Trackers: the per-frame algorithm behind inference, one ``start`` and one ``step``.

A tracker segments B videos in lockstep, each with O object slots. For every frame the
inference loop (:mod:`dmm.engine.inference`) calls

1. ``features = tracker.encode(images)`` -- once per frame (None for trackers without features);
2. ``probs, state = tracker.step(state, features, proposals)`` -- when some slot is tracked;
3. ``state = tracker.start(state, features, proposals, masks, starting)`` -- when objects are
   given at this frame.

``step`` returns (B, O, H, W) probabilities that are exactly zero for the slots it does not
show, so a label map can take every slot. :class:`DMMTracker` is DMM-Net (2019
``evaluator.py``); the baselines in :mod:`dmm.engine.baselines` implement the same protocol.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol, Sequence

import torch

from ..model.dmmnet import DMMNet
from ..structures import Proposals, TrackState


class Tracker(Protocol):
    """The per-frame algorithm. Shapes: B videos, O slots, (H, W) the network input size."""

    def encode(self, images: torch.Tensor) -> Any:
        """images: (B, 3, H, W) normalised -> per-frame features (or None)."""

    def start(self, state: TrackState, features: Any, proposals: Sequence[Proposals], masks: torch.Tensor,
              starting: torch.Tensor) -> TrackState:
        """Begin tracking the ``starting`` (B, O) slots from their given ``masks`` (B, O, H, W) in [0, 1]."""

    def step(self, state: TrackState, features: Any, proposals: Sequence[Proposals]) -> tuple[torch.Tensor, TrackState]:
        """One frame: (B, O, H, W) probabilities (zero for slots not shown) and the new state."""


def _where(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per-slot select: mask (B, O) broadcast over the trailing dimensions of new/old (B, O, ...)."""
    return torch.where(mask.view(*mask.shape, *([1] * (new.dim() - 2))), new, old)


class DMMTracker:
    """DMM-Net as a tracker, with the 2019 evaluator's policy.

    - ``start``: the template of each starting slot is the ROI feature of its given mask on this
      frame; its reference and previous masks are the given mask; and a full step runs on this
      frame for the starting slots (previous = reference = IoU mask = the given masks, no
      temporal state), whose decoder state becomes their temporal state for the next frame (its
      probabilities are not used: the given masks are the frame's answer).
    - ``step``: the IoU term of the cost uses each slot's previous probabilities (its refined
      output of the previous frame; the given mask after a start), the decoder gets the previous
      probabilities, the reference and the matched mask, and the temporal state carries on.

    Which slots form the matching problem and run through the decoder follows the model's
    ``MODEL.OBJECTS`` rule (:func:`dmm.model.dmmnet.match_rows`).
    """

    def __init__(self, model: DMMNet) -> None:
        self.model = model

    @torch.no_grad()
    def encode(self, images: torch.Tensor):
        return self.model.encode(images)

    @torch.no_grad()
    def start(self, state: TrackState, features, proposals: Sequence[Proposals], masks: torch.Tensor,
              starting: torch.Tensor) -> TrackState:
        model = self.model
        fresh = model.template_features(features, masks)
        templates = fresh if state.templates is None else _where(starting, fresh, state.templates)
        memory = state.memory
        if memory is not None:
            memory = [_where(starting, torch.zeros_like(m), m) for m in memory]
        out = model.step(features, templates, proposals, prev_masks=masks, ref_masks=masks, iou_masks=masks,
                         valid=starting, memory=memory)
        return replace(
            state,
            active=state.active | starting,
            reference=_where(starting, masks, state.reference),
            previous=_where(starting, masks, state.previous),
            templates=templates,
            memory=out.memory,
        )

    @torch.no_grad()
    def step(self, state: TrackState, features, proposals: Sequence[Proposals]) -> tuple[torch.Tensor, TrackState]:
        iou_masks = state.previous * state.active[:, :, None, None].to(state.previous.dtype)
        out = self.model.step(features, state.templates, proposals, prev_masks=state.previous,
                              ref_masks=state.reference, iou_masks=iou_masks, valid=state.active,
                              memory=state.memory)
        previous = _where(out.run, out.refined, state.previous)
        return out.refined, replace(state, previous=previous, memory=out.memory)
