"""Extract per-video proposal files with a torchvision Mask R-CNN.

Run ``python -m dmm.proposals.extract --split trainval --weights FILE --out DIR`` (see
``--help``). Each frame gets up to 50 detections at score threshold 0, each with its
predicted class's 28x28 mask probabilities before pasting ("roi" mode) and its box in
original image coordinates. Frames go through in batches; videos already written are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.transform import resize_boxes
from tqdm import tqdm

from dmm.cli import run
from dmm.config import get_cfg_defaults
from dmm.data import YouTubeVOS
from dmm.device import resolve_device
from dmm.proposals.model import ARCHS, COCO_NUM_CLASSES, load_maskrcnn
from dmm.proposals.store import write_video_proposals
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
    model.eval()
    sizes = [tuple(img.shape[-2:]) for img in images]
    batch, _ = model.transform(images)
    features = model.backbone(batch.tensors)
    boxes, _ = model.rpn(batch, features)
    detections, _ = model.roi_heads(features, boxes, batch.image_sizes)
    return [
        Proposals(resize_boxes(d["boxes"], in_size, size), d["scores"], d["masks"][:, 0], size,
                  "roi")
        for d, in_size, size in zip(detections, batch.image_sizes, sizes)
    ]


def extract_split(model: MaskRCNN, reader, out_dir: str | Path, batch_size: int = 2,
                  device: torch.device | str = "cpu", videos: list[str] | None = None,
                  progress: bool = True) -> int:
    """Write ``<out_dir>/<video>.pth`` for the reader's videos; returns how many were written.

    A video whose file exists is skipped, so an interrupted run resumes.
    """
    out_dir = Path(out_dir)
    model = model.to(device).eval()
    todo = [v for v in (videos or reader.videos) if not (out_dir / f"{v}.pth").exists()]
    total = sum(len(reader.frames(v)) for v in todo)
    bar = tqdm(total=total, desc="frames", unit="frame", disable=not progress)
    for video in todo:
        frames = reader.frames(video)
        result: dict[str, Proposals] = {}
        for start in range(0, len(frames), batch_size):
            names = frames[start:start + batch_size]
            images = [torch.from_numpy(reader.image(video, f)).permute(2, 0, 1).to(device)
                      .float().div_(255) for f in names]
            for name, props in zip(names, detect(model, images)):
                result[name] = props.to("cpu")
            bar.update(len(names))
        write_video_proposals(out_dir / f"{video}.pth", result, video=video)
    bar.close()
    return len(todo)


def main(argv: list[str] | None = None) -> int:
    cfg = get_cfg_defaults()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--root", default=cfg.DATA.ROOT, help="YouTube-VOS root")
    parser.add_argument("--split", required=True, help="train, trainval, valid, ...")
    parser.add_argument("--split-dir", default=cfg.DATA.SPLIT_DIR)
    parser.add_argument("--out", required=True, help="output folder of per-video files")
    parser.add_argument("--arch", default="resnext101_32x8d_fpn", choices=ARCHS)
    parser.add_argument("--weights", required=True,
                        help="weights file (torchvision COCO state dict or proposal-net "
                             "checkpoint), or 'none' for a random init (tests)")
    parser.add_argument("--num-classes", type=int, default=COCO_NUM_CLASSES,
                        help="classes of a random init (files say their own)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--detections", type=int, default=50, help="detections per image")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--videos", nargs="*", default=None, help="only these videos")
    args = parser.parse_args(argv)
    reader = YouTubeVOS(args.root, args.split, split_dir=args.split_dir)
    model = load_maskrcnn(args.weights, args.arch, args.num_classes, min_size=args.min_size,
                          max_size=args.max_size, detections_per_img=args.detections)
    written = extract_split(model, reader, args.out, args.batch_size, resolve_device(args.device),
                            args.videos)
    print(f"wrote {written} videos to {args.out} ({len(reader.videos) - written} already there)"
          if args.videos is None else f"wrote {written} videos to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
