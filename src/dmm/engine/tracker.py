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


class DMMTracker:
    """DMM-Net as a tracker, with the 2019 evaluator's policy (:meth:`DMMNet.start` and
    :meth:`DMMNet.step`).

    - ``start``: the template of each starting slot is the ROI feature of its given mask on this
      frame, its reference and previous masks are the given mask, and the model's start step
      runs on this frame; its decoder state becomes the slots' temporal state for the next
      frame (its probabilities are not used: the given masks are the frame's answer).
    - ``step``: the IoU term of the cost uses each slot's previous probabilities (its refined
      output of the previous frame; the given mask after a start), the decoder gets the previous
      probabilities, the reference and the matched mask, and the temporal state carries on.

    Which slots form the matching problem and run through the decoder is the model's slot rule.
    """

    def __init__(self, model: DMMNet) -> None:
        self.model = model

    @torch.no_grad()
    def encode(self, images: torch.Tensor):
        return self.model.encode(images)

    @torch.no_grad()
    def start(self, state: TrackState, features, proposals: Sequence[Proposals], masks: torch.Tensor,
              starting: torch.Tensor) -> TrackState:
        state = state.given(masks, starting, self.model.template_features(features, masks))
        return self.model.start(features, proposals, state, starting)[1]

    @torch.no_grad()
    def step(self, state: TrackState, features, proposals: Sequence[Proposals]) -> tuple[torch.Tensor, TrackState]:
        out, state = self.model.step(features, proposals, state)
        return out.refined, state
