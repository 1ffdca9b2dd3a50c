"""How a training step's clips are split into batch-norm groups, processes and micro-batches.

The paper's run (2019 ``scripts/train/train_r50.sh``, ``train.py``) used 4 GPUs with 4 clips each:
16 clips an optimisation step, train-mode batch norm over each GPU's 4 clips, gradients averaged
over the GPUs. Its ``DistributedSampler`` (shuffled, the index list padded to a multiple of 4 by
repeating its start) gave each GPU ``ceil(N / 4)`` clips and its ``DataLoader`` dropped the last
incomplete batch: ``floor(ceil(N / 4) / 4)`` steps an epoch (1641 on train3k, hence the checkpoint
``epo13_iter01640``).

:class:`StepBatches` reproduces that on any number of processes: a step is ``groups`` groups of
``batch`` clips (``SOLVER.BN_GROUPS`` x ``SOLVER.BATCH_SIZE``); group ``g`` takes the clips the
2019 GPU ``g`` took; a run on ``world`` processes gives each ``groups / world`` consecutive groups,
run one after the other as micro-batches whose gradients are accumulated (each scaled by
``1 / accumulation``, then averaged over the processes), so 1, 2 or 4 processes make the same
updates. Only a step's first group updates the batch-norm running statistics (2019: every GPU
kept its own, ``broadcast_buffers=False``, and rank 0 saved its GPU's).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from ..errors import ConfigError


@dataclass(frozen=True)
class StepBatches:
    """The clips of one optimisation step (module docstring).

    Attributes:
        batch: clips per batch-norm group (``SOLVER.BATCH_SIZE``; 2019: per GPU).
        groups: groups per step (``SOLVER.BN_GROUPS``; 2019: the 4 GPUs).
        world: processes of the run; must divide ``groups``.
        rank: this process.
    """

    batch: int
    groups: int
    world: int = 1
    rank: int = 0

    def __post_init__(self) -> None:
        if self.groups % self.world:
            raise ConfigError(
                f"SOLVER.BN_GROUPS = {self.groups} batch-norm groups per step cannot be shared by {self.world} "
                f"processes: run on a number of processes that divides it (e.g. 1, 2 or 4 for 4 groups), or "
                f"change SOLVER.BN_GROUPS (the step then holds other clips than the 2019 run's)")

    @classmethod
    def from_config(cls, cfg_solver, world: int = 1, rank: int = 0) -> "StepBatches":
        return cls(int(cfg_solver.BATCH_SIZE), int(cfg_solver.BN_GROUPS), world, rank)

    @property
    def accumulation(self) -> int:
        """Micro-batches (groups) each process runs per step."""
        return self.groups // self.world

    @property
    def clips_per_step(self) -> int:
        return self.batch * self.groups

    def my_groups(self) -> range:
        """The groups this process runs, in order."""
        return range(self.rank * self.accumulation, (self.rank + 1) * self.accumulation)

    def steps_per_epoch(self, num_clips: int) -> int:
        """``floor(ceil(N / groups) / batch)``: the 2019 sampler's share per GPU, whole batches only."""
        return math.ceil(num_clips / self.groups) // self.batch

    def group_orders(self, num_clips: int, seed: int, epoch: int) -> list[list[int]]:
        """Each group's clip order in ``epoch``: the 2019 ``DistributedSampler`` over ``groups``
        replicas, reshuffled every epoch from ``seed + epoch``."""
        orders = []
        for g in range(self.groups):
            sampler = DistributedSampler(range(num_clips), num_replicas=self.groups, rank=g, shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
            orders.append(list(sampler))
        return orders

    def indices(self, num_clips: int, seed: int, epoch: int, first_step: int, end_step: int) -> list[int]:
        """This process's clips for steps ``first_step .. end_step - 1`` of ``epoch``: per step, the
        ``batch`` clips of each of its groups in turn (a loader with ``batch_size = batch`` then
        yields the step's micro-batches in order)."""
        orders = self.group_orders(num_clips, seed, epoch)
        out: list[int] = []
        for step in range(first_step, end_step):
            for g in self.my_groups():
                out += orders[g][step * self.batch:(step + 1) * self.batch]
        return out


def micro_batches(loader, size: int) -> Iterator[list]:
    """The loader's batches ``size`` at a time (one optimisation step each); a short tail is dropped."""
    step: list = []
    for batch in loader:
        step.append(batch)
        if len(step) == size:
            yield step
            step = []


@contextlib.contextmanager
def running_stats_kept(model: nn.Module, keep: bool = True) -> Iterator[None]:
    """With ``keep``, the batch-norm running statistics (mean, variance, batches tracked) are
    restored after the block: a forward in train mode normalises with its batch's statistics
    but leaves the running ones as they were."""
    if not keep:
        yield
        return
    saved = [(m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, mean, var, tracked in saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(tracked)
