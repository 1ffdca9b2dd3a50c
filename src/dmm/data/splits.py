"""Split names, the sorted-id split rule and the frame index of a split.

Split names (``resolve_split``): ``train`` (train3k), ``trainval`` (val200) and ``test271``
read ``<root>/train`` with the meta files ``<split_dir>/{train3k,val200,test271}_meta.json``
written by ``src/tools/make_splits.py``; ``train_all``, ``valid`` and ``train_testdev_ot``
read ``<root>/<folder>/meta.json`` (``train_all`` reads folder ``train``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from .errors import DatasetError

#: The paper's trainval protocol over YouTube-VOS 2018 ``train`` (3471 videos), in order.
RULE_SPLITS: tuple[tuple[str, str, int | None], ...] = (
    ("train", "train3k", 3000),
    ("trainval", "val200", 200),
    ("test271", "test271", None),  # the remaining videos (271 on the real set)
)
#: split name -> stem of its meta file under the split folder (``<stem>_meta.json``).
SPLIT_META_STEMS = {name: stem for name, stem, _ in RULE_SPLITS}
#: splits read with the dataset's own meta.json, and the folder they live in.
FOLDER_SPLITS = {"train_all": "train", "valid": "valid", "train_testdev_ot": "train_testdev_ot"}


@dataclass(frozen=True)
class SplitPaths:
    """Where a split's frames and meta live: ``images_dir`` holds JPEGImages and Annotations."""

    images_dir: Path
    meta_path: Path


def resolve_split(root: str | os.PathLike, split: str,
                  split_dir: str | os.PathLike = "data/splits/youtubevos") -> SplitPaths:
    """The folder and meta file of a YouTube-VOS split name (see the module docstring)."""
    root = Path(root)
    if split in SPLIT_META_STEMS:
        return SplitPaths(root / "train", Path(split_dir) / f"{SPLIT_META_STEMS[split]}_meta.json")
    if split in FOLDER_SPLITS:
        folder = root / FOLDER_SPLITS[split]
        return SplitPaths(folder, folder / "meta.json")
    known = ", ".join(list(SPLIT_META_STEMS) + list(FOLDER_SPLITS))
    raise DatasetError(f"unknown split {split!r} (known: {known})")


def split_video_ids(video_ids: Sequence[str],
                    counts: Sequence[int] = (3000, 200)) -> dict[str, list[str]]:
    """The sorted-id rule: sort the ids; the first ``counts[0]`` are train3k, the next
    ``counts[1]`` val200, the rest test271. Returns ``{meta stem: [ids]}``.

    A set smaller than the real one gives smaller splits; an empty split is an error.
    """
    ids = sorted(video_ids)
    if len(set(ids)) != len(ids):
        raise DatasetError("duplicate video ids in meta.json")
    n_train, n_val = counts
    out = {
        "train3k": ids[:n_train],
        "val200": ids[n_train:n_train + n_val],
        "test271": ids[n_train + n_val:],
    }
    empty = [stem for stem, vids in out.items() if not vids]
    if empty:
        raise DatasetError(
            f"the split rule (first {n_train} sorted ids train3k, next {n_val} val200, rest "
            f"test271) leaves {', '.join(empty)} empty with only {len(ids)} videos; "
            "use smaller counts for a small dataset (make_splits.py --counts TRAIN VAL), or the "
            "split train_all, which reads all of <root>/train"
        )
    return out


class _ListsFrames(Protocol):
    videos: list[str]

    def frames(self, video: str) -> list[str]: ...


def frame_index(reader: _ListsFrames) -> dict[str, dict[str, int]]:
    """``vidfid2index``: ``{video: {frame: index}}`` over all frames of the reader's split.

    Order: videos sorted by id, frames sorted by name (the JPEGImages listing): the order of
    maskrcnn-benchmark's one-list-per-split proposal files.
    """
    index: dict[str, dict[str, int]] = {}
    position = 0
    for video in sorted(reader.videos):
        frames = sorted(reader.frames(video))
        index[video] = {frame: position + k for k, frame in enumerate(frames)}
        position += len(frames)
    return index
