"""The slot rule (``MODEL.OBJECTS``): which object lives in which slot, and which slots DMM-Net
matches and refines. Compiled once from the config (:meth:`SlotRule.from_config`); the data
loader, the model, the tracker and the clip loss ask it, and nothing else reads the key.

- ``"legacy"`` (the 2019 code): object ``k`` lives in slot ``k - 1`` (ids up to ``max_objects``).
  A training clip gives every object of the video's meta its slot and sample weight 1, present in
  the clip or not (``dataset.py``). Inference starts each video at its start frame (the earliest
  frame holding an object, or ``VideoInfo.start``) and tracks the objects present there
  (``evaluator.py``). A frame's matching problem takes the first ``k`` slots, ``k`` = the number
  of slots with a template, the templates of empty slots among them zeroed (``dmm_model.py``);
  in training the decoder refines the first ``V`` slots of every clip, ``V`` = the number of
  slots with a template in some clip of the batch (``trainer.py``), at inference the problem's
  rows.
- ``"all"``: every object of a video has its own slot (ids in order, no cap at inference) and
  starts at its first appearance; a training clip takes the objects present in its first frame
  (a random subset of ``max_objects`` when there are more); the problem's rows and the decoder's
  slots are exactly the slots with a template.

Shapes: B videos or clips, O slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Sequence

import numpy as np
import torch

from ..config.keys import check_choice
from .video import VideoInfo


@dataclass(frozen=True)
class ObjectPlan:
    """Which objects a video tracks and from which frame.

    Attributes:
        slot_ids: the object id shown by each slot (the slot's label in the output).
        starts: frame index -> the slots given (started) at that frame.
    """

    slot_ids: tuple[int, ...]
    starts: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def num_slots(self) -> int:
        return len(self.slot_ids)


@dataclass(frozen=True)
class SlotRule:
    """``MODEL.OBJECTS`` and ``DATA.MAX_OBJECTS`` as one rule (module docstring)."""

    name: str = "legacy"
    max_objects: int = 5

    def __post_init__(self) -> None:
        check_choice("MODEL.OBJECTS", self.name)
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")

    @classmethod
    def from_config(cls, cfg) -> "SlotRule":
        """The rule of a full config (``MODEL.OBJECTS``, ``DATA.MAX_OBJECTS``)."""
        return cls(cfg.MODEL.OBJECTS, int(cfg.DATA.MAX_OBJECTS))

    # --- training clips ------------------------------------------------------------------------
    def clip_slots(self, meta_ids: Collection[int], first_frame_ids: Sequence[int],
                   rng: np.random.Generator) -> list[int]:
        """The object id of each of a training clip's ``max_objects`` slots (0: empty slot).

        ``meta_ids``: the video's objects; ``first_frame_ids``: the ids painted in the clip's first
        frame. A slot with an id has sample weight 1 (present in a frame or not).
        """
        if self.name == "legacy":
            return [k + 1 if k + 1 in meta_ids else 0 for k in range(self.max_objects)]
        present = sorted(int(i) for i in first_frame_ids if i and int(i) in meta_ids)
        if len(present) > self.max_objects:
            present = sorted(int(i) for i in rng.choice(present, self.max_objects, replace=False))
        return present + [0] * (self.max_objects - len(present))

    # --- inference -------------------------------------------------------------------------------
    def plan(self, info: VideoInfo) -> ObjectPlan:
        """The :class:`ObjectPlan` of a video."""
        if not info.objects:
            return ObjectPlan(())
        if self.name == "all":
            ids = sorted(info.objects)
            starts: dict[int, list[int]] = {}
            for slot, oid in enumerate(ids):
                starts.setdefault(info.objects[oid].first_index, []).append(slot)
            return ObjectPlan(tuple(ids), {k: tuple(v) for k, v in sorted(starts.items())})
        if info.start is None:
            first = min(o.first_index for o in info.objects.values())
            present = [oid for oid, o in info.objects.items() if o.first_index == first]
        else:
            first = info.frames.index(info.start)
            present = [oid for oid, o in info.objects.items() if o.first_frame == info.start or info.start in o.frames]
        present = sorted(oid for oid in present if 1 <= oid <= self.max_objects)
        if not present:
            return ObjectPlan(())
        return ObjectPlan(tuple(range(1, max(present) + 1)), {first: tuple(oid - 1 for oid in present)})

    # --- the model -------------------------------------------------------------------------------
    def rows(self, valid: torch.Tensor) -> torch.Tensor:
        """The rows of each frame's matching problem: valid (B, O) bool, the slots with a template
        -> (B, O) bool."""
        if self.name == "all":
            return valid
        slots = torch.arange(valid.shape[1], device=valid.device)
        return slots[None, :] < valid.sum(dim=1, keepdim=True)

    def decoder_slots(self, valid: torch.Tensor) -> torch.Tensor:
        """The slots the decoder refines in training: valid (B, O) bool -> (B, O) bool."""
        if self.name == "all":
            return valid
        slots = torch.arange(valid.shape[1], device=valid.device)
        return (slots < valid.any(dim=0).sum())[None].expand_as(valid)
