"""Scoring a model on (part of) an evaluation split: inference to PNGs, then J and F."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from yacs.config import CfgNode

from ..data import build_reader
from ..data.splits import resolve_split
from ..metrics import evaluate_folders
from .results import segment_videos
from .proposal_source import ProposalSource
from .tracker import DMMTracker

log = logging.getLogger("dmm.validation")


def ground_truth_dir(cfg_data: CfgNode, split: str) -> Path | None:
    """Where every frame's ground truth of ``split`` lives, or None when the split has none.

    The synthetic ``valid`` split keeps it in ``valid/GroundTruth``; splits cut from YouTube-VOS
    ``train`` (train3k, val200, test271) have every frame annotated in ``Annotations``. The real
    YouTube-VOS ``valid`` ground truth is held by the benchmark server.
    """
    images_dir = resolve_split(cfg_data.ROOT, split, cfg_data.SPLIT_DIR).images_dir
    if (images_dir / "GroundTruth").is_dir():
        return images_dir / "GroundTruth"
    if images_dir.name == "train":
        return images_dir / "Annotations"
    return None


def make_validator(cfg: CfgNode, device: torch.device) -> Callable[[torch.nn.Module, int], dict] | None:
    """``validate(model, epoch) -> {"J_mean", "F_mean", "JF_mean"}`` on ``VAL.NUM_VIDEOS`` videos.

    Returns None (with a log line) when validation is off or the split has no ground truth.
    """
    if not cfg.VAL.ENABLED:
        return None
    split = cfg.DATA.EVAL_SPLIT
    try:
        gt_dir = ground_truth_dir(cfg.DATA, split)
    except Exception as e:  # a missing eval split must not stop training
        log.warning("validation off: %s", e)
        return None
    if gt_dir is None:
        log.warning("validation off: split %r has no per-frame ground truth", split)
        return None
    reader = build_reader(cfg.DATA, split)
    videos = reader.videos[: cfg.VAL.NUM_VIDEOS]
    proposal_fn = ProposalSource.for_evaluation(cfg.PROPOSALS)

    def validate(model: torch.nn.Module, epoch: int) -> dict:
        out = Path(cfg.OUTPUT_DIR) / "val" / f"epoch_{epoch:02d}" / "merged"
        segment_videos(DMMTracker(model), reader, videos, proposal_fn, out, cfg, device=device,
                       batch_videos=cfg.TEST.BATCH_VIDEOS, show_progress=False)
        summary = evaluate_folders(gt_dir, out, videos=videos)["global"]
        log.info("epoch %d validation on %d videos: J %.3f F %.3f J&F %.3f", epoch, len(videos),
                 summary["J_mean"], summary["F_mean"], summary["JF_mean"])
        return {k: summary[k] for k in ("J_mean", "F_mean", "JF_mean")}

    return validate
