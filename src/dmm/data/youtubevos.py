"""YouTube-VOS 2018 reader (``train``, ``valid`` and the split files of the trainval protocol)."""

from __future__ import annotations

import json
import os

from .errors import DatasetError
from .reader import VideoReader, make_source
from .splits import SPLIT_META_STEMS, resolve_split


class YouTubeVOS(VideoReader):
    """A YouTube-VOS 2018 split: ``<folder>/{meta.json, JPEGImages, Annotations}``.

    Args:
        root: dataset root holding ``train/`` and ``valid/`` (``datasets/youtubeVOS``).
        split: a split name of :func:`dmm.data.splits.resolve_split`.
        split_dir: folder of the ``{train3k,val200,test271}_meta.json`` files.
        lmdb_path: optional frame cache made by ``src/tools/make_lmdb.py`` for this folder.

    Attributes:
        videos: sorted video ids of the split's meta.
    """

    def __init__(self, root: str | os.PathLike, split: str,
                 split_dir: str | os.PathLike = "data/splits/youtubevos",
                 lmdb_path: str | os.PathLike | None = None):
        self.root = root
        self.split = split
        self.paths = resolve_split(root, split, split_dir)
        super().__init__(make_source(self.paths.images_dir, lmdb_path), "JPEGImages", "Annotations")
        self.meta_name = str(self.paths.meta_path)
        self.meta = self._load_meta()
        self.videos = sorted(self.meta)
        if not self.videos:
            raise DatasetError(f"{self.paths.meta_path}: split {split!r} has no videos")
        on_disk = set(self.source.listdir("JPEGImages"))
        missing = [v for v in self.videos if v not in on_disk]
        if missing:
            raise DatasetError(
                f"{self.source.describe('JPEGImages')}: {len(missing)} video(s) of "
                f"{self.paths.meta_path} missing on disk, e.g. {missing[0]!r}")

    def _load_meta(self) -> dict[str, dict]:
        path = self.paths.meta_path
        if not path.is_file():
            if self.split in SPLIT_META_STEMS:
                hint = (f"make it with `python src/tools/make_splits.py --root {self.root}` "
                        f"(DATA.SPLIT_DIR = {path.parent}), or, for a small or custom dataset, use "
                        f"split train_all, which reads {resolve_split(self.root, 'train_all').meta_path}")
            else:
                hint = (f"download YouTube-VOS 2018 and put it under {self.root} "
                        "(or generate the synthetic set with `python -m dmm.data.synthetic`)")
            raise DatasetError(f"{path}: meta file of split {self.split!r} not found; {hint}")
        try:
            meta = json.loads(path.read_text())
            videos = meta["videos"]
            for vid, entry in videos.items():
                entry["objects"]
        except (ValueError, KeyError, TypeError) as e:
            raise DatasetError(f"{path}: not a YouTube-VOS meta.json ({e!r})") from None
        return videos

    def _start_frame(self, video: str) -> str | None:
        """On ``trainval`` the 2019 loader and evaluator start a video at the first frame its
        meta lists for the object listed first (json order; ``dataloader/youtubeVOS.py``,
        ``modules/evaluator.py: prepare_frame_names``), elsewhere at its first annotation file."""
        if self.split != "trainval":
            return None
        for entry in self.meta[video]["objects"].values():
            listed = entry.get("frames") or []
            return listed[0] if listed else None
        return None

    def _meta_objects(self, video: str) -> dict[int, tuple[str | None, list[str]]]:
        objects = {}
        for key, entry in self.meta[video]["objects"].items():
            try:
                oid = int(key)
            except ValueError:
                raise DatasetError(f"{self.paths.meta_path}: video {video!r} has a non-integer "
                                   f"object id {key!r}") from None
            if not 0 < oid < 256:
                raise DatasetError(f"{self.paths.meta_path}: video {video!r}: object id {oid} "
                                   "outside 1..255")
            objects[oid] = (entry.get("category"), list(entry.get("frames", [])))
        return objects
