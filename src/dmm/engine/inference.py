"""Inference: run a :class:`~dmm.engine.tracker.Tracker` over videos, frame by frame.

:func:`propagate` is a generator (as SAM 2's ``propagate_in_video``): it steps several videos
in lockstep, one frame of each at a time, and yields a :class:`FrameResult` per frame; the
caller decides what to do with it (:mod:`dmm.engine.results` writes the YouTube-VOS PNGs). Only
the current frame of each video is in memory. Which objects are tracked, in which slots and from
which frame is the slot rule's object plan (:meth:`dmm.structures.SlotRule.plan`,
``MODEL.OBJECTS``); label maps are made by :func:`dmm.engine.labels.compose_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..data.frames import FrameInput
from ..data.transforms import resize_mask
from ..errors import InputError
from ..proposals.ops import prepare_batch_for_matching
from ..structures import ObjectPlan, Proposals, SlotRule, TrackState, VideoInfo
from .labels import compose_labels
from .tracker import Tracker

#: ``(video, frame index, frame name) -> Proposals`` of that frame (any size or mask mode)
ProposalFn = Callable[[str, int, str], Proposals]


@dataclass
class FrameResult:
    """One frame's answer.

    Attributes:
        video, index, name: the frame.
        labels: (h, w) uint8 object ids at the frame's original size, 0 for background.
        last: True for the video's last frame.
    """

    video: str
    index: int
    name: str
    labels: np.ndarray
    last: bool


@dataclass
class _Track:
    """One video of a lockstep batch."""

    info: VideoInfo
    plan: ObjectPlan
    frames: Iterator[FrameInput]
    done: bool = False


def _given_masks(track: _Track, frame: FrameInput, slots: Sequence[int], input_size: tuple[int, int]) -> torch.Tensor:
    """(len(slots), H, W) float {0, 1}: the given masks of ``slots`` at this frame, nearest-resized."""
    if frame.annotation is None:
        ids = [track.plan.slot_ids[s] for s in slots]
        raise InputError(f"video {track.info.name!r}: frame {frame.name!r} starts objects {ids} but has no annotation")
    resized = resize_mask(frame.annotation, input_size)
    return torch.from_numpy(np.stack([resized == track.plan.slot_ids[s] for s in slots]).astype(np.float32))


def propagate(tracker: Tracker, videos: Sequence[tuple[VideoInfo, Iterable[FrameInput]]],
              proposal_fn: ProposalFn, input_size: tuple[int, int], cfg_proposals, *,
              slots: SlotRule = SlotRule(), labels_at: str = "input",
              device: torch.device | str = "cpu") -> Iterator[FrameResult]:
    """Segment ``videos`` in lockstep, yielding every frame's :class:`FrameResult` in order.

    Args:
        tracker: the algorithm (DMM-Net or a baseline).
        videos: per video its :class:`VideoInfo` and an iterable of its :class:`FrameInput`
            (frames resized to ``input_size`` and normalised; annotations at full size).
        proposal_fn: a frame's raw proposals; they are pasted at the input size and filtered
            (``PROPOSALS``: mask threshold, NMS, top-k in ``KEEP_ORDER``) before the tracker sees them.
        input_size: (H, W) of the network input.
        slots: the slot rule, whose object plan says which objects start where.
        labels_at: see :func:`~dmm.engine.labels.compose_labels`.
    """
    size = (int(input_size[0]), int(input_size[1]))
    tracks = [_Track(info, slots.plan(info), iter(frames)) for info, frames in videos]
    if not tracks:
        return
    slots = max(1, max(t.plan.num_slots for t in tracks))
    state = TrackState.empty(len(tracks), slots, size, device=device)
    active = np.zeros((len(tracks), slots), dtype=bool)  # a host copy of state.active: no read-back per frame
    while True:
        frames: list[FrameInput | None] = []
        for b, t in enumerate(tracks):
            frame = None if t.done else next(t.frames, None)
            if frame is None and not t.done:
                t.done = True
                if active[b].any():
                    active[b] = False
                    state.active[b] = False
            frames.append(frame)
        if all(f is None for f in frames):
            return
        starting_host = np.zeros((len(tracks), slots), dtype=bool)
        for b, (t, f) in enumerate(zip(tracks, frames)):
            if f is not None:
                starting_host[b, list(t.plan.starts.get(f.index, ()))] = True
        starting = torch.from_numpy(starting_host).to(device)
        probs = torch.zeros(len(tracks), slots, *size, device=device)
        if active.any() or starting_host.any():
            images = torch.stack([f.image if f is not None else torch.zeros(3, *size) for f in frames]).to(device)
            features = tracker.encode(images)
            raw = [proposal_fn(t.info.name, f.index, f.name).to(device) if f is not None
                   else Proposals.empty(size, device=device) for t, f in zip(tracks, frames)]
            proposals = prepare_batch_for_matching(raw, size, cfg_proposals.MASK_THRESHOLD, cfg_proposals.NMS_IOU,
                                                   cfg_proposals.TOPK, cfg_proposals.KEEP_ORDER)
            if active.any():
                probs, state = tracker.step(state, features, proposals)
            if starting_host.any():
                masks = torch.zeros(len(tracks), slots, *size)
                for b, (t, f) in enumerate(zip(tracks, frames)):
                    new = t.plan.starts.get(f.index, ()) if f is not None else ()
                    if new:
                        masks[b, list(new)] = _given_masks(t, f, new, size)
                masks = masks.to(device)
                state = tracker.start(state, features, proposals, masks, starting)
                # given masks are the frame's answer: at the input size, or painted at full size
                shown = masks if labels_at == "input" else torch.zeros_like(masks)
                probs = torch.where(starting[:, :, None, None], shown, probs)
                active |= starting_host
        for b, (t, f) in enumerate(zip(tracks, frames)):
            if f is None:
                continue
            n = t.plan.num_slots
            given = []
            if labels_at == "frame" and f.index in t.plan.starts:
                given = [(t.plan.slot_ids[s], f.annotation == t.plan.slot_ids[s]) for s in t.plan.starts[f.index]]
            labels = compose_labels(probs[b, :n], t.plan.slot_ids, f.size, labels_at, given)
            yield FrameResult(t.info.name, f.index, f.name, labels, f.index == len(t.info.frames) - 1)
