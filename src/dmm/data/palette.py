"""The DAVIS / PASCAL VOC colour palette and palette-PNG reading and writing."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from .errors import DatasetError


def davis_palette() -> np.ndarray:
    """The 256-colour DAVIS (PASCAL VOC) palette. Returns (256, 3) uint8.

    Colour ``i`` spreads the bits of ``i`` over the three channels, most significant first.
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        value, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[i] = (r, g, b)
    return palette


_FLAT_PALETTE = davis_palette().reshape(-1).tolist()


def mask_to_image(mask: np.ndarray) -> Image.Image:
    """A palette ("P") PIL image of ``mask: (h, w) uint8 object ids``."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be (h, w), got {mask.shape}")
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(_FLAT_PALETTE)
    return image


def save_palette_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write ``mask: (h, w) uint8`` as a palette PNG (not atomic: callers write into temp dirs)."""
    mask_to_image(mask).save(path, format="PNG")


def decode_annotation(data: bytes, name: str) -> np.ndarray:
    """Decode a palette or grayscale PNG into ``(h, w) uint8`` object ids.

    Raises DatasetError naming ``name`` for unreadable files and RGB annotations.
    """
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as e:  # PIL raises several types for bad files
        raise DatasetError(f"{name}: cannot read annotation ({e})") from None
    if image.mode not in ("P", "L"):
        raise DatasetError(
            f"{name}: annotation has mode {image.mode!r}; expected a palette ('P') or "
            "grayscale ('L') PNG whose pixel values are object ids"
        )
    return np.array(image, dtype=np.uint8)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode a JPEG (or any PIL format) into ``(h, w, 3) uint8 RGB``; DatasetError if corrupt."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return np.array(image.convert("RGB"))
    except Exception as e:
        raise DatasetError(f"{name}: corrupt or unreadable image ({e})") from None


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """``(h, w)`` from an image's header, without decoding the pixels."""
    try:
        width, height = Image.open(io.BytesIO(data)).size
    except Exception as e:
        raise DatasetError(f"{name}: corrupt or unreadable image ({e})") from None
    return height, width
