"""Writing a split's results: ``<out>/<video>/<frame>.png`` and the record of what made them.

:func:`segment_videos` runs :func:`~dmm.engine.inference.propagate` over a split's videos and
writes each frame with :class:`ResultWriter` (one atomic folder per video). Beside the folder,
``<out>.source.json`` records the producer (:func:`provenance`): a rerun skips the finished videos
of the same producer and refuses, or with ``--overwrite`` replaces, another's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from ..config.keys import config_value
from ..data.frames import VideoStream
from ..data.palette import save_palette_png
from ..errors import InputError
from ..io import atomic_dir, write_json
from ..structures import SlotRule
from .inference import FrameResult, ProposalFn, propagate
from .tracker import Tracker

log = logging.getLogger("dmm.inference")


class ResultWriter:
    """Writes :class:`FrameResult` s as ``<root>/<video>/<frame>.png`` palette PNGs.

    Each video's folder is written under a temporary name and renamed into place after its last
    frame, so a folder that exists is complete. Use as a context manager: leaving it early (an
    error, an interrupt) removes the unfinished folders.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._stack = contextlib.ExitStack()
        self._open: dict[str, tuple[Path, contextlib.ExitStack]] = {}

    def __enter__(self) -> "ResultWriter":
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self._open:
            exc = InputError(f"videos {sorted(self._open)} ended before their last frame")
            exc_type = type(exc)
        for _, stack in self._open.values():
            stack.__exit__(exc_type, exc, tb)  # an unfinished folder is removed
        self._open.clear()

    def write(self, result: FrameResult) -> None:
        if result.video not in self._open:
            stack = contextlib.ExitStack()
            tmp = stack.enter_context(atomic_dir(self.root / result.video))
            self._open[result.video] = (tmp, stack)
        tmp, stack = self._open[result.video]
        save_palette_png(tmp / f"{result.name}.png", result.labels)
        if result.last:
            del self._open[result.video]
            stack.close()


def pending_videos(videos: Sequence[str], out_root: Path) -> list[str]:
    """Videos whose result folder is not there yet (finished folders appear whole)."""
    return [v for v in videos if not (Path(out_root) / v).is_dir()]


#: the config keys that shape the masks (a result folder records their hash)
MASK_KEYS = ("MODEL", "MATCHING", "PROPOSALS", "DATA.INPUT_H", "DATA.INPUT_W", "DATA.IMAGE_RESIZE", "DATA.MEAN",
             "DATA.STD", "DATA.MAX_OBJECTS", "TEST.LABELS_AT")


def provenance(cfg, producer: str) -> dict:
    """What produced a result folder: ``producer`` (a checkpoint file's path, size and time, or a
    baseline's name), a hash of the config keys that shape the masks (:data:`MASK_KEYS`), and
    how the label maps were made: ``input_size`` [H, W] and ``labels_at`` (``TEST.LABELS_AT``).
    With ``labels_at == "input"`` every map is an input-size map resized to its frame by nearest
    neighbour, so the 2019 scoring protocol (``python -m dmm.metrics --protocol dmm2019``)
    recovers the input-size maps the 2019 evaluator wrote."""
    parts = []
    for key in MASK_KEYS:
        node = config_value(cfg, key)
        parts.append(f"{key}={node.dump() if hasattr(node, 'dump') else node!r}")
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return {"producer": producer, "config": digest, "input_size": [int(cfg.DATA.INPUT_H), int(cfg.DATA.INPUT_W)],
            "labels_at": cfg.TEST.LABELS_AT}


def _same_producer(a: dict | None, b: dict) -> bool:
    """Whether two provenance records name the same producer and mask config."""
    return a is not None and all(a.get(k) == b.get(k) for k in ("producer", "config"))


def checkpoint_producer(checkpoint: str | Path) -> str:
    """A checkpoint's identity for :func:`provenance`: resolved path, size and modification time."""
    path = Path(checkpoint).resolve()
    file = path / "trainer.pt" if (path / "trainer.pt").is_file() else path
    stat = file.stat() if file.is_file() else None
    return f"{file} ({stat.st_size} bytes, modified {stat.st_mtime_ns})" if stat else str(file)


def record_path(out_root: Path) -> Path:
    """Where a result folder's provenance is recorded: ``<out_root>.source.json``, beside it (the
    folder itself holds only the videos a submission zips)."""
    return out_root.parent / f"{out_root.name}.source.json"


def claim_results(out_root: Path, source: dict, on_mismatch: str = "refuse") -> None:
    """Make ``out_root`` the results of ``source``: a folder holding another producer's results is
    refused (``on_mismatch="refuse"``, naming both) or emptied (``"redo"``)."""
    record = record_path(out_root)
    finished = [p for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".")] if out_root.is_dir() else []
    if finished:
        previous = json.loads(record.read_text()) if record.is_file() else None
        if not _same_producer(previous, source):
            if on_mismatch != "redo":
                what = f"results of {previous['producer']} (config {previous['config']})" if previous else \
                    "results of an unknown producer"
                raise InputError(f"{out_root} holds {what}, not of {source['producer']} (config {source['config']}): "
                                 f"write to another --out, or pass --overwrite to replace them")
            log.info("%s holds other results (%s); replacing them", out_root, previous)
            for p in finished:
                shutil.rmtree(p)
    write_json(record, source)


def segment_videos(tracker: Tracker, reader, videos: Sequence[str], proposal_fn: ProposalFn, out_root: str | Path,
                   cfg, *, device: torch.device | str = "cpu", batch_videos: int = 1,
                   show_progress: bool = True, desc: str = "inference", source: dict | None = None,
                   on_mismatch: str = "refuse") -> list[str]:
    """Segment every video of ``videos`` not already done in ``out_root``; returns the videos it ran.

    Videos are read with :class:`~dmm.data.frames.VideoStream` and sorted by length so a lockstep
    batch wastes little on finished members. ``cfg``: the full config (``DATA``, ``PROPOSALS``,
    ``MODEL.OBJECTS``, ``TEST.LABELS_AT``). ``source`` (:func:`provenance`): finished videos are
    only kept when the folder's recorded producer is the same (see :func:`claim_results`).
    """
    out_root = Path(out_root)
    if source is not None:
        claim_results(out_root, source, on_mismatch)
    todo = pending_videos(videos, out_root)
    if len(videos) > len(todo):
        log.info("%d of %d videos already done in %s; skipping them", len(videos) - len(todo), len(videos), out_root)
    lengths = {v: len(reader.info(v).frames) for v in todo}
    todo = sorted(todo, key=lambda v: (lengths[v], v))
    size = (cfg.DATA.INPUT_H, cfg.DATA.INPUT_W)
    slots = SlotRule.from_config(cfg)
    bar = tqdm(total=sum(lengths.values()), unit="frame", desc=desc, disable=not show_progress, dynamic_ncols=True)
    with bar, ResultWriter(out_root) as writer:
        for i in range(0, len(todo), max(1, batch_videos)):
            streams = [VideoStream(reader, v, size, cfg.DATA.MEAN, cfg.DATA.STD, cfg.DATA.IMAGE_RESIZE)
                       for v in todo[i:i + max(1, batch_videos)]]
            for result in propagate(tracker, [(s.info, s) for s in streams], proposal_fn, size, cfg.PROPOSALS,
                                    slots=slots, labels_at=cfg.TEST.LABELS_AT, device=device):
                writer.write(result)
                bar.update(1)
    return todo
