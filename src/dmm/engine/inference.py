"""Inference: run a :class:`~dmm.engine.tracker.Tracker` over videos and turn its output into label maps.

:func:`propagate` is a generator (as SAM 2's ``propagate_in_video``): it steps several videos
in lockstep, one frame of each at a time, and yields a :class:`FrameResult` per frame; the
caller decides what to do with it (:class:`ResultWriter` writes the YouTube-VOS PNGs). Only the
current frame of each video is in memory.

Which objects are tracked, in which slots, and from which frame is the object plan
(:func:`plan_objects`, ``MODEL.OBJECTS``):

- ``"legacy"`` (the 2019 evaluator and data loader): each video starts at its first annotated
  frame; the objects present there with an id up to ``DATA.MAX_OBJECTS`` are tracked, object
  ``k`` in slot ``k - 1``; objects that first appear later are never started (their pixels stay
  background). Earlier frames are background.
- ``"all"``: every object of the video has its own slot (ids in order, no cap) and starts at
  the frame where it first appears.

The label map of a frame is the argmax over (background = 1 - the largest object probability,
the objects' probabilities), first index on ties. ``TEST.LABELS_AT "input"`` (2019) takes it at
the network input size and resizes it to the frame's size by nearest neighbour; objects given
at a frame show their given mask at the input size. ``"frame"`` resizes the probabilities
bilinearly to the frame's size first and shows given masks at full resolution.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.frames import FrameInput, VideoStream
from ..data.palette import save_palette_png
from ..data.transforms import resize_mask
from ..errors import ConfigError, InputError
from ..io import atomic_dir, write_json
from ..proposals.ops import prepare_batch_for_matching
from ..structures import Proposals, TrackState, VideoInfo
from .tracker import Tracker

log = logging.getLogger("dmm.inference")

OBJECT_RULES = ("legacy", "all")
LABELS_AT = ("input", "frame")

#: ``(video, frame index, frame name) -> Proposals`` of that frame (any size or mask mode)
ProposalFn = Callable[[str, int, str], Proposals]


@dataclass(frozen=True)
class ObjectPlan:
    """Which objects a video tracks and from which frame.

    Attributes:
        slot_ids: the object id shown by each slot (the slot's label in the output).
        starts: frame index -> the slots given (started) at that frame.
    """

    slot_ids: tuple[int, ...]
    starts: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def num_slots(self) -> int:
        return len(self.slot_ids)


def plan_objects(info: VideoInfo, rule: str = "legacy", max_objects: int = 5) -> ObjectPlan:
    """The :class:`ObjectPlan` of a video under ``rule`` (see the module docstring)."""
    if rule not in OBJECT_RULES:
        raise ConfigError(f"unknown MODEL.OBJECTS {rule!r} (one of {OBJECT_RULES})")
    if not info.objects:
        return ObjectPlan(())
    if rule == "all":
        ids = sorted(info.objects)
        starts: dict[int, list[int]] = {}
        for slot, oid in enumerate(ids):
            starts.setdefault(info.objects[oid].first_index, []).append(slot)
        return ObjectPlan(tuple(ids), {k: tuple(v) for k, v in sorted(starts.items())})
    first = min(o.first_index for o in info.objects.values())
    present = sorted(oid for oid, o in info.objects.items() if o.first_index == first and 1 <= oid <= max_objects)
    if not present:
        return ObjectPlan(())
    slots = max(present)
    return ObjectPlan(tuple(range(1, slots + 1)), {first: tuple(oid - 1 for oid in present)})


@dataclass
class FrameResult:
    """One frame's answer.

    Attributes:
        video, index, name: the frame.
        labels: (h, w) uint8 object ids at the frame's original size, 0 for background.
        last: True for the video's last frame.
    """

    video: str
    index: int
    name: str
    labels: np.ndarray
    last: bool


def compose_labels(probs: torch.Tensor, slot_ids: Sequence[int], size: tuple[int, int], labels_at: str = "input",
                   given: Sequence[tuple[int, np.ndarray]] = ()) -> np.ndarray:
    """Label map of one frame.

    Args:
        probs: (O, H, W) slot probabilities at the network input size, zero for slots not shown.
        slot_ids: the object id of each slot.
        size: (h, w) original frame size.
        labels_at: "input" or "frame" (module docstring).
        given: ("frame" only) (object id, (h, w) bool mask) of the objects given at this frame,
            painted over the result at full resolution.
    Returns:
        (h, w) uint8 map of object ids, 0 for background.
    """
    h, w = size
    if probs.shape[0] == 0:
        return np.zeros((h, w), dtype=np.uint8)
    lut = np.array([0, *slot_ids], dtype=np.uint8)
    if labels_at == "input":
        background = 1.0 - probs.max(dim=0, keepdim=True).values
        winner = torch.cat([background, probs], dim=0).argmax(dim=0).to(torch.uint8).cpu().numpy()
        small = lut[winner]
        if small.shape == (h, w):
            return small
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    if labels_at != "frame":
        raise ConfigError(f"unknown TEST.LABELS_AT {labels_at!r} (one of {LABELS_AT})")
    p = F.interpolate(probs[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    background = 1.0 - p.max(dim=0, keepdim=True).values
    labels = lut[torch.cat([background, p], dim=0).argmax(dim=0).cpu().numpy()]
    for oid, mask in given:
        labels[mask] = oid
    return labels


@dataclass
class _Track:
    """One video of a lockstep batch."""

    info: VideoInfo
    plan: ObjectPlan
    frames: Iterator[FrameInput]
    done: bool = False


def _given_masks(track: _Track, frame: FrameInput, slots: Sequence[int], input_size: tuple[int, int]) -> torch.Tensor:
    """(len(slots), H, W) float {0, 1}: the given masks of ``slots`` at this frame, nearest-resized."""
    if frame.annotation is None:
        ids = [track.plan.slot_ids[s] for s in slots]
        raise InputError(f"video {track.info.name!r}: frame {frame.name!r} starts objects {ids} but has no annotation")
    resized = resize_mask(frame.annotation, input_size)
    return torch.from_numpy(np.stack([resized == track.plan.slot_ids[s] for s in slots]).astype(np.float32))


def propagate(tracker: Tracker, videos: Sequence[tuple[VideoInfo, Iterable[FrameInput]]],
              proposal_fn: ProposalFn, input_size: tuple[int, int], cfg_proposals, *,
              objects: str = "legacy", max_objects: int = 5, labels_at: str = "input",
              device: torch.device | str = "cpu") -> Iterator[FrameResult]:
    """Segment ``videos`` in lockstep, yielding every frame's :class:`FrameResult` in order.

    Args:
        tracker: the algorithm (DMM-Net or a baseline).
        videos: per video its :class:`VideoInfo` and an iterable of its :class:`FrameInput`
            (frames resized to ``input_size`` and normalised; annotations at full size).
        proposal_fn: a frame's raw proposals; they are pasted at the input size and filtered
            (``PROPOSALS``: mask threshold, NMS, top-k) before the tracker sees them.
        input_size: (H, W) of the network input.
        objects, max_objects: the object plan (:func:`plan_objects`).
        labels_at: see :func:`compose_labels`.
    """
    size = (int(input_size[0]), int(input_size[1]))
    tracks = [_Track(info, plan_objects(info, objects, max_objects), iter(frames)) for info, frames in videos]
    if not tracks:
        return
    slots = max(1, max(t.plan.num_slots for t in tracks))
    state = TrackState.empty(len(tracks), slots, size, device=device)
    active = np.zeros((len(tracks), slots), dtype=bool)  # a host copy of state.active: no read-back per frame
    while True:
        frames: list[FrameInput | None] = []
        for b, t in enumerate(tracks):
            frame = None if t.done else next(t.frames, None)
            if frame is None and not t.done:
                t.done = True
                if active[b].any():
                    active[b] = False
                    state.active[b] = False
            frames.append(frame)
        if all(f is None for f in frames):
            return
        starting_host = np.zeros((len(tracks), slots), dtype=bool)
        for b, (t, f) in enumerate(zip(tracks, frames)):
            if f is not None:
                starting_host[b, list(t.plan.starts.get(f.index, ()))] = True
        starting = torch.from_numpy(starting_host).to(device)
        probs = torch.zeros(len(tracks), slots, *size, device=device)
        if active.any() or starting_host.any():
            images = torch.stack([f.image if f is not None else torch.zeros(3, *size) for f in frames]).to(device)
            features = tracker.encode(images)
            raw = [proposal_fn(t.info.name, f.index, f.name).to(device) if f is not None
                   else Proposals.empty(size, device=device) for t, f in zip(tracks, frames)]
            proposals = prepare_batch_for_matching(raw, size, cfg_proposals.MASK_THRESHOLD, cfg_proposals.NMS_IOU,
                                                   cfg_proposals.TOPK)
            if active.any():
                probs, state = tracker.step(state, features, proposals)
            if starting_host.any():
                masks = torch.zeros(len(tracks), slots, *size)
                for b, (t, f) in enumerate(zip(tracks, frames)):
                    new = t.plan.starts.get(f.index, ()) if f is not None else ()
                    if new:
                        masks[b, list(new)] = _given_masks(t, f, new, size)
                masks = masks.to(device)
                state = tracker.start(state, features, proposals, masks, starting)
                # given masks are the frame's answer: at the input size, or painted at full size
                shown = masks if labels_at == "input" else torch.zeros_like(masks)
                probs = torch.where(starting[:, :, None, None], shown, probs)
                active |= starting_host
        for b, (t, f) in enumerate(zip(tracks, frames)):
            if f is None:
                continue
            n = t.plan.num_slots
            given = []
            if labels_at == "frame" and f.index in t.plan.starts:
                given = [(t.plan.slot_ids[s], f.annotation == t.plan.slot_ids[s]) for s in t.plan.starts[f.index]]
            labels = compose_labels(probs[b, :n], t.plan.slot_ids, f.size, labels_at, given)
            yield FrameResult(t.info.name, f.index, f.name, labels, f.index == len(t.info.frames) - 1)


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
    baseline's name) and a hash of the config keys that shape the masks (:data:`MASK_KEYS`)."""
    parts = []
    for key in MASK_KEYS:
        node = cfg
        for name in key.split("."):
            node = node[name]
        parts.append(f"{key}={node.dump() if hasattr(node, 'dump') else node!r}")
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return {"producer": producer, "config": digest}


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
        if previous != source:
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
    bar = tqdm(total=sum(lengths.values()), unit="frame", desc=desc, disable=not show_progress, dynamic_ncols=True)
    with bar, ResultWriter(out_root) as writer:
        for i in range(0, len(todo), max(1, batch_videos)):
            streams = [VideoStream(reader, v, size, cfg.DATA.MEAN, cfg.DATA.STD, cfg.DATA.IMAGE_RESIZE)
                       for v in todo[i:i + max(1, batch_videos)]]
            for result in propagate(tracker, [(s.info, s) for s in streams], proposal_fn, size, cfg.PROPOSALS,
                                    objects=cfg.MODEL.OBJECTS, max_objects=cfg.DATA.MAX_OBJECTS,
                                    labels_at=cfg.TEST.LABELS_AT, device=device):
                writer.write(result)
                bar.update(1)
    return todo
