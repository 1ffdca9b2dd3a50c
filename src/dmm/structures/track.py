"""``TrackState``: what a tracker carries from one frame to the next, split by role."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class TrackState:
    """The state of B videos (or training clips) tracked in lockstep, each with O object slots.

    Attributes:
        active: (B, O) bool, the slots with a template (started, and not padding).
        reference: (B, O, H, W) float in [0, 1], each object's given mask at the input size
            (from the frame where it was started).
        previous: (B, O, H, W) float, each object's mask of the last frame: the given mask after
            a start, then the tracker's own probabilities (in training: the ground truth or the
            model's own prediction). It feeds the decoder's previous-mask input.
        templates: (B, O, D) float or None: the objects' template features (DMM-Net).
        memory: None, or one (B, O, C_l, h_l, w_l) float per decoder level: each object's
            temporal hidden state after its last frame (DMM-Net).
        iou: (B, O, H, W) float or None: the masks of the matching cost's IoU term; None takes
            ``previous`` on the active slots (inference), training sets them.
        run: (B, O) bool or None: the slots the decoder refines; None takes the matching
            problem's rows (inference), training sets them (the slot rule's decoder slots).
    """

    active: torch.Tensor
    reference: torch.Tensor
    previous: torch.Tensor
    templates: torch.Tensor | None = None
    memory: list[torch.Tensor] | None = None
    iou: torch.Tensor | None = None
    run: torch.Tensor | None = None

    @classmethod
    def empty(cls, batch: int, objects: int, size: tuple[int, int],
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> "TrackState":
        """No object tracked yet: all slots inactive, zero masks."""
        masks = torch.zeros(batch, objects, int(size[0]), int(size[1]), device=device, dtype=dtype)
        return cls(torch.zeros(batch, objects, dtype=torch.bool, device=device), masks, masks.clone())

    @property
    def batch_size(self) -> int:
        return self.active.shape[0]

    @property
    def num_objects(self) -> int:
        return self.active.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.reference.shape[-2]), int(self.reference.shape[-1])

    def given(self, masks: torch.Tensor, starting: torch.Tensor, templates: torch.Tensor) -> "TrackState":
        """The state with objects given for the ``starting`` (B, O) slots: their reference and
        previous masks become ``masks`` (B, O, H, W) and their templates ``templates`` (B, O, D)
        (every slot's when there were none); the other slots keep theirs."""
        def where(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
            return torch.where(starting.view(*starting.shape, *([1] * (new.dim() - 2))), new, old)

        return replace(
            self,
            reference=where(masks, self.reference),
            previous=where(masks, self.previous),
            templates=templates if self.templates is None else where(templates, self.templates),
        )

    def detach(self) -> "TrackState":
        """The same state cut from the autograd graph (for truncated backpropagation)."""
        return replace(
            self,
            reference=self.reference.detach(),
            previous=self.previous.detach(),
            templates=None if self.templates is None else self.templates.detach(),
            memory=None if self.memory is None else [m.detach() for m in self.memory],
            iou=None if self.iou is None else self.iou.detach(),
        )
