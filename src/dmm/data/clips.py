"""Training clips with the 2019 rules: ``ClipDataset`` and ``collate_clips``.

**What an epoch is** (2019 ``youtubeVOS.py``). Each video's frames (its JPEGImages listing,
without the frames that have no proposal when proposals are used) are cut into
non-overlapping clips of ``length_clip`` frames starting at 0, L, 2L, ... (the first start
always, even in a video shorter than L); a start whose frame holds none of the video's objects
(by the meta's frame lists) is skipped. An epoch is every clip of that list.

**An item** (2019 ``dataset.py``). Every random choice comes from a generator seeded by
``(seed, epoch, index)``, so a resumed run sees the same clips. In order: a horizontal flip for
the whole clip; per frame, the frame itself (frame 0 the clip's start; each later frame the next
one, or with probability ``random_frame_prob`` a frame drawn uniformly from the whole video;
with ``all_frames_random``, the online split, every frame including the first is drawn) and
its affine (:func:`~dmm.data.transforms.sample_affine`). Images and annotations are resized,
flipped, warped. When the union box of the first frame's objects has a short side under
``min_short_side`` pixels, the item is replaced by another clip drawn at random.

**Objects**: which object of the clip fills which of the ``max_objects`` slots is the slot rule's
(:meth:`dmm.structures.SlotRule.clip_slots`, ``MODEL.OBJECTS``); a slot with an object has sample
weight 1 in every frame, present there or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..structures import Proposals, SlotRule
from .errors import DatasetError
from .transforms import (AffineParams, affine_source_index, normalize, resize_image, resize_mask, sample_affine,
                         warp_nearest)

#: ``(video, frame) -> Proposals`` of a frame, as stored (any size, roi or full masks)
ProposalFn = Callable[[str, str], Proposals]
#: ``(video) -> {frame: number of proposals}``, to leave out frames without proposals
CountFn = Callable[[str], dict]

#: draws of a replacement clip before an item gives up (the short-side rule)
_REPLACEMENTS = 100


@dataclass(frozen=True)
class Clip:
    """One entry of the clip list: ``frames[start]`` starts it; ``frames`` is the video's usable list."""

    video: str
    frames: tuple[str, ...]
    start: int


@dataclass(frozen=True)
class ClipPlan:
    """The random choices of one item.

    Attributes:
        video: the video the clip comes from.
        frames: the clip's frame names (``length_clip`` of them, fewer for a short video).
        flip: whether the whole clip is flipped horizontally.
        affines: per frame, a (3, 3) float32 affine, or None without augmentation.
    """

    video: str
    frames: list[str]
    flip: bool
    affines: list[torch.Tensor | None]


def short_side(masks: torch.Tensor) -> int:
    """Short side of the union box of ``masks (O, H, W)`` (max - min of the pixel indices), 0 if empty."""
    union = masks.sum(0) > 0
    if not bool(union.any()):
        return 0
    rows = torch.nonzero(union.any(1)).flatten()
    cols = torch.nonzero(union.any(0)).flatten()
    return int(min(rows[-1] - rows[0], cols[-1] - cols[0]))


class ClipDataset(Dataset):
    """Clips of ``length_clip`` frames at ``input_size`` for training (module docstring).

    ``__getitem__(i) -> dict``:
        images: (T, 3, H, W) float, ImageNet-normalised, flipped and warped.
        masks: (T, O, H, W) float in {0, 1}, the objects' masks by slot (O = ``slots.max_objects``).
        weights: (O,) float sample weights (1 for the clip's objects).
        object_ids: (O,) int64, each slot's object id (0 for an empty slot).
        video: str; frames: list[str] (len T).
        flip: bool; affines: (T, 3, 3) float32 (identity without augmentation).
        proposals: T :class:`Proposals` as stored (the training step pastes, flips and warps them
            alike with the frame, on its device), or None without ``proposals``.
    """

    def __init__(self, reader, *, length_clip: int = 3, slots: SlotRule = SlotRule(),
                 input_size: tuple[int, int] = (255, 448),
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 random_frame_prob: float = 0.5, all_frames_random: bool = False,
                 augment: AffineParams | None = None, hflip_prob: float = 0.5, seed: int = 0,
                 proposals: ProposalFn | None = None, proposal_counts: CountFn | None = None,
                 skip_empty_first: bool = True, min_short_side: int = 3, image_resize: str = "nearest"):
        if length_clip < 1:
            raise ValueError("length_clip must be >= 1")
        if not 0 <= random_frame_prob <= 1 or not 0 <= hflip_prob <= 1:
            raise ValueError("random_frame_prob and hflip_prob must be in [0, 1]")
        self.reader = reader
        self.length_clip = length_clip
        self.slots = slots
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)
        self.random_frame_prob = random_frame_prob
        self.all_frames_random = all_frames_random
        self.augment = augment
        self.hflip_prob = hflip_prob
        self.seed = seed
        self.proposals = proposals
        self.min_short_side = min_short_side
        self.image_resize = image_resize
        self.epoch = 0
        self.clips = self._clip_list(proposal_counts, skip_empty_first)
        if not self.clips:
            raise DatasetError("ClipDataset: the split gives no clip (no video has a frame with objects"
                               + (" and proposals)" if proposal_counts else ")"))

    @classmethod
    def from_config(cls, reader, cfg, proposals: ProposalFn | None = None, proposal_counts: CountFn | None = None,
                    all_frames_random: bool | None = None) -> "ClipDataset":
        """Build from a full config (``cfg.DATA``, the slot rule, ``cfg.SEED``)."""
        d = cfg.DATA
        augment = AffineParams.from_config(d)
        return cls(reader, length_clip=d.LENGTH_CLIP, slots=SlotRule.from_config(cfg), input_size=(d.INPUT_H, d.INPUT_W),
                   mean=d.MEAN, std=d.STD, random_frame_prob=d.RANDOM_FRAME_PROB,
                   all_frames_random=d.ALL_FRAMES_RANDOM if all_frames_random is None else all_frames_random,
                   augment=augment, hflip_prob=d.HFLIP_PROB if augment is not None else 0.0, seed=cfg.SEED,
                   proposals=proposals, proposal_counts=proposal_counts, skip_empty_first=d.SKIP_EMPTY_FIRST,
                   min_short_side=d.MIN_SHORT_SIDE, image_resize=d.IMAGE_RESIZE)

    # --- the clip list -----------------------------------------------------------------------
    def _clip_list(self, counts: CountFn | None, skip_empty_first: bool) -> list[Clip]:
        clips = []
        for video in self.reader.videos:
            frames = list(self.reader.frames(video))
            if counts is not None:
                n = counts(video)
                frames = [f for f in frames if n.get(f, 0) > 0]
            if not frames:
                continue
            info = self.reader.info(video)
            listed = set().union(*(o.frames for o in info.objects.values())) if info.objects else set()
            num = len(frames) // self.length_clip
            for start in [0] + [k * self.length_clip for k in range(1, num)]:
                if skip_empty_first and frames[start] not in listed:
                    continue
                clips.append(Clip(video, tuple(frames), start))
        return clips

    def set_epoch(self, epoch: int) -> None:
        """Select the random choices of ``epoch`` (call before each epoch, also when resuming)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    # --- sampling ----------------------------------------------------------------------------
    def plan(self, clip: Clip, rng: np.random.Generator) -> ClipPlan:
        """The random choices of one item of ``clip`` (draws from ``rng`` in the 2019 order)."""
        n = len(clip.frames)
        flip = bool(rng.random() < self.hflip_prob)
        names, affines = [], []
        for ii in range(min(self.length_clip, n - clip.start)):
            position = clip.start + ii
            if self.all_frames_random or (ii > 0 and rng.random() < self.random_frame_prob):
                position = min(int(rng.random() * n), n - 1)
            names.append(clip.frames[position])
            affines.append(sample_affine(rng, self.augment, self.input_size) if self.augment else None)
        return ClipPlan(clip.video, names, flip, affines)

    # --- loading -----------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.clips):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        clip = self.clips[index]
        for _ in range(_REPLACEMENTS):
            item = self._load(self.plan(clip, rng), rng)
            if item is not None:
                return item
            clip = self.clips[int(rng.random() * len(self.clips))]  # the short-side rule: another clip
        raise DatasetError(f"item {index}: {_REPLACEMENTS} clips in a row had objects with a union box "
                           f"short side under {self.min_short_side} pixels in their first frame")

    def _load(self, plan: ClipPlan, rng: np.random.Generator) -> dict | None:
        H, W = self.input_size
        T = len(plan.frames)
        images = torch.empty(T, 3, H, W)
        annotations = []
        for t, frame in enumerate(plan.frames):
            annotation = self.reader.annotation(plan.video, frame)
            if annotation is None:
                raise DatasetError(f"video {plan.video!r} frame {frame!r}: no annotation")
            image = resize_image(self.reader.image(plan.video, frame), self.input_size, self.image_resize)
            annotation = resize_mask(annotation, self.input_size)
            if plan.flip:
                image, annotation = image[:, ::-1], annotation[:, ::-1]
            index = None if plan.affines[t] is None else affine_source_index(plan.affines[t], self.input_size)
            pixels = warp_nearest(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), index)  # uint8
            images[t] = normalize(pixels.float().div_(255), self.mean, self.std)
            annotations.append(warp_nearest(torch.from_numpy(np.ascontiguousarray(annotation)), index))
        slot_ids = self.slots.clip_slots(self.reader.info(plan.video).objects, np.unique(annotations[0].numpy()), rng)
        ids = torch.tensor(slot_ids, dtype=torch.int64)
        masks = torch.zeros(T, self.slots.max_objects, H, W)
        for slot in torch.nonzero(ids).flatten().tolist():
            for t, a in enumerate(annotations):
                masks[t, slot] = a == ids[slot]
        if self.min_short_side > 0 and short_side(masks[0]) < self.min_short_side:
            return None
        identity = torch.eye(3)
        return {
            "images": images, "masks": masks, "weights": (ids > 0).float(), "object_ids": ids,
            "video": plan.video, "frames": list(plan.frames), "flip": plan.flip,
            "affines": torch.stack([identity if a is None else a for a in plan.affines]),
            "proposals": None if self.proposals is None else [self.proposals(plan.video, f) for f in plan.frames],
        }


def collate_clips(items: list[dict]) -> dict:
    """Stack the tensors of ``ClipDataset`` items to ``(B, ...)``, keep the rest as lists of length B.

    Clips are cut to the shortest one of the batch (a video shorter than the clip length gives
    a short clip), as the 2019 collate does.
    """
    if not items:
        raise ValueError("collate_clips: empty batch")
    t = min(len(it["frames"]) for it in items)
    out = {key: torch.stack([it[key][:t] for it in items]) for key in ("images", "masks", "affines")}
    for key in ("weights", "object_ids"):
        out[key] = torch.stack([it[key] for it in items])
    out["flip"] = torch.tensor([it["flip"] for it in items])
    for key in ("video",):
        out[key] = [it[key] for it in items]
    out["frames"] = [it["frames"][:t] for it in items]
    out["proposals"] = None if items[0]["proposals"] is None else [it["proposals"][:t] for it in items]
    return out
