"""Training: a short loop over the clips, with logging, checkpoints, validation and plots as hooks.

A run is fully determined by its config: an epoch is every clip of the split
(:class:`~dmm.data.clips.ClipDataset`), shuffled by ``DistributedSampler(seed=SEED)`` with
``set_epoch`` (the 2019 code kept one order for every epoch: a bug, not reproduced); each clip's
random choices come from ``(SEED, epoch, index)``, and the own-prediction coin of each step from
``(SEED, iteration)``. A resumed run restores model and optimisers, skips the batches its epoch
already consumed and continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from yacs.config import CfgNode

from ..checkpointing import Checkpointer, parse_name, state_is_finite
from ..config import load_config
from ..errors import InputError, MissingInputError
from ..model.checkpoint import CONFIG_FILE, TRAINER_FILE, load_checkpoint, save_checkpoint
from ..model.losses import LOSS_NAMES
from .build import build_model, build_optimizers, build_train_dataset, build_train_loader
from .clip_loss import ClipLoss
from .distributed import DistInfo, all_reduce_mean, barrier
from .hooks import CheckpointHook, MetricsLog, PlotHook, ProgressBar, ValidationHook

log = logging.getLogger("dmm.train")

#: config keys a resumed run may change; any other difference keeps the run's saved value
RESUMABLE = ("SOLVER.EPOCHS", "SOLVER.MAX_ITERS", "SOLVER.LOG_PERIOD", "SOLVER.CHECKPOINT_PERIOD",
             "SOLVER.KEEP_CHECKPOINTS", "SOLVER.KEEP_EPOCHS", "DATA.NUM_WORKERS", "DATA.ROOT", "DATA.LMDB",
             "PROPOSALS.TRAIN_DIR", "PROPOSALS.EVAL_DIR", "VAL.ENABLED", "VAL.NUM_VIDEOS", "VAL.PERIOD",
             "DEVICE", "OUTPUT_DIR")
RUN_FILES = ("metrics.jsonl", "log.txt", "loss_curves.png", CONFIG_FILE)


class TrainingError(RuntimeError):
    """A run that cannot go on (a non-finite loss)."""


def own_prediction_flags(seed: int, iteration: int, steps: int, prob: float) -> list[bool]:
    """The per-step coin flips for feeding the model's own prediction, fixed by the iteration."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
    return (torch.rand(steps, generator=gen) < prob).tolist()


def _flatten(cfg: CfgNode, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        out.update(_flatten(value, name + ".") if isinstance(value, CfgNode) else {name: value})
    return out


def reconcile_resumed_config(saved: CfgNode, given: CfgNode) -> CfgNode:
    """The config a resumed run continues with: the run's saved config, except :data:`RESUMABLE` keys.

    Every other key that differs is named in a warning and keeps its saved value.
    """
    saved_flat, given_flat = _flatten(saved), _flatten(given)
    opts = []
    for key, value in given_flat.items():
        if saved_flat.get(key) == value:
            continue
        if key in RESUMABLE:
            opts += [key, value]
        else:
            log.warning("resume: %s differs from the run's saved config (saved %r, given %r); keeping the saved value",
                        key, saved_flat.get(key), value)
    cfg = saved.clone()
    cfg.defrost()
    for key, value in zip(opts[::2], opts[1::2]):
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    cfg.freeze()
    return cfg


def holds_a_run(out_dir: Path) -> bool:
    """Whether ``out_dir`` already holds a training run's log or checkpoints."""
    return (out_dir / "metrics.jsonl").exists() or any(
        p.is_dir() and parse_name(p.name) for p in out_dir.glob("epo*_iter*"))


def resume_target(path: str | Path) -> tuple[Path, Path | None]:
    """(run folder, a specific checkpoint folder or None for the newest) of a ``--resume`` argument."""
    path = Path(path)
    if (path / TRAINER_FILE).is_file():
        return path.parent, path
    if path.is_dir():
        return path, None
    raise MissingInputError(f"--resume {path}: no such run or checkpoint folder")


class Trainer:
    """Owns the model, optimisers, data and bookkeeping of one training run.

    Args:
        cfg: the run's config (with ``resume``: the config given; the run's saved one wins, see
            :func:`reconcile_resumed_config`).
        dist_info: process and device.
        resume: a run folder (continue from its newest readable checkpoint) or a checkpoint folder.
        init: weights to start a new run from.
        overwrite: start afresh in an ``OUTPUT_DIR`` that holds a run, removing that run's files.
    """

    def __init__(self, cfg: CfgNode, dist_info: DistInfo, resume: str | Path | None = None,
                 init: str | Path | None = None, overwrite: bool = False) -> None:
        self.dist = dist_info
        self.device = dist_info.device
        start_from = None
        if resume:
            run_dir, start_from = resume_target(resume)
            saved = run_dir / CONFIG_FILE
            if saved.is_file():
                cfg = reconcile_resumed_config(load_config(saved), cfg)
            cfg = _with_output_dir(cfg, run_dir)
        self.cfg = cfg
        self.out_dir = Path(cfg.OUTPUT_DIR)
        if not resume and holds_a_run(self.out_dir):
            if not overwrite:
                raise InputError(f"OUTPUT_DIR {self.out_dir} already holds a training run: continue it with "
                                 f"--resume {self.out_dir}, choose another OUTPUT_DIR, or pass --overwrite to replace it")
            if self.dist.is_main:
                self._remove_run()
        barrier(self.dist)
        torch.manual_seed(cfg.SEED)

        self.model = build_model(cfg, self.device, init)
        self.optimizers = build_optimizers(self.model, cfg.SOLVER)
        clip_loss = ClipLoss(self.model, cfg)
        self.clip_loss: nn.Module = (
            DistributedDataParallel(clip_loss, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                    find_unused_parameters=True)  # encoder.base.fc: kept for the released keys
            if dist_info.distributed else clip_loss)
        self.dataset = build_train_dataset(cfg)
        self.sampler = DistributedSampler(self.dataset, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                          shuffle=True, seed=cfg.SEED)
        batches = len(self.sampler) // cfg.SOLVER.BATCH_SIZE
        if batches == 0:
            raise InputError(f"split {cfg.DATA.TRAIN_SPLIT!r} gives {len(self.dataset)} clips: fewer than one batch "
                             f"of {cfg.SOLVER.BATCH_SIZE} per process")
        cap = cfg.SOLVER.MAX_ITERS_PER_EPOCH
        self.iters_per_epoch = min(batches, cap) if cap > 0 else batches
        self.checkpointer = Checkpointer(self.out_dir, cfg.SOLVER.KEEP_CHECKPOINTS, cfg.SOLVER.KEEP_EPOCHS)

        self.iteration = 0
        self.saved_iteration = -1
        self.last_checkpoint: Path | None = None
        if resume:
            self._resume(start_from)
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.checkpointer.sweep_temporaries()
            (self.out_dir / CONFIG_FILE).write_text(cfg.dump())
        self.log_hook = MetricsLog(self.out_dir, cfg.SOLVER.LOG_PERIOD, self.dist.is_main)
        self.hooks = [self.log_hook, ProgressBar(self.dist.is_main), CheckpointHook(cfg.SOLVER.CHECKPOINT_PERIOD),
                      PlotHook(self.out_dir, self.dist.is_main)]

    # -- run folder and checkpoints ----------------------------------------------------------

    def _remove_run(self) -> None:
        for path in Checkpointer(self.out_dir).checkpoints():
            shutil.rmtree(path, ignore_errors=True)
        for name in RUN_FILES:
            (self.out_dir / name).unlink(missing_ok=True)

    def _resume(self, start_from: Path | None) -> None:
        def load(path: Path) -> dict:
            return load_checkpoint(path, self.model, self.optimizers)

        if start_from is not None:
            found = (start_from, load(start_from))
        else:
            found = self.checkpointer.load_latest(load)
        if found is None:
            raise MissingInputError(f"no checkpoint to resume from in {self.out_dir} (expected epoXX_iterXXXXX/trainer.pt)")
        path, meta = found
        newest = self.checkpointer.checkpoints()
        if start_from is None and newest and newest[-1] != path:
            log.warning("resuming from %s: the newer %s cannot be read", path, newest[-1])
        self.iteration = self.saved_iteration = int(meta["iteration"])
        self.last_checkpoint = path
        log.info("resumed from %s (epoch %d, iteration %d)", path, self.epoch, self.iteration)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration belongs to (0-based)."""
        return self.iteration // self.iters_per_epoch

    def save(self) -> Path:
        """Checkpoint the run (rank 0): ``<OUTPUT_DIR>/epoXX_iterXXXXX`` with XX the epoch it was written in."""
        epoch = (self.iteration - 1) // self.iters_per_epoch if self.iteration else 0
        if self.dist.is_main:
            state = self.model.state_dict()
            path = self.checkpointer.root / f"epo{epoch:02d}_iter{self.iteration:05d}"
            save_checkpoint(path, self.model, self.optimizers, self.cfg, epoch, self.iteration,
                            finite=state_is_finite(state))
            self.checkpointer.prune()
            self.last_checkpoint = path
        self.saved_iteration = self.iteration
        barrier(self.dist)
        return self.last_checkpoint

    def last_good_checkpoint(self) -> Path | None:
        """The newest checkpoint whose weights were finite and already gave a finite loss (written
        before the current iteration)."""
        for path in reversed(self.checkpointer.checkpoints()):
            if parse_name(path.name)[1] < self.iteration and self.checkpointer.is_finite(path):
                return path
        return None

    # -- the loop -----------------------------------------------------------------------------

    def _loader(self, epoch: int, start_batch: int):
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        bs = self.cfg.SOLVER.BATCH_SIZE
        indices = list(self.sampler)[start_batch * bs: self.iters_per_epoch * bs]
        return build_train_loader(self.dataset, indices, self.cfg, self.device)

    def run_step(self, batch: dict, feed_own: list[bool]) -> dict[str, float]:
        """One optimisation step on a batch; returns the loss terms (averaged over processes)."""
        dev = self.device
        use_amp = self.cfg.SOLVER.AMP and dev.type == "cuda"
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
            losses = self.clip_loss(
                batch["images"].to(dev, non_blocking=True),
                batch["masks"].to(dev, non_blocking=True),
                batch["weights"].to(dev, non_blocking=True),
                [[p.to(dev) for p in clip] for clip in batch["proposals"]],
                batch["flip"],
                batch["affines"],
                feed_own,
            )
        total = losses["total"]
        if not torch.isfinite(total):
            terms = ", ".join(f"{k}={losses[k].item():.4g}" for k in LOSS_NAMES)
            good = self.last_good_checkpoint()
            raise TrainingError(
                f"non-finite loss at epoch {self.epoch} iteration {self.iteration} ({terms}; videos "
                f"{batch['video']}); stopping. Last good checkpoint: "
                + (f"{good} (continue with --resume {good})" if good else "none written yet"))
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.SOLVER.GRAD_CLIP > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.SOLVER.GRAD_CLIP)
        for opt in self.optimizers.values():
            opt.step()
        values = all_reduce_mean(torch.stack([losses[k].detach() for k in ("total", *LOSS_NAMES)]), self.dist)
        return dict(zip(("total", *LOSS_NAMES), values.tolist()))

    def train(self, validate: Callable | None = None) -> Path:
        """Run to ``SOLVER.EPOCHS`` epochs (or ``SOLVER.MAX_ITERS`` iterations); returns the last checkpoint.

        ``validate(model, epoch) -> dict`` (optional) runs on rank 0 after every ``VAL.PERIOD`` epochs.
        """
        solver = self.cfg.SOLVER
        total = solver.EPOCHS * self.iters_per_epoch
        if solver.MAX_ITERS > 0:
            total = min(total, solver.MAX_ITERS)
        hooks = list(self.hooks)
        if validate is not None:
            hooks.insert(-1, ValidationHook(validate, self.cfg.VAL.PERIOD, solver.EPOCHS, self.log_hook,
                                            self.dist.is_main))
        steps = self.cfg.DATA.LENGTH_CLIP - 1
        for hook in hooks:
            hook.before_train(self)
        while self.iteration < total:
            epoch, start = self.epoch, self.iteration % self.iters_per_epoch
            own_prob = solver.OWN_PRED_PROB if epoch >= solver.FINETUNE_AFTER else 0.0
            for hook in hooks:
                hook.before_epoch(self, epoch, start)
            self.model.train()
            for batch in self._loader(epoch, start):
                values = self.run_step(batch, own_prediction_flags(self.cfg.SEED, self.iteration, steps, own_prob))
                self.iteration += 1
                for hook in hooks:
                    hook.after_step(self, values)
                if self.iteration >= total:
                    break
            if self.iteration % self.iters_per_epoch == 0:
                for hook in hooks:
                    hook.after_epoch(self, epoch)
        for hook in hooks:
            hook.after_train(self)
        return self.last_checkpoint


def _with_output_dir(cfg: CfgNode, out_dir: Path) -> CfgNode:
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = str(out_dir)
    cfg.freeze()
    return cfg


__all__ = ["Trainer", "TrainingError", "own_prediction_flags", "reconcile_resumed_config"]
