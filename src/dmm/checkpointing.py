"""Checkpoint folders with retention: the one checkpointer of DMM-Net and the proposal net.

A run's checkpoints are folders ``<root>/<name>/`` named by :func:`checkpoint_name`
(``epoXX_iterXXXXX``), each holding ``trainer.pt`` and whatever text files the caller adds
(``config.yaml``), written atomically: a folder that exists is complete. After each save the
checkpointer keeps the newest ``keep_last`` folders, those of the epochs in ``keep_epochs`` and
the newest one whose weights were all finite; the others are removed, and so are temporary
files that interrupted writes left behind.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from .errors import DMMError
from .io import atomic_dir, save_torch

log = logging.getLogger("dmm.checkpointing")

PAYLOAD = "trainer.pt"
_NAME = re.compile(r"^epo(\d+)_iter(\d+)$")
_TEMP = re.compile(r"^\..*\.tmp$")


def checkpoint_name(epoch: int, iteration: int) -> str:
    """``epoXX_iterXXXXX``: written during epoch ``epoch`` (0-based) after ``iteration`` steps in all."""
    return f"epo{epoch:02d}_iter{iteration:05d}"


def parse_name(name: str) -> tuple[int, int] | None:
    """(epoch, iteration) of a checkpoint folder name, or None."""
    match = _NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def state_is_finite(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether every floating-point tensor of a state dict is finite."""
    return all(bool(torch.isfinite(v).all()) for v in state.values() if torch.is_floating_point(v))


class Checkpointer:
    """Save, list, prune and find the checkpoints of one run folder."""

    def __init__(self, root: str | os.PathLike, keep_last: int = 3, keep_epochs: Iterable[int] = ()) -> None:
        self.root = Path(root)
        self.keep_last = max(1, int(keep_last))
        self.keep_epochs = {int(e) for e in keep_epochs}

    def checkpoints(self) -> list[Path]:
        """Complete checkpoint folders, oldest first (by iteration)."""
        if not self.root.is_dir():
            return []
        found = [(parse_name(p.name), p) for p in self.root.iterdir() if p.is_dir() and (p / PAYLOAD).is_file()]
        return [p for key, p in sorted((k, p) for k, p in found if k is not None)]

    def save(self, epoch: int, iteration: int, payload: dict[str, Any], files: Mapping[str, str] = (),
             finite: bool = True) -> Path:
        """Write ``<root>/epoXX_iterXXXXX/`` (``trainer.pt`` = ``payload``, plus text ``files``), then prune.

        ``finite``: whether the saved weights are all finite; the newest finite checkpoint is
        never pruned (see :meth:`latest_finite`).
        """
        path = self.root / checkpoint_name(epoch, iteration)
        with atomic_dir(path, overwrite=True) as tmp:
            save_torch({**payload, "finite": bool(finite)}, tmp / PAYLOAD)
            for name, text in dict(files).items():
                (tmp / name).write_text(text)
        self.prune()
        return path

    def is_finite(self, path: Path) -> bool:
        """Whether the checkpoint's weights were all finite when it was saved (False if unreadable)."""
        try:
            return bool(torch.load(path / PAYLOAD, map_location="cpu", weights_only=True, mmap=True).get("finite", True))
        except Exception:  # noqa: BLE001 - an unreadable checkpoint is not a finite one
            return False

    def latest_finite(self) -> Path | None:
        """The newest checkpoint whose weights were finite when saved."""
        for path in reversed(self.checkpoints()):
            if self.is_finite(path):
                return path
        return None

    def prune(self) -> None:
        """Remove old checkpoints (keeping the newest ``keep_last``, ``keep_epochs`` and the newest
        finite one) and the temporary files of interrupted writes."""
        paths = self.checkpoints()
        keep = set(paths[-self.keep_last:])
        keep |= {p for p in paths if parse_name(p.name)[0] in self.keep_epochs}
        finite = self.latest_finite()
        if finite is not None:
            keep.add(finite)
        for path in paths:
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True)
        self.sweep_temporaries()

    def sweep_temporaries(self) -> list[Path]:
        """Remove the ``.<name>.<random>.tmp`` leftovers of interrupted atomic writes in the run folder."""
        removed = []
        if not self.root.is_dir():
            return removed
        for path in self.root.iterdir():
            if _TEMP.match(path.name):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def load_latest(self, load: Callable[[Path], Any]) -> tuple[Path, Any] | None:
        """``load`` the newest checkpoint that loads; truncated newer ones are skipped with a warning."""
        for path in reversed(self.checkpoints()):
            try:
                return path, load(path)
            except DMMError as e:
                log.warning("checkpoint %s cannot be read (%s); trying the one before", path, str(e).splitlines()[0])
        return None
