"""Data layer: dataset readers, splits, clip sampling, transforms and the synthetic set.

Imports nothing of the other stages.
"""

from __future__ import annotations

import importlib

from ..config.keys import check_choice
from .errors import DatasetError
from .splits import SplitPaths, frame_index, resolve_split

# The readers (and the structures they return) import torch; they load on first use, so that
# the split helpers stay light (the shell scripts' checks import them).
_LAZY = {"DAVIS": ".davis", "YouTubeVOS": ".youtubevos", "ObjectInfo": "..structures", "VideoInfo": "..structures"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_reader(cfg_data, split: str):
    """The reader of ``split`` for a config's ``DATA`` node (``cfg.DATA``).

    ``DATA.DATASET`` "youtubevos" (also the synthetic set) or "davis"; ``DATA.LMDB`` (non-empty)
    reads frames from that cache.
    """
    from .davis import DAVIS
    from .youtubevos import YouTubeVOS

    lmdb_path = cfg_data.LMDB or None
    if check_choice("DATA.DATASET", cfg_data.DATASET) == "davis":
        return DAVIS(cfg_data.ROOT, split, lmdb_path=lmdb_path)
    return YouTubeVOS(cfg_data.ROOT, split, split_dir=cfg_data.SPLIT_DIR, lmdb_path=lmdb_path)


__all__ = [
    "DAVIS", "DatasetError", "ObjectInfo", "SplitPaths", "VideoInfo", "YouTubeVOS",
    "build_reader", "frame_index", "resolve_split",
]
