"""``VideoReader``: what the YouTube-VOS and DAVIS readers share.

A reader reads frames and annotations through a source (a folder or an LMDB, see
``storage``), lists a video's frames (the JPEGImages listing, sorted), and finds each
object's first frame: the first annotated frame whose mask contains the object's id. When the
dataset has a meta file, every annotation read is checked against it: an object id painted in
an annotation but missing from the meta is an error naming the video, frame, file and id.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import size_text
from .errors import DatasetError
from .palette import decode_annotation, decode_image, image_size
from .storage import FolderSource, LmdbSource
from ..structures import ObjectInfo, VideoInfo

IMAGE_EXT = ".jpg"
ANNOTATION_EXT = ".png"


def make_source(folder: str | os.PathLike, lmdb_path: str | os.PathLike | None):
    """A folder source, or an LMDB source when ``lmdb_path`` is given (non-empty)."""
    return LmdbSource(lmdb_path) if lmdb_path else FolderSource(folder)


class VideoReader:
    """Base reader. Subclasses set ``videos`` and implement :meth:`_meta_objects`.

    Args:
        source: file access (``FolderSource`` / ``LmdbSource``) relative to the split folder.
        image_dir: relative folder of the frame folders (``JPEGImages`` or ``JPEGImages/480p``).
        annotation_dir: relative folder of the annotation folders.
    """

    videos: list[str]
    #: the meta file that lists the objects, for messages (subclasses with a meta set it).
    meta_name: str = "the meta file"

    def __init__(self, source, image_dir: str, annotation_dir: str):
        self.source = source
        self.image_dir = image_dir
        self.annotation_dir = annotation_dir
        self._frames: dict[str, list[str]] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._infos: dict[str, VideoInfo] = {}
        self._meta_ids: dict[str, frozenset[int] | None] = {}

    # --- per-video meta (subclasses) -------------------------------------------------------
    def _meta_objects(self, video: str) -> dict[int, tuple[str | None, list[str]]] | None:
        """``{id: (category, frames)}`` from the dataset's meta, or None to take the objects
        found in the annotations."""
        raise NotImplementedError

    def _start_frame(self, video: str) -> str | None:
        """The frame the 2019 evaluator started ``video`` at, where this split has a rule of its own
        (:attr:`VideoInfo.start`); None: the earliest frame holding an object."""
        return None

    # --- paths -----------------------------------------------------------------------------
    def image_path(self, video: str, frame: str) -> str:
        return f"{self.image_dir}/{video}/{frame}{IMAGE_EXT}"

    def annotation_path(self, video: str, frame: str) -> str:
        return f"{self.annotation_dir}/{video}/{frame}{ANNOTATION_EXT}"

    def _check_video(self, video: str) -> None:
        if video not in self._video_set:
            raise DatasetError(f"video {video!r} is not in this split")

    @property
    def _video_set(self) -> set[str]:
        if not hasattr(self, "_videos_set_cache"):
            self._videos_set_cache = set(self.videos)
        return self._videos_set_cache

    # --- listings --------------------------------------------------------------------------
    def frames(self, video: str) -> list[str]:
        """Frame names of ``video`` (the JPEGImages listing without extension, sorted)."""
        if video not in self._frames:
            self._check_video(video)
            names = [n[: -len(IMAGE_EXT)] for n in self.source.listdir(f"{self.image_dir}/{video}")
                     if n.endswith(IMAGE_EXT)]
            if not names:
                raise DatasetError(
                    f"{self.source.describe(f'{self.image_dir}/{video}')}: no {IMAGE_EXT} frames "
                    f"for video {video!r}")
            self._frames[video] = names
        return self._frames[video]

    def annotated_frames(self, video: str) -> list[str]:
        """Frames of ``video`` that have an annotation file, in frame order."""
        names = {n[: -len(ANNOTATION_EXT)]
                 for n in self.source.listdir(f"{self.annotation_dir}/{video}")
                 if n.endswith(ANNOTATION_EXT)}
        return [f for f in self.frames(video) if f in names]

    # --- pixels ----------------------------------------------------------------------------
    def frame_size(self, video: str) -> tuple[int, int]:
        """``(h, w)`` of the video's frames (read from the first frame's header)."""
        if video not in self._sizes:
            rel = self.image_path(video, self.frames(video)[0])
            self._sizes[video] = image_size(self.source.read(rel), self.source.describe(rel))
        return self._sizes[video]

    def image(self, video: str, frame: str) -> np.ndarray:
        """The frame as ``(h, w, 3) uint8`` RGB."""
        rel = self.image_path(video, frame)
        return decode_image(self.source.read(rel), self.source.describe(rel))

    def annotation(self, video: str, frame: str) -> np.ndarray | None:
        """The frame's ``(h, w) uint8`` object ids, or None when it has no annotation file."""
        rel = self.annotation_path(video, frame)
        if not self.source.exists(rel):
            return None
        name = self.source.describe(rel)
        mask = decode_annotation(self.source.read(rel), name)
        if mask.shape != self.frame_size(video):
            raise DatasetError(
                f"{name}: annotation size {size_text(mask.shape)} differs from its "
                f"image size {size_text(self.frame_size(video))}")
        self._check_painted_ids(video, frame, mask, name)
        return mask

    def _check_painted_ids(self, video: str, frame: str, mask: np.ndarray, name: str) -> None:
        """Every id painted in ``mask`` (h, w) uint8 is an object of the video's meta."""
        if video not in self._meta_ids:
            meta = self._meta_objects(video)
            self._meta_ids[video] = None if meta is None else frozenset(meta)
        known = self._meta_ids[video]
        if known is None:
            return
        painted = np.flatnonzero(np.bincount(mask.ravel(), minlength=256)[1:]) + 1
        unknown = [int(i) for i in painted if int(i) not in known]
        if unknown:
            ids = ("object id " if len(unknown) == 1 else "object ids ") + ", ".join(map(str, unknown))
            raise DatasetError(
                f"{name}: video {video!r} frame {frame!r} has {ids} painted in its annotation but "
                f"not among the video's objects {sorted(known)} in {self.meta_name}: add the "
                "object to the meta file or clear it from the annotation")

    # --- objects ---------------------------------------------------------------------------
    def info(self, video: str) -> VideoInfo:
        """Frames and objects of ``video`` (cached). Validates meta against the files."""
        if video not in self._infos:
            self._infos[video] = self._build_info(video)
        return self._infos[video]

    def _build_info(self, video: str) -> VideoInfo:
        frames = self.frames(video)
        position = {f: i for i, f in enumerate(frames)}
        meta = self._meta_objects(video)
        if meta is not None:
            for oid, (_, listed) in meta.items():
                for f in listed:
                    if f not in position:
                        raise DatasetError(
                            f"{self.source.describe(self.image_path(video, f))}: frame {f!r} of "
                            f"video {video!r} is listed in meta for object {oid} but missing on disk")
        first: dict[int, str] = {}
        present: dict[int, list[str]] = {}
        pending = None if meta is None else set(meta)
        for f in self.annotated_frames(video):
            if pending is not None and not pending:
                break
            ids = {int(i) for i in np.unique(self.annotation(video, f)) if i}
            for oid in ids:
                first.setdefault(oid, f)
                present.setdefault(oid, []).append(f)
            if pending is not None:
                pending -= ids
        if meta is None:
            meta = {oid: (None, frs) for oid, frs in present.items()}
        objects: dict[int, ObjectInfo] = {}
        for oid in sorted(meta):
            category, listed = meta[oid]
            if oid not in first:
                raise DatasetError(
                    f"video {video!r}: object {oid} is in meta but never present in any annotation "
                    f"under {self.source.describe(f'{self.annotation_dir}/{video}')}")
            if listed and listed[0] != first[oid]:
                mask = self.annotation(video, listed[0])
                if mask is None or not (mask == oid).any():
                    raise DatasetError(
                        f"{self.source.describe(self.annotation_path(video, listed[0]))}: meta "
                        f"says object {oid} of video {video!r} first appears here, but it is "
                        "not in this annotation")
            objects[oid] = ObjectInfo(oid, first[oid], position[first[oid]], category, tuple(listed))
        return VideoInfo(video, list(frames), objects, self._start_frame(video))
