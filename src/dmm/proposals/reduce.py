"""Split-wide predictions -> per-video proposal files (``src/tools/reduce_pth_size_by_videos.py``).

A split-wide file holds one entry per frame of a split, ordered by the frame index (videos
sorted by id, frames sorted by name): maskrcnn-benchmark's ``predictions.pth`` (a pickled list
of BoxList) or this project's ``dmm-proposals-split`` file. The output folder holds
``<video>.pth`` per video and ``vidfid2index.json``. Per frame it keeps the ``topk`` best-scored
proposals, by decreasing score (the 2019 tool's rule, used for the training files), or, with
``topk=None`` (``TOPK all`` on the command line), every proposal in the file's own order: what the
2019 evaluator read from the raw ``predictions.pth`` (it ran NMS over all of a frame's
proposals and kept the first 50 survivors in that order; ``PROPOSALS.KEEP_ORDER``).
An entry with NaN or inf values is an error naming its video, frame and position in the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tqdm import tqdm

from dmm.errors import InputError, OutputExistsError, UnsafePickleError
from dmm.io import atomic_dir, load_torch, write_json
from dmm.proposals.legacy import load_legacy_predictions
from dmm.proposals.store import check_finite, split_proposals_from_object, write_video_proposals
from dmm.structures import Proposals

#: What to do when a split-wide file does not fit a split of the dataset.
SPLIT_HINT = ("wrong split for this file? A small or custom dataset whose predictions cover all "
              "of <root>/train uses split train_all (it reads <root>/train/meta.json)")


def load_split_predictions(path: str | os.PathLike) -> list[Proposals]:
    """Per-frame proposals of a split-wide file, either format, in file order."""
    path = Path(path)
    try:
        obj = load_torch(path, "predictions file")
    except UnsafePickleError:
        return load_legacy_predictions(path)  # not plain tensors: maskrcnn-benchmark's BoxLists
    return split_proposals_from_object(obj, path)


def output_dir(predictions: str | os.PathLike, topk: int | None) -> Path:
    """``<folder of predictions>/videos_top<topk>``, or ``videos_all`` for ``topk=None``."""
    return Path(predictions).parent / ("videos_all" if topk is None else f"videos_top{topk}")


def parse_topk(text: str) -> int | None:
    """A TOPK argument: a positive number of proposals, or ``all`` (None: every proposal, as stored)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"TOPK must be a positive number of proposals or 'all', got {text!r}")
    return value


def reduce_by_videos(frames: list[Proposals], index: dict[str, dict[str, int]],
                     out_dir: str | os.PathLike, topk: int | None, overwrite: bool = False,
                     mask_dtype: torch.dtype | None = None, progress: bool = True,
                     source: str = "the predictions") -> Path:
    """Write ``<out_dir>/<video>.pth`` (``topk`` best per frame) and ``vidfid2index.json``.

    Args:
        frames: per-frame proposals in frame-index order.
        index: ``{video: {frame: position in frames}}`` (``dmm.data.frame_index``).
        topk: proposals kept per frame, the best-scored by decreasing score; None keeps every
            proposal in the file's order.
        overwrite: replace an existing ``out_dir``; without it an existing folder is an error.
        source: the file ``frames`` came from, for messages.
    The folder appears whole or not at all.
    """
    out_dir = Path(out_dir)
    total = sum(len(f) for f in index.values())
    if len(frames) != total:
        raise InputError(f"{source} holds {len(frames)} frames but the split's frame index "
                         f"has {total}: {SPLIT_HINT}")
    if out_dir.exists() and not overwrite:
        raise OutputExistsError(f"{out_dir} already exists (pass --overwrite to replace it)")
    with atomic_dir(out_dir, overwrite=True) as tmp:
        for video in tqdm(sorted(index), desc="videos", disable=not progress):
            per_frame = {}
            for frame, i in index[video].items():
                kept = check_finite(frames[i], f"video {video!r} frame {frame!r} (entry {i} of {source})")
                per_frame[frame] = kept if topk is None else kept.topk(topk)
            write_video_proposals(tmp / f"{video}.pth", per_frame, video=video,
                                  mask_dtype=mask_dtype)
        write_json(tmp / "vidfid2index.json", index, indent=None)
    return out_dir
