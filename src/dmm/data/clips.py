"""Training clips: ``ClipDataset`` and ``collate_clips``.

One item is one clip of one video: item ``i`` of an epoch is drawn from video ``i`` (the
reader's sorted list), so an epoch visits every training video once. Every random choice of
an item comes from a generator seeded by ``(seed, epoch, index)``: a resumed run (same seed,
``set_epoch``) sees the same clips, whatever the worker count.

A clip starts at an annotated frame with objects; each later frame is the next annotated
frame, or with probability ``random_frame_prob`` an annotated frame drawn uniformly from the
whole video. The objects are those present in the first frame (at most ``max_objects``,
chosen at random when there are more).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetError
from .transforms import (AffineParams, normalize, resize_image, resize_mask, sample_affine,
                         sampling_grid, to_tensor, warp)

ProposalFn = Callable[[str, str, tuple[int, int]], dict]

#: starting frames tried for a video before another video is drawn instead
_START_TRIES = 8
#: videos tried for one item before giving up
_VIDEO_TRIES = 10


@dataclass(frozen=True)
class ClipPlan:
    """The random choices of one item.

    Attributes:
        video: the video the clip comes from.
        frames: the clip's T frame names.
        object_ids: ids of the clip's objects (present in its first frame), sorted, <= O.
        flip: whether the whole clip is flipped horizontally.
        affines: per frame, a (3, 3) pixel affine (input -> output), or None (no augmentation).
    """

    video: str
    frames: list[str]
    object_ids: list[int]
    flip: bool
    affines: list[np.ndarray | None]


class ClipDataset(Dataset):
    """Clips of ``length_clip`` frames at ``input_size`` for training.

    ``__getitem__(i) -> dict``:
        images: (T, 3, H, W) float, ImageNet-normalised.
        masks: (T, O, H, W) float in {0, 1}, O = max_objects (zero padding).
        valid: (O,) bool, object present in the clip's first frame.
        object_ids: (O,) int64, the objects' original ids (0 for padding).
        video: str; frames: list[str] (len T).
        proposals: list (len T) of the ``proposal_fn`` dicts with ``masks`` warped and flipped
            like the frame, or None without ``proposal_fn``.

    Args:
        reader: a dataset reader (``YouTubeVOS`` / ``DAVIS``).
        proposal_fn: ``(video, frame, (H, W)) -> dict`` with ``masks (N, H, W) float in [0, 1]``
            and ``scores (N,)`` at input size.
        skip_empty_first: draw another start when the first frame has none of the objects.
    """

    def __init__(self, reader, *, length_clip: int = 3, max_objects: int = 5,
                 input_size: tuple[int, int] = (255, 448),
                 mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225),
                 random_frame_prob: float = 0.5, augment: AffineParams | None = None,
                 hflip_prob: float = 0.5, seed: int = 0, proposal_fn: ProposalFn | None = None,
                 skip_empty_first: bool = True):
        if length_clip < 1 or max_objects < 1:
            raise ValueError("length_clip and max_objects must be >= 1")
        if not 0 <= random_frame_prob <= 1 or not 0 <= hflip_prob <= 1:
            raise ValueError("random_frame_prob and hflip_prob must be in [0, 1]")
        self.reader = reader
        self.videos: list[str] = list(reader.videos)
        if not self.videos:
            raise DatasetError("ClipDataset: the reader's split has no videos")
        self.length_clip = length_clip
        self.max_objects = max_objects
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)
        self.random_frame_prob = random_frame_prob
        self.augment = augment
        self.hflip_prob = hflip_prob
        self.seed = seed
        self.proposal_fn = proposal_fn
        self.skip_empty_first = skip_empty_first
        self.epoch = 0

    @classmethod
    def from_config(cls, reader, cfg, proposal_fn: ProposalFn | None = None,
                    random_frame_prob: float | None = None) -> "ClipDataset":
        """Build from a full config (``cfg.DATA``, ``cfg.SEED``). Online training passes
        ``random_frame_prob=1.0``."""
        d = cfg.DATA
        augment = AffineParams.from_config(d)
        return cls(reader, length_clip=d.LENGTH_CLIP, max_objects=d.MAX_OBJECTS,
                   input_size=(d.INPUT_H, d.INPUT_W), mean=d.MEAN, std=d.STD,
                   random_frame_prob=d.RANDOM_FRAME_PROB if random_frame_prob is None
                   else random_frame_prob,
                   augment=augment, hflip_prob=d.HFLIP_PROB if augment is not None else 0.0,
                   seed=cfg.SEED, proposal_fn=proposal_fn, skip_empty_first=d.SKIP_EMPTY_FIRST)

    def set_epoch(self, epoch: int) -> None:
        """Select the clips of ``epoch`` (call before each epoch, also when resuming)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    # --- sampling --------------------------------------------------------------------------
    def plan(self, index: int) -> ClipPlan:
        """The random choices of item ``index`` in the current epoch (deterministic)."""
        if not 0 <= index < len(self.videos):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        video = self.videos[index]
        for _ in range(_VIDEO_TRIES):
            start = self._draw_start(video, rng)
            if start is not None:
                return self._complete_plan(video, *start, rng)
            video = self.videos[int(rng.integers(len(self.videos)))]
        raise DatasetError(f"no annotated frame with objects found for item {index} "
                           f"(last video tried: {video!r})")

    def _draw_start(self, video: str, rng: np.random.Generator):
        """(annotated frames, start position, ids present at the start) or None."""
        frames = self.reader.annotated_frames(video)
        info = self.reader.info(video)
        listed = set().union(*(set(o.frames) for o in info.objects.values())) \
            if info.objects else set()
        candidates = [k for k, f in enumerate(frames) if not listed or f in listed]
        roomy = [k for k in candidates if k <= len(frames) - self.length_clip]
        candidates = roomy or candidates
        if not candidates:
            return None
        for _ in range(_START_TRIES):
            k = candidates[int(rng.integers(len(candidates)))]
            mask = self.reader.annotation(video, frames[k])
            ids = sorted(int(i) for i in np.unique(mask) if i and int(i) in info.objects)
            if ids or not self.skip_empty_first:
                return frames, k, ids
        return None

    def _complete_plan(self, video: str, frames: list[str], start: int, ids: list[int],
                       rng: np.random.Generator) -> ClipPlan:
        positions = [start]
        for _ in range(self.length_clip - 1):
            if rng.random() < self.random_frame_prob:
                positions.append(int(rng.integers(len(frames))))
            else:
                positions.append(min(positions[-1] + 1, len(frames) - 1))
        if len(ids) > self.max_objects:
            ids = sorted(int(i) for i in rng.choice(ids, self.max_objects, replace=False))
        flip = bool(rng.random() < self.hflip_prob)
        affines = [sample_affine(rng, self.augment, self.input_size) if self.augment else None
                   for _ in positions]
        return ClipPlan(video, [frames[p] for p in positions], ids, flip, affines)

    # --- loading ---------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict:
        plan = self.plan(index)
        O, (H, W) = self.max_objects, self.input_size
        ids = torch.zeros(O, dtype=torch.int64)
        ids[: len(plan.object_ids)] = torch.as_tensor(plan.object_ids, dtype=torch.int64)
        valid = ids > 0
        images = torch.empty(self.length_clip, 3, H, W)
        masks = torch.zeros(self.length_clip, O, H, W)
        proposals = [] if self.proposal_fn is not None else None
        for t, (frame, matrix) in enumerate(zip(plan.frames, plan.affines)):
            grid = sampling_grid(matrix, self.input_size)
            image = to_tensor(resize_image(self.reader.image(plan.video, frame), self.input_size))
            annotation = self.reader.annotation(plan.video, frame)
            if annotation is None:
                raise DatasetError(f"video {plan.video!r} frame {frame!r}: no annotation")
            annotation = torch.from_numpy(resize_mask(annotation, self.input_size))
            frame_masks = (annotation[None] == ids[:, None, None]) & valid[:, None, None]
            image = warp(image, grid, "bilinear")
            frame_masks = warp(frame_masks.float(), grid, "nearest")
            if plan.flip:
                image, frame_masks = image.flip(-1), frame_masks.flip(-1)
            images[t] = normalize(image, self.mean, self.std)
            masks[t] = frame_masks
            if proposals is not None:
                proposals.append(self._warp_proposals(plan, frame, grid))
        return {"images": images, "masks": masks, "valid": valid, "object_ids": ids,
                "video": plan.video, "frames": list(plan.frames), "proposals": proposals}

    def _warp_proposals(self, plan: ClipPlan, frame: str, grid: torch.Tensor | None) -> dict:
        props = dict(self.proposal_fn(plan.video, frame, self.input_size))
        pm = props["masks"]
        if pm.dim() != 3 or tuple(pm.shape[1:]) != self.input_size:
            raise DatasetError(
                f"video {plan.video!r} frame {frame!r}: proposal masks must be (N, "
                f"{self.input_size[0]}, {self.input_size[1]}), got {tuple(pm.shape)}")
        pm = warp(pm.float(), grid, "bilinear").clamp_(0, 1)
        props["masks"] = pm.flip(-1) if plan.flip else pm
        return props


def collate_clips(items: list[dict]) -> dict:
    """Stack the tensors of ``ClipDataset`` items to ``(B, ...)``; keep ``video``, ``frames``
    and ``proposals`` as lists of length B."""
    if not items:
        raise ValueError("collate_clips: empty batch")
    out = {key: torch.stack([it[key] for it in items])
           for key in ("images", "masks", "valid", "object_ids")}
    for key in ("video", "frames", "proposals"):
        out[key] = [it[key] for it in items]
    return out
