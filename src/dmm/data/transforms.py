"""Resizing, normalisation and the random affine augmentation of training clips.

One affine, drawn per frame, is applied alike to the image (bilinear), its annotation masks
(nearest) and its proposal masks (bilinear) through the same sampling grid, so they stay
pixel-aligned. Frames are resized to the network input first, then warped at input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AffineParams:
    """Ranges of the random affine (the paper's defaults).

    Attributes:
        rotation: largest rotation in degrees (drawn in [-rotation, rotation]).
        translate: largest shift as a fraction of the width / height.
        shear: largest shear, in radians (drawn in [-shear, shear]).
        scale: (min, max) zoom.
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


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w, 3) uint8`` -> ``(H, W, 3) uint8`` (bilinear; area averaging when shrinking a lot)."""
    h, w = image.shape[:2]
    H, W = size
    if (h, w) == (H, W):
        return image
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


def sample_affine(rng: np.random.Generator, params: AffineParams,
                  size: tuple[int, int]) -> np.ndarray:
    """A random affine about the image centre, ``(3, 3)`` float64 mapping input pixel
    coordinates (x, y) to output pixel coordinates."""
    H, W = size
    angle = math.radians(rng.uniform(-params.rotation, params.rotation))
    tx = rng.uniform(-params.translate, params.translate) * W
    ty = rng.uniform(-params.translate, params.translate) * H
    shear = rng.uniform(-params.shear, params.shear)
    zoom = rng.uniform(*params.scale)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    back = np.array([[1, 0, cx + tx], [0, 1, cy + ty], [0, 0, 1]], dtype=np.float64)
    rot = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0],
                    [0, 0, 1]])
    sh = np.array([[1, -math.sin(shear), 0], [0, math.cos(shear), 0], [0, 0, 1]])
    sc = np.diag([zoom, zoom, 1.0])
    return back @ rot @ sh @ sc @ to_origin


def sampling_grid(matrix: np.ndarray | None, size: tuple[int, int]) -> torch.Tensor | None:
    """``grid_sample`` grid (1, H, W, 2) for the pixel affine ``matrix`` (input -> output)
    at output size ``(H, W)``; None for None (no warp). Compute once per frame, then
    :func:`warp` the image, its masks and its proposals with it."""
    if matrix is None:
        return None
    H, W = size
    # pixel -> normalised coordinates for align_corners=False
    norm = np.array([[2 / W, 0, 1 / W - 1], [0, 2 / H, 1 / H - 1], [0, 0, 1]])
    theta = norm @ np.linalg.inv(matrix) @ np.linalg.inv(norm)
    theta_t = torch.as_tensor(theta[:2], dtype=torch.float32)[None]
    return F.affine_grid(theta_t, [1, 1, H, W], align_corners=False)


def warp(x: torch.Tensor, grid: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Warp ``x: (C, H, W) float`` with a :func:`sampling_grid` (None: unchanged).

    ``mode``: "bilinear" (images, probabilities) or "nearest" (binary masks). Outside the
    source is 0.
    """
    if grid is None or x.shape[0] == 0:
        return x
    if tuple(grid.shape[1:3]) != tuple(x.shape[-2:]):
        raise ValueError(f"grid is {tuple(grid.shape[1:3])}, input is {tuple(x.shape[-2:])}")
    grid = grid.to(x.device)
    return F.grid_sample(x[None].float(), grid, mode=mode, padding_mode="zeros",
                         align_corners=False)[0]
