"""``Proposals``: one frame's mask proposals, the container passed from the store to the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

MaskMode = Literal["roi", "full"]


@dataclass
class Proposals:
    """Mask proposals of one frame.

    Attributes:
        boxes: (N, 4) float, xyxy in pixels of ``image_size``.
        scores: (N,) float detection scores.
        masks: (N, R, R) float in [0, 1] box-relative probabilities (``mask_mode == "roi"``,
            R = 28 for Mask R-CNN), or (N, h, w) float in [0, 1] full-frame probabilities
            (``mask_mode == "full"``, (h, w) == ``image_size``).
        image_size: (h, w) of the frame the boxes and full masks refer to.
        mask_mode: "roi" or "full".
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    masks: torch.Tensor
    image_size: tuple[int, int]
    mask_mode: MaskMode = "roi"

    def __post_init__(self) -> None:
        n = self.boxes.shape[0]
        if self.boxes.dim() != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4), got {tuple(self.boxes.shape)}")
        if self.scores.shape != (n,):
            raise ValueError(f"scores must be ({n},), got {tuple(self.scores.shape)}")
        if self.masks.dim() != 3 or self.masks.shape[0] != n:
            raise ValueError(f"masks must be ({n}, h, w), got {tuple(self.masks.shape)}")
        if self.mask_mode not in ("roi", "full"):
            raise ValueError(f"mask_mode must be 'roi' or 'full', got {self.mask_mode!r}")
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.mask_mode == "full" and tuple(self.masks.shape[1:]) != self.image_size:
            raise ValueError(
                f"full masks must be {self.image_size}, got {tuple(self.masks.shape[1:])}"
            )

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def __getitem__(self, index) -> "Proposals":
        """Select proposals by an int, a slice, an index tensor or a boolean mask."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Proposals(
            self.boxes[index], self.scores[index], self.masks[index], self.image_size, self.mask_mode
        )

    @property
    def device(self) -> torch.device:
        return self.boxes.device

    def to(self, device: torch.device | str) -> "Proposals":
        return Proposals(
            self.boxes.to(device),
            self.scores.to(device),
            self.masks.to(device),
            self.image_size,
            self.mask_mode,
        )

    def resize(self, size: tuple[int, int]) -> "Proposals":
        """The same proposals for the frame resized to ``size = (H, W)``.

        Boxes are scaled by (W / w, H / h). Roi masks are box-relative and stay as they are;
        full masks are resized bilinearly (``align_corners=False``), probabilities kept.
        """
        h, w = self.image_size
        H, W = int(size[0]), int(size[1])
        scale = self.boxes.new_tensor([W / w, H / h, W / w, H / h])
        masks = self.masks
        if self.mask_mode == "full" and (H, W) != (h, w):
            if len(self) == 0:
                masks = masks.new_zeros(0, H, W)
            else:
                masks = F.interpolate(masks[:, None].float(), size=(H, W), mode="bilinear",
                                      align_corners=False)[:, 0].to(self.masks.dtype)
        return Proposals(self.boxes * scale, self.scores, masks, (H, W), self.mask_mode)

    def topk(self, k: int) -> "Proposals":
        """The ``k`` best-scored proposals, by decreasing score (all of them when ``k < 0``)."""
        order = torch.argsort(self.scores, descending=True, stable=True)
        return self[order if k < 0 else order[:k]]

    @staticmethod
    def cat(items: "list[Proposals]") -> "Proposals":
        """Concatenate proposals of one frame (same image size and mask mode)."""
        if not items:
            raise ValueError("Proposals.cat needs at least one Proposals")
        first = items[0]
        for p in items[1:]:
            if p.image_size != first.image_size or p.mask_mode != first.mask_mode:
                raise ValueError(
                    f"cannot concatenate proposals of {p.image_size}/{p.mask_mode} with "
                    f"{first.image_size}/{first.mask_mode}"
                )
        return Proposals(
            torch.cat([p.boxes for p in items]),
            torch.cat([p.scores for p in items]),
            torch.cat([p.masks for p in items]),
            first.image_size,
            first.mask_mode,
        )

    @staticmethod
    def empty(image_size: tuple[int, int], mask_mode: MaskMode = "full", mask_size: int = 28,
              device: torch.device | str = "cpu") -> "Proposals":
        """A frame with no proposals: a valid input everywhere downstream."""
        shape = tuple(image_size) if mask_mode == "full" else (mask_size, mask_size)
        return Proposals(
            torch.zeros(0, 4, device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, *shape, device=device),
            image_size,
            mask_mode,
        )
