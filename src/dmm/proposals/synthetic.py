"""Detector-free proposals for the synthetic dataset, in the store format ("roi" mode).

Run ``python -m dmm.proposals.synthetic --root datasets/synthetic --split train --out DIR``.
Proposals are made from ``<root>/<split>/Instances/<video>/<frame>.png`` (every visible
instance: targets and distractors alike): each instance gives a jittered copy of its mask
(dilation or erosion, a shift, a blur into probabilities) unless it is missed, plus a few
noisier duplicates; some instances are split in two or merged with another; random blobs are
added as false positives. Scores follow each proposal's IoU with its instance plus noise, so
the true object is almost always among the proposals but not always the best-scored one.
Masks are stored as 28x28 box-relative probabilities with boxes at the original frame size,
exactly like Mask R-CNN output, so the same paste path runs downstream. A seed gives the same
files (each video draws from a generator seeded by (seed, video name)).
"""

from __future__ import annotations

import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision.ops import roi_align
from tqdm import tqdm

from dmm.boxes import mask_boxes
from dmm.cli import command_parser, run
from dmm.errors import InputError, MissingInputError
from dmm.proposals.ops import paste_roi_masks
from dmm.proposals.store import write_video_proposals
from dmm.structures import Proposals

DISTRACTOR_ID_BASE = 100
ROI_SIZE = 28


@dataclass(frozen=True)
class NoiseConfig:
    """How noisy the synthetic detector is (defaults: moderate).

    Attributes:
        miss_prob: chance an instance gets no proposal of its own.
        morph: largest dilation / erosion radius, as a fraction of the instance's size.
        shift: standard deviation of the shift, as a fraction of the instance's size.
        blur: largest Gaussian blur sigma in pixels (the smallest is 0.5).
        duplicates: mean number of extra, noisier copies per instance.
        split_prob: chance an instance also appears as two halves.
        merge_prob: chance an instance also appears merged with another instance.
        false_positives: mean number of random blobs per frame.
        score_noise: standard deviation of the noise added to the quality-based score.
    """

    miss_prob: float = 0.03
    morph: float = 0.03
    shift: float = 0.015
    blur: float = 2.0
    duplicates: float = 1.0
    split_prob: float = 0.15
    merge_prob: float = 0.15
    false_positives: float = 3.0
    score_noise: float = 0.12


@dataclass
class _Piece:
    """A probability map on a crop of the frame: ``prob`` (ch, cw) float32 at (top, left)."""

    prob: np.ndarray
    top: int
    left: int

    def box(self) -> np.ndarray | None:
        """Half-open xyxy box of prob > 0.5 in frame pixels, or None when empty."""
        inside = torch.from_numpy(self.prob > 0.5)[None]
        if not bool(inside.any()):
            return None
        box = mask_boxes(inside, 0.5, half_open=True)[0].numpy()
        return box + np.array([self.left, self.top, self.left, self.top], np.float32)

    def iou(self, truth: np.ndarray, truth_area: int) -> float:
        ch, cw = self.prob.shape
        pred = self.prob > 0.5
        inter = np.logical_and(pred, truth[self.top:self.top + ch, self.left:self.left + cw]).sum()
        union = pred.sum() + truth_area - inter
        return float(inter / union) if union else 0.0


def _jitter(mask: np.ndarray, rng: np.random.Generator, noise: NoiseConfig,
            strength: float) -> _Piece:
    """A jittered probability map of a non-empty binary (h, w) mask, on a crop around it."""
    h, w = mask.shape
    x0, y0, x1, y1 = (int(v) for v in mask_boxes(torch.from_numpy(mask.astype(bool))[None], 0.5, half_open=True)[0])
    x, y, bw, bh = x0, y0, x1 - x0, y1 - y0
    size = float(max(bw, bh))
    radius = int(round(rng.uniform(-1, 1) * noise.morph * strength * size))
    dx, dy = rng.normal(0, noise.shift * strength * size, size=2)
    sigma = rng.uniform(0.5, max(noise.blur, 0.5))
    margin = abs(radius) + int(abs(dx) + abs(dy)) + int(3 * sigma) + 2
    top, left = max(y - margin, 0), max(x - margin, 0)
    bottom, right = min(y + bh + margin, h), min(x + bw + margin, w)
    m = mask[top:bottom, left:right].astype(np.uint8)
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1,) * 2)
        morphed = cv2.dilate(m, kernel) if radius > 0 else cv2.erode(m, kernel)
        if morphed.any():
            m = morphed
    m = cv2.warpAffine(m.astype(np.float32), np.float32([[1, 0, dx], [0, 1, dy]]),
                       (m.shape[1], m.shape[0]), flags=cv2.INTER_NEAREST, borderValue=0)
    prob = cv2.GaussianBlur(m, (0, 0), sigma)
    prob = np.clip(prob * rng.uniform(0.9, 1.0), 0.0, 1.0).astype(np.float32)
    return _Piece(prob, top, left)


def _halves(mask: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    x, y, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
    if bw >= bh:
        cut = x + int(bw * rng.uniform(0.3, 0.7))
        first = np.zeros_like(mask)
        first[:, :cut] = mask[:, :cut]
    else:
        cut = y + int(bh * rng.uniform(0.3, 0.7))
        first = np.zeros_like(mask)
        first[:cut] = mask[:cut]
    return [p for p in (first, mask & ~first) if p.any()]


def _blob(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    m = np.zeros(shape, np.uint8)
    axes = (int(rng.uniform(0.03, 0.2) * w) + 1, int(rng.uniform(0.03, 0.2) * h) + 1)
    centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
    cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return m.astype(bool)


def _to_roi(pieces: list[_Piece], boxes: np.ndarray) -> torch.Tensor:
    """(K, 28, 28) box-relative masks: each piece's map sampled over its box (ROIAlign)."""
    out = []
    for piece, box in zip(pieces, boxes):
        local = torch.from_numpy(box - np.float32([piece.left, piece.top] * 2))
        rois = torch.cat([torch.zeros(1), local])[None]
        prob = torch.from_numpy(piece.prob)[None, None]
        out.append(roi_align(prob, rois, ROI_SIZE, 1.0, 2, aligned=True)[0, 0])
    return torch.stack(out).clamp(0, 1)


def frame_proposals(instances: np.ndarray, rng: np.random.Generator,
                    noise: NoiseConfig = NoiseConfig()) -> Proposals:
    """Synthetic roi-mode proposals of one frame.

    Args:
        instances: (h, w) uint8 instance map (0 background).
    Returns:
        Proposals with 28x28 masks and boxes at (h, w), in no particular order.
    """
    h, w = instances.shape
    ids = [int(i) for i in np.unique(instances) if i != 0]
    masks = {i: instances == i for i in ids}
    pieces: list[_Piece] = []
    boxes: list[np.ndarray] = []
    scores: list[float] = []

    def add(piece: _Piece, score: float) -> None:
        box = piece.box()
        if box is not None:
            pieces.append(piece)
            boxes.append(box)
            scores.append(float(np.clip(score, 0.01, 0.99)))

    def add_scored(piece: _Piece, truth: np.ndarray, bonus: float = 0.0) -> None:
        quality = piece.iou(truth, int(truth.sum()))
        add(piece, 0.15 + 0.75 * quality + bonus + rng.normal(0, noise.score_noise))

    for i in ids:
        if not rng.random() < noise.miss_prob:
            add_scored(_jitter(masks[i], rng, noise, 1.0), masks[i])
        for _ in range(rng.poisson(noise.duplicates)):
            add_scored(_jitter(masks[i], rng, noise, 2.5), masks[i], bonus=-0.05)
        if rng.random() < noise.split_prob:
            for half in _halves(masks[i], rng):
                add_scored(_jitter(half, rng, noise, 0.5), masks[i])
        if len(ids) > 1 and rng.random() < noise.merge_prob:
            other = ids[int(rng.integers(len(ids)))]
            union = masks[i] | masks[other]
            add_scored(_jitter(union, rng, noise, 0.5), masks[i] if other == i else union,
                       bonus=-0.1)
    for _ in range(rng.poisson(noise.false_positives)):
        add(_jitter(_blob((h, w), rng), rng, noise, 1.0), rng.uniform(0.05, 0.8))

    if not pieces:
        return Proposals.empty((h, w), "roi", ROI_SIZE)
    box_arr = np.stack(boxes)
    return Proposals(torch.from_numpy(box_arr), torch.tensor(scores, dtype=torch.float32),
                     _to_roi(pieces, box_arr), (h, w), "roi")


def video_rng(seed: int, video: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(video.encode())])


def _read_instances(path: Path) -> np.ndarray:
    try:
        return np.asarray(Image.open(path))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read instance map {path}: {e}") from None


class CoverageStats:
    """Accumulates how honest the proposals are for the targets (ids below 100)."""

    def __init__(self) -> None:
        self.targets = 0
        self.covered = 0
        self.contested = 0
        self.best_is_top = 0
        self.proposals = 0
        self.frames = 0

    def update(self, instances: np.ndarray, proposals: Proposals) -> None:
        self.frames += 1
        self.proposals += len(proposals)
        if len(proposals) == 0:
            self.targets += int(sum(0 < i < DISTRACTOR_ID_BASE for i in np.unique(instances)))
            return
        pasted = (paste_roi_masks(proposals.masks, proposals.boxes, instances.shape) > 0.5)
        pasted = pasted.flatten(1).to(torch.float32)  # (K, h*w)
        areas = pasted.sum(1)
        for i in np.unique(instances):
            if i == 0 or i >= DISTRACTOR_ID_BASE:
                continue
            truth = torch.from_numpy((instances == i).reshape(-1).astype(np.float32))
            inter = pasted @ truth
            ious = inter / (areas + truth.sum() - inter).clamp(min=1)
            self.targets += 1
            self.covered += int(ious.max() > 0.7)
            contenders = torch.nonzero(ious > 0.3).flatten()
            if len(contenders):
                self.contested += 1
                best = contenders[ious[contenders].argmax()]
                top = contenders[proposals.scores[contenders].argmax()]
                self.best_is_top += int(best == top)

    def summary(self) -> str:
        cover = self.covered / max(self.targets, 1)
        top = self.best_is_top / max(self.contested, 1)
        return (f"{self.frames} frames, {self.proposals / max(self.frames, 1):.1f} proposals/frame; "
                f"targets covered by a proposal with IoU > 0.7: {cover:.1%} of {self.targets}; "
                f"target's best-IoU proposal is also the top-scored among those overlapping it "
                f"(IoU > 0.3): {top:.1%}")


def generate(root: str | Path, split: str, out: str | Path, noise: NoiseConfig = NoiseConfig(),
             seed: int = 0, overwrite: bool = False, videos: list[str] | None = None,
             progress: bool = True) -> CoverageStats:
    """Write ``<out>/<video>.pth`` for every video of ``<root>/<split>/Instances``.

    Videos whose file exists are skipped unless ``overwrite``. Returns coverage statistics of
    the videos written in this call.
    """
    inst_dir = Path(root) / split / "Instances"
    if not inst_dir.is_dir():
        raise MissingInputError(
            f"instance maps {inst_dir} not found: generate the synthetic dataset first "
            f"(python -m dmm.data.synthetic --root {root})")
    names = sorted(p.name for p in inst_dir.iterdir() if p.is_dir()) if videos is None else videos
    out = Path(out)
    stats = CoverageStats()
    for video in tqdm(names, desc=f"synthetic proposals {split}", disable=not progress):
        target = out / f"{video}.pth"
        if target.exists() and not overwrite:
            continue
        rng = video_rng(seed, video)
        frames = {}
        pngs = sorted((inst_dir / video).glob("*.png"))
        if not pngs:
            raise MissingInputError(f"video {video!r}: no instance maps in {inst_dir / video}")
        for png in pngs:
            instances = _read_instances(png)
            if instances.ndim != 2:
                raise InputError(f"video {video!r} frame {png.stem!r}: instance map {png} "
                                 f"must be single-channel, got shape {instances.shape}")
            props = frame_proposals(instances, rng, noise)
            stats.update(instances, props)
            frames[png.stem] = props
        write_video_proposals(target, frames, video=video)
    return stats


def _attribute_help(doc: str) -> dict[str, str]:
    """``name: meaning`` lines of a docstring's Attributes section, as {name: meaning}."""
    return dict(re.findall(r"^\s+(\w+): (.+?)\.?$", doc, flags=re.M))


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m dmm.proposals.synthetic", __doc__, summary_only=True)
    parser.add_argument("--root", default="datasets/synthetic", help="synthetic dataset root")
    parser.add_argument("--split", default="train", help="split folder under the root")
    parser.add_argument("--out", required=True, help="output folder of per-video files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument("--overwrite", action="store_true", help="rewrite existing videos")
    defaults = NoiseConfig()
    meanings = _attribute_help(NoiseConfig.__doc__)
    for field, value in vars(defaults).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=float, default=value,
                            help=f"noise: {meanings.get(field, field)}")
    args = parser.parse_args(argv)
    noise = NoiseConfig(**{f: getattr(args, f) for f in vars(defaults)})
    torch.set_num_threads(1)  # many small ops: threads only add contention
    stats = generate(args.root, args.split, args.out, noise, args.seed, args.overwrite)
    print(stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
