"""Builders the commands, validation and benchmarks share: configs for checkpoints, models, trackers."""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from yacs.config import CfgNode

from ..config import load_config
from ..errors import DMMError
from ..checkpointing import config_beside, load_rvos_weights, load_weights
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
    """DMM-Net for training, on ``device``; ``init``: weights to start from, read as
    ``SOLVER.INIT_WEIGHTS`` says: "dmm" (a checkpoint of this project or the authors', every key)
    or "rvos" (the RVOS one-shot model of the 2019 ResNet-101 stage: the keys it shares)."""
    model = DMMNet.from_config(cfg)
    if init and cfg.SOLVER.INIT_WEIGHTS == "rvos":
        load_rvos_weights(model, Path(init))
    elif init:
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


@dataclass(frozen=True)
class WorkerFailure:
    """A :class:`DMMError` raised while a DataLoader worker loaded an item, handed to the main
    process as a batch (torch would re-raise it as a new exception whose message is a traceback)."""

    error: DMMError
    traceback: str

    def reraise(self) -> None:
        """Raise the worker's error in this process: the same class and message as without workers
        (the worker's traceback is a note, which ``--debug`` shows)."""
        self.error.add_note(f"raised in a DataLoader worker:\n{self.traceback.rstrip()}")
        raise self.error


class _FailuresAsItems(Dataset):
    """``dataset`` whose items are a :class:`WorkerFailure` where loading raises a DMMError."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except DMMError as e:
            return WorkerFailure(e, traceback.format_exc())


@dataclass(frozen=True)
class _CollateOrFail:
    """``collate`` of a batch's items, or the first :class:`WorkerFailure` among them."""

    collate: Callable[[list], Any]

    def __call__(self, items: list) -> Any:
        failure = next((item for item in items if isinstance(item, WorkerFailure)), None)
        return failure if failure is not None else self.collate(items)


def _raising_failures(loader: Iterable) -> Iterator:
    """The loader's batches, with a :class:`WorkerFailure` raised as its error."""
    for batch in loader:
        if isinstance(batch, WorkerFailure):
            batch.reraise()
        yield batch


def build_train_loader(dataset, indices: Sequence[int], cfg: CfgNode, device: torch.device) -> Iterable[dict]:
    """The batches of ``indices`` of ``dataset`` (one epoch's share of this process), in order,
    loaded by ``DATA.NUM_WORKERS`` DataLoader workers.

    Bad input found in a worker (a :class:`DMMError`, e.g. an undecodable frame) is raised in this
    process as the same exception with the same one-line message as without workers.
    """
    from ..data.clips import collate_clips

    workers = cfg.DATA.NUM_WORKERS
    if workers == 0:
        return DataLoader(dataset, batch_size=cfg.SOLVER.BATCH_SIZE, sampler=list(indices), collate_fn=collate_clips,
                          pin_memory=device.type == "cuda", drop_last=True)
    loader = DataLoader(_FailuresAsItems(dataset), batch_size=cfg.SOLVER.BATCH_SIZE, sampler=list(indices),
                        collate_fn=_CollateOrFail(collate_clips), num_workers=workers,
                        pin_memory=device.type == "cuda", drop_last=True, persistent_workers=False,
                        prefetch_factor=4)
    return _raising_failures(loader)
