"""Proposal files: one per video, versioned, loadable with ``torch.load(weights_only=True)``.

A per-video file ``<dir>/<video>.pth`` holds::

    {"format": "dmm-proposals", "version": 1, "video": str, "num_frames": int,
     "frames": {frame: {"image_size": [h, w], "boxes": (N, 4) float xyxy,
                        "scores": (N,), "masks": (N, 28, 28) or (N, h, w), "mask_mode": str,
                        "labels": (N,) int64 (optional: the detector's classes)}}}

The proposals keep the order they were written in (a maskrcnn-benchmark extraction keeps its
detections' order: class, then RPN proposal; nothing here re-sorts them by score).

Reading checks the header against what was asked for: a file whose ``video`` is not the
video asked for (a file copied from another video), or whose ``num_frames`` is not the number
of frames it holds, is an error naming the file and both. Files written before ``num_frames``
was recorded lack it and are read without that check. Non-finite boxes, scores or masks are
an error naming the file, video and frame.

A split-wide file (this project's counterpart of maskrcnn-benchmark's ``predictions.pth``:
one entry per frame of a split, in frame-index order) holds::

    {"format": "dmm-proposals-split", "version": 1, "frames": [<frame dict as above>, ...]}
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import torch

from dmm.errors import InputError, MissingInputError, MissingKeyError
from dmm.io import load_torch, save_torch
from dmm.structures import Proposals

FORMAT = "dmm-proposals"
SPLIT_FORMAT = "dmm-proposals-split"
VERSION = 1


def proposals_to_dict(p: Proposals, mask_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """A frame's proposals as plain tensors, numbers and strings (on the CPU)."""
    masks = p.masks.detach().cpu()
    return {
        "image_size": [int(p.image_size[0]), int(p.image_size[1])],
        "boxes": p.boxes.detach().cpu().to(torch.float32).contiguous(),
        "scores": p.scores.detach().cpu().to(torch.float32).contiguous(),
        "masks": (masks.to(mask_dtype) if mask_dtype is not None else masks).contiguous(),
        "mask_mode": p.mask_mode,
    }


def check_finite(p: Proposals, where: str) -> Proposals:
    """``p`` itself, after checking that its boxes, scores and masks hold no NaN or inf."""
    for name in ("boxes", "scores", "masks"):
        values = getattr(p, name)
        if not bool(torch.isfinite(values).all()):
            raise InputError(f"non-finite (NaN or inf) proposal {name} for {where}: the file is "
                             "corrupt or its detector diverged; extract the proposals again")
    return p


def proposals_from_dict(d: dict[str, Any], where: str) -> Proposals:
    """Inverse of :func:`proposals_to_dict`; masks come back as float32."""
    try:
        return Proposals(d["boxes"], d["scores"], d["masks"].to(torch.float32),
                         tuple(d["image_size"]), d["mask_mode"])
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise InputError(f"bad proposals for {where}: {e}") from None


def _read_frame(d: dict[str, Any], where: str) -> Proposals:
    """A stored frame's proposals, checked to be finite."""
    return check_finite(proposals_from_dict(d, where), where)


def write_video_proposals(path: str | os.PathLike, frames: dict[str, Proposals],
                          video: str | None = None, mask_dtype: torch.dtype | None = None,
                          labels: dict[str, torch.Tensor] | None = None) -> None:
    """Write one video's proposals atomically to ``path`` (the video name defaults to its stem).

    ``labels``: optionally, per frame, the (N,) int64 classes of its proposals (kept so that a
    split-wide maskrcnn-benchmark ``predictions.pth`` can be rebuilt from the files).
    """
    path = Path(path)
    video = path.stem if video is None else video
    entries = {}
    for f, p in sorted(frames.items()):
        entry = proposals_to_dict(p, mask_dtype)
        if labels is not None:
            lab = labels[f].detach().cpu().to(torch.int64).contiguous()
            if lab.shape != (len(p),):
                raise ValueError(f"frame {f!r}: {tuple(lab.shape)} labels for {len(p)} proposals")
            entry["labels"] = lab
        entries[str(f)] = entry
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "video": video,
        "num_frames": len(frames),
        "frames": entries,
    }
    save_torch(obj, path)


def _check_header(obj: Any, fmt: str, path: Path) -> None:
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise InputError(f"{path} is not a {fmt!r} file")
    if obj.get("version") != VERSION:
        raise InputError(f"{path}: unsupported {fmt} version {obj.get('version')!r} "
                         f"(this code reads version {VERSION})")


def _check_video_header(obj: dict[str, Any], path: Path, video: str) -> None:
    """The header of a per-video file names ``video`` and counts the frames it holds."""
    if obj.get("video") != video:
        raise InputError(f"proposal file {path} holds the proposals of video {obj.get('video')!r}, "
                         f"not of video {video!r} (copied or renamed from another video's file?): "
                         f"write the proposals of {video!r} again")
    frames = obj.get("frames")
    if not isinstance(frames, dict):
        raise InputError(f"proposal file {path} of video {video!r} has no frames mapping")
    count = obj.get("num_frames")
    if count is not None and count != len(frames):
        raise InputError(f"proposal file {path} of video {video!r}: its header counts {count} "
                         f"frames but it holds {len(frames)}: write it again")


def _load_video_file(path: Path, video: str) -> dict[str, Any]:
    """The checked raw contents of the per-video file of ``video``, memory-mapped.

    With ``mmap=True`` the tensors stay on disk until a frame is read, so holding a long
    video's file costs (almost) nothing until its frames are used.
    """
    obj = load_torch(path, "proposal file", mmap=True)
    _check_header(obj, FORMAT, path)
    _check_video_header(obj, path, video)
    return obj


def read_video_proposals(path: str | os.PathLike, video: str | None = None
                         ) -> dict[str, Proposals]:
    """``{frame: Proposals}`` of one per-video file, which must be that of ``video``
    (default: the file's stem, as :func:`write_video_proposals` names it)."""
    path = Path(path)
    video = path.stem if video is None else video
    obj = _load_video_file(path, video)
    return {f: _read_frame(d, f"video {video!r} frame {f!r} in {path}")
            for f, d in obj["frames"].items()}


def read_video_labels(path: str | os.PathLike, video: str | None = None
                      ) -> dict[str, torch.Tensor | None]:
    """``{frame: (N,) int64 labels, or None where the file holds none}`` of a per-video file."""
    path = Path(path)
    video = path.stem if video is None else video
    return {f: (d["labels"].clone() if "labels" in d else None)
            for f, d in _load_video_file(path, video)["frames"].items()}


def describe_missing(missing: list[str], limit: int = 10) -> str:
    """A short list of frame names: the first ``limit``, then how many more."""
    shown = ", ".join(repr(f) for f in missing[:limit])
    return shown + (f" and {len(missing) - limit} more" if len(missing) > limit else "")


def write_split_proposals(path: str | os.PathLike, frames: Iterable[Proposals]) -> None:
    """Write a split-wide list of per-frame proposals (frame-index order) atomically."""
    obj = {"format": SPLIT_FORMAT, "version": VERSION,
           "frames": [proposals_to_dict(p) for p in frames]}
    save_torch(obj, path)


def split_proposals_from_object(obj: Any, path: Path) -> list[Proposals]:
    """The per-frame list of an already loaded split-wide file (finiteness is checked by
    ``dmm.proposals.reduce.reduce_by_videos``, which knows each entry's video and frame)."""
    _check_header(obj, SPLIT_FORMAT, path)
    return [proposals_from_dict(d, f"entry {i} of {path}") for i, d in enumerate(obj["frames"])]


class ProposalStore:
    """Serves per-frame proposals from a folder of per-video files.

    Per-video files are kept (memory-mapped, unconverted) in a small LRU cache, so reading the
    frames of one video in turn opens its file once, and a frame's tensors are read and
    converted only when that frame is asked for.

    Args:
        root: folder holding ``<video>.pth`` files.
        cache_size: how many videos to keep loaded.
    """

    def __init__(self, root: str | os.PathLike, cache_size: int = 4) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingInputError(f"proposal folder {self.root} does not exist")
        self.cache_size = max(int(cache_size), 1)
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def path(self, video: str) -> Path:
        return self.root / f"{video}.pth"

    @property
    def videos(self) -> list[str]:
        """Videos with a file in the folder, sorted."""
        return sorted(p.stem for p in self.root.glob("*.pth"))

    def __contains__(self, video: str) -> bool:
        return self.path(video).is_file()

    def _raw(self, video: str) -> dict[str, Any]:
        if video in self._cache:
            self._cache.move_to_end(video)
            return self._cache[video]
        path = self.path(video)
        if not path.is_file():
            raise MissingInputError(
                f"no proposals for video {video!r}: {path} does not exist")
        raw = _load_video_file(path, video)["frames"]
        self._cache[video] = raw
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return raw

    def counts(self, video: str) -> dict[str, int]:
        """``{frame: number of proposals}`` of ``video``, from the file's header and shapes only
        (no mask is read)."""
        return {f: int(entry["boxes"].shape[0]) for f, entry in self._raw(video).items()}

    def video(self, video: str) -> dict[str, Proposals]:
        """``{frame: Proposals}`` of every frame of ``video``."""
        return {f: self.get(video, f) for f in self._raw(video)}

    def check_frames(self, video: str, frames: list[str], by_position: bool = False) -> None:
        """Refuse a file that lacks proposals for some of ``frames`` (the video's frames), naming
        the file and the missing frames (the first ten, then a count).

        ``by_position``: the n-th frame is served the stored frame that sorts n-th, so the frames
        past the stored count are the missing ones.
        """
        stored = sorted(self._raw(video))
        if by_position:
            missing = list(frames[len(stored):])
        else:
            have = set(stored)
            missing = [f for f in frames if f not in have]
        if missing:
            raise InputError(f"proposal file {self.path(video)} of video {video!r} holds {len(stored)} frames but "
                             f"the video has {len(frames)}: {len(missing)} without proposals: "
                             f"{describe_missing(missing)}")

    def get(self, video: str, frame: str) -> Proposals:
        """The proposals of ``frame`` of ``video``."""
        frames = self._raw(video)
        try:
            entry = frames[frame]
        except KeyError:
            raise MissingKeyError(f"no proposals for frame {frame!r} of video {video!r} in "
                                  f"{self.path(video)}") from None
        return _read_frame(entry, f"video {video!r} frame {frame!r} in {self.path(video)}")
