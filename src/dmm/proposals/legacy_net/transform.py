"""maskrcnn-benchmark's test-time input: resize rule, PIL resize, BGR x255 minus mean, padding.

maskrcnn-benchmark ``data/transforms/transforms.py`` and ``structures/image_list.py``: the target size is computed with Python ``round`` and
truncation, the frame is resized by PIL (bilinear, antialiased when shrinking, on uint8), and the
network input is ``float32(u8) / 255`` with the channels reversed to BGR, times 255, minus the
Caffe2 pixel mean, divided by a std of 1, zero-padded at the bottom and right to a multiple of 32.
torchvision's ``GeneralizedRCNNTransform`` computes a float scale, resizes the float tensor and
normalises RGB with ImageNet's mean and std instead.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

#: maskrcnn-benchmark's ``INPUT.PIXEL_MEAN`` (BGR) and ``INPUT.PIXEL_STD`` (``config/defaults.py``).
PIXEL_MEAN = (102.9801, 115.9465, 122.7717)
PIXEL_STD = (1.0, 1.0, 1.0)


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """``(oh, ow)`` of a ``height x width`` frame under ``MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``.

    The short side becomes ``min_size`` unless the long side would then exceed ``max_size``, in
    which case the short side is ``int(round(max_size * short / long))``; the long side is the
    truncated ``int(size * long / short)``; a frame whose short side already has the size keeps it.
    """
    size = min_size
    short, long = float(min(width, height)), float(max(width, height))
    if max_size is not None and long / short * size > max_size:
        size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` (h, w, 3) uint8 RGB resized by PIL's bilinear filter to ``size = (oh, ow)``.

    Returns the frame itself (a copy) when it already has that size, as torchvision's ``resize``
    on a PIL image does.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be (h, w, 3) uint8 RGB, got {frame.dtype} {frame.shape}")
    if tuple(frame.shape[:2]) == tuple(size):
        return np.array(frame, copy=True)
    image = Image.fromarray(np.ascontiguousarray(frame), mode="RGB")
    return np.asarray(image.resize((size[1], size[0]), Image.BILINEAR))


def input_tensor(frame: np.ndarray, mean: Sequence[float] = PIXEL_MEAN,
                 std: Sequence[float] = PIXEL_STD) -> torch.Tensor:
    """The network input of a resized frame.

    Args:
        frame: (h, w, 3) uint8 RGB.
    Returns:
        (3, h, w) float32 BGR: ``(float32(u8) / 255)[::-1] * 255 - mean``, divided by ``std``.
    """
    x = torch.from_numpy(np.array(frame, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    x = x.to(torch.float32).div(255)[[2, 1, 0]] * 255
    mean_t = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    return x.sub_(mean_t).div_(std_t)


def pad_batch(images: list[torch.Tensor], divisibility: int = 32) -> torch.Tensor:
    """``images`` ((3, h_i, w_i) each) zero-padded at the bottom and right into one
    (B, 3, H, W) batch, H and W the largest sizes rounded up to a multiple of ``divisibility``."""
    height = max(int(x.shape[1]) for x in images)
    width = max(int(x.shape[2]) for x in images)
    if divisibility > 0:
        height = -(-height // divisibility) * divisibility
        width = -(-width // divisibility) * divisibility
    batch = images[0].new_zeros((len(images), 3, height, width))
    for out, x in zip(batch, images):
        out[:, : x.shape[1], : x.shape[2]].copy_(x)
    return batch
