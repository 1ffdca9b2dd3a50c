"""Two reference trackers with no learned features, scored beside DMM-Net.

- ``copy_first``: every object keeps its reference mask in every later frame.
- ``iou_hungarian``: each frame, the objects' previous masks are matched to the frame's
  (filtered) proposals by Hungarian assignment on mask IoU; a matched object takes its
  proposal's mask, an unmatched one keeps its previous mask.

Both write results in the same format, and through the same label composition, as DMM-Net's
inference, so the three are scored alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm
from yacs.config import CfgNode

from ..data.frames import VideoStream
from ..data.palette import save_palette_png
from ..io import atomic_dir
from ..model.cost import mask_iou as batched_mask_iou
from .inference import ProposalFn, compose_labels, pending_videos
from .proposal_source import matching_proposals

BASELINES = ("copy_first", "iou_hungarian")


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks (the cost's own IoU, one frame). a: (O, H, W) bool, b: (M, H, W) bool -> (O, M)."""
    return batched_mask_iou(a[None], b[None])[0]


def hungarian_step(prev: torch.Tensor, proposals: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """One frame of IoU tracking.

    Args:
        prev: (O, H, W) float previous masks in [0, 1].
        proposals: (M, H, W) float proposal masks in [0, 1].

    Returns:
        (O, H, W) float {0, 1}: each object's matched proposal (IoU > 0), else its previous mask.
    """
    prev_bin = prev > threshold
    out = prev_bin.float()
    if proposals.shape[0] == 0 or prev.shape[0] == 0:
        return out
    prop_bin = proposals > threshold
    iou = mask_iou(prev_bin, prop_bin).cpu().numpy()
    rows, cols = linear_sum_assignment(-iou)
    for r, c in zip(rows, cols):
        if iou[r, c] > 0:
            out[r] = prop_bin[c].float()
    return out


def run_baseline(
    name: str,
    reader,
    videos: Sequence[str],
    proposal_fn: ProposalFn,
    out_root: str | Path,
    cfg: CfgNode,
    show_progress: bool = True,
) -> None:
    """Write ``<out_root>/<video>/<frame>.png`` for baseline ``name`` (skips finished videos)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r} (one of {BASELINES})")
    size = (cfg.DATA.INPUT_H, cfg.DATA.INPUT_W)
    out_root = Path(out_root)
    todo = pending_videos(videos, out_root)
    for video in tqdm(todo, desc=name, disable=not show_progress, dynamic_ncols=True):
        info = reader.info(video)
        ids = sorted(info.objects)
        masks = torch.zeros(len(ids), *size)
        active = torch.zeros(len(ids), dtype=torch.bool)
        first_labels: np.ndarray | None = None  # copy_first: the reference masks at full size
        with atomic_dir(out_root / video) as tmp:
            for frame in VideoStream(reader, video, size, cfg.DATA.MEAN, cfg.DATA.STD):
                if name == "iou_hungarian" and bool(active.any()):
                    props = matching_proposals(proposal_fn(video, frame.name, size), cfg.PROPOSALS)
                    idx = torch.nonzero(active).flatten()
                    masks[idx] = hungarian_step(masks[idx], props.masks)
                if name == "copy_first":
                    if first_labels is None:
                        first_labels = np.zeros(frame.size, dtype=np.uint8)
                    labels = first_labels.copy()
                else:
                    labels = compose_labels(masks, active, ids, frame.size)
                starting = [i for i, oid in enumerate(ids) if info.objects[oid].first_index == frame.index]
                for i in starting:
                    given = frame.annotation == ids[i]
                    ann = torch.from_numpy(given.astype(np.float32))
                    masks[i] = F.interpolate(ann[None, None], size=size, mode="nearest")[0, 0]
                    active[i] = True
                    labels[given] = ids[i]
                    if first_labels is not None:
                        first_labels[given] = ids[i]
                save_palette_png(tmp / f"{frame.name}.png", labels)
