"""DAVIS 2017 reader: ``JPEGImages/<res>``, ``Annotations/<res>``, ``ImageSets/2017/<split>.txt``."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DatasetError
from .reader import VideoReader, make_source


class DAVIS(VideoReader):
    """A DAVIS 2017 split (``train``, ``val``, ``test-dev``, ...).

    Objects are the ids found in the annotations; each one's first frame is the first
    annotated frame that contains it. An ``lmdb_path`` made by ``make_lmdb.py`` over the
    DAVIS root replaces the folders.
    """

    def __init__(self, root: str | os.PathLike, split: str, resolution: str = "480p",
                 lmdb_path: str | os.PathLike | None = None):
        self.root = Path(root)
        self.split = split
        super().__init__(make_source(self.root, lmdb_path), f"JPEGImages/{resolution}",
                         f"Annotations/{resolution}")
        list_file = self.root / "ImageSets" / "2017" / f"{split}.txt"
        if not list_file.is_file():
            raise DatasetError(f"{list_file}: DAVIS 2017 split list not found; put DAVIS 2017 "
                               f"(480p) under {self.root}")
        self.videos = sorted({line.strip() for line in list_file.read_text().splitlines()
                              if line.strip()})
        if not self.videos:
            raise DatasetError(f"{list_file}: split {split!r} has no videos")
        on_disk = set(self.source.listdir(self.image_dir))
        missing = [v for v in self.videos if v not in on_disk]
        if missing:
            raise DatasetError(f"{self.source.describe(self.image_dir)}: video {missing[0]!r} of "
                               f"{list_file} missing on disk")

    def _meta_objects(self, video: str) -> None:
        return None
