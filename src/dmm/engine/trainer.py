"""Training: a short loop over the clips, with logging, checkpoints, validation and plots as hooks.

A run is fully determined by its config: an epoch is every clip of the split
(:class:`~dmm.data.clips.ClipDataset`), dealt to ``SOLVER.BN_GROUPS`` batch-norm groups as the
2019 run's ``DistributedSampler`` dealt them to its 4 GPUs, reshuffled with ``set_epoch`` (the
2019 code kept one order for every epoch: a bug, not reproduced); a step takes ``BATCH_SIZE``
clips of every group, the groups of a process run as accumulated micro-batches
(:mod:`dmm.engine.batching`), so the updates do not depend on the number of processes. Each
clip's random choices come from ``(SEED, epoch, index)``, and the own-prediction coin of a step
from ``(SEED, iteration)``: one coin per frame shared by every group, as the 2019 run's 4 GPUs drew
the same one (``SOLVER.OWN_PRED_COIN``, :func:`step_coins`). A resumed run restores model and
optimisers, skips the steps its epoch already consumed and continues exactly as an uninterrupted
run would.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from yacs.config import CfgNode

from ..checkpointing import (CONFIG_FILE, TRAINER_FILE, Checkpointer, load_checkpoint, load_optimizer_states,
                             parse_name, state_is_finite, training_payload)
from ..config import flatten_config, load_config, set_config_value
from ..config.keys import check_choice
from ..errors import ConfigError, InputError, MissingInputError
from ..model.losses import LOSS_NAMES
from .batching import StepBatches, micro_batches, running_stats_kept
from .build import build_model, build_optimizers, build_train_dataset, build_train_loader
from .clip_loss import ClipLoss
from .distributed import DistInfo, all_reduce_mean, barrier
from .hooks import CheckpointHook, MetricsLog, PlotHook, ProgressBar, TensorBoardLog, ValidationHook

log = logging.getLogger("dmm.train")

#: config keys a resumed run may change; any other difference keeps the run's saved value
RESUMABLE = ("SOLVER.EPOCHS", "SOLVER.MAX_ITERS", "SOLVER.LOG_PERIOD", "SOLVER.CHECKPOINT_PERIOD",
             "SOLVER.KEEP_CHECKPOINTS", "SOLVER.KEEP_EPOCHS", "DATA.NUM_WORKERS", "DATA.ROOT", "DATA.LMDB",
             "PROPOSALS.TRAIN_DIR", "PROPOSALS.EVAL_DIR", "VAL.ENABLED", "VAL.NUM_VIDEOS", "VAL.PERIOD",
             "DEVICE", "OUTPUT_DIR")
RUN_FILES = ("metrics.jsonl", "log.txt", "loss_curves.png", CONFIG_FILE)
RUN_FOLDERS = ("tensorboard",)
#: results made from the run's checkpoints (dmm.test, validation): a run's, but kept by --overwrite
RESULT_FOLDERS = ("eval", "val")


class TrainingError(RuntimeError):
    """A run that cannot go on (a non-finite loss)."""


def own_prediction_flags(seed: int, iteration: int, steps: int, prob: float, group: int = 0) -> list[bool]:
    """The coin flips for feeding the model's own prediction after each of a clip's ``steps``
    frames, fixed by the iteration and ``group`` (so any number of processes draws the same)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + iteration + 1_000_000_007 * group)
    return (torch.rand(steps, generator=gen) < prob).tolist()


def step_coins(seed: int, iteration: int, steps: int, prob: float, groups: Sequence[int],
               coin: str = "step") -> list[list[bool]]:
    """The own-prediction coins of ``groups`` (one list of ``steps`` flags each) at ``iteration``.

    ``coin`` (``SOLVER.OWN_PRED_COIN``): ``"step"`` (2019) draws one coin per frame for the whole
    step, every group the same: the 2019 trainer drew ``random.random()`` in the main process
    (2019 ``dmm/modules/trainer.py:124``) after every rank had seeded ``random`` alike
    (2019 ``train.py:396-399``), so its 4 GPUs fed all 16 clips the same way. ``"group"`` draws
    one per group.
    """
    check_choice("SOLVER.OWN_PRED_COIN", coin)
    return [own_prediction_flags(seed, iteration, steps, prob, g if coin == "group" else 0) for g in groups]


def reconcile_resumed_config(saved: CfgNode, given: CfgNode) -> CfgNode:
    """The config a resumed run continues with: the run's saved config, except :data:`RESUMABLE` keys.

    Every other key that differs is named in a warning and keeps its saved value.
    """
    saved_flat, given_flat = flatten_config(saved), flatten_config(given)
    changes = {}
    for key, value in given_flat.items():
        if saved_flat.get(key) == value:
            continue
        if key in RESUMABLE:
            changes[key] = value
        else:
            log.warning("resume: %s differs from the run's saved config (saved %r, given %r); keeping the saved value",
                        key, saved_flat.get(key), value)
    cfg = saved.clone()
    cfg.defrost()
    for key, value in changes.items():
        set_config_value(cfg, key, value)
    cfg.freeze()
    return cfg


def holds_a_run(out_dir: Path) -> bool:
    """Whether ``out_dir`` already holds a training run's log or checkpoints."""
    return (out_dir / "metrics.jsonl").exists() or any(
        p.is_dir() and parse_name(p.name) for p in out_dir.glob("epo*_iter*"))


def is_run_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint folder a run of this project wrote: ``epoXX_iterXXXXX``
    holding ``config.yaml`` and at most ``trainer.pt`` besides (a released one has no config)."""
    return (path.is_dir() and parse_name(path.name) is not None and (path / CONFIG_FILE).is_file()
            and {p.name for p in path.iterdir()} <= {TRAINER_FILE, CONFIG_FILE})


def foreign_entries(out_dir: Path) -> list[Path]:
    """The entries of ``out_dir`` that no training run of this project wrote (a released checkpoint,
    any other file), sorted; a run never writes into a folder holding any."""
    if not out_dir.is_dir():
        return []
    own = {*RUN_FILES, *RUN_FOLDERS, *RESULT_FOLDERS}
    return sorted(p for p in out_dir.iterdir()
                  if p.name not in own and not is_run_checkpoint(p)
                  and not (p.name.startswith(".") and p.name.endswith(".tmp")))  # interrupted writes


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
        foreign = foreign_entries(self.out_dir)
        if foreign:
            raise InputError(f"OUTPUT_DIR {self.out_dir} holds {foreign[0]} ({len(foreign)} entries in all) that no "
                             f"training run of this project wrote (a released checkpoint?): a run neither writes "
                             f"into such a folder nor removes what it did not write; choose another OUTPUT_DIR")
        if not resume and holds_a_run(self.out_dir):
            if not overwrite:
                raise InputError(f"OUTPUT_DIR {self.out_dir} already holds a training run: continue it with "
                                 f"--resume {self.out_dir}, choose another OUTPUT_DIR, or pass --overwrite to replace it")
            if self.dist.is_main:
                self._remove_run()
        barrier(self.dist)
        torch.manual_seed(cfg.SEED)

        self.model = build_model(cfg, self.device, None if resume else init)
        self.optimizers = build_optimizers(self.model, cfg.SOLVER)
        if cfg.SOLVER.INIT_OPTIMIZERS and not resume:
            self._init_optimizers(init)
        clip_loss = ClipLoss(self.model, cfg)
        self.clip_loss: nn.Module = (
            DistributedDataParallel(clip_loss, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                    find_unused_parameters=True)  # encoder.base.fc: kept for the released keys
            if dist_info.distributed else clip_loss)
        self.dataset = build_train_dataset(cfg)
        self.batches = StepBatches.from_config(cfg.SOLVER, dist_info.world_size, dist_info.rank)
        steps = self.batches.steps_per_epoch(len(self.dataset))
        if steps == 0:
            raise InputError(f"split {cfg.DATA.TRAIN_SPLIT!r} gives {len(self.dataset)} clips: fewer than one step of "
                             f"{self.batches.groups} groups of {self.batches.batch} clips (SOLVER.BN_GROUPS x "
                             f"SOLVER.BATCH_SIZE)")
        cap = cfg.SOLVER.MAX_ITERS_PER_EPOCH
        self.iters_per_epoch = min(steps, cap) if cap > 0 else steps
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
        self.data_time = 0.0  # seconds the last step waited for its batches
        tensorboard = TensorBoardLog(self.out_dir) if cfg.SOLVER.TENSORBOARD else None
        self.log_hook = MetricsLog(self.out_dir, cfg.SOLVER.LOG_PERIOD, self.dist.is_main, tensorboard)
        self.hooks = [self.log_hook, ProgressBar(self.dist.is_main), CheckpointHook(cfg.SOLVER.CHECKPOINT_PERIOD),
                      PlotHook(self.out_dir, self.dist.is_main)]

    # -- run folder and checkpoints ----------------------------------------------------------

    def _init_optimizers(self, init: str | Path | None) -> None:
        """``SOLVER.INIT_OPTIMIZERS``: Adam's moments and learning rates from ``init`` (2019 online
        training's ``--resume``); the restored learning rates win over the config's, as in 2019."""
        if not init:
            raise ConfigError("SOLVER.INIT_OPTIMIZERS restores the optimizers from the checkpoint of --init: "
                              "pass --init CKPT, or set SOLVER.INIT_OPTIMIZERS False")
        source = load_optimizer_states(self.model, self.optimizers, init)
        rates = {g.get("name", name): g["lr"] for name, opt in self.optimizers.items() for g in opt.param_groups}
        log.info("optimizers restored from %s: learning rates %s", source, rates)
        solver = self.cfg.SOLVER
        wanted = {"necks": solver.NECK_LR, "backbone": solver.BACKBONE_LR, "decoder": solver.DECODER_LR}
        differ = {k: (v, wanted[k]) for k, v in rates.items() if k in wanted and abs(v - wanted[k]) > 1e-12 * wanted[k]}
        if differ:
            log.warning("the restored learning rates differ from the config's and are kept, as 2019's --resume kept "
                        "them: %s", ", ".join(f"{k} {a:g} (config {b:g})" for k, (a, b) in differ.items()))

    def _remove_run(self) -> None:
        for path in Checkpointer(self.out_dir).checkpoints():
            shutil.rmtree(path, ignore_errors=True)
        for name in RUN_FILES:
            (self.out_dir / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            shutil.rmtree(self.out_dir / name, ignore_errors=True)

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
            self.last_checkpoint = self.checkpointer.save(
                epoch, self.iteration, training_payload(state, self.optimizers, epoch, self.iteration),
                files={CONFIG_FILE: self.cfg.dump()}, finite=state_is_finite(state))
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

    def _loader(self, epoch: int, start_step: int):
        """This process's micro-batches of ``epoch`` from step ``start_step`` on, in step order."""
        self.dataset.set_epoch(epoch)
        indices = self.batches.indices(len(self.dataset), self.cfg.SEED, epoch, start_step, self.iters_per_epoch)
        return build_train_loader(self.dataset, indices, self.cfg, self.device)

    def own_prediction_flags(self, steps: int, prob: float) -> list[list[bool]]:
        """The own-prediction coins of this process's micro-batches at the current iteration."""
        return step_coins(self.cfg.SEED, self.iteration, steps, prob, self.batches.my_groups(),
                          self.cfg.SOLVER.OWN_PRED_COIN)

    def _forward(self, batch: dict, feed_own: list[bool]) -> dict[str, torch.Tensor]:
        dev = self.device
        losses = self.clip_loss(  # MODEL.AMP, the one autocast switch, applies inside (DMMNet.encode)
            batch["images"].to(dev, non_blocking=True),
            batch["masks"].to(dev, non_blocking=True),
            batch["weights"].to(dev, non_blocking=True),
            [[p.to(dev) for p in clip] for clip in batch["proposals"]],
            batch["flip"],
            batch["affines"],
            feed_own,
        )
        if not torch.isfinite(losses["total"]):
            terms = ", ".join(f"{k}={losses[k].item():.4g}" for k in LOSS_NAMES)
            good = self.last_good_checkpoint()
            raise TrainingError(
                f"non-finite loss at epoch {self.epoch} iteration {self.iteration} ({terms}; videos "
                f"{batch['video']}); stopping. Last good checkpoint: "
                + (f"{good} (continue with --resume {good})" if good else "none written yet"))
        return losses

    def run_step(self, micro: Sequence[dict], feed_own: Sequence[list[bool]]) -> dict[str, float]:
        """One optimisation step over this process's micro-batches (one per batch-norm group, see
        :mod:`dmm.engine.batching`): gradients accumulated, each scaled by 1 / their number, then
        averaged over the processes; only the first micro-batch updates the batch-norm running
        statistics. Returns the loss terms averaged over all groups."""
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        names = ("total", *LOSS_NAMES)
        sums = torch.zeros(len(names), device=self.device)
        for j, (batch, flags) in enumerate(zip(micro, feed_own)):
            last = j == len(micro) - 1
            sync = contextlib.nullcontext() if last or not self.dist.distributed else self.clip_loss.no_sync()
            with sync, running_stats_kept(self.model, keep=j > 0):
                losses = self._forward(batch, flags)
                (losses["total"] / len(micro)).backward()
            sums += torch.stack([losses[k].detach() for k in names])
        if self.cfg.SOLVER.GRAD_CLIP > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.SOLVER.GRAD_CLIP)
        for opt in self.optimizers.values():
            opt.step()
        values = all_reduce_mean(sums / len(micro), self.dist)
        return dict(zip(names, values.tolist()))

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
        for hook in hooks:
            hook.before_train(self)
        try:
            self._epochs(hooks, total)
        except BaseException:
            for hook in hooks:
                hook.after_failure(self)
            raise
        for hook in hooks:
            hook.after_train(self)
        return self.last_checkpoint

    def _epochs(self, hooks: list, total: int) -> None:
        """Steps until ``total`` iterations, calling the hooks around them."""
        solver = self.cfg.SOLVER
        steps = self.cfg.DATA.LENGTH_CLIP - 1
        while self.iteration < total:
            epoch, start = self.epoch, self.iteration % self.iters_per_epoch
            own_prob = solver.OWN_PRED_PROB if epoch >= solver.FINETUNE_AFTER else 0.0
            for hook in hooks:
                hook.before_epoch(self, epoch, start)
            self.model.train()
            batches = micro_batches(self._loader(epoch, start), self.batches.accumulation)
            while True:
                tic = time.perf_counter()
                micro = next(batches, None)
                if micro is None:
                    break
                self.data_time = time.perf_counter() - tic
                values = self.run_step(micro, self.own_prediction_flags(steps, own_prob))
                self.iteration += 1
                for hook in hooks:
                    hook.after_step(self, values)
                if self.iteration >= total:
                    break
            if self.iteration % self.iters_per_epoch == 0:
                for hook in hooks:
                    hook.after_epoch(self, epoch)


def _with_output_dir(cfg: CfgNode, out_dir: Path) -> CfgNode:
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = str(out_dir)
    cfg.freeze()
    return cfg


__all__ = ["Trainer", "TrainingError", "own_prediction_flags", "reconcile_resumed_config", "step_coins"]
