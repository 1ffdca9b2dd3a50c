"""Resizing, normalisation and the random affine augmentation of training clips (2019 rules).

Frames are resized to the network input by nearest neighbour (the 2019 code's PIL default),
annotations always by nearest neighbour. One affine, drawn per frame, is applied alike to the
image, its annotation and its proposal masks through the same nearest-neighbour source index
(:func:`affine_source_index`), so they stay pixel-aligned. The project's one implementation of
the augmentation: the training clips and ``src/tools/make_train_online_dataset.py`` use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from ..config.keys import check_choice


@dataclass(frozen=True)
class AffineParams:
    """Ranges of the random affine (the paper's defaults).

    Attributes:
        rotation: largest rotation in degrees (drawn in [-rotation, rotation]).
        translate: largest shift as a fraction of the height (rows) and width (columns).
        shear: largest shear, in degrees (the 2019 code's unit: 0.1 is nearly no shear).
        scale: (min, max) zoom, drawn independently for rows and columns.
    """

    rotation: float = 10.0
    translate: float = 0.1
    shear: float = 0.1
    scale: tuple[float, float] = (0.7, 1.4)

    @classmethod
    def from_config(cls, cfg_data) -> "AffineParams | None":
        """From a config's DATA node; None when ``DATA.AUGMENT`` is off."""
        if not cfg_data.AUGMENT:
            return None
        return cls(float(cfg_data.ROTATION), float(cfg_data.TRANSLATE), float(cfg_data.SHEAR),
                   (float(cfg_data.SCALE[0]), float(cfg_data.SCALE[1])))


def resize_image(image: np.ndarray, size: tuple[int, int], mode: str = "nearest") -> np.ndarray:
    """``(h, w, 3) uint8`` -> ``(H, W, 3) uint8``.

    ``mode`` (``DATA.IMAGE_RESIZE``): ``"nearest"`` is what the 2019 code did (PIL's ``resize``
    without a filter, NEAREST in its pinned Pillow 6.1: source pixel ``floor((i + 0.5) * src / dst)``,
    OpenCV's ``INTER_NEAREST_EXACT``); ``"bilinear"`` smooths (area averaging when shrinking a lot).
    """
    check_choice("DATA.IMAGE_RESIZE", mode)
    h, w = image.shape[:2]
    H, W = size
    if (h, w) == (H, W):
        return image
    if mode == "nearest":
        return cv2.resize(image, (W, H), interpolation=cv2.INTER_NEAREST_EXACT)
    interp = cv2.INTER_AREA if (h >= 2 * H and w >= 2 * W) else cv2.INTER_LINEAR
    return cv2.resize(image, (W, H), interpolation=interp)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w) uint8`` ids -> ``(H, W)`` by nearest neighbour (pixel centres aligned)."""
    H, W = size
    if mask.shape == (H, W):
        return mask
    return cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST_EXACT)


def normalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(3, H, W) float in [0, 1]`` -> ImageNet-normalised ``(3, H, W)``."""
    m = torch.as_tensor(mean, dtype=image.dtype).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=image.dtype).view(3, 1, 1)
    return (image - m) / s


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(3, H, W) float in [0, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)


def sample_affine(rng: np.random.Generator, params: AffineParams, size: tuple[int, int]) -> torch.Tensor:
    """A random affine of the 2019 augmentation (RVOS's ``RandomAffine``), drawn in its order.

    Six draws: rotation (degrees), translation of rows then columns (fractions of H and W),
    shear (**degrees**, as the 2019 code interprets its 0.1), zoom of rows then columns
    (independent). The matrix ``R @ T @ S @ Z`` acts on (row, col) pixel coordinates, built and
    multiplied in float32 like the 2019 code.

    Returns:
        (3, 3) float32, for :func:`affine_source_index`.
    """
    h, w = size
    theta = math.radians(rng.uniform(-params.rotation, params.rotation))
    shift_rows = rng.uniform(-params.translate, params.translate) * h
    shift_cols = rng.uniform(-params.translate, params.translate) * w
    shear = math.radians(rng.uniform(-params.shear, params.shear))
    zoom_rows = rng.uniform(*params.scale)
    zoom_cols = rng.uniform(*params.scale)
    f32 = torch.float32
    rot = torch.tensor([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]], dtype=f32)
    shift = torch.tensor([[1, 0, shift_rows], [0, 1, shift_cols], [0, 0, 1]], dtype=f32)
    sh = torch.tensor([[1, -math.sin(shear), 0], [0, math.cos(shear), 0], [0, 0, 1]], dtype=f32)
    zoom = torch.tensor([[zoom_rows, 0, 0], [0, zoom_cols, 0], [0, 0, 1]], dtype=f32)
    return rot.mm(shift).mm(sh).mm(zoom)


def affine_source_index(matrix: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Where each output pixel samples its value: ``(H * W,)`` int64 flat source indices.

    Output pixel ``p = (row, col)`` takes the source pixel ``round(clamp((A (p - c) + b) + c))``
    with ``A, b`` the matrix's linear part and offset and ``c = (H / 2 - 0.5, W / 2 - 0.5)``, added
    in that order as the 2019 code did (another order rounds an exact half elsewhere now and then):
    nearest neighbour with the border replicated (torchsample's ``th_affine2d``, float32,
    round half to even). Compute it once per frame, then :func:`warp_nearest` the image, the
    annotation and the proposal masks with it.
    """
    h, w = size
    m = matrix.to(torch.float32)
    rows = torch.arange(h, device=m.device, dtype=torch.float32) - (h / 2 - 0.5)
    cols = torch.arange(w, device=m.device, dtype=torch.float32) - (w / 2 - 0.5)
    # (A (p - c) + b) + c in 2019's order of float32 additions, one (H, W) map per output coordinate
    src_r = ((rows[:, None] * m[0, 0] + cols[None, :] * m[0, 1]) + m[0, 2]) + (h / 2 - 0.5)
    src_c = ((rows[:, None] * m[1, 0] + cols[None, :] * m[1, 1]) + m[1, 2]) + (w / 2 - 0.5)
    r = src_r.clamp_(0, h - 1).round_().to(torch.int64)
    c = src_c.clamp_(0, w - 1).round_().to(torch.int64)
    return (r * w + c).flatten()


def warp_nearest(x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """``x: (..., H, W)`` resampled through :func:`affine_source_index` (None: unchanged)."""
    if index is None:
        return x
    shape = x.shape
    return x.reshape(*shape[:-2], -1).index_select(-1, index.to(x.device)).reshape(shape)
