"""Helpers for the metrics tests: palette-PNG folders of label images (imported by the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _palette() -> list[int]:
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, size=(256, 3))
    colors[0] = 0
    return colors.astype(int).ravel().tolist()


def write_labels(path: Path, labels: np.ndarray) -> None:
    """Write a uint8 label image (h, w) as a palette PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette(_palette())
    img.save(path)


def write_video(root: Path, video: str, frames: list[np.ndarray], names: list[str] | None = None) -> None:
    """Write label images (each (h, w) uint8) as <root>/<video>/<name>.png (default 00000, 00005, ...)."""
    names = names or [f"{5 * i:05d}" for i in range(len(frames))]
    for name, labels in zip(names, frames):
        write_labels(root / video / f"{name}.png", labels)


def rect(shape: tuple[int, int], top: int, left: int, height: int, width: int) -> np.ndarray:
    """bool (h, w) mask of an axis-aligned rectangle."""
    mask = np.zeros(shape, dtype=bool)
    mask[max(top, 0) : top + height, max(left, 0) : left + width] = True
    return mask
