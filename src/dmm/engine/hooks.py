"""Training hooks: logging, checkpoints, validation and plots around the short loop of ``Trainer``.

A hook implements any of ``before_train``, ``before_epoch``, ``after_step``, ``after_epoch``,
``after_train`` and ``after_failure`` (the run stopped on an error, which then propagates); each
receives the :class:`~dmm.engine.trainer.Trainer`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ..io import atomic_path
from .plots import plot_loss_curves

log = logging.getLogger("dmm.train")


class Hook:
    """The no-op base: override the moments you need."""

    def before_train(self, trainer) -> None: ...

    def before_epoch(self, trainer, epoch: int, start: int) -> None: ...

    def after_step(self, trainer, values: dict[str, float]) -> None: ...

    def after_epoch(self, trainer, epoch: int) -> None: ...

    def after_train(self, trainer) -> None: ...

    def after_failure(self, trainer) -> None: ...


def read_records(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``; a torn last line (a run killed mid-write) is ignored."""
    if not path.exists():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                log.warning("%s: ignoring its torn last line", path)
                continue
            raise
    return records


class TensorBoardLog:
    """The records of :class:`MetricsLog` as TensorBoard scalars in ``<run>/tensorboard``, step =
    iteration (``tensorboard --logdir experiments/``).

    Tags as the 2019 trainer named its scalars, ``<loss>/train`` (``total/train``, ``match/train``,
    ...), validation as ``<metric>/val``, plus ``lr/<group>`` and ``time/<name>``. A resumed run
    opens its writer with ``purge_step`` = the resumed iteration + 1, so TensorBoard drops what the
    interrupted run had logged past its checkpoint and no step appears twice.
    """

    def __init__(self, out_dir: Path) -> None:
        self.log_dir = Path(out_dir) / "tensorboard"
        self.writer = None

    def open(self, resumed_iteration: int) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported here: it loads tensorboard

        self.writer = SummaryWriter(str(self.log_dir), purge_step=resumed_iteration + 1 if resumed_iteration else None)

    @staticmethod
    def tag(key: str) -> str | None:
        """The scalar tag of a record key (None: not a scalar of its own)."""
        if key in ("epoch", "iteration"):
            return None
        if key.startswith("val_"):
            return f"{key[len('val_'):]}/val"
        if key.startswith("lr_"):
            return f"lr/{key[len('lr_'):]}"
        if key in ("sec_per_iter", "data_time"):
            return f"time/{key}"
        return f"{key}/train"

    def write(self, record: dict) -> None:
        for key, value in record.items():
            tag = self.tag(key)
            if tag is not None and isinstance(value, (int, float)):
                self.writer.add_scalar(tag, value, record["iteration"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MetricsLog(Hook):
    """Appends a record every ``period`` iterations (and the first) to ``metrics.jsonl`` and
    ``log.txt``, and hands it to ``tensorboard`` (a :class:`TensorBoardLog`) when given.

    A training record holds the loss terms, each parameter group's learning rate (``lr_<group>``),
    ``sec_per_iter`` (the wall time per iteration since the previous record) and ``data_time``
    (the seconds per iteration spent waiting for the loader). On a resumed run the records past
    the resumed iteration are dropped first, so none appears twice.
    """

    def __init__(self, out_dir: Path, period: int, is_main: bool, tensorboard: TensorBoardLog | None = None) -> None:
        self.metrics = Path(out_dir) / "metrics.jsonl"
        self.text = Path(out_dir) / "log.txt"
        self.period = max(1, int(period))
        self.is_main = is_main
        self.tensorboard = tensorboard if is_main else None
        self._tic = time.perf_counter()
        self._since = 0
        self._data_time = 0.0

    def before_train(self, trainer) -> None:
        if not self.is_main:
            return
        kept = [r for r in read_records(self.metrics) if r.get("iteration", 0) <= trainer.iteration]
        with atomic_path(self.metrics) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        with atomic_path(self.text) as tmp:
            tmp.write_text("".join(self._line(r) for r in kept))
        if self.tensorboard is not None:
            self.tensorboard.open(trainer.iteration)

    def after_train(self, trainer) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def after_failure(self, trainer) -> None:
        self.after_train(trainer)

    def before_epoch(self, trainer, epoch: int, start: int) -> None:
        self._tic, self._since, self._data_time = time.perf_counter(), 0, 0.0

    @staticmethod
    def _line(record: dict) -> str:
        return " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()) + "\n"

    def record(self, record: dict) -> None:
        if not self.is_main:
            return
        with self.metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")
        with self.text.open("a") as f:
            f.write(self._line(record))
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def after_step(self, trainer, values: dict[str, float]) -> None:
        self._since += 1
        self._data_time += trainer.data_time
        if trainer.iteration % self.period and trainer.iteration != 1:
            return
        now = time.perf_counter()
        rates = {f"lr_{g.get('name', name)}": float(g["lr"]) for name, opt in trainer.optimizers.items()
                 for g in opt.param_groups}
        self.record({"epoch": trainer.epoch, "iteration": trainer.iteration, **values, **rates,
                     "sec_per_iter": (now - self._tic) / self._since, "data_time": self._data_time / self._since})
        self._tic, self._since, self._data_time = now, 0, 0.0


class ProgressBar(Hook):
    """A tqdm bar per epoch, showing the latest loss terms."""

    def __init__(self, is_main: bool) -> None:
        self.is_main = is_main
        self.bar = None

    def before_epoch(self, trainer, epoch: int, start: int) -> None:
        self.bar = tqdm(total=trainer.iters_per_epoch, initial=start, desc=f"epoch {epoch}",
                        disable=not self.is_main, dynamic_ncols=True)

    def after_step(self, trainer, values: dict[str, float]) -> None:
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})

    def after_epoch(self, trainer, epoch: int) -> None:
        self.close()

    def after_train(self, trainer) -> None:
        self.close()

    def after_failure(self, trainer) -> None:
        self.close()  # the error line then starts a line of its own

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CheckpointHook(Hook):
    """A checkpoint after every ``period`` steps of an epoch, at the end of every epoch and at the
    end of training.

    ``period`` counts the steps within an epoch, as 2019's ``train.py`` counted its ``batch_idx``:
    with 1641 steps an epoch, its ``save_every 3000`` never fired and the run saved once an epoch.
    """

    def __init__(self, period: int) -> None:
        self.period = max(1, int(period))

    def after_step(self, trainer, values: dict[str, float]) -> None:
        within = trainer.iteration % trainer.iters_per_epoch  # steps done in the current epoch; 0 at its end
        if within and within % self.period == 0:
            trainer.save()  # (the end of an epoch saves in after_epoch)

    def after_epoch(self, trainer, epoch: int) -> None:
        trainer.save()

    def after_train(self, trainer) -> None:
        if trainer.saved_iteration != trainer.iteration:
            trainer.save()


class ValidationHook(Hook):
    """``validate(model, epoch) -> {name: value}`` after every ``period`` epochs and the last, on rank 0."""

    def __init__(self, validate: Callable, period: int, epochs: int, log_hook: MetricsLog, is_main: bool) -> None:
        self.validate = validate
        self.period = max(1, int(period))
        self.epochs = epochs
        self.log_hook = log_hook
        self.is_main = is_main

    def after_epoch(self, trainer, epoch: int) -> None:
        done = epoch + 1
        if not self.is_main or (done % self.period and done != self.epochs):
            return
        trainer.model.eval()
        scores = self.validate(trainer.model, done)
        self.log_hook.record({"epoch": done, "iteration": trainer.iteration,
                              **{f"val_{k}": float(v) for k, v in scores.items()}})


class PlotHook(Hook):
    """Loss curves (``loss_curves.png``) after every epoch and at the end."""

    def __init__(self, out_dir: Path, is_main: bool) -> None:
        self.metrics = Path(out_dir) / "metrics.jsonl"
        self.png = Path(out_dir) / "loss_curves.png"
        self.is_main = is_main

    def after_epoch(self, trainer, epoch: int) -> None:
        self.after_train(trainer)

    def after_train(self, trainer) -> None:
        if self.is_main:
            plot_loss_curves(self.metrics, self.png)
