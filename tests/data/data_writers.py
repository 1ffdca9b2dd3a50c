"""Writers of small hand-made datasets (YouTube-VOS and DAVIS layouts) for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dmm.data.palette import save_palette_png


def write_video(split_dir: Path, video: str, masks: dict[str, np.ndarray],
                annotated: list[str] | None = None, image_dir: str = "JPEGImages",
                annotation_dir: str = "Annotations") -> None:
    """Write frames (an image whose red channel is 40 * mask id) and palette annotations.

    ``masks``: {frame: (h, w) uint8 ids}; ``annotated``: frames that get an annotation file
    (default all).
    """
    (split_dir / image_dir / video).mkdir(parents=True, exist_ok=True)
    (split_dir / annotation_dir / video).mkdir(parents=True, exist_ok=True)
    for frame, mask in masks.items():
        image = np.zeros(mask.shape + (3,), np.uint8)
        image[..., 0] = mask * 40
        image[..., 1] = 90
        Image.fromarray(image).save(split_dir / image_dir / video / f"{frame}.jpg", quality=95)
        if annotated is None or frame in annotated:
            save_palette_png(split_dir / annotation_dir / video / f"{frame}.png", mask)


def meta_from_masks(videos: dict[str, dict[str, np.ndarray]]) -> dict:
    """A YouTube-VOS meta.json listing, per object, the frames where it is present."""
    out = {}
    for video, masks in videos.items():
        objects: dict[str, dict] = {}
        for frame, mask in masks.items():
            for oid in np.unique(mask):
                if oid:
                    objects.setdefault(str(int(oid)), {"category": "thing", "frames": []})
                    objects[str(int(oid))]["frames"].append(frame)
        out[video] = {"objects": objects}
    return {"videos": out}


def box_mask(size, boxes: dict[int, tuple[int, int, int, int]]) -> np.ndarray:
    """(h, w) uint8 with ``{id: (y0, x0, y1, x1)}`` boxes painted in order."""
    mask = np.zeros(size, np.uint8)
    for oid, (y0, x0, y1, x1) in boxes.items():
        mask[y0:y1, x0:x1] = oid
    return mask

