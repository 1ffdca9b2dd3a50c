"""Training loop: clips from the sampler, proposals from the store, three losses, checkpoints.

A run is fully determined by its config: the clip order of an epoch comes from
``DistributedSampler(seed=SEED)`` with ``set_epoch``, the clips themselves from the dataset's
``(seed, epoch, index)`` generator, and the own-prediction coin of each step from a generator
seeded by the global iteration. A resumed run therefore restores model and optimisers, skips
the batches its epoch already consumed, and continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Iterable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm
from yacs.config import CfgNode

from ..config import save_config
from ..data import build_reader
from ..data.clips import ClipDataset, collate_clips
from ..io import atomic_path
from ..model.checkpoint import load_checkpoint, load_weights, save_checkpoint
from ..model.dmmnet import DMMNet
from .clip_loss import LOSS_TERMS, ClipLoss
from .distributed import DistInfo, all_reduce_mean, barrier
from .plots import plot_loss_curves
from .proposal_source import ProposalSource

log = logging.getLogger("dmm.train")

CHECKPOINT_GLOB = "epo*_iter*"


class TrainingError(RuntimeError):
    """A run that cannot go on (non-finite loss, bad resume target)."""


def build_optimizers(model: DMMNet, cfg_solver: CfgNode) -> dict[str, torch.optim.Optimizer]:
    """Adam for the encoder (necks and backbone as two groups) and Adam for the decoder."""
    backbone = list(model.encoder.base.parameters())
    backbone_ids = {id(p) for p in backbone}
    necks = [p for p in model.encoder.parameters() if id(p) not in backbone_ids]
    wd = cfg_solver.WEIGHT_DECAY
    return {
        "encoder": torch.optim.Adam(
            [
                {"params": necks, "lr": cfg_solver.NECK_LR, "name": "necks"},
                {"params": backbone, "lr": cfg_solver.BACKBONE_LR, "name": "backbone"},
            ],
            weight_decay=wd,
        ),
        "decoder": torch.optim.Adam(model.decoder.parameters(), lr=cfg_solver.DECODER_LR, weight_decay=wd),
    }


def checkpoint_name(epoch: int, iteration: int) -> str:
    return f"epo{epoch:02d}_iter{iteration:05d}"


def latest_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is a checkpoint, else its newest ``epoXX_iterXXXXX`` child."""
    path = Path(path)
    if (path / "trainer.pt").is_file():
        return path
    found = sorted(
        (p for p in path.glob(CHECKPOINT_GLOB) if (p / "trainer.pt").is_file()),
        key=lambda p: int(p.name.split("_iter")[1]),
    )
    if not found:
        raise TrainingError(f"no checkpoint to resume from in {path} (expected trainer.pt or epoXX_iterXXXXX/)")
    return found[-1]


def own_prediction_flags(seed: int, iteration: int, steps: int, prob: float) -> list[bool]:
    """The per-step coin flips for feeding the model's own prediction, fixed by the iteration."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
    return (torch.rand(steps, generator=gen) < prob).tolist()


def proposals_to(batch_proposals: list[list[dict]] | None, device: torch.device) -> list[list[dict]]:
    if batch_proposals is None:
        raise TrainingError("the training batch carries no proposals: set PROPOSALS.TRAIN_DIR")
    return [[{k: v.to(device, non_blocking=True) for k, v in frame.items()} for frame in clip] for clip in batch_proposals]


class Trainer:
    """Owns the model, optimisers, data and bookkeeping of one training run."""

    def __init__(self, cfg: CfgNode, dist_info: DistInfo, resume: str | None = None, init: str | None = None):
        self.cfg = cfg
        self.dist = dist_info
        self.device = dist_info.device
        self.out_dir = Path(cfg.OUTPUT_DIR)
        torch.manual_seed(cfg.SEED)

        self.model = DMMNet.from_config(cfg).to(self.device)
        if init:
            load_weights(self.model, init)
        self.optimizers = build_optimizers(self.model, cfg.SOLVER)
        clip_loss = ClipLoss(self.model, cfg)
        self.clip_loss: nn.Module = (
            DistributedDataParallel(
                clip_loss,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,  # encoder.base.fc is kept for the released keys, never used
            )
            if dist_info.distributed
            else clip_loss
        )

        reader = build_reader(cfg.DATA, cfg.DATA.TRAIN_SPLIT)
        self.dataset = ClipDataset.from_config(reader, cfg, proposal_fn=ProposalSource(cfg.PROPOSALS.TRAIN_DIR))
        self.sampler = DistributedSampler(
            self.dataset, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True, seed=cfg.SEED
        )
        batches = len(self.sampler) // cfg.SOLVER.BATCH_SIZE
        if batches == 0:
            raise TrainingError(
                f"split {cfg.DATA.TRAIN_SPLIT!r} gives {len(self.dataset)} clips: fewer than one batch of "
                f"{cfg.SOLVER.BATCH_SIZE} per process"
            )
        cap = cfg.SOLVER.MAX_ITERS_PER_EPOCH
        self.iters_per_epoch = min(batches, cap) if cap > 0 else batches

        self.epoch = 0
        self.iteration = 0
        self.last_checkpoint: Path | None = None
        self.saved_iteration = -1
        if resume:
            ckpt = latest_checkpoint(resume)
            meta = load_checkpoint(ckpt, self.model, self.optimizers)
            self.epoch, self.iteration = int(meta["epoch"]), int(meta["iteration"])
            self.last_checkpoint = ckpt
            self.saved_iteration = self.iteration
            log.info("resumed from %s (epoch %d, iteration %d)", ckpt, self.epoch, self.iteration)
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out_dir / "config.yaml")
            self._truncate_metrics(self.iteration)

    # -- bookkeeping ----------------------------------------------------------------------

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def _truncate_metrics(self, iteration: int) -> None:
        """Drop log records past ``iteration`` (a resumed run writes them again)."""
        if not self.metrics_path.exists():
            return
        kept = [
            line
            for line in self.metrics_path.read_text().splitlines()
            if line.strip() and json.loads(line).get("iteration", 0) <= iteration
        ]
        with atomic_path(self.metrics_path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))

    def _record(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        with (self.out_dir / "log.txt").open("a") as f:
            f.write(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()) + "\n")

    def save(self) -> Path:
        """Checkpoint the run (rank 0), as ``<OUTPUT_DIR>/epoXX_iterXXXXX``."""
        path = self.out_dir / checkpoint_name(self.epoch, self.iteration)
        if self.dist.is_main:
            save_checkpoint(path, self.model, self.optimizers, self.cfg, self.epoch, self.iteration)
            self.last_checkpoint = path
        self.saved_iteration = self.iteration
        barrier(self.dist)
        return path

    # -- the loop ---------------------------------------------------------------------------

    def _loader(self, epoch: int, start_batch: int) -> Iterable[dict]:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        bs = self.cfg.SOLVER.BATCH_SIZE
        indices = list(self.sampler)[start_batch * bs : self.iters_per_epoch * bs]
        return DataLoader(
            self.dataset,
            batch_size=bs,
            sampler=indices,
            collate_fn=collate_clips,
            num_workers=self.cfg.DATA.NUM_WORKERS,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
        )

    def _step(self, batch: dict, feed_own: list[bool]) -> dict[str, float]:
        dev = self.device
        use_amp = self.cfg.SOLVER.AMP and dev.type == "cuda"
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
            losses = self.clip_loss(
                batch["images"].to(dev, non_blocking=True),
                batch["masks"].to(dev, non_blocking=True),
                batch["valid"].to(dev, non_blocking=True),
                proposals_to(batch["proposals"], dev),
                feed_own,
            )
        total = losses["total"]
        if not torch.isfinite(total):
            terms = ", ".join(f"{k}={losses[k].item():.4g}" for k in LOSS_TERMS)
            raise TrainingError(
                f"non-finite loss at epoch {self.epoch} iteration {self.iteration} ({terms}; videos "
                f"{batch['video']}); stopping. Last good checkpoint: {self.last_checkpoint or 'none written yet'}"
            )
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.SOLVER.GRAD_CLIP > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.SOLVER.GRAD_CLIP)
        for opt in self.optimizers.values():
            opt.step()
        values = all_reduce_mean(torch.stack([losses[k].detach() for k in ("total", *LOSS_TERMS)]), self.dist)
        return dict(zip(("total", *LOSS_TERMS), values.tolist()))

    def train(self, validate=None) -> Path:
        """Run to ``SOLVER.EPOCHS`` (or ``SOLVER.MAX_ITERS``); returns the last checkpoint.

        ``validate(model, epoch) -> dict`` (optional) runs on rank 0 after each epoch; its
        numbers go to the log.
        """
        cfg = self.cfg.SOLVER
        max_iters = cfg.MAX_ITERS if cfg.MAX_ITERS > 0 else math.inf
        steps = self.cfg.DATA.LENGTH_CLIP - 1
        while self.epoch < cfg.EPOCHS and self.iteration < max_iters:
            start_batch = self.iteration - self.epoch * self.iters_per_epoch
            loader = self._loader(self.epoch, start_batch)
            own_prob = cfg.OWN_PRED_PROB if self.epoch >= cfg.FINETUNE_AFTER else 0.0
            self.model.train()
            bar = tqdm(
                loader,
                total=self.iters_per_epoch - start_batch,
                desc=f"epoch {self.epoch}",
                disable=not self.dist.is_main,
                dynamic_ncols=True,
            )
            tic = time.perf_counter()
            for batch in bar:
                feed_own = own_prediction_flags(self.cfg.SEED, self.iteration, steps, own_prob)
                values = self._step(batch, feed_own)
                self.iteration += 1
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
                if self.iteration % cfg.LOG_PERIOD == 0 or self.iteration == 1:
                    self._record(
                        {"epoch": self.epoch, "iteration": self.iteration, **values,
                         "sec_per_iter": (time.perf_counter() - tic) / max(1, bar.n)}
                    )
                if self.iteration % cfg.CHECKPOINT_PERIOD == 0 and self.iteration < (self.epoch + 1) * self.iters_per_epoch:
                    self.save()  # (the end of an epoch saves anyway)
                if self.iteration >= max_iters:
                    break
            bar.close()
            if self.iteration < (self.epoch + 1) * self.iters_per_epoch:
                break  # MAX_ITERS reached mid-epoch
            self.epoch += 1
            self.save()
            if validate is not None and self.dist.is_main and (
                self.epoch % self.cfg.VAL.PERIOD == 0 or self.epoch == cfg.EPOCHS
            ):
                self.model.eval()
                scores = validate(self.model, self.epoch)
                self._record({"epoch": self.epoch, "iteration": self.iteration,
                              **{f"val_{k}": float(v) for k, v in scores.items()}})
            barrier(self.dist)
            if self.dist.is_main:
                plot_loss_curves(self.metrics_path, self.out_dir / "loss_curves.png")
        if self.saved_iteration != self.iteration:
            self.save()
        if self.dist.is_main:
            plot_loss_curves(self.metrics_path, self.out_dir / "loss_curves.png")
        return self.last_checkpoint
