"""Inference: segment videos frame by frame and write YouTube-VOS result PNGs.

The per-frame loop (``segment_batch``) reads top to bottom:

1. encode the frame;
2. step the objects already being tracked: match them against the frame's proposals and
   refine the matched masks (the IoU term of the cost uses each object's previous *matched*
   mask, the decoder its previous *refined* mask);
3. start the objects whose reference mask is given at this frame: their template features,
   reference and previous masks come from that frame's annotation;
4. write the frame: argmax over (background = 1 - max object probability, objects) at the
   video's original size, with the annotation's own pixels for the objects it starts.

Several videos run in lockstep as one batch; a finished video rides along with blank frames
and no valid object until the longest one ends. Only the current frame of each video is in
memory, so memory does not grow with video length. Each video's PNGs are written into a
temporary folder renamed into place when the video is complete, so a rerun skips finished
videos and never sees half a video.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from yacs.config import CfgNode

from ..data.frames import FrameInput, VideoStream
from ..data.palette import save_palette_png
from ..data.structures import VideoInfo
from ..io import atomic_dir
from ..proposals.structures import Proposals
from .proposal_source import matching_proposals

log = logging.getLogger("dmm.inference")

ProposalFn = Callable[[str, str, tuple[int, int]], dict[str, torch.Tensor]]


@dataclass
class _Video:
    """Book-keeping for one video of a lockstep batch."""

    info: VideoInfo
    object_ids: list[int]  # original ids, in the order of the object axis
    frames: object  # iterator over FrameInput
    out_tmp: Path | None = None
    done: bool = False


def compose_labels(
    probs: torch.Tensor, active: torch.Tensor, object_ids: Sequence[int], size: tuple[int, int]
) -> np.ndarray:
    """Label map of one frame.

    Args:
        probs: (O, H, W) refined object probabilities at the network input size.
        active: (O,) bool, objects being tracked at this frame.
        object_ids: the original id of each of the O objects.
        size: (h, w) original frame size.

    Returns:
        (h, w) uint8 map of original object ids, 0 for background.
    """
    h, w = size
    labels = np.zeros((h, w), dtype=np.uint8)
    if not bool(active.any()):
        return labels
    idx = torch.nonzero(active).flatten()
    p = F.interpolate(probs[idx][None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    background = 1.0 - p.max(dim=0, keepdim=True).values
    winner = torch.cat([background, p], dim=0).argmax(dim=0).cpu().numpy()
    lut = np.array([0] + [object_ids[i] for i in idx.tolist()], dtype=np.uint8)
    return lut[winner]


def _resize_masks(annotation: np.ndarray, ids: Sequence[int], size: tuple[int, int]) -> torch.Tensor:
    """(len(ids), H, W) float {0, 1}: each id's mask, nearest-resized to the input size."""
    masks = torch.from_numpy(np.stack([annotation == i for i in ids]).astype(np.float32))
    return F.interpolate(masks[None], size=size, mode="nearest")[0]


class Segmenter:
    """Runs a DMM-Net model over videos of one reader and writes ``<out>/<video>/<frame>.png``."""

    def __init__(self, model: torch.nn.Module, cfg: CfgNode, device: torch.device):
        self.model = model
        self.cfg = cfg
        self.device = device
        self.input_size = (cfg.DATA.INPUT_H, cfg.DATA.INPUT_W)

    @torch.no_grad()
    def segment_batch(self, reader, videos: Sequence[str], proposal_fn: ProposalFn, out_root: Path,
                      progress: tqdm | None = None) -> None:
        """Segment ``videos`` in lockstep; each finished video is renamed into ``out_root``."""
        model, dev, size = self.model, self.device, self.input_size
        model.eval()
        tracks = [self._open(reader, v) for v in videos]
        B = len(tracks)
        O = max(1, max(len(t.object_ids) for t in tracks))
        templates: torch.Tensor | None = None
        ref = torch.zeros(B, O, *size, device=dev)
        prev = torch.zeros_like(ref)
        prev_matched = torch.zeros_like(ref)
        active = torch.zeros(B, O, dtype=torch.bool, device=dev)
        state = None
        with contextlib.ExitStack() as stack:
            for t in tracks:
                t.out_tmp = stack.enter_context(atomic_dir(Path(out_root) / t.info.name))
            while not all(t.done for t in tracks):
                frames: list[FrameInput | None] = [None if t.done else next(t.frames, None) for t in tracks]
                for t, f in zip(tracks, frames):
                    if f is None and not t.done:
                        t.done = True
                        t.frames = None
                running = torch.tensor([f is not None for f in frames], device=dev)
                if not bool(running.any()):
                    break
                # 1. encode
                images = torch.stack([f.image if f is not None else torch.zeros(3, *size) for f in frames]).to(dev)
                features = model.encode(images)
                # 2. step the objects already tracked
                stepping = active & running[:, None]
                probs = torch.zeros_like(ref)
                if bool(stepping.any()):
                    proposals = [
                        matching_proposals(
                            {k: v.to(dev) for k, v in proposal_fn(t.info.name, f.name, size).items()},
                            self.cfg.PROPOSALS,
                        )
                        if f is not None
                        else Proposals.empty(size, device=dev)
                        for t, f in zip(tracks, frames)
                    ]
                    out = model.step(features, templates, proposals, prev_masks=prev, ref_masks=ref,
                                     iou_masks=prev_matched, valid=stepping, state=state)
                    keep = stepping[:, :, None, None]
                    probs = torch.where(keep, out.refined, probs)
                    prev = torch.where(keep, out.refined, prev)
                    prev_matched = torch.where(keep, out.matched, prev_matched)
                    state = out.state
                # 3. start the objects whose reference mask is given at this frame
                starting = torch.zeros_like(active)
                start_masks = torch.zeros_like(ref)
                for b, (t, f) in enumerate(zip(tracks, frames)):
                    if f is None:
                        continue
                    new = [i for i, oid in enumerate(t.object_ids) if t.info.objects[oid].first_index == f.index]
                    if new:
                        if f.annotation is None:
                            raise FileNotFoundError(
                                f"video {t.info.name}: frame {f.name} starts objects "
                                f"{[t.object_ids[i] for i in new]} but has no annotation file"
                            )
                        start_masks[b, new] = _resize_masks(f.annotation, [t.object_ids[i] for i in new], size).to(dev)
                        starting[b, new] = True
                if bool(starting.any()):
                    fresh = model.template_features(features, start_masks)
                    if templates is None:
                        templates = torch.zeros_like(fresh)
                    sel = starting[:, :, None]
                    templates = torch.where(sel, fresh, templates)
                    sel = starting[:, :, None, None]
                    ref = torch.where(sel, start_masks, ref)
                    prev = torch.where(sel, start_masks, prev)
                    prev_matched = torch.where(sel, start_masks, prev_matched)
                    active |= starting
                # 4. write the frame
                for b, (t, f) in enumerate(zip(tracks, frames)):
                    if f is None:
                        continue
                    shown = active[b, : len(t.object_ids)] & ~starting[b, : len(t.object_ids)]
                    labels = compose_labels(probs[b, : len(t.object_ids)], shown, t.object_ids, f.size)
                    for i in torch.nonzero(starting[b]).flatten().tolist():
                        labels[f.annotation == t.object_ids[i]] = t.object_ids[i]
                    save_palette_png(t.out_tmp / f"{f.name}.png", labels)
                    if progress is not None:
                        progress.update(1)

    def _open(self, reader, video: str) -> _Video:
        info = reader.info(video)
        stream = VideoStream(reader, video, self.input_size, self.cfg.DATA.MEAN, self.cfg.DATA.STD)
        return _Video(info=info, object_ids=sorted(info.objects), frames=iter(stream))


def pending_videos(videos: Sequence[str], out_root: Path) -> list[str]:
    """Videos whose result folder is not there yet (finished folders appear whole)."""
    return [v for v in videos if not (Path(out_root) / v).is_dir()]


def segment_videos(
    segmenter: Segmenter,
    reader,
    videos: Sequence[str],
    proposal_fn: ProposalFn,
    out_root: str | Path,
    batch_videos: int = 1,
    show_progress: bool = True,
) -> list[str]:
    """Segment every video of ``videos`` not already done; returns the videos it ran.

    Videos are sorted by length so a lockstep batch wastes little on finished members.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    todo = pending_videos(videos, out_root)
    skipped = len(videos) - len(todo)
    if skipped:
        log.info("%d of %d videos already done in %s; skipping them", skipped, len(videos), out_root)
    lengths = {v: len(reader.info(v).frames) for v in todo}
    todo = sorted(todo, key=lambda v: (lengths[v], v))
    bar = tqdm(total=sum(lengths.values()), unit="frame", desc="inference", disable=not show_progress,
               dynamic_ncols=True)
    with bar:
        for i in range(0, len(todo), batch_videos):
            batch = todo[i : i + batch_videos]
            segmenter.segment_batch(reader, batch, proposal_fn, out_root, progress=bar)
            bar.set_postfix(videos=f"{min(i + batch_videos, len(todo))}/{len(todo)}")
    return todo
