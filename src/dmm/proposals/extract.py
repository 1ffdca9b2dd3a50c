"""Extract per-video proposal files with a proposal net.

Run ``python -m dmm.proposals.extract --split trainval --weights FILE --out DIR`` (see
``--help``). The net is read from FILE (``dmm.proposals.model.load_propnet``): the authors'
maskrcnn-benchmark checkpoints and Detectron pickles run as maskrcnn-benchmark ran them
(``dmm.proposals.legacy_net``), torchvision Mask R-CNNs as torchvision runs them. Each frame's
detections keep their predicted class's 28x28 mask probabilities before pasting ("roi" mode):

- maskrcnn-benchmark nets: exactly what 2019's ``predictions.pth`` held for the frame, boxes in
  pixels of the resized frame (``image_size``), detections in its order (class, then RPN
  proposal; not by score), labels kept; ``--predictions`` also writes the split-wide
  ``predictions.pth`` in that layout (one BoxList per frame, frame-index order).
- torchvision nets: up to ``--detections`` per frame by decreasing score, boxes in original
  frame coordinates.

Frames of one video go through in batches; each video's file is written atomically, and videos
already written are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.transform import resize_boxes
from tqdm import tqdm

from dmm.cli import command_parser, run
from dmm.config import get_cfg_defaults
from dmm.data import YouTubeVOS
from dmm.device import resolve_device
from dmm.errors import InputError
from dmm.proposals.legacy_net import LegacyDetections, LegacyMaskRCNN
from dmm.proposals.legacy_net.predictions import write_legacy_predictions
from dmm.proposals.model import ARCHS, COCO_NUM_CLASSES, PropNet, load_propnet
from dmm.proposals.store import read_video_labels, read_video_proposals, write_video_proposals
from dmm.structures import Proposals


@torch.no_grad()
def detect(model: MaskRCNN, images: list[torch.Tensor]) -> list[Proposals]:
    """Roi-mode proposals of a batch of frames.

    Runs the detector's stages up to the roi heads, so masks stay 28x28 (no full-size paste).

    Args:
        images: (3, h, w) float RGB in [0, 1], any sizes.
    Returns:
        per image, Proposals with boxes at (h, w) and (K, 28, 28) mask probabilities.
    """
    return [p for p, _ in _torchvision_detections(model, images)]


def _torchvision_detections(model: MaskRCNN, images: list[torch.Tensor]) -> list[tuple[Proposals, torch.Tensor]]:
    """:func:`detect` with each frame's (K,) class labels."""
    model.eval()
    sizes = [tuple(img.shape[-2:]) for img in images]
    batch, _ = model.transform(images)
    features = model.backbone(batch.tensors)
    boxes, _ = model.rpn(batch, features)
    detections, _ = model.roi_heads(features, boxes, batch.image_sizes)
    return [(Proposals(resize_boxes(d["boxes"], in_size, size), d["scores"], d["masks"][:, 0], size, "roi"),
             d["labels"])
            for d, in_size, size in zip(detections, batch.image_sizes, sizes)]


@torch.no_grad()
def detect_labelled(model: PropNet, frames: list[np.ndarray], trace: list[dict] | None = None
                    ) -> list[tuple[Proposals, torch.Tensor]]:
    """Per frame, its roi-mode proposals and their (K,) int64 class labels (on the CPU).

    Args:
        frames: (h, w, 3) uint8 RGB frames.
        trace: for a maskrcnn-benchmark net, receives one dict of stage values per frame
            (:meth:`LegacyMaskRCNN.forward`).
    """
    if isinstance(model, LegacyMaskRCNN):
        return [(d.proposals().to("cpu"), d.labels.cpu()) for d in model.eval()(frames, trace)]
    device = next(model.parameters()).device
    images = [torch.from_numpy(np.array(f, copy=True)).permute(2, 0, 1).to(device).float().div_(255)
              for f in frames]
    return [(p.to("cpu"), labels.cpu()) for p, labels in _torchvision_detections(model, images)]


def detect_frames(model: PropNet, frames: list[np.ndarray], trace: list[dict] | None = None) -> list[Proposals]:
    """Roi-mode proposals of (h, w, 3) uint8 RGB frames with any proposal net (see
    :func:`detect_labelled`): the public extraction entry point."""
    return [p for p, _ in detect_labelled(model, frames, trace)]


def extract_split(model: PropNet, reader, out_dir: str | Path, batch_size: int = 2,
                  device: torch.device | str = "cpu", videos: list[str] | None = None,
                  progress: bool = True, predictions: str | Path | None = None,
                  trace: list[dict] | None = None) -> int:
    """Write ``<out_dir>/<video>.pth`` for the reader's videos; returns how many were written.

    A video whose file exists is skipped, so an interrupted run resumes; a frame that cannot be
    decoded stops the run with an error naming it, before its video's file is written. With
    ``predictions``, the split-wide file is written last from the per-video files (their videos
    sorted, frames sorted: the split's frame-index order when every video is extracted).
    ``trace`` (maskrcnn-benchmark nets) receives every frame's stage values, in extraction order.
    """
    out_dir = Path(out_dir)
    model = model.to(device).eval()
    chosen = sorted(videos or reader.videos)
    todo = [v for v in chosen if not (out_dir / f"{v}.pth").exists()]
    total = sum(len(reader.frames(v)) for v in todo)
    with tqdm(total=total, desc="frames", unit="frame", disable=not progress) as bar:  # closed before an error
        for video in todo:
            frames = reader.frames(video)
            result: dict[str, Proposals] = {}
            labels: dict[str, torch.Tensor] = {}
            for start in range(0, len(frames), batch_size):
                names = frames[start:start + batch_size]
                images = [reader.image(video, f) for f in names]
                for name, (props, lab) in zip(names, detect_labelled(model, images, trace)):
                    result[name], labels[name] = props, lab
                bar.update(len(names))
            write_video_proposals(out_dir / f"{video}.pth", result, video=video, labels=labels)
    if predictions is not None:
        write_split_predictions(out_dir, chosen, predictions, progress)
    return len(todo)


def write_split_predictions(store_dir: str | Path, videos: list[str], path: str | Path,
                            progress: bool = True) -> int:
    """Write maskrcnn-benchmark's ``predictions.pth`` (one BoxList per frame, videos and frames
    sorted) from the per-video files of ``videos``; returns the number of frames.

    The files must hold labels (written by :func:`extract_split`). Every BoxList is in memory
    until the file is written (about 160 kB per frame at 50 detections), as in 2019.
    """
    store_dir = Path(store_dir)
    entries = []
    for video in tqdm(sorted(videos), desc="predictions.pth", disable=not progress):
        file = store_dir / f"{video}.pth"
        frames = read_video_proposals(file, video)
        labels = read_video_labels(file, video)
        for name in sorted(frames):
            p, lab = frames[name], labels[name]
            if lab is None:
                raise InputError(f"{file} frame {name!r} has no labels (written before labels were "
                                 f"stored?): extract video {video!r} again for a predictions.pth")
            entries.append(LegacyDetections(p.boxes, p.scores, lab, p.masks[:, None], p.image_size))
    return write_legacy_predictions(path, entries)


def main(argv: list[str] | None = None) -> int:
    cfg = get_cfg_defaults()
    parser = command_parser("python -m dmm.proposals.extract", __doc__, summary_only=True)
    parser.add_argument("--root", default=cfg.DATA.ROOT, help="YouTube-VOS root")
    parser.add_argument("--split", required=True, help="train, trainval, valid, ...")
    parser.add_argument("--split-dir", default=cfg.DATA.SPLIT_DIR, help="folder of the split files (DATA.SPLIT_DIR)")
    parser.add_argument("--out", required=True, help="output folder of per-video files")
    parser.add_argument("--arch", default="auto", choices=("auto", *ARCHS),
                        help="architecture: read from --weights (auto) or checked against it")
    parser.add_argument("--weights", required=True,
                        help="weights file: a maskrcnn-benchmark checkpoint or Detectron pickle (the "
                             "authors' proposal nets), a torchvision state dict or COCO file, this "
                             "project's proposal-net checkpoint; or 'none' for a random init (tests)")
    parser.add_argument("--num-classes", type=int, default=COCO_NUM_CLASSES,
                        help="classes of a random init (files say their own)")
    parser.add_argument("--batch-size", type=int, default=2, help="frames per batch (of one video)")
    parser.add_argument("--min-size", type=int, default=800, help="INPUT.MIN_SIZE_TEST")
    parser.add_argument("--max-size", type=int, default=1333, help="INPUT.MAX_SIZE_TEST")
    parser.add_argument("--score-thresh", type=float, default=None,
                        help="MODEL.ROI_HEADS.SCORE_THRESH; unset: 0.05 for maskrcnn-benchmark nets (its "
                             "default), 0.0 for torchvision nets (default: unset)")
    parser.add_argument("--detections", type=int, default=None,
                        help="MODEL.ROI_HEADS.DETECTIONS_PER_IMG; unset: 100 for maskrcnn-benchmark nets (its "
                             "default), 50 for torchvision nets (default: unset)")
    parser.add_argument("--predictions", default=None,
                        help="also write the split-wide predictions.pth (maskrcnn-benchmark's layout) here "
                             "(default: not written)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if there is one), cpu, cuda or cuda:<index>")
    parser.add_argument("--videos", nargs="*", default=None, metavar="NAME",
                        help="only these videos (default: every video of the split)")
    args = parser.parse_args(argv)
    reader = YouTubeVOS(args.root, args.split, split_dir=args.split_dir)
    model = load_propnet(args.weights, args.arch, args.num_classes, min_size=args.min_size,
                         max_size=args.max_size, score_thresh=args.score_thresh,
                         detections_per_img=args.detections)
    written = extract_split(model, reader, args.out, args.batch_size, resolve_device(args.device),
                            args.videos, predictions=args.predictions)
    print(f"wrote {written} videos to {args.out} ({len(reader.videos) - written} already there)"
          if args.videos is None else f"wrote {written} videos to {args.out}")
    if args.predictions:
        print(f"wrote {args.predictions}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
