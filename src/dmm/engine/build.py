"""Builders the commands, validation and benchmarks share: configs for checkpoints, models, trackers."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import torch
from yacs.config import CfgNode

from ..config import load_config
from ..model.checkpoint import config_beside, load_weights
from ..model.dmmnet import DMMNet

log = logging.getLogger("dmm.build")


def inference_config(config: str | os.PathLike | None, checkpoint: str | os.PathLike | None,
                     opts: Sequence[str] = (), default: str = "eval") -> CfgNode:
    """The config to run ``checkpoint`` with.

    ``config`` when given; else the ``config.yaml`` saved beside a checkpoint of this project
    (so its backbone, input size and object rule come along); else the package config
    ``default``. ``opts`` apply on top, and the backbone is never initialised from ImageNet
    weights (the checkpoint holds every weight).
    """
    if config is None and checkpoint is not None:
        config = config_beside(checkpoint)
        if config is not None:
            log.info("using the config saved with the checkpoint: %s", config)
    return load_config(config if config is not None else default, [*opts, "MODEL.PRETRAINED", "none"])


def inference_model(cfg: CfgNode, checkpoint: str | os.PathLike, device: torch.device) -> DMMNet:
    """DMM-Net built from ``cfg`` with the weights of ``checkpoint`` (this project's or the authors'), in eval mode."""
    model = DMMNet.from_config(cfg)
    load_weights(model, Path(checkpoint))
    return model.to(device).eval()


def build_model(cfg: CfgNode, device: torch.device, init: str | os.PathLike | None = None) -> DMMNet:
    """DMM-Net for training, on ``device``; ``init``: weights to start from (a checkpoint of this
    project or the authors')."""
    model = DMMNet.from_config(cfg)
    if init:
        load_weights(model, Path(init))
    return model.to(device)


def build_optimizers(model: DMMNet, cfg_solver: CfgNode) -> dict[str, torch.optim.Optimizer]:
    """The 2019 optimisers: Adam for the encoder with two groups (necks ``NECK_LR``, backbone
    ``BACKBONE_LR``) and Adam for the decoder (``DECODER_LR``), weight decay ``WEIGHT_DECAY``."""
    backbone = list(model.encoder.base.parameters())
    backbone_ids = {id(p) for p in backbone}
    necks = [p for p in model.encoder.parameters() if id(p) not in backbone_ids]
    wd = cfg_solver.WEIGHT_DECAY
    return {
        "encoder": torch.optim.Adam(
            [{"params": necks, "lr": cfg_solver.NECK_LR, "name": "necks"},
             {"params": backbone, "lr": cfg_solver.BACKBONE_LR, "name": "backbone"}],
            weight_decay=wd),
        "decoder": torch.optim.Adam(model.decoder.parameters(), lr=cfg_solver.DECODER_LR, weight_decay=wd),
    }


def build_train_dataset(cfg: CfgNode, split: str | None = None):
    """The training :class:`~dmm.data.clips.ClipDataset` of ``split`` (default ``DATA.TRAIN_SPLIT``)
    with its proposals from ``PROPOSALS.TRAIN_DIR``."""
    from ..data import build_reader
    from ..data.clips import ClipDataset
    from .proposal_source import TrainingProposals

    reader = build_reader(cfg.DATA, split or cfg.DATA.TRAIN_SPLIT)
    source = TrainingProposals(cfg.PROPOSALS.TRAIN_DIR)
    return ClipDataset.from_config(reader, cfg, proposals=source, proposal_counts=source.counts)


def build_train_loader(dataset, indices: Sequence[int], cfg: CfgNode, device: torch.device):
    """A DataLoader over ``indices`` of ``dataset`` (one epoch's share of this process), in order."""
    from torch.utils.data import DataLoader

    from ..data.clips import collate_clips

    workers = cfg.DATA.NUM_WORKERS
    return DataLoader(dataset, batch_size=cfg.SOLVER.BATCH_SIZE, sampler=list(indices), collate_fn=collate_clips,
                      num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
                      persistent_workers=False, prefetch_factor=4 if workers > 0 else None)
