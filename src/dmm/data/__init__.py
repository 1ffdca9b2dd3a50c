"""Data layer: dataset readers, splits, clip sampling, transforms and the synthetic set.

Imports nothing of the other stages.
"""

from __future__ import annotations

from ..config.keys import check_choice
from .davis import DAVIS
from .errors import DatasetError
from .splits import SplitPaths, frame_index, resolve_split
from ..structures import ObjectInfo, VideoInfo
from .youtubevos import YouTubeVOS


def build_reader(cfg_data, split: str):
    """The reader of ``split`` for a config's ``DATA`` node (``cfg.DATA``).

    ``DATA.DATASET`` "youtubevos" (also the synthetic set) or "davis"; ``DATA.LMDB`` (non-empty)
    reads frames from that cache.
    """
    lmdb_path = cfg_data.LMDB or None
    if check_choice("DATA.DATASET", cfg_data.DATASET) == "davis":
        return DAVIS(cfg_data.ROOT, split, lmdb_path=lmdb_path)
    return YouTubeVOS(cfg_data.ROOT, split, split_dir=cfg_data.SPLIT_DIR, lmdb_path=lmdb_path)


__all__ = [
    "DAVIS", "DatasetError", "ObjectInfo", "SplitPaths", "VideoInfo", "YouTubeVOS",
    "build_reader", "frame_index", "resolve_split",
]
