"""Overlay animations of result masks on their frames (GIF, or MP4 through OpenCV)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import imageio.v2 as imageio
import numpy as np
from PIL import Image

from ..data.palette import davis_palette
from ..io import atomic_path


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend object colours into a frame and draw their outlines.

    Args:
        image: (h, w, 3) uint8 RGB.
        labels: (h, w) uint8 object ids (0 = background).

    Returns:
        (h, w, 3) uint8 RGB.
    """
    palette = davis_palette()
    colours = palette[labels]
    fg = labels > 0
    out = image.copy()
    out[fg] = (image[fg] * (1 - alpha) + colours[fg] * alpha).astype(np.uint8)
    edges = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = 255
    return out


def read_labels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def write_overlay_animation(
    frames: Sequence[np.ndarray], label_dirs: Sequence[Path], frame_names: Sequence[str], out_path: str | Path,
    titles: Sequence[str] = (), fps: float = 6.0, max_width: int = 1200,
) -> Path:
    """One animation of ``frames`` with each folder of result PNGs overlaid, side by side.

    Args:
        frames: T RGB frames (h, w, 3) uint8.
        label_dirs: folders of ``<frame>.png`` label maps (e.g. ground truth, DMM-Net, a baseline).
        frame_names: the T frame names.
        out_path: ``.gif`` or ``.mp4``.
        titles: one caption per folder, drawn in the top-left corner.
    """
    out_path = Path(out_path)
    tiles = []
    for image, name in zip(frames, frame_names):
        row = []
        for k, d in enumerate(label_dirs):
            png = Path(d) / f"{name}.png"
            labels = read_labels(png) if png.exists() else np.zeros(image.shape[:2], np.uint8)
            tile = overlay(image, labels)
            if k < len(titles):
                cv2.putText(tile, titles[k], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
            row.append(tile)
        tile = np.concatenate(row, axis=1)
        if tile.shape[1] > max_width:
            scale = max_width / tile.shape[1]
            tile = cv2.resize(tile, (max_width, int(round(tile.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        tiles.append(tile)
    with atomic_path(out_path) as tmp:
        if out_path.suffix.lower() == ".mp4":
            h, w = tiles[0].shape[:2]
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            try:
                for t in tiles:
                    writer.write(cv2.cvtColor(t, cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
        else:
            imageio.mimsave(tmp, tiles, format="GIF", duration=1.0 / fps, loop=0)
    return out_path
