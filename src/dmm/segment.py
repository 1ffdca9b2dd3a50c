"""Segment your own video with a trained DMM-Net.

``python -m dmm.segment --input FRAMES_DIR_OR_VIDEO --mask FIRST_MASK.png --checkpoint CKPT
(--proposals DIR | --propnet PROPNET.pth) --out OUT [--config NAME] [KEY VALUE ...]``

The input is a folder of frames (jpg/png, sorted by name) or a video file OpenCV can read. The
mask is a PNG of the first frame: a palette or grayscale image of object ids (0 = background;
a 0/255 mask is one object). Proposals come from a folder holding ``<name>.pth`` (this project's
per-video store, keyed by the frame names) or are computed with a proposal-net checkpoint.

Writes ``OUT/masks/<frame>.png`` (palette PNGs at the input's size) and ``OUT/overlay.gif``
(or ``.mp4`` with ``--overlay mp4``). The frames are staged once as a one-video split in
YouTube-VOS layout under ``OUT/work`` so the regular reader and inference engine run on them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .config import load_config
from .data import build_reader
from .data.palette import save_palette_png
from .device import resolve_device
from .engine.inference import Segmenter, segment_videos
from .engine.proposal_source import ProposalSource
from .engine.visualize import write_overlay_animation
from .io import atomic_dir
from .model.checkpoint import load_weights
from .model.dmmnet import DMMNet
from .proposals.extract import extract_split
from .proposals.model import load_maskrcnn

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class InputError(ValueError):
    """Unusable user input; the message names the file."""


def read_frames(source: Path):
    """Yield ``(name, (h, w, 3) uint8 RGB)`` from a folder of images or a video file."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{source}: no frames (jpg/png) in this folder")
        for f in files:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(f"{f}: cannot read this image")
            yield f.stem, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return
    if not source.is_file():
        raise InputError(f"{source}: no such frame folder or video file")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise InputError(f"{source}: OpenCV cannot open this video")
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"{index:05d}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise InputError(f"{source}: the video has no readable frame")


def read_first_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 object ids of the first frame; a 0/255 mask becomes object 1."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "1"):
                im = im.convert("L")
            mask = np.array(im).astype(np.uint8)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the mask ({e})") from None
    if mask.shape != size:
        raise InputError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, the first frame {size[1]}x{size[0]}")
    ids = np.unique(mask)
    if set(ids.tolist()) <= {0, 255}:
        mask = (mask > 0).astype(np.uint8)
    if not mask.any():
        raise InputError(f"{path}: the mask has no object (every pixel is 0)")
    return mask


def stage_video(source: Path, mask_path: Path, work: Path, name: str) -> list[str]:
    """Write the frames and first mask as a one-video ``valid`` split under ``work``."""
    split = work / "valid"
    if split.exists():
        shutil.rmtree(split)
    with atomic_dir(split) as tmp:
        (tmp / "JPEGImages" / name).mkdir(parents=True)
        (tmp / "Annotations" / name).mkdir(parents=True)
        names = []
        for frame_name, image in read_frames(source):
            if not names:
                mask = read_first_mask(mask_path, image.shape[:2])
                save_palette_png(tmp / "Annotations" / name / f"{frame_name}.png", mask)
            Image.fromarray(image).save(tmp / "JPEGImages" / name / f"{frame_name}.jpg", quality=95)
            names.append(frame_name)
        objects = {str(i): {"category": None, "frames": [names[0]]} for i in np.unique(mask) if i}
        (tmp / "meta.json").write_text(json.dumps({"videos": {name: {"objects": objects}}}, indent=1))
    return names


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dmm.segment", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, type=Path, help="folder of frames, or a video file")
    p.add_argument("--mask", required=True, type=Path, help="PNG of the first frame's object ids")
    p.add_argument("--checkpoint", required=True, help="DMM-Net checkpoint (folder or trainer.pt)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--proposals", type=Path, help="folder with <name>.pth proposals")
    src.add_argument("--propnet", type=Path, help="proposal-net checkpoint to compute proposals")
    p.add_argument("--propnet-arch", default="resnext101_32x8d_fpn",
                   help="architecture of --propnet when the file does not say (see dmm.proposals.extract)")
    p.add_argument("--propnet-size", type=int, nargs=2, default=(800, 1333), metavar=("MIN", "MAX"),
                   help="the proposal net's input resize (shorter side, longer side cap)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--name", default="video", help="name of the video (the proposal file's stem)")
    p.add_argument("--config", default="eval", help="config the checkpoint was trained with (name or yaml)")
    p.add_argument("--overlay", choices=("gif", "mp4"), default="gif")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides (e.g. MODEL.BACKBONE resnet18)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.out / "work"
    try:
        frames = stage_video(args.input, args.mask, work, args.name)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = load_config(args.config, [*args.opts, "DATA.DATASET", "youtubevos", "DATA.ROOT", str(work), "DATA.LMDB", ""])
    if args.proposals is not None:
        proposal_dir = args.proposals
        if not (proposal_dir / f"{args.name}.pth").is_file():
            print(f"error: {proposal_dir / (args.name + '.pth')} not found (proposals are looked up by --name)",
                  file=sys.stderr)
            return 2
    device = resolve_device(cfg.DEVICE)
    if args.propnet is not None:
        proposal_dir = work / "proposals"
        shutil.rmtree(proposal_dir, ignore_errors=True)
        try:
            propnet = load_maskrcnn(args.propnet, args.propnet_arch, detections_per_img=cfg.PROPOSALS.TOPK,
                                    min_size=args.propnet_size[0], max_size=args.propnet_size[1])
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        extract_split(propnet, build_reader(cfg.DATA, "valid"), proposal_dir, device=device, videos=[args.name])
    model = DMMNet.from_config(cfg)
    load_weights(model, args.checkpoint)
    model.to(device).eval()
    reader = build_reader(cfg.DATA, "valid")
    results = work / "results"
    if (results / args.name).exists():
        shutil.rmtree(results / args.name)
    segment_videos(Segmenter(model, cfg, device), reader, [args.name], ProposalSource(proposal_dir), results)
    masks = args.out / "masks"
    if masks.exists():
        shutil.rmtree(masks)
    shutil.copytree(results / args.name, masks)
    overlay = write_overlay_animation([reader.image(args.name, f) for f in frames], [masks], frames,
                                      args.out / f"overlay.{args.overlay}", titles=["DMM-Net"])
    print(f"masks: {masks}\noverlay: {overlay}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
