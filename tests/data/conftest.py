"""Fixtures writing small hand-made YouTube-VOS-layout datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .data_writers import box_mask, meta_from_masks, write_video
from dmm.data.palette import save_palette_png


@pytest.fixture
def late_ytvos(tmp_path) -> Path:
    """A ``valid`` split: video ``vlate`` has object 3 from frame 00000 and object 7 from
    00010 (non-contiguous ids, late appearance); only first appearances are annotated."""
    size = (24, 32)
    masks = {
        "00000": box_mask(size, {3: (2, 2, 10, 10)}),
        "00005": box_mask(size, {3: (4, 4, 12, 12)}),
        "00010": box_mask(size, {3: (6, 6, 14, 14), 7: (14, 20, 22, 30)}),
        "00015": box_mask(size, {3: (8, 8, 16, 16), 7: (12, 18, 20, 28)}),
    }
    split_dir = tmp_path / "ytvos" / "valid"
    write_video(split_dir, "vlate", {"00000": masks["00000"], "00005": masks["00005"],
                                     "00010": masks["00010"], "00015": masks["00015"]},
                annotated=["00000", "00010"])
    # only the new object is in a first-appearance annotation, as in YouTube-VOS valid
    save_palette_png(split_dir / "Annotations" / "vlate" / "00010.png",
                     np.where(masks["00010"] == 7, 7, 0).astype(np.uint8))
    meta = meta_from_masks({"vlate": masks})
    (split_dir / "meta.json").write_text(json.dumps(meta))
    return tmp_path / "ytvos"


@pytest.fixture
def small_train(tmp_path) -> Path:
    """A ``train`` split of two fully annotated videos ``a`` (ids 1, 2) and ``b`` (id 5)."""
    size = (24, 32)
    videos = {
        "a": {f"{5 * k:05d}": box_mask(size, {1: (2, 2 + k, 10, 10 + k), 2: (12, 16, 20, 28)})
              for k in range(4)},
        "b": {f"{5 * k:05d}": box_mask(size, {5: (4, 4, 16, 16 + k)}) for k in range(3)},
    }
    split_dir = tmp_path / "ytvos" / "train"
    for video, masks in videos.items():
        write_video(split_dir, video, masks)
    (split_dir / "meta.json").write_text(json.dumps(meta_from_masks(videos)))
    return tmp_path / "ytvos"
