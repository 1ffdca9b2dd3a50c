"""The checkpoint cadence of :class:`~dmm.engine.hooks.CheckpointHook`."""

from dmm.engine.hooks import CheckpointHook


class CountingTrainer:
    """What the hook reads of a trainer: its iteration, steps per epoch, and ``save``."""

    def __init__(self, iters_per_epoch: int) -> None:
        self.iters_per_epoch = iters_per_epoch
        self.iteration = 0
        self.saved_iteration = -1
        self.saved: list[int] = []

    def save(self) -> None:
        self.saved.append(self.iteration)
        self.saved_iteration = self.iteration


def saved_iterations(period: int, iters_per_epoch: int, total: int) -> list[int]:
    """The iterations a run of ``total`` steps checkpoints at (the trainer's hook calls)."""
    trainer, hook = CountingTrainer(iters_per_epoch), CheckpointHook(period)
    while trainer.iteration < total:
        trainer.iteration += 1
        hook.after_step(trainer, {})
        if trainer.iteration % iters_per_epoch == 0:
            hook.after_epoch(trainer, trainer.iteration // iters_per_epoch - 1)
    hook.after_train(trainer)
    return trainer.saved


def test_the_period_counts_steps_within_an_epoch():
    # 5 steps an epoch, every 3 steps of an epoch: steps 3 and 5 of each (a run-wide count: 3, 6, 9, ...)
    assert saved_iterations(3, 5, 15) == [3, 5, 8, 10, 13, 15]
    assert saved_iterations(3, 5, 12) == [3, 5, 8, 10, 12]  # the end of training saves too


def test_the_2019_period_never_fires_within_its_epochs():
    """2019: save_every 3000 with 1641 steps an epoch saved once an epoch, at ``epoXX_iter01640``."""
    assert saved_iterations(3000, 1641, 3 * 1641) == [1641, 2 * 1641, 3 * 1641]
