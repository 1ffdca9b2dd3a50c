"""Split-wide predictions -> per-video proposal files (``src/tools/reduce_pth_size_by_videos.py``).

A split-wide file holds one entry per frame of a split, ordered by the frame index (videos
sorted by id, frames sorted by name): maskrcnn-benchmark's ``predictions.pth`` (a pickled list
of BoxList) or this project's ``dmm-proposals-split`` file. The output folder holds
``<video>.pth`` per video (the ``topk`` best proposals of each frame) and ``vidfid2index.json``.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import torch
from tqdm import tqdm

from dmm.io import atomic_dir, write_json
from dmm.proposals.legacy import load_legacy_predictions
from dmm.proposals.store import split_proposals_from_object, write_video_proposals
from dmm.proposals.structures import Proposals


def load_split_predictions(path: str | os.PathLike) -> list[Proposals]:
    """Per-frame proposals of a split-wide file, either format, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return load_legacy_predictions(path)  # not plain tensors: maskrcnn-benchmark's BoxLists
    return split_proposals_from_object(obj, path)


def output_dir(predictions: str | os.PathLike, topk: int) -> Path:
    """``<folder of predictions>/videos_top<topk>``."""
    return Path(predictions).parent / f"videos_top{topk}"


def reduce_by_videos(frames: list[Proposals], index: dict[str, dict[str, int]],
                     out_dir: str | os.PathLike, topk: int, overwrite: bool = False,
                     mask_dtype: torch.dtype | None = None, progress: bool = True) -> Path:
    """Write ``<out_dir>/<video>.pth`` (``topk`` best per frame) and ``vidfid2index.json``.

    Args:
        frames: per-frame proposals in frame-index order.
        index: ``{video: {frame: position in frames}}`` (``dmm.data.frame_index``).
        overwrite: replace an existing ``out_dir``; without it an existing folder is an error.
    The folder appears whole or not at all.
    """
    out_dir = Path(out_dir)
    total = sum(len(f) for f in index.values())
    if len(frames) != total:
        raise ValueError(f"the predictions hold {len(frames)} frames but the split's frame index "
                         f"has {total}: wrong split for this file?")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists (pass --overwrite to replace it)")
    staging = out_dir.with_name(out_dir.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    with atomic_dir(staging) as tmp:
        for video in tqdm(sorted(index), desc="videos", disable=not progress):
            per_frame = {frame: frames[i].topk(topk) for frame, i in index[video].items()}
            write_video_proposals(tmp / f"{video}.pth", per_frame, video=video,
                                  mask_dtype=mask_dtype)
        write_json(tmp / "vidfid2index.json", index, indent=None)
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(staging, out_dir)
    return out_dir
